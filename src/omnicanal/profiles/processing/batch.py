"""One batch in one transaction: resolve each event's person, derive what it says, write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from omnicanal.identity.normalise import address_key
from omnicanal.profiles.processing.common import BatchResult, clock_ms
from omnicanal.profiles.processing.orders import (
    PendingOrders,
    PendingRefund,
    join_order_reference,
    record_order,
    record_refund,
    write_orders,
    write_refunds,
)
from omnicanal.profiles.processing.parse import ORDER_EVENTS, REFUND_EVENTS, Event
from omnicanal.profiles.processing.statements import record_consents, record_survey
from omnicanal.profiles.processing.traits import EVENT, IDENTIFY, outranks
from omnicanal.profiles.processing.write import write

if TYPE_CHECKING:
    from omnicanal.profiles.processor import Processor


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


@dataclass(slots=True)
class _Touch:
    first: int
    last: int
    count: int = 0
    traits: dict[str, dict[str, Any]] = field(default_factory=dict)
    address: str | None = None


class Batch:
    """The work of one batch: resolve, derive, write."""

    def __init__(self, processor: Processor, conn: Connection, rows: list[Event]) -> None:
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
        events = self.rows
        graph.prefetch(k for event in events for k in event.keys)
        lags = []
        for event in events:
            pid = graph.resolve(
                event.id,
                event.keys,
                event.timestamp_ms,
                event.source_id,
                alias=event.type == "alias",
                name=event.name,
            )
            self._derive(event, pid)
            lags.append(self.now_ms - event.received_ms)
        created = graph.flush()
        write_orders(self)
        write_refunds(self)
        write(self)
        return BatchResult(len(events), events[-1].id, len(created), lags)

    # -- deriving --------------------------------------------------------------------

    def _derive(self, row: Event, pid: int) -> None:
        info = row.info
        at = row.timestamp_ms
        touch = self.touched.get(pid)
        if touch is None:
            touch = self.touched[pid] = _Touch(at, at)
        touch.first, touch.last = min(touch.first, at), max(touch.last, at)
        touch.count += 1
        if row.traits:
            self._traits(touch, row.traits, row)
        properties = row.properties
        order_id: int | None = None
        revenue: int | None = None
        name = row.event
        if row.type == "track" and name in ORDER_EVENTS:
            order_id, revenue = record_order(
                self, row, properties, pid, info.channel, info.campaign
            )
        elif row.type == "track" and name in REFUND_EVENTS:
            record_refund(self, row, properties, pid, info.channel)
        elif row.type == "track" and name == "Survey Answered":
            record_survey(self, row, properties, pid, info.channel)
        if (
            row.type == "track"
            and name not in ORDER_EVENTS  # a pick-up joins in record_order
            and not info.online
            and properties.get("order_ref")
        ):
            # A call about an order, a return at the till of an e-shop order: whoever
            # quotes the order's reference offline is its customer (or acts for them).
            join_order_reference(self, row, properties["order_ref"], pid)
        record_consents(self, row, pid)
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

    def _traits(self, touch: _Touch, traits: dict[str, Any], row: Event) -> None:
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
