"""What every part of the processor shares: the batch result, SQL building, raw values, memos."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import Connection, Row, TextClause, bindparam, text

MEMO_SIZE = 200_000


@dataclass(slots=True)
class BatchResult:
    """What one batch did."""

    events: int
    last_event_id: int
    profiles_created: int
    lag_ms: list[int]


def insert_statement(table: str, columns: str, suffix: str = "") -> TextClause:
    """An INSERT of named parameters, one per column of a space-separated list."""
    names = columns.split()
    values = ", ".join(f":{name}" for name in names)
    return text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values}){suffix}")


def listing(sql: str, *lists: str) -> TextClause:
    """A statement whose parameters `lists` each take a list, bound to an `IN :name`."""
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in lists))


# Values bound to one `IN :name` at a time: far below SQLite's and PostgreSQL's limits.
PER_QUERY = 500


def select_in(
    conn: Connection, statement: TextClause, values: Sequence[Any], name: str = "ids"
) -> Iterator[Row[Any]]:
    """The rows of a `listing` statement for every value, PER_QUERY values at a time."""
    for start in range(0, len(values), PER_QUERY):
        yield from conn.execute(statement, {name: values[start : start + PER_QUERY]})


class Memo:
    """A bounded memo of what a message's raw values derive to (cleared when full)."""

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        found = self.data.get(key, _MISSING)
        if found is _MISSING:
            if len(self.data) >= MEMO_SIZE:
                self.data.clear()
            found = self.data[key] = compute()
        return found


_MISSING = object()


def raw_id(value: Any) -> Any:
    """A hashable stand-in for a raw JSON value (containers serialised)."""
    if isinstance(value, dict | list):
        return orjson.dumps(value)
    return value


def clock_ms() -> int:
    return int(time.time() * 1000)


def to_cents(value: Any) -> int | None:
    """Return a money amount in integer cents, or None when it is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value).replace(",", ".").replace(" ", ""))
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    return int((amount * 100).to_integral_value())


def to_quantity(value: Any) -> int:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else 1
    except (TypeError, ValueError):
        return 1


def first_value(traits: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = traits.get(name)
        if value not in (None, ""):
            return value
    return None


def text_value(value: Any, limit: int = 255) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)[:limit] or None
