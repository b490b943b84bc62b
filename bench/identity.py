"""Score identity resolution against the demo retailer's ground truth.

    python -m bench.identity --data omnicanal-data          # after `omnicanal demo`

Runs, on the loaded demo: the processor (deterministic rules), a first scoring, then
probabilistic matching (`omnicanal identity match`), and a second scoring. Each scoring
compares `omnicanal identity export` with `<data>/ground-truth/identifiers.parquet`:
two identifiers are a true pair when they belong to the same person, a predicted pair
when they resolved to the same profile. Precision, recall and F1 are counted over
pairs, for all identifiers and for pairs involving an offline record (till receipts,
attendance sheets, call-centre contacts, survey rows: the noisy ones). "Wrong merges"
are predicted pairs whose two sides are different people.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from omnicanal.api.app import open_database
from omnicanal.core.settings import Settings
from omnicanal.identity import linkage
from omnicanal.identity.normalise import (
    normalise_card,
    normalise_email,
    normalise_phone,
)
from omnicanal.profiles.processor import Processor

console = Console()
OFFLINE_PREFIXES = ("till:", "attendance:", "calls:", "survey:", "customers:")


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    wrong_pairs: int
    identifiers: int


def _normalise(kind: str, value: str) -> tuple[str, str | None]:
    if kind == "email":
        return kind, normalise_email(value)
    if kind == "phone":
        return kind, normalise_phone(value)
    if kind == "card":
        return kind, normalise_card(value)
    if kind == "import_row":
        return "anonymous_id", str(value).strip()
    return kind, str(value).strip()


def truth(path: Path) -> dict[tuple[str, str], str]:
    """Every identifier the demo sent, normalised as the processor does, with its person."""
    table = pq.read_table(path, columns=["kind", "value", "person_id"]).to_pylist()
    found: dict[tuple[str, str], str] = {}
    for row in table:
        kind, value = _normalise(str(row["kind"]), str(row["value"]))
        if value:
            found.setdefault((kind, value), str(row["person_id"]))
    return found


def predicted(settings: Settings) -> dict[tuple[str, str], int]:
    """Every identifier in the store with the person (root profile) it resolved to."""
    db = open_database(settings)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT i.kind, i.value, COALESCE(p.merged_into, p.id) FROM identity i "
                    "JOIN profile p ON p.id = i.profile_id"
                )
            ).all()
    finally:
        db.dispose()
    return {(kind, value): int(root) for kind, value, root in rows}


def _pairs(counts: Counter[object]) -> int:
    return sum(n * (n - 1) // 2 for n in counts.values())


def score(
    true: dict[tuple[str, str], str], found: dict[tuple[str, str], int], offline_only: bool
) -> Scores:
    """Pairwise precision, recall and F1 over the identifiers both sides know."""
    keys = [k for k in true if k in found]
    offline = {k for k in keys if k[0] == "anonymous_id" and k[1].startswith(OFFLINE_PREFIXES)}

    def tally(select: set[tuple[str, str]] | None) -> tuple[int, int, int]:
        chosen = [k for k in keys if select is None or k in select]
        cells: Counter[object] = Counter((true[k], found[k]) for k in chosen)
        people: Counter[object] = Counter(true[k] for k in chosen)
        profiles: Counter[object] = Counter(found[k] for k in chosen)
        return _pairs(cells), _pairs(people), _pairs(profiles)

    both, truth_pairs, pred_pairs = tally(None)
    if offline_only:  # pairs with at least one offline record = all pairs - online-only pairs
        online = set(keys) - offline
        b2, t2, p2 = tally(online)
        both, truth_pairs, pred_pairs = both - b2, truth_pairs - t2, pred_pairs - p2
    precision = both / pred_pairs if pred_pairs else 1.0
    recall = both / truth_pairs if truth_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, pred_pairs - both, len(offline if offline_only else keys))


def _add_rows(
    table: Table, stage: str, true: dict[tuple[str, str], str], settings: Settings, seconds: float
) -> None:
    """Score the store now, for all identifiers and for offline records."""
    found = predicted(settings)
    for offline in (False, True):
        s = score(true, found, offline)
        table.add_row(
            stage,
            f"{s.identifiers:,}",
            "offline" if offline else "all",
            f"{s.precision:.4f}",
            f"{s.recall:.4f}",
            f"{s.f1:.4f}",
            f"{s.wrong_pairs:,}",
            f"{seconds:.1f}",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("omnicanal-data"))
    parser.add_argument("--no-match", action="store_true", help="Skip probabilistic matching.")
    args = parser.parse_args()
    settings = Settings(data_dir=args.data)
    true = truth(args.data / "ground-truth" / "identifiers.parquet")
    db = open_database(settings)
    started = time.perf_counter()
    processed = Processor(db, identity=settings.identity).drain()
    processing = time.perf_counter() - started
    table = Table(
        "stage",
        "identifiers",
        "scope",
        "precision",
        "recall",
        "F1",
        "wrong pairs",
        "seconds",
        title="Identity resolution against the ground truth",
    )
    _add_rows(table, "deterministic", true, settings, processing)
    if not args.no_match:
        started = time.perf_counter()
        with db.engine.begin() as conn:
            run = linkage.run(conn, settings.identity)
        matching = time.perf_counter() - started
        _add_rows(table, "+ probabilistic", true, settings, matching)
        console.print(
            f"matching: {run.records:,} people, {run.pairs:,} pairs scored, "
            f"{run.merged:,} merged, {run.refused:,} refused, {run.queued:,} queued"
        )
    db.dispose()
    console.print(f"{processed:,} events processed")
    console.print(table)


if __name__ == "__main__":
    main()
