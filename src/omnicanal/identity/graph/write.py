"""Writing a batch back: `flush()` turns what the batch changed into SQL.

The steps run in a fixed order: new profiles and identifiers first, since what follows
may name them, then last sightings, merges, shared identifiers, conflicts and
households; last, the cache is settled to match what the database now says.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from omnicanal.identity.graph.cache import GraphCache, Pending
from omnicanal.identity.graph.household import link_household
from omnicanal.store.bulk import insert_rows


class Writer(GraphCache):
    """The graph's `flush()`."""

    def flush(self) -> list[int]:
        """Write what this batch changed; return the ids of the profiles created."""
        pending, conn = self._pending, self.conn
        _insert_created(conn, pending)
        _update_seen(conn, pending)
        _record_merges(conn, pending, self.now_ms)
        _mark_shared(conn, pending)
        _record_conflicts(conn, pending)
        for key, profile_id, evidence in pending.households:
            link_household(
                conn, key, profile_id, evidence, self.now_ms, limit=self.rules.household_limit
            )
        self._settle_roots()
        created = [p["id"] for p in pending.profiles]
        self._pending = Pending()
        return created

    def _settle_roots(self) -> None:
        """Keep the root cache flat and forget the batch's forwarding.

        Roots moved by merges are now in the database, which answers for profiles
        not cached.
        """
        if not self._forward:
            return
        # Only profiles whose root was merged away move: a membership test per cached
        # profile, not a root() call (the cache holds up to a million of them).
        moved = self._forward
        for pid, root in self._root.items():
            if root in moved:
                self._root[pid] = self.root(pid)
        moved.clear()


def _insert_created(conn: Connection, pending: Pending) -> None:
    """Insert the batch's new profiles, then its new identifiers."""
    profile = ("id", "created_ms", "updated_ms", "first_seen_ms", "last_seen_ms")
    insert_rows(
        conn,
        "profile",
        (*profile, "event_count", "traits"),
        [(*(p[c] for c in profile), 0, "{}") for p in pending.profiles],
    )
    identity = ("kind", "value", "profile_id", "source_id", "first_seen_ms", "last_seen_ms")
    insert_rows(
        conn,
        "identity",
        (*identity, "shared"),
        [(*(i[c] for c in identity), i["shared"]) for i in pending.identities],
    )


def _update_seen(conn: Connection, pending: Pending) -> None:
    """Move known identifiers' last sightings forward, never back."""
    if pending.seen:
        conn.execute(
            text(
                "UPDATE identity SET last_seen_ms = :at WHERE kind = :kind AND value = :value "
                "AND last_seen_ms < :at"
            ),
            [{"kind": k, "value": v, "at": at} for (k, v), at in pending.seen.items()],
        )


def _record_merges(conn: Connection, pending: Pending, now_ms: int) -> None:
    """Point each merged cluster at its survivor, then log the merges.

    The updates run in the order of the merges: a cluster merged, then merged again
    into a third, ends pointing at the third.
    """
    if pending.merges:
        conn.execute(
            text(
                "UPDATE profile SET merged_into = :s, updated_ms = :now "
                "WHERE id = :m OR merged_into = :m"
            ),
            [
                {"s": merge["survivor_id"], "m": merge["merged_id"], "now": now_ms}
                for merge in pending.merges
            ],
        )
        conn.execute(
            text(
                "INSERT INTO identity_merge (survivor_id, merged_id, rule, evidence, "
                "created_ms) VALUES (:survivor_id, :merged_id, :rule, :evidence, :created_ms)"
            ),
            pending.merges,
        )


def _mark_shared(conn: Connection, pending: Pending) -> None:
    """Mark the identifiers found shared, so they never join profiles again."""
    if pending.shared:
        conn.execute(
            text("UPDATE identity SET shared = :yes WHERE kind = :kind AND value = :value"),
            [{"yes": True, "kind": k, "value": v} for k, v in pending.shared],
        )


def _record_conflicts(conn: Connection, pending: Pending) -> None:
    """Log the joins the guard rails refused."""
    if pending.conflicts:
        conn.execute(
            text(
                "INSERT INTO identity_conflict (kind, value, profile_ids, reason, event_id, "
                "created_ms) VALUES (:kind, :value, :profile_ids, :reason, :event_id, "
                ":created_ms)"
            ),
            pending.conflicts,
        )
