"""Importing the catalogue, stock levels and costs: upserts with history, never doubled."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from omnicanal.cli.main import app as cli_app
from omnicanal.collect.importers import ImportFailedError, ImportOptions, run_import
from omnicanal.core.settings import get_settings
from omnicanal.profiles import imports as profile_imports
from omnicanal.store.engine import Database

profile_imports.register()


def write(tmp_path: Path, name: str, content: str, encoding: str = "cp1252") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def rows(db: Database, sql: str) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def load(db: Database, kind: str, path: Path, **options: Any):
    return run_import(db=db, kind=kind, path=path, options=ImportOptions(**options))


def refused(db: Database, kind: str, path: Path, **options: Any) -> list[tuple[Any, ...]]:
    with pytest.raises(ImportFailedError) as caught:
        load(db, kind, path, **options)
    return [(e["line"], e["column"], e["reason"]) for e in caught.value.errors]


CATALOGUE = (
    "référence;libellé;catégorie;marque;prix;actif\n"
    "SKU-1;Pull col roulé;Maille;Maison Dupré;59,90;oui\n"
    "SKU-2;Écharpe;Accessoires;;19,5;\n"
)


def test_catalogue_upserts_and_keeps_price_changes(db, tmp_path) -> None:
    first = load(db, "catalogue", write(tmp_path, "catalogue.csv", CATALOGUE))
    assert (first.rows, first.stored, first.already) == (2, 2, 0)
    products = "SELECT sku, name, category, brand, price_cents, currency, active FROM product"
    assert sorted(rows(db, products)) == [
        ("SKU-1", "Pull col roulé", "Maille", "Maison Dupré", 5990, "EUR", True),
        ("SKU-2", "Écharpe", "Accessoires", None, 1950, "EUR", True),
    ]
    history = "SELECT sku, price_cents, previous_cents FROM product_price_history ORDER BY id"
    assert rows(db, history) == [("SKU-1", 5990, None), ("SKU-2", 1950, None)]
    again = load(db, "catalogue", write(tmp_path, "catalogue.csv", CATALOGUE))
    assert (again.stored, again.already) == (0, 2)
    assert len(rows(db, history)) == 2
    sale = CATALOGUE.replace("59,90", "49,90").replace("Écharpe", "Écharpe laine")
    changed = load(db, "catalogue", write(tmp_path, "soldes.csv", sale))
    assert (changed.stored, changed.already) == (2, 0)
    assert rows(db, history)[2:] == [("SKU-1", 4990, 5990)]  # a new name is not a price change
    assert ("SKU-2", "Écharpe laine") in rows(db, "SELECT sku, name FROM product")


def test_catalogue_currency_needs_a_rate(db, tmp_path) -> None:
    content = "sku;name;price;currency\nUS-1;Sneaker;100;USD\nCH-1;Montre;200,00;chf\n"
    path = write(tmp_path, "us.csv", content)
    errors = refused(db, "catalogue", path)
    assert [(line, column) for line, column, _ in errors] == [(2, "currency"), (3, "currency")]
    assert "amounts in USD need a rate to euros (--rate USD=0.92" in errors[0][2]
    assert rows(db, "SELECT count(*) FROM product") == [(0,)]
    run = load(db, "catalogue", path, rates={"usd": Decimal("0.92"), "CHF": Decimal("1.05")})
    assert run.stored == 2
    assert sorted(rows(db, "SELECT sku, price_cents, currency FROM product")) == [
        ("CH-1", 21000, "EUR"),
        ("US-1", 9200, "EUR"),
    ]


def test_catalogue_duplicates_and_bad_prices_refuse_the_file(db, tmp_path) -> None:
    content = "sku;name;price\nA;Un;1\nA;Un bis;2\nB;Deux;-3\nC;Trois;gratuit\nD;;4\n"
    errors = refused(db, "catalogue", write(tmp_path, "c.csv", content))
    assert errors == [
        (3, "sku", "A is already at line 2: a duplicate row"),
        (4, "price", "is negative"),
        (5, "price", "'gratuit' is not a number"),
        (6, "name", "is empty; it is required"),
    ]
    assert rows(db, "SELECT count(*) FROM product") == [(0,)]


def test_stock_levels_with_history(db, tmp_path) -> None:
    content = (
        "ean;magasin;stock;date\n"
        "SKU-1;Paris Opéra;12;2026-03-01 08:00\n"
        "SKU-1;online;40;2026-03-01 08:00\n"
        "SKU-2;store:lyon;0;2026-03-01 08:00\n"
    )
    first = load(db, "stock", write(tmp_path, "stock.csv", content))
    assert first.stored == 3
    levels = "SELECT sku, location, quantity FROM stock_level ORDER BY sku, location"
    assert rows(db, levels) == [
        ("SKU-1", "online", 40),
        ("SKU-1", "store:paris-opera", 12),
        ("SKU-2", "store:lyon", 0),
    ]
    again = load(db, "stock", write(tmp_path, "stock.csv", content))
    assert (again.stored, again.already) == (0, 3)
    later = (
        "sku;location;quantity;datetime\n"
        "SKU-1;paris-opera;9;2026-03-02 08:00\n"
        "SKU-1;paris-opera;7;2026-03-02 18:00\n"
        "SKU-1;web;40;2026-03-02 08:00\n"  # unchanged: no history
        "SKU-2;lyon;5;2026-02-01 08:00\n"  # older than the level known
    )
    moved = load(db, "stock", write(tmp_path, "stock2.csv", later))
    assert (moved.stored, moved.already) == (2, 2)
    assert rows(db, levels)[1:] == [("SKU-1", "store:paris-opera", 7), ("SKU-2", "store:lyon", 0)]
    history = (
        "SELECT location, quantity, previous FROM stock_history WHERE sku = 'SKU-1' "
        "AND location = 'store:paris-opera' ORDER BY changed_ms"
    )
    assert rows(db, history) == [
        ("store:paris-opera", 12, None),
        ("store:paris-opera", 9, 12),
        ("store:paris-opera", 7, 9),
    ]


def test_stock_rows_are_checked(db, tmp_path) -> None:
    content = (
        "sku;location;quantity;datetime\n"
        "A;paris;1;2026-03-01\nA;Paris;2;2026-03-01\nB;---;1;\nC;lyon;1,5;\n"
    )
    errors = refused(db, "stock", write(tmp_path, "s.csv", content))
    assert errors == [
        (3, "sku", "A at store:paris is already at line 2: a duplicate row"),
        (4, "location", "'---' names no store or online"),
        (5, "quantity", "'1,5' is not a whole number"),
    ]


COSTS = (
    "date;canal;campagne;montant;impressions;clics\n"
    "01/03/2026;ads:google;printemps;120,50;10000;250\n"
    "01/03/2026;ads:google;printemps;79,50;5000;100\n"  # another ad group: summed
    "01/03/2026;social:instagram;printemps;80;;\n"
    "02/03/2026;event:workshop;atelier couture;350;;\n"
    "02/03/2026;direct_mail;;1 200,00;;\n"
    "03/03/2026;press:le-monde;;2500;;\n"
    "03/03/2026;street;flyers;150;;\n"
)


def test_costs_per_channel_and_day_are_replaced_never_doubled(db, tmp_path) -> None:
    first = load(db, "costs", write(tmp_path, "couts.csv", COSTS))
    assert (first.rows, first.stored) == (7, 7)
    costs = (
        "SELECT day, channel, media_class, campaign, kind, amount_eur_cents, impressions, clicks "
        "FROM cost ORDER BY day, channel"
    )
    found = [(str(day), *rest) for day, *rest in rows(db, costs)]  # SQLite gives text
    assert found == [
        ("2026-03-01", "ads:google", "paid", "printemps", "ad_spend", 20000, 15000, 350),
        ("2026-03-01", "social:instagram", "earned", "printemps", "ad_spend", 8000, None, None),
        ("2026-03-02", "direct_mail", "hors_media", "", "direct_mail", 120000, None, None),
        (
            "2026-03-02",
            "event:workshop",
            "hors_media",
            "atelier couture",
            "event",
            35000,
            None,
            None,
        ),
        ("2026-03-03", "press:le-monde", "earned", "", "press", 250000, None, None),
        ("2026-03-03", "street", "hors_media", "flyers", "other", 15000, None, None),
    ]
    again = load(db, "costs", write(tmp_path, "couts.csv", COSTS))
    assert (again.stored, again.already) == (0, 7)
    total = "SELECT sum(amount_eur_cents) FROM cost"
    assert rows(db, total) == [(448000,)]
    corrected = COSTS.replace("2500", "2000")
    fixed = load(db, "costs", write(tmp_path, "couts-v2.csv", corrected))
    assert (fixed.stored, fixed.already) == (1, 6)
    assert rows(db, total) == [(398000,)]
    assert rows(db, "SELECT import_id FROM cost WHERE channel = 'press:le-monde'") == [(fixed.id,)]


def test_costs_are_checked(db, tmp_path) -> None:
    content = (
        "date;channel;amount;currency;kind\n"
        "2026-03-01;fax;10;;\n"
        "2026-03-01;ads:meta;10;GBP;\n"
        "2026-03-01;ads:meta;10;;bribe\n"
        "le 1er mars;ads:meta;10;;\n"
    )
    errors = refused(db, "costs", write(tmp_path, "c.csv", content))
    assert [(line, column) for line, column, _ in errors] == [
        (2, "channel"),
        (3, "currency"),
        (4, "kind"),
        (5, "date"),
    ]
    assert errors[0][2].startswith("unknown channel 'fax'; use one of:")
    assert (
        "'bribe' is not one of ad_spend, direct_mail, event, other, press, production"
        in (errors[2][2])
    )
    assert rows(db, "SELECT count(*) FROM cost") == [(0,)]


def test_costs_from_an_ad_platform_xlsx_in_dollars(db, tmp_path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Day", "Channel", "Campaign name", "Amount spent", "Currency", "Clicks"])
    sheet.append([date(2026, 4, 1), "ads:meta", "Spring", 100.0, "USD", 42])
    path = tmp_path / "meta.xlsx"
    book.save(path)
    run = load(db, "costs", path, rates={"USD": Decimal("0.9")})
    assert run.stored == 1
    assert rows(db, "SELECT currency, amount_cents, amount_eur_cents, clicks FROM cost") == [
        ("USD", 10000, 9000, 42)
    ]


runner = CliRunner()


@pytest.fixture
def data(tmp_path, backend, database_url, monkeypatch):
    monkeypatch.setenv("OMNICANAL_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_cli_costs_with_a_rate(data, tmp_path) -> None:
    path = write(tmp_path, "c.csv", "date;channel;amount;currency\n2026-03-01;ads:google;50;USD\n")
    base = ["import", "costs", str(path), "--data", str(data), "--json"]
    refused_run = runner.invoke(cli_app, base)
    assert refused_run.exit_code == 1
    assert json.loads(refused_run.output)["errors"][0]["column"] == "currency"
    done = runner.invoke(cli_app, [*base, "--rate", "USD=0,92"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["stored"] == 1
    bad_rate = runner.invoke(cli_app, [*base, "--rate", "USD"])
    assert bad_rate.exit_code == 2
    assert "CODE=euros_per_unit" in bad_rate.output


def test_api_catalogue_upload(client, admin_token) -> None:
    answer = client.post(
        "/api/v1/imports/catalogue",
        files={"file": ("catalogue.csv", CATALOGUE.encode("cp1252"), "text/csv")},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["stored"] == 2
