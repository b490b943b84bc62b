"""The till kind: receipt lines grouped into one sale and one return message per receipt."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omnicanal.collect.importers.messages import (
    PERSON_COLUMNS,
    Built,
    iso_time,
    message_id,
    money,
    person_traits,
    slug,
    without_empty,
)
from omnicanal.collect.importers.registry import currency_of
from omnicanal.collect.tabular.columns import C, Column, D, N, T
from omnicanal.collect.tabular.errors import ErrorLog

RECEIPT_WINDOW = 10_000

TILL_COLUMNS = (
    Column("receipt_id", T, True, ("ticket", "numero_ticket", "num_ticket", "transaction_id")),
    Column("store", T, True, ("magasin", "store_id", "code_magasin")),
    Column("datetime", D, True, ("date", "date_heure", "timestamp")),
    Column("line", N, False, ("line_no", "ligne", "num_ligne")),
    Column("sku", T, True, ("ean", "reference", "ref", "code_article")),
    Column("product_name", T, False, ("libelle", "designation", "article")),
    Column("category", T, False, ("categorie", "rayon")),
    Column("brand", T, False, ("marque",)),
    Column("quantity", N, True, ("qte", "quantite", "qty")),
    Column("unit_price", C, True, ("prix_unitaire", "prix", "price", "pu")),
    Column("currency", T, False, ("devise",)),
    *PERSON_COLUMNS,
    Column("fulfilment", T, False, ("fulfillment", "mode_retrait")),
    Column("order_ref", T, False, ("commande", "numero_commande", "commande_web")),
    Column("discount", C, False, ("remise",)),
)
_FULFILMENT = {
    "in_store": "in_store",
    "instore": "in_store",
    "store": "in_store",
    "magasin": "in_store",
    "click_and_collect": "click_and_collect",
    "clickandcollect": "click_and_collect",
    "click&collect": "click_and_collect",
    "clickcollect": "click_and_collect",
    "c&c": "click_and_collect",
    "retrait": "click_and_collect",
    "pickup": "click_and_collect",
}
_RECEIPT_FIELDS = ("card", "email", "phone", "first_name", "last_name", "postcode", "order_ref")


@dataclass(slots=True)
class _Receipt:
    store: str
    receipt_id: str
    line: int
    last: int
    when: datetime
    currency: str
    values: dict[str, Any]  # receipt-wide values: identifiers, fulfilment, order_ref
    lines: list[dict[str, Any]] = field(default_factory=list)
    numbers: dict[int, int] = field(default_factory=dict)  # receipt line number -> file line
    contents: dict[tuple[Any, ...], int] = field(default_factory=dict)
    discount: int | None = None


def _fulfilment(values: dict[str, Any], line: int, errors: ErrorLog) -> str | None:
    given = values.get("fulfilment")
    if given is None:
        return "in_store"
    key = re.sub(r"[\s\-]+", "_", given.lower())
    found = _FULFILMENT.get(key) or _FULFILMENT.get(key.replace("_", ""))
    if found is None:
        errors.add(line, "fulfilment", f"{given[:30]!r} is not in_store or click_and_collect")
    return found


def _store(values: dict[str, Any], line: int, errors: ErrorLog) -> str | None:
    store = slug(values["store"])
    if not store:
        errors.add(line, "store", f"{values['store'][:30]!r} cannot name a store")
        return None
    return store


def _open_receipt(
    key: tuple[str, str], line: int, values: dict[str, Any], errors: ErrorLog
) -> _Receipt | None:
    currency = currency_of(values, line, errors)
    fulfilment = _fulfilment(values, line, errors)
    if currency is None or fulfilment is None:
        return None
    return _Receipt(
        key[0], key[1], line, line, values["datetime"], currency, {"fulfilment": fulfilment}
    )


def _add_line(receipt: _Receipt, line: int, values: dict[str, Any], errors: ErrorLog) -> None:
    """Check one receipt line against the others and keep it."""
    ok = not _duplicate(receipt, line, values, errors)
    if values["quantity"] == 0:
        errors.add(line, "quantity", "is 0: a line sells (positive) or returns (negative) units")
        ok = False
    if (values.get("currency") or "EUR").upper() != receipt.currency:
        errors.add(line, "currency", f"differs from line {receipt.line} of the same receipt")
        ok = False
    discount = values.get("discount")
    if discount is not None:
        if receipt.discount is not None and receipt.discount != discount:
            errors.add(
                line,
                "discount",
                "differs from the receipt's discount on another line; give the receipt's "
                "discount once, or the same on each line",
            )
            ok = False
        receipt.discount = discount
    for name in _RECEIPT_FIELDS:
        if values.get(name) is not None:
            receipt.values.setdefault(name, values[name])
    receipt.last = line
    if ok:
        receipt.lines.append(values)


def _duplicate(receipt: _Receipt, line: int, values: dict[str, Any], errors: ErrorLog) -> bool:
    """Tell, after recording an error, if the receipt already has this line."""
    number = values.get("line")
    if number is not None:
        first = receipt.numbers.setdefault(number, line)
        if first != line:
            errors.add(
                line,
                "line",
                f"receipt {receipt.receipt_id} line {number} is already at line {first}: "
                "a duplicate row",
            )
        return first != line
    content = tuple(values.values())
    first = receipt.contents.setdefault(content, line)
    if first != line:
        errors.add(
            line,
            "receipt_id",
            f"repeats line {first} exactly (a duplicate row); if both are real, number them "
            "in a `line` column",
        )
    return first != line


def _product(values: dict[str, Any]) -> dict[str, Any]:
    product = {"sku": values["sku"]}
    for name, out in (("product_name", "name"), ("category", "category"), ("brand", "brand")):
        if values.get(name) is not None:
            product[out] = values[name]
    product["quantity"] = abs(values["quantity"])
    product["price"] = values["unit_price"] / 100
    return product


def _receipt_messages(receipt: _Receipt) -> Iterator[Built]:
    base = {
        "type": "track",
        "anonymousId": f"till:{receipt.store}:{receipt.receipt_id}",
        "timestamp": iso_time(receipt.when),
        "context": without_empty(
            {"channel": f"store:{receipt.store}", "traits": person_traits(receipt.values) or None}
        ),
    }
    sales = [v for v in receipt.lines if v["quantity"] > 0]
    returns = [v for v in receipt.lines if v["quantity"] < 0]
    for event, items, part in (
        ("Order Completed", sales, "sale"),
        ("Order Refunded", returns, "return"),
    ):
        if not items:
            continue
        products = [_product(v) for v in items]
        discount = receipt.discount if part == "sale" else None
        total = sum(abs(v["quantity"]) * v["unit_price"] for v in items) - (discount or 0)
        props = without_empty(
            {
                "order_id": receipt.receipt_id,
                "products": products,
                "total": money(total),
                "revenue": money(total) if part == "sale" else None,
                "currency": receipt.currency,
                "discount": money(discount) if discount else None,
                "store": receipt.store,
                "fulfilment": receipt.values["fulfilment"],
                "order_ref": receipt.values.get("order_ref"),
            }
        )
        message = {
            **base,
            "event": event,
            "properties": props,
            "messageId": message_id("till", receipt.store, receipt.receipt_id, part),
        }
        yield Built(message, receipt.line, rows=len(items), time_column="datetime")


def build_till(rows: Iterable[tuple[int, dict[str, Any]]], errors: ErrorLog) -> Iterator[Built]:
    """Group receipt lines into one sale and one return message per receipt.

    A receipt's lines must come within RECEIPT_WINDOW lines of each other (till exports
    keep them together): a receipt is complete once that many lines passed without it.
    """
    open_: OrderedDict[tuple[str, str], _Receipt] = OrderedDict()
    closed: dict[tuple[str, str], int] = {}
    current: _Receipt | None = None
    for line, values in rows:
        store = _store(values, line, errors)
        if store is None:
            continue
        key = (store, values["receipt_id"])
        if current is not None and key == (current.store, current.receipt_id):
            _add_line(current, line, values, errors)  # the usual case: the next line
            continue
        receipt = open_.get(key)
        if receipt is not None:
            open_.move_to_end(key)
        elif key in closed:
            errors.add(
                line,
                "receipt_id",
                f"receipt {key[1]} of store {store} began at line {closed[key]} and ended "
                f"more than {RECEIPT_WINDOW:,} lines before; keep a receipt's lines together",
            )
            continue
        else:
            receipt = _open_receipt(key, line, values, errors)
            if receipt is None:
                continue
            open_[key] = receipt
            while next(iter(open_.values())).last < line - RECEIPT_WINDOW:
                _, done = open_.popitem(last=False)
                closed[(done.store, done.receipt_id)] = done.line
                yield from _receipt_messages(done)
        current = receipt
        _add_line(receipt, line, values, errors)
    for done in open_.values():
        yield from _receipt_messages(done)
