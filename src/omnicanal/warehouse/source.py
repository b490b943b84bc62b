"""Reading the store for the warehouse: one consistent snapshot, streamed in Arrow chunks.

Every query of a sync runs in one read transaction, so the processor's checkpoint,
the events up to it, the profiles and orders they touched and the tombstones all
describe the same committed state:

* SQLite (WAL): a deferred `BEGIN` on a connection of the sync's own. The engine's
  transactions start with `BEGIN IMMEDIATE`, which would take the write lock and stall
  collection and the processor for the length of the sync; a deferred read takes no
  lock and still sees one snapshot from its first read to its end.
* PostgreSQL: a `REPEATABLE READ READ ONLY` transaction, rows streamed through
  server-side (named) cursors.

Rows go through the driver's own cursors (`fetchmany`) straight into Arrow record
batches, with no ORM and no SQLAlchemy row objects: the warehouse loads them with
DuckDB in bulk. Booleans are read as integers and dates as text, the one form both
databases give alike; the warehouse casts them back.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

import pyarrow as pa

from omnicanal.store.engine import Database

CHUNK_ROWS: Final = 100_000
SQLITE_CACHE_KIB: Final = -16_384  # 16 MiB of SQLite page cache for the sync's reads
LOWEST: Final = -(2**63)  # `updated_ms >= LOWEST`: every row
# The processor's checkpoint row (omnicanal.profiles.processor.MAIN); profile_event rows
# up to its last_event_id are committed with it.
PROCESSOR: Final = "main"

_INT: Final = pa.int64()
_TEXT: Final = pa.string()
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_cursor_names = itertools.count()


@dataclass(frozen=True)
class Query:
    """A SELECT on the store and the Arrow type of each column it returns."""

    sql: str
    columns: tuple[tuple[str, pa.DataType], ...]

    @property
    def schema(self) -> pa.Schema:
        """Return the Arrow schema of the rows."""
        return pa.schema(list(self.columns))


def _q(sql: str, columns: str) -> Query:
    """A query and its columns, given as space-separated `name:int` or `name:text`."""
    typed = tuple(
        (name, _INT if kind == "int" else _TEXT)
        for name, kind in (c.split(":") for c in columns.split())
    )
    return Query(" ".join(sql.split()), typed)


EVENTS = _q(
    "SELECT event_id, profile_id, source_id, timestamp_ms, type, event, channel, media_class, "
    "CAST(online AS INTEGER), campaign, order_id, revenue_cents FROM profile_event "
    "WHERE event_id > :after AND event_id <= :upto ORDER BY event_id",
    "event_id:int profile_id:int source_id:int timestamp_ms:int type:text event:text "
    "channel:text media_class:text online:int campaign:text order_id:int "
    "revenue_cents:int",
)
_PROFILE_COLUMNS = (
    "SELECT id, merged_into, created_ms, first_seen_ms, last_seen_ms, event_count, "
    "CASE WHEN email IS NULL OR email = '' THEN 0 ELSE 1 END, "
    "CASE WHEN phone IS NULL OR phone = '' THEN 0 ELSE 1 END, "
    "CASE WHEN card IS NULL OR card = '' THEN 0 ELSE 1 END, postcode, city FROM profile "
)
_PROFILE_TYPES = (
    "profile_id:int merged_into:int created_ms:int first_seen_ms:int last_seen_ms:int "
    "event_count:int has_email:int has_phone:int has_card:int postcode:text city:text"
)
PROFILES = _q(_PROFILE_COLUMNS + "WHERE updated_ms >= :since", _PROFILE_TYPES)
ORDERS = _q(
    "SELECT id, profile_id, source_id, event_id, order_key, placed_ms, channel, store, "
    "fulfilment, status, currency, total_eur_cents, discount_eur_cents, shipping_eur_cents, "
    "tax_eur_cents, refunded_eur_cents, coupon, campaign FROM orders WHERE updated_ms >= :since",
    "order_id:int profile_id:int source_id:int event_id:int order_key:text placed_ms:int "
    "channel:text store:text fulfilment:text status:text currency:text total_cents:int "
    "discount_cents:int shipping_cents:int tax_cents:int refunded_cents:int coupon:text "
    "campaign:text",
)
ORDER_LINES = _q(
    "SELECT l.id, l.order_id, l.sku, l.product_id, l.name, l.category, l.brand, l.quantity, "
    "l.unit_price_eur_cents, l.returned_quantity FROM order_line l "
    "JOIN orders o ON o.id = l.order_id WHERE o.updated_ms >= :since",
    "line_id:int order_id:int sku:text product_id:text name:text category:text brand:text "
    "quantity:int unit_price_cents:int returned_quantity:int",
)
# Rows the processor derives from events commit with its checkpoint, like the events:
# they are read by the same event range, whatever their own ids (SQLite may give a new
# row the id of an erased one). Consents recorded without an event are read by id.
_BY_EVENT = "event_id > :after AND event_id <= :upto"
REFUNDS = _q(
    "SELECT id, order_id, profile_id, refunded_ms, channel, amount_eur_cents FROM order_refund "
    f"WHERE {_BY_EVENT} ORDER BY event_id",
    "refund_id:int order_id:int profile_id:int refunded_ms:int channel:text amount_cents:int",
)
CONSENTS = _q(
    "SELECT id, profile_id, purpose, channel, CAST(granted AS INTEGER), recorded_ms, event_id "
    f"FROM consent WHERE ({_BY_EVENT}) OR (event_id IS NULL AND id > :after_id) ORDER BY id",
    "consent_id:int profile_id:int purpose:text channel:text granted:int recorded_ms:int "
    "event_id:int",
)
FEEDBACK = _q(
    "SELECT event_id, profile_id, kind, score, channel, answered_ms FROM feedback "
    f"WHERE {_BY_EVENT} ORDER BY event_id",
    "event_id:int profile_id:int kind:text score:int channel:text answered_ms:int",
)
COSTS = _q(
    "SELECT id, CAST(day AS VARCHAR(10)), channel, media_class, campaign, kind, "
    "amount_eur_cents, impressions, clicks FROM cost",
    "cost_id:int day:text channel:text media_class:text campaign:text kind:text "
    "amount_cents:int impressions:int clicks:int",
)
PRODUCTS = _q(
    "SELECT sku, name, category, brand, price_cents, currency, CAST(active AS INTEGER) "
    "FROM product",
    "sku:text name:text category:text brand:text price_cents:int currency:text active:int",
)
STOCK = _q(
    "SELECT sku, location, quantity, updated_ms FROM stock_level",
    "sku:text location:text quantity:int updated_ms:int",
)
SOURCES = _q(
    "SELECT id, name, channel FROM collect_source",
    "source_id:int name:text channel:text",
)
TOMBSTONES = _q(
    "SELECT id, kind, key FROM store_tombstone WHERE id > :after ORDER BY id",
    "id:int kind:text key:int",
)


def profiles_by_id(count: int) -> Query:
    """The profiles query for `count` ids given as parameters id0, id1..."""
    marks = ", ".join(f":id{i}" for i in range(count))
    return _q(_PROFILE_COLUMNS + f"WHERE id IN ({marks})", _PROFILE_TYPES)


class Snapshot:
    """One read transaction on the store."""

    def __init__(self, dbapi: Any, dialect: str, chunk_rows: int) -> None:
        self._dbapi = dbapi
        self.dialect = dialect
        self.chunk_rows = chunk_rows
        self._open: list[Any] = []  # cursors of batches not read to the end

    def close(self) -> None:
        """Close the cursors of batches left unfinished (a sync that failed half-way)."""
        while self._open:
            self._open.pop().close()

    def _sql(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql
        return _NAMED.sub(r"%(\1)s", sql)

    def row(self, sql: str, params: dict[str, Any] | None = None) -> tuple[Any, ...]:
        """Return the first row, empty when there is none."""
        cursor = self._dbapi.cursor()
        try:
            cursor.execute(self._sql(sql), params or {})
            found = cursor.fetchone()
        finally:
            cursor.close()
        return tuple(found) if found is not None else ()

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        """Return the first column of the first row, None when there is none."""
        found = self.row(sql, params)
        return found[0] if found else None

    def batches(self, query: Query, params: dict[str, Any] | None = None) -> Iterator[pa.Table]:
        """Yield the query's rows as Arrow tables of at most `chunk_rows` rows."""
        if self.dialect == "postgresql":  # a server-side cursor: rows come as we fetch
            cursor = self._dbapi.cursor(name=f"warehouse_{next(_cursor_names)}")
            cursor.itersize = self.chunk_rows
        else:
            cursor = self._dbapi.cursor()
        self._open.append(cursor)
        try:
            cursor.execute(self._sql(query.sql), params or {})
            while rows := cursor.fetchmany(self.chunk_rows):
                yield to_arrow(rows, query)
        finally:
            if cursor in self._open:  # not already closed with the snapshot
                self._open.remove(cursor)
                cursor.close()

    def table(self, query: Query, params: dict[str, Any] | None = None) -> pa.Table:
        """Return all the query's rows as one Arrow table."""
        parts = list(self.batches(query, params))
        if not parts:
            return to_arrow([], query)
        return pa.concat_tables(parts)


def to_arrow(rows: Sequence[Sequence[Any]], query: Query) -> pa.Table:
    """Turn driver rows into an Arrow table of the query's columns."""
    # Column by column with itemgetter: zip(*rows) over a large chunk is several times slower.
    arrays = [
        pa.array(list(map(itemgetter(i), rows)), type=kind)
        for i, (_name, kind) in enumerate(query.columns)
    ]
    return pa.Table.from_arrays(arrays, schema=query.schema)


@contextmanager
def _sqlite_reader(database: Database) -> Iterator[Any]:
    """A connection of the sync's own to the SQLite file, with a small page cache.

    Not one of the pool's: a scan of the whole event log would fill a pooled
    connection's large cache (the processor's hot index pages) with pages read once.
    """
    path = database.engine.url.database
    if not path or path == ":memory:":
        raw = database.engine.raw_connection()
        try:
            yield raw.driver_connection
        finally:
            raw.close()
        return
    dbapi = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        dbapi.execute(f"PRAGMA cache_size={SQLITE_CACHE_KIB}")
        dbapi.execute("PRAGMA query_only=ON")
        yield dbapi
    finally:
        dbapi.close()


@contextmanager
def snapshot(database: Database, *, chunk_rows: int = CHUNK_ROWS) -> Iterator[Snapshot]:
    """Yield a consistent read-only view of the store; nothing is written or locked."""
    if database.dialect == "sqlite":
        with _sqlite_reader(database) as dbapi:
            dbapi.execute("BEGIN")  # deferred: the snapshot starts at the first read
            snap = Snapshot(dbapi, "sqlite", chunk_rows)
            try:
                yield snap
            finally:
                snap.close()
                dbapi.execute("ROLLBACK")
        return
    with database.engine.connect() as conn:
        reading = conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        with reading.begin() as transaction:
            snap = Snapshot(reading.connection.driver_connection, "postgresql", chunk_rows)
            try:
                yield snap
            finally:
                snap.close()
            transaction.rollback()
