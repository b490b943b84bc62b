"""A sync killed with SIGKILL half-way leaves the warehouse as it was; the next completes it.

The killed sync runs `omnicanal.warehouse.sync.sync` in its own process over 150,000
new events read in one chunk: more than a DuckDB row group, which DuckDB writes to the
file before the commit, so part of the transaction is on disk when the process dies.
Its progress callback holds it after the events are loaded, so the kill lands
mid-transaction every time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import pytest

from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database
from omnicanal.warehouse.connect import Warehouse
from omnicanal.warehouse.state import read_state, row_counts
from omnicanal.warehouse.sync import status, sync
from tests.conftest import make_source
from tests.profiles.logs import write_log
from tests.warehouse.shop import mirrors, process

pytestmark = pytest.mark.slow

NEW_EVENTS = 150_000

# The sync as a process of its own; it stops (sleeps) once every new event is loaded.
CHILD = """
import sys, time
from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database, make_engine
from omnicanal.warehouse.sync import sync

settings = Settings(data_dir=sys.argv[1], database_url=sys.argv[2])
db = Database(make_engine(settings.resolved_database_url()))

def progress(step, done, total):
    print(step, done, flush=True)
    if step == "orders":
        time.sleep(600)

sync(db, settings, progress=progress, chunk_rows=200_000)
"""


def pages(count: int, start: int) -> list[dict[str, Any]]:
    """Page views of 3,000 visitors, a minute apart."""
    out = []
    for i in range(start, start + count):
        day, minute = divmod(i, 24 * 60)
        out.append(
            {
                "type": "page",
                "anonymousId": f"visitor-{i % 3_000}",
                "name": "Produit",
                "messageId": f"p{i}",
                "timestamp": f"2026-{1 + day // 28 % 12:02d}-{1 + day % 28:02d}T"
                f"{minute // 60:02d}:{minute % 60:02d}:00Z",
            }
        )
    return out


def test_a_sync_killed_mid_way_leaves_the_previous_state(
    db: Database, settings: Settings, database_url: str, warehouse: Warehouse
) -> None:
    source = make_source(db, "eshop", "web").id
    write_log(db, source, pages(5_000, 0))
    process(db)
    before = sync(db, settings)
    write_log(db, source, pages(NEW_EVENTS, 5_000))
    process(db)

    size_before = warehouse.path.stat().st_size
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(settings.data_dir), database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        seen = []
        for line in child.stdout:
            seen.append(line.split())
            if seen[-1][0] == "orders":
                break
        size_at_kill = warehouse.path.stat().st_size
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        errors = child.stderr.read()
    loaded = [int(done) for step, done in seen if step == "events"]
    assert loaded[-1:] == [NEW_EVENTS], errors
    assert size_at_kill > size_before  # uncommitted rows had reached the file

    with warehouse.connection() as con:
        state, rows = read_state(con), row_counts(con)
    assert state.watermarks["event_id"] == before.event_id == 5_000
    assert rows == {t.table: t.rows for t in before.tables}
    assert status(db, settings).syncs == 1

    resumed = sync(db, settings)
    assert resumed.table("events").written == NEW_EVENTS
    mirrors(db, warehouse)
