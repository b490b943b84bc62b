"""The storage ceiling: plain executemany into SQLite, no HTTP, no validation.

The rows are those the server would store for the benchmark's events, in a table of
ten columns like collect_event, in WAL with synchronous=NORMAL and the other pragmas
of omnicanal's SQLite engine (its page cache above all), 1,000 rows per transaction.
The unique index comes in two kinds:

* `random`: one 64-bit digest of the messageId, so keys arrive in random order
  (collect_event's key until it gained a time column);
* `time-ordered`: (client timestamp in ms, 64-bit digest), so new keys land near
  the newest ones, as collect_event's current key.

Only executemany and COMMIT are timed: building the rows is not the database's work.
"""

from __future__ import annotations

import calendar
import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.events import Template
from bench.loadgen import Tick
from omnicanal.store.engine import SQLITE_PRAGMAS

KEYS = ("random", "time-ordered")
_COLUMNS = (
    "source_id INTEGER NOT NULL, dedup_key BIGINT NOT NULL, message_id TEXT NOT NULL,"
    " type TEXT NOT NULL, event TEXT, user_id TEXT, anonymous_id TEXT,"
    " timestamp TEXT NOT NULL, received_at TEXT NOT NULL, payload TEXT NOT NULL"
)
_SCHEMAS = {
    "random": (
        f"CREATE TABLE event (id INTEGER PRIMARY KEY, {_COLUMNS})",
        "CREATE UNIQUE INDEX event_key ON event (dedup_key)",
    ),
    "time-ordered": (
        f"CREATE TABLE event (id INTEGER PRIMARY KEY, dedup_time BIGINT NOT NULL, {_COLUMNS})",
        "CREATE UNIQUE INDEX event_key ON event (dedup_time, dedup_key)",
    ),
}
_INSERTS = {
    "random": (
        "INSERT INTO event (source_id, dedup_key, message_id, type, event, user_id,"
        " anonymous_id, timestamp, received_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "time-ordered": (
        "INSERT INTO event (dedup_time, source_id, dedup_key, message_id, type, event,"
        " user_id, anonymous_id, timestamp, received_at, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
}


@dataclass(frozen=True)
class StorageResult:
    """Rows written and the time spent in executemany + COMMIT."""

    key: str
    rows: int
    db_seconds: float
    wall_seconds: float
    rows_in_table: int
    rows_per_transaction: int

    @property
    def rows_per_second(self) -> float:
        """Return rows per second of database time."""
        return self.rows / self.db_seconds


def _digest(message_id: str) -> int:
    digest = hashlib.blake2b(f"1\x1f{message_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _millis(iso: str) -> int:
    seconds = calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1000 + int(iso[20:23])


class _Rows:
    """Rows of the template's events, rendered as the load generator sends them."""

    def __init__(self, template: Template, key: str) -> None:
        self.template, self.key = template, key
        self.counter = 0

    def _body(self) -> list[tuple[Any, ...]]:
        self.counter += 1
        body = orjson.loads(self.template.render(self.counter, nonce=0xE))
        received = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        rows: list[tuple[Any, ...]] = []
        for e in body["batch"]:
            row = (
                1,
                _digest(e["messageId"]),
                e["messageId"],
                "track",
                e["event"],
                e.get("userId"),
                e.get("anonymousId"),
                e["timestamp"],
                received,
                orjson.dumps(e).decode(),
            )
            rows.append((_millis(e["timestamp"]), *row) if self.key == "time-ordered" else row)
        return rows

    def take(self, count: int) -> list[tuple[Any, ...]]:
        """Return `count` new rows."""
        rows: list[tuple[Any, ...]] = []
        while len(rows) < count:
            rows += self._body()
        return rows[:count]


def executemany_baseline(
    path: Path,
    template: Template,
    *,
    key: str,
    seconds: float,
    tick: Tick,
    per_transaction: int = 1000,
) -> StorageResult:
    """Insert rows into a fresh SQLite file for `seconds` of wall time."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in (*SQLITE_PRAGMAS, "PRAGMA synchronous=NORMAL", *_SCHEMAS[key]):
        conn.execute(statement)
    source = _Rows(template, key)
    rows = 0
    db_seconds = 0.0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        batch = source.take(per_transaction)
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(_INSERTS[key], batch)
        conn.execute("COMMIT")
        db_seconds += time.perf_counter() - t0
        rows += len(batch)
        tick(elapsed)
    wall = time.perf_counter() - started
    (in_table,) = conn.execute("SELECT count(*) FROM event").fetchone()
    conn.close()
    return StorageResult(key, rows, db_seconds, wall, in_table, per_transaction)
