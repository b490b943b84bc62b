"""Properties of identity resolution: order does not matter, every merge is explained."""

from __future__ import annotations

import itertools
import random
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from omnicanal.identity.normalise import identifiers_from_message
from omnicanal.profiles.processor import Processor
from omnicanal.store.engine import Database
from tests.conftest import make_source
from tests.profiles.logs import write_log

_names = itertools.count()
TABLES = (
    "collect_event",
    "profile",
    "identity",
    "identity_merge",
    "identity_conflict",
    "profile_event",
    "processor_checkpoint",
    "household_member",
    "household",
)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int]:
    """People with identifiers of their own, and events each carrying some of them."""
    people = draw(st.integers(1, 6))
    events: list[dict[str, Any]] = []
    for p in range(people):
        ids: list[tuple[str, Any]] = [
            ("anonymousId", f"anon-{p}-{d}") for d in range(draw(st.integers(1, 3)))
        ]
        if draw(st.booleans()):
            ids.append(("userId", f"user-{p}"))
        if draw(st.booleans()):
            ids.append(("email", f"personne{p}@exemple.fr"))
        if draw(st.booleans()):
            ids.append(("phone", f"+336{p:02d}{p * 7 % 100:02d}4593"))
        if draw(st.booleans()):
            ids.append(("card", f"CARTE-{p:05d}"))
        for _ in range(draw(st.integers(1, 5))):
            carried = draw(
                st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True)
            )
            events.append(_message(carried))
    seed = draw(st.integers(0, 2**32))
    return events, seed


def _message(carried: list[tuple[str, Any]]) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "track", "event": "Seen", "context": {"traits": {}}}
    for field, value in carried:
        if field in ("anonymousId", "userId"):
            msg[field] = value
        else:
            msg["context"]["traits"][field] = value
    if "anonymousId" not in msg and "userId" not in msg:
        msg["anonymousId"] = f"record-{id(msg)}"  # an imported row's own key
    return msg


def _expected_partition(messages: list[dict[str, Any]]) -> set[frozenset[str]]:
    """Connected components of messages sharing any identifier (union-find)."""
    parent = list(range(len(messages)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, msg in enumerate(messages):
        keys = [
            f"a:{msg.get('anonymousId')}",
            f"u:{msg.get('userId')}",
            *(f"{k}:{v}" for k, v in msg["context"]["traits"].items()),
        ]
        for key in keys:
            if key.endswith(":None"):
                continue
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    groups: dict[int, set[str]] = {}
    for i, msg in enumerate(messages):
        groups.setdefault(find(i), set()).add(msg["messageId"])
    return {frozenset(g) for g in groups.values()}


def _load(db: Database, source_id: int, messages: list[dict[str, Any]]) -> None:
    with db.engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    write_log(db, source_id, messages)


def _partition(db: Database) -> set[frozenset[str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.message_id, COALESCE(p.merged_into, p.id) FROM profile_event pe "
                "JOIN collect_event e ON e.id = pe.event_id JOIN profile p ON p.id = pe.profile_id"
            )
        ).all()
    groups: dict[int, set[str]] = {}
    for message_id, root in rows:
        groups.setdefault(root, set()).add(message_id)
    return {frozenset(g) for g in groups.values()}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_merging_is_order_independent_and_explained(db: Database, world: Any) -> None:
    messages, seed = world
    for i, msg in enumerate(messages):
        msg["messageId"] = f"m{i}"
        msg["timestamp"] = f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"
    source = make_source(db, f"s{next(_names)}", "web")
    expected = _expected_partition(messages)
    for order in range(2):
        shuffled = list(messages)
        random.Random(seed + order).shuffle(shuffled)
        _load(db, source.id, shuffled)
        Processor(db, batch_size=random.Random(seed).randint(1, 5)).drain()
        assert _partition(db) == expected
        _check_merges_are_explained(db)


def _check_merges_are_explained(db: Database) -> None:
    """Each merge names an identifier that its two sides really shared."""
    with db.engine.connect() as conn:
        merges = conn.execute(
            text("SELECT m.evidence, m.survivor_id, m.merged_id FROM identity_merge m")
        ).all()
        for evidence, survivor, merged in merges:
            proof = orjson.loads(evidence)
            holder = conn.execute(
                text(
                    "SELECT COALESCE(p.merged_into, p.id) FROM identity i "
                    "JOIN profile p ON p.id = i.profile_id WHERE i.kind = :k AND i.value = :v"
                ),
                {"k": proof["kind"], "v": proof["value"]},
            ).scalar_one()
            roots = (
                conn.execute(
                    text(
                        "SELECT DISTINCT COALESCE(merged_into, id) FROM profile "
                        "WHERE id IN (:a, :b)"
                    ),
                    {"a": survivor, "b": merged},
                )
                .scalars()
                .all()
            )
            assert roots == [holder]
            event = conn.execute(
                text("SELECT payload FROM collect_event WHERE id = :id"), {"id": proof["event_id"]}
            ).scalar_one()
            assert (proof["kind"], proof["value"]) in identifiers_from_message(orjson.loads(event))
