"""Time the demo retailer's generation and its peak memory, on this machine.

    python -m bench.demo --customers 20000              # the default world
    python -m bench.demo --customers 1000000 --months 24 --no-messages

Generation writes the files and the ground truth; streaming builds every message (as the
loader does, without sending them). Loading through the API is timed separately, with a
server running. Peak memory is the process's maximum resident set size (it includes
the Python interpreter and the libraries, about 150 MiB). Prints a table; writes nothing
to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.system import machine
from omnicanal.demo.retailer import generate


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 11, 23))
    parser.add_argument(
        "--out", type=Path, help="Keep the files here (default: a temporary folder)."
    )
    parser.add_argument("--no-messages", action="store_true", help="Skip building the messages.")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="omnicanal-demo-"))
    console = Console()
    try:
        dataset = generate(customers=args.customers, months=args.months, seed=args.seed,
                           end=args.end, out=out)  # fmt: skip
        generated = _peak_mib()
        streamed, seconds = 0, 0.0
        if not args.no_messages:
            started = time.perf_counter()
            streamed = sum(1 for _ in dataset.messages())
            seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
        table = Table(
            title=f"omnicanal demo, {args.customers:,} customers over {args.months} months"
        )
        table.add_column("figure")
        table.add_column("value", justify="right")
        stats = dataset.stats
        for label, value in (
            ("generation (files + ground truth)", f"{dataset.seconds:.1f} s"),
            ("peak RSS after generation", f"{generated:,.0f} MiB"),
            ("messages", f"{stats['messages']:,}"),
            ("building every message", f"{seconds:.1f} s" if streamed else "skipped"),
            ("messages built per second", f"{streamed / seconds:,.0f}" if streamed else "skipped"),
            ("peak RSS overall", f"{_peak_mib():,.0f} MiB"),
            ("orders (loaded period)", f"{stats['orders']:,}"),
            ("till rows", f"{stats['till_rows']:,}"),
            ("customer records", f"{stats['customers_rows']:,}"),
            ("identifiers in the ground truth", f"{stats['truth_identifiers']:,}"),
            ("files written", f"{size:,.0f} MiB"),
        ):
            table.add_row(label, value)
        console.print(table)
        m = machine()
        console.print(f"{m.cpu}, {m.cores} cores, {m.ram_gib:.1f} GiB, Python {m.python}, {m.date}")
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
