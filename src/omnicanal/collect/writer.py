"""The group-commit writer: the only path by which events reach the log.

Requests hand their rows to one writer thread per process and wait. The thread
takes everything queued, writes it in one transaction with the driver's
executemany, commits, and only then wakes the requests, which answer 200. One
fsync-free WAL commit (SQLite) or one round of COPY-like inserts (PostgreSQL)
thus serves many requests, and a 200 always means the rows are on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omnicanal.collect.segment import Row, dedup_key
from omnicanal.store.engine import Database

log = logging.getLogger(__name__)

_EVENT_COLUMNS = (
    "source_id, dedup_key, message_id, type, event, user_id, anonymous_id, timestamp, "
    "received_at, payload"
)
_REJECT_COLUMNS = (
    "source_id, received_at, endpoint, batch_index, status, code, errors, payload, "
    "payload_truncated"
)


@dataclass(slots=True)
class Rejection:
    """One refused message or request, as stored for inspection."""

    source_id: int
    received_at: datetime
    endpoint: str
    batch_index: int | None
    status: int
    code: str
    errors: str
    payload: str
    payload_truncated: bool


@dataclass(slots=True)
class Job:
    """One request's rows and the future it waits on."""

    source_id: int
    rows: list[Row]
    rejections: list[Rejection]
    future: asyncio.Future[int] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    stored: int = 0


@dataclass(slots=True)
class _Group:
    jobs: list[Job] = field(default_factory=list)
    rows: int = 0


class StorageUnavailableError(Exception):
    """The log could not be written; nothing of the group was acknowledged."""


def _sqlite_time(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class EventWriter:
    """Owns one connection and one thread; `submit` returns once rows are committed."""

    def __init__(self, db: Database, *, max_rows: int = 20_000) -> None:
        self._db = db
        self._max_rows = max_rows
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._sqlite = db.dialect == "sqlite"

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    async def submit(self, job: Job) -> int:
        """Queue a job and wait until it is committed; return how many rows were new."""
        loop = asyncio.get_running_loop()
        job.loop, job.future = loop, loop.create_future()
        self._queue.put(job)
        return await asyncio.shield(job.future)

    def write_now(self, jobs: list[Job]) -> None:
        """Write jobs in the calling thread (CLI imports, tests): one transaction."""
        self._write(jobs)

    def _next_group(self, first: Job) -> tuple[_Group, bool]:
        group = _Group([first], len(first.rows) + len(first.rejections))
        while group.rows < self._max_rows:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return group, True
            group.jobs.append(job)
            group.rows += len(job.rows) + len(job.rejections)
        return group, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group, stopping = self._next_group(first)
            try:
                self._write(group.jobs)
            except Exception as exc:
                log.exception("event log write failed for %d requests", len(group.jobs))
                failure = StorageUnavailableError(str(exc))
                for job in group.jobs:
                    _wake(job, failure)
                continue
            for job in group.jobs:
                _wake(job, None)

    def _write(self, jobs: list[Job]) -> None:
        conn = self._db.engine.raw_connection()
        try:
            if self._sqlite:
                _SqliteBatch(conn, jobs).write()
            else:
                _PostgresBatch(conn, jobs).write()
        finally:
            conn.close()


def _wake(job: Job, error: Exception | None) -> None:
    future, loop = job.future, job.loop
    if future is None or loop is None:
        return

    def resolve() -> None:
        if future.done():
            return
        if error is None:
            future.set_result(job.stored)
        else:
            future.set_exception(error)

    with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
        loop.call_soon_threadsafe(resolve)


def _counts(jobs: list[Job], stored: set[int] | None) -> Counter[tuple[int, str]]:
    counts: Counter[tuple[int, str]] = Counter()
    seen: set[int] = set()
    for job in jobs:
        job.stored = 0
        for row in job.rows:
            if row.dedup_key in seen or (stored is not None and row.dedup_key not in stored):
                continue
            seen.add(row.dedup_key)
            counts[(job.source_id, row.type)] += 1
            job.stored += 1
        if job.rejections:
            counts[(job.source_id, "rejected")] += len(job.rejections)
    return counts


_COUNTER_UPSERT = (
    "INSERT INTO collect_counter (source_id, name, count) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (source_id, name) DO UPDATE SET count = collect_counter.count + excluded.count"
)


class _SqliteBatch:
    """One SQLite transaction for a group of jobs."""

    _INSERT = (
        f"INSERT OR IGNORE INTO collect_event ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 10)})"
    )
    _REJECT = (
        f"INSERT INTO collect_rejected_event ({_REJECT_COLUMNS}) VALUES ({', '.join('?' * 9)})"
    )

    def __init__(self, conn: Any, jobs: list[Job]) -> None:
        self.cur = conn.cursor()
        self.jobs = jobs

    def write(self) -> None:
        cur = self.cur
        cur.execute("BEGIN IMMEDIATE")
        try:
            before = cur.execute("SELECT coalesce(max(id), 0) FROM collect_event").fetchone()[0]
            params = [
                (
                    job.source_id,
                    r.dedup_key,
                    r.message_id,
                    r.type,
                    r.event,
                    r.user_id,
                    r.anonymous_id,
                    _sqlite_time(r.timestamp),
                    _sqlite_time(r.received_at),
                    r.payload.decode(),
                )
                for job in self.jobs
                for r in job.rows
            ]
            cur.executemany(self._INSERT, params)
            stored = None if cur.rowcount == len(params) else self._resolve(before)
            self._finish(stored)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def _resolve(self, before: int) -> set[int]:
        """Tell retries from 64-bit digest collisions; store the collisions under a salt."""
        inserted = {
            k
            for (k,) in self.cur.execute(
                "SELECT dedup_key FROM collect_event WHERE id > ?", (before,)
            )
        }
        for job in self.jobs:
            for row in job.rows:
                if row.dedup_key in inserted:
                    continue
                if self._owner(row.dedup_key) not in (None, (job.source_id, row.message_id)):
                    key = self._insert_salted(job.source_id, row)
                    if key is not None:
                        inserted.add(key)
        return inserted

    def _owner(self, key: int) -> tuple[int, str] | None:
        found = self.cur.execute(
            "SELECT source_id, message_id FROM collect_event WHERE dedup_key = ?", (key,)
        ).fetchone()
        return None if found is None else (found[0], found[1])

    def _insert_salted(self, source_id: int, row: Row) -> int | None:
        """Store a message whose digest another message holds; None if it is a retry."""
        salt = 1
        while True:
            row.dedup_key = dedup_key(source_id, row.message_id, salt)
            owner = self._owner(row.dedup_key)
            if owner == (source_id, row.message_id):
                return None
            if owner is None:
                self.cur.execute(
                    self._INSERT,
                    (
                        source_id,
                        row.dedup_key,
                        row.message_id,
                        row.type,
                        row.event,
                        row.user_id,
                        row.anonymous_id,
                        _sqlite_time(row.timestamp),
                        _sqlite_time(row.received_at),
                        row.payload.decode(),
                    ),
                )
                return row.dedup_key
            salt += 1

    def _finish(self, stored: set[int] | None) -> None:
        rejections = [
            (
                r.source_id,
                _sqlite_time(r.received_at),
                r.endpoint,
                r.batch_index,
                r.status,
                r.code,
                r.errors,
                r.payload,
                r.payload_truncated,
            )
            for job in self.jobs
            for r in job.rejections
        ]
        if rejections:
            self.cur.executemany(self._REJECT, rejections)
        counts = _counts(self.jobs, stored)
        self.cur.executemany(
            _COUNTER_UPSERT.format(p="?"), [(s, n, c) for (s, n), c in counts.items()]
        )


class _PostgresBatch:
    """One PostgreSQL transaction for a group of jobs, rows sent as arrays."""

    _INSERT = (
        f"INSERT INTO collect_event ({_EVENT_COLUMNS}) "
        "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[], "
        "%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::text[]) "
        "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key"
    )
    _REJECT = (
        f"INSERT INTO collect_rejected_event ({_REJECT_COLUMNS}) VALUES ({', '.join(['%s'] * 9)})"
    )

    def __init__(self, conn: Any, jobs: list[Job]) -> None:
        self.conn = conn
        self.cur = conn.cursor()
        self.jobs = jobs

    def write(self) -> None:
        try:
            pairs = [(job.source_id, r) for job in self.jobs for r in job.rows]
            stored = self._insert(pairs)
            if len(stored) < len({r.dedup_key for _, r in pairs}):
                stored |= self._resolve(pairs, stored)
            self._finish(stored)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    def _insert(self, pairs: list[tuple[int, Row]]) -> set[int]:
        if not pairs:
            return set()
        columns: list[list[Any]] = [[] for _ in range(10)]
        for source_id, r in pairs:
            values = (
                source_id,
                r.dedup_key,
                r.message_id,
                r.type,
                r.event,
                r.user_id,
                r.anonymous_id,
                r.timestamp,
                r.received_at,
                r.payload.decode(),
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        self.cur.execute(self._INSERT, columns)
        return {k for (k,) in self.cur.fetchall()}

    def _resolve(self, pairs: list[tuple[int, Row]], stored: set[int]) -> set[int]:
        missing = [(s, r) for s, r in pairs if r.dedup_key not in stored]
        self.cur.execute(
            "SELECT dedup_key, source_id, message_id FROM collect_event WHERE dedup_key = ANY(%s)",
            ([r.dedup_key for _, r in missing],),
        )
        existing = {k: (s, m) for k, s, m in self.cur.fetchall()}
        added: set[int] = set()
        for source_id, row in missing:
            salt = 1
            while existing.get(row.dedup_key, (source_id, row.message_id)) != (
                source_id,
                row.message_id,
            ):
                row.dedup_key = dedup_key(source_id, row.message_id, salt)
                self.cur.execute(
                    "SELECT source_id, message_id FROM collect_event WHERE dedup_key = %s",
                    (row.dedup_key,),
                )
                found = self.cur.fetchone()
                if found is None:
                    added |= self._insert([(source_id, row)])
                    break
                existing[row.dedup_key] = (found[0], found[1])
                salt += 1
        return added

    def _finish(self, stored: set[int]) -> None:
        rejections = [
            (
                r.source_id,
                r.received_at,
                r.endpoint,
                r.batch_index,
                r.status,
                r.code,
                r.errors,
                r.payload,
                r.payload_truncated,
            )
            for job in self.jobs
            for r in job.rejections
        ]
        if rejections:
            self.cur.executemany(self._REJECT, rejections)
        counts = _counts(self.jobs, stored)
        if counts:
            self.cur.executemany(
                _COUNTER_UPSERT.format(p="%s"), [(s, n, c) for (s, n), c in sorted(counts.items())]
            )
