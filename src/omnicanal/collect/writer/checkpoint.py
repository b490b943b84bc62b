"""SQLite's WAL checkpointer, which keeps the log's WAL bounded under steady writes."""

from __future__ import annotations

import logging
import threading
from typing import Any

from omnicanal.store.engine import Database

log = logging.getLogger(__name__)

# Past this many pages (about 256 MiB) the writer checkpoints the WAL itself.
CATCH_UP_PAGES = 65_536
# The WAL file the writer keeps when the log starts over: the catch-up size and a margin.
# Cut back to 64 MiB (the engine's journal_size_limit), the first commit into a file just
# shrunk by 200 MiB took 80-100 ms more, every three seconds at full rate (measured).
WAL_KEPT_BYTES = (CATCH_UP_PAGES + 16_384) * 4096
# Before asking the writer, the checkpoint thread copies back until at most this many
# pages (4 MiB) are left, in at most this many rounds.
CLOSE_ENOUGH_PAGES = 1_024
CLOSE_IN_ROUNDS = 8


class Checkpointer:
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
    and the WAL file is reused from its start, kept at up to `WAL_KEPT_BYTES` while
    collection writes; the checkpoint at stop truncates it. Checkpointing every quarter
    second leaves the writer's catch-up less to copy.
    """

    def __init__(
        self, db: Database, interval: float = 0.25, catch_up_pages: int = CATCH_UP_PAGES
    ) -> None:
        self._db = db
        self._interval = interval
        self._catch_up_pages = catch_up_pages
        self.behind = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the checkpoint thread."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, which truncates the WAL on its way out."""
        if self._thread is not None:
            self._stopping.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = self._db.engine.raw_connection()
        try:
            while not self._stopping.wait(self._interval):
                size, _ = self._checkpoint(conn, "PASSIVE")
                if size > self._catch_up_pages:
                    self._close_in(conn)
                    self.behind.set()
            self._checkpoint(conn, "TRUNCATE")
        finally:
            conn.close()

    def _close_in(self, conn: Any) -> None:
        """Copy back what the writer appended meanwhile, until little is left for it.

        The writer's own catch-up stalls every request for as long as it copies; left
        with a quarter second's worth it took 60-80 ms at full rate.
        """
        for _ in range(CLOSE_IN_ROUNDS):
            size, copied = self._checkpoint(conn, "PASSIVE")
            if size - copied <= CLOSE_ENOUGH_PAGES or self._stopping.is_set():
                return

    def catch_up(self, writer_connection: Any) -> None:
        """Between two commits, on the writer's connection: checkpoint if asked to."""
        if self.behind.is_set():
            self.behind.clear()
            self._checkpoint(writer_connection, "PASSIVE")

    @staticmethod
    def _checkpoint(conn: Any, mode: str) -> tuple[int, int]:
        """Checkpoint; return the pages the WAL holds and those copied back (0s if skipped)."""
        try:
            row = conn.cursor().execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except Exception:  # busy or locked: the next round will do it
            log.debug("WAL checkpoint (%s) skipped", mode, exc_info=True)
            return 0, 0
        if not row or row[1] is None or row[1] <= 0:
            return 0, 0
        return int(row[1]), int(row[2] or 0)
