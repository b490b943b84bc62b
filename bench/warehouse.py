"""Benchmark the warehouse sync: the store's processed events into DuckDB.

    python -m bench.warehouse                           # 1,000,000 events, SQLite
    python -m bench.warehouse --events 200000 --db all --no-write

The store is filled as `bench.process` fills it (realistic shop events written to the
log, then drained by the real processor), and synced twice, each sync in a process of
its own (`omnicanal.warehouse.sync.sync`, as `omnicanal warehouse sync` runs it), so
that its time and peak memory are its own:

* **first sync**: the empty warehouse takes the N events and every table;
* **incremental sync**: N more events are collected and processed (half from returning
  customers, whose profiles change, half from new ones), then synced.

Goal: 1,000,000 new events synced in under 30 s on SQLite, on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import insert, text

from bench.process import SOURCES, _person_events
from bench.servers import DurableCluster
from bench.system import append_to_docs, machine, markdown_table
from omnicanal.collect import service as collect_service
from omnicanal.collect.models import Event
from omnicanal.collect.schemas import SourceCreate
from omnicanal.collect.segment import Envelope, Limits, Row, normalise
from omnicanal.profiles.processor import Processor
from omnicanal.store.engine import Database, make_engine
from omnicanal.store.migrate import upgrade

console = Console(width=None if sys.stdout.isatty() else 200)
LOAD_AT_START = os.getloadavg()[0]

# One sync in a child process; prints its result as JSON.
SYNC = """
import sys, orjson
from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database, make_engine
from omnicanal.warehouse.sync import sync

settings = Settings(data_dir=sys.argv[1], database_url=sys.argv[2])
db = Database(make_engine(settings.resolved_database_url()))
print(orjson.dumps(sync(db, settings).to_dict()).decode())
"""


def sources(db: Database) -> dict[str, int]:
    """Create the shop's sources; return their ids by name."""
    with db.sessions.begin() as session:
        return {
            name: collect_service.create_source(
                session=session, data=SourceCreate(name=name, channel=channel)
            ).id
            for name, channel in SOURCES
        }


def fill(db: Database, ids: dict[str, int], events: int, first_person: int, tag: str) -> int:
    """Log about `events` shop messages of people from `first_person` on; return the next."""
    rng = random.Random(first_person)
    env = {
        name: Envelope(
            source_id=sid, received_at=datetime.now(UTC), limits=Limits(32_768, 32), historical=True
        )
        for name, sid in ids.items()
    }
    rows: list[dict[str, Any]] = []
    written, person = 0, first_person
    with _bar(f"log ({tag})", events) as advance:
        while written < events:
            for source, msg in _person_events(rng, person):
                msg["messageId"] = f"{tag}-{written}"
                row = normalise(msg, kind=None, env=env[source])
                assert isinstance(row, Row), row
                rows.append(row.columns(ids[source]))
                written += 1
            person += 1
            if len(rows) >= 20_000 or written >= events:
                with db.engine.begin() as conn:
                    conn.execute(insert(Event), rows)
                advance(written)
                rows = []
    return person


@contextmanager
def _bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar; yield the function that moves it."""
    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)


def process(db: Database) -> tuple[int, float]:
    """Drain the log with the real processor; return (events, seconds)."""
    started = time.perf_counter()
    with console.status("processing the log"):
        done = Processor(db).drain()
    return done, time.perf_counter() - started


def timed_sync(data: Path, url: str) -> dict[str, Any]:
    """Run one sync in a child process; return its result with the wall time."""
    started = time.perf_counter()
    with console.status("syncing the warehouse"):
        child = subprocess.run(
            [sys.executable, "-c", SYNC, str(data), url],
            capture_output=True,
            text=True,
            check=False,
        )
    if child.returncode:
        raise RuntimeError(child.stderr)
    result: dict[str, Any] = orjson.loads(child.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["file_mib"] = (data / "warehouse.duckdb").stat().st_size / 2**20
    return result


def one_backend(backend: str, events: int, root: Path) -> list[list[str]]:
    """Build the store, sync twice; return the table rows."""
    cluster = None
    data = root / "data"
    data.mkdir()
    if backend == "sqlite":
        url = f"sqlite:///{data / 'omnicanal.db'}"
    else:
        cluster = DurableCluster()
        cluster.start()
        url = cluster.create_database("bench")
    try:
        db = Database(make_engine(url))
        upgrade(db.engine)
        ids = sources(db)
        people = fill(db, ids, events, 0, "a")
        processed, _ = process(db)
        first = timed_sync(data, url)
        fill(db, ids, events, people // 2, "b")
        more, _ = process(db)
        second = timed_sync(data, url)
        with db.engine.connect() as conn:
            profiles = conn.execute(text("SELECT COUNT(*) FROM profile")).scalar_one()
        db.dispose()
    finally:
        if cluster is not None:
            cluster.stop()
    return [
        _row(backend, "first sync", processed, first, profiles),
        _row(backend, "incremental", more, second, profiles),
    ]


def _row(backend: str, kind: str, events: int, result: dict[str, Any], profiles: int) -> list[str]:
    """One line of the table; `events` is how many new events the sync had to take."""
    tables = result["tables"]
    return [
        backend,
        kind,
        f"{events:,}",
        f"{tables['events']['written']:,}",
        f"{tables['profiles']['written']:,}",
        f"{tables['orders']['written']:,}",
        f"{result['seconds']:.1f}",
        f"{events / result['seconds']:,.0f}",
        f"{result['wall']:.1f}",
        f"{result['peak_mib']:,.0f}",
        f"{profiles:,}",
        f"{result['file_mib']:,.0f}",
    ]


HEAD = (
    "database",
    "sync",
    "events processed",
    "events written",  # new ones, plus older ones given a new person_id
    "profiles written",
    "orders written",
    "sync s",
    "new events/s",
    "process wall s",
    "peak MiB",
    "profiles in store",
    "file MiB",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="Events per phase.")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "all"), default="sqlite")
    parser.add_argument("--no-write", action="store_true", help="Do not append to the docs.")
    args = parser.parse_args()
    m = machine()
    console.print(f"{m.cpu}, {m.cores} cores, {m.ram_gib:.0f} GiB, Python {m.python}, {m.date}")
    backends = ("sqlite", "postgresql") if args.db == "all" else (args.db,)
    rows: list[list[str]] = []
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            rows.extend(one_backend(backend, args.events, Path(tmp)))
    table = Table(*HEAD, title="Warehouse sync")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if not args.no_write:
        _write(m, rows, " ".join(sys.argv[1:]))


def _write(m: Any, rows: list[list[str]], argv: str) -> None:
    """Append the run to docs/benchmarks.md."""
    lines = [
        "",
        f"## Warehouse sync — {m.date}",
        "",
        f"- Machine: {m.cpu}, {m.cores} cores, {m.ram_gib:.0f} GiB RAM, Python {m.python}; "
        f"commit {m.commit}" + (f" (with uncommitted changes to {m.dirty})" if m.dirty else ""),
        f"- Command: `python -m bench.warehouse {argv}`".rstrip(),
        f"- Other work on the machine: load average {LOAD_AT_START:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end (2 cores).",
        "- The store holds realistic shop events (as in `bench.process`) processed by the real "
        "processor. Each sync runs in its own process (`omnicanal.warehouse.sync.sync`): "
        "the first takes the whole store into an empty warehouse; the incremental one takes "
        "as many new events again, half from returning customers. `events written` adds "
        "to the new events the older ones whose person changed (merges); `sync s` is the "
        "sync itself; `process wall s` adds the child's start-up and the closing of the "
        "file; `file MiB` is the file after that sync. Goal: 1,000,000 new events synced "
        "in under 30 s on SQLite.",
        "",
        *markdown_table(HEAD, rows),
    ]
    append_to_docs(lines, console.print)


if __name__ == "__main__":
    main()
