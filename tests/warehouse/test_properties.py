"""Whatever happens to the store between syncs, the next sync leaves a faithful copy.

Hypothesis draws a history of visits, sign-ins, orders, refunds, receipts that join two
people, merges undone by hand, erasures and syncs at random points, all through the
collection API, the processor and the store's own services; after the last sync every
warehouse table must say what the store says.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from omnicanal.core.settings import Settings
from omnicanal.identity import service as identity
from omnicanal.store.engine import Database
from omnicanal.warehouse.connect import Warehouse
from omnicanal.warehouse.sync import sync
from tests.warehouse.shop import Shop, at, erase, mirrors, order, process

PEOPLE = 4
steps = st.lists(
    st.one_of(
        st.tuples(st.just("visit"), st.integers(0, PEOPLE - 1), st.integers(0, 1)),
        st.tuples(st.just("sign_in"), st.integers(0, PEOPLE - 1), st.integers(0, 1)),
        st.tuples(st.just("order"), st.integers(0, PEOPLE - 1), st.integers(1, 3)),
        st.tuples(st.just("refund"), st.integers(0, PEOPLE - 1), st.just(0)),
        st.tuples(st.just("receipt"), st.integers(0, PEOPLE - 1), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("unmerge"), st.just(0), st.just(0)),
        st.tuples(st.just("erase"), st.integers(0, PEOPLE - 1), st.just(0)),
        st.tuples(st.just("sync"), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=14,
)


class History:
    """Applies drawn steps to the shop's store."""

    def __init__(self, shop: Shop, db: Database, settings: Settings, warehouse: Warehouse):
        self.shop, self.db, self.settings, self.warehouse = shop, db, settings, warehouse
        self.minute = 0
        self.orders: dict[int, list[str]] = {}

    def when(self) -> str:
        self.minute += 1
        return at(self.minute % 600, day=f"2026-04-{1 + self.minute // 600:02d}")

    def apply(self, step: tuple[str, int, int]) -> None:
        kind, a, b = step
        if kind == "sync":
            assert not sync(self.db, self.settings, warehouse=self.warehouse).full
        elif kind == "unmerge":
            self.unmerge()
        elif kind == "erase":
            erase(self.db, f"p{a}@exemple.fr")
        else:
            self.shop.send(*self.message(kind, a, b))
            process(self.db)

    def message(self, kind: str, a: int, b: int) -> tuple[Any, dict[str, Any]]:
        device = {"anonymousId": f"device-{a}-{b}", "timestamp": self.when()}
        if kind == "visit":
            return self.shop.web, {"type": "page", "name": "Produit", **device}
        if kind == "sign_in":
            traits = {"email": f"p{a}@exemple.fr"}
            return self.shop.web, {
                "type": "identify",
                "userId": f"u{a}",
                "traits": traits,
                **device,
            }
        if kind == "order":
            key = f"W{a}-{len(self.orders.setdefault(a, []))}"
            self.orders[a].append(key)
            return self.shop.web, order(f"u{a}", key, self.when(), [("SKU-1", 10.0, b)])
        if kind == "refund":
            key = (self.orders.get(a) or ["none"])[-1]
            props = {"order_id": key, "products": [{"sku": "SKU-1", "price": 10, "quantity": 1}]}
            return self.shop.web, {
                "type": "track",
                "userId": f"u{a}",
                "event": "Order Refunded",
                "properties": props,
                "timestamp": self.when(),
            }
        # A till receipt with a's card and b's email: it may join the two people.
        return self.shop.till, {
            "type": "track",
            "anonymousId": f"till-{self.minute}",
            "event": "Order Completed",
            "properties": {"order_id": f"T{self.minute}", "total": 5},
            "context": {"traits": {"card": f"CARD-{a}", "email": f"p{b}@exemple.fr"}},
            "timestamp": self.when(),
        }

    def unmerge(self) -> None:
        with self.db.engine.begin() as conn:
            merged = conn.execute(
                text(
                    "SELECT merged_id FROM identity_merge WHERE undone_ms IS NULL "
                    "ORDER BY id DESC LIMIT 1"
                )
            ).scalar()
            if merged is not None:
                identity.unmerge(conn, int(merged))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=steps)
def test_any_history_synced_at_any_points_ends_in_a_faithful_copy(
    client: TestClient, db: Database, settings: Settings, shop: Shop, history: list[Any]
) -> None:
    # The store and the warehouse carry over from one example to the next: more history.
    warehouse = Warehouse.from_settings(settings)
    applied = History(shop, db, settings, warehouse)
    for step in history:
        applied.apply(step)
    assert not sync(db, settings, warehouse=warehouse).full  # always incremental
    mirrors(db, warehouse)
