"""Importing files of people: till, customers, attendance, calls, survey; all or nothing.

Through the service, the HTTP API and the CLI, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from omnicanal.api.app import create_app
from omnicanal.cli.main import app as cli_app
from omnicanal.collect import service
from omnicanal.collect.importers import (
    ImportFailedError,
    ImportOptions,
    UnknownKindError,
    list_imports,
    run_import,
)
from omnicanal.core.settings import get_settings
from omnicanal.store.engine import Database

TILL = (
    "numero_ticket;magasin;date_heure;ligne;ean;libellé;rayon;marque;qté;prix_unitaire;"
    "carte_fidelite;email;prénom;nom;code_postal;remise\n"
    "T-001;Paris Opéra;23/11/2026 14:05;1;3017620422003;Pâte à tartiner;Épicerie;Nutella;2;"
    "4,99;1234567890;Lea@Example.fr;Léa;Durand;75009;1,00\n"
    "T-001;Paris Opéra;23/11/2026 14:05;2;3228857000852;Pain de mie;Boulangerie;Harrys;1;"
    "2,15;;;;;;\n"
    "T-001;Paris Opéra;23/11/2026 14:05;3;3017620422003;Pâte à tartiner;Épicerie;Nutella;-1;"
    "4,99;;;;;;\n"
    "T-002;Lyon;24/11/2026 09:30:15;1;3560070472796;Café moulu;Épicerie;Carte Noire;3;"
    "1 234,50;;;;;;\n"
)


def write(tmp_path: Path, name: str, content: str, encoding: str = "cp1252") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def events(db: Database) -> list[dict[str, Any]]:
    with db.sessions() as session:
        page = service.list_events(session=session, limit=1000)
    return [e.model_dump() for e in page.items]


def counts(db: Database) -> dict[str, int]:
    with db.sessions() as session:
        return service.stats(session=session).events_by_type


def test_till_receipts_become_orders_and_refunds(db, tmp_path) -> None:
    run = run_import(db=db, kind="till", path=write(tmp_path, "caisse.csv", TILL))
    assert (run.status, run.rows, run.stored, run.already) == ("done", 4, 4, 0)
    logged = {(e["event"], e["anonymous_id"]): e for e in events(db)}
    assert sorted(logged) == [
        ("Order Completed", "till:lyon:T-002"),
        ("Order Completed", "till:paris-opera:T-001"),
        ("Order Refunded", "till:paris-opera:T-001"),
    ]
    sale = logged[("Order Completed", "till:paris-opera:T-001")]["payload"]
    assert sale["timestamp"] == "2026-11-23T13:05:00.000Z"  # 14:05 in Paris
    assert sale["context"] == {
        "channel": "store:paris-opera",
        "traits": {
            "email": "lea@example.fr",
            "card": "1234567890",
            "firstName": "Léa",
            "lastName": "Durand",
            "postalCode": "75009",
        },
    }
    assert sale["properties"] == {
        "order_id": "T-001",
        "products": [
            {
                "sku": "3017620422003",
                "name": "Pâte à tartiner",
                "category": "Épicerie",
                "brand": "Nutella",
                "quantity": 2,
                "price": 4.99,
            },
            {
                "sku": "3228857000852",
                "name": "Pain de mie",
                "category": "Boulangerie",
                "brand": "Harrys",
                "quantity": 1,
                "price": 2.15,
            },
        ],
        "total": 11.13,
        "revenue": 11.13,
        "currency": "EUR",
        "discount": 1.0,
        "store": "paris-opera",
        "fulfilment": "in_store",
    }
    refund = logged[("Order Refunded", "till:paris-opera:T-001")]["payload"]["properties"]
    assert refund["total"] == 4.99
    assert refund["products"][0]["quantity"] == 1
    lyon = logged[("Order Completed", "till:lyon:T-002")]["payload"]
    assert lyon["properties"]["total"] == 3703.5
    assert lyon["timestamp"] == "2026-11-24T08:30:15.000Z"
    assert counts(db) == {"track": 3}
    with db.sessions() as session:
        sources = service.list_sources(session=session)
    assert [(s.name, s.channel, s.id) for s in sources] == [
        ("import-till", "import", run.source_id)
    ]


def test_the_same_file_again_stores_nothing(db, tmp_path) -> None:
    path = write(tmp_path, "caisse.csv", TILL)
    run_import(db=db, kind="till", path=path)
    again = run_import(db=db, kind="till", path=path)
    assert (again.status, again.rows, again.stored, again.already) == ("done", 4, 0, 4)
    # Rows in another order, in another file format: still nothing new.
    lines = TILL.splitlines()
    shuffled = write(tmp_path, "copie.csv", "\n".join([lines[0], *reversed(lines[1:])]), "utf-8")
    third = run_import(db=db, kind="till", path=shuffled)
    assert (third.stored, third.already) == (0, 4)
    assert len(events(db)) == 3
    assert counts(db) == {"track": 3}


def test_click_and_collect_pick_up_names_the_order(db, tmp_path) -> None:
    content = (
        "ticket;magasin;date;ean;qte;prix;fulfilment;commande;devise\n"
        "C9;Lille;2026-11-23T18:00:00+01:00;A1;1;20;click & collect;WEB-77;usd\n"
    )
    run_import(db=db, kind="till", path=write(tmp_path, "cc.csv", content))
    props = events(db)[0]["payload"]["properties"]
    assert (props["fulfilment"], props["order_ref"], props["currency"]) == (
        "click_and_collect",
        "WEB-77",
        "USD",
    )


def nothing_written(db: Database) -> None:
    assert events(db) == []
    assert counts(db) == {}


def failed(db: Database, path: Path, kind: str = "till", **options: Any) -> ImportFailedError:
    with pytest.raises(ImportFailedError) as caught:
        run_import(db=db, kind=kind, path=path, options=ImportOptions(**options))
    nothing_written(db)
    return caught.value


def located(error: ImportFailedError) -> list[tuple[Any, ...]]:
    return [(e["line"], e["column"], e["reason"]) for e in error.errors]


def test_bad_rows_refuse_the_whole_file_and_are_all_reported(db, tmp_path) -> None:
    content = TILL + (
        "T-003;Lyon;32/11/2026 10:00;1;A;Thé;;;1;2,00;;;;;;\n"
        "T-004;Lyon;24/11/2026 10:00;1;B;Thé;;;deux;2,00;;;;;;\n"
        "T-005;Lyon;24/11/2026 10:00;1;C;Thé;;;1;2€50;;;;;;\n"
        "T-006;Lyon;24/11/2026 10:00;1;;Thé;;;1;2,00;;;;;;\n"
        "T-007;Lyon;24/11/2026 10:00;1;D;Thé;;;0;2,00;;;;;;\n"
    )
    error = failed(db, write(tmp_path, "caisse.csv", content))
    assert error.count == 5
    assert located(error) == [
        (6, "datetime", located(error)[0][2]),
        (7, "quantity", "'deux' is not a whole number"),
        (8, "unit_price", "'2€50' is not a number"),
        (9, "sku", "is empty; it is required"),
        (10, "quantity", "is 0: a line sells (positive) or returns (negative) units"),
    ]
    assert located(error)[0][2].startswith("'32/11/2026 10:00' is not a date")
    assert {e["file"] for e in error.errors} == {"caisse.csv"}
    run = list_imports(db=db)[0]
    assert (run.status, run.stored, run.rows, len(run.errors)) == ("failed", 0, 9, 5)
    assert run.id == error.run.id


def test_a_receipt_line_twice_is_a_duplicate_row(db, tmp_path) -> None:
    lines = TILL.splitlines()
    error = failed(db, write(tmp_path, "caisse.csv", "\n".join([*lines, lines[2]]) + "\n"))
    assert located(error) == [
        (6, "line", "receipt T-001 line 2 is already at line 3: a duplicate row")
    ]


def test_identical_lines_without_line_numbers_are_duplicates(db, tmp_path) -> None:
    content = (
        "ticket;magasin;date;ean;qte;prix\nT1;Nice;2026-01-05;A;1;2\nT1;Nice;2026-01-05;A;1;2\n"
    )
    error = failed(db, write(tmp_path, "f.csv", content))
    assert located(error)[0][:2] == (3, "receipt_id")
    assert "repeats line 2 exactly" in located(error)[0][2]


def test_whole_file_problems(db, tmp_path) -> None:
    missing = failed(db, write(tmp_path, "ventes.csv", "ticket;date;libellé\nT;2026-01-01;x\n"))
    assert missing.count == 1
    assert missing.errors[0]["line"] == 1
    assert "missing required column(s) store, sku, quantity, unit_price" in missing.detail
    empty = failed(db, write(tmp_path, "vide.csv", ""))
    assert "the file is empty" in empty.errors[0]["reason"]
    garbage = tmp_path / "bruit.csv"
    garbage.write_bytes(random.Random(5).randbytes(2048) + b"\x00\xff")
    assert "not a text" in failed(db, garbage).errors[0]["reason"]
    mixed = tmp_path / "mixte.csv"
    mixed.write_bytes(
        TILL.encode("utf-8") + "T-9;Nîmes;2026-01-01;1;A;x;;;1;1;;;;;;\n".encode("cp1252")
    )
    wrong = failed(db, mixed)
    assert (wrong.errors[0]["line"], "mixes encodings" in wrong.errors[0]["reason"]) == (6, True)
    assert [r.status for r in list_imports(db=db)] == ["failed"] * 4


def test_unknown_kind_names_the_kinds(db, tmp_path) -> None:
    with pytest.raises(UnknownKindError) as caught:
        run_import(db=db, kind="invoices", path=write(tmp_path, "f.csv", TILL))
    assert "till" in caught.value.detail
    assert "customers" in caught.value.detail


def test_a_receipt_split_far_apart_is_refused(db, tmp_path, monkeypatch) -> None:
    from omnicanal.collect.importers import till

    monkeypatch.setattr(till, "RECEIPT_WINDOW", 2)
    lines = TILL.splitlines()
    content = (
        "\n".join(
            [
                lines[0],
                lines[1],
                lines[4],
                *[f"X{i};Lyon;2026-01-01;1;A;x;;;1;1;;;;;;" for i in range(3)],
                lines[2],
            ]
        )
        + "\n"
    )
    error = failed(db, write(tmp_path, "f.csv", content))
    assert located(error)[0][:2] == (7, "receipt_id")
    assert "keep a receipt's lines together" in located(error)[0][2]


def test_a_timestamp_the_log_refuses_is_a_row_error(db, tmp_path) -> None:
    content = "ticket;magasin;date;ean;qte;prix\nT1;Nice;2099-01-05;A;1;2\n"
    error = failed(db, write(tmp_path, "f.csv", content))
    assert located(error) == [(2, "datetime", "timestamp is more than a day in the future")]


CUSTOMERS = (
    "id_client;email;téléphone;prénom;nom;date_naissance;adresse;code_postal;ville;carte;"
    "optin_email;optin_sms;date_consentement;consent_wording;source\n"
    "C1;Anne@Exemple.fr;06 12 34 56 78;Anne;Martin;12/05/1980;3 rue Oberkampf;75011;Paris;"
    "CARD-1;oui;non;2026-02-01 10:00;v3;newsletter\n"
    ";bob@exemple.fr;;Bob;;;;;;;1;;;;\n"
)


def test_customers_become_identifies_with_consents(db, tmp_path) -> None:
    run = run_import(db=db, kind="customers", path=write(tmp_path, "crm.csv", CUSTOMERS))
    assert (run.rows, run.stored) == (2, 2)
    found = {e["user_id"] or e["anonymous_id"]: e["payload"] for e in events(db)}
    anne = found["C1"]
    assert anne["type"] == "identify"
    assert anne["traits"] == {
        "email": "anne@exemple.fr",
        "phone": "06 12 34 56 78",
        "card": "CARD-1",
        "firstName": "Anne",
        "lastName": "Martin",
        "birthday": "1980-05-12",
        "address": {
            "street": "3 rue Oberkampf",
            "postalCode": "75011",
            "city": "Paris",
            "country": "FR",
        },
        "signupSource": "newsletter",
    }
    assert anne["context"]["consent"] == {
        "wording": "v3",
        "purposes": {"marketing": {"email": True, "sms": False}},
    }
    assert anne["timestamp"] == "2026-02-01T09:00:00.000Z"
    bob = found["customers:email:bob@exemple.fr"]
    assert bob["context"]["consent"]["purposes"] == {"marketing": {"email": True}}
    # A changed record is new; the unchanged one is not stored again.
    changed = CUSTOMERS.replace("Oberkampf", "de la Roquette")
    again = run_import(db=db, kind="customers", path=write(tmp_path, "crm2.csv", changed))
    assert (again.stored, again.already) == (1, 1)
    assert counts(db) == {"identify": 3}


def test_customers_need_an_identifier_and_no_duplicates(db, tmp_path) -> None:
    content = (
        "customer_id;email;first_name\nC1;a@x.fr;A\n;;Sans identifiant\nC1;b@x.fr;B\n"
        ";dup@x.fr;D\n;DUP@x.fr;E\n"
    )
    error = failed(db, write(tmp_path, "crm.csv", content), kind="customers")
    assert located(error) == [
        (3, "customer_id", "give at least one of customer_id, email, phone, card"),
        (4, "customer_id", "customer_id:C1 is already at line 2: a duplicate row"),
        (6, "email", "email:dup@x.fr is already at line 5: a duplicate row"),
    ]


def test_customers_from_xlsx(db, tmp_path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email", "First Name", "Optin Email", "Date création"])
    sheet.append(["zoe@exemple.fr", "Zoé", "yes", "2025-12-31"])
    path = tmp_path / "newsletter.xlsx"
    book.save(path)
    run = run_import(db=db, kind="customers", path=path)
    assert run.stored == 1
    payload = events(db)[0]["payload"]
    assert payload["traits"]["firstName"] == "Zoé"
    assert payload["traits"]["createdAt"] == "2025-12-30T23:00:00.000Z"


def test_till_from_parquet(db, tmp_path) -> None:
    table = pa.table(
        {
            "receipt_id": ["P1", "P1"],
            "store": ["web-store", "web-store"],
            "datetime": pa.array(["2026-05-01T10:00:00Z", "2026-05-01T10:00:00Z"]),
            "sku": ["S1", "S2"],
            "quantity": pa.array([1, 2], pa.int32()),
            "unit_price": pa.array([10.5, 0.1], pa.float64()),
        }
    )
    path = tmp_path / "till.parquet"
    pq.write_table(table, path)
    run = run_import(db=db, kind="till", path=path)
    assert (run.rows, run.stored) == (2, 2)
    assert events(db)[0]["payload"]["properties"]["total"] == 10.7


def test_attendance_calls_and_survey(db, tmp_path) -> None:
    attendance = (
        "évènement;type;date;lieu;email;prénom\n"
        "Atelier couture;atelier;2026-03-14 15:00;Paris Opéra;ines@exemple.fr;Inès\n"
        "Braderie;street;2026-03-15;Lille;;\n"
        "Braderie;street;2026-03-15;Lille;;\n"
    )
    run = run_import(db=db, kind="attendance", path=write(tmp_path, "a.csv", attendance))
    assert run.stored == 3  # two anonymous visitors, told apart by their line
    calls = (
        "id_contact;date;téléphone;motif;resultat;duree\n"
        "K1;2026-03-16 11:00;0612345678;livraison;résolu;185\n"
    )
    run_import(db=db, kind="calls", path=write(tmp_path, "c.csv", calls))
    survey = (
        "response_id;date;kind;note;commentaire;canal;id_client\n"
        "R1;2026-03-17;NPS;9;Très bien;store:paris-opera;C1\n"
        "R2;2026-03-17;csat;4;;web;\n"
    )
    run_import(db=db, kind="survey", path=write(tmp_path, "s.csv", survey))
    by_event: dict[str, list[dict[str, Any]]] = {}
    for e in events(db):
        by_event.setdefault(e["event"], []).append(e)
    workshop = by_event["Event Attended"][0]["payload"]
    assert workshop["context"]["channel"] == "event:workshop"
    assert workshop["properties"] == {
        "event_name": "Atelier couture",
        "event_type": "workshop",
        "location": "Paris Opéra",
    }
    assert by_event["Event Attended"][0]["anonymous_id"].startswith("attendance:atelier-couture:")
    assert by_event["Event Attended"][1]["payload"]["context"]["channel"] == "street"
    call = by_event["Call Centre Contact"][0]
    assert call["anonymous_id"] == "calls:K1"
    assert call["payload"]["context"]["channel"] == "call_centre"
    assert call["payload"]["properties"] == {
        "reason": "livraison",
        "outcome": "résolu",
        "duration_s": 185,
    }
    answers = {e["payload"]["properties"]["kind"]: e for e in by_event["Survey Answered"]}
    assert answers["nps"]["user_id"] == "C1"
    assert answers["nps"]["payload"]["properties"]["channel"] == "store:paris-opera"
    assert answers["csat"]["anonymous_id"] == "survey:R2"
    assert counts(db) == {"track": 6}


def test_survey_scores_kinds_and_channels_are_checked(db, tmp_path) -> None:
    survey = (
        "response_id;date;kind;score;channel\n"
        "R1;2026-03-17;nps;11;web\nR2;2026-03-17;ces;3;web\nR3;2026-03-17;csat;3;fax\n"
        "R3;2026-03-17;csat;3;web\n"
    )
    error = failed(db, write(tmp_path, "s.csv", survey), kind="survey")
    assert [(line, column) for line, column, _ in located(error)] == [
        (2, "score"),
        (3, "kind"),
        (4, "channel"),
        (5, "response_id"),
    ]
    assert "unknown channel 'fax'" in located(error)[2][2]


def test_imported_receipts_feed_the_processor(db, tmp_path) -> None:
    from omnicanal.profiles.processor import Processor

    run_import(db=db, kind="till", path=write(tmp_path, "caisse.csv", TILL))
    Processor(db).drain()
    with db.engine.connect() as conn:
        orders = conn.execute(
            text("SELECT order_key, store, total_eur_cents, refunded_eur_cents FROM orders")
        ).all()
    assert sorted(tuple(o) for o in orders) == [
        ("lyon:T-002", "lyon", 370350, 0),
        ("paris-opera:T-001", "paris-opera", 1113, 499),
    ]


# --- HTTP --------------------------------------------------------------------------------


def test_api_upload_multipart_then_again_then_a_bad_file(client, admin_token, tmp_path) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    files = {"file": ("caisse.csv", TILL.encode("cp1252"), "text/csv")}
    created = client.post("/api/v1/imports/till", files=files, headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["kind"], body["filename"], body["stored"], body["status"]) == (
        "till",
        "caisse.csv",
        4,
        "done",
    )
    again = client.post("/api/v1/imports/till", files=files, headers=auth)
    assert (again.json()["stored"], again.json()["already"]) == (0, 4)
    bad = TILL.replace("4,99", "quatre")
    refused = client.post(
        "/api/v1/imports/till", files={"file": ("bad.csv", bad.encode(), "text/csv")}, headers=auth
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["error_count"] == 2
    assert problem["errors"][0] == {
        "file": "bad.csv",
        "line": 2,
        "column": "unit_price",
        "reason": "'quatre' is not a number",
    }
    listed = client.get("/api/v1/imports", headers=auth).json()
    assert [(r["id"], r["status"]) for r in listed] == [
        (problem["import_id"], "failed"),
        (again.json()["id"], "done"),
        (body["id"], "done"),
    ]
    one = client.get(f"/api/v1/imports/{problem['import_id']}", headers=auth).json()
    assert one["errors"] == problem["errors"]
    assert client.get("/api/v1/imports/999", headers=auth).status_code == 404


def test_api_raw_body_mapping_unknown_kind_and_auth(client, admin_token) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    content = "Nº;Boutique;Quand;Article;Combien;Prix\nZ1;Nice;2026-01-05;A;1;2\n"
    created = client.post(
        "/api/v1/imports/till",
        params={
            "filename": "nice.csv",
            "map": [
                "Nº=receipt_id",
                "Boutique=store",
                "Quand=datetime",
                "Article=sku",
                "Combien=quantity",
            ],
        },
        content=content.encode(),
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["filename"] == "nice.csv"
    unknown = client.post("/api/v1/imports/invoices", content=b"x", headers=auth)
    assert unknown.status_code == 404
    assert "till" in unknown.json()["kinds"]
    assert client.post("/api/v1/imports/till", content=b"x").status_code == 401
    no_file = client.post(
        "/api/v1/imports/till",
        files={"note": (None, "no file here")},
        headers=auth,
    )
    assert no_file.status_code == 400
    kinds = client.get("/api/v1/imports/kinds", headers=auth).json()
    till = next(k for k in kinds if k["name"] == "till")
    receipt = next(c for c in till["columns"] if c["name"] == "receipt_id")
    assert receipt["required"] is True
    assert "numero_ticket" in receipt["aliases"]


def test_api_refuses_a_file_above_the_upload_limit_and_keeps_nothing(
    settings, db, admin_token
) -> None:
    limited = settings.model_copy(
        update={"collect": settings.collect.model_copy(update={"max_import_bytes": 2_000})}
    )
    auth = {"Authorization": f"Bearer {admin_token}", "Content-Type": "text/csv"}
    big = (TILL * 20).encode("cp1252")
    with TestClient(create_app(limited, db)) as client:
        declared = client.post("/api/v1/imports/till", content=big, headers=auth)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
            for start in range(0, len(big), 500):
                yield big[start : start + 500]

        streamed = client.post("/api/v1/imports/till", content=chunks(), headers=auth)
        small = client.post(
            "/api/v1/imports/till?filename=ok.csv", content=TILL.encode("cp1252"), headers=auth
        )
        runs = client.get("/api/v1/imports", headers=auth).json()

    for refused in (declared, streamed):
        assert refused.status_code == 413, refused.text
        problem = refused.json()
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert problem["limit"] == 2_000
        assert problem["errors"][0]["field"] == "(body)"
        assert "MAX_IMPORT_BYTES" in problem["detail"]
    assert small.status_code == 201, small.text
    assert [run["filename"] for run in runs] == ["ok.csv"]  # the refused files left no run


# --- CLI ------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def data(tmp_path, backend, database_url, monkeypatch):
    monkeypatch.setenv("OMNICANAL_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_cli_imports_reports_and_lists(data, tmp_path) -> None:
    path = write(tmp_path, "caisse.csv", TILL)
    done = runner.invoke(cli_app, ["import", "till", str(path), "--data", str(data)])
    assert done.exit_code == 0, done.output
    assert "4 rows, 4 new, 0 already there" in done.output
    again = runner.invoke(cli_app, ["import", "till", str(path), "--json", "--data", str(data)])
    assert again.exit_code == 0
    assert (json.loads(again.output)["stored"], json.loads(again.output)["already"]) == (0, 4)
    bad = write(tmp_path, "mauvais.csv", TILL.replace("23/11/2026 14:05", "hier"))
    refused = runner.invoke(cli_app, ["import", "till", str(bad), "--data", str(data)])
    assert refused.exit_code == 1
    assert "mauvais.csv" in refused.output
    assert "'hier' is not a date" in refused.output
    assert "3 error(s) in mauvais.csv" in refused.output
    assert "nothing was imported" in refused.output
    listed = runner.invoke(cli_app, ["imports", "list", "--json", "--data", str(data)])
    runs = orjson.loads(listed.output)
    assert [r["status"] for r in runs] == ["failed", "done", "done"]
    shown = runner.invoke(cli_app, ["imports", "show", str(runs[0]["id"]), "--data", str(data)])
    assert "'hier' is not a date" in shown.output


def test_cli_map_option_and_usage_errors(data, tmp_path) -> None:
    path = write(
        tmp_path, "f.csv", "Nº;Boutique;Quand;Article;Combien;Prix\nZ1;Nice;2026-01-05;A;1;2\n"
    )
    args = ["import", "till", str(path), "--data", str(data), "--json"]
    mapped = [
        "--map",
        "Nº=receipt_id",
        "--map",
        "Boutique=store",
        "--map",
        "Quand=datetime",
        "--map",
        "Article=sku",
        "--map",
        "Combien=quantity",
    ]
    done = runner.invoke(cli_app, [*args, *mapped])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["stored"] == 1
    unknown = runner.invoke(cli_app, ["import", "factures", str(path), "--data", str(data)])
    assert unknown.exit_code == 2
    assert "No import kind 'factures'" in unknown.output
    bad_map = runner.invoke(cli_app, [*args, "--map", "Boutique"])
    assert bad_map.exit_code == 2
    missing = runner.invoke(cli_app, ["import", "till", str(tmp_path / "absent.csv")])
    assert missing.exit_code == 2


def test_no_two_columns_of_a_kind_share_a_name_or_alias() -> None:
    from omnicanal.collect.importers import list_kinds
    from omnicanal.collect.tabular.columns import header_key
    from omnicanal.profiles import imports as profile_imports

    profile_imports.register()
    for kind in list_kinds():
        keys = [header_key(n) for c in kind.columns for n in (c.name, *c.aliases)]
        assert len(keys) == len(set(keys)), kind.name  # no alias twice, none the fold of a name
    assert {k.name for k in list_kinds()} >= {
        "till",
        "customers",
        "attendance",
        "calls",
        "survey",
        "catalogue",
        "stock",
        "costs",
    }


def test_interleaved_receipts_are_grouped_and_checked(db, tmp_path) -> None:
    content = (
        "ticket;magasin;date;ean;qte;prix;remise;devise\n"
        "A;Nice;2026-01-05 10:00;X;1;10;;\n"
        "B;Nice;2026-01-05 10:01;Y;1;5;;\n"
        "A;Nice;2026-01-05 10:00;Z;2;1;0,50;\n"
        "B;Nice;2026-01-05 10:01;W;1;5;;\n"
    )
    run_import(db=db, kind="till", path=write(tmp_path, "f.csv", content))
    sales = {e["payload"]["properties"]["order_id"]: e["payload"]["properties"] for e in events(db)}
    assert [p["sku"] for p in sales["A"]["products"]] == ["X", "Z"]
    assert (sales["A"]["total"], sales["A"]["discount"]) == (11.5, 0.5)
    assert [p["sku"] for p in sales["B"]["products"]] == ["Y", "W"]
    mixed = content.replace(
        "B;Nice;2026-01-05 10:01;W;1;5;;", "B;Nice;2026-01-05 10:01;W;1;5;1;USD"
    )
    mixed = mixed.replace("A;Nice;2026-01-05 10:00;X;1;10;;", "A;Nice;2026-01-05 10:00;X;1;10;2;")
    with pytest.raises(ImportFailedError) as caught:
        run_import(db=db, kind="till", path=write(tmp_path, "g.csv", mixed))
    assert [(e["line"], e["column"]) for e in caught.value.errors] == [
        (4, "discount"),
        (5, "currency"),
    ]
