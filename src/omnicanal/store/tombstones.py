"""Deletions that readers of the store must repeat.

Copies of the store (the analytics warehouse, exports) read changes incrementally, by
event sequence and update time; a deleted row leaves nothing behind to read. Whoever
deletes rows the copies hold (an RGPD erasure, above all) writes a tombstone here in
the same transaction, and each copy replays the tombstones it has not seen yet, in
order of `id`.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import BigInteger, Connection, Index, String, insert
from sqlalchemy.orm import Mapped, mapped_column

from omnicanal.store.base import Base, BigId

#: Kinds of tombstone. A profile's tombstone erases the profile and every row about it.
PROFILE = "profile"


class Tombstone(Base):
    """One deleted row: its kind (a table, or `profile` for a whole person) and key."""

    __tablename__ = "store_tombstone"
    __table_args__ = (Index("ix_store_tombstone_kind", "kind", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[int] = mapped_column(BigInteger)
    deleted_ms: Mapped[int] = mapped_column(BigInteger)


def record_deletions(conn: Connection, kind: str, keys: Iterable[int], now_ms: int) -> int:
    """Write one tombstone per deleted key; return how many were written."""
    rows = [{"kind": kind, "key": int(k), "deleted_ms": now_ms} for k in keys]
    if rows:
        conn.execute(insert(Tombstone), rows)
    return len(rows)
