"""The background loop of `serve`: syncs as the store changes, survives failures."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database
from omnicanal.warehouse.connect import Warehouse
from omnicanal.warehouse.sync import run, status
from tests.warehouse.shop import Shop, mirrors

# A sync in another process, as `omnicanal warehouse sync` would run beside `serve`.
OTHER_SYNC = """
import sys
from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database, make_engine
from omnicanal.warehouse.sync import sync

settings = Settings(data_dir=sys.argv[1], database_url=sys.argv[2])
print(sync(Database(make_engine(settings.resolved_database_url())), settings).event_id)
"""


def eventually(condition: Callable[[], bool], seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def looping(settings: Settings, db: Database) -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(stop, settings, db), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()


def _fast(settings: Settings, **changes: object) -> Settings:
    warehouse = settings.warehouse.model_copy(update={"sync_interval_seconds": 0.05, **changes})
    return settings.model_copy(update={"warehouse": warehouse})


def test_the_loop_follows_the_store_and_leaves_the_file_free_between_syncs(
    shop: Shop, db: Database, settings: Settings, database_url: str, warehouse: Warehouse
) -> None:
    fast = _fast(settings)
    with looping(fast, db):
        assert eventually(lambda: status(db, fast).syncs >= 1)
        shop.opening_day()
        assert eventually(lambda: status(db, fast).rows["events"] == 10)
        other = subprocess.run(
            [sys.executable, "-c", OTHER_SYNC, str(settings.data_dir), database_url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert other.returncode == 0, other.stderr
    assert other.stdout.split() == ["10"]
    mirrors(db, warehouse)


def test_a_failing_sync_is_logged_and_retried(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = settings.data_dir / "not-a-folder"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the warehouse's folder should be")
    broken = _fast(settings, path=blocked / "warehouse.duckdb")
    with caplog.at_level(logging.ERROR, logger="omnicanal.warehouse.sync"), looping(broken, db):
        assert eventually(lambda: len(caplog.records) >= 2)
    assert all("retrying" in r.getMessage() for r in caplog.records)
