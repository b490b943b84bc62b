"""Households: the people a shared identifier (an e-mail, a phone) links without merging.

A function of the connection alone, so the processor can link people to a household
outside the graph too (an order's delivery address).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, text

_HOUSEHOLD = text("SELECT id FROM household WHERE key = :key")
_NEW_HOUSEHOLD = text("INSERT INTO household (key, created_ms) VALUES (:key, :now) RETURNING id")
_SIZE = text("SELECT COUNT(*) FROM household_member WHERE household_id = :h")
_MEMBER = text("SELECT 1 FROM household_member WHERE household_id = :h AND profile_id = :p")
_ADD_MEMBER = text(
    "INSERT INTO household_member (household_id, profile_id, evidence, since) "
    "VALUES (:h, :p, :e, :since)"
)


def link_household(
    conn: Connection,
    key: str,
    profile_id: int,
    evidence: str,
    now_ms: int,
    *,
    limit: int | None = None,
) -> None:
    """Add a profile to the household named by `key` (created when new); idempotent.

    A household already holding `limit` people takes no more: an address or e-mail shared
    by that many is a building or a shop's, not a family's.
    """
    household_id = _household_with_room(conn, key, now_ms, limit)
    if household_id is None:
        return
    exists = conn.execute(_MEMBER, {"h": household_id, "p": profile_id}).first()
    if exists is None:
        conn.execute(
            _ADD_MEMBER,
            {
                "h": household_id,
                "p": profile_id,
                "e": evidence,
                "since": datetime.fromtimestamp(now_ms / 1000, UTC).date(),
            },
        )


def _household_with_room(conn: Connection, key: str, now_ms: int, limit: int | None) -> int | None:
    """Return the id of the household `key` names, created when new; None when it is full."""
    row = conn.execute(_HOUSEHOLD, {"key": key}).first()
    if row is None:
        return int(conn.execute(_NEW_HOUSEHOLD, {"key": key, "now": now_ms}).scalar_one())
    household_id = int(row[0])
    if limit is not None:
        size = conn.execute(_SIZE, {"h": household_id}).scalar_one()
        if size >= limit:
            return None
    return household_id
