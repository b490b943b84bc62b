"""The end of a batch: write its processed events, profiles, feedback and consents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import text

from omnicanal.identity.graph import link_household
from omnicanal.profiles.processing.common import (
    MEMO_SIZE,
    insert_statement,
    listing,
    select_in,
)
from omnicanal.profiles.processing.traits import SEARCHABLE, outranks, searchable
from omnicanal.store.bulk import insert_rows

if TYPE_CHECKING:
    from omnicanal.profiles.processing.batch import Batch

_EVENT_COLUMNS = [
    "event_id",
    "profile_id",
    "source_id",
    "timestamp_ms",
    "type",
    "event",
    "channel",
    "media_class",
    "online",
    "campaign",
    "order_id",
    "revenue_cents",
    "store",
]


def write(batch: Batch) -> None:
    """Write the batch's processed events, profiles, feedback and consents, in that order."""
    conn = batch.conn
    insert_rows(conn, "profile_event", _EVENT_COLUMNS, batch.events)
    write_profiles(batch)
    if batch.feedback:
        conn.execute(
            insert_statement(
                "feedback",
                "event_id profile_id kind score channel answered_ms comment",
            ),
            batch.feedback,
        )
    write_consents(batch)


_PROFILES = listing(
    "SELECT id, first_seen_ms, last_seen_ms, event_count FROM profile WHERE id IN :ids", "ids"
)
# Only the profiles the batch gives traits to have theirs read: most events carry none,
# and a profile's traits are its longest column.
_PROFILES_WITH_TRAITS = listing(
    "SELECT id, first_seen_ms, last_seen_ms, event_count, traits FROM profile WHERE id IN :ids",
    "ids",
)
_UPDATE_TIMES = text(
    "UPDATE profile SET first_seen_ms = :first, last_seen_ms = :last, "
    "event_count = :count, updated_ms = :now WHERE id = :id"
)
_UPDATE_TRAITS = text(
    "UPDATE profile SET first_seen_ms = :first, last_seen_ms = :last, "
    "event_count = :count, updated_ms = :now, traits = :traits, "
    + ", ".join(f"{c} = :{c}" for c in SEARCHABLE)
    + " WHERE id = :id"
)


def write_profiles(batch: Batch) -> None:
    """Fold the batch's touches into its profiles and link households by address."""
    conn = batch.conn
    ids = sorted(batch.touched)
    current: dict[int, Any] = {}
    plain_ids = [pid for pid in ids if not batch.touched[pid].traits]
    traits_ids = [pid for pid in ids if batch.touched[pid].traits]
    for query, wanted in ((_PROFILES, plain_ids), (_PROFILES_WITH_TRAITS, traits_ids)):
        for r in select_in(conn, query, wanted):
            current[int(r.id)] = r
    updates = []
    for pid in ids:
        touch = batch.touched[pid]
        updates.append(_folded(batch, pid, touch, current[pid]))
        if touch.address and (touch.address, pid) not in batch.p.households:
            _link_address(batch, pid, touch.address)
    plain = [u for u in updates if "traits" not in u]
    full = [u for u in updates if "traits" in u]
    if plain:
        conn.execute(_UPDATE_TIMES, plain)
    if full:
        conn.execute(_UPDATE_TRAITS, full)


def _folded(batch: Batch, pid: int, touch: Any, row: Any) -> dict[str, Any]:
    """Return a profile's update: times and count, and its traits when the batch gave some."""
    update: dict[str, Any] = {
        "id": pid,
        "first": min(int(row.first_seen_ms), touch.first),
        "last": max(int(row.last_seen_ms), touch.last),
        "count": int(row.event_count) + touch.count,
        "now": batch.now_ms,
    }
    if touch.traits:
        traits = orjson.loads(row.traits)
        for name, value in touch.traits.items():
            known = traits.get(name)
            if known is None or outranks(value, known):
                traits[name] = value
        flat = {name: entry["value"] for name, entry in traits.items()}
        update.update(searchable(flat))
        update["traits"] = orjson.dumps(traits).decode()
    return update


def _link_address(batch: Batch, pid: int, address: str) -> None:
    """Join the person to the household of their address (once per address and profile)."""
    if len(batch.p.households) > MEMO_SIZE:
        batch.p.households.clear()
    batch.p.households.add((address, pid))
    link_household(
        batch.conn,
        f"address:{address}",
        batch.p.graph.root(pid),
        orjson.dumps({"kind": "address", "value": address}).decode(),
        batch.now_ms,
        limit=batch.p.graph.rules.household_limit,
    )


_CONSENTS = listing(
    "SELECT profile_id, purpose, channel, granted, recorded_ms FROM consent "
    "WHERE profile_id IN :ids ORDER BY recorded_ms, id",
    "ids",
)


def write_consents(batch: Batch) -> None:
    """Keep a consent statement only when it changes what the person last said."""
    if not batch.consents:
        return
    conn = batch.conn
    pids = sorted({c["profile_id"] for c in batch.consents})
    latest: dict[tuple[int, str, str], tuple[int, bool]] = {}
    for r in select_in(conn, _CONSENTS, pids):
        latest[(int(r.profile_id), r.purpose, r.channel)] = (int(r.recorded_ms), bool(r.granted))
    kept = []
    for statement in sorted(batch.consents, key=lambda c: (c["recorded_ms"], c["event_id"])):
        key = (statement["profile_id"], statement["purpose"], statement["channel"])
        known = latest.get(key)
        if known is not None and known[1] == statement["granted"]:
            continue
        latest[key] = (statement["recorded_ms"], statement["granted"])
        kept.append(statement)
    if kept:
        conn.execute(
            insert_statement(
                "consent",
                "profile_id purpose channel granted "
                "source_id event_id recorded_ms wording_version proof",
            ),
            kept,
        )
