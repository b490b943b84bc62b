"""Reading one event of the log: what a batch needs from its message, but its person.

The raw message is decoded once and reduced to an `Event`: its identifiers and name, its
channel, its traits, and only the parts of its properties and context that deriving
reads. The reduction does not depend on the store's state (only on the event, its
source's channel and the channel rules), so it can be done ahead, in another process
(`ahead`), and give the same result as in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import orjson

from omnicanal.core.channel_rules import ChannelInfo, Rule, derive_channel
from omnicanal.identity.graph import Name
from omnicanal.profiles.processing.common import Memo, raw_id
from omnicanal.profiles.processing.traits import identifier_key, message_identity, message_traits

ORDER_EVENTS = frozenset({"Order Completed", "Order Placed"})
REFUND_EVENTS = frozenset({"Order Refunded", "Order Cancelled"})
# Track events whose whole properties deriving reads; of the others, only where they
# took place (`store`, `location`) and the order they quote (`order_ref`).
_WHOLE_PROPERTIES = ORDER_EVENTS | REFUND_EVENTS | {"Survey Answered", "Unsubscribed"}
_PLACE = ("store", "location")
_NOTHING: dict[str, Any] = {}


class Event(NamedTuple):
    """One event of the log, read: its row's columns and what its message says."""

    id: int
    source_id: int
    timestamp_ms: int
    received_ms: int
    type: str
    event: str | None
    keys: list[tuple[str, str]]
    name: Name
    info: ChannelInfo
    traits: dict[str, Any]
    properties: dict[str, Any]
    consent: Any  # `context.consent` as sent, None without one
    message_id: Any  # kept only as a consent statement's proof


def channel_key(source_channel: str, msg: dict[str, Any]) -> tuple[Any, ...]:
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


class Parser:
    """Reads raw events into `Event`s, remembering what repeats (people, channels)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self.identifiers = Memo()
        self.channels = Memo()
        self.sources: dict[int, str] = {}  # each source's channel, filled by the reader

    def parse(self, row: Any, source_channel: str) -> Event:
        """Read one row of `collect_event` (id, source_id, timestamp_ms, received_ms,
        type, event, payload) sent by a source of `source_channel`."""
        msg = orjson.loads(row[6])
        if not isinstance(msg, dict):  # collection stores objects only: the row is damaged
            raise TypeError(f"event {row[0]}: the payload is not a JSON object")
        keys, name = self.identifiers.get(identifier_key(msg), partial(message_identity, msg))
        if self.rules:
            info = derive_channel(source_channel, msg, self.rules)
        else:
            info = self.channels.get(
                channel_key(source_channel, msg), partial(derive_channel, source_channel, msg, ())
            )
        kind, name_of_event = row[4], row[5]
        properties = msg.get("properties")
        if not isinstance(properties, dict) or not properties:
            properties = _NOTHING
        elif not (kind == "track" and name_of_event in _WHOLE_PROPERTIES):
            kept = {k: properties[k] for k in (*_PLACE, "order_ref") if k in properties}
            properties = kept or _NOTHING
        context = msg.get("context")
        consent = context.get("consent") if isinstance(context, dict) else None
        speaks = consent is not None or (kind == "track" and name_of_event == "Unsubscribed")
        return Event(
            int(row[0]),
            int(row[1]),
            int(row[2]),
            int(row[3]),
            kind,
            name_of_event,
            keys,
            name,
            info,
            message_traits(msg) or _NOTHING,
            properties,
            consent,
            msg.get("messageId") if speaks else None,
        )
