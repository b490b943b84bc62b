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
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from omnicanal.collect.segment import Row, dedup_key
from omnicanal.core.errors import ServiceUnavailableError
from omnicanal.store.engine import Database, begin_immediate

log = logging.getLogger(__name__)

_EVENT_COLUMNS = (
    "source_id, dedup_time, dedup_key, message_id, type, event, user_id, anonymous_id, "
    "timestamp_ms, received_ms, payload"
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


class RecentMessages:
    """The digests and client times of the last messages written, oldest evicted first.

    The log's unique key holds the client's timestamp, which an SDK retry resends as
    it was. A message sent again with the same messageId but a new timestamp (a webhook
    or till that re-sends a sale) is caught here, within this window.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._times: dict[int, int] = {}
        self._order: deque[int] = deque()

    def time_of(self, key: int) -> int | None:
        """Return the client time stored with a digest, if it is in the window."""
        return self._times.get(key)

    def add(self, key: int, dedup_time: int) -> None:
        """Remember a written message, evicting the oldest beyond capacity."""
        if key not in self._times:
            self._order.append(key)
        self._times[key] = dedup_time
        while len(self._order) > self.capacity:
            self._times.pop(self._order.popleft(), None)

    def add_many(self, keys: list[int], times: list[int]) -> None:
        """Remember many written messages at once."""
        fresh = [k for k in keys if k not in self._times]
        self._times.update(zip(keys, times, strict=True))
        self._order.extend(fresh)
        for _ in range(len(self._order) - self.capacity):
            self._times.pop(self._order.popleft(), None)

    def known(self, keys: set[int]) -> bool:
        """Tell if any of these digests is in the window."""
        return not self._times.keys().isdisjoint(keys)

    def __len__(self) -> int:
        return len(self._times)


class StorageUnavailableError(ServiceUnavailableError):
    """The log could not be written; nothing of the group was acknowledged."""

    code = "collect.storage-unavailable"


class EventWriter:
    """Owns one connection and one thread; `submit` returns once rows are committed."""

    def __init__(
        self, db: Database, *, max_rows: int = 20_000, dedup_window: int = 500_000
    ) -> None:
        self._db = db
        self._max_rows = max_rows
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._sqlite = db.dialect == "sqlite"
        self._conn: Any = None
        self._lock = threading.Lock()
        self._recent = RecentMessages(dedup_window)
        self._recent_loaded = False
        self._checkpointer = _Checkpointer(db) if self._sqlite else None

    def start(self) -> None:
        """Start the writer thread (and, on SQLite, the WAL checkpointer)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
            self._thread.start()
            if self._checkpointer is not None:
                self._checkpointer.start()

    def stop(self) -> None:
        """Finish what is queued, then stop the threads and close the connection."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._close()

    async def submit(self, job: Job) -> int:
        """Queue a job and wait until it is committed; return how many rows were new."""
        loop = asyncio.get_running_loop()
        job.loop, job.future = loop, loop.create_future()
        self._queue.put(job)
        return await asyncio.shield(job.future)

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
            except Exception:
                log.exception("event log write failed for %d requests", len(group.jobs))
                failure = StorageUnavailableError(
                    "The event log could not be written; nothing was stored. Retry later."
                )
                for job in group.jobs:
                    _wake(job, failure)
                continue
            for job in group.jobs:
                _wake(job, None)
            if self._checkpointer is not None:  # the requests are answered: catch up now
                self._checkpointer.catch_up(self._connection())

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._db.engine.raw_connection()
            if self._sqlite:  # the checkpointer thread copies the WAL back, off this path
                self._conn.cursor().execute("PRAGMA wal_autocheckpoint=0")
                self._conn.cursor().execute("PRAGMA busy_timeout=0")  # see begin_immediate
        if not self._recent_loaded:
            self._load_recent(self._conn)
        return self._conn

    def _load_recent(self, conn: Any) -> None:
        cur = conn.cursor()
        cur.execute(
            "SELECT dedup_key, dedup_time FROM collect_event ORDER BY id DESC LIMIT "
            f"{int(self._recent.capacity)}"
        )
        for key, dedup_time in reversed(cur.fetchall()):
            self._recent.add(key, dedup_time)
        conn.commit()
        self._recent_loaded = True

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _write(self, jobs: list[Job]) -> None:
        with self._lock:
            batch_class = _SqliteBatch if self._sqlite else _PostgresBatch
            try:
                batch_class(self._connection(), jobs, self._recent).write()
            except Exception:
                self._close()  # a broken connection is replaced on the next group
                raise


# Past this many pages (about 256 MiB) the writer checkpoints the WAL itself.
CATCH_UP_PAGES = 65_536


class _Checkpointer:
    """Copies SQLite's WAL back into the database from its own thread and connection.

    Left to the writer, each checkpoint would stall a commit for tens of milliseconds;
    a PASSIVE checkpoint here runs beside the writer, outside the GIL. Under a steady
    stream of writes it never catches up with the last page, and SQLite starts the WAL
    over only once a checkpoint has: the file would grow without end (12 GiB while the
    million-customer demo loaded). A RESTART checkpoint from here would wait for a gap
    between commits that a busy writer never leaves. So past `catch_up_pages` the
    writer is asked to checkpoint between two commits (`catch_up`): nothing is
    appended meanwhile, the checkpoint finishes (a fraction of a second for 256 MiB,
    the one pause collection takes), the next commit starts the WAL from its beginning,
    and `journal_size_limit` (store.engine) gives the space back.
    """

    def __init__(
        self, db: Database, interval: float = 1.0, catch_up_pages: int = CATCH_UP_PAGES
    ) -> None:
        self._db = db
        self._interval = interval
        self._catch_up_pages = catch_up_pages
        self.behind = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = self._db.engine.raw_connection()
        try:
            while not self._stopping.wait(self._interval):
                if self._checkpoint(conn, "PASSIVE") > self._catch_up_pages:
                    self.behind.set()
            self._checkpoint(conn, "TRUNCATE")
        finally:
            conn.close()

    def catch_up(self, writer_connection: Any) -> None:
        """Between two commits, on the writer's connection: checkpoint if asked to."""
        if self.behind.is_set():
            self.behind.clear()
            self._checkpoint(writer_connection, "PASSIVE")

    @staticmethod
    def _checkpoint(conn: Any, mode: str) -> int:
        """Checkpoint; return how many pages the WAL holds (0 when skipped)."""
        try:
            row = conn.cursor().execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except Exception:  # busy or locked: the next round will do it
            log.debug("WAL checkpoint (%s) skipped", mode, exc_info=True)
            return 0
        return int(row[1]) if row and row[1] is not None and row[1] > 0 else 0


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


def _counts(jobs: list[Job], stored: set[tuple[int, int]]) -> Counter[tuple[int, str]]:
    """Count what was really stored per source and type, and set each job's count."""
    if len(stored) == sum(len(job.rows) for job in jobs):  # every row is new
        counts = Counter((job.source_id, row.type) for job in jobs for row in job.rows)
        for job in jobs:
            job.stored = len(job.rows)
            if job.rejections:
                counts[(job.source_id, "rejected")] += len(job.rejections)
        return counts
    counts = Counter()
    seen: set[tuple[int, int]] = set()
    for job in jobs:
        job.stored = 0
        for row in job.rows:
            key = row.key
            if key in seen or key not in stored:
                continue
            seen.add(key)
            counts[(job.source_id, row.type)] += 1
            job.stored += 1
        if job.rejections:
            counts[(job.source_id, "rejected")] += len(job.rejections)
    return counts


def _values(source_id: int, r: Row) -> tuple[Any, ...]:
    return (
        source_id,
        r.dedup_time,
        r.dedup_key,
        r.message_id,
        r.type,
        r.event,
        r.user_id,
        r.anonymous_id,
        r.timestamp_ms,
        r.received_ms,
        r.payload.decode(),
    )


def _rejection_values(r: Rejection, sqlite: bool) -> tuple[Any, ...]:
    # SQLAlchemy keeps SQLite datetimes as naive UTC text; PostgreSQL takes the object.
    received = r.received_at.replace(tzinfo=None).isoformat(sep=" ") if sqlite else r.received_at
    return (
        r.source_id,
        received,
        r.endpoint,
        r.batch_index,
        r.status,
        r.code,
        r.errors,
        r.payload,
        r.payload_truncated,
    )


_COUNTER_UPSERT = (
    "INSERT INTO collect_counter (source_id, name, count) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (source_id, name) DO UPDATE SET count = collect_counter.count + excluded.count"
)
_OWNER = (
    "SELECT source_id, message_id FROM collect_event WHERE dedup_time = {p} AND dedup_key = {p}"
)


class _Batch:
    """One transaction for a group of jobs; subclasses speak each database's dialect."""

    param = "?"

    def __init__(self, conn: Any, jobs: list[Job], recent: RecentMessages) -> None:
        self.conn = conn
        self.cur = conn.cursor()
        self.jobs = jobs
        self.recent = recent

    def _pairs(self) -> list[tuple[int, Row]]:
        """Return the rows to insert, less messages resent under a known messageId."""
        pairs = [(job.source_id, row) for job in self.jobs for row in job.rows]
        keys = {row.dedup_key for _, row in pairs}
        if len(keys) == len(pairs) and not self.recent.known(keys):
            return pairs  # the usual case: nothing seen before, nothing twice
        return self._pairs_checked()

    def _pairs_checked(self) -> list[tuple[int, Row]]:
        pairs: list[tuple[int, Row]] = []
        in_group: dict[int, tuple[int, str]] = {}
        for job in self.jobs:
            for row in job.rows:
                if self._resent(job.source_id, row):
                    continue
                earlier = in_group.setdefault(row.dedup_key, (row.dedup_time, row.message_id))
                if earlier[0] != row.dedup_time and earlier[1] == row.message_id:
                    continue
                pairs.append((job.source_id, row))
        return pairs

    def _resent(self, source_id: int, row: Row) -> bool:
        """Tell if the window holds this messageId under another client time."""
        known = self.recent.time_of(row.dedup_key)
        if known is None or known == row.dedup_time:
            return False
        return self._owner_at(known, row.dedup_key) == (source_id, row.message_id)

    def _remember(self, pairs: list[tuple[int, Row]], stored: set[tuple[int, int]]) -> None:
        rows = [row for _, row in pairs if (row.dedup_time, row.dedup_key) in stored]
        self.recent.add_many([r.dedup_key for r in rows], [r.dedup_time for r in rows])

    def _owner_at(self, dedup_time: int, key: int) -> tuple[int, str] | None:
        self.cur.execute(_OWNER.format(p=self.param), (dedup_time, key))
        found = self.cur.fetchone()
        return None if found is None else (found[0], found[1])

    def _owner(self, row: Row) -> tuple[int, str] | None:
        return self._owner_at(row.dedup_time, row.dedup_key)

    def _salted(self, source_id: int, row: Row) -> bool:
        """Give a message whose 64-bit digest another one holds a free key; False on a retry."""
        salt = 1
        while True:
            row.dedup_key = dedup_key(source_id, row.message_id, salt)
            owner = self._owner(row)
            if owner == (source_id, row.message_id):
                return False
            if owner is None:
                return True
            salt += 1

    def _collided(self, source_id: int, row: Row) -> bool:
        owner = self._owner(row)
        return owner is not None and owner != (source_id, row.message_id)

    def _finish(self, stored: set[tuple[int, int]]) -> None:
        sqlite = self.param == "?"
        rejections = [_rejection_values(r, sqlite) for job in self.jobs for r in job.rejections]
        if rejections:
            marks = ", ".join([self.param] * 9)
            self.cur.executemany(
                f"INSERT INTO collect_rejected_event ({_REJECT_COLUMNS}) VALUES ({marks})",
                rejections,
            )
        counts = sorted(_counts(self.jobs, stored).items())
        if counts:
            self.cur.executemany(
                _COUNTER_UPSERT.format(p=self.param), [(s, n, c) for (s, n), c in counts]
            )


_JSON_INSERT = (
    f"INSERT OR IGNORE INTO collect_event ({_EVENT_COLUMNS}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(11))
    + " FROM json_each(?)"
)


class _SqliteBatch(_Batch):
    """SQLite: INSERT OR IGNORE with executemany; new rows are those past the old max id."""

    _INSERT = (
        f"INSERT OR IGNORE INTO collect_event ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 11)})"
    )

    def write(self) -> None:
        cur = self.cur
        begin_immediate(cur)
        try:
            cur.execute("SELECT coalesce(max(id), 0) FROM collect_event")
            before = cur.fetchone()[0]
            pairs = self._pairs()
            if self._insert_many(pairs) == len(pairs):
                stored = {(r.dedup_time, r.dedup_key) for _, r in pairs}
            else:
                stored = self._resolve(before, pairs)
            self._finish(stored)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._remember(pairs, stored)

    def _insert_many(self, pairs: list[tuple[int, Row]]) -> int:
        """Insert rows in one statement fed by one JSON array; return how many were new.

        orjson builds the array in C and SQLite reads it in C with the GIL released, so
        the writer thread barely competes with the event loop for the interpreter.
        """
        if not pairs:
            return 0
        rows = orjson.dumps([_values(source_id, row) for source_id, row in pairs])
        self.cur.execute(_JSON_INSERT, (rows,))
        return int(self.cur.rowcount)

    def _resolve(self, before: int, pairs: list[tuple[int, Row]]) -> set[tuple[int, int]]:
        """Tell retries from digest collisions; store each collision under a salted key."""
        self.cur.execute("SELECT dedup_time, dedup_key FROM collect_event WHERE id > ?", (before,))
        inserted = {(t, k) for t, k in self.cur.fetchall()}
        for source_id, row in pairs:
            if row.key in inserted or not self._collided(source_id, row):
                continue
            if self._salted(source_id, row):
                self.cur.execute(self._INSERT, _values(source_id, row))
                inserted.add(row.key)
        return inserted


# PostgreSQL advisory lock key held by whoever appends to the event log.
LOG_APPEND_LOCK = 0x6F6D6E69_6C6F67  # "omnilog"


class _PostgresBatch(_Batch):
    """PostgreSQL: COPY into a temporary table, then INSERT ... ON CONFLICT ... RETURNING.

    COPY streams the rows in psycopg's C code; passing them as arrays instead spent most
    of the writer's time adapting text arrays in Python.
    """

    param = "%s"
    _STAGE = (
        "CREATE TEMP TABLE IF NOT EXISTS collect_event_in (source_id int, dedup_time bigint, "
        "dedup_key bigint, message_id text, type text, event text, user_id text, "
        "anonymous_id text, timestamp_ms bigint, received_ms bigint, payload text) "
        "ON COMMIT DELETE ROWS"
    )
    _COPY = f"COPY collect_event_in ({_EVENT_COLUMNS}) FROM STDIN"
    _staged = False
    _INSERT = (
        f"INSERT INTO collect_event ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} "
        "FROM collect_event_in ON CONFLICT (dedup_time, dedup_key) DO NOTHING "
        "RETURNING dedup_time, dedup_key"
    )

    def write(self) -> None:
        try:
            pairs = self._pairs()
            stored = self._insert(pairs)
            for source_id, row in pairs:
                collided = row.key not in stored and self._collided(source_id, row)
                if collided and self._salted(source_id, row):
                    stored |= self._insert([(source_id, row)])
            self._finish(stored)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        self._remember(pairs, stored)

    def _insert(self, pairs: list[tuple[int, Row]]) -> set[tuple[int, int]]:
        if not pairs:
            return set()
        if self._staged:  # a second insert in this transaction
            self.cur.execute("DELETE FROM collect_event_in")
        else:
            self.cur.execute(self._STAGE)
            self._staged = True
        with self.cur.copy(self._COPY) as copy:
            for source_id, row in pairs:
                copy.write_row(_values(source_id, row))
        # Writers in several processes take turns from id allocation to commit, so ids
        # become visible in order and a reader that checkpoints by id never skips one.
        self.cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOG_APPEND_LOCK,))
        self.cur.execute(self._INSERT)
        return {(t, k) for t, k in self.cur.fetchall()}


def append_rows(connection: Any, source_id: int, rows: list[Row]) -> list[Row]:
    """Insert one source's rows in the caller's open transaction; return the new ones.

    The writer's own SQL, digest-collision handling and counters, without its commit:
    the rows join whatever else the caller's transaction writes, so a file import is
    all or nothing. `connection` is a SQLAlchemy Connection inside a transaction.
    """
    dbapi = connection.connection.dbapi_connection
    job = Job(source_id, rows, [])
    if connection.dialect.name == "sqlite":
        lite = _SqliteBatch(dbapi, [job], RecentMessages(0))
        lite.cur.execute("SELECT coalesce(max(id), 0) FROM collect_event")
        before = lite.cur.fetchone()[0]
        pairs = lite._pairs()
        if lite._insert_many(pairs) == len(pairs):
            stored = {row.key for _, row in pairs}
        else:
            stored = lite._resolve(before, pairs)
        lite._finish(stored)
    else:
        pg = _PostgresBatch(dbapi, [job], RecentMessages(0))
        pg.cur.execute(pg._STAGE)
        pg._staged = True  # the staging table may hold an earlier call's rows: emptied first
        pairs = pg._pairs()
        stored = pg._insert(pairs)
        for sid, row in pairs:
            if row.key not in stored and pg._collided(sid, row) and pg._salted(sid, row):
                stored |= pg._insert([(sid, row)])
        pg._finish(stored)
    return [row for _, row in pairs if row.key in stored]
