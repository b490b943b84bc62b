"""Orders, their lines and refunds; click & collect and order references joining people."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import text

from omnicanal.identity.service import members as identity_members
from omnicanal.profiles.processing.common import (
    insert_statement,
    listing,
    select_in,
    text_value,
    to_cents,
    to_quantity,
)
from omnicanal.store.bulk import insert_rows

if TYPE_CHECKING:
    from omnicanal.profiles.processing.batch import Batch

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


_ORDER_COLUMNS = (
    *("source_id", "order_key", "profile_id", "event_id", "placed_ms", "channel", "store"),
    *("fulfilment", "status", "currency", "total_cents", "total_eur_cents"),
    *("discount_eur_cents", "shipping_eur_cents", "tax_eur_cents", "refunded_eur_cents"),
    *("coupon", "campaign", "updated_ms"),
)
_LINE_COLUMNS = (
    *("sku", "product_id", "name", "category", "brand"),
    *("quantity", "unit_price_eur_cents"),
)
# Orders placed in a batch are written together, this many to a statement (19
# parameters each: within SQLite's 32,766 and PostgreSQL's 65,535).
_ORDERS_PER_STATEMENT = 500
# Where the processed event of an order keeps the order's id and its revenue
# (write._EVENT_COLUMNS).
_EVENT_ORDER_ID, _EVENT_REVENUE = 10, 11
_REFUND_INSERT = insert_statement(
    "order_refund",
    "order_id profile_id event_id order_key refunded_ms channel amount_eur_cents lines",
    " ON CONFLICT (event_id) DO NOTHING",
)


def record_order(
    batch: Batch, row: Any, props: dict[str, Any], pid: int, channel: str, campaign: str | None
) -> tuple[int | None, int | None]:
    """Record an order and its lines; return the order's id and its revenue in cents."""
    key = props.get("order_id") or props.get("orderId") or props.get("checkout_id")
    key = str(key)[:255] if key not in (None, "") else f"event:{row.id}"
    products = props.get("products")
    lines = [p for p in products if isinstance(p, dict)] if isinstance(products, list) else []
    currency = str(props.get("currency") or "EUR").upper()[:3]
    store_name, fulfilment, key = _where(props, channel, key)
    reference = props.get("order_ref")
    if fulfilment == "click_and_collect" and reference and channel.startswith("store:"):
        picked = _picked_up(batch, row, reference, pid, store_name)
        if picked is not None:
            return picked, None
    total = _total(props, lines)
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
        "discount_eur_cents": to_cents(props.get("discount")) or 0,
        "shipping_eur_cents": to_cents(props.get("shipping")) or 0,
        "tax_eur_cents": to_cents(props.get("tax")) or 0,
        "refunded_eur_cents": 0,
        "coupon": str(props["coupon"])[:120] if props.get("coupon") else None,
        "campaign": campaign[:255] if campaign else None,
        "updated_ms": batch.now_ms,
    }
    if not batch.orders.add(values, _line_rows(lines, priced=rate is not None), len(batch.events)):
        return None, None  # the same order twice in one batch
    return None, total_eur  # its id is set when the batch's orders are written


def _total(props: dict[str, Any], lines: list[dict[str, Any]]) -> int:
    """The order's total in cents: `total`, else `revenue`, else the sum of its lines."""
    total = to_cents(props.get("total"))
    if total is None:
        total = to_cents(props.get("revenue"))
    if total is None:
        total = sum((to_cents(p.get("price")) or 0) * to_quantity(p.get("quantity")) for p in lines)
    return total


def _where(props: dict[str, Any], channel: str, key: str) -> tuple[str | None, str, str]:
    """Return the order's store, its fulfilment, and its key (a till's key names its store)."""
    store = props.get("store")
    store_channel = channel if channel.startswith("store:") else None
    fulfilment = _FULFILMENTS.get(
        str(props.get("fulfilment") or props.get("fulfillment") or "").lower().strip(),
        "in_store" if store_channel else "delivery",
    )
    store_name = (
        str(store)[:80] if store else (store_channel.split(":", 1)[1] if store_channel else None)
    )
    if store_channel and store_name and not key.startswith(f"{store_name}:"):
        # Till receipt numbers restart in every store: the store is part of the key.
        key = f"{store_name}:{key}"[:255]
    return store_name, fulfilment, key


def _picked_up(
    batch: Batch, row: Any, reference: Any, pid: int, store_name: str | None
) -> int | None:
    """A click & collect pick-up at the till: mark the e-shop order, which was the sale.

    Whoever collects the order with its reference is its customer (or collects for
    them): the receipt joins the person, under the guard rails. Returns the order's id,
    or None when the reference names no order.
    """
    picked = join_order_reference(batch, row, reference, pid)
    if picked is None:
        return None
    batch.conn.execute(_PICKED_UP, {"store": store_name, "id": picked[0], "now": batch.now_ms})
    return int(picked[0])


def _line_rows(lines: list[dict[str, Any]], *, priced: bool) -> list[dict[str, Any]]:
    """The order's lines as rows (unit prices in euro cents, or 0 in another currency)."""
    return [
        {
            "sku": text_value(p.get("sku")),
            "product_id": text_value(p.get("product_id") or p.get("productId")),
            "name": text_value(p.get("name")),
            "category": text_value(p.get("category")),
            "brand": text_value(p.get("brand")),
            "quantity": to_quantity(p.get("quantity")),
            "unit_price_eur_cents": (to_cents(p.get("price")) or 0) if priced else 0,
        }
        for p in lines
    ]


@dataclass(slots=True)
class PendingOrders:
    """The orders a batch has placed and not yet written, with their lines.

    Writing them together saves a statement (a round trip on PostgreSQL) per order.
    They are written before anything reads the orders table (`write_orders`), so a
    refund or a pick-up later in the batch finds them.
    """

    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[list[dict[str, Any]]] = field(default_factory=list)
    events: list[int] = field(default_factory=list)  # index of each order's event
    keys: set[tuple[int, str]] = field(default_factory=set)
    order_keys: set[str] = field(default_factory=set)

    def add(self, values: dict[str, Any], lines: list[dict[str, Any]], event: int) -> bool:
        """Queue an order; False when the batch already placed it (same source and key)."""
        key = (values["source_id"], values["order_key"])
        if key in self.keys:
            return False
        self.keys.add(key)
        self.order_keys.add(values["order_key"])
        self.orders.append(values)
        self.lines.append(lines)
        self.events.append(event)
        return True


def write_orders(batch: Batch) -> None:
    """Write the orders the batch placed, then their lines; give their events their ids.

    Called before anything reads an order the batch may have placed (`join_order_reference`,
    `write_refunds`).

    An order already in the store (sent again under another messageId) is not written
    again: its event keeps no order and no revenue, as its first event has them.
    """
    pending = batch.orders
    if not pending.orders:
        return
    written: dict[tuple[int, str], int] = {}
    mark = "?" if batch.conn.dialect.paramstyle == "qmark" else "%s"
    row = "(" + ", ".join([mark] * len(_ORDER_COLUMNS)) + ")"
    for start in range(0, len(pending.orders), _ORDERS_PER_STATEMENT):
        chunk = pending.orders[start : start + _ORDERS_PER_STATEMENT]
        # Straight to the driver: SQLAlchemy would parse and compile thousands of
        # named parameters for every batch.
        statement = (
            f"INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}) VALUES "
            f"{', '.join([row] * len(chunk))} ON CONFLICT (source_id, order_key) DO NOTHING "
            "RETURNING id, source_id, order_key"
        )
        params = tuple(order[c] for order in chunk for c in _ORDER_COLUMNS)
        for order_id, source_id, key in batch.conn.exec_driver_sql(statement, params):
            written[(int(source_id), str(key))] = int(order_id)
    line_rows: list[tuple[Any, ...]] = []
    for order, lines, index in zip(pending.orders, pending.lines, pending.events, strict=True):
        order_id = written.get((order["source_id"], order["order_key"]))
        event = list(batch.events[index])
        event[_EVENT_ORDER_ID] = order_id
        if order_id is None:
            event[_EVENT_REVENUE] = None
        batch.events[index] = tuple(event)
        if order_id is not None:
            line_rows.extend((order_id, *(r[c] for c in _LINE_COLUMNS), 0) for r in lines)
    insert_rows(
        batch.conn, "order_line", ("order_id", *_LINE_COLUMNS, "returned_quantity"), line_rows
    )
    batch.orders = PendingOrders()


_ORDER_BY_REFERENCE = text(
    "SELECT id, profile_id FROM orders WHERE order_key = :k ORDER BY id LIMIT 1"
)
_PICKED_UP = text(
    "UPDATE orders SET fulfilment = 'click_and_collect', store = :store, "
    "updated_ms = :now WHERE id = :id"
)


def join_order_reference(batch: Batch, row: Any, reference: Any, pid: int) -> Any:
    """Join the person to the customer of the order `reference` names; return the order.

    The order is looked up by its key as the e-shop sent it; the merge goes through the
    identity graph's guard rails and records the reference as its evidence.
    """
    key = str(reference)
    if key in batch.orders.order_keys:  # placed earlier in this batch: write it first
        write_orders(batch)
    order = batch.conn.execute(_ORDER_BY_REFERENCE, {"k": key}).first()
    if order is not None:
        batch.p.graph.merge_profiles(
            pid,
            int(order.profile_id),
            "order_reference",
            {"kind": "order_ref", "value": str(reference)[:255], "event_id": row.id},
        )
    return order


@dataclass(slots=True)
class PendingRefund:
    """A refund the batch read, applied once the batch's orders are written."""

    event_id: int
    profile_id: int
    key: str | None
    store: str | None  # the till's store: its receipts' keys name it
    refunded_ms: int
    channel: str
    returned: list[dict[str, Any]]
    amount: int | None  # None: the whole order's total (no amount and no lines given)


def record_refund(batch: Batch, row: Any, props: dict[str, Any], pid: int, channel: str) -> None:
    """Read a refund; `write_refunds` applies it to the order and lines it returns."""
    key = props.get("order_id") or props.get("orderId")
    products = [p for p in (props.get("products") or []) if isinstance(p, dict)]
    returned = [
        {"sku": text_value(p.get("sku")), "quantity": abs(to_quantity(p.get("quantity")))}
        for p in products
    ]
    batch.refunds.append(
        PendingRefund(
            event_id=row.id,
            profile_id=pid,
            key=str(key) if key not in (None, "") else None,
            store=channel.split(":", 1)[1] if channel.startswith("store:") else None,
            refunded_ms=row.timestamp_ms,
            channel=channel,
            returned=returned,
            amount=_refund_amount(props, products),
        )
    )


_REFUNDS_DONE = listing("SELECT event_id FROM order_refund WHERE event_id IN :ids", "ids")
_ORDERS_BY_KEY = listing(
    "SELECT id, order_key, total_eur_cents, event_id FROM orders WHERE order_key IN :keys", "keys"
)
_REFUND_ORDER = text(
    "UPDATE orders SET refunded_eur_cents = refunded_eur_cents + :amount, status = "
    "CASE WHEN refunded_eur_cents + :amount >= total_eur_cents THEN 'refunded' "
    "ELSE 'partially_refunded' END, updated_ms = :now WHERE id = :id"
)
_RETURN_LINE = text(
    "UPDATE order_line SET returned_quantity = CASE WHEN "
    "returned_quantity + :q > quantity THEN quantity "
    "ELSE returned_quantity + :q END "
    "WHERE order_id = :o AND sku = :sku"
)


def write_refunds(batch: Batch) -> None:
    """Record the batch's refunds and apply each to its order and the lines it returns.

    Runs after `write_orders`, with a few statements for the whole batch: a refund finds
    the first order of its key (a till's key also prefixed by its store) processed before
    it, as if it had been applied in its place in the log. A refund already recorded
    (its event processed again) is not applied twice.
    """
    refunds, batch.refunds = batch.refunds, []
    if not refunds:
        return
    conn = batch.conn
    ids = [r.event_id for r in refunds]
    done = {int(e) for (e,) in select_in(conn, _REFUNDS_DONE, ids)}
    by_key = _orders_by_key(batch, refunds)
    rows: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    for refund in refunds:
        if refund.event_id in done:
            continue
        order = _refunded_order(refund, by_key)
        if order is None and refund.returned:
            skus = [str(r["sku"]) for r in refund.returned if r["sku"]]
            order = order_holding(
                batch, refund.profile_id, skus, refund.refunded_ms, refund.event_id
            )
        amount = refund.amount
        if amount is None:
            amount = abs(int(order[1])) if order is not None else 0  # the whole order
        rows.append(
            {
                "order_id": order[0] if order is not None else None,
                "profile_id": refund.profile_id,
                "event_id": refund.event_id,
                "order_key": refund.key[:255] if refund.key is not None else None,
                "refunded_ms": refund.refunded_ms,
                "channel": refund.channel,
                "amount_eur_cents": amount,
                "lines": orjson.dumps(refund.returned).decode(),
            }
        )
        if order is not None:
            order_id = int(order[0])
            orders.append({"amount": amount, "id": order_id, "now": batch.now_ms})
            lines.extend(
                {"q": line["quantity"], "o": order_id, "sku": line["sku"]}
                for line in refund.returned
                if line["sku"]
            )
    if rows:
        conn.execute(_REFUND_INSERT, rows)
    if orders:
        conn.execute(_REFUND_ORDER, orders)
    if lines:
        conn.execute(_RETURN_LINE, lines)


def _orders_by_key(batch: Batch, refunds: list[PendingRefund]) -> dict[str, list[Any]]:
    """The stored orders every refund's key may name, by key."""
    keys = sorted(
        {r.key for r in refunds if r.key is not None}
        | {f"{r.store}:{r.key}" for r in refunds if r.key is not None and r.store}
    )
    found: dict[str, list[Any]] = {}
    for row in select_in(batch.conn, _ORDERS_BY_KEY, keys, "keys"):
        found.setdefault(str(row.order_key), []).append(row)
    return found


def _refunded_order(refund: PendingRefund, by_key: dict[str, list[Any]]) -> Any:
    """The first order of the refund's key processed before it, or None."""
    if refund.key is None:
        return None
    candidates = [*by_key.get(refund.key, [])]
    if refund.store:
        candidates += by_key.get(f"{refund.store}:{refund.key}", [])
    before = [o for o in candidates if o.event_id is None or int(o.event_id) < refund.event_id]
    if not before:
        return None
    first = min(before, key=lambda o: int(o.id))
    return int(first.id), int(first.total_eur_cents)


def _refund_amount(props: dict[str, Any], products: list[dict[str, Any]]) -> int | None:
    """The amount refunded, in cents: `total`, `revenue`, or the lines; None: the whole order."""
    amount = to_cents(props.get("total"))
    if amount is None:
        amount = to_cents(props.get("revenue"))
    if amount is None:
        if not products:
            return None
        amount = sum(
            (to_cents(p.get("price")) or 0) * abs(to_quantity(p.get("quantity"))) for p in products
        )
    return abs(amount)


_HOLDING = listing(
    "SELECT o.id, o.total_eur_cents FROM orders o "
    "JOIN order_line l ON l.order_id = o.id "
    "WHERE o.profile_id IN :ids AND l.sku IN :skus AND o.placed_ms <= :before "
    "AND (o.event_id IS NULL OR o.event_id < :event) "
    "ORDER BY o.placed_ms DESC LIMIT 1",
    "ids",
    "skus",
)


def order_holding(batch: Batch, pid: int, skus: list[str], before_ms: int, event_id: int) -> Any:
    """The person's latest order holding a returned product, placed before the return
    (in time, and in the log before the return's event `event_id`)."""
    if not skus:
        return None
    write_orders(batch)
    cluster = set(identity_members(batch.conn, batch.p.graph.root(pid))) | {pid}
    return batch.conn.execute(
        _HOLDING,
        {"ids": sorted(cluster), "skus": skus, "before": before_ms, "event": event_id},
    ).first()
