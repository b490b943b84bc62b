"""The steps of one sync, between one snapshot of the store and one DuckDB transaction.

See `omnicanal.warehouse.sync` for the order and the reasons. `Run.all` does every
step and returns the new watermarks; `Run.result` says what was written.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from omnicanal.core.settings import Settings
from omnicanal.store.tombstones import PROFILE
from omnicanal.warehouse import ddl, source
from omnicanal.warehouse.load import ROW_TOMBSTONES, Loader
from omnicanal.warehouse.schema import SCHEMAS
from omnicanal.warehouse.source import Snapshot
from omnicanal.warehouse.state import State

CHECKPOINT = "SELECT last_event_id FROM processor_checkpoint WHERE name = :name"
_REFERENCE: Final = (
    ("costs", source.COSTS),
    ("products", source.PRODUCTS),
    ("stock", source.STOCK),
    ("sources", source.SOURCES),
)
_DERIVED: Final = (
    ("refunds", source.REFUNDS),
    ("consents", source.CONSENTS),
    ("feedback", source.FEEDBACK),
)
_IDS_PER_QUERY: Final = 500


@dataclass(frozen=True)
class TableSync:
    """What one sync did to one table."""

    table: str
    written: int  # rows inserted, replaced, or given a new person_id
    deleted: int  # rows removed: erasures, rows gone from a reference table
    rows: int  # rows in the table afterwards


@dataclass(frozen=True)
class SyncResult:
    """What one sync did."""

    started: datetime  # UTC, naive
    seconds: float
    full: bool
    checkpoint: int  # the store's processor checkpoint it read up to
    event_id: int  # the warehouse's event watermark afterwards
    tables: tuple[TableSync, ...]

    @property
    def written(self) -> int:
        """Return the rows written on every table."""
        return sum(t.written for t in self.tables)

    @property
    def deleted(self) -> int:
        """Return the rows deleted on every table."""
        return sum(t.deleted for t in self.tables)

    def table(self, name: str) -> TableSync:
        """Return one table's figures."""
        return next(t for t in self.tables if t.table == name)

    def to_dict(self) -> dict[str, Any]:
        """Return plain data for JSON."""
        return {
            "started": self.started.isoformat() + "Z",
            "seconds": round(self.seconds, 3),
            "full": self.full,
            "checkpoint": self.checkpoint,
            "event_id": self.event_id,
            "written": self.written,
            "deleted": self.deleted,
            "tables": {
                t.table: {"written": t.written, "deleted": t.deleted, "rows": t.rows}
                for t in self.tables
            },
        }


class RebuildNeededError(Exception):
    """The file cannot be brought up to date incrementally."""


class Run:
    """The steps of one sync, between one snapshot and one DuckDB transaction."""

    def __init__(self, loader: Loader, snap: Snapshot, state: State) -> None:
        self.loader = loader
        self.snap = snap
        self.state = state
        self.marks = dict(state.watermarks)
        self.written: Counter[str] = Counter()
        self.deleted: Counter[str] = Counter()
        self.checkpoint = 0

    def all(self, settings: Settings, started_ms: int) -> State:
        """Run every step; return the new state."""
        found = self.snap.scalar(CHECKPOINT, {"name": source.PROCESSOR})
        self.checkpoint = int(found or 0)
        if self.checkpoint < self.state.watermarks["event_id"]:
            raise RebuildNeededError(
                f"the store's processor is at event {self.checkpoint}, behind the warehouse "
                f"({self.state.watermarks['event_id']}): the store was replaced or reprocessed"
            )
        overlap_ms = int(settings.warehouse.overlap_seconds * 1000)
        since = (
            source.LOWEST if self.state.started_ms is None else self.state.started_ms - overlap_ms
        )
        after = self.state.watermarks["event_id"]
        self.tombstones()
        self.profiles(since)
        self.events()
        self.orders(since)
        for table, query in _DERIVED:
            self.derived(table, query, after)
        self.missing_profiles()
        self.written.update(self.loader.rewrite_persons())
        for table, query in _REFERENCE:
            self.loader.stage(table, self.snap.batches(query))
            written, deleted = self.loader.replace(table)
            self.written[table] += written
            self.deleted[table] += deleted
        return State(ddl.fingerprint(), self.marks, started_ms, self.checkpoint)

    def tombstones(self) -> None:
        found = self.snap.table(source.TOMBSTONES, {"after": self.marks["tombstone_id"]})
        if not found.num_rows:
            return
        self.marks["tombstone_id"] = int(pc.max(found["id"]).as_py())
        keys: dict[str, list[int]] = {}
        for kind, key in zip(found["kind"].to_pylist(), found["key"].to_pylist(), strict=True):
            keys.setdefault(kind, []).append(int(key))
        for kind, ids in keys.items():
            if kind == PROFILE:
                self.deleted.update(self.loader.erase_profiles(ids))
            elif kind in ROW_TOMBSTONES:
                self.deleted.update(self.loader.erase_rows(kind, ids))
        self.loader.progress("tombstones", found.num_rows, found.num_rows)

    def profiles(self, since: int) -> None:
        self.loader.stage("profiles", self.snap.batches(source.PROFILES, {"since": since}))
        self.written["profiles"] += self.loader.upsert("profiles")

    def events(self) -> None:
        after = self.marks["event_id"]
        if self.checkpoint > after:
            chunks = self.snap.batches(source.EVENTS, {"after": after, "upto": self.checkpoint})
            total = self.checkpoint - after
            self.written["events"] += self.loader.append("events", chunks, total)
        self.marks["event_id"] = self.checkpoint

    def orders(self, since: int) -> None:
        self.loader.stage("orders", self.snap.batches(source.ORDERS, {"since": since}))
        self.loader.stage("order_lines", self.snap.batches(source.ORDER_LINES, {"since": since}))
        orders, lines = self.loader.upsert_orders()
        self.written["orders"] += orders
        self.written["order_lines"] += lines

    def derived(self, table: str, query: source.Query, after: int) -> None:
        """Rows derived from the events of this sync (and consents given without one)."""
        params = {"after": after, "upto": self.checkpoint, "after_id": self.marks["consent_id"]}
        chunks = self.snap.batches(query, params)
        if table == "consents":
            chunks = self._eventless_watermark(chunks)
        self.loader.stage(table, chunks)
        self.written[table] += self.loader.insert_staged(table)

    def _eventless_watermark(self, chunks: Iterable[pa.Table]) -> Iterator[pa.Table]:
        """Pass chunks on, keeping the largest id of consents recorded without an event."""
        for chunk in chunks:
            eventless = chunk.filter(pc.is_null(chunk["event_id"]))["consent_id"]
            if len(eventless):
                found = int(pc.max(eventless).as_py())
                self.marks["consent_id"] = max(self.marks["consent_id"], found)
            yield chunk

    def missing_profiles(self) -> None:
        missing = self.loader.missing_profiles(self.state.watermarks["event_id"])
        for start in range(0, len(missing), _IDS_PER_QUERY):
            ids = missing[start : start + _IDS_PER_QUERY]
            query = source.profiles_by_id(len(ids))
            params = {f"id{i}": pid for i, pid in enumerate(ids)}
            self.loader.stage("profiles", self.snap.batches(query, params))
            self.written["profiles"] += self.loader.upsert("profiles")
        self.loader.also_moved(missing)

    def result(
        self, state: State, rows: dict[str, int], started_ms: int, clock: float, *, full: bool
    ) -> SyncResult:
        """Return the figures of this sync."""
        return SyncResult(
            started=datetime.fromtimestamp(started_ms / 1000, UTC).replace(tzinfo=None),
            seconds=time.perf_counter() - clock,
            full=full,
            checkpoint=self.checkpoint,
            event_id=state.watermarks["event_id"],
            tables=tuple(
                TableSync(name, self.written[name], self.deleted[name], rows[name])
                for name in SCHEMAS
            ),
        )
