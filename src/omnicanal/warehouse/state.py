"""The sync's bookkeeping in the warehouse file: watermarks, history, and status.

Watermarks say how far the warehouse has read each feed of the store: the event
log's sequence (the processor's checkpoint), the ids of append-only tables, the
tombstones, and when the last sync started (changed rows are read again from then,
minus the overlap window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import duckdb
import orjson

from omnicanal.warehouse import ddl
from omnicanal.warehouse.schema import SCHEMAS

HISTORY_KEPT: Final = 5_000


@dataclass(frozen=True)
class State:
    """The `_sync_state` row."""

    fingerprint: str
    watermarks: dict[str, int]
    started_ms: int | None  # start of the last sync, None before the first
    checkpoint: int  # the store's processor checkpoint the last sync read up to


def read_state(con: duckdb.DuckDBPyConnection) -> State:
    """Return the watermarks of the last committed sync."""
    marks = ", ".join(ddl.WATERMARKS)
    row = con.execute(
        f"SELECT schema_fingerprint, started_ms, checkpoint, {marks} FROM {ddl.STATE}"
    ).fetchone()
    assert row is not None, "create_tables writes the state row"
    return State(
        fingerprint=str(row[0]),
        watermarks={m: int(v) for m, v in zip(ddl.WATERMARKS, row[3:], strict=True)},
        started_ms=None if row[1] is None else int(row[1]),
        checkpoint=int(row[2]),
    )


def save_state(con: duckdb.DuckDBPyConnection, state: State) -> None:
    """Write the watermarks (inside the sync's transaction)."""
    marks = ", ".join(f"{m} = ${m}" for m in ddl.WATERMARKS)
    con.execute(
        f"UPDATE {ddl.STATE} SET schema_fingerprint = $fp, started_ms = $started, "
        f"checkpoint = $checkpoint, {marks}",
        {
            "fp": state.fingerprint,
            "started": state.started_ms,
            "checkpoint": state.checkpoint,
            **state.watermarks,
        },
    )


@dataclass(frozen=True)
class SyncRecord:
    """One past sync, as `_sync_history` keeps it."""

    started: datetime  # UTC, naive
    seconds: float
    full: bool
    checkpoint: int
    event_id: int
    written: int
    deleted: int
    tables: dict[str, dict[str, int]] = field(default_factory=dict)


def record(con: duckdb.DuckDBPyConnection, sync: SyncRecord) -> None:
    """Append a sync to the history, keeping the latest HISTORY_KEPT."""
    con.execute(
        f"INSERT INTO {ddl.HISTORY} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            sync.started,
            sync.seconds,
            sync.full,
            sync.checkpoint,
            sync.event_id,
            sync.written,
            sync.deleted,
            orjson.dumps(sync.tables).decode(),
        ],
    )
    con.execute(
        f"DELETE FROM {ddl.HISTORY} WHERE started < (SELECT min(started) FROM "
        f"(SELECT started FROM {ddl.HISTORY} ORDER BY started DESC LIMIT {HISTORY_KEPT}))"
    )


def last_sync(con: duckdb.DuckDBPyConnection) -> SyncRecord | None:
    """Return the latest sync, None if there was none."""
    row = con.execute(
        "SELECT started, seconds, full_rebuild, checkpoint, event_id, written, deleted, tables "
        f"FROM {ddl.HISTORY} ORDER BY started DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    started, seconds, full, checkpoint, event_id, written, deleted, tables = row
    return SyncRecord(
        started=started,
        seconds=float(seconds),
        full=bool(full),
        checkpoint=int(checkpoint),
        event_id=int(event_id),
        written=int(written),
        deleted=int(deleted),
        tables=orjson.loads(tables),
    )


def row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Return the number of rows of every warehouse table."""
    counts: dict[str, int] = {}
    for table in SCHEMAS:
        found = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        counts[table] = int(found[0]) if found else 0
    return counts


@dataclass(frozen=True)
class WarehouseStatus:
    """Where the warehouse stands against the store."""

    path: str
    exists: bool
    size_bytes: int
    watermarks: dict[str, int]
    rows: dict[str, int]
    store_checkpoint: int  # last event the store's processor has processed
    lag_events: int  # events processed in the store and not yet in the warehouse
    last_sync: SyncRecord | None
    syncs: int  # syncs remembered in the history

    def to_dict(self) -> dict[str, Any]:
        """Return plain data for JSON."""
        last = self.last_sync
        return {
            "path": self.path,
            "exists": self.exists,
            "size_bytes": self.size_bytes,
            "watermarks": self.watermarks,
            "rows": self.rows,
            "store_checkpoint": self.store_checkpoint,
            "lag_events": self.lag_events,
            "syncs": self.syncs,
            "last_sync": None
            if last is None
            else {
                "started": last.started.isoformat() + "Z",
                "seconds": round(last.seconds, 3),
                "full": last.full,
                "checkpoint": last.checkpoint,
                "event_id": last.event_id,
                "written": last.written,
                "deleted": last.deleted,
                "tables": last.tables,
            },
        }


def history_size(con: duckdb.DuckDBPyConnection) -> int:
    """Return how many syncs the history holds."""
    found = con.execute(f"SELECT count(*) FROM {ddl.HISTORY}").fetchone()
    return int(found[0]) if found else 0
