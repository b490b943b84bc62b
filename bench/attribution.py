"""Benchmark attribution: every model on synthetic journeys, Markov beside channelattribution.

    python -m bench.attribution --journeys 1000000
    python -m bench.attribution --journeys 100000 --no-oracle

Journeys run over eight channels, one to eight touches each, a few days apart, in
shuffled rows as an export would give them; the odds of converting depend on the
channels met and on the last one. Our times start from the touchpoint table (sort,
encode, then the model). `channelattribution` (GPL, a development dependency used as
a reference only) gets the same journeys as its own input, aggregated paths, whose
preparation is not counted in its time; it runs once with its default settings and
once with the settings under which the test suite compares it with our exact solve.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.system import machine, wait_quiet
from omnicanal.analytics import attribution as at

console = Console(width=None if sys.stdout.isatty() else 200)

CHANNELS = np.array(["ads", "email", "search", "social", "sms", "store", "web", "direct_mail"])
POPULARITY = np.array([0.22, 0.18, 0.16, 0.12, 0.08, 0.08, 0.12, 0.04])
LIFT = np.array([0.01, 0.03, 0.05, 0.0, 0.02, 0.08, 0.01, 0.03])
ORACLE_SETTINGS: dict[str, Any] = {"nsim_start": 1e6, "max_step": 200, "conv_par": 0.005}


def synthetic(journeys: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (touchpoints, outcomes) for `journeys` journeys."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=journeys)
    journey = np.repeat(np.arange(journeys), lengths)
    codes = rng.choice(len(CHANNELS), size=len(journey), p=POPULARITY)
    start = rng.integers(0, 90 * at.DAY_MS, size=journeys)
    gaps = rng.exponential(2 * at.DAY_MS, size=len(journey)).astype(np.int64)
    offsets = np.r_[0, np.cumsum(lengths)]
    within = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[offsets[:-1]], lengths)
    seen = np.zeros((journeys, len(CHANNELS)), dtype=bool)
    seen[journey, codes] = True
    odds = 0.02 + seen @ LIFT + np.where(codes[offsets[1:] - 1] == 5, 0.1, 0.0)
    converted = rng.random(journeys) < odds
    shuffle = rng.permutation(len(journey))
    touches = pd.DataFrame(
        {
            "journey_id": journey[shuffle],
            "timestamp": (np.repeat(start, lengths) + within)[shuffle],
            "channel": CHANNELS[codes][shuffle],
        }
    )
    outcomes = pd.DataFrame(
        {
            "journey_id": np.arange(journeys),
            "converted": converted,
            "value": np.where(converted, rng.gamma(2.0, 40.0, size=journeys), 0.0),
        }
    )
    return touches, outcomes


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = function()
    return time.perf_counter() - began, result


def _channelattribution(paths: pd.DataFrame, settings: dict[str, Any]) -> tuple[float, Any]:
    with contextlib.redirect_stdout(io.StringIO()):  # its import prints an advert
        from ChannelAttribution import markov_model  # type: ignore[import-untyped]

    def run() -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return markov_model(
                paths, "path", "conversions", var_value="value", var_null="nulls",
                order=1, sep=">", ncore=1, seed=0, verbose=False, flg_pro=False, **settings,
            )  # fmt: skip

    return _timed(run)


def measure(journeys: int, seed: int, oracle: bool) -> tuple[list[tuple[str, float, str]], Any]:
    """Time every model; return rows (what, seconds, note) and the Markov credits."""
    with console.status(f"Generating {journeys:,} journeys"):
        touches, outcomes = synthetic(journeys, seed)
    rows: list[tuple[str, float, str]] = []
    build, data = _timed(lambda: at.journeys_from_touchpoints(touches, outcomes))
    rows.append(("build journeys from touchpoints", build, f"{len(touches):,} touches"))
    markov_seconds, ours = _timed(lambda: at.markov(data))
    rows.append(("markov (exact), build + solve", build + markov_seconds, "order 1"))
    for model in at.MODELS:
        if model == "markov":
            continue
        with console.status(f"Running {model}"):
            seconds, _ = _timed(lambda m=model: at.attribute(data, model=m))  # type: ignore[misc]
        rows.append((f"{model}, after build", seconds, ""))
    seconds, _ = _timed(lambda: at.markov(data, order=2))
    rows.append(("markov order 2, after build", seconds, ""))
    if oracle:
        with console.status("Aggregating paths for channelattribution"):
            prepare, paths = _timed(lambda: at.paths_table(data, sep=">"))
        rows.append(("paths for channelattribution (not counted)", prepare, f"{len(paths):,}"))
        seconds, _ = _timed(lambda: at.markov(at.journeys_from_paths(paths, sep=">")))
        rows.append(("markov (exact) from those paths", seconds, "read paths + solve"))
        for label, settings in (("defaults", {}), ("test-suite settings", ORACLE_SETTINGS)):
            with console.status(f"channelattribution, {label}"):
                seconds, theirs = _channelattribution(paths, settings)
            gap = _gap(ours, theirs, outcomes["converted"].sum())
            rows.append((f"channelattribution markov_model, {label}", seconds, gap))
    return rows, ours


def _gap(ours: pd.DataFrame, theirs: pd.DataFrame, total: float) -> str:
    theirs = theirs.set_index("channel_name").reindex(ours["channel"])
    gap = (ours.set_index("channel")["conversions"] - theirs["total_conversions"]).abs().max()
    return f"largest gap to ours: {gap / total:.3%} of conversions"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.attribution",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--journeys", type=int, default=1_000_000, help="journeys to attribute")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic journeys")
    parser.add_argument(
        "--oracle", action=argparse.BooleanOptionalAction, default=True,
        help="time channelattribution on the same paths too",
    )  # fmt: skip
    parser.add_argument(
        "--wait-quiet", type=int, default=60, metavar="S",
        help="wait up to S seconds for other processes to leave the CPU first",
    )  # fmt: skip
    args = parser.parse_args(argv)
    load = wait_quiet(args.wait_quiet, console.log)
    rows, ours = measure(args.journeys, args.seed, args.oracle)
    table = Table(title=f"Attribution on {args.journeys:,} journeys")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("note")
    for what, seconds, note in rows:
        table.add_row(what, f"{seconds:.2f}", note)
    console.print(table)
    console.print(ours.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    host = machine()
    console.print(
        f"{host.cpu}, {host.cores} cores, {host.ram_gib:.0f} GiB, Python {host.python}, "
        f"commit {host.commit}, {host.date}, other processes' load {load:.2f} cores"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
