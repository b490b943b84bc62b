"""The processor: reads the durable event log in order and derives everything else.

For each batch of events, in one transaction: resolve identity (identity.graph),
attach the event to its profile with its channel (core.channel_rules), keep the
profile's traits, consents, orders, refunds and survey answers, and move the
checkpoint. A crash loses nothing and repeats nothing: the checkpoint commits with
the rows it covers, so a restart resumes after the last committed batch.

Several processes may run the processor against one PostgreSQL database: the
checkpoint row is locked for the length of a batch, so they take turns and any of
them carries on when another stops. (The event log's writers take turns between id
allocation and commit, so reading by id never skips an event.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Final

import orjson
from sqlalchemy import Connection, TextClause, bindparam, text
from sqlalchemy.exc import OperationalError

from omnicanal.core.channel_rules import configured_rules, derive_channel
from omnicanal.core.settings import IdentitySettings
from omnicanal.identity.graph import Graph, IdentityRules, Name, link_household
from omnicanal.identity.normalise import (
    address_key,
    identifiers_from_message,
    normalise_card,
    normalise_email,
    normalise_name,
    normalise_phone,
    normalise_postcode,
)
from omnicanal.identity.service import GRAPH_GENERATION
from omnicanal.identity.service import members as identity_members
from omnicanal.store.bulk import insert_rows
from omnicanal.store.engine import Database

MAIN = "main"
# An event whose processing fails this many times in a row, alone in its batch, is set
# aside among the rejected events; more than QUARANTINE_LIMIT set aside with no success in
# between means the fault is not in the events, and the processor stops setting aside.
QUARANTINE_AFTER = 3
QUARANTINE_LIMIT = 20
QUARANTINE_CODE = "process.failed"
_ORDER_EVENTS = frozenset({"Order Completed", "Order Placed"})
_REFUND_EVENTS = frozenset({"Order Refunded", "Order Cancelled"})
_FULFILMENTS = {
    "delivery": "delivery",
    "home_delivery": "delivery",
    "shipping": "delivery",
    "click_and_collect": "click_and_collect",
    "click&collect": "click_and_collect",
    "click_collect": "click_and_collect",
    "pickup": "click_and_collect",
    "in_store": "in_store",
    "store": "in_store",
    "ship_from_store": "ship_from_store",
}
_CONSENT_CATEGORIES = {
    "advertising": ("ads_personalisation", "all"),
    "ads": ("ads_personalisation", "all"),
    "targeting": ("ads_personalisation", "all"),
    "marketing": ("ads_personalisation", "all"),
    "analytics": ("analytics", "all"),
    "performance": ("analytics", "all"),
}
_SEARCHABLE = ("email", "phone", "card", "first_name", "last_name", "postcode", "city")


def _insert(table: str, columns: str, suffix: str = "") -> TextClause:
    """An INSERT of named parameters, one per column of a space-separated list."""
    names = columns.split()
    values = ", ".join(f":{name}" for name in names)
    return text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values}){suffix}")


_ORDER_INSERT = _insert(
    "orders",
    "source_id order_key profile_id event_id placed_ms channel store fulfilment status "
    "currency total_cents total_eur_cents discount_eur_cents shipping_eur_cents "
    "tax_eur_cents refunded_eur_cents coupon campaign updated_ms",
    " ON CONFLICT (source_id, order_key) DO NOTHING RETURNING id",
)
_LINE_INSERT = _insert(
    "order_line",
    "order_id sku product_id name category brand quantity unit_price_eur_cents returned_quantity",
)
_LINE_COLUMNS = (
    *("sku", "product_id", "name", "category", "brand"),
    *("quantity", "unit_price_eur_cents"),
)
# PostgreSQL: the order and its lines in one statement, one round trip instead of two.
_ORDER_WITH_LINES = text(
    f"WITH placed AS ({_ORDER_INSERT.text}), lines AS ("
    f"INSERT INTO order_line (order_id, {', '.join(_LINE_COLUMNS)}, returned_quantity) "
    f"SELECT placed.id, {', '.join(f'x.{c}' for c in _LINE_COLUMNS)}, 0 FROM placed, unnest("
    "CAST(:line_sku AS text[]), CAST(:line_product_id AS text[]), CAST(:line_name AS text[]), "
    "CAST(:line_category AS text[]), CAST(:line_brand AS text[]), "
    "CAST(:line_quantity AS integer[]), CAST(:line_unit_price_eur_cents AS bigint[])) "
    f"WITH ORDINALITY AS x({', '.join(_LINE_COLUMNS)}, n) ORDER BY x.n) "
    "SELECT id FROM placed"
)
_REFUND_INSERT = _insert(
    "order_refund",
    "order_id profile_id event_id order_key refunded_ms channel amount_eur_cents lines",
    " ON CONFLICT (event_id) DO NOTHING RETURNING id",
)
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
_MEMO_SIZE = 200_000
SQLITE_TURN_SECONDS = 0.02


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


class _Memo:
    """A bounded memo of what a message's raw values derive to (cleared when full)."""

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        found = self.data.get(key, _MISSING)
        if found is _MISSING:
            if len(self.data) >= _MEMO_SIZE:
                self.data.clear()
            found = self.data[key] = compute()
        return found


_MISSING = object()


def _raw(value: Any) -> Any:
    """A hashable stand-in for a raw JSON value (containers serialised)."""
    if isinstance(value, dict | list):
        return orjson.dumps(value)
    return value


def _identifier_key(msg: dict[str, Any]) -> tuple[Any, ...]:
    """Everything identifiers_from_message reads, as a hashable key."""
    context = msg.get("context")
    context = context if isinstance(context, dict) else {}
    return (
        msg.get("type"),
        _raw(msg.get("userId")),
        _raw(msg.get("anonymousId")),
        _raw(msg.get("previousId")),
        _raw(msg.get("traits")) if msg.get("type") == "identify" else None,
        _raw(context.get("traits")),
        _raw(context.get("externalIds")),
    )


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
        _raw(context.get("channel")),
        _raw(context.get("campaign")),
        _raw(page.get("url")),
        _raw(page.get("referrer")),
        _raw(page.get("search")),
        _raw(properties.get("url")),
        _raw(properties.get("referrer")),
        _raw(properties.get("search")),
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _cents(value: Any) -> int | None:
    """Return a money amount in integer cents, or None when it is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value).replace(",", ".").replace(" ", ""))
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    return int((amount * 100).to_integral_value())


def _quantity(value: Any) -> int:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else 1
    except (TypeError, ValueError):
        return 1


def _traits(msg: dict[str, Any]) -> dict[str, Any]:
    """The user traits of a message: `context.traits` (RudderStack puts identify traits
    there), overridden on identify calls by `traits`."""
    context = msg.get("context")
    found = context.get("traits") if isinstance(context, dict) else None
    traits = dict(found) if isinstance(found, dict) else {}
    own = msg.get("traits")
    if msg.get("type") == "identify" and isinstance(own, dict):
        traits.update(own)
    return traits


#: Where a trait value came from: an identify call (a sign-in, a sign-up, a CRM record: the
#: person's details as they or the brand hold them) or the `context.traits` of another
#: event (a till receipt, a sign-up sheet, a call: details as someone typed them in passing).
IDENTIFY: Final = "identify"
EVENT: Final = "event"
_RANK = {IDENTIFY: 1, EVENT: 0}


def _outranks(new: dict[str, Any], known: dict[str, Any]) -> bool:
    """True when a trait value replaces the one known: an identify call's value wins over
    one typed at a till or on a form, and among equals the later one wins. Values stored
    before the origin was kept count as an identify call's."""
    new_rank, known_rank = _RANK[new.get("from", IDENTIFY)], _RANK[known.get("from", IDENTIFY)]
    if new_rank != known_rank:
        return new_rank > known_rank
    return bool(known.get("at", 0) <= new["at"])


def _first(traits: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = traits.get(name)
        if value not in (None, ""):
            return value
    return None


def _identity(msg: dict[str, Any]) -> tuple[list[tuple[str, str]], Name]:
    """The message's identifiers (see `identifiers_from_message`) and the name it gives."""
    traits = _traits(msg)
    name = (
        normalise_name(_first(traits, "firstName", "first_name", "firstname")),
        normalise_name(_first(traits, "lastName", "last_name", "lastname")),
    )
    return identifiers_from_message(msg), name


def searchable(traits: dict[str, Any]) -> dict[str, str | None]:
    """The profile's searchable columns from one message's traits (None: not given)."""
    address = traits.get("address") if isinstance(traits.get("address"), dict) else {}
    assert isinstance(address, dict)
    city = _first(address, "city") or _first(traits, "city")
    return {
        "email": normalise_email(_first(traits, "email")),
        "phone": normalise_phone(_first(traits, "phone", "mobile", "phoneNumber")),
        "card": normalise_card(
            _first(traits, "card", "loyaltyCard", "loyalty_card", "cardNumber", "card_number")
        ),
        "first_name": normalise_name(_first(traits, "firstName", "first_name", "firstname")),
        "last_name": normalise_name(_first(traits, "lastName", "last_name", "lastname")),
        "postcode": normalise_postcode(
            _first(address, "postalCode", "postal_code", "postcode")
            or _first(traits, "postalCode", "postal_code", "postcode")
        ),
        "city": normalise_name(city),
    }


@dataclass(slots=True)
class _Touch:
    first: int
    last: int
    count: int = 0
    traits: dict[str, dict[str, Any]] = field(default_factory=dict)
    address: str | None = None


@dataclass(slots=True)
class BatchResult:
    """What one batch did."""

    events: int
    last_event_id: int
    profiles_created: int
    lag_ms: list[int]


class Processor:
    """Reads the log batch by batch; `run` loops until stopped."""

    def __init__(
        self,
        database: Database,
        *,
        identity: IdentitySettings | None = None,
        batch_size: int = 2_000,
        name: str = MAIN,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.database = database
        self.batch_size = batch_size
        self.name = name
        self.graph = Graph(IdentityRules.from_settings(identity or IdentitySettings()))
        self.on_batch = on_batch
        self._memo: tuple[int, int] | None = None
        self._channels: dict[int, str] = {}
        self.identifiers = _Memo()
        self.households: set[tuple[str, int]] = set()  # (address, profile) already linked
        self.channels = _Memo()
        self.rules_configured = bool(configured_rules())
        self._postgres = database.dialect == "postgresql"
        self._careful = 0  # events left to take one at a time after a failed batch
        self._failures = 0  # consecutive failures of the event taken alone
        self._set_aside = 0  # events set aside since the last success
        self.quarantined = 0

    def forget(self) -> None:
        """Drop every cache that mirrors the store (after a failed batch)."""
        self.graph.invalidate()
        self.households.clear()
        self._memo = None

    # -- loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, idle_seconds: float = 0.2) -> None:
        """Process until `stop` is set, sleeping briefly whenever the log is drained."""
        while not stop.is_set():
            try:
                done = self.step()
            except Exception:  # the next round retries; the checkpoint did not move
                stop.wait(1.0)
                continue
            if done.events == 0:
                stop.wait(idle_seconds)
            elif not self._postgres:
                # SQLite has one write lock and its waiters poll for it: a pause between
                # batches lets collection's writer in while a backlog is worked off.
                stop.wait(SQLITE_TURN_SECONDS)

    def drain(self) -> int:
        """Process everything in the log now; return the number of events processed.

        An event that cannot be processed is retried, then set aside (see `step`); a
        database that stays unavailable, or a fault that fails every event, raises.
        """
        total = 0
        while True:
            try:
                done = self.step()
            except OperationalError:
                raise
            except Exception:
                if self._careful == 0:  # step() gave up setting events aside
                    raise
                continue
            if not done.events:
                return total
            total += done.events

    def step(self) -> BatchResult:
        """Process the next batch; find and set aside an event that keeps failing.

        When a batch fails, the processor rolls it back and takes the same events one at
        a time. An event that fails QUARANTINE_AFTER times in a row on its own (not a
        database outage: those are only retried) is recorded among the rejected events
        with the error, and the checkpoint moves past it, so one malformed or unforeseen
        event cannot stop every profile from updating. It stays in the event log.
        """
        single = self._careful > 0
        try:
            result = self.process_batch(limit=1 if single else None)
        except OperationalError:
            self.forget()
            raise
        except Exception as exc:
            self.forget()
            if not single:
                self._careful, self._failures = self.batch_size, 0
                raise
            self._failures += 1
            if self._failures < QUARANTINE_AFTER:
                raise
            if self._set_aside >= QUARANTINE_LIMIT:
                self._careful = 0  # the fault is general: stop here, keep retrying
                raise
            result = self._quarantine(exc)
            self._failures = 0
            self._set_aside += 1
            self._careful -= 1
            return result
        if result.events:
            self._failures = 0
            self._set_aside = 0
            if single:
                self._careful -= 1
        else:
            self._careful = 0
        return result

    def _quarantine(self, exc: Exception) -> BatchResult:
        """Record the next event as rejected by processing and move the checkpoint past it."""
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        with self.database.engine.connect() as conn, conn.begin():
            checkpoint, generation = self._checkpoint(conn)
            row = conn.execute(
                text(
                    "SELECT id, source_id, received_ms, payload FROM collect_event "
                    "WHERE id > :after ORDER BY id LIMIT 1"
                ),
                {"after": checkpoint},
            ).first()
            if row is None:
                return BatchResult(0, checkpoint, 0, [])
            errors = [{"field": "(event)", "reason": reason, "event_id": int(row.id)}]
            conn.execute(
                text(
                    "INSERT INTO collect_rejected_event (source_id, received_at, endpoint, "
                    "batch_index, status, code, errors, payload, payload_truncated) VALUES "
                    "(:source, :received, 'process', NULL, 422, :code, :errors, :payload, :cut)"
                ),
                {
                    "source": row.source_id,
                    "received": datetime.fromtimestamp(row.received_ms / 1000, UTC),
                    "code": QUARANTINE_CODE,
                    "errors": orjson.dumps(errors).decode(),
                    "payload": row.payload,
                    "cut": False,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO collect_counter (source_id, name, count) "
                    "VALUES (:source, 'rejected', 1) ON CONFLICT (source_id, name) "
                    "DO UPDATE SET count = collect_counter.count + 1"
                ),
                {"source": row.source_id},
            )
            conn.execute(
                text(
                    "UPDATE processor_checkpoint SET last_event_id = :last, updated_ms = :now "
                    "WHERE name = :name"
                ),
                {"last": int(row.id), "now": _now_ms(), "name": self.name},
            )
        self.quarantined += 1
        self._memo = (int(row.id), generation)
        return BatchResult(1, int(row.id), 0, [])

    # -- one batch -------------------------------------------------------------------

    def process_batch(self, *, limit: int | None = None) -> BatchResult:
        """Process the next events of the log (at most `limit`) in one transaction."""
        with self.database.engine.connect() as conn, conn.begin():
            checkpoint, generation = self._checkpoint(conn)
            if self._memo != (checkpoint, generation):
                self.graph.invalidate()
            rows = conn.execute(
                text(
                    "SELECT id, source_id, timestamp_ms, received_ms, type, event, payload "
                    "FROM collect_event WHERE id > :after ORDER BY id LIMIT :n"
                ),
                {"after": checkpoint, "n": limit or self.batch_size},
            ).all()
            if not rows:
                self._memo = (checkpoint, generation)
                return BatchResult(0, checkpoint, 0, [])
            try:
                result = _Batch(self, conn, list(rows)).run()
            except BaseException:  # rolled back: what the caches learnt is not in the store
                self.forget()
                raise
            conn.execute(
                text(
                    "UPDATE processor_checkpoint SET last_event_id = :last, updated_ms = :now "
                    "WHERE name = :name"
                ),
                {"last": result.last_event_id, "now": _now_ms(), "name": self.name},
            )
        self._memo = (result.last_event_id, generation)
        if self.on_batch is not None:
            self.on_batch(result)
        return result

    def _checkpoint(self, conn: Connection) -> tuple[int, int]:
        lock = " FOR UPDATE" if self._postgres else ""
        for name in (self.name, GRAPH_GENERATION):
            conn.execute(
                text(
                    "INSERT INTO processor_checkpoint (name, last_event_id, updated_ms) "
                    "VALUES (:name, 0, :now) ON CONFLICT (name) DO NOTHING"
                ),
                {"name": name, "now": _now_ms()},
            )
        found: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT name, last_event_id FROM processor_checkpoint "
                    f"WHERE name IN (:a, :b) ORDER BY name{lock}"
                ),
                {"a": self.name, "b": GRAPH_GENERATION},
            ).all()
        )
        return int(found[self.name]), int(found[GRAPH_GENERATION])

    def source_channel(self, conn: Connection, source_id: int) -> str:
        """Return a source's channel (cached; sources never change channel)."""
        channel = self._channels.get(source_id)
        if channel is None:
            for sid, value in conn.execute(text("SELECT id, channel FROM collect_source")):
                self._channels[int(sid)] = str(value)
            channel = self._channels.get(source_id, "server")
        return channel


class _Batch:
    """The work of one batch: resolve, derive, write."""

    def __init__(self, processor: Processor, conn: Connection, rows: list[Any]) -> None:
        self.p = processor
        self.conn = conn
        self.rows = rows
        self.now_ms = _now_ms()
        self.touched: dict[int, _Touch] = {}
        self.events: list[tuple[Any, ...]] = []  # in the order of _EVENT_COLUMNS
        self.consents: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []

    def run(self) -> BatchResult:
        graph = self.p.graph
        graph.begin(self.conn, self.now_ms)
        parsed: list[tuple[Any, dict[str, Any], list[tuple[str, str]], Name]] = []
        memo = self.p.identifiers
        for row in self.rows:
            msg = orjson.loads(row.payload)
            keys, name = memo.get(_identifier_key(msg), partial(_identity, msg))
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
        self._write()
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
        traits = _traits(msg)
        if traits:
            self._traits(touch, traits, row)
        properties = msg.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        order_id: int | None = None
        revenue: int | None = None
        name = row.event
        if row.type == "track" and name in _ORDER_EVENTS:
            order_id, revenue = self._order(row, properties, pid, info.channel, info.campaign)
        elif row.type == "track" and name in _REFUND_EVENTS:
            self._refund(row, properties, pid, info.channel)
        elif row.type == "track" and name == "Survey Answered":
            self._survey(row, properties, pid, info.channel)
        if (
            row.type == "track"
            and name not in _ORDER_EVENTS  # a pick-up joins in _order
            and not info.online
            and properties.get("order_ref")
        ):
            # A call about an order, a return at the till of an e-shop order: whoever
            # quotes the order's reference offline is its customer (or acts for them).
            self._join_order_reference(row, properties["order_ref"], pid)
        self._consent(row, msg, pid)
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
            if known is None or _outranks(entry, known):
                touch.traits[name] = entry
        address = traits.get("address")
        if isinstance(address, dict):
            touch.address = address_key(
                address.get("street"), address.get("postalCode"), address.get("city")
            )

    def _order(
        self, row: Any, props: dict[str, Any], pid: int, channel: str, campaign: str | None
    ) -> tuple[int | None, int | None]:
        key = props.get("order_id") or props.get("orderId") or props.get("checkout_id")
        key = str(key)[:255] if key not in (None, "") else f"event:{row.id}"
        products = props.get("products")
        lines = [p for p in products if isinstance(p, dict)] if isinstance(products, list) else []
        line_sum = sum((_cents(p.get("price")) or 0) * _quantity(p.get("quantity")) for p in lines)
        total = _cents(props.get("total"))
        if total is None:
            total = _cents(props.get("revenue"))
        if total is None:
            total = line_sum
        currency = str(props.get("currency") or "EUR").upper()[:3]
        store = props.get("store")
        store_channel = channel if channel.startswith("store:") else None
        fulfilment = _FULFILMENTS.get(
            str(props.get("fulfilment") or props.get("fulfillment") or "").lower().strip(),
            "in_store" if store_channel else "delivery",
        )
        store_name = (
            str(store)[:80]
            if store
            else (store_channel.split(":", 1)[1] if store_channel else None)
        )
        if store_channel and store_name and not key.startswith(f"{store_name}:"):
            # Till receipt numbers restart in every store: the store is part of the key.
            key = f"{store_name}:{key}"[:255]
        reference = props.get("order_ref")
        if fulfilment == "click_and_collect" and reference and store_channel:
            # A click & collect pick-up at the till: the e-shop order was the sale.
            # Whoever collects the order with its reference is its customer (or collects
            # for them): the receipt joins the person, under the guard rails.
            picked = self._join_order_reference(row, reference, pid)
            if picked is not None:
                self.conn.execute(
                    text(
                        "UPDATE orders SET fulfilment = 'click_and_collect', store = :store, "
                        "updated_ms = :now WHERE id = :id"
                    ),
                    {"store": store_name, "id": picked[0], "now": self.now_ms},
                )
                return int(picked[0]), None
        rate = 1 if currency == "EUR" else None
        total_eur = total if rate else 0
        values = {
            "source_id": row.source_id,
            "order_key": key,
            "profile_id": pid,
            "event_id": row.id,
            "placed_ms": row.timestamp_ms,
            "channel": channel,
            "store": store_name,
            "fulfilment": fulfilment,
            "status": "completed",
            "currency": currency,
            "total_cents": total,
            "total_eur_cents": total_eur,
            "discount_eur_cents": _cents(props.get("discount")) or 0,
            "shipping_eur_cents": _cents(props.get("shipping")) or 0,
            "tax_eur_cents": _cents(props.get("tax")) or 0,
            "refunded_eur_cents": 0,
            "coupon": str(props["coupon"])[:120] if props.get("coupon") else None,
            "campaign": campaign[:255] if campaign else None,
            "updated_ms": self.now_ms,
        }
        rows = [
            {
                "sku": _text(p.get("sku")),
                "product_id": _text(p.get("product_id") or p.get("productId")),
                "name": _text(p.get("name")),
                "category": _text(p.get("category")),
                "brand": _text(p.get("brand")),
                "quantity": _quantity(p.get("quantity")),
                "unit_price_eur_cents": (_cents(p.get("price")) or 0) if rate else 0,
            }
            for p in lines
        ]
        if rows and self.conn.dialect.name == "postgresql":
            columns = {f"line_{c}": [r[c] for r in rows] for c in _LINE_COLUMNS}
            inserted = self.conn.execute(_ORDER_WITH_LINES, {**values, **columns}).first()
            # None: the same order sent again under another messageId
            return (None, None) if inserted is None else (int(inserted[0]), total_eur)
        inserted = self.conn.execute(_ORDER_INSERT, values).first()
        if inserted is None:  # the same order sent again under another messageId
            return None, None
        order_id = int(inserted[0])
        if rows:
            self.conn.execute(
                _LINE_INSERT,
                [{**r, "order_id": order_id, "returned_quantity": 0} for r in rows],
            )
        return order_id, total_eur

    def _join_order_reference(self, row: Any, reference: Any, pid: int) -> Any:
        """Join the person to the customer of the order `reference` names; return the order.

        The order is looked up by its key as the e-shop sent it; the merge goes through the
        identity graph's guard rails and records the reference as its evidence.
        """
        order = self.conn.execute(
            text("SELECT id, profile_id FROM orders WHERE order_key = :k ORDER BY id LIMIT 1"),
            {"k": str(reference)},
        ).first()
        if order is not None:
            self.p.graph.merge_profiles(
                pid,
                int(order.profile_id),
                "order_reference",
                {"kind": "order_ref", "value": str(reference)[:255], "event_id": row.id},
            )
        return order

    def _refund(self, row: Any, props: dict[str, Any], pid: int, channel: str) -> None:
        key = props.get("order_id") or props.get("orderId")
        products = [p for p in (props.get("products") or []) if isinstance(p, dict)]
        returned = [
            {"sku": _text(p.get("sku")), "quantity": abs(_quantity(p.get("quantity")))}
            for p in products
        ]
        amount = _cents(props.get("total"))
        if amount is None:
            amount = _cents(props.get("revenue"))
        order = None
        if key not in (None, ""):
            store = channel.split(":", 1)[1] if channel.startswith("store:") else None
            order = self.conn.execute(
                text(
                    "SELECT id, total_eur_cents FROM orders WHERE order_key IN (:k, :in_store) "
                    "ORDER BY id LIMIT 1"
                ),
                {"k": str(key), "in_store": f"{store}:{key}" if store else str(key)},
            ).first()
        if order is None and returned:
            order = self._order_holding(
                pid, [str(r["sku"]) for r in returned if r["sku"]], row.timestamp_ms
            )
        if amount is None:
            amount = sum(
                (_cents(p.get("price")) or 0) * abs(_quantity(p.get("quantity"))) for p in products
            )
            if not products and order is not None:
                amount = int(order[1])  # a refund of the whole order
        amount = abs(amount)
        inserted = self.conn.execute(
            _REFUND_INSERT,
            {
                "order_id": order[0] if order is not None else None,
                "profile_id": pid,
                "event_id": row.id,
                "order_key": str(key)[:255] if key not in (None, "") else None,
                "refunded_ms": row.timestamp_ms,
                "channel": channel,
                "amount_eur_cents": amount,
                "lines": orjson.dumps(returned).decode(),
            },
        ).first()
        if inserted is None or order is None:
            return
        self.conn.execute(
            text(
                "UPDATE orders SET refunded_eur_cents = refunded_eur_cents + :amount, status = "
                "CASE WHEN refunded_eur_cents + :amount >= total_eur_cents THEN 'refunded' "
                "ELSE 'partially_refunded' END, updated_ms = :now WHERE id = :id"
            ),
            {"amount": amount, "id": order[0], "now": self.now_ms},
        )
        for line in returned:
            if line["sku"]:
                self.conn.execute(
                    text(
                        "UPDATE order_line SET returned_quantity = CASE WHEN "
                        "returned_quantity + :q > quantity THEN quantity "
                        "ELSE returned_quantity + :q END "
                        "WHERE order_id = :o AND sku = :sku"
                    ),
                    {"q": line["quantity"], "o": order[0], "sku": line["sku"]},
                )

    def _order_holding(self, pid: int, skus: list[str], before_ms: int) -> Any:
        """The person's latest order, placed before the return, holding a returned product."""
        if not skus:
            return None
        cluster = set(identity_members(self.conn, self.p.graph.root(pid))) | {pid}
        return self.conn.execute(
            text(
                "SELECT o.id, o.total_eur_cents FROM orders o "
                "JOIN order_line l ON l.order_id = o.id "
                "WHERE o.profile_id IN :ids AND l.sku IN :skus AND o.placed_ms <= :before "
                "ORDER BY o.placed_ms DESC LIMIT 1"
            ).bindparams(bindparam("ids", expanding=True), bindparam("skus", expanding=True)),
            {"ids": sorted(cluster), "skus": skus, "before": before_ms},
        ).first()

    def _survey(self, row: Any, props: dict[str, Any], pid: int, channel: str) -> None:
        kind = str(props.get("kind") or props.get("survey_type") or "").lower()
        score = props.get("score")
        if (
            kind not in {"nps", "csat"}
            or isinstance(score, bool)
            or not isinstance(score, int | float)
        ):
            return
        low, high = (0, 10) if kind == "nps" else (1, 5)
        if not low <= score <= high:
            return
        where = props.get("channel")
        self.feedback.append(
            {
                "event_id": row.id,
                "profile_id": pid,
                "kind": kind,
                "score": int(score),
                "channel": str(where)[:80] if where else channel,
                "answered_ms": row.timestamp_ms,
                "comment": _text(props.get("comment"), 2000),
            }
        )

    def _consent(self, row: Any, msg: dict[str, Any], pid: int) -> None:
        context = msg.get("context") if isinstance(msg.get("context"), dict) else {}
        assert isinstance(context, dict)
        consent = context.get("consent")
        statements: list[tuple[str, str, bool]] = []
        wording = None
        if isinstance(consent, dict):
            wording = _text(consent.get("wording") or consent.get("version"), 64)
            purposes = consent.get("purposes")
            if isinstance(purposes, dict):
                for purpose, value in purposes.items():
                    if isinstance(value, bool):
                        statements.append((str(purpose)[:32], "all", value))
                    elif isinstance(value, dict):
                        statements.extend(
                            (str(purpose)[:32], str(ch)[:32], v)
                            for ch, v in value.items()
                            if isinstance(v, bool)
                        )
            categories = consent.get("categoryPreferences")
            if isinstance(categories, dict):
                for category, value in categories.items():
                    mapped = _CONSENT_CATEGORIES.get(str(category).lower())
                    if mapped and isinstance(value, bool):
                        statements.append((mapped[0], mapped[1], value))
        if row.type == "track" and row.event == "Unsubscribed":
            props = msg.get("properties") if isinstance(msg.get("properties"), dict) else {}
            assert isinstance(props, dict)
            statements.append(("marketing", str(props.get("channel") or "email")[:32], False))
        for purpose, channel, granted in statements:
            self.consents.append(
                {
                    "profile_id": pid,
                    "purpose": purpose,
                    "channel": channel,
                    "granted": granted,
                    "source_id": row.source_id,
                    "event_id": row.id,
                    "recorded_ms": row.timestamp_ms,
                    "wording_version": wording,
                    "proof": orjson.dumps(
                        {"messageId": msg.get("messageId"), "consent": consent}
                    ).decode(),
                }
            )

    # -- writing ---------------------------------------------------------------------

    def _write(self) -> None:
        conn = self.conn
        insert_rows(conn, "profile_event", _EVENT_COLUMNS, self.events)
        self._write_profiles()
        if self.feedback:
            conn.execute(
                _insert(
                    "feedback",
                    "event_id profile_id kind score channel answered_ms comment",
                ),
                self.feedback,
            )
        self._write_consents()

    def _write_profiles(self) -> None:
        conn = self.conn
        ids = sorted(self.touched)
        current: dict[int, Any] = {}
        query = text(
            "SELECT id, first_seen_ms, last_seen_ms, event_count, traits FROM profile "
            "WHERE id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        for start in range(0, len(ids), 500):
            for r in conn.execute(query, {"ids": ids[start : start + 500]}):
                current[int(r.id)] = r
        updates = []
        for pid in ids:
            touch = self.touched[pid]
            row = current[pid]
            update: dict[str, Any] = {
                "id": pid,
                "first": min(int(row.first_seen_ms), touch.first),
                "last": max(int(row.last_seen_ms), touch.last),
                "count": int(row.event_count) + touch.count,
                "now": self.now_ms,
            }
            traits = orjson.loads(row.traits) if touch.traits else None
            if traits is not None:
                for name, value in touch.traits.items():
                    known = traits.get(name)
                    if known is None or _outranks(value, known):
                        traits[name] = value
                flat = {name: entry["value"] for name, entry in traits.items()}
                update.update(searchable(flat))
                update["traits"] = orjson.dumps(traits).decode()
            updates.append(update)
            if touch.address and (touch.address, pid) not in self.p.households:
                if len(self.p.households) > _MEMO_SIZE:
                    self.p.households.clear()
                self.p.households.add((touch.address, pid))
                link_household(
                    conn,
                    f"address:{touch.address}",
                    self.p.graph.root(pid),
                    orjson.dumps({"kind": "address", "value": touch.address}).decode(),
                    self.now_ms,
                    limit=self.p.graph.rules.household_limit,
                )
        plain = [u for u in updates if "traits" not in u]
        full = [u for u in updates if "traits" in u]
        if plain:
            conn.execute(
                text(
                    "UPDATE profile SET first_seen_ms = :first, last_seen_ms = :last, "
                    "event_count = :count, updated_ms = :now WHERE id = :id"
                ),
                plain,
            )
        if full:
            columns = ", ".join(f"{c} = :{c}" for c in _SEARCHABLE)
            conn.execute(
                text(
                    "UPDATE profile SET first_seen_ms = :first, last_seen_ms = :last, "
                    f"event_count = :count, updated_ms = :now, traits = :traits, {columns} "
                    "WHERE id = :id"
                ),
                full,
            )

    def _write_consents(self) -> None:
        """Keep a consent statement only when it changes what the person last said."""
        if not self.consents:
            return
        conn = self.conn
        pids = sorted({c["profile_id"] for c in self.consents})
        latest: dict[tuple[int, str, str], tuple[int, bool]] = {}
        query = text(
            "SELECT profile_id, purpose, channel, granted, recorded_ms FROM consent "
            "WHERE profile_id IN :ids ORDER BY recorded_ms, id"
        ).bindparams(bindparam("ids", expanding=True))
        for start in range(0, len(pids), 500):
            for r in conn.execute(query, {"ids": pids[start : start + 500]}):
                latest[(int(r.profile_id), r.purpose, r.channel)] = (
                    int(r.recorded_ms),
                    bool(r.granted),
                )
        kept = []
        for statement in sorted(self.consents, key=lambda c: (c["recorded_ms"], c["event_id"])):
            key = (statement["profile_id"], statement["purpose"], statement["channel"])
            known = latest.get(key)
            if known is not None and known[1] == statement["granted"]:
                continue
            latest[key] = (statement["recorded_ms"], statement["granted"])
            kept.append(statement)
        if kept:
            conn.execute(
                _insert(
                    "consent",
                    "profile_id purpose channel granted "
                    "source_id event_id recorded_ms wording_version proof",
                ),
                kept,
            )


def _text(value: Any, limit: int = 255) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)[:limit] or None
