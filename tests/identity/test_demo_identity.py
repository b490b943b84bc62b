"""Identity resolution on a small demo retailer, scored against its ground truth.

The world's offline records (till receipts, sign-up sheets, call-centre contacts, survey
answers) go through the importers, its online messages into the event log; the
processor applies the deterministic rules, then probabilistic matching runs. Pairs of
identifiers are scored as `python -m bench.identity` scores them, on the offline records
that carry any evidence (a cash receipt with no name cannot be joined by anyone).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Connection, text

from omnicanal.demo.retailer import Dataset, generate
from omnicanal.identity import linkage
from omnicanal.identity.normalise import normalise_card, normalise_email, normalise_phone
from omnicanal.profiles.processor import Processor
from omnicanal.store.engine import Database
from tests.profiles.logs import write_world

WORLD = {"customers": 1000, "months": 12, "seed": 12, "holdout_months": 1}
END = date(2026, 11, 23)
OFFLINE = ("till:", "attendance:", "calls:", "survey:", "customers:")
PERSON_FILES = ("customers", "till", "attendance", "calls", "survey")
Key = tuple[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Dataset:
    return generate(**WORLD, end=END, out=tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def truth(world) -> dict[Key, str]:
    """Each identifier as the processor normalises it, with its one true person."""
    normalise = {"email": normalise_email, "phone": normalise_phone, "card": normalise_card}
    people: dict[Key, set[str]] = defaultdict(set)
    for row in pq.read_table(world.truth / "identifiers.parquet").to_pylist():
        kind, value = str(row["kind"]), str(row["value"])
        found = normalise[kind](value) if kind in normalise else value.strip()
        if found:
            people[("anonymous_id" if kind == "import_row" else kind, found)].add(row["person_id"])
    # A family e-mail belongs to several people: no single profile is right for it.
    return {key: next(iter(who)) for key, who in people.items() if len(who) == 1}


def _load(db: Database, world: Dataset) -> None:
    write_world(db, world, PERSON_FILES)
    Processor(db).drain()


def _resolved(conn: Connection) -> tuple[dict[Key, int], set[Key]]:
    """Each identifier's person (root profile), and those in profiles holding nothing."""
    rows = conn.execute(
        text(
            "SELECT i.kind, i.value, COALESCE(p.merged_into, p.id), "
            "p.first_name IS NOT NULL OR p.last_name IS NOT NULL OR p.email IS NOT NULL "
            "OR p.phone IS NOT NULL OR p.card IS NOT NULL OR p.postcode IS NOT NULL "
            "FROM identity i JOIN profile p ON p.id = i.profile_id"
        )
    ).all()
    personal = {root for kind, _v, root, named in rows if named or kind != "anonymous_id"}
    bare = {(kind, value) for kind, value, root, _named in rows if root not in personal}
    return {(kind, value): root for kind, value, root, _named in rows}, bare


def _offline_scores(
    truth: dict[Key, str], found: dict[Key, int], leave_out: set[Key]
) -> tuple[float, float, int]:
    """Precision, recall and wrong pairs over pairs involving an offline record."""
    keys = [k for k in truth if k in found and k not in leave_out]

    def pairs(chosen: list[Key]) -> tuple[int, int, int]:
        def count(c: Counter[Any]) -> int:
            return sum(n * (n - 1) // 2 for n in c.values())

        return (
            count(Counter((truth[k], found[k]) for k in chosen)),
            count(Counter(truth[k] for k in chosen)),
            count(Counter(found[k] for k in chosen)),
        )

    online = [k for k in keys if not (k[0] == "anonymous_id" and k[1].startswith(OFFLINE))]
    both, true, predicted = (a - b for a, b in zip(pairs(keys), pairs(online), strict=True))
    return both / predicted, both / true, predicted - both


def test_matching_joins_offline_records_without_wrong_merges(db, world, truth) -> None:
    _load(db, world)
    with db.engine.connect() as conn:
        before, bare = _resolved(conn)
    with db.engine.begin() as conn:
        run = linkage.run(conn)
    with db.engine.connect() as conn:
        after, _ = _resolved(conn)
        evidence = conn.execute(
            text("SELECT evidence FROM identity_merge WHERE rule = 'match'")
        ).scalars()
        merges = [json.loads(e) for e in evidence]

    precision_before, recall_before, wrong_before = _offline_scores(truth, before, bare)
    precision, recall, wrong = _offline_scores(truth, after, bare)

    # Measured (seed 12, 1,000 customers, 12 months): deterministic rules precision 1.0,
    # recall 0.894 (before family e-mails given under another first name stopped joining:
    # 0.995 with 25 wrong pairs); with matching precision 1.0, recall 0.942.
    assert wrong_before == 0  # the deterministic rules join no two people
    assert precision >= max(0.99, precision_before - 0.002)
    assert recall >= 0.89
    assert recall - recall_before >= 0.04
    assert wrong - wrong_before <= 5  # matching itself joins no one wrongly
    assert run.merged == len(merges) > 0
    for merge in merges:
        assert merge["probability"] >= 0.95
        assert {"first_name", "last_name"} <= set(merge["fields"])
