"""One writer, readers beside it: threads of one process, and other processes.

DuckDB lets one process write a file, or several read it. Threads of one process share
its instance (each with its own connection); another process waits its turn, told who
holds the file, and gives up after a bounded wait naming that process.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database
from omnicanal.warehouse.connect import Warehouse, WarehouseBusyError
from omnicanal.warehouse.steps import SyncResult
from omnicanal.warehouse.sync import sync
from tests.warehouse.shop import Shop, at, process

# Another process holding the file: for writing (a sync) or for reading (a report).
HOLD = """
import sys
from pathlib import Path
from omnicanal.warehouse.connect import Warehouse

warehouse = Warehouse(Path(sys.argv[1]))
with warehouse.writer() if sys.argv[2] == "write" else warehouse.connection():
    print("holding", flush=True)
    sys.stdin.readline()
"""


def count_events(warehouse: Warehouse) -> int:
    with warehouse.reader() as tables:
        return int(tables["events"].count().to_pyarrow().as_py())


def test_reader_threads_see_the_last_commit_while_a_sync_writes(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse
) -> None:
    shop.opening_day()
    sync(db, settings)
    shop.send(shop.web, {"type": "page", "userId": "u2", "name": "Nouveautés", "timestamp": at(30)})
    process(db)
    during: list[int] = []

    def progress(step: str, _done: int, _total: int | None) -> None:
        if step == "orders" and not during:  # the new event is loaded, not committed
            with ThreadPoolExecutor(3) as pool:
                during.extend(pool.map(lambda _: count_events(warehouse), range(6)))

    sync(db, settings, progress=progress)
    assert during == [10] * 6
    assert count_events(warehouse) == 11


def test_a_sync_waits_for_the_readers_of_its_process(
    shop: Shop, db: Database, settings: Settings
) -> None:
    shop.opening_day()
    told = threading.Event()
    warehouse = Warehouse.from_settings(settings, on_wait=lambda _message: told.set())
    release = threading.Event()
    reading = threading.Event()

    def reader() -> None:
        with warehouse.connection():  # read-only: nobody writes yet
            reading.set()
            release.wait(60)

    holder = threading.Thread(target=reader)
    holder.start()
    reading.wait(60)
    done: list[SyncResult] = []
    syncing = threading.Thread(target=lambda: done.append(sync(db, settings, warehouse=warehouse)))
    syncing.start()
    assert told.wait(60)
    assert not done
    release.set()
    holder.join(60)
    syncing.join(60)
    assert done[0].table("events").rows == 10


@contextmanager
def held_by_another_process(path: Path, mode: str) -> Iterator[subprocess.Popen[str]]:
    """A process holding the file until the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "holding"
        try:
            yield child
        finally:
            child.stdin.write("\n")
            child.stdin.flush()
            child.wait(60)


@pytest.mark.parametrize("mode", ["read", "write"])
def test_a_process_holding_the_file_makes_a_sync_wait_then_it_is_served(
    shop: Shop, db: Database, settings: Settings, mode: str
) -> None:
    shop.opening_day()
    with Warehouse.from_settings(settings).writer():
        pass  # the file exists before the other process opens it
    messages: list[str] = []
    told = threading.Event()

    def waiting(message: str) -> None:
        messages.append(message)
        told.set()

    warehouse = Warehouse.from_settings(settings, on_wait=waiting)
    done: list[SyncResult] = []
    with held_by_another_process(warehouse.path, mode) as child:
        syncing = threading.Thread(
            target=lambda: done.append(sync(db, settings, warehouse=warehouse))
        )
        syncing.start()
        assert told.wait(60)
        assert not done
    syncing.join(60)
    assert f"process {child.pid}" in messages[0]
    assert done[0].table("events").rows == 10


@pytest.mark.parametrize("mode", ["read", "write"])
def test_after_the_wait_the_error_names_the_process_holding_the_file(
    db: Database, settings: Settings, mode: str
) -> None:
    with Warehouse.from_settings(settings).writer():
        pass
    impatient = Warehouse.from_settings(settings, wait_seconds=0.5)
    with held_by_another_process(impatient.path, mode) as child:
        with pytest.raises(WarehouseBusyError) as caught:
            sync(db, settings, warehouse=impatient)
        if mode == "read":  # processes read side by side
            assert count_events(impatient) == 0
        else:
            with pytest.raises(WarehouseBusyError), impatient.reader():
                pass
    assert f"process {child.pid}" in caught.value.detail
    assert f"process {child.pid}" in str(caught.value.extensions()["holder"])
