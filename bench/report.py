"""Render collection results as the Markdown section appended to docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass

from bench.results import HttpFigure, Profile, Results, StorageFigure
from bench.system import Machine

GOAL_BATCH_EPS = 100_000
GOAL_BATCH_P99_MS = 50.0
GOAL_TRACK_P99_MS = 5.0
_DB_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class Setup:
    """How the run was made, for the report's header."""

    command: str
    seconds: int
    warmup: int
    connections: int
    batch: int
    rate: int
    event_bytes: float
    background_cores: float
    nice: int
    sqlite_synchronous: str
    postgres_settings: str


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(ours: float, base: float | None) -> str:
    return f"{ours / base:.2f}×" if base else "–"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(*cells: str) -> list[str]:
    return [_row(*cells), _row(*("---" for _ in cells))]


_CPU_HEADER = "CPU cores: server / load gen / irq / other"


def _cpu(f: HttpFigure) -> str:
    c = f.run.cpu
    pg = f" + pg {c.postgres:.2f}" if f.db == "postgresql" else ""
    return f"{c.server:.2f}{pg} / {c.client:.2f} / {c.interrupts:.2f} / {c.other:.2f}"


def _windows(f: HttpFigure) -> str:
    w = f.run.windows
    return f"{_n(min(w))} – {_n(max(w))}" if w else "–"


def _http_row(f: HttpFigure, ours: HttpFigure | None) -> str:
    lat = f.run.latency
    ratio = _ratio(ours.events_per_s, f.events_per_s) if ours and ours is not f else "–"
    return _row(
        f.name,
        _n(f.events_per_s),
        _windows(f),
        _n(f.requests_per_s),
        _ms(lat.p50),
        _ms(lat.p90),
        _ms(lat.p99),
        _ms(lat.max),
        str(f.run.failed),
        f"{f.peak_mib:,.0f}",
        _cpu(f),
        ratio,
    )


def _batch_table(results: Results, db: str) -> list[str]:
    ours = results.find("omnicanal", "/v1/batch", db)
    candidates = (
        ours,
        results.find("omnicanal+processing", "/v1/batch", db),
        results.find("hello", "/v1/batch"),
        results.find("naive", "/v1/batch"),
    )
    rows = [f for f in candidates if f is not None]
    lines = _header(
        "server",
        "events/s",
        "stored/s per 5 s, min – max",
        "requests/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "peak MiB",
        _CPU_HEADER,
        "ours ÷ this",
    )
    lines += [_http_row(f, ours) for f in rows]
    for storage in results.storage:
        ratio = _ratio(ours.events_per_s, storage.rows_per_s) if ours else "–"
        name = f"executemany into SQLite, {storage.key} key (rows/s)"
        lines.append(_row(name, _n(storage.rows_per_s), *["–"] * 9, ratio))
    return lines


def _goal_batch(f: HttpFigure | None) -> str:
    if f is None:
        return ""
    eps, p99 = f.events_per_s, f.run.latency.p99
    met = eps >= GOAL_BATCH_EPS and p99 < GOAL_BATCH_P99_MS and f.run.failed == 0
    verdict = "**met**" if met else "**missed**"
    return (
        f"Goal ≥ {_n(GOAL_BATCH_EPS)} events/s with p99 < {GOAL_BATCH_P99_MS:.0f} ms and no "
        f"error: {verdict} ({_n(eps)} events/s, p99 {_ms(p99)} ms, {f.run.failed} errors)."
    )


def _track_table(results: Results) -> list[str]:
    figures = [f for f in results.http if f.endpoint == "/v1/track"]
    if not figures:
        return []
    lines = _header(
        "server",
        "requests/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "p99 from send ms",
        "client lag p99 ms",
        "errors",
        "peak MiB",
        _CPU_HEADER,
    )
    for f in figures:
        lat, sent, lag = f.run.latency, f.run.extra["from send"], f.run.extra["client lag"]
        lines.append(
            _row(
                f.name,
                _n(f.requests_per_s),
                _ms(lat.p50),
                _ms(lat.p90),
                _ms(lat.p99),
                _ms(lat.max),
                _ms(sent.p99),
                _ms(lag.p99),
                str(f.run.failed),
                f"{f.peak_mib:,.0f}",
                _cpu(f),
            )
        )
    lines.append(
        "\nLatency runs from the time each request was due; *p99 from send* from the time it "
        "left, and *client lag* is how late the client sent it (its own share, not the "
        "server's). Track requests carry one event each."
    )
    for f in figures:
        if f.key in ("omnicanal", "omnicanal+processing"):
            p99 = f.run.latency.p99
            met = p99 < GOAL_TRACK_P99_MS and f.run.failed == 0
            lines.append(
                f"\nGoal p99 < {GOAL_TRACK_P99_MS:.0f} ms ({f.name}): "
                f"{'**met**' if met else '**missed**'} (p99 {_ms(p99)} ms)."
            )
    return lines


def _checks(results: Results) -> list[str]:
    lines = _header("server", "endpoint", "events sent", "acknowledged", "stored", "check")
    for f in results.http:
        c = f.check
        stored = "–" if c.stored is None else _n(c.stored)
        lines.append(_row(f.name, f.endpoint, _n(c.sent), _n(c.acknowledged), stored, c.verdict))
    for s in results.storage:
        verdict = "OK" if s.rows_in_table == s.rows else "FAIL"
        name = f"executemany, {s.key} key"
        lines.append(_row(name, "–", _n(s.rows), _n(s.rows), _n(s.rows_in_table), verdict))
    return lines


_PROFILE_NOTE = (
    "*Own time* is the function on top of the Python stack, C code it calls included "
    "(sqlite3, psycopg, orjson); *inclusive* counts a function wherever it is on the stack."
)


def _profile(p: Profile) -> list[str]:
    core = p.rate * p.seconds
    lines = [
        f"**{p.label}**: py-spy at {p.rate} Hz for {p.seconds} s under the same load, in a "
        f"separate, unmeasured run: {p.samples:,} non-idle samples, {p.samples / core:.2f} "
        "threads' worth (py-spy's idea of idle is approximate; the CPU columns are exact). "
        "Threads: " + ", ".join(f"{name} {count / core:.2f}" for name, count in p.threads) + ".",
        "",
        *_header("own time: function (file)", "share of busy samples"),
    ]
    lines += [_row(f"`{name}`", f"{count / p.samples:.1%}") for name, count in p.own]
    lines += ["", *_header("omnicanal function, inclusive", "share of busy samples")]
    lines += [_row(f"`{name}`", f"{count / p.samples:.1%}") for name, count in p.inclusive]
    return lines


def _machine(m: Machine, s: Setup) -> list[str]:
    dirty = f" with uncommitted changes in {m.dirty}" if m.dirty else ""
    return [
        f"- Machine: {m.cpu}, {m.cores} cores, {m.ram_gib:.1f} GiB RAM, Python {m.python}; "
        f"server and load generator share the cores, over loopback.",
        f"- Code: commit `{m.commit}`{dirty}.",
        f"- Command: `{s.command}`",
        f"- Load: {s.batch}-event `/v1/batch` bodies of Segment track events "
        f"({s.event_bytes:.0f} bytes per event on average), wrk -t2 -c{s.connections}, "
        f"{s.warmup} s warm-up then {s.seconds} s measured; `/v1/track` open loop at "
        f"{s.rate:,} requests/s, latency from the scheduled send time.",
        f"- Durability: SQLite WAL, synchronous={s.sqlite_synchronous}; PostgreSQL "
        f"{s.postgres_settings}. A 2xx means the events are committed.",
        "- Server: `omnicanal serve`; for each endpoint, first collecting only (processor and "
        "warehouse sync off, as when `omnicanal process` workers do the processing), then, "
        "where a row says so, with the processor and sync running inside it as `serve` "
        "does by default.",
        f"- Background load before the run: {s.background_cores:.2f} cores; servers, "
        f"PostgreSQL and load generators ran at niceness {s.nice}. CPU columns, in "
        "cores' worth over the measured seconds: the server (plus PostgreSQL's processes), "
        "the load generator, the kernel's interrupt work (loopback networking), and *other*: "
        "other processes of the machine; below our niceness they mostly get what we leave "
        "idle, but they still share caches and memory bandwidth.",
    ]


def _storage_note(s: StorageFigure) -> str:
    return (
        f"executemany, {s.key} key: {_n(s.rows)} rows in {s.rows_per_transaction:,}-row "
        f"transactions, {s.db_seconds:.1f} s in executemany + COMMIT ({s.wall_seconds:.1f} s "
        "wall, the rest building rows); same pragmas as omnicanal's SQLite engine."
    )


def render(m: Machine, setup: Setup, results: Results) -> str:
    """Return the Markdown section for one run."""
    lines = [f"## Collection — {m.date}, commit `{m.commit}`", "", *_machine(m, setup), ""]
    measured = [db for db in _DB_NAMES if results.find("omnicanal", "/v1/batch", db)]
    for number, db in enumerate(measured, start=1):
        title = f"### {number}. `/v1/batch`, {_DB_NAMES[db]}, {setup.connections} connections"
        lines += [title, "", *_batch_table(results, db), ""]
        lines += [_goal_batch(results.find("omnicanal", "/v1/batch", db)), ""]
    has_baseline = results.storage or results.find("hello", "/v1/batch")
    if not measured and (has_baseline or results.find("naive", "/v1/batch")):
        lines += ["### Baselines, `/v1/batch` bodies", "", *_batch_table(results, ""), ""]
    lines += [_storage_note(s) for s in results.storage]
    lines += [""] if results.storage else []
    track = _track_table(results)
    if track:
        lines += [f"### `/v1/track`, one event, {setup.rate:,} requests/s open loop", ""]
        lines += [*track, ""]
    lines += ["### Stored against acknowledged", "", *_checks(results), ""]
    if results.profiles:
        lines += ["### Profiles", "", _PROFILE_NOTE, ""]
        for p in results.profiles:
            lines += [*_profile(p), ""]
    if results.notes:
        lines += ["### Notes", "", *(f"- {note}" for note in results.notes), ""]
    return "\n".join(lines)
