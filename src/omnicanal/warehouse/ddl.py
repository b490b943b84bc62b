"""The warehouse file's tables: those of `schema.py`, and the sync's own bookkeeping.

Columns carry no NOT NULL or key constraints: the tables must read back exactly as
`SCHEMAS` declares them (every column nullable), and loading is faster without
indexes. The sync keeps keys unique itself (it replaces the rows of changed keys).

The bookkeeping tables start with `_` and are not part of what analytics receive:
`_sync_state` (one row: the watermarks) and `_sync_history` (one row per sync). They
live in the same file and change in the same transaction as the data, so the file
always holds data and watermarks that agree.
"""

from __future__ import annotations

import hashlib
from typing import Final

import ibis.expr.schema as sch

from omnicanal.warehouse.schema import SCHEMAS

STATE: Final = "_sync_state"
HISTORY: Final = "_sync_history"

_TYPES: Final = {
    "int64": "BIGINT",
    "int32": "INTEGER",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "boolean": "BOOLEAN",
}

# Key columns of each table: the sync replaces rows by these.
KEYS: Final[dict[str, tuple[str, ...]]] = {
    "events": ("event_id",),
    "orders": ("order_id",),
    "order_lines": ("line_id",),
    "refunds": ("refund_id",),
    "profiles": ("profile_id",),
    "consents": ("consent_id",),
    "feedback": ("event_id",),
    "costs": ("cost_id",),
    "products": ("sku",),
    "stock": ("sku", "location"),
    "sources": ("source_id",),
}

# The watermarks, in `_sync_state`; all start at 0. `event_id` covers events and the
# rows derived from them (refunds, consents, answers); `consent_id` consents recorded
# without an event.
WATERMARKS: Final = ("event_id", "consent_id", "tombstone_id")


def duckdb_type(table: str, column: str, dtype: object) -> str:
    """Return the DuckDB type of a column of `SCHEMAS`."""
    found = _TYPES.get(str(dtype))
    if found is None:
        raise ValueError(f"column {table}.{column}: type {dtype} has no DuckDB mapping")
    return found


def columns(table: str) -> list[str]:
    """Return a warehouse table's columns in their declared order."""
    return list(SCHEMAS[table].names)


def create_table(table: str, name: str | None = None, *, temporary: bool = False) -> str:
    """Return the CREATE TABLE of a warehouse table (or of a copy under another name)."""
    schema: sch.Schema = SCHEMAS[table]
    body = ", ".join(
        f"{column} {duckdb_type(table, column, dtype)}" for column, dtype in schema.items()
    )
    kind = "TEMP TABLE" if temporary else "TABLE IF NOT EXISTS"
    prefix = "CREATE OR REPLACE " if temporary else "CREATE "
    return f"{prefix}{kind} {name or table} ({body})"


def bookkeeping() -> list[str]:
    """Return the CREATE TABLE statements of the sync's own tables."""
    marks = ", ".join(f"{m} BIGINT NOT NULL DEFAULT 0" for m in WATERMARKS)
    return [
        f"CREATE TABLE IF NOT EXISTS {STATE} (schema_fingerprint VARCHAR NOT NULL, {marks}, "
        # When the last sync started (ms since the epoch, this machine's clock): the next
        # one re-reads rows the store stamped since then, minus the overlap window.
        "started_ms BIGINT, checkpoint BIGINT NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS {HISTORY} (started TIMESTAMP NOT NULL, "
        "seconds DOUBLE NOT NULL, full_rebuild BOOLEAN NOT NULL, checkpoint BIGINT NOT NULL, "
        "event_id BIGINT NOT NULL, written BIGINT NOT NULL, deleted BIGINT NOT NULL, "
        "tables VARCHAR NOT NULL)",
    ]


def fingerprint() -> str:
    """Return a digest of `SCHEMAS`: a file built for other tables must be rebuilt."""
    text = ";".join(
        f"{table}:" + ",".join(f"{c} {t}" for c, t in schema.items())
        for table, schema in SCHEMAS.items()
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]
