"""The stores' till export: store sales, click & collect pick-ups and returns at the till.

One row per receipt line, as French tills write it (see `TILL_HEADER`); receipts come out
in time order, each one's identifiers given and typed as `records.contact` decides.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np

from omnicanal.demo.activity import COLLECT, IN_STORE
from omnicanal.demo.chunk import Chunk
from omnicanal.demo.files.writer import Writer, decimal_fr
from omnicanal.demo.orders import Orders
from omnicanal.demo.records import PICKUP, RETURN, SALE, Contact, Habits, Identifiers, contact
from omnicanal.demo.shop import STORES


@dataclass(frozen=True, slots=True)
class _Receipt:
    """One receipt to print: which order, where, when, and its lines with their sign."""

    order: int
    number: str
    store: int
    t: float
    habits: Habits  # what the person gives at the till for this kind of receipt
    lines: list[tuple[int, int]]  # (order line, +1 sold or -1 returned)
    fulfilment: str
    order_ref: str
    discount: float


def _sales(ch: Chunk) -> Iterator[_Receipt]:
    """Yield the receipts of the loaded period's store sales."""
    o = ch.orders
    for i in np.flatnonzero((o.channel == IN_STORE) & ch.loaded(o.t)).tolist():
        lines = [(li, 1) for li in o.lines(i)]
        store, t, discount = int(o.store[i]), float(o.t[i]), float(o.discount[i])
        yield _Receipt(i, o.number[i], store, t, SALE, lines, "in_store", "", discount)


def _pickups(ch: Chunk) -> Iterator[_Receipt]:
    """Yield the receipts of click & collect pick-ups, which carry the e-shop order number."""
    o = ch.orders
    for i in np.flatnonzero((o.channel == COLLECT) & ch.loaded(o.pickup_t) & (o.t >= 0)).tolist():
        lines = [(li, 1) for li in o.lines(i)]
        store, t = int(o.store[i]), float(o.pickup_t[i])
        number, ref = o.pickup_number[i], o.number[i]
        yield _Receipt(i, number, store, t, PICKUP, lines, "click_and_collect", ref, 0.0)


def _returns(ch: Chunk) -> Iterator[_Receipt]:
    """Yield the receipts of returns at the till: the returned line, as a negative quantity."""
    o = ch.orders
    for i in np.flatnonzero(o.return_in_store & ch.loaded(o.return_t) & (o.t >= 0)).tolist():
        lines = [(int(o.returned_line[i]), -1)]
        ref = o.number[i] if o.channel[i] != IN_STORE else ""
        store, t = int(o.return_store[i]), float(o.return_t[i])
        yield _Receipt(i, o.return_number[i], store, t, RETURN, lines, "in_store", ref, 0.0)


def _till_rows(w: Writer, o: Orders, r: _Receipt, c: Contact) -> list[list[str]]:
    """Return the rows of one receipt, one per line."""
    cat = w.world.catalogue
    stamp = f"{w.when(r.t):%d/%m/%Y %H:%M:%S}"
    rows = []
    for n, (line, sign) in enumerate(r.lines, start=1):
        p = int(o.line_product[line])
        rows.append(
            [
                r.number,
                STORES[r.store].code,
                stamp,
                str(n),
                cat.sku[p],
                cat.name[p],
                cat.category[p],
                cat.brand[p],
                str(sign * int(o.line_quantity[line])),
                decimal_fr(float(o.line_price[line])),
                "EUR",
                c.card,
                c.email,
                c.phone,
                c.first,
                c.last,
                c.postcode,
                r.fulfilment,
                r.order_ref,
                decimal_fr(r.discount) if r.discount else "",
            ]
        )
    return rows


def _printed(
    w: Writer, ch: Chunk, ids: Identifiers, rnd: random.Random, r: _Receipt
) -> tuple[float, list[list[str]]]:
    """Fill in a receipt's identifiers, record its import key; return its time and rows."""
    pp = ch.people
    person = int(ch.orders.person[r.order])
    c = contact(rnd, pp, person, ch.card_t[person] <= r.t, r.habits, "till", ids)
    rows = _till_rows(w, ch.orders, r, c)
    ids.add("import_row", f"till:{STORES[r.store].code}:{r.number}", pp.person_id(person), "till")
    return r.t, rows


def till(w: Writer, ch: Chunk, ids: Identifiers) -> None:
    """Write the chunk's receipts: store sales, click & collect pick-ups, returns at the till."""
    rnd = random.Random(f"{w.world.seed}-till-{ch.number}")
    receipts = chain(_sales(ch), _pickups(ch), _returns(ch))
    rows = [_printed(w, ch, ids, rnd, r) for r in receipts]  # draws in this order
    rows.sort(key=lambda r: r[0])
    for _, receipt in rows:
        w.till.writerows(receipt)
        w.rows["till"] += len(receipt)
