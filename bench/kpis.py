"""Benchmark the KPI reports on a synthetic warehouse, against plain pandas on the same tables.

    python -m bench.kpis --events 10000000 --customers 1000000      # appends to the docs
    python -m bench.kpis --events 1000000 --customers 100000 --no-write

The warehouse comes from bench.warehouse_data (cached under ~/.cache/omnicanal-bench).
The report period is one month (`--start`, `--days`) compared with the month before.
`overview` (every headline KPI of both periods: one query) and every report of the
catalogue, as the API answers it, with its default parameters and heavier variants, run
`--repeat` times on DuckDB; the first run is reported apart (cold caches). The same
overview KPIs are then computed with straightforward pandas code on the tables loaded
into pandas (load time apart), checked against ours, and the times compared.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.system import append_to_docs, machine, markdown_table
from bench.warehouse_data import cached
from omnicanal.analytics import catalogue as _registered  # noqa: F401 (fills the registry)
from omnicanal.analytics import kpis
from omnicanal.analytics import reports as report_registry
from omnicanal.analytics.kpis import _values as kpi_values
from omnicanal.analytics.kpis_base import change
from omnicanal.analytics.scope import Scope, Tables
from omnicanal.warehouse.schema import SCHEMAS

console = Console(width=None if sys.stdout.isatty() else 200)
GOAL_OVERVIEW_S = 1.0
GOAL_REPORT_S = 2.0
SERIES = ("revenue", "orders", "buyers", "new_customers", "visits", "conversion_rate")
SERIES += ("marketing_cost", "roas")


@dataclass(frozen=True)
class Timing:
    """Seconds of each run of one report."""

    name: str
    runs: list[float]
    cpu: list[float]  # CPU seconds of this process (every DuckDB thread) per run

    @property
    def first(self) -> float:
        return self.runs[0]

    @property
    def warm(self) -> float:
        """Return the median of the runs after the first (the first alone if only one)."""
        return statistics.median(self.runs[1:] or self.runs)

    @property
    def warm_cpu(self) -> float:
        """Return the median CPU time of the runs after the first."""
        return statistics.median(self.cpu[1:] or self.cpu)


def open_tables(path: Path) -> Tables:
    """Open the warehouse file read-only as Ibis tables."""
    con = ibis.duckdb.connect(str(path), read_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ibis 12 on DuckDB 2.0
        return {name: con.table(name) for name in SCHEMAS}


def _cpu() -> float:
    used = os.times()
    return used.user + used.system


def timed(name: str, call: Callable[[], object], repeat: int) -> tuple[Timing, Any]:
    runs, cpu, result = [], [], None
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), _cpu()
        result = call()
        runs.append(time.perf_counter() - started)
        cpu.append(_cpu() - cpu_started)
    return Timing(name, runs, cpu), result


#: Every report of the catalogue with its default parameters, then the heavier variants a
#: dashboard asks for (per channel, Markov credit, a year of cohorts...).
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    *((name, {}) for name in sorted(report_registry.REGISTRY)),
    ("channels", {"compare": "year"}),
    ("channels", {"model": "markov"}),
    ("channels", {"by": "media_class", "model": "linear"}),
    ("kpis", {"segment": "omnichannel"}),
    ("kpis", {"channel": "email"}),
    ("stages", {"by": "channel"}),
    ("funnel", {"by": "channel"}),
    ("paths", {"before": "purchase"}),
    ("paths", {"level": "media_class"}),
    ("switches", {"into_purchase": True}),
    ("attribution", {"model": ["markov", "shapley"]}),
    ("clv", {"view": "customers"}),
    ("cohorts", {"from": "year"}),
    ("timeseries", {"grain": "week", "from": "year"}),
)


def reports(tables: Tables, scope: Scope) -> dict[str, Callable[[], object]]:
    """Every report as the API answers it (`/api/v1/reports/<name>`: parameters validated,
    JSON envelope built), on the period; `"from": "year"` starts a year before its end."""
    calls: dict[str, Callable[[], object]] = {}
    last = scope.end - timedelta(days=1)
    for name, extra in VARIANTS:
        given = {"from": scope.start.isoformat(), "to": last.isoformat(), **extra}
        if given["from"] == "year":
            given["from"] = (scope.end - timedelta(days=365)).isoformat()
        params = report_registry.spec(name).params.model_validate(given)
        label = name + "".join(
            f", {k}={'+'.join(v) if isinstance(v, list) else v}" for k, v in extra.items()
        )
        calls[label] = partial(report_registry.run, name, tables, params)
    return calls


# ---------------------------------------------------------------------------------
# The same overview in plain pandas


def load_pandas(path: Path) -> dict[str, pd.DataFrame]:
    """Read the tables the overview needs into pandas."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        names = ("events", "orders", "costs", "feedback", "sources")
        return {
            n: con.sql(f"SELECT * FROM {n}").to_arrow_table().to_pandas(date_as_object=False)
            for n in names
        }
    finally:
        con.close()


def _between(frame: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    day = frame["day"]
    return frame[(day >= pd.Timestamp(start)) & (day < pd.Timestamp(end))]


def pandas_visits(data: dict[str, pd.DataFrame], scope: Scope) -> pd.DataFrame:
    """Visits that started in the period: 30-minute gaps, entry channel, order events."""
    sources = data["sources"]
    site = sources.loc[sources["channel"].isin(["web", "app"]), "source_id"]
    e = _between(data["events"], scope.start - timedelta(days=1), scope.end)
    platform = e["event"].fillna("").str.startswith(("Email ", "SMS ", "Push Notification "))
    e = e[e["source_id"].isin(site) & e["type"].isin(["page", "screen", "track"]) & ~platform]
    e = e.sort_values(["person_id", "ts", "event_id"])
    previous = e.groupby("person_id")["ts"].shift()
    new = previous.isna() | (e["ts"] > previous + pd.Timedelta(minutes=30))
    visit = new.cumsum()
    visits = e.groupby(visit.to_numpy()).agg(
        person_id=("person_id", "first"),
        day=("day", "first"),
        orders=("order_id", "count"),
    )
    return _between(visits, scope.start, scope.end)


def pandas_figures(data: dict[str, pd.DataFrame], orders: pd.DataFrame, scope: Scope) -> dict:
    """One period's exact figures, as the overview query computes them."""
    now = _between(orders, scope.start, scope.end)
    window = _between(orders, scope.previous().start, scope.previous().end)
    per_person = now.groupby("person_id").agg(
        n=("order_id", "size"), first_day=("first_day", "min")
    )
    visits = pandas_visits(data, scope)
    costs = _between(data["costs"], scope.start, scope.end)
    answers = _between(data["feedback"], scope.start, scope.end)
    nps, csat = answers[answers["kind"] == "nps"], answers[answers["kind"] == "csat"]
    base = set(window["person_id"])
    return {
        "orders": len(now),
        "gross": int(now["total_cents"].sum()),
        "refunded": int(now["refunded_cents"].sum()),
        "buyers": len(per_person),
        "new_customers": int(now["first"].sum()),
        "returning": int((per_person["first_day"] < pd.Timestamp(scope.start)).sum()),
        "repeat_buyers": int((per_person["n"] >= 2).sum()),
        "retention_base": len(base),
        "retained": len(base & set(now["person_id"])),
        "visits": len(visits),
        "visitors": visits["person_id"].nunique(),
        "visit_orders": int(visits["orders"].sum()),
        "converting_visitors": visits.loc[visits["orders"] > 0, "person_id"].nunique(),
        "cost": int(costs["amount_cents"].sum()),
        "nps_answers": len(nps),
        "promoters": int((nps["score"] >= 9).sum()),
        "detractors": int((nps["score"] <= 6).sum()),
        "csat_answers": len(csat),
        "satisfied": int((csat["score"] >= 4).sum()),
    }


def pandas_overview(data: dict[str, pd.DataFrame], scope: Scope) -> list[kpis.Kpi]:
    """The overview KPIs, with the previous period, computed with pandas."""
    orders = data["orders"].sort_values(["person_id", "ts", "order_id"])
    orders = orders.assign(
        first=~orders["person_id"].duplicated(),
        first_day=orders.groupby("person_id")["day"].transform("min"),
    )
    now = kpi_values(pandas_figures(data, orders, scope), scope, None)
    before = kpi_values(pandas_figures(data, orders, scope.previous()), scope, None)
    return [kpis.Kpi(n, kpis.UNITS[n], v, before[n], change(v, before[n])) for n, v in now.items()]


def disagreements(ours: list[kpis.Kpi], theirs: list[kpis.Kpi]) -> list[str]:
    """Name the KPIs whose values differ (exact on counts, 1e-9 relative on the rest)."""
    wrong = []
    for a, b in zip(ours, theirs, strict=True):
        for field in ("value", "previous"):
            x, y = getattr(a, field), getattr(b, field)
            same = (x is None and y is None) or (
                x is not None and y is not None and bool(np.isclose(x, y, rtol=1e-9, atol=0))
            )
            if not same:
                wrong.append(f"{a.name}.{field}: {x} vs {y}")
    return wrong


# ---------------------------------------------------------------------------------
# Report


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 6, 1))
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--no-write", action="store_true", help="Do not append to the docs.")
    args = parser.parse_args()
    m = machine()
    load_at_start = os.getloadavg()[0]
    console.print(f"{m.cpu}, {m.cores} cores, {m.ram_gib:.0f} GiB, Python {m.python}, {m.date}")
    path, shape = cached(args.events, args.customers, seed=args.seed)
    if shape is not None:
        console.print(f"generated {path} in {shape.seconds:.1f} s")
    scope = Scope(args.start, args.start + timedelta(days=args.days))
    tables = open_tables(path)
    sizes = {n: int(tables[n].count().to_pyarrow().as_py()) for n in ("events", "orders")}
    overview, ours = timed(
        "overview (21 KPIs, 2 periods)", lambda: kpis.overview(tables, scope), args.repeat
    )
    timings = [timed(name, call, args.repeat)[0] for name, call in reports(tables, scope).items()]
    started = time.perf_counter()
    data = load_pandas(path)
    load_seconds = time.perf_counter() - started
    baseline, theirs = timed("pandas overview", lambda: pandas_overview(data, scope), 2)
    wrong = disagreements(ours, theirs)
    rows = _rows(overview, timings, baseline)
    table = Table("report", "first run s", "warm s", "warm CPU s", title="KPI reports on DuckDB")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"pandas: load {load_seconds:.1f} s; agreement: {wrong or 'OK'}")
    notes = {
        "sizes": sizes,
        "load_seconds": load_seconds,
        "wrong": wrong,
        "ratio": baseline.warm / overview.warm,
        "load_start": load_at_start,
        "rss": _peak_rss_mib(),
    }
    console.print(f"pandas ÷ ours (overview, warm): {notes['ratio']:.1f}×")
    if not args.no_write:
        _write(m, args, scope, rows, notes)


def _rows(overview: Timing, timings: list[Timing], baseline: Timing) -> list[tuple[str, ...]]:
    o = overview
    rows = [(f"**{o.name}**", f"{o.first:.2f}", f"**{o.warm:.2f}**", f"{o.warm_cpu:.2f}")]
    rows += [(t.name, f"{t.first:.2f}", f"{t.warm:.2f}", f"{t.warm_cpu:.2f}") for t in timings]
    b = baseline
    name = "pandas, same overview (tables already in memory)"
    rows.append((name, f"{b.first:.2f}", f"{b.warm:.2f}", f"{b.warm_cpu:.2f}"))
    return rows


def _write(m: Any, args: argparse.Namespace, scope: Scope, rows: list, notes: dict) -> None:
    """Append the run to docs/benchmarks.md."""
    sizes = notes["sizes"]
    overview_warm = float(rows[0][2].strip("*"))
    slowest = max(float(r[2]) for r in rows[1:-1])
    cpu = float(rows[0][3])
    lines = [
        "",
        f"## KPI reports — {m.date}",
        "",
        f"- Machine: {m.cpu}, {m.cores} cores, {m.ram_gib:.0f} GiB RAM, Python {m.python}; "
        f"commit {m.commit}" + (f" (with uncommitted changes to {m.dirty})" if m.dirty else ""),
        f"- Command: `python -m bench.kpis --events {args.events} --customers {args.customers}`",
        f"- Other work on the machine: load average {notes['load_start']:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end (2 cores).",
        f"- Data: bench/warehouse_data.py, one year, {sizes['events']:,} events, "
        f"{args.customers:,} people, {sizes['orders']:,} orders, in a DuckDB file (2 threads). "
        f"Period: {scope.start} to {scope.end - timedelta(days=1)}, compared with the "
        f"{args.days} days before. Runs: {args.repeat}; *warm* is the median after the first.",
        f"- pandas: the same overview KPIs (visits cut at 30 minutes, first orders, "
        f"retention...) computed with plain pandas on the tables loaded in memory (load "
        f"{notes['load_seconds']:.1f} s, not counted); the results "
        + ("**agree**" if not notes["wrong"] else f"**differ**: {notes['wrong']}")
        + f"; pandas takes {notes['ratio']:.1f}× our time.",
        f"- Goal: every overview KPI under {GOAL_OVERVIEW_S:.0f} s: "
        f"{'**met**' if overview_warm < GOAL_OVERVIEW_S else '**missed**'} "
        f"({overview_warm:.2f} s warm, {cpu:.2f} s of CPU); each report under "
        f"{GOAL_REPORT_S:.0f} s: "
        f"{'**met**' if slowest < GOAL_REPORT_S else '**missed**'} (slowest {slowest:.2f} s). "
        f"Peak RSS {notes['rss']:,.0f} MiB (with the pandas tables).",
        "",
        *markdown_table(("report", "first run (s)", "warm (s)", "warm, CPU (s)"), rows),
    ]
    append_to_docs(lines, console.print)


if __name__ == "__main__":
    main()
