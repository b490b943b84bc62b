"""One batch in one transaction: resolve each event's person, derive what it says, write."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection

from omnicanal.core.channel_rules import derive_channel
from omnicanal.identity.graph import Name
from omnicanal.identity.normalise import address_key
from omnicanal.profiles.processing.common import BatchResult, clock_ms, raw_id
from omnicanal.profiles.processing.orders import (
    PendingOrders,
    PendingRefund,
    join_order_reference,
    record_order,
    record_refund,
    write_orders,
    write_refunds,
)
from omnicanal.profiles.processing.statements import record_consents, record_survey
from omnicanal.profiles.processing.traits import (
    EVENT,
    IDENTIFY,
    identifier_key,
    message_identity,
    message_traits,
    outranks,
)
from omnicanal.profiles.processing.write import write

if TYPE_CHECKING:
    from omnicanal.profiles.processor import Processor

_ORDER_EVENTS = frozenset({"Order Completed", "Order Placed"})
_REFUND_EVENTS = frozenset({"Order Refunded", "Order Cancelled"})


def _store(channel: str, online: bool, properties: dict[str, Any]) -> str | None:
    """Return the store an interaction took place at, if it took place in one.

    A till's channel names its store; an offline event held in a store (a workshop, a
    fitting, a fair stand) names it in `properties.store` or `properties.location`.
    """
    if channel.startswith("store:"):
        return channel[6:86]
    if online:
        return None
    where = properties.get("store") or properties.get("location")
    return where[:80] if isinstance(where, str) and where.strip() else None


def _channel_key(source_channel: str, msg: dict[str, Any]) -> tuple[Any, ...]:
    """Everything the default channel rules read, as a hashable key."""
    context = msg.get("context")
    context = context if isinstance(context, dict) else {}
    page = context.get("page")
    page = page if isinstance(page, dict) else {}
    properties = msg.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    return (
        source_channel,
        raw_id(context.get("channel")),
        raw_id(context.get("campaign")),
        raw_id(page.get("url")),
        raw_id(page.get("referrer")),
        raw_id(page.get("search")),
        raw_id(properties.get("url")),
        raw_id(properties.get("referrer")),
        raw_id(properties.get("search")),
    )


@dataclass(slots=True)
class _Touch:
    first: int
    last: int
    count: int = 0
    traits: dict[str, dict[str, Any]] = field(default_factory=dict)
    address: str | None = None


class Batch:
    """The work of one batch: resolve, derive, write."""

    def __init__(self, processor: Processor, conn: Connection, rows: list[Any]) -> None:
        self.p = processor
        self.conn = conn
        self.rows = rows
        self.now_ms = clock_ms()
        self.touched: dict[int, _Touch] = {}
        self.events: list[tuple[Any, ...]] = []  # in the order of write._EVENT_COLUMNS
        self.consents: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []
        self.orders = PendingOrders()
        self.refunds: list[PendingRefund] = []

    def run(self) -> BatchResult:
        graph = self.p.graph
        graph.begin(self.conn, self.now_ms)
        parsed: list[tuple[Any, dict[str, Any], list[tuple[str, str]], Name]] = []
        memo = self.p.identifiers
        for row in self.rows:
            msg = orjson.loads(row.payload)
            keys, name = memo.get(identifier_key(msg), partial(message_identity, msg))
            parsed.append((row, msg, keys, name))
        graph.prefetch(k for _row, _msg, keys, _name in parsed for k in keys)
        lags = []
        for row, msg, keys, name in parsed:
            pid = graph.resolve(
                row.id,
                keys,
                row.timestamp_ms,
                row.source_id,
                alias=row.type == "alias",
                name=name,
            )
            self._derive(row, msg, pid)
            lags.append(self.now_ms - row.received_ms)
        created = graph.flush()
        write_orders(self)
        write_refunds(self)
        write(self)
        return BatchResult(len(self.rows), self.rows[-1].id, len(created), lags)

    # -- deriving --------------------------------------------------------------------

    def _derive(self, row: Any, msg: dict[str, Any], pid: int) -> None:
        source_channel = self.p.source_channel(self.conn, row.source_id)
        if self.p.rules_configured:
            info = derive_channel(source_channel, msg)
        else:
            info = self.p.channels.get(
                _channel_key(source_channel, msg), lambda: derive_channel(source_channel, msg)
            )
        at = row.timestamp_ms
        touch = self.touched.get(pid)
        if touch is None:
            touch = self.touched[pid] = _Touch(at, at)
        touch.first, touch.last = min(touch.first, at), max(touch.last, at)
        touch.count += 1
        traits = message_traits(msg)
        if traits:
            self._traits(touch, traits, row)
        properties = msg.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        order_id: int | None = None
        revenue: int | None = None
        name = row.event
        if row.type == "track" and name in _ORDER_EVENTS:
            order_id, revenue = record_order(
                self, row, properties, pid, info.channel, info.campaign
            )
        elif row.type == "track" and name in _REFUND_EVENTS:
            record_refund(self, row, properties, pid, info.channel)
        elif row.type == "track" and name == "Survey Answered":
            record_survey(self, row, properties, pid, info.channel)
        if (
            row.type == "track"
            and name not in _ORDER_EVENTS  # a pick-up joins in record_order
            and not info.online
            and properties.get("order_ref")
        ):
            # A call about an order, a return at the till of an e-shop order: whoever
            # quotes the order's reference offline is its customer (or acts for them).
            join_order_reference(self, row, properties["order_ref"], pid)
        record_consents(self, row, msg, pid)
        self.events.append(
            (
                row.id,
                pid,
                row.source_id,
                at,
                row.type,
                name,
                info.channel,
                str(info.media_class),
                info.online,
                info.campaign[:255] if info.campaign else None,
                order_id,
                revenue,
                _store(info.channel, info.online, properties),
            )
        )

    def _traits(self, touch: _Touch, traits: dict[str, Any], row: Any) -> None:
        given = IDENTIFY if row.type == "identify" else EVENT
        for name, value in traits.items():
            if value is None or name in {"password"}:
                continue
            entry = {
                "value": value,
                "source_id": row.source_id,
                "at": row.timestamp_ms,
                "event_id": row.id,
                "from": given,
            }
            known = touch.traits.get(name)
            if known is None or outranks(entry, known):
                touch.traits[name] = entry
        address = traits.get("address")
        if isinstance(address, dict):
            touch.address = address_key(
                address.get("street"), address.get("postalCode"), address.get("city")
            )
