"""Benchmark predictive CLV: BG/NBD + Gamma-Gamma fits on simulated customers.

    python -m bench.clv --customers 1000000          # our maximum-likelihood fits
    python -m bench.clv --customers 1000000 --pymc   # also pymc-marketing's MAP, same data

Customers are drawn from a BG/NBD process with CDNOW's parameters (Fader, Hardie & Lee
2005: r=0.243, α=4.414, a=0.793, b=2.426, weeks) over 26 to 78 weeks of observation, and
their repeat spend from a Gamma-Gamma with p=6.25, q=3.74, γ=15.44; the fits should give
those parameters back. pymc-marketing runs in a child process so that its time includes
its import and compilation, and its peak memory is its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.system import machine
from omnicanal.analytics import clv

console = Console(width=None if sys.stdout.isatty() else 200)

TRUE_BGNBD = clv.BetaGeoParams(
    r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0, customers=0
)
TRUE_GAMMA_GAMMA = clv.GammaGammaParams(p=6.25, q=3.74, v=15.44, log_likelihood=0, customers=0)


@dataclass(frozen=True)
class Run:
    """One engine's fits on the simulated customers."""

    engine: str
    params: dict[str, float]
    seconds: dict[str, float]
    peak_rss_mib: float


def simulate(customers: int, seed: int) -> pd.DataFrame:
    """Draw an RFM summary from the true parameters."""
    rng = np.random.default_rng(seed)
    horizon = rng.uniform(26.0, 78.0, customers)
    x, tx, t = clv.simulate_bgnbd(TRUE_BGNBD, customers, horizon, rng)
    spend = clv.simulate_spend(TRUE_GAMMA_GAMMA, x, rng)
    return pd.DataFrame(
        {
            "customer_id": np.arange(customers),
            "frequency": x,
            "recency": tx,
            "T": t,
            "monetary_value": spend,
        }
    )


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(summary: pd.DataFrame) -> Run:
    """Fit both models by direct maximum likelihood, and predict CLV for everyone."""
    started = time.perf_counter()
    bgnbd = clv.fit_bgnbd(summary)
    fitted_bgnbd = time.perf_counter()
    gamma_gamma = clv.fit_gamma_gamma(summary)
    fitted_gg = time.perf_counter()
    clv.predict(summary, bgnbd, gamma_gamma, horizon=52.0, months=12, freq="W")
    predicted = time.perf_counter()
    params = {k: getattr(bgnbd, k) for k in ("r", "alpha", "a", "b")}
    params |= {k: getattr(gamma_gamma, k) for k in ("p", "q", "v")}
    seconds = {
        "BG/NBD fit": fitted_bgnbd - started,
        "Gamma-Gamma fit": fitted_gg - fitted_bgnbd,
        "predict (12-month CLV)": predicted - fitted_gg,
    }
    return Run("omnicanal (SciPy MLE)", params, seconds, _peak_rss_mib())


def _pymc_child(summary: pd.DataFrame, queue: multiprocessing.Queue[Run]) -> None:
    import tempfile
    import warnings

    with tempfile.TemporaryDirectory() as compiled:
        import os

        os.environ["PYTENSOR_FLAGS"] = f"base_compiledir={compiled}"
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        from pymc_marketing.clv import BetaGeoModel, GammaGammaModel
        from pymc_marketing.prior import Prior

        imported = time.perf_counter()
        flat = {name: Prior("HalfFlat") for name in ("r", "alpha", "a", "b")}
        bg = BetaGeoModel(model_config=flat)
        bg_fit = bg.fit(
            summary[["customer_id", "frequency", "recency", "T"]], method="map", progressbar=False
        )
        fitted_bgnbd = time.perf_counter()
        repeat = summary[summary["frequency"] > 0]
        gg = GammaGammaModel(model_config={k: Prior("HalfFlat") for k in ("p", "q", "v")})
        gg_fit = gg.fit(
            repeat[["customer_id", "frequency", "monetary_value"]], method="map", progressbar=False
        )
        fitted_gg = time.perf_counter()
    params = {k: float(bg_fit.posterior[k].mean()) for k in ("r", "alpha", "a", "b")}
    params |= {k: float(gg_fit.posterior[k].mean()) for k in ("p", "q", "v")}
    seconds = {
        "import": imported - started,
        "BG/NBD fit": fitted_bgnbd - imported,
        "Gamma-Gamma fit": fitted_gg - fitted_bgnbd,
    }
    queue.put(Run("pymc-marketing 0.19 (MAP, flat priors)", params, seconds, _peak_rss_mib()))


def run_pymc(summary: pd.DataFrame) -> Run:
    """Fit both models with pymc-marketing in a child process."""
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[Run] = context.Queue()
    child = context.Process(target=_pymc_child, args=(summary, queue))
    child.start()
    run = queue.get()
    child.join()
    return run


def report(customers: int, build_seconds: float, runs: list[Run]) -> None:
    """Print the parameters recovered and the times."""
    m = machine()
    console.print(f"{m.cpu}, {m.cores} cores, {m.ram_gib:.0f} GiB, Python {m.python}, {m.date}")
    console.print(f"{customers:,} simulated customers in {build_seconds:.1f} s")
    table = Table("parameter", "true", *[r.engine for r in runs])
    truth = {k: getattr(TRUE_BGNBD, k) for k in ("r", "alpha", "a", "b")}
    truth |= {k: getattr(TRUE_GAMMA_GAMMA, k) for k in ("p", "q", "v")}
    for name, value in truth.items():
        table.add_row(name, f"{value:.3f}", *[f"{r.params[name]:.3f}" for r in runs])
    steps = dict.fromkeys(step for r in runs for step in r.seconds)
    for step in steps:
        cells = [f"{r.seconds[step]:.2f} s" if step in r.seconds else "" for r in runs]
        table.add_row(step, "", *cells)
    table.add_row("peak RSS", "", *[f"{r.peak_rss_mib:,.0f} MiB" for r in runs])
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pymc", action="store_true", help="also time pymc-marketing")
    args = parser.parse_args()
    started = time.perf_counter()
    summary = simulate(args.customers, args.seed)
    build_seconds = time.perf_counter() - started
    runs = [run_ours(summary)]
    if args.pymc:
        runs.append(run_pymc(summary))
    report(args.customers, build_seconds, runs)


if __name__ == "__main__":
    main()
