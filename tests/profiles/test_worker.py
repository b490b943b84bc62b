"""`serve` runs its processor in a process of its own, watched by the server.

Against the real `omnicanal serve`: the processor is a child process that processes
what the server collects; a processor that dies starts again; a server stopped, or
killed with -9, takes its processor with it; the setting turns it back into a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psutil
import pytest
from sqlalchemy import text

from omnicanal.store.engine import Database
from tests.conftest import LiveServer, SourceKey

pytestmark = pytest.mark.slow

WORKER = "omnicanal.profiles.worker"


def _eventually(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time allowed")
        time.sleep(0.1)


def _processors(server: LiveServer) -> list[psutil.Process]:
    assert server.process is not None
    children = psutil.Process(server.process.pid).children()
    return [p for p in children if WORKER in " ".join(p.cmdline())]


def _send(server: LiveServer, source: SourceKey, users: range) -> None:
    batch = [
        {"type": "track", "userId": f"worker-{n}", "event": "Product Viewed", "messageId": f"w{n}"}
        for n in users
    ]
    answer = httpx.post(
        server.url + "/v1/batch", json={"batch": batch}, auth=(source.write_key, ""), timeout=10
    )
    assert answer.status_code == 200, answer.text


def _the_processor(server: LiveServer) -> psutil.Process:
    """Wait for the server's one processor process; return it."""
    _eventually(lambda: len(_processors(server)) == 1)
    (child,) = _processors(server)
    return child


def _processed(server: LiveServer, db: Database, source: SourceKey, users: range) -> None:
    """Send one event per user; wait until each has a profile."""
    _send(server, source, users)
    _eventually(lambda: _profiles(db) == users.stop)


def _profiles(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM profile")).scalar_one())


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_serve_processes_in_a_child_that_starts_again(
    live_server: LiveServer, db: Database, source: SourceKey
) -> None:
    first = _the_processor(live_server)
    _processed(live_server, db, source, range(0, 50))

    first.kill()  # a processor that dies...
    first.wait(10)
    _eventually(lambda: [p.pid for p in _processors(live_server)] not in ([], [first.pid]))
    _processed(live_server, db, source, range(50, 80))  # ...is replaced, and works on
    assert len(_processors(live_server)) == 1
    log = (live_server.data_dir / "server.log").read_text()
    assert "The event processor's process ended (exit code -9)" in log


def test_a_server_stopped_or_killed_takes_its_processor_with_it(
    live_server: LiveServer, db: Database, source: SourceKey
) -> None:
    child = _the_processor(live_server)
    _processed(live_server, db, source, range(0, 20))
    live_server.stop()  # SIGTERM: uvicorn shuts down, the processor with it
    _eventually(lambda: _gone(child), seconds=10)

    live_server.start()
    child = _the_processor(live_server)
    live_server.kill()  # SIGKILL: no shutdown; the processor's pipe closes
    _eventually(lambda: _gone(child), seconds=15)

    live_server.start()  # the next server's processor takes over
    _processed(live_server, db, source, range(20, 30))


def test_the_processor_can_stay_a_thread_of_the_server(
    live_server: LiveServer, db: Database, source: SourceKey
) -> None:
    live_server.stop()
    live_server.env["OMNICANAL_PROCESSOR__OWN_PROCESS"] = "false"
    live_server.start()
    _processed(live_server, db, source, range(0, 10))
    assert _processors(live_server) == []
