"""The catalogue import: products upserted by sku, each price change kept.

Prices are stored in euros; `write_catalogue` also serves the catalogue API.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection

from omnicanal.collect.importers.registry import ImportOptions, LoadResult, currency_of
from omnicanal.collect.importers.runs import finish_run
from omnicanal.collect.tabular.columns import B, C, Column, T
from omnicanal.collect.tabular.errors import ErrorLog
from omnicanal.collect.tabular.reader import TabularFile
from omnicanal.core.clock import utcnow
from omnicanal.profiles.imports.common import existing, ms, table_of, to_euro_cents, upper
from omnicanal.profiles.models import PriceChange, Product
from omnicanal.store.engine import Database

CATALOGUE_COLUMNS = (
    Column("sku", T, True, ("ean", "reference", "ref", "code_article")),
    Column("name", T, True, ("nom", "libelle", "designation", "product_name", "produit")),
    Column("category", T, False, ("categorie", "rayon")),
    Column("brand", T, False, ("marque",)),
    Column("price", C, True, ("prix", "prix_ttc", "unit_price", "prix_unitaire")),
    Column("currency", T, False, ("devise",)),
    Column("image_url", T, False, ("image", "url_image", "photo")),
    Column("url", T, False, ("lien", "product_url", "url_produit")),
    Column("active", B, False, ("actif", "enabled", "en_vente")),
)
_PRODUCT_FIELDS = ("name", "category", "brand", "price_cents", "image_url", "url", "active")


def _catalogue_rows(
    rows: Iterable[tuple[int, dict[str, Any]]], rates: dict[str, Decimal], errors: ErrorLog
) -> dict[str, dict[str, Any]]:
    products: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    for line, values in rows:
        sku = values["sku"]
        if sku in lines:
            errors.add(line, "sku", f"{sku} is already at line {lines[sku]}: a duplicate row")
            continue
        lines[sku] = line
        currency = currency_of(values, line, errors)
        if currency is None:
            continue
        price = to_euro_cents(values["price"], currency, rates, line, "price", errors)
        if price is None:
            continue
        if price < 0:
            errors.add(line, "price", "is negative")
            continue
        products[sku] = {
            "sku": sku[:120],
            "name": values["name"][:255],
            "category": values.get("category"),
            "brand": values.get("brand"),
            "price_cents": price,
            "currency": "EUR",
            "image_url": values.get("image_url"),
            "url": values.get("url"),
            "active": True if values.get("active") is None else values["active"],
        }
    return products


def write_catalogue(conn: Connection, products: dict[str, dict[str, Any]], now: int) -> int:
    """Upsert products by sku, appending price changes; return how many were new or changed."""
    table = table_of(Product)
    known = existing(conn, table, list(products), "sku")
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for sku, values in products.items():
        old = known.get(sku)
        if old is not None and all(old[f] == values[f] for f in _PRODUCT_FIELDS):
            continue
        (changed if old else new).append({**values, "updated_ms": now, "b_sku": sku})
        if old is None or old["price_cents"] != values["price_cents"]:
            previous = None if old is None else old["price_cents"]
            history.append(
                {
                    "sku": sku,
                    "price_cents": values["price_cents"],
                    "previous_cents": previous,
                    "changed_ms": now,
                }
            )
    if new:
        conn.execute(insert(table), [{k: v for k, v in r.items() if k != "b_sku"} for r in new])
    if changed:
        fields: dict[str, Any] = {f: bindparam(f) for f in (*_PRODUCT_FIELDS, "updated_ms")}
        conn.execute(update(table).where(table.c.sku == bindparam("b_sku")).values(fields), changed)
    if history:
        conn.execute(insert(table_of(PriceChange)), history)
    return len(new) + len(changed)


def load_catalogue(
    *, db: Database, table: TabularFile, run_id: int, options: ImportOptions
) -> LoadResult:
    """Upsert products by sku, keeping each price change."""
    products = _catalogue_rows(table.rows(), upper(options.rates), table.errors)
    result = LoadResult(rows=table.data_rows, stored=0)
    if table.errors:
        return result
    with db.engine.begin() as conn:
        result.stored = write_catalogue(conn, products, ms(utcnow()))
        finish_run(conn, run_id, result)
    return result
