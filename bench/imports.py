"""Benchmark a till-file import: rows per second and peak memory.

    python -m bench.imports --rows 1000000                 # SQLite in a temporary folder
    python -m bench.imports --rows 1000000 --db postgresql # a throwaway durable cluster
    python -m bench.imports --rows 200000 --format parquet

The file is what a French till export looks like: `;`-separated, Windows-1252,
decimal commas, `23/11/2026 14:05` dates, one row per receipt line (1 to 6 lines a
receipt, a few returns, a loyalty card or an email on some). Each import runs in a
child process, so its peak resident memory is the import's own: once into an empty
database, then again (the idempotent re-run, which stores nothing).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from queue import Empty
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from bench.system import machine

console = Console()
HEADER = (
    "numero_ticket;magasin;date_heure;ligne;ean;libellé;rayon;marque;qté;prix_unitaire;"
    "carte_fidelite;email;code_postal\n"
)
_CATEGORIES = ("Épicerie", "Crèmerie", "Boissons", "Hygiène", "Maison", "Textile")
_BRANDS = ("Maison Dupré", "Bôn", "Verger d'Or", "Lumière", "Atelier 9")


def till_file(path: Path, rows: int, seed: int = 7) -> int:
    """Write a till export of about `rows` lines; return the number of receipts."""
    rng = random.Random(seed)
    products = [
        (
            f"{3_000_000_000_000 + i}",
            f"Produit n°{i} crème",
            rng.choice(_CATEGORIES),
            rng.choice(_BRANDS),
            f"{rng.randint(50, 9_999) / 100:.2f}".replace(".", ","),
        )
        for i in range(5_000)
    ]
    start = datetime(2026, 1, 2, 9, 0)
    written = receipts = 0
    with path.open("w", encoding="cp1252", newline="") as out:
        out.write(HEADER)
        while written < rows:
            receipts += 1
            store = f"magasin-{rng.randint(1, 40):02d}"
            when = (start + timedelta(seconds=receipts * 25)).strftime("%d/%m/%Y %H:%M:%S")
            card = f"{rng.randint(10**9, 10**10):d}" if rng.random() < 0.35 else ""
            email = f"client{rng.randint(1, 200_000)}@exemple.fr" if rng.random() < 0.2 else ""
            postcode = f"{rng.randint(1, 95):02d}{rng.randint(0, 999):03d}" if card else ""
            sign = -1 if rng.random() < 0.03 else 1
            for line in range(1, min(rng.randint(1, 6), rows - written) + 1):
                sku, name, category, brand, price = rng.choice(products)
                quantity = sign * rng.randint(1, 3)
                out.write(
                    f"T{receipts:09d};{store};{when};{line};{sku};{name};{category};{brand};"
                    f"{quantity};{price};{card};{email};{postcode}\n"
                )
                written += 1
    return receipts


def _as_parquet(csv_path: Path) -> Path:
    target = csv_path.with_suffix(".parquet")
    reader = pacsv.open_csv(
        csv_path,
        read_options=pacsv.ReadOptions(encoding="cp1252"),
        parse_options=pacsv.ParseOptions(delimiter=";"),
        convert_options=pacsv.ConvertOptions(
            column_types={
                "ean": pa.string(),
                "carte_fidelite": pa.string(),
                "prix_unitaire": pa.string(),
                "code_postal": pa.string(),
            }
        ),
    )
    with pq.ParquetWriter(target, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
    return target


def _import(url: str, path: str, queue: Any) -> None:
    """Import the file into the database at `url`; report through the queue."""
    from omnicanal.collect.importers import run_import
    from omnicanal.store.engine import Database, make_engine

    db = Database(make_engine(url))
    started = time.perf_counter()
    run = run_import(db=db, kind="till", path=Path(path))
    seconds = time.perf_counter() - started
    db.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((run.rows, run.stored, run.already, seconds, peak))


def _in_child(url: str, path: Path) -> tuple[int, int, int, float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_import, args=(url, str(path), queue))
    child.start()
    while True:
        try:
            result: tuple[int, int, int, float, float] = queue.get(timeout=1)
            break
        except Empty:
            if not child.is_alive():
                raise SystemExit(f"The import failed (exit code {child.exitcode}).") from None
    child.join()
    return result


def _database(kind: str, folder: Path) -> tuple[str, Any]:
    from omnicanal.store.engine import make_engine
    from omnicanal.store.migrate import upgrade

    cluster = None
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'omnicanal.db'}"
    else:
        from bench.servers import DurableCluster

        cluster = DurableCluster()
        cluster.start()
        url = cluster.create_database("bench_imports")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url, cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Receipt lines in the file.")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omnicanal-bench-") as name:
        folder = Path(name)
        path = folder / "caisse.csv"
        with console.status(f"Writing a {args.rows:,}-line till file"):
            receipts = till_file(path, args.rows, args.seed)
            if args.format == "parquet":
                path = _as_parquet(path)
        url, cluster = _database(args.db, folder)
        try:
            with console.status(f"Importing {path.name} into {args.db}"):
                first = _in_child(url, path)
            with console.status("Importing it again (nothing new to store)"):
                again = _in_child(url, path)
        finally:
            if cluster is not None:
                cluster.stop()
        size = path.stat().st_size / 1024 / 1024
    _report(args, receipts, size, first, again)


def _report(args: Any, receipts: int, size_mib: float, *runs: tuple[Any, ...]) -> None:
    where = machine()
    table = Table(
        "run",
        "rows",
        "new",
        "already",
        "seconds",
        "rows/s",
        "peak RSS (MiB)",
        title=f"Till import, {args.format} {size_mib:,.0f} MiB, {receipts:,} receipts, {args.db}",
    )
    for label, (rows, stored, already, seconds, peak) in zip(("first", "again"), runs, strict=True):
        table.add_row(
            label,
            f"{rows:,}",
            f"{stored:,}",
            f"{already:,}",
            f"{seconds:.1f}",
            f"{rows / seconds:,.0f}",
            f"{peak:,.0f}",
        )
    console.print(table)
    console.print(
        f"{where.cpu}, {where.cores} cores, {where.ram_gib:.0f} GiB, Python {where.python}, "
        f"{where.date}, commit {where.commit}" + (f" (+ {where.dirty})" if where.dirty else "")
    )


if __name__ == "__main__":
    main()
