"""The group-commit writer: the only path by which events reach the log.

Requests hand their rows to one writer thread per process and wait. The thread
takes everything queued, writes it in one transaction with the driver's
executemany, commits, and only then wakes the requests, which answer 200. One
fsync-free WAL commit (SQLite) or one round of COPY-like inserts (PostgreSQL)
thus serves many requests, and a 200 always means the rows are on disk.

Modules: `thread` (`EventWriter`, the commit thread), `job` (what a request hands
it), `batch` (one transaction for a group: dedup, digest collisions, counters) with
its dialects `sqlite` and `postgres`, `dedup` (the window of recent messageIds),
`rows` (row values and columns), `checkpoint` (SQLite's WAL checkpointer) and
`append` (`append_rows`, the writer's SQL inside a file import's transaction).
"""

from omnicanal.collect.writer.append import append_rows
from omnicanal.collect.writer.checkpoint import CATCH_UP_PAGES, Checkpointer
from omnicanal.collect.writer.dedup import RecentMessages
from omnicanal.collect.writer.job import Job, Rejection
from omnicanal.collect.writer.postgres import LOG_APPEND_LOCK
from omnicanal.collect.writer.thread import EventWriter, StorageUnavailableError

_Checkpointer = Checkpointer  # the name tests/collect/test_wal.py imports

__all__ = [
    "CATCH_UP_PAGES",
    "LOG_APPEND_LOCK",
    "Checkpointer",
    "EventWriter",
    "Job",
    "RecentMessages",
    "Rejection",
    "StorageUnavailableError",
    "append_rows",
]
