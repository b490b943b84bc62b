"""The profile 360: one person across every channel, and finding them."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, text

from omnicanal.core.errors import NotFoundError
from omnicanal.identity import service as identity
from omnicanal.identity.normalise import (
    normalise_card,
    normalise_email,
    normalise_name,
    normalise_phone,
)

TIMELINE_LIMIT = 200


def _ids(name: str = "ids") -> Any:
    return bindparam(name, expanding=True)


def resolve(conn: Connection, reference: str) -> int:
    """Find a profile by id, email, phone, loyalty card or userId; return its root."""
    ref = reference.strip()
    candidates: list[tuple[str, str | None]] = []
    if ref.isdigit():
        root = identity.root_of(conn, int(ref))
        if root is not None:
            return root
    if "@" in ref:
        candidates.append(("email", normalise_email(ref)))
    candidates += [
        ("phone", normalise_phone(ref)),
        ("card", normalise_card(ref)),
        ("user_id", ref),
        ("anonymous_id", ref),
    ]
    for kind, value in candidates:
        if value:
            root = identity.find(conn, kind, value)
            if root is not None:
                return root
    raise NotFoundError(f"no profile has the id, email, phone, card or userId {reference!r}")


def search(conn: Connection, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Profiles whose email, phone, card or name matches `query` (one row per person)."""
    q = query.strip()
    found: list[int] = []
    email, phone, card = normalise_email(q), normalise_phone(q), normalise_card(q)
    name = normalise_name(q)
    clauses = []
    params: dict[str, Any] = {"limit": limit}
    if email:
        clauses.append("email = :email")
        params["email"] = email
    elif "@" in q:
        clauses.append("email LIKE :email_prefix")
        params["email_prefix"] = q.lower() + "%"
    if phone:
        clauses.append("phone = :phone")
        params["phone"] = phone
    if card:
        clauses.append("card = :card")
        params["card"] = card
    if name:
        parts = name.split()
        if len(parts) >= 2:
            clauses.append("(first_name = :p0 AND last_name LIKE :p1)")
            clauses.append("(last_name = :p0 AND first_name LIKE :p1)")
            params["p0"], params["p1"] = parts[0], " ".join(parts[1:]) + "%"
        clauses.append("last_name LIKE :name")
        params["name"] = name + "%"
    if not clauses:
        return []
    rows = conn.execute(
        text(
            "SELECT DISTINCT COALESCE(merged_into, id) AS root FROM profile WHERE "
            + " OR ".join(clauses)
            + " ORDER BY root LIMIT :limit"
        ),
        params,
    )
    found = [int(r.root) for r in rows]
    return [summary(conn, root) for root in found]


def summary(conn: Connection, root: int) -> dict[str, Any]:
    """The one-line view of a person: names, contact, activity."""
    cluster = identity.members(conn, root)
    rows = conn.execute(
        text(
            "SELECT id, email, phone, card, first_name, last_name, postcode, city, first_seen_ms, "
            "last_seen_ms, event_count, updated_ms FROM profile WHERE id IN :ids"
        ).bindparams(_ids()),
        {"ids": cluster},
    ).all()
    latest = sorted(rows, key=lambda r: r.updated_ms, reverse=True)
    out: dict[str, Any] = {"id": root, "profiles": len(cluster)}
    for column in ("email", "phone", "card", "first_name", "last_name", "postcode", "city"):
        out[column] = next((getattr(r, column) for r in latest if getattr(r, column)), None)
    out["first_seen_ms"] = min(r.first_seen_ms for r in rows)
    out["last_seen_ms"] = max(r.last_seen_ms for r in rows)
    out["events"] = sum(r.event_count for r in rows)
    return out


def _sources(conn: Connection) -> dict[int, str]:
    return {int(r.id): r.name for r in conn.execute(text("SELECT id, name FROM collect_source"))}


def profile_360(
    conn: Connection, reference: str, *, timeline: int = TIMELINE_LIMIT
) -> dict[str, Any]:
    """Everything known of one person, from every channel, with why records were joined."""
    root = resolve(conn, reference)
    cluster = identity.members(conn, root)
    sources = _sources(conn)
    out = summary(conn, root)
    out["members"] = cluster
    out["traits"] = _traits(conn, cluster, sources)
    out["identities"] = _identities(conn, cluster, sources)
    out["merges"] = identity.merges_of(conn, cluster)
    out["consents"] = _consents(conn, cluster, sources)
    out["channels"] = _channels(conn, cluster)
    out["orders_by_channel"] = _orders_by_channel(conn, cluster)
    out["orders"] = _orders(conn, cluster)
    out["feedback"] = [
        dict(r._mapping)
        for r in conn.execute(
            text(
                "SELECT kind, score, channel, answered_ms, comment FROM feedback "
                "WHERE profile_id IN :ids ORDER BY answered_ms"
            ).bindparams(_ids()),
            {"ids": cluster},
        )
    ]
    out["households"] = _households(conn, cluster)
    out["timeline"] = _timeline(conn, cluster, sources, timeline)
    return out


def _traits(
    conn: Connection, cluster: list[int], sources: dict[int, str]
) -> dict[str, dict[str, Any]]:
    """Each trait's latest value across the person's records, with its source's name."""
    traits: dict[str, dict[str, Any]] = {}
    for row in conn.execute(
        text("SELECT traits FROM profile WHERE id IN :ids").bindparams(_ids()), {"ids": cluster}
    ):
        for name, entry in orjson.loads(row.traits).items():
            if name not in traits or traits[name]["at"] <= entry["at"]:
                traits[name] = entry
    return {
        name: {**entry, "source": sources.get(entry.get("source_id") or -1)}
        for name, entry in sorted(traits.items())
    }


def _identities(
    conn: Connection, cluster: list[int], sources: dict[int, str]
) -> list[dict[str, Any]]:
    return [
        {
            "kind": r.kind,
            "value": r.value,
            "profile_id": r.profile_id,
            "source": sources.get(r.source_id or -1),
            "first_seen_ms": r.first_seen_ms,
            "last_seen_ms": r.last_seen_ms,
            "shared": bool(r.shared),
        }
        for r in conn.execute(
            text(
                "SELECT kind, value, profile_id, source_id, first_seen_ms, last_seen_ms, shared "
                "FROM identity WHERE profile_id IN :ids ORDER BY kind, first_seen_ms"
            ).bindparams(_ids()),
            {"ids": cluster},
        )
    ]


def _channels(conn: Connection, cluster: list[int]) -> list[dict[str, Any]]:
    """The channels the person used, with their events and first and last seen."""
    return [
        {
            "channel": r.channel,
            "media_class": r.media_class,
            "online": bool(r.online),
            "events": r.n,
            "first_seen_ms": r.first,
            "last_seen_ms": r.last,
        }
        for r in conn.execute(
            text(
                "SELECT channel, media_class, online, COUNT(*) AS n, MIN(timestamp_ms) AS first, "
                "MAX(timestamp_ms) AS last FROM profile_event WHERE profile_id IN :ids "
                "GROUP BY channel, media_class, online ORDER BY MIN(timestamp_ms)"
            ).bindparams(_ids()),
            {"ids": cluster},
        )
    ]


def _orders_by_channel(conn: Connection, cluster: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "channel": r.channel,
            "orders": r.n,
            "revenue_eur": int(r.revenue or 0) / 100,
            "refunded_eur": int(r.refunded or 0) / 100,
        }
        for r in conn.execute(
            text(
                "SELECT channel, COUNT(*) AS n, SUM(total_eur_cents) AS revenue, "
                "SUM(refunded_eur_cents) AS refunded FROM orders WHERE profile_id IN :ids "
                "GROUP BY channel ORDER BY channel"
            ).bindparams(_ids()),
            {"ids": cluster},
        )
    ]


def _consents(conn: Connection, cluster: list[int], sources: dict[int, str]) -> dict[str, Any]:
    history = [
        {
            "purpose": r.purpose,
            "channel": r.channel,
            "granted": bool(r.granted),
            "source": sources.get(r.source_id or -1),
            "event_id": r.event_id,
            "recorded_ms": r.recorded_ms,
            "wording_version": r.wording_version,
        }
        for r in conn.execute(
            text(
                "SELECT purpose, channel, granted, source_id, event_id, recorded_ms, "
                "wording_version FROM consent WHERE profile_id IN :ids ORDER BY recorded_ms, id"
            ).bindparams(_ids()),
            {"ids": cluster},
        )
    ]
    current: dict[str, dict[str, Any]] = {}
    for entry in history:
        current[f"{entry['purpose']}:{entry['channel']}"] = entry
    return {"current": list(current.values()), "history": history}


def _orders(conn: Connection, cluster: list[int]) -> list[dict[str, Any]]:
    orders = [
        dict(r._mapping)
        for r in conn.execute(
            text(
                "SELECT id, order_key, channel, store, fulfilment, status, currency, total_cents, "
                "total_eur_cents, refunded_eur_cents, placed_ms FROM orders "
                "WHERE profile_id IN :ids ORDER BY placed_ms DESC LIMIT 100"
            ).bindparams(_ids()),
            {"ids": cluster},
        )
    ]
    if not orders:
        return orders
    lines: dict[int, list[dict[str, Any]]] = {}
    for r in conn.execute(
        text(
            "SELECT order_id, sku, name, category, quantity, unit_price_eur_cents, "
            "returned_quantity FROM order_line WHERE order_id IN :ids ORDER BY id"
        ).bindparams(_ids()),
        {"ids": [o["id"] for o in orders]},
    ):
        row = dict(r._mapping)
        lines.setdefault(row.pop("order_id"), []).append(row)
    for order in orders:
        order["lines"] = lines.get(order["id"], [])
    return orders


def _households(conn: Connection, cluster: list[int]) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT h.id, h.key, m.profile_id, m.evidence FROM household h "
            "JOIN household_member m ON m.household_id = h.id WHERE h.id IN "
            "(SELECT household_id FROM household_member WHERE profile_id IN :ids) ORDER BY h.id"
        ).bindparams(_ids()),
        {"ids": cluster},
    )
    households: dict[int, dict[str, Any]] = {}
    for r in rows:
        entry = households.setdefault(
            r.id, {"id": r.id, "key": r.key, "evidence": orjson.loads(r.evidence), "members": []}
        )
        root = identity.root_of(conn, int(r.profile_id))
        if root is not None and root not in cluster and root not in entry["members"]:
            entry["members"].append(root)
    return list(households.values())


def _timeline(
    conn: Connection, cluster: list[int], sources: dict[int, str], limit: int
) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT p.event_id, p.timestamp_ms, p.type, p.event, p.channel, p.media_class, "
            "p.campaign, p.source_id, p.order_id, p.revenue_cents, p.store, e.payload "
            "FROM profile_event p "
            "JOIN collect_event e ON e.id = p.event_id WHERE p.profile_id IN :ids "
            "ORDER BY p.timestamp_ms DESC, p.event_id DESC LIMIT :limit"
        ).bindparams(_ids()),
        {"ids": cluster, "limit": limit},
    )
    timeline = []
    for r in rows:
        payload = orjson.loads(r.payload)
        timeline.append(
            {
                "event_id": r.event_id,
                "timestamp": payload.get("timestamp"),
                "timestamp_ms": r.timestamp_ms,
                "type": r.type,
                "event": r.event,
                "channel": r.channel,
                "media_class": r.media_class,
                "campaign": r.campaign,
                "store": r.store,
                "source": sources.get(r.source_id),
                "order_id": r.order_id,
                "revenue_eur": None if r.revenue_cents is None else r.revenue_cents / 100,
                "properties": payload.get("properties") or {},
            }
        )
    return timeline


def profile_count(conn: Connection) -> int:
    """People known (clusters, not records)."""
    return int(
        conn.execute(text("SELECT COUNT(*) FROM profile WHERE merged_into IS NULL")).scalar_one()
    )
