"""Reading and editing the identity graph by hand: look up, explain, undo a merge."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, text

from omnicanal.core.errors import InvalidError, NotFoundError

GRAPH_GENERATION = "identity-graph"


def root_of(conn: Connection, profile_id: int) -> int | None:
    """Return the root of a profile's cluster, None when the profile does not exist."""
    row = conn.execute(
        text("SELECT id, merged_into FROM profile WHERE id = :id"), {"id": profile_id}
    ).first()
    if row is None:
        return None
    return int(row.merged_into) if row.merged_into is not None else int(row.id)


def members(conn: Connection, root: int) -> list[int]:
    """Return the ids of a cluster's profiles, the root first."""
    rows = conn.execute(
        text("SELECT id FROM profile WHERE merged_into = :r ORDER BY id"), {"r": root}
    )
    return [root, *(int(r[0]) for r in rows)]


def find(conn: Connection, kind: str, value: str) -> int | None:
    """Return the root profile holding an identifier, None if unknown."""
    row = conn.execute(
        text("SELECT profile_id FROM identity WHERE kind = :k AND value = :v"),
        {"k": kind, "v": value},
    ).first()
    return None if row is None else root_of(conn, int(row[0]))


@dataclass(frozen=True, slots=True)
class Unmerged:
    """The result of undoing a merge."""

    merge_id: int
    survivor_id: int
    merged_id: int
    roots: dict[int, int | None]  # profile -> its new root (None: a root itself)


def unmerge(conn: Connection, profile_id: int, reason: str = "undone by hand") -> Unmerged:
    """Undo the merge that brought `profile_id` into its cluster.

    The profile takes back its identifiers, events, orders and consents (they stayed
    attached to it), and the two profiles are never merged again automatically.
    """
    merge = conn.execute(
        text(
            "SELECT id, survivor_id, merged_id FROM identity_merge WHERE merged_id = :p "
            "AND undone_ms IS NULL ORDER BY id DESC LIMIT 1"
        ),
        {"p": profile_id},
    ).first()
    if merge is None:
        if root_of(conn, profile_id) is None:
            raise NotFoundError(f"profile {profile_id} does not exist")
        reason_text = f"profile {profile_id} was not merged into another"
        raise InvalidError(reason_text, errors=[{"field": "profile", "reason": reason_text}])
    now = int(time.time() * 1000)
    conn.execute(
        text("UPDATE identity_merge SET undone_ms = :now, undone_reason = :r WHERE id = :id"),
        {"now": now, "r": reason[:255], "id": merge.id},
    )
    root = root_of(conn, int(merge.survivor_id))
    assert root is not None
    cluster = members(conn, root)
    active = conn.execute(
        text(
            "SELECT survivor_id, merged_id FROM identity_merge WHERE undone_ms IS NULL ORDER BY id"
        )
    ).all()
    in_cluster = set(cluster)
    parent = {
        int(m.merged_id): int(m.survivor_id)
        for m in active
        if int(m.merged_id) in in_cluster and int(m.survivor_id) in in_cluster
    }
    roots: dict[int, int | None] = {}
    for pid in cluster:
        top = pid
        while top in parent:
            top = parent[top]
        roots[pid] = None if top == pid else top
    conn.execute(
        text("UPDATE profile SET merged_into = :root, updated_ms = :now WHERE id = :id"),
        [{"root": r, "id": pid, "now": int(time.time() * 1000)} for pid, r in roots.items()],
    )
    bump_generation(conn)
    return Unmerged(int(merge.id), int(merge.survivor_id), int(merge.merged_id), roots)


def bump_generation(conn: Connection) -> None:
    """Tell running processors that the graph changed under them (they drop their caches)."""
    conn.execute(
        text(
            "INSERT INTO processor_checkpoint (name, last_event_id, updated_ms) VALUES "
            "(:n, 1, :now) ON CONFLICT (name) DO UPDATE SET "
            "last_event_id = processor_checkpoint.last_event_id + 1, updated_ms = :now"
        ),
        {"n": GRAPH_GENERATION, "now": int(time.time() * 1000)},
    )


def separated(conn: Connection, left: list[int], right: list[int]) -> bool:
    """Tell whether someone undid a merge between these two clusters."""
    found = conn.execute(
        text(
            "SELECT 1 FROM identity_merge WHERE undone_ms IS NOT NULL AND "
            "((survivor_id IN :a AND merged_id IN :b) OR (survivor_id IN :b AND merged_id IN :a)) "
            "LIMIT 1"
        ).bindparams(bindparam("a", expanding=True), bindparam("b", expanding=True)),
        {"a": left, "b": right},
    ).first()
    return found is not None


def merges_of(conn: Connection, cluster: list[int]) -> list[dict[str, Any]]:
    """Every merge that touched a cluster, with its evidence, oldest first."""
    rows = conn.execute(
        text(
            "SELECT id, survivor_id, merged_id, rule, evidence, created_ms, undone_ms, "
            "undone_reason FROM identity_merge WHERE survivor_id IN :ids OR merged_id IN :ids "
            "ORDER BY id"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": cluster},
    )
    return [
        {
            "id": r.id,
            "survivor_id": r.survivor_id,
            "merged_id": r.merged_id,
            "rule": r.rule,
            "evidence": orjson.loads(r.evidence),
            "created_ms": r.created_ms,
            "undone_ms": r.undone_ms,
            "undone_reason": r.undone_reason,
        }
        for r in rows
    ]
