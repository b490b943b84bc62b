"""A small shop's customers sent through the collection API, and checks of the warehouse.

`mirrors` compares every warehouse table with what the store says it should hold,
computed here from the store's own tables (person = the profile's root).
"""

from __future__ import annotations

import base64
import itertools
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import bindparam, text

from omnicanal.profiles.processor import Processor
from omnicanal.store.engine import Database
from omnicanal.store.tombstones import PROFILE, record_deletions
from omnicanal.warehouse.connect import Warehouse
from omnicanal.warehouse.ddl import KEYS
from tests.conftest import SourceKey, make_source

_messages = itertools.count()


def at(minutes: int, day: str = "2026-03-02") -> str:
    hours, minute = divmod(minutes, 60)
    return f"{day}T{9 + hours:02d}:{minute:02d}:00.000Z"


def send(client: TestClient, source: SourceKey, messages: list[dict[str, Any]]) -> None:
    """Post messages to /v1/import with the source's write key."""
    auth = base64.b64encode(f"{source.write_key}:".encode()).decode()
    for message in messages:
        message.setdefault("messageId", f"m-{source.id}-{next(_messages)}")
    answer = client.post(
        "/v1/import", json={"batch": messages}, headers={"Authorization": f"Basic {auth}"}
    )
    assert answer.status_code == 200, answer.text


def process(db: Database) -> int:
    return Processor(db).drain()


class Shop:
    """The sources of a shop with a website, a till in Paris, a call centre and a newsletter."""

    def __init__(self, client: TestClient, db: Database) -> None:
        self.client, self.db = client, db
        self.web = make_source(db, "eshop", "web")
        self.till = make_source(db, "till-paris", "store:paris")
        self.calls = make_source(db, "calls", "call_centre")
        self.mail = make_source(db, "newsletter", "email")

    def send(self, source: SourceKey, *messages: dict[str, Any]) -> None:
        send(self.client, source, list(messages))

    def opening_day(self) -> None:
        """Marie browses, signs in and orders; Jean orders for pick-up; Luc buys at the till."""
        consent = {"wording": "v1", "purposes": {"marketing": {"email": True, "sms": False}}}
        self.send(
            self.web,
            {"type": "page", "anonymousId": "a1", "name": "Accueil", "timestamp": at(0)},
            {
                "type": "identify",
                "anonymousId": "a1",
                "userId": "u1",
                "traits": {"email": "marie@exemple.fr", "address": {"city": "Lyon"}},
                "context": {"consent": consent},
                "timestamp": at(1),
            },
            order("u1", "W1", at(2), [("SKU-1", 59.90, 1), ("SKU-2", 10.00, 2)]),
            {
                "type": "identify",
                "userId": "u2",
                "traits": {"email": "jean@exemple.fr"},
                "timestamp": at(3),
            },
            order("u2", "W2", at(4), [("SKU-3", 45.00, 1)], fulfilment="click_and_collect"),
            # 22:30 UTC in July is 00:30 the next day in Paris.
            {
                "type": "page",
                "userId": "u1",
                "name": "Soldes",
                "timestamp": "2026-07-14T22:30:00.000Z",
            },
        )
        self.send(
            self.till,
            {
                "type": "track",
                "anonymousId": "till:1",
                "event": "Order Completed",
                "properties": {"order_id": "T1", "total": 30, "products": []},
                "context": {"traits": {"card": "CARD-LUC", "email": "luc@exemple.fr"}},
                "timestamp": at(5),
            },
        )
        self.send(
            self.calls,
            {
                "type": "track",
                "anonymousId": "call:1",
                "event": "Call Centre Contact",
                "context": {"traits": {"phone": "06 71 28 45 93", "lastName": "Martin"}},
                "timestamp": at(6),
            },
        )
        self.send(
            self.mail,
            {
                "type": "track",
                "userId": "u1",
                "event": "Email Opened",
                "properties": {"campaign_name": "printemps"},
                "timestamp": at(7),
            },
            {
                "type": "track",
                "userId": "u1",
                "event": "Survey Answered",
                "properties": {"kind": "nps", "score": 9},
                "timestamp": at(8),
            },
        )
        process(self.db)

    def catalogue(self, token: str, price: float = 59.90) -> None:
        """Products and stock through the management API."""
        auth = {"Authorization": f"Bearer {token}"}
        products = [
            {"sku": "SKU-1", "name": "Pull", "category": "Maille", "price": price},
            {"sku": "SKU-2", "name": "Chaussettes", "price": 10},
            {"sku": "SKU-3", "name": "Veste", "price": 45, "active": False},
        ]
        answer = self.client.put("/api/v1/products", json=products, headers=auth)
        assert answer.status_code == 200, answer.text
        stock = [
            {"sku": "SKU-1", "location": "online", "quantity": 12},
            {"sku": "SKU-1", "location": "store:paris", "quantity": 3},
        ]
        answer = self.client.put("/api/v1/stock", json=stock, headers=auth)
        assert answer.status_code == 200, answer.text

    def costs(self, token: str, content: str) -> None:
        """A costs file through the import API."""
        answer = self.client.post(
            "/api/v1/imports/costs",
            files={"file": ("couts.csv", content.encode(), "text/csv")},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 201, answer.text


COSTS = (
    "date;canal;campagne;montant;impressions;clics\n"
    "01/03/2026;ads:google;printemps;120,50;10000;250\n"
    "02/03/2026;direct_mail;;1 200,00;;\n"
)
MORE_COSTS = COSTS + "03/03/2026;event:atelier;couture;350;;\n"


def order(
    user: str,
    key: str,
    when: str,
    lines: list[tuple[str, float, int]],
    *,
    fulfilment: str = "delivery",
) -> dict[str, Any]:
    """An e-shop order with its lines."""
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "timestamp": when,
        "properties": {
            "order_id": key,
            "total": round(sum(price * quantity for _sku, price, quantity in lines), 2),
            "currency": "EUR",
            "fulfilment": fulfilment,
            "products": [{"sku": s, "price": p, "quantity": q} for s, p, q in lines],
        },
    }


def erase(db: Database, email: str) -> list[int]:
    """Delete the people holding an email from the store as an erasure does, with tombstones.

    Return the profiles erased (none when nobody holds the email).
    """
    with db.engine.begin() as conn:
        ids = list(
            conn.execute(
                text(
                    "SELECT id FROM profile WHERE COALESCE(merged_into, id) IN "
                    "(SELECT COALESCE(merged_into, id) FROM profile WHERE email = :e)"
                ),
                {"e": email},
            ).scalars()
        )
        if not ids:
            return []
        for statement in (
            "DELETE FROM order_line WHERE order_id IN (SELECT id FROM orders "
            "WHERE profile_id IN :ids)",
            "DELETE FROM order_refund WHERE profile_id IN :ids",
            "DELETE FROM orders WHERE profile_id IN :ids",
            "DELETE FROM consent WHERE profile_id IN :ids",
            "DELETE FROM feedback WHERE profile_id IN :ids",
            "DELETE FROM profile_event WHERE profile_id IN :ids",
            "DELETE FROM identity WHERE profile_id IN :ids",
            "DELETE FROM identity_merge WHERE survivor_id IN :ids OR merged_id IN :ids",
            "DELETE FROM household_member WHERE profile_id IN :ids",
            "DELETE FROM profile WHERE id IN :ids",
        ):
            conn.execute(text(statement).bindparams(bindparam("ids", expanding=True)), {"ids": ids})
        record_deletions(conn, PROFILE, ids, int(time.time() * 1000))
    return ids


_ROOT = "COALESCE(p.merged_into, p.id)"
# Each table as the store says the warehouse must hold it, and as the warehouse holds it.
MIRRORS: dict[str, tuple[str, str]] = {
    "events": (
        f"SELECT e.event_id, e.profile_id, {_ROOT}, e.channel, e.revenue_cents, e.order_id "
        "FROM profile_event e JOIN profile p ON p.id = e.profile_id",
        "SELECT event_id, profile_id, person_id, channel, revenue_cents, order_id FROM events",
    ),
    "orders": (
        f"SELECT o.id, o.profile_id, {_ROOT}, o.order_key, o.store, o.fulfilment, o.status, "
        "o.total_eur_cents, o.refunded_eur_cents FROM orders o JOIN profile p "
        "ON p.id = o.profile_id",
        "SELECT order_id, profile_id, person_id, order_key, store, fulfilment, status, "
        "total_cents, refunded_cents FROM orders",
    ),
    "order_lines": (
        "SELECT id, order_id, sku, quantity, unit_price_eur_cents, returned_quantity "
        "FROM order_line",
        "SELECT line_id, order_id, sku, quantity, unit_price_cents, returned_quantity "
        "FROM order_lines",
    ),
    "refunds": (
        f"SELECT r.id, r.order_id, {_ROOT}, r.amount_eur_cents FROM order_refund r "
        "JOIN profile p ON p.id = r.profile_id",
        "SELECT refund_id, order_id, person_id, amount_cents FROM refunds",
    ),
    "profiles": (
        "SELECT id, COALESCE(merged_into, id), event_count, city FROM profile",
        "SELECT profile_id, person_id, event_count, city FROM profiles",
    ),
    "consents": (
        f"SELECT c.id, {_ROOT}, c.purpose, c.channel, c.granted FROM consent c "
        "JOIN profile p ON p.id = c.profile_id",
        "SELECT consent_id, person_id, purpose, channel, granted FROM consents",
    ),
    "feedback": (
        f"SELECT f.event_id, {_ROOT}, f.kind, f.score FROM feedback f "
        "JOIN profile p ON p.id = f.profile_id",
        "SELECT event_id, person_id, kind, score FROM feedback",
    ),
    "costs": (
        "SELECT id, channel, campaign, amount_eur_cents FROM cost",
        "SELECT cost_id, channel, campaign, amount_cents FROM costs",
    ),
    "products": (
        "SELECT sku, name, price_cents, active FROM product",
        "SELECT sku, name, price_cents, active FROM products",
    ),
    "stock": (
        "SELECT sku, location, quantity FROM stock_level",
        "SELECT sku, location, quantity FROM stock",
    ),
    "sources": (
        "SELECT id, name, channel FROM collect_source",
        "SELECT source_id, name, channel FROM sources",
    ),
}


def _normal(rows: Any) -> list[tuple[Any, ...]]:
    """Rows sorted, with booleans as integers (SQLite has no booleans)."""
    return sorted(
        (tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows), key=repr
    )


def store_rows(db: Database, table: str) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        return _normal(conn.execute(text(MIRRORS[table][0])).all())


def warehouse_rows(warehouse: Warehouse, table: str) -> list[tuple[Any, ...]]:
    with warehouse.connection() as con:
        return _normal(con.execute(MIRRORS[table][1]).fetchall())


def mirrors(db: Database, warehouse: Warehouse) -> None:
    """Assert every warehouse table holds what the store says, each key once."""
    for table in MIRRORS:
        assert warehouse_rows(warehouse, table) == store_rows(db, table), table
    with warehouse.connection() as con:
        for table, keys in KEYS.items():
            key = ", ".join(keys)
            found = con.execute(
                f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY {key} "
                "HAVING count(*) > 1)"
            ).fetchone()
            assert found == (0,), f"{table} has duplicate keys"


def persons(warehouse: Warehouse) -> int:
    with warehouse.connection() as con:
        found = con.execute("SELECT count(DISTINCT person_id) FROM profiles").fetchone()
    assert found is not None
    return int(found[0])
