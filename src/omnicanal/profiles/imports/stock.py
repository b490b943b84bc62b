"""The stock import: levels upserted by (sku, location), each quantity change kept.

A row older than the level known is history already seen and is skipped;
`stock_location`, `StockLevelRow` and `write_stock` also serve the catalogue API.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, insert, update
from sqlalchemy.engine import Connection

from omnicanal.collect.importers.messages import slug
from omnicanal.collect.importers.registry import ImportOptions, LoadResult
from omnicanal.collect.importers.runs import finish_run
from omnicanal.collect.tabular.columns import Column, D, N, T
from omnicanal.collect.tabular.errors import ErrorLog
from omnicanal.collect.tabular.reader import TabularFile
from omnicanal.core.clock import utcnow
from omnicanal.profiles.imports.common import existing, ms, table_of
from omnicanal.profiles.models import StockChange, StockLevel
from omnicanal.store.engine import Database

STOCK_COLUMNS = (
    Column("sku", T, True, ("ean", "reference", "ref", "code_article")),
    Column("location", T, True, ("lieu", "magasin", "store", "entrepot", "emplacement")),
    Column("quantity", N, True, ("qte", "quantite", "stock", "qty")),
    Column("datetime", D, False, ("date", "date_heure", "timestamp")),
)
_ONLINE = frozenset({"online", "web", "en-ligne", "e-shop", "eshop", "ecommerce", "internet"})


def stock_location(value: str) -> str | None:
    """Return `online` or `store:<id>` for a location as files give it, or None."""
    text = value.strip()
    if text.lower().startswith("store:"):
        text = text[6:]
    name = slug(text)
    if not name:
        return None
    return "online" if name in _ONLINE else f"store:{name}"


@dataclass(slots=True)
class StockLevelRow:
    """A sku's quantity at a location and time (epoch ms); `line` locates it in its input."""

    sku: str
    location: str
    quantity: int
    ms: int
    line: int


def _stock_rows(
    rows: Iterable[tuple[int, dict[str, Any]]], now: int, errors: ErrorLog
) -> list[StockLevelRow]:
    levels: list[StockLevelRow] = []
    seen: dict[tuple[str, str, int], int] = {}
    for line, values in rows:
        location = stock_location(values["location"])
        if location is None:
            errors.add(line, "location", f"{values['location'][:30]!r} names no store or online")
            continue
        when = ms(values["datetime"]) if values.get("datetime") else now
        key = (values["sku"], location, when)
        if key in seen:
            errors.add(
                line,
                "sku",
                f"{key[0]} at {location} is already at line {seen[key]}: a duplicate row",
            )
            continue
        seen[key] = line
        levels.append(StockLevelRow(values["sku"][:120], location, values["quantity"], when, line))
    return sorted(levels, key=lambda level: (level.sku, level.location, level.ms))


def write_stock(conn: Connection, levels: list[StockLevelRow]) -> int:
    """Upsert levels sorted by (sku, location, ms), keeping each change; return how many."""
    table = table_of(StockLevel)
    keys = sorted({(lv.sku, lv.location) for lv in levels})
    known = {
        k: (v["quantity"], v["updated_ms"])
        for k, v in existing(conn, table, keys, "sku", "location").items()
    }
    current = dict(known)
    history, stored = [], 0
    for level in levels:
        key = (level.sku, level.location)
        before = current.get(key)
        if before is not None and (before[1] >= level.ms or before[0] == level.quantity):
            if before[0] == level.quantity and level.ms > before[1]:
                current[key] = (before[0], level.ms)
            continue  # older than the level known, or no change
        history.append(
            {
                "sku": level.sku,
                "location": level.location,
                "quantity": level.quantity,
                "previous": None if before is None else before[0],
                "changed_ms": level.ms,
            }
        )
        current[key] = (level.quantity, level.ms)
        stored += 1
    _save_levels(conn, table, known, current)
    if history:
        conn.execute(insert(table_of(StockChange)), history)
    return stored


def _save_levels(
    conn: Connection,
    table: Table,
    known: dict[tuple[str, str], tuple[int, int]],
    current: dict[tuple[str, str], tuple[int, int]],
) -> None:
    new = [
        {"sku": k[0], "location": k[1], "quantity": q, "updated_ms": ms}
        for k, (q, ms) in current.items()
        if k not in known
    ]
    changed = [
        {"b_sku": k[0], "b_location": k[1], "quantity": q, "updated_ms": ms}
        for k, (q, ms) in current.items()
        if k in known and known[k] != (q, ms)
    ]
    if new:
        conn.execute(insert(table), new)
    if changed:
        where = and_(table.c.sku == bindparam("b_sku"), table.c.location == bindparam("b_location"))
        values: dict[str, Any] = {
            "quantity": bindparam("quantity"),
            "updated_ms": bindparam("updated_ms"),
        }
        conn.execute(update(table).where(where).values(values), changed)


def load_stock(
    *, db: Database, table: TabularFile, run_id: int, options: ImportOptions
) -> LoadResult:
    """Upsert stock levels by (sku, location), keeping each quantity change."""
    levels = _stock_rows(table.rows(), ms(utcnow()), table.errors)
    result = LoadResult(rows=table.data_rows, stored=0)
    if table.errors:
        return result
    with db.engine.begin() as conn:
        result.stored = write_stock(conn, levels)
        finish_run(conn, run_id, result)
    return result
