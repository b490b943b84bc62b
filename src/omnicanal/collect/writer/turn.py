"""Turns at SQLite's write lock for the event writers of several server processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


class WriterTurns:
    """A lock file beside the database that the event writers of all processes queue on.

    SQLite has one write lock and no queue: a writer that finds it taken polls
    (`store.engine.begin_immediate`), and with `serve --workers 2` the two writers
    spent their time sleeping between polls (24,000 events/s against 33,000 for one
    process, measured). `flock` makes a writer wait in the kernel, without the GIL, and
    wakes it the moment the other commits. Other writers (a processor, an import) still
    meet the event writers at SQLite's own lock.
    """

    def __init__(self, database_path: str) -> None:
        self._fd = os.open(f"{database_path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Wait for this process's turn, and give it back on the way out."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
