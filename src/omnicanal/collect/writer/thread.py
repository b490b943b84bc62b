"""The commit thread: `EventWriter` groups queued requests into one transaction each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from omnicanal.collect.writer.checkpoint import WAL_KEPT_BYTES, Checkpointer
from omnicanal.collect.writer.dedup import RecentMessages
from omnicanal.collect.writer.job import Job
from omnicanal.collect.writer.postgres import PostgresBatch
from omnicanal.collect.writer.sqlite import SqliteBatch
from omnicanal.collect.writer.turn import WriterTurns
from omnicanal.core.errors import ServiceUnavailableError
from omnicanal.store.engine import Database

log = logging.getLogger(__name__)


class StorageUnavailableError(ServiceUnavailableError):
    """The log could not be written; nothing of the group was acknowledged."""

    code = "collect.storage-unavailable"


@dataclass(slots=True)
class _Group:
    jobs: list[Job] = field(default_factory=list)
    rows: int = 0


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
        self._checkpointer = Checkpointer(db) if self._sqlite else None
        path = db.engine.url.database if self._sqlite else None
        self._turns = WriterTurns(path) if path and path != ":memory:" else None

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
                _wake(group.jobs, failure)
                continue
            _wake(group.jobs, None)
            if self._checkpointer is not None:  # the requests are answered: catch up now
                self._checkpointer.catch_up(self._connection())

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._db.engine.raw_connection()
            if self._sqlite:  # the checkpointer thread copies the WAL back, off this path
                self._conn.cursor().execute("PRAGMA wal_autocheckpoint=0")
                self._conn.cursor().execute("PRAGMA busy_timeout=0")  # see begin_immediate
                self._conn.cursor().execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
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
        turn = self._turns.held() if self._turns is not None else contextlib.nullcontext()
        with self._lock, turn:
            batch_class = SqliteBatch if self._sqlite else PostgresBatch
            try:
                batch_class(self._connection(), jobs, self._recent).write()
            except Exception:
                self._close()  # a broken connection is replaced on the next group
                raise


def _wake(jobs: list[Job], error: Exception | None) -> None:
    """Resolve the jobs' futures: one call into each waiting event loop for the group.

    A call per job wrote to the loop's wake-up socket once per request, and the writer
    waited for the GIL after each write: up to a switch interval each, while the event
    loop parsed the next requests.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[Job]] = {}
    for job in jobs:
        if job.future is not None and job.loop is not None:
            by_loop.setdefault(job.loop, []).append(job)
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(_resolve, waiting, error)


def _resolve(jobs: list[Job], error: Exception | None) -> None:
    for job in jobs:
        future = job.future
        if future is None or future.done():
            continue
        if error is None:
            future.set_result(job.stored)
        else:
            future.set_exception(error)
