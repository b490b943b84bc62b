"""Benchmark event collection against its baselines, on this machine, over loopback.

    python -m bench.collect                       # every figure, 60 s each, appended to
                                                  # docs/benchmarks.md
    python -m bench.collect --seconds 5 --no-write            # a quick smoke run
    python -m bench.collect --db sqlite --only collect --only naive

Figures: omnicanal's /v1/batch (100-event bodies, wrk, 16 connections) on SQLite
and on a throwaway PostgreSQL cluster with fsync on; /v1/track at a constant rate
(open loop); and, in the same run, the baselines: a FastAPI "hello" endpoint (the
HTTP ceiling), plain executemany into SQLite (the storage ceiling) and the naive
commit-per-request app. After each server, the events stored are checked against
the events acknowledged.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench import loadgen, profile, report
from bench.events import Template, batch_template, track_template
from bench.measure import CpuWindow, Sampler, background
from bench.results import Check, HttpFigure, Latency, Results, Run, StorageFigure
from bench.servers import (
    DurableCluster,
    EventProbe,
    Server,
    app_command,
    basic_auth,
    create_source,
    free_port,
    omnicanal_command,
    serve,
    stored_counts,
)
from bench.storage import KEYS, executemany_baseline
from bench.system import ROOT, machine, renice, wait_quiet
from omnicanal.core.settings import Settings

FIGURES = ("collect", "track", "hello", "executemany", "naive")
DOCS = ROOT / "docs" / "benchmarks.md"
_DOC_HEAD = (
    "# Benchmarks\n\nResults appended by the scripts of `bench/` (see CONVENTIONS.md), "
    "newest last. Each section names its machine, commit and command.\n"
)
console = Console()


@dataclass(frozen=True)
class Options:
    """What to measure and for how long."""

    seconds: int
    warmup: int
    connections: int
    batch: int
    rate: int
    dbs: tuple[str, ...]
    only: frozenset[str]
    write: bool
    keep: bool
    profile: int
    wait_quiet: int
    nice: int
    command: str
    workers: int = 1
    processing: bool = True  # also measure /v1/batch with the processor inside the server


class Bench:
    """Runs the figures in order, with progress, and collects their results."""

    def __init__(self, options: Options, workdir: Path, progress: Progress) -> None:
        self.o = options
        self.workdir = workdir
        self.progress = progress
        self.nonce = itertools.count(1)
        self.results = Results()
        self.cluster: DurableCluster | None = None
        self.postgres = "not run"
        self.batch = batch_template(options.batch)
        self.track = track_template()
        self.batch_file = self._save(self.batch, "batch.json")
        self.track_file = self._save(self.track, "track.json")

    def _save(self, template: Template, name: str) -> Path:
        path = self.workdir / name
        path.write_text(template.text)
        return path

    def log(self, message: str) -> None:
        """Print a line above the progress bars."""
        self.progress.console.log(message)

    @contextmanager
    def phase(self, description: str, seconds: float) -> Iterator[loadgen.Tick]:
        """Show a progress bar for one timed phase; yield its tick function."""
        task = self.progress.add_task(description, total=seconds)
        try:
            yield lambda elapsed: self.progress.update(task, completed=elapsed)
        finally:
            self.progress.update(task, completed=seconds)

    # -- load runs ---------------------------------------------------------------------

    def _wrk(
        self, server: Server, path: str, seconds: int, label: str, sampler: Sampler | None = None
    ) -> loadgen.Load:
        with self.phase(label, seconds) as progress_tick:
            tick = progress_tick if sampler is None else sampler.wrap(progress_tick)
            return loadgen.wrk(
                server.url(path),
                template=self.batch_file,
                nonce=next(self.nonce),
                authorization=server.authorization,
                seconds=seconds,
                connections=self.o.connections,
                tick=tick,
            )

    def _batch_load(
        self, server: Server, name: str, probe: EventProbe | None = None
    ) -> tuple[Run, Check]:
        """Warm up, then measure; return the measured run and the counts of both."""
        warm = self._wrk(server, "/v1/batch", self.o.warmup, f"{name}: warm-up")
        sampler = Sampler(probe)
        window = CpuWindow(server, self.cluster)
        load = self._wrk(server, "/v1/batch", self.o.seconds, f"{name}: /v1/batch", sampler)
        cpu = window.close(load.client_cpu_s)
        r = load.report
        errors = ("connect_errors", "read_errors", "write_errors", "timeouts")
        failed = r["responses"] - r["ok"] + sum(r[k] for k in errors)
        latency = Latency.from_us(r["latency_us"])
        run = Run(r["duration_us"] / 1e6, r["ok"], failed, latency, cpu, {}, sampler.rates())
        if failed or warm.report["first_error"]:
            sample = r["first_error"] or warm.report["first_error"]
            self.results.notes.append(f"{name}: {failed:,} failed requests; first: `{sample}`")
        sent = (warm.report["sent"] + r["sent"]) * self.o.batch
        acked = (warm.report["ok"] + r["ok"]) * self.o.batch
        return run, Check(sent, acked, None)

    def _track_load(self, server: Server, name: str) -> tuple[Run, Check]:
        total = self.o.warmup + self.o.seconds
        command = [
            sys.executable,
            *("-m", "bench.openloop", "--port", str(server.port), "--path", "/v1/track"),
            *("--rate", str(self.o.rate), "--seconds", str(self.o.seconds)),
            *("--warmup", str(self.o.warmup), "--template", str(self.track_file)),
            *("--nonce", str(next(self.nonce)), "--authorization", server.authorization or ""),
        ]
        with self.phase(f"{name}: /v1/track at {self.o.rate:,}/s", total) as tick:
            window = CpuWindow(server, self.cluster)
            load = loadgen.run_child(command, seconds=total, tick=tick, mark="OPENLOOP ")
            cpu = window.close(load.client_cpu_s)
        r = load.report
        failed = r["sent"] - r["ok"]
        extra = {
            "from send": Latency.from_us(r["service_us"]),
            "client lag": Latency.from_us(r["send_lag_us"]),
        }
        # The window spans the warm-up too; the rate is fixed, so CPU shares hold.
        ok = r["ok"] - (r["sent"] - r["measured"])
        run = Run(self.o.seconds, ok, failed, Latency.from_us(r["latency_us"]), cpu, extra)
        return run, Check(r["sent"], r["ok"], None)

    # -- figures -----------------------------------------------------------------------

    def omnicanal(self, db: str, endpoint: str, *, processing: bool = False) -> None:
        """Measure omnicanal on one database and endpoint, on a fresh data folder.

        Each endpoint runs with the server collecting only (processing and the warehouse
        sync off, as when `omnicanal process` workers run elsewhere), and with
        `processing` as `serve` runs by default: processor and sync beside collection.
        """
        name = f"omnicanal, {report._DB_NAMES[db]}"
        if processing:
            name += ", processor in the server"
        key = "omnicanal+processing" if processing else "omnicanal"
        folder = f"omnicanal-{db}-{endpoint.strip('/').replace('/', '-')}"
        data = self.workdir / (folder + ("-processing" if processing else ""))
        env: dict[str, str] = {}
        if not processing:
            env["OMNICANAL_PROCESSOR__ENABLED"] = "false"
            env["OMNICANAL_WAREHOUSE__SYNC_ENABLED"] = "false"
        if db == "postgresql":
            assert self.cluster is not None
            database = f"bench_{data.name.replace('-', '_')}"
            env["OMNICANAL_DATABASE_URL"] = self.cluster.create_database(database)
        data.mkdir(parents=True)
        write_key = create_source(data, env)
        port = free_port()
        command = omnicanal_command(port, data, workers=self.o.workers)
        url = env.get("OMNICANAL_DATABASE_URL")
        probe = EventProbe(postgres=url) if url else EventProbe(sqlite=data / "omnicanal.db")
        with serve(command, env=env, port=port, log=data / "server.log") as server:
            server.authorization = basic_auth(write_key)
            self.log(f"{name}: serving on port {port}, pid {server.pid}")
            if endpoint == "/v1/batch":
                run, check = self._batch_load(server, name, probe)
                if not processing:
                    check = self._maybe_profile(server, db, name, check)
            else:
                run, check = self._track_load(server, name)
            peak = server.peak_memory_kib() / 1024
        probe.close()
        stored, rejected = stored_counts(data, env)
        check = Check(check.sent, check.acknowledged, stored, rejected)
        per_request = self.o.batch if endpoint == "/v1/batch" else 1
        figure = HttpFigure(name, key, db, endpoint, per_request, run, check, peak)
        self._add(figure)

    def _maybe_profile(self, server: Server, db: str, name: str, check: Check) -> Check:
        """Profile the server under load in an extra, unmeasured wrk run."""
        if not self.o.profile or profile.py_spy() is None:
            return check
        out = self.workdir / f"py-spy-{db}.txt"
        command = [
            profile.py_spy() or "py-spy",
            *("record", "-p", str(server.pid), "-d", str(self.o.profile), "-r", "100"),
            *("--threads", "--subprocesses", "--format", "raw", "-o", str(out)),
        ]
        with background(command):
            load = self._wrk(server, "/v1/batch", self.o.profile + 3, f"{name}: profiling")
        self.results.profiles.append(profile.summarise(out, self.o.profile, label=name))
        sent = check.sent + load.report["sent"] * self.o.batch
        return Check(sent, check.acknowledged + load.report["ok"] * self.o.batch, None)

    def hello(self, endpoint: str) -> None:
        """Measure the FastAPI hello app: the HTTP ceiling."""
        port = free_port()
        log = self.workdir / f"hello-{endpoint.strip('/').replace('/', '-')}.log"
        with serve(app_command("hello", port), env={}, port=port, log=log) as server:
            if endpoint == "/v1/batch":
                run, check = self._batch_load(server, "hello")
            else:
                run, check = self._track_load(server, "hello")
            peak = server.peak_memory_kib() / 1024
        per_request = self.o.batch if endpoint == "/v1/batch" else 1
        name = "FastAPI hello (HTTP ceiling)"
        self._add(HttpFigure(name, "hello", "", endpoint, per_request, run, check, peak))

    def naive(self) -> None:
        """Measure the naive commit-per-request app."""
        port = free_port()
        db = self.workdir / "naive.db"
        log = self.workdir / "naive.log"
        probe = EventProbe(sqlite=db, table="event")
        with serve(app_command("naive", port, db), env={}, port=port, log=log) as server:
            run, check = self._batch_load(server, "naive", probe)
            peak = server.peak_memory_kib() / 1024
        probe.close()
        with sqlite3.connect(db) as conn:
            (stored,) = conn.execute("SELECT count(*) FROM event").fetchone()
        check = Check(check.sent, check.acknowledged, stored)
        name = "naive app, INSERT OR IGNORE + commit per request"
        self._add(HttpFigure(name, "naive", "", "/v1/batch", self.o.batch, run, check, peak))

    def executemany(self) -> None:
        """Measure plain executemany into SQLite, both kinds of key: the storage ceiling."""
        for key in KEYS:
            with self.phase(f"executemany into SQLite, {key} key", self.o.seconds) as tick:
                r = executemany_baseline(
                    self.workdir / f"executemany-{key}.db",
                    self.batch,
                    key=key,
                    seconds=self.o.seconds,
                    tick=tick,
                )
            figure = StorageFigure(
                key,
                r.rows,
                r.rows_per_second,
                r.db_seconds,
                r.wall_seconds,
                r.rows_in_table,
                r.rows_per_transaction,
            )
            self.results.storage.append(figure)
            self.log(f"executemany, {key} key: {r.rows_per_second:,.0f} rows/s")

    def _add(self, figure: HttpFigure) -> None:
        self.results.http.append(figure)
        lat = figure.run.latency
        self.log(
            f"{figure.name} {figure.endpoint}: {figure.events_per_s:,.0f} events/s, "
            f"p99 {lat.p99:.1f} ms, {figure.run.failed} errors; {figure.check.verdict}"
        )

    # -- the whole run -----------------------------------------------------------------

    def run(self) -> Results:
        """Run the chosen figures; start and stop PostgreSQL around them if needed."""
        only = self.o.only
        try:
            if "postgresql" in self.o.dbs and only & {"collect", "track"}:
                self.cluster = DurableCluster()
                self.cluster.start()
                self.postgres = self.cluster.describe()
                self.log(f"PostgreSQL on port {self.cluster.port}: {self.postgres}")
            for db in self.o.dbs if "collect" in only else ():
                self.omnicanal(db, "/v1/batch")
                if self.o.processing:
                    self.omnicanal(db, "/v1/batch", processing=True)
            if "hello" in only:
                self.hello("/v1/batch")
            if "naive" in only:
                self.naive()
            if "executemany" in only:
                self.executemany()
            for db in self.o.dbs if "track" in only else ():
                self.omnicanal(db, "/v1/track")
                if self.o.processing:
                    self.omnicanal(db, "/v1/track", processing=True)
            if "track" in only:
                self.hello("/v1/track")
        finally:
            if self.cluster is not None:
                self.cluster.stop()
        return self.results


def _arguments(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.collect",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument("--seconds", type=int, default=60, help="Measured seconds per figure.")
    parser.add_argument("--warmup", type=int, help="Warm-up seconds (default: seconds/12, 1–5).")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100, help="Events per /v1/batch body.")
    parser.add_argument("--rate", type=int, default=1000, help="/v1/track requests per second.")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument(
        "--only", choices=FIGURES, action="append", help="Run only this figure (repeatable)."
    )
    parser.add_argument("--no-write", action="store_true", help="Print, don't append to docs.")
    parser.add_argument("--keep", action="store_true", help="Keep the data folders and logs.")
    parser.add_argument(
        "--profile", type=int, default=10, help="py-spy seconds on each /v1/batch server (0: off)."
    )
    parser.add_argument(
        "--wait-quiet", type=int, default=120, help="Wait up to N s for an idle machine."
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="omnicanal server processes (serve --workers)."
    )
    parser.add_argument(
        "--no-processing",
        action="store_true",
        help="Skip the runs with the processor inside the server.",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="Niceness of the servers and load generators (below 0 needs root), so other "
        "work on a shared machine disturbs them less; the CPU columns show what remains.",
    )
    args = parser.parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    return Options(
        seconds=args.seconds,
        warmup=args.warmup if args.warmup is not None else max(1, min(5, args.seconds // 12)),
        connections=args.connections,
        batch=args.batch,
        rate=args.rate,
        dbs=("sqlite", "postgresql") if args.db == "all" else (args.db,),
        only=frozenset(args.only or FIGURES),
        write=not args.no_write,
        keep=args.keep,
        profile=args.profile,
        wait_quiet=args.wait_quiet,
        nice=args.nice,
        workers=args.workers,
        processing=not args.no_processing,
        command=shlex.join(["python", "-m", "bench.collect", *raw]),
    )


def _append(section: str) -> None:
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    head = "" if DOCS.exists() else _DOC_HEAD
    with DOCS.open("a") as out:
        out.write(f"{head}\n{section}")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the results and append them to docs/benchmarks.md."""
    options = _arguments(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    nice = renice(options.nice, console.log)
    background = wait_quiet(options.wait_quiet, console.log)
    workdir = Path(tempfile.mkdtemp(prefix="omnicanal-bench-"))
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            bench = Bench(options, workdir, progress)
            results = bench.run()
        setup = report.Setup(
            command=options.command,
            seconds=options.seconds,
            warmup=options.warmup,
            connections=options.connections,
            batch=options.batch,
            rate=options.rate,
            event_bytes=bench.batch.body_bytes / options.batch,
            background_cores=background,
            nice=nice,
            sqlite_synchronous=Settings().sqlite_synchronous.upper(),
            postgres_settings=bench.postgres,
        )
        section = report.render(machine(), setup, results)
    finally:
        if options.keep:
            console.log(f"data folders and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(section)  # plain Markdown: wide tables, easy to copy
    if options.write:
        _append(section)
        console.log(f"appended to {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
