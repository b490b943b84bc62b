"""Score attribution and customer value on a demo warehouse against the demo's ground truth.

    python -m bench.measure_demo                                  # omnicanal-data/
    python -m bench.measure_demo --warehouse W.duckdb --truth DIR --journeys 0 --no-write

Reads a warehouse loaded from the demo retailer (`omnicanal demo`, then the warehouse sync)
and its `ground-truth/` folder:

1. every attribution model's credit per channel beside each channel's true incremental
   orders and revenue (`omnicanal.demo.scoring.score_attribution`), in the orders view (each
   order through its own journey) and the customers view (each new customer's first-order
   journey carrying all their orders of the period);
2. BG/NBD and the NBD baseline, fitted on the loaded period, against the holdout;
3. with `--journeys N`, the warehouse copied over and over, each copy with other people, until
   it holds N journeys, and Markov timed from the warehouse tables to the credits, beside
   `channelattribution` (GPL, a development dependency used as a reference only) on the
   same journeys' paths, with its default settings.

Prints the tables and appends them to docs/benchmarks.md unless `--no-write`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.system import append_to_docs, machine, markdown_table, wait_quiet
from omnicanal.analytics import attribution as at
from omnicanal.analytics import attribution_data
from omnicanal.analytics.scope import Scope
from omnicanal.demo import scoring
from omnicanal.warehouse.schema import EVENTS, ORDERS, SCHEMAS

console = Console(width=None if sys.stdout.isatty() else 200)
SHOWN_MODELS = ("last_touch", "last_non_direct", "linear", "markov", "shapley")


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = function()
    return time.perf_counter() - began, result


def open_warehouse(path: Path) -> tuple[Any, dict[str, ir.Table]]:
    """Open a DuckDB warehouse read-only; tables it lacks are left out."""
    if not path.is_file():
        sys.exit(f"No warehouse at {path}: load the demo and sync it, or pass --warehouse.")
    con = ibis.duckdb.connect(str(path), read_only=True)
    tables = {}
    for name, schema in SCHEMAS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                table = con.table(name)
        except Exception:  # a table this warehouse lacks
            continue
        differing = {c: t for c, t in schema.items() if c in table.columns and table[c].type() != t}
        tables[name] = table.cast(differing) if differing else table
    return con, tables


# ---------------------------------------------------------------------------------
# Tables


def _md(frame: pd.DataFrame) -> list[str]:
    head = [str(c) for c in frame.columns]
    rows = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    return markdown_table(head, rows)


def _show(frame: pd.DataFrame, title: str) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), justify="left" if frame[column].dtype == object else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    console.print(table)


def model_errors(score: scoring.AttributionScore) -> pd.DataFrame:
    """One row per model: the error of each view, revenue first."""
    frame = score.models.pivot(index="model", columns="view")
    rows = []
    for model in score.models["model"].unique():
        row = frame.loc[model]
        rows.append(
            {
                "model": model,
                "orders view: revenue error": f"{row[('wape_revenue', 'orders')]:.0%}",
                "share error": f"{row[('mae_revenue_share', 'orders')]:.3f}",
                "rank ρ": f"{row[('spearman_revenue', 'orders')]:.2f}",
                "customers view: revenue error": f"{row[('wape_revenue', 'customers')]:.0%}",
                "share error ": f"{row[('mae_revenue_share', 'customers')]:.3f}",
                "rank ρ ": f"{row[('spearman_revenue', 'customers')]:.2f}",
                "new customers error": f"{row[('wape_customers', 'customers')]:.0%}",
            }
        )
    return pd.DataFrame(rows)


def channel_credits(score: scoring.AttributionScore, column: str) -> pd.DataFrame:
    """True incremental revenue per channel beside the credit of a few models (k€)."""
    channels = score.channels
    truth = channels.drop_duplicates("channel").set_index("channel")
    frame = pd.DataFrame({"true": (truth["true_incremental_revenue_eur"] / 1000).round(1)})
    for model in SHOWN_MODELS:
        credited = channels[channels["model"] == model].set_index("channel")[column]
        frame[model] = (credited / 1000).round(1)
    return frame.rename_axis("channel (k€)").reset_index()


def clv_rows(score: scoring.ClvScore) -> pd.DataFrame:
    rows = []
    for record in score.models.to_dict("records"):
        row = {str(k): v for k, v in record.items()}
        n = {k: float(v) for k, v in row.items() if k != "model"}
        rows.append(
            {
                "model": row["model"],
                "purchases predicted / actual": f"{n['predicted_purchases']:,.0f} / "
                f"{n['actual_purchases']:,.0f}",
                "spend predicted / actual (k€)": f"{n['predicted_value_eur'] / 1000:,.0f} / "
                f"{n['actual_value_eur'] / 1000:,.0f}",
                "Spearman purchases": f"{n['spearman_purchases']:.3f}",
                "Pearson spend": f"{n['pearson_value_eur']:.3f}",
                "MAE purchases": f"{n['mae_purchases']:.3f}",
                "MAE spend (€)": f"{n['mae_value_eur']:.1f}",
                "AUC p_alive": f"{n['auc_p_alive']:.3f}",
                "unmatched persons": f"{n['unmatched_persons']:,.0f}",
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------
# Scale: a warehouse of a million journeys


def replicate(source: Path, copies: int, target: Path) -> None:
    """Write `copies` copies of the source's events, orders and sources, each with other people."""
    con = duckdb.connect(str(target))
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    con.execute("CREATE TABLE sources AS SELECT * FROM src.sources")
    step = con.execute(
        "SELECT greatest((SELECT max(person_id) FROM src.events), "
        "(SELECT max(profile_id) FROM src.events), (SELECT max(event_id) FROM src.events), "
        "(SELECT max(order_id) FROM src.orders)) + 1"
    ).fetchone()
    offset = int(step[0]) if step else 1
    ids = {"person_id", "profile_id", "event_id", "order_id"}
    for name in (EVENTS, ORDERS):
        columns = list(SCHEMAS[name].names)
        shifted = ", ".join(f"{c} + {{k}} * {offset} AS {c}" if c in ids else c for c in columns)
        con.execute(f"CREATE TABLE {name} AS SELECT {shifted.format(k=0)} FROM src.{name}")
        for k in range(1, copies):
            con.execute(f"INSERT INTO {name} SELECT {shifted.format(k=k)} FROM src.{name}")
    con.close()


def _channelattribution(paths: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    with contextlib.redirect_stdout(io.StringIO()):  # its import prints an advert
        from ChannelAttribution import markov_model  # type: ignore[import-untyped]

    def run() -> pd.DataFrame:
        with contextlib.redirect_stdout(io.StringIO()):
            result: pd.DataFrame = markov_model(
                paths, "path", "conversions", var_value="value", var_null="nulls",
                order=1, sep=">", ncore=1, seed=0, verbose=False, flg_pro=False,
            )  # fmt: skip
        return result

    return _timed(run)


def scale(
    warehouse: Path, scope: Scope, journeys_wanted: int, per_copy: int, oracle: bool
) -> list[tuple[str, str, str]]:
    """Time Markov from a warehouse of `journeys_wanted` journeys; return (step, s, note)."""
    copies = max(1, math.ceil(journeys_wanted / max(per_copy, 1)))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "big.duckdb"
        with console.status(f"Copying the warehouse {copies} times"):
            seconds, _ = _timed(lambda: replicate(warehouse, copies, target))
        rows.append(("copy the warehouse (not counted)", f"{seconds:.1f}", f"{copies} copies"))
        _, tables = open_warehouse(target)
        events = tables[EVENTS].count().to_pyarrow().as_py()
        with console.status("Building journeys"):
            build, data = _timed(lambda: attribution_data.build_journeys(tables, scope))
        touches = len(data.journeys.codes)
        journeys = data.converting + data.non_converting
        rows.append(
            (
                "journeys from the warehouse tables",
                f"{build:.1f}",
                f"{events:,} events → {journeys:,} journeys, {touches:,} touches",
            )
        )
        solve, ours = _timed(lambda: at.markov(data.journeys))
        rows.append(("Markov (exact) on them", f"{solve:.2f}", "order 1"))
        credit, _ = _timed(lambda: attribution_data.credit_journeys(data, "markov"))
        rows.append(("Markov credit of orders, revenue, customers", f"{credit:.2f}", "5 solves"))
        if oracle:
            prepare, paths = _timed(lambda: at.paths_table(data.journeys, sep=">"))
            rows.append(("paths for channelattribution (not counted)", f"{prepare:.1f}", ""))
            seconds, theirs = _channelattribution(paths)
            theirs = theirs.set_index("channel_name").reindex(ours["channel"])
            gap = (ours.set_index("channel")["conversions"] - theirs["total_conversions"]).abs()
            share = gap.max() / data.converting
            rows.append(
                (
                    "channelattribution markov_model, default settings",
                    f"{seconds:.2f}",
                    f"largest gap to ours: {share:.2%} of conversions",
                )
            )
    return rows


# ---------------------------------------------------------------------------------


def _write(lines: list[str]) -> None:
    append_to_docs(lines, console.print)


def main(argv: list[str] | None = None) -> None:
    """Score every model on the demo warehouse, print the tables, and record them."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.measure_demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--warehouse", type=Path, default=Path("omnicanal-data/warehouse.duckdb"))
    parser.add_argument("--truth", type=Path, default=Path("omnicanal-data/ground-truth"))
    parser.add_argument("--lookback", type=int, default=attribution_data.DEFAULT_LOOKBACK_DAYS)
    parser.add_argument(
        "--journeys", type=int, default=1_000_000,
        help="time Markov on a warehouse copied up to this many journeys (0: skip)",
    )  # fmt: skip
    parser.add_argument("--oracle", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--wait-quiet", type=int, default=60, metavar="S")
    args = parser.parse_args(argv)
    load = wait_quiet(args.wait_quiet, console.log)
    _, tables = open_warehouse(args.warehouse)
    periods = scoring.truth_periods(args.truth)
    with console.status("Scoring attribution"):
        seconds_attr, attr = _timed(
            lambda: scoring.score_attribution(
                tables, args.truth, periods.loaded, lookback_days=args.lookback
            )
        )
    with console.status("Scoring customer value"):
        seconds_clv, value = _timed(lambda: scoring.score_clv(tables, args.truth))
    errors = model_errors(attr)
    orders_view = channel_credits(attr, "credited_revenue_eur")
    customers_view = channel_credits(attr, "credited_customer_revenue_eur")
    clv = clv_rows(value)
    _show(errors, f"Attribution vs truth ({seconds_attr:.1f} s for every model)")
    _show(orders_view, "Revenue credited, orders view")
    _show(customers_view, "Revenue credited, customers view")
    _show(clv, f"Customer value vs holdout ({seconds_clv:.1f} s)")
    journeys = attribution_data.build_journeys(tables, periods.loaded)
    per_copy = journeys.converting + journeys.non_converting
    big: list[tuple[str, str, str]] = []
    if args.journeys > 0:
        big = scale(args.warehouse, periods.loaded, args.journeys, per_copy, args.oracle)
        _show(pd.DataFrame(big, columns=["step", "seconds", "note"]), "Markov at scale")
    host = machine()
    matched = value.persons["true_person_id"].notna().mean()
    lines = [
        "",
        f"## Attribution and customer value against the demo's truth — {host.date}",
        "",
        f"- Machine: {host.cpu}, {host.cores} cores, {host.ram_gib:.0f} GiB RAM, "
        f"Python {host.python}; commit {host.commit}"
        + (f" (with uncommitted changes to {host.dirty})" if host.dirty else ""),
        f"- Command: `python -m bench.measure_demo {' '.join(sys.argv[1:])}`".rstrip(),
        f"- Other processes' load at the start: {load:.2f} cores.",
        f"- Warehouse: `{args.warehouse}`; loaded period {periods.loaded.start} to "
        f"{periods.loaded.end} (excluded), holdout {periods.holdout_days} days; "
        f"{per_copy:,} journeys ({journeys.converting:,} orders, {journeys.untouched:,} "
        f"without any touch in {args.lookback} days, credited to `direct`); "
        f"{matched:.1%} of the warehouse's buyers matched to a true person by order keys.",
        f"- Attribution, every model scored in {seconds_attr:.1f} s. Errors are over the 11 "
        "channels whose true effect is known: revenue error = Σ|credit − truth| / Σ truth; "
        "share error = mean |credited share − true share| (shares among those channels); ρ = "
        "Spearman correlation of the channels' revenue ranks.",
        "",
        *_md(errors),
        "",
        "Revenue credited per channel (k€), orders view:",
        "",
        *_md(orders_view),
        "",
        "Customers view:",
        "",
        *_md(customers_view),
        "",
        f"- Customer value, fitted on the loaded period, holdout forecast ({seconds_clv:.1f} s):",
        "",
        *_md(clv),
    ]
    if big:
        lines += [
            "",
            "- Markov at scale:",
            "",
            *_md(pd.DataFrame(big, columns=["step", "s", "note"])),
        ]
    if not args.no_write:
        _write(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
