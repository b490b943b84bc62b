"""Segment-spec messages of the demo retailer, in time order, as its sources send them.

Visits to the e-shop and the app come from `visits`; the marketing tools speak like their
Segment webhooks (`Email Delivered`, `SMS Link Clicked`, `Push Notification Tapped`...),
and the e-shop's back office sends `Order Refunded` for returns by post.

Messages come out in time order: each visit or delivery is expanded when its start is
reached, and a heap holds what has been built but not yet sent.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from omnicanal.demo.chunk import Chunk
from omnicanal.demo.shop import SITE
from omnicanal.demo.tracking import (
    ESHOP,
    NEWSLETTER,
    PUSH_SOURCE,
    SMS_SOURCE,
    SOURCES,
    iso,
    phone_as_typed,
)
from omnicanal.demo.visits import VisitBuilder
from omnicanal.demo.world import Campaign, World

__all__ = ["SOURCES", "Builder", "count", "iso", "phone_as_typed", "refunds", "stream"]

# What a campaign tool sends about one delivery: its source, the context of its messages
# and each event with its time (nan if it did not happen) and properties.
_Steps = tuple[int, dict[str, Any], list[tuple[float, str, dict[str, Any]]]]


class Builder(VisitBuilder):
    """Expands one chunk's visits, deliveries and refunds into messages."""

    def expand(self, kind: int, ref: int) -> list[tuple[int, int, dict[str, Any]]]:
        """Build a visit (0), a delivery (1) or a refund (2) as (epoch ms, source, message)."""
        if kind == 0:
            source, msgs = self.session(ref)
            t = float(self.sessions.t[ref])
            start, end = self.ms(t), self.ms(t + float(self.sessions.duration[ref]))
            step = (end - start) // max(len(msgs) - 1, 1)
            out = []
            for i, msg in enumerate(msgs):
                when = end if i == len(msgs) - 1 and i > 0 else start + step * i
                out.append((when, source, self._stamp(msg, when, source == ESHOP)))
            return out
        if kind == 1:
            return [
                (ms, src, self._stamp(msg, ms, False))
                for t, src, msg in self.delivery(ref)
                for ms in (self.ms(t),)
            ]
        when = self.ms(float(self.orders.return_t[ref]))
        return [(when, ESHOP, self._stamp(self.refund(ref), when, False))]

    def _stamp(self, msg: dict[str, Any], ms: int, web: bool) -> dict[str, Any]:
        msg["messageId"] = self._web_id(ms) if web else self._uuid()
        msg["timestamp"] = iso(ms)
        return msg

    # -- deliveries and refunds ---------------------------------------------------------
    def delivery(self, r: int) -> list[tuple[float, int, dict[str, Any]]]:
        """Build the messages a campaign tool sends about one delivery."""
        camp = self.world.campaigns[int(self.reach.campaign[r])]
        person = int(self.reach.person[r])
        base = {"campaign_id": camp.campaign_id, "campaign_name": camp.name}
        if camp.channel == "email":
            source, context, steps = self._email_steps(r, camp, person, base)
        elif camp.channel == "sms":
            source, context, steps = self._sms_steps(r, camp, person, base)
        else:
            source, context, steps = self._push_steps(r, camp, base)
        user = self.people.customer_id[person]
        return [
            (
                when,
                source,
                {
                    "type": "track",
                    "userId": user,
                    "event": event,
                    "properties": props,
                    "context": context,
                },
            )
            for when, event, props in steps
            if not math.isnan(when) and when < self.days  # nan: did not happen
        ]

    @staticmethod
    def _link(camp: Campaign) -> str:
        """Return the tracked link a campaign's message points to."""
        source = "newsletter" if camp.channel == "email" else camp.channel
        return (
            f"{SITE}/nouveautes?utm_source={source}"
            f"&utm_medium={camp.channel}&utm_campaign={camp.campaign_id.lower()}"
        )

    def _email_steps(self, r: int, camp: Campaign, person: int, base: dict[str, Any]) -> _Steps:
        """Return the newsletter tool's source, context and (time, event, properties)."""
        reach = self.reach
        opened = float(reach.opened[r])
        email_id = f"em-{self.rnd.getrandbits(64):016x}"
        base = {**base, "email_id": email_id, "email_subject": camp.name}
        steps = [
            (float(reach.t[r]), "Email Delivered", base),
            (opened, "Email Opened", base),
            (float(reach.clicked[r]), "Email Link Clicked", {**base, "link_url": self._link(camp)}),
        ]
        if reach.unsubscribed[r]:
            steps.append((opened + 0.001, "Unsubscribed", {**base, "list_id": "newsletter"}))
        return NEWSLETTER, {"traits": {"email": self.people.email[person]}}, steps

    def _sms_steps(self, r: int, camp: Campaign, person: int, base: dict[str, Any]) -> _Steps:
        """Return the SMS tool's source, context and (time, event, properties)."""
        clicked = {**base, "link_url": self._link(camp)}
        steps = [
            (float(self.reach.t[r]), "SMS Delivered", base),
            (float(self.reach.clicked[r]), "SMS Link Clicked", clicked),
        ]
        return SMS_SOURCE, {"traits": {"phone": self.people.phone[person]}}, steps

    def _push_steps(self, r: int, camp: Campaign, base: dict[str, Any]) -> _Steps:
        """Return the push tool's source, context and (time, event, properties)."""
        name = camp.campaign_id.lower()
        campaign = {"name": name, "medium": "push", "content": camp.name}
        props = {**base, "campaign": campaign}
        steps = [
            (float(self.reach.t[r]), "Push Notification Received", props),
            (float(self.reach.clicked[r]), "Push Notification Tapped", props),
        ]
        return PUSH_SOURCE, {"traits": {}}, steps

    def refund(self, order: int) -> dict[str, Any]:
        """Build the e-shop's `Order Refunded` for a return sent back by post."""
        o = self.orders
        line = int(o.returned_line[order])
        items = [
            item
            for item, li in zip(self._line_items(order), o.lines(order), strict=True)
            if li == line
        ]
        return {
            "type": "track",
            "userId": self.people.customer_id[int(o.person[order])],
            "event": "Order Refunded",
            "properties": {
                "order_id": o.number[order],
                "total": float(o.refund[order]),
                "currency": "EUR",
                "products": items,
            },
            "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
        }


def refunds(chunk: Chunk) -> np.ndarray:
    """Return the orders of the loaded period refunded by post within it."""
    o = chunk.orders
    by_post = (o.returned_line >= 0) & ~o.return_in_store & (o.t >= 0) & (o.return_t < chunk.days)
    return np.flatnonzero(by_post)


def _delivery_counts(world: World, chunk: Chunk) -> int:
    reach = chunk.demand.reach
    assert reach is not None
    days = chunk.days
    sent = reach.t < days
    email = np.array([world.campaigns[c].channel == "email" for c in reach.campaign], dtype=bool)
    opened = email & (reach.opened < days)
    unsub = opened & reach.unsubscribed & (reach.opened + 0.001 < days)
    return int(sent.sum() + opened.sum() + (reach.clicked < days).sum() + unsub.sum())


def count(world: World, chunk: Chunk) -> int:
    """Return how many messages a chunk sends, without building them."""
    return (
        int(chunk.sessions.messages().sum()) + _delivery_counts(world, chunk) + len(refunds(chunk))
    )


def stream(world: World, chunk: Chunk) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (source index, message) for a chunk, in time order."""
    builder = Builder(world, chunk)
    reach = chunk.demand.reach
    assert reach is not None
    rows = np.flatnonzero(reach.t < chunk.days)
    back = refunds(chunk)
    starts = np.concatenate([chunk.sessions.t, reach.t[rows], chunk.orders.return_t[back]])
    kinds = np.concatenate(
        [
            np.zeros(len(chunk.sessions), np.int64),
            np.ones(len(rows), np.int64),
            np.full(len(back), 2),
        ]
    )
    refs = np.concatenate([np.arange(len(chunk.sessions)), rows, back])
    heap: list[tuple[int, int, int, dict[str, Any]]] = []
    seq = 0
    for k in np.argsort(starts, kind="stable"):
        start = builder.ms(float(starts[k]))
        while heap and heap[0][0] <= start:
            _, _, source, msg = heapq.heappop(heap)
            yield source, msg
        for when, source, msg in builder.expand(int(kinds[k]), int(refs[k])):
            heapq.heappush(heap, (when, seq, source, msg))
            seq += 1
    while heap:
        _, _, source, msg = heapq.heappop(heap)
        yield source, msg
