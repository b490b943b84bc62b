"""Probabilistic matching applied to the store: merge sure matches, queue the doubtful.

Each person (a cluster of profiles) becomes one record of their latest names, contact
details and usual store, plus one per other name they were seen under;
`identity.matching` (Splink) scores candidate pairs, with m learned from the profiles
the deterministic rules already joined. Pairs at or above the merge threshold are
merged through the identity graph, so the guard rails hold (two account holders are
never merged on a name) and each merge keeps its evidence: the probability and the
per-field comparison levels. Pairs in the review band wait in `identity_match_review`
for `omnicanal identity review`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import Connection, text

from omnicanal.core.errors import InvalidError, NotFoundError
from omnicanal.core.settings import IdentitySettings
from omnicanal.identity import matching
from omnicanal.identity.graph import Graph, IdentityRules
from omnicanal.identity.service import bump_generation
from omnicanal.store.bulk import read_rows


@dataclass(frozen=True, slots=True)
class MatchRun:
    """What one matching run did."""

    records: int
    candidate_pairs: int  # about how many pairs the blocking rules gave to score
    pairs: int
    merged: int
    refused: int
    queued: int
    seconds: float
    # Seconds each step took, in order: records, training, scoring, merging (with the
    # review queue). The estimate of the pairs is part of scoring.
    steps: dict[str, float] = field(default_factory=dict)


def records(conn: Connection) -> pd.DataFrame:
    """One record per person with a name: the latest value of each field in the cluster.

    `store` is where the person buys most, or else the store of their area. A person
    seen under several names (a cashier's typo, a maiden name) has one more record per
    other name, the same `cluster` on each: every name they go by is compared.
    """
    return _read(conn)[0]


def known_records(conn: Connection) -> pd.DataFrame:
    """One record per profile with a name, its `cluster` the person it belongs to.

    Profiles the deterministic rules joined (a receipt's card, a CRM e-mail) show how
    one person's names and places differ from record to record: matching learns its
    m values from them.
    """
    return _read(conn)[1]


_FIELDS = ("first_name", "last_name", "email", "phone", "postcode", "city", "street", "birth_date")


def _read(conn: Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the records of people and of profiles, with their stores.

    Read in bulk and shaped with pandas: at a million people, reading row by row
    through SQLAlchemy and folding each profile into its person in Python took most
    of a minute.
    """
    rows = read_rows(
        conn,
        "SELECT id, COALESCE(merged_into, id) AS root, first_name, last_name, email, "
        "phone, postcode, city, traits FROM profile WHERE last_name IS NOT NULL "
        "ORDER BY updated_ms",
    )
    columns = ["id", "root", "first_name", "last_name", "email", "phone", "postcode", "city"]
    profiles = pd.DataFrame([row[:8] for row in rows], columns=columns, dtype=object)
    found = [_birth_and_street(row[8]) for row in rows]
    profiles["street"] = [street for _, street in found]
    profiles["birth_date"] = [birth for birth, _ in found]
    profiles["record_id"] = profiles.pop("id").map(str)
    profiles["cluster"] = profiles.pop("root").map(str)
    person = _people(profiles)
    by_profile, by_person = _purchases(conn)
    out = [matching.CLUSTER_COLUMN, *matching.RECORD_COLUMNS]
    person["store"] = person["cluster"].map(by_person)
    known = profiles.reindex(columns=out)
    known["store"] = known["record_id"].map(by_profile)
    area = _area_stores(person)
    for frame in (person, known):
        frame["store"] = [
            store if isinstance(store, str) else area.get(str(postcode)[:2])
            for store, postcode in zip(frame["store"], frame["postcode"], strict=True)
        ]
    return person, known


def _people(profiles: pd.DataFrame) -> pd.DataFrame:
    """Return each person's record, and a copy of it under each other name they bore.

    A person's record holds the latest value of each field among their profiles
    (profiles come oldest first); people come in the order they first appear.
    """
    columns = [matching.CLUSTER_COLUMN, *matching.RECORD_COLUMNS]
    if profiles.empty:
        return pd.DataFrame(columns=columns, dtype=object)
    values = profiles[list(_FIELDS)]
    present = values.notna() & (values != "")
    latest = values.where(present).groupby(profiles["cluster"], sort=False).last()
    people = latest.reset_index().assign(record_id=lambda f: f["cluster"])
    people["order"], people["copy"] = range(len(people)), 0
    # Each other name, in the order first seen: (first, last) pairs, a missing first
    # name included, that differ from the person's latest names.
    names = profiles[["cluster", "first_name", "last_name"]].drop_duplicates()
    names = names.merge(
        people[["cluster", "first_name", "last_name", "order"]],
        on="cluster",
        suffixes=("", "_latest"),
    )
    same = names["first_name"].fillna(_NONE).eq(names["first_name_latest"].fillna(_NONE)) & (
        names["last_name"].eq(names["last_name_latest"])
    )
    others = names[~same].copy()
    others["copy"] = others.groupby("cluster", sort=False).cumcount() + 1
    copies = others[["cluster", "first_name", "last_name", "copy"]].merge(
        people.drop(columns=["first_name", "last_name", "record_id", "copy"]), on="cluster"
    )
    copies["record_id"] = copies["cluster"] + "~" + copies["copy"].astype(str)
    found = pd.concat([people, copies], ignore_index=True)
    found = found.sort_values(["order", "copy"], kind="stable", ignore_index=True)
    return found.reindex(columns=columns)


_NONE = "\x00"  # a missing first name, equal to itself (no name holds a NUL)


def _birth_and_street(traits: Any) -> tuple[str | None, Any]:
    """Return a profile's birth date (as text) and street, from its traits' JSON."""
    if isinstance(traits, str) and "birth" not in traits and '"address"' not in traits:
        return None, None  # most profiles: no need to decode them
    found = orjson.loads(traits)
    birth = _trait(found, "birthday") or _trait(found, "birthDate")
    return (str(birth)[:10] if birth else None), _trait(found, "address", "street")


def _purchases(conn: Connection) -> tuple[dict[str, str], dict[str, str]]:
    """Return the store each profile, and each person, comes to most.

    Purchases and returns count, and events held at a store outside its tills (a
    workshop's sign-up sheet names where it took place); ties go to the first store by
    name. Orders, returns and processed events belong to the profiles domain: they are
    read here through their tables, as the warehouse feed reads them. The events'
    condition is, word for word, that of `ix_profile_event_store_visit`, so that the
    databases read the few rows of that index rather than every event.
    """
    rows = read_rows(
        conn,
        "SELECT p.id, COALESCE(p.merged_into, p.id), s.store, COUNT(*) FROM ("
        "SELECT profile_id, store FROM orders WHERE store IS NOT NULL UNION ALL "
        "SELECT profile_id, SUBSTR(channel, 7) FROM order_refund "
        "WHERE channel LIKE 'store:%' UNION ALL "
        "SELECT profile_id, store FROM profile_event "
        "WHERE store IS NOT NULL AND channel NOT LIKE 'store:%'"  # as the partial index
        ") s JOIN profile p ON p.id = s.profile_id GROUP BY p.id, p.merged_into, s.store",
    )
    counts = pd.DataFrame(rows, columns=["profile", "person", "store", "n"])
    counts = counts.astype({"store": str, "n": "int64"})
    by_person = counts.groupby(["person", "store"])["n"].sum().reset_index()
    return _usual(counts, "profile"), _usual(by_person, "person")


def _usual(counts: pd.DataFrame, key: str) -> dict[str, str]:
    """Return the store each `key` counts most of (ties go to the first store by name)."""
    ordered = counts.sort_values([key, "n", "store"], ascending=[True, False, True])
    first = ordered.drop_duplicates(key)
    return dict(zip(first[key].astype(str), first["store"], strict=True))


# A department's store is the one most of its people buy at: a clear majority of
# enough people, or none (a department between two stores, or far from all).
AREA_MIN_PEOPLE = 20
AREA_MIN_SHARE = 0.6


def _area_stores(people: pd.DataFrame) -> dict[str, str]:
    """Return the store of each department (first two postcode characters) that has one."""
    known = people.dropna(subset=["store", "postcode"])
    counts = known.groupby([known["postcode"].str[:2], known["store"]]).size()
    area: dict[str, str] = {}
    for department, stores in counts.groupby(level=0):
        total, top = int(stores.sum()), stores.droplevel(0).sort_index()
        if total >= AREA_MIN_PEOPLE and top.max() >= AREA_MIN_SHARE * total:
            area[str(department)] = str(top.idxmax())
    return area


def _trait(traits: dict[str, Any], name: str, inner: str | None = None) -> Any:
    entry = traits.get(name)
    value = entry.get("value") if isinstance(entry, dict) else None
    if inner is not None:
        return value.get(inner) if isinstance(value, dict) else None
    return value if isinstance(value, str | int) else None


# Most retailers hold no birth dates: training and the prior then rest on names,
# postcodes and streets.
_WITHOUT_BIRTH_DATES = {
    "training_blocks": (
        "l.first_name = r.first_name and l.last_name = r.last_name",
        "l.postcode = r.postcode and substr(l.first_name, 1, 1) = substr(r.first_name, 1, 1)",
    ),
    "deterministic_rules": (
        "l.first_name = r.first_name and l.last_name = r.last_name and l.street = r.street",
        "l.email = r.email and l.first_name = r.first_name",
        "l.phone = r.phone and l.first_name = r.first_name",
    ),
}


# Offline records carry a name and a store far more often than a postcode: the same
# name at the same store makes a candidate pair when one of the two has no postcode
# (with both, the rules on postcodes and departments find them). Namesakes are common,
# so the model weighs how rare both names are, and a name and a store alone rarely
# merge.
_STORE_BLOCKING = (
    "l.postcode is null and l.first_name = r.first_name and l.last_name = r.last_name"
    " and l.store = r.store",
    "r.postcode is null and l.first_name = r.first_name and l.last_name = r.last_name"
    " and l.store = r.store",
)


def settings_for(frame: pd.DataFrame) -> matching.MatchSettings:
    """Matching settings suited to the fields the records actually carry.

    People are compared on both names weighed by their frequency, and never merged
    when their first or last names differ: a household shares an address, an e-mail
    and a last name.
    """
    options: dict[str, Any] = {
        "term_frequencies": ("first_name", "last_name"),
        "must_agree": ("first_name", "last_name"),
    }
    if frame["birth_date"].notna().sum() < 0.2 * len(frame):
        options.update(_WITHOUT_BIRTH_DATES)
    if "store" in frame.columns and frame["store"].notna().any():
        options["blocking_rules"] = matching.DEFAULT_BLOCKING + _STORE_BLOCKING
    return matching.MatchSettings(**options)


def run(
    conn: Connection,
    identity: IdentitySettings | None = None,
    settings: matching.MatchSettings | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> MatchRun:
    """Score every pair of people worth comparing; merge, refuse or queue each.

    `progress` is told each step as it starts: `records`, `training`, `scoring` (with
    about how many pairs), `merging` (with how many pairs to merge).
    """
    started = time.perf_counter()
    steps: dict[str, float] = {}
    under_way: list[tuple[str, float]] = []  # the step in progress, and since when

    def say(step: str, count: int) -> None:
        now = time.perf_counter()
        if under_way:
            name, since = under_way.pop()
            steps[name] = now - since
        under_way.append((step, now))
        if progress is not None:
            progress(step, count)

    say("records", 0)
    frame, known = _read(conn)
    people = frame[matching.CLUSTER_COLUMN].nunique()
    if people < 2:
        return MatchRun(people, 0, 0, 0, 0, 0, time.perf_counter() - started)
    settings = settings or settings_for(frame)
    say("training", len(known))
    model = matching.train(known, settings)
    estimate: list[int] = []

    def scoring(candidates: int) -> None:
        estimate.append(candidates)
        say("scoring", candidates)

    scored = matching.score_pairs(frame, settings, model=model, on_estimate=scoring)
    pairs = _between_people(scored, frame)
    merges, reviews = matching.decide(pairs, settings)
    say("merging", len(merges))
    now = int(time.time() * 1000)
    outcome = _merge(conn, merges, identity or IdentitySettings(), now)
    queued = _queue(conn, reviews, now)
    bump_generation(conn)
    ended = time.perf_counter()
    steps["merging"] = ended - under_way[0][1]
    return MatchRun(
        people,
        estimate[0],
        len(pairs),
        outcome["merged"],
        outcome["refused"],
        queued,
        ended - started,
        steps,
    )


def _between_people(pairs: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Name each pair by its two people; keep the likeliest pair of each two people."""
    records = pd.Index(frame["record_id"])
    people = frame[matching.CLUSTER_COLUMN].to_numpy()
    left = people[records.get_indexer(pairs["left_id"])]
    right = people[records.get_indexer(pairs["right_id"])]
    pairs = pairs.assign(left_id=left, right_id=right)[left != right]
    ids = pairs[["left_id", "right_id"]].astype("int64").to_numpy()
    low, high = ids.min(axis=1), ids.max(axis=1)
    first = ~pd.DataFrame({"a": low, "b": high}).duplicated().to_numpy()  # likeliest first
    return pairs[first].reset_index(drop=True)


def _merge(
    conn: Connection, merges: pd.DataFrame, identity: IdentitySettings, now: int
) -> dict[str, int]:
    """Merge the pairs, likeliest first, through the graph's guard rails."""
    graph = Graph(IdentityRules.from_settings(identity))
    graph.begin(conn, now)
    outcome = {"merged": 0, "refused": 0, "same": 0}
    ordered: list[dict[Any, Any]] = merges.sort_values(
        "match_probability", ascending=False
    ).to_dict("records")
    graph.prepare_merges(int(i) for pair in ordered for i in (pair["left_id"], pair["right_id"]))
    for pair in ordered:
        evidence = {
            "probability": round(float(pair["match_probability"]), 6),
            "match_weight": round(float(pair["match_weight"]), 3),
            "fields": orjson.loads(pair["evidence"]),
        }
        done = graph.merge_profiles(int(pair["left_id"]), int(pair["right_id"]), "match", evidence)
        outcome[done] += 1
    graph.flush()
    return outcome


def _queue(conn: Connection, reviews: pd.DataFrame, now: int) -> int:
    """Put the doubtful pairs before a reviewer (once each); return how many were new."""
    if reviews.empty:
        return 0
    doubtful: list[dict[Any, Any]] = reviews.to_dict("records")
    rows = []
    for pair in doubtful:
        left, right = sorted((int(pair["left_id"]), int(pair["right_id"])))
        rows.append(
            {
                "l": left,
                "r": right,
                "p": float(pair["match_probability"]),
                "e": pair["evidence"],
                "now": now,
            }
        )
    count = text("SELECT COUNT(*) FROM identity_match_review")
    before = int(conn.execute(count).scalar_one())
    conn.execute(
        text(
            "INSERT INTO identity_match_review (left_id, right_id, probability, evidence, "
            "status, created_ms) VALUES (:l, :r, :p, :e, 'pending', :now) "
            "ON CONFLICT (left_id, right_id) DO NOTHING"
        ),
        rows,
    )
    return int(conn.execute(count).scalar_one()) - before


def pending(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The review queue, most likely matches first."""
    rows = conn.execute(
        text(
            "SELECT id, left_id, right_id, probability, evidence, created_ms FROM "
            "identity_match_review WHERE status = 'pending' ORDER BY probability DESC, id "
            "LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [
        {
            "id": r.id,
            "left_id": r.left_id,
            "right_id": r.right_id,
            "probability": r.probability,
            "evidence": orjson.loads(r.evidence),
            "created_ms": r.created_ms,
        }
        for r in rows
    ]


def decide_review(
    conn: Connection, review_id: int, accept: bool, identity: IdentitySettings | None = None
) -> str:
    """Accept (merge) or reject a queued pair; a rejection is remembered as 'not the same'."""
    row = conn.execute(
        text(
            "SELECT id, left_id, right_id, probability, evidence, status FROM "
            "identity_match_review WHERE id = :id"
        ),
        {"id": review_id},
    ).first()
    if row is None:
        raise NotFoundError(f"no review {review_id}")
    if row.status != "pending":
        reason = f"review {review_id} was already decided ({row.status})"
        raise InvalidError(reason, errors=[{"field": "review", "reason": reason}])
    now = int(time.time() * 1000)
    outcome = "rejected"
    if accept:
        graph = Graph(IdentityRules.from_settings(identity or IdentitySettings()))
        graph.begin(conn, now)
        evidence = {
            "probability": row.probability,
            "fields": orjson.loads(row.evidence),
            "review_id": review_id,
        }
        outcome = graph.merge_profiles(int(row.left_id), int(row.right_id), "review", evidence)
        graph.flush()
        outcome = "merged" if outcome in ("merged", "same") else "refused"
    else:
        # Recorded as a merge undone at once, so no automatic rule joins them later.
        conn.execute(
            text(
                "INSERT INTO identity_merge (survivor_id, merged_id, rule, evidence, created_ms, "
                "undone_ms, undone_reason) VALUES (:s, :m, 'review', :e, :now, :now, "
                "'rejected in review')"
            ),
            {"s": row.left_id, "m": row.right_id, "e": row.evidence, "now": now},
        )
    conn.execute(
        text("UPDATE identity_match_review SET status = :s, decided_ms = :now WHERE id = :id"),
        {"s": outcome, "now": now, "id": review_id},
    )
    bump_generation(conn)
    return outcome
