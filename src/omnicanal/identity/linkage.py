"""Probabilistic matching applied to the store: merge sure matches, queue the doubtful.

Each person (a cluster of profiles) becomes one record of their latest names and
contact details; `identity.matching` (Splink) scores candidate pairs. Pairs at or
above the merge threshold are merged through the identity graph, so the guard rails
hold (two account holders are never merged on a name) and each merge keeps its
evidence: the probability and the per-field comparison levels. Pairs in the review
band wait in `identity_match_review` for `omnicanal identity review`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import Connection, text

from omnicanal.core.errors import InvalidError, NotFoundError
from omnicanal.core.settings import IdentitySettings
from omnicanal.identity import matching
from omnicanal.identity.graph import Graph, IdentityRules
from omnicanal.identity.service import bump_generation


@dataclass(frozen=True, slots=True)
class MatchRun:
    """What one matching run did."""

    records: int
    pairs: int
    merged: int
    refused: int
    queued: int
    seconds: float


def records(conn: Connection) -> pd.DataFrame:
    """One record per person with a name: the latest value of each field in the cluster."""
    rows = conn.execute(
        text(
            "SELECT COALESCE(merged_into, id) AS root, first_name, last_name, email, phone, "
            "postcode, city, traits FROM profile WHERE last_name IS NOT NULL "
            "ORDER BY updated_ms"
        )
    )
    people: dict[int, dict[str, Any]] = {}
    for r in rows:
        traits = orjson.loads(r.traits)
        street = _trait(traits, "address", "street")
        birth = _trait(traits, "birthday") or _trait(traits, "birthDate")
        record = people.setdefault(int(r.root), {"record_id": str(r.root)})
        values = {
            "first_name": r.first_name,
            "last_name": r.last_name,
            "email": r.email,
            "phone": r.phone,
            "postcode": r.postcode,
            "city": r.city,
            "street": street,
            "birth_date": str(birth)[:10] if birth else None,
        }
        record.update({k: v for k, v in values.items() if v})
    return pd.DataFrame(list(people.values()), columns=list(matching.RECORD_COLUMNS))


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


def settings_for(frame: pd.DataFrame) -> matching.MatchSettings:
    """Matching settings suited to the fields the records actually carry."""
    if frame["birth_date"].notna().sum() >= 0.2 * len(frame):
        return matching.MatchSettings()
    return matching.MatchSettings(**_WITHOUT_BIRTH_DATES)  # type: ignore[arg-type]


def run(
    conn: Connection,
    identity: IdentitySettings | None = None,
    settings: matching.MatchSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> MatchRun:
    """Score every pair of people worth comparing; merge, refuse or queue each."""
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    say("records")
    frame = records(conn)
    if len(frame) < 2:
        return MatchRun(len(frame), 0, 0, 0, 0, time.perf_counter() - started)
    settings = settings or settings_for(frame)
    say("scoring")
    pairs = matching.score_pairs(frame, settings)
    merges, reviews = matching.decide(pairs, settings)
    say("merging")
    graph = Graph(IdentityRules.from_settings(identity or IdentitySettings()))
    now = int(time.time() * 1000)
    graph.begin(conn, now)
    outcome = {"merged": 0, "refused": 0, "same": 0}
    ordered: list[dict[Any, Any]] = merges.sort_values(
        "match_probability", ascending=False
    ).to_dict("records")
    for pair in ordered:
        evidence = {
            "probability": round(float(pair["match_probability"]), 6),
            "match_weight": round(float(pair["match_weight"]), 3),
            "fields": orjson.loads(pair["evidence"]),
        }
        done = graph.merge_profiles(int(pair["left_id"]), int(pair["right_id"]), "match", evidence)
        outcome[done] += 1
    graph.flush()
    queued = 0
    doubtful: list[dict[Any, Any]] = reviews.to_dict("records")
    for pair in doubtful:
        left, right = sorted((int(pair["left_id"]), int(pair["right_id"])))
        inserted = conn.execute(
            text(
                "INSERT INTO identity_match_review (left_id, right_id, probability, evidence, "
                "status, created_ms) VALUES (:l, :r, :p, :e, 'pending', :now) "
                "ON CONFLICT (left_id, right_id) DO NOTHING"
            ),
            {
                "l": left,
                "r": right,
                "p": float(pair["match_probability"]),
                "e": pair["evidence"],
                "now": now,
            },
        )
        queued += inserted.rowcount or 0
    bump_generation(conn)
    return MatchRun(
        len(frame),
        len(pairs),
        outcome["merged"],
        outcome["refused"],
        queued,
        time.perf_counter() - started,
    )


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
