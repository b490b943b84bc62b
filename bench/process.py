"""Benchmark the event processor (identity + profile + processed event) on this machine.

    python -m bench.process                                  # 300,000 events, both databases
    python -m bench.process --events 50000 --db sqlite --lag-seconds 0

Two figures per database:

* **throughput**: the log is filled with realistic Segment messages of a shop's
  customers (anonymous browsing on several devices, identify at sign-in, orders with
  lines, store receipts with a loyalty card, newsletter engagement), then one
  processor drains it; events/s and the processor's peak memory.
* **lag**: `omnicanal serve` (processor off) takes `/v1/batch` requests at a constant
  rate while a processor in this process works the log; the lag of each event is the
  time from its acceptance (received) to the commit of its profile update.

The baseline printed beside the throughput is the same log read and parsed with no
processing (SELECT + orjson.loads of each payload): the floor any processor pays.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import insert, text

from bench.servers import (
    DurableCluster,
    basic_auth,
    free_port,
    omnicanal_command,
    peak_memory_kib,
    serve,
)
from bench.system import append_to_docs, machine, markdown_table
from omnicanal.collect import service as collect_service
from omnicanal.collect.models import Event
from omnicanal.collect.schemas import SourceCreate
from omnicanal.collect.segment import Envelope, Limits, Row, normalise
from omnicanal.profiles.processor import BatchResult, Processor
from omnicanal.store.engine import Database, make_engine
from omnicanal.store.migrate import upgrade

console = Console()
LOAD_AT_START = os.getloadavg()[0]
START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
SOURCES = (
    ("eshop", "web"),
    ("app", "app"),
    ("store-paris", "store:paris"),
    ("newsletter", "email"),
)
PRODUCTS = [
    (f"SKU-{i:04d}", f"Article {i}", random.Random(i).choice(("robes", "jeans", "vestes")))
    for i in range(300)
]


def _person_events(rng: random.Random, p: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """One person's events: browsing, sign-in, orders, a till receipt, newsletter clicks."""
    devices = [f"anon-{p}-{d}" for d in range(rng.randint(1, 3))]
    email = f"client{p}@exemple.fr"
    when = START + timedelta(minutes=rng.randint(0, 60 * 24 * 300))
    identified = rng.random() < 0.6
    card = f"CARD{p:08d}" if rng.random() < 0.4 else None
    for visit in range(rng.randint(1, 6)):
        device = rng.choice(devices)
        source = "app" if device.endswith("-2") else "eshop"
        when += timedelta(hours=rng.randint(1, 400))
        campaign = (
            {"source": "instagram", "medium": "paid_social", "name": "soldes"}
            if rng.random() < 0.2
            else None
        )
        context: dict[str, Any] = {"page": {"url": "https://boutique.example/", "referrer": ""}}
        if campaign:
            context["campaign"] = campaign
        for _ in range(rng.randint(2, 8)):
            sku, name, category = rng.choice(PRODUCTS)
            when += timedelta(seconds=rng.randint(5, 120))
            yield (
                source,
                {
                    "type": "page",
                    "anonymousId": device,
                    "name": category,
                    "timestamp": when.isoformat(),
                    "context": context,
                },
            )
            yield (
                source,
                {
                    "type": "track",
                    "anonymousId": device,
                    "event": "Product Viewed",
                    "properties": {"sku": sku, "name": name, "price": 49.9},
                    "timestamp": when.isoformat(),
                    "context": context,
                },
            )
        if identified and visit == 0:
            yield (
                source,
                {
                    "type": "identify",
                    "anonymousId": device,
                    "userId": f"user-{p}",
                    "traits": {"email": email, "firstName": "Prénom", "lastName": f"Nom{p}"},
                    "timestamp": when.isoformat(),
                },
            )
        if identified and rng.random() < 0.3:
            sku, name, category = rng.choice(PRODUCTS)
            yield (
                source,
                {
                    "type": "track",
                    "userId": f"user-{p}",
                    "anonymousId": device,
                    "event": "Order Completed",
                    "timestamp": when.isoformat(),
                    "properties": {
                        "order_id": f"W{p}-{visit}",
                        "total": 99.8,
                        "currency": "EUR",
                        "products": [{"sku": sku, "name": name, "price": 49.9, "quantity": 2}],
                    },
                },
            )
    if card:
        when += timedelta(days=rng.randint(1, 30))
        yield (
            "store-paris",
            {
                "type": "track",
                "anonymousId": f"till-{p}",
                "event": "Order Completed",
                "timestamp": when.isoformat(),
                "context": {"traits": {"card": card, "email": email}},
                "properties": {"order_id": f"T{p}", "total": 59.9},
            },
        )
    if identified:
        for _ in range(rng.randint(0, 4)):
            when += timedelta(days=rng.randint(1, 20))
            yield (
                "newsletter",
                {
                    "type": "track",
                    "userId": f"user-{p}",
                    "event": "Email Opened",
                    "timestamp": when.isoformat(),
                    "properties": {"campaign_name": "lettre"},
                },
            )


def fill(db: Database, events: int, seed: int = 1) -> int:
    """Write about `events` realistic messages to the log; return how many."""
    rng = random.Random(seed)
    with db.sessions.begin() as session:
        ids = {
            name: collect_service.create_source(
                session=session, data=SourceCreate(name=name, channel=channel)
            ).id
            for name, channel in SOURCES
        }
    env = {
        name: Envelope(
            source_id=sid, received_at=datetime.now(UTC), limits=Limits(32_768, 32), historical=True
        )
        for name, sid in ids.items()
    }
    rows: list[dict[str, Any]] = []
    written = person = 0
    with Progress(
        TextColumn("remplissage du journal"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("fill", total=events)
        while written < events:
            for source, msg in _person_events(rng, person):
                msg["messageId"] = f"m-{written}"
                row = normalise(msg, kind=None, env=env[source])
                assert isinstance(row, Row), row
                rows.append(row.columns(ids[source]))
                written += 1
            person += 1
            if len(rows) >= 20_000 or written >= events:
                with db.engine.begin() as conn:
                    conn.execute(insert(Event), rows)
                progress.update(task, completed=written)
                rows = []
    return written


def read_floor(db: Database) -> float:
    """Seconds to read and parse the whole log in batches: the floor of any processor."""
    started = time.perf_counter()
    last = 0
    with db.engine.connect() as conn:
        while True:
            rows = conn.execute(
                text("SELECT id, payload FROM collect_event WHERE id > :a ORDER BY id LIMIT 2000"),
                {"a": last},
            ).all()
            if not rows:
                break
            for row in rows:
                orjson.loads(row.payload)
            last = rows[-1].id
    return time.perf_counter() - started


def throughput(db: Database, events: int, *, read_ahead: bool) -> dict[str, float]:
    """Drain a filled log; return events/s, peak memory and profiles."""
    done = {"events": 0}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Progress(
        TextColumn("traitement" + (" (lecture anticipée)" if read_ahead else "")),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("process", total=events)

        def report(result: BatchResult) -> None:
            done["events"] += result.events
            progress.update(task, completed=done["events"])

        processor = Processor(db, on_batch=report, read_ahead=read_ahead)
        started = time.perf_counter()
        processor.drain()
        elapsed = time.perf_counter() - started
        helper_kib = sum(peak_memory_kib(child.pid) for child in multiprocessing.active_children())
        processor.close()
    with db.engine.connect() as conn:
        people = conn.execute(
            text("SELECT COUNT(*) FROM profile WHERE merged_into IS NULL")
        ).scalar_one()
        merges = conn.execute(text("SELECT COUNT(*) FROM identity_merge")).scalar_one()
        orders = conn.execute(text("SELECT COUNT(*) FROM orders")).scalar_one()
    return {
        "seconds": elapsed,
        "rate": done["events"] / elapsed,
        "peak_mib": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_before) / 1024,
        "helper_mib": helper_kib / 1024,
        "people": people,
        "merges": merges,
        "orders": orders,
    }


LAG_FIGURES = ("rate", "p50", "p99", "max", "backlog", "request_p50", "request_p99", "request_max")


def lag(url: str, data: Path, seconds: float, rate: int, backlog: int = 0) -> dict[str, float]:
    """Send `rate` events/s to a live server; measure acceptance-to-profile lag.

    With a `backlog`, that many events wait in the log before the first request: the
    processor works them off while requests arrive, which is when collection shares
    the database with it most. Lag is measured on the events sent, not the backlog's;
    the requests' own latency is measured too.
    """
    env = {
        **os.environ,
        "OMNICANAL_DATABASE_URL": url,
        "OMNICANAL_PROCESSOR__ENABLED": "false",
        "OMNICANAL_DATA_DIR": str(data),
    }
    db = Database(make_engine(url))
    upgrade(db.engine)
    with db.sessions.begin() as session:
        key = collect_service.create_source(
            session=session, data=SourceCreate(name="lag", channel="web")
        ).write_key
    waiting = fill(db, backlog, seed=2) if backlog else 0
    with db.engine.connect() as conn:
        floor = int(
            conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM collect_event")).scalar_one()
        )
    port = free_port()
    stop = threading.Event()

    processor = Processor(db, batch_size=2_000, read_ahead=True)  # as `serve` runs it
    # Each event's lag is measured when the batch holding it has committed.
    committed: list[int] = []

    def loop() -> None:
        before = 0
        while not stop.is_set():
            result = processor.process_batch()
            if result.events == 0:
                stop.wait(0.05)
                continue
            now = int(time.time() * 1000)
            with db.engine.connect() as conn:
                received = (
                    conn.execute(
                        text(
                            "SELECT received_ms FROM collect_event "
                            "WHERE id > :a AND id <= :b AND id > :floor"
                        ),
                        {"a": before, "b": result.last_event_id, "floor": floor},
                    )
                    .scalars()
                    .all()
                )
            committed.extend(now - int(r) for r in received)
            before = result.last_event_id

    log = data / "server.log"
    with serve(omnicanal_command(port, data), env=env, port=port, log=log):
        worker = threading.Thread(target=loop, daemon=True)
        worker.start()
        sent, achieved, answers = send_at_rate(port, key, seconds, rate)
        deadline = time.monotonic() + 60
        while len(committed) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        worker.join()
    processor.close()
    db.dispose()
    ordered = sorted(committed)
    latencies = sorted(answers)

    def pct(values: list[float] | list[int], p: float) -> float:
        return float(values[min(len(values) - 1, int(p * len(values)))]) if values else 0.0

    return {
        "rate": achieved,
        "events": len(ordered),
        "p50": pct(ordered, 0.5),
        "p99": pct(ordered, 0.99),
        "max": float(ordered[-1]) if ordered else 0.0,
        "request_p50": pct(latencies, 0.5),
        "request_p99": pct(latencies, 0.99),
        "request_max": latencies[-1] if latencies else 0.0,
        "backlog": float(waiting),
    }


def send_at_rate(port: int, key: str, seconds: float, rate: int) -> tuple[int, float, list[float]]:
    """Post 100-event batches at `rate` events/s for `seconds`.

    Returns the events sent, the rate achieved and each request's latency in ms.
    """
    answers: list[float] = []
    period = 100 / rate
    sent = 0
    rng = random.Random(7)
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": basic_auth(key)}
    ) as client:
        started = next_at = time.perf_counter()
        while time.perf_counter() - started < seconds:
            body = {
                "batch": [
                    {
                        "type": "track",
                        "anonymousId": f"a{rng.randint(0, 20_000)}",
                        "event": "Product Viewed",
                        "messageId": f"lag-{sent + i}",
                        "properties": {"sku": "SKU-1"},
                    }
                    for i in range(100)
                ]
            }
            posted = time.perf_counter()
            client.post("/v1/batch", json=body).raise_for_status()
            answers.append((time.perf_counter() - posted) * 1000)
            sent += 100
            next_at += period
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        return sent, sent / (time.perf_counter() - started), answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument("--lag-seconds", type=float, default=30.0)
    parser.add_argument("--lag-rate", type=int, default=5_000)
    parser.add_argument(
        "--lag-backlog", type=int, default=0,
        help="events waiting in the log when the lag run starts (the processor has a backlog)",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="Do not append to the docs.")
    args = parser.parse_args()
    m = machine()
    console.print(f"{m.cpu}, {m.cores} cores, {m.ram_gib:.0f} GiB, Python {m.python}, {m.date}")
    table = Table(
        "database",
        "events",
        "events/s",
        "events/s, no read-ahead",
        "read+parse floor events/s",
        "ratio",
        "people",
        "merges",
        "orders",
        "peak MiB",
        "helper peak MiB",
        "lag rate",
        "lag p50 ms",
        "lag p99 ms",
        "lag max ms",
        "backlog",
        "/v1/batch p50 ms",
        "/v1/batch p99 ms",
        "/v1/batch max ms",
        title="Event processing",
    )
    backends = ("sqlite", "postgresql") if args.db == "all" else (args.db,)
    rows = [_measure(backend, args) for backend in backends]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if not args.no_write:
        _write(m, rows, table, " ".join(sys.argv[1:]), args.lag_rate)


def _measure(backend: str, args: argparse.Namespace) -> list[str]:
    """Fill a log, drain it alone and with the read-ahead helper, measure the lag: a row."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cluster = None
        if backend == "sqlite":
            url = f"sqlite:///{root / 'bench.db'}"
            lag_url = f"sqlite:///{root / 'lag' / 'omnicanal.db'}"
        else:
            cluster = DurableCluster()
            cluster.start()
            url = cluster.create_database("bench")
            lag_url = cluster.create_database("lag")
        try:
            db = Database(make_engine(url))
            upgrade(db.engine)
            count = fill(db, args.events)
            db.dispose()
            # The same log twice: drained by the processor alone, and with its helper.
            if cluster is None:
                shutil.copy(root / "bench.db", root / "alone.db")
                alone_url = f"sqlite:///{root / 'alone.db'}"
            else:
                alone_url = cluster.create_database("alone", template="bench")
            alone_db = Database(make_engine(alone_url))
            floor = read_floor(alone_db)
            single = throughput(alone_db, count, read_ahead=False)
            alone_db.dispose()
            db = Database(make_engine(url))
            figures = throughput(db, count, read_ahead=True)
            db.dispose()
            lagged = dict.fromkeys(LAG_FIGURES, 0.0)
            if args.lag_seconds > 0:
                (root / "lag").mkdir(exist_ok=True)
                lagged = lag(
                    lag_url, root / "lag", args.lag_seconds, args.lag_rate, args.lag_backlog
                )
        finally:
            if cluster is not None:
                cluster.stop()
        return [
            backend,
            f"{count:,}",
            f"{figures['rate']:,.0f}",
            f"{single['rate']:,.0f}",
            f"{count / floor:,.0f}",
            f"{figures['rate'] / (count / floor):.2f}",
            f"{figures['people']:,}",
            f"{figures['merges']:,}",
            f"{figures['orders']:,}",
            f"{figures['peak_mib']:,.0f}",
            f"{figures['helper_mib']:,.0f}",
            f"{lagged['rate']:,.0f}",
            f"{lagged['p50']:.0f}",
            f"{lagged['p99']:.0f}",
            f"{lagged['max']:.0f}",
            f"{lagged['backlog']:,.0f}",
            f"{lagged['request_p50']:.0f}",
            f"{lagged['request_p99']:.0f}",
            f"{lagged['request_max']:.0f}",
        ]


def _write(m: Any, rows: list[list[str]], table: Table, argv: str, lag_rate: int) -> None:
    """Append the run to docs/benchmarks.md."""
    head = [str(c.header).replace("\n", " ") for c in table.columns]
    lines = [
        "",
        f"## Event processing — {m.date}",
        "",
        f"- Machine: {m.cpu}, {m.cores} cores, {m.ram_gib:.0f} GiB RAM, Python {m.python}; "
        f"commit {m.commit}" + (f" (with uncommitted changes to {m.dirty})" if m.dirty else ""),
        f"- Command: `python -m bench.process {argv}`".rstrip(),
        f"- Other work on the machine: load average {LOAD_AT_START:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end "
        "(2 cores; the floor column, measured in the same run, shows how fast the machine "
        "was).",
        "- Throughput: a log of realistic shop events (anonymous browsing on 1-3 devices, "
        "identify at sign-in, orders with lines, till receipts with a loyalty card, newsletter "
        "opens) drained by one processor in this process: identity resolution, profile update, "
        "processed event, orders, in batches of 2,000 per transaction, with its read-ahead "
        "helper process (as `serve` and `omnicanal process` run it); beside it, a copy of the "
        "same log drained by the processor alone. The floor reads and parses the same log with "
        "no processing.",
        f"- Lag: `omnicanal serve` (processor off) takes 100-event `/v1/batch` requests at "
        f"{lag_rate:,} events/s while one processor works the log; lag = commit of the event's "
        "profile update minus its acceptance time (backlog: events already waiting in the log "
        "when the requests start, which the processor works off meanwhile; their own lag is not "
        "counted). `/v1/batch` columns: each request's latency as the client saw it. Goal: "
        "≥ 30,000 events/s on one worker, lag p99 < 1 s at 5,000 events/s.",
        "",
        *markdown_table(head, rows),
    ]
    append_to_docs(lines, console.print)


if __name__ == "__main__":
    main()
