"""`serve`'s event processor in a process of its own, started and watched by the server.

Processing is Python from end to end. Run in a thread of the server, it shares one
interpreter with the event loop that answers collection: while a backlog is worked
off, each request waits its turn for the interpreter, and on two cores the second one
sits half idle (docs/benchmarks.md, "Collection"). In a process of its own, the
processor has a core and its own interpreter, and the server keeps the other. They
share only the store, as `omnicanal process` workers do; the event log, its checkpoint
and SQLite's write lock already make that safe.

The server's side (`ProcessorProcess`) starts the process, starts it again when it
dies (after a pause that doubles up to a minute, so a processor that cannot start
does not spin), and stops it. The process is `python -m omnicanal.profiles.worker`:
it imports the processor alone (about 60 MiB, where a copy of the server's modules
would be 360). It reads its settings from its standard input, then stops when that
closes: when the server stops it, or is gone, even killed with -9. It stops at the end
of the batch in hand; a batch is one transaction, so nothing is half-done.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import signal
import subprocess
import sys
import threading
import time
from typing import BinaryIO

from omnicanal.core.runtime import tune_gc
from omnicanal.core.settings import Settings
from omnicanal.profiles.processor import Processor
from omnicanal.store.engine import Database, make_engine

log = logging.getLogger(__name__)

# The first pause before a dead processor starts again; it doubles at each death in a
# row, up to MAX_RESTART_SECONDS. A process that ran a minute starts a new row.
RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 60.0
STEADY_SECONDS = 60.0
# How long a stopping processor may take to finish its batch before it is terminated.
STOP_SECONDS = 30.0


def separable(database: Database) -> bool:
    """Can another process open this store? (Not an in-memory SQLite database.)"""
    url = database.engine.url
    return url.get_backend_name() != "sqlite" or url.database not in (None, "", ":memory:")


def main(source: BinaryIO) -> None:
    """The processor's process: process the log until `source` (the server's pipe) closes."""
    # Ctrl+C in a terminal reaches the whole process group: the server decides when
    # its processor stops, so that the batch in hand finishes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    url, settings = pickle.load(source)
    tune_gc()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def listen() -> None:
        try:
            while source.read(4096):
                pass
        except OSError:  # the server is gone
            pass
        stop.set()

    threading.Thread(target=listen, name="server-pipe", daemon=True).start()
    database = Database(make_engine(url, sqlite_synchronous=settings.sqlite_synchronous))
    try:
        Processor.configured(database, settings).run(stop)
    finally:
        database.dispose()


class ProcessorProcess:
    """Run the processor in a child process until `run`'s stop event is set."""

    def __init__(self, database: Database, settings: Settings) -> None:
        if not separable(database):
            raise ValueError("an in-memory SQLite store cannot be shared with a process")
        self._given = pickle.dumps(
            (database.engine.url.render_as_string(hide_password=False), settings)
        )

    def run(self, stop: threading.Event) -> None:
        """Keep a processor process running until `stop` is set; then stop it."""
        pause = RESTART_SECONDS
        while not stop.is_set():
            process = self._start()
            started = time.monotonic()
            try:
                while not stop.is_set() and process.poll() is None:
                    stop.wait(0.2)
            finally:
                self._stop(process)
            if stop.is_set():
                return
            if time.monotonic() - started >= STEADY_SECONDS:
                pause = RESTART_SECONDS
            log.error(
                "The event processor's process ended (exit code %s); it starts again in %.0f s.",
                process.returncode,
                pause,
            )
            stop.wait(pause)
            pause = min(pause * 2, MAX_RESTART_SECONDS)

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "omnicanal.profiles.worker"], stdin=subprocess.PIPE
        )
        try:
            if process.stdin is not None:
                process.stdin.write(self._given)
                process.stdin.flush()
        except OSError:  # it died at once: `run` sees it and starts another
            pass
        return process

    @staticmethod
    def _stop(process: subprocess.Popen[bytes]) -> None:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the processor's signal to stop
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("The event processor did not stop in %.0f s; terminating it.", STOP_SECONDS)
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main(sys.stdin.buffer)
