"""What the catalogue, stock and costs importers share: time, tables, amounts, lookups."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Table, select, tuple_
from sqlalchemy.engine import Connection

from omnicanal.collect.tabular.errors import ErrorLog

_IN = 500  # keys per lookup query


def ms(value: datetime) -> int:
    """Return a datetime as epoch milliseconds, the unit of every `*_ms` column."""
    return int(value.timestamp() * 1000)


def table_of(model: Any) -> Table:
    """Return a model's Core table, typed, for bulk inserts and updates."""
    table: Table = model.__table__
    return table


def upper(rates: dict[str, Decimal]) -> dict[str, Decimal]:
    """Return the rates with upper-case currency codes, as rows' currencies are."""
    return {code.upper(): Decimal(rate) for code, rate in rates.items()}


def to_euro_cents(
    cents: int, currency: str, rates: dict[str, Decimal], line: int, column: str, errors: ErrorLog
) -> int | None:
    """Convert an amount to euro cents with the given rates; None after recording an error."""
    if currency == "EUR":
        return cents
    rate = rates.get(currency)
    if rate is None:
        errors.add(
            line,
            "currency",
            f"amounts in {currency} need a rate to euros (--rate {currency}=0.92, "
            f"euros for one {currency}); only EUR is read without one",
        )
        return None
    return int((Decimal(cents) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def existing(conn: Connection, table: Table, keys: list[Any], *columns: str) -> dict[Any, Any]:
    """Return stored rows by key, looked up a few hundred keys at a time."""
    found: dict[Any, Any] = {}
    key_columns = [table.c[name] for name in columns]
    for start in range(0, len(keys), _IN):
        part = keys[start : start + _IN]
        where = (
            key_columns[0].in_(part) if len(key_columns) == 1 else tuple_(*key_columns).in_(part)
        )
        for row in conn.execute(select(table).where(where)).mappings():
            key = row[columns[0]] if len(columns) == 1 else tuple(row[c] for c in columns)
            found[key] = dict(row)
    return found
