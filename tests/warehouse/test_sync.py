"""The sync: a first sync mirrors the store; later ones bring exactly what changed."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import text

from omnicanal.core.settings import Settings
from omnicanal.identity import service as identity
from omnicanal.store.engine import Database
from omnicanal.warehouse.connect import Warehouse
from omnicanal.warehouse.schema import SCHEMAS
from omnicanal.warehouse.sync import status, sync
from tests.warehouse.shop import COSTS, MORE_COSTS, Shop, at, mirrors, order, persons, process


def test_a_first_sync_mirrors_the_store(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse, admin_token: str
) -> None:
    shop.opening_day()
    shop.catalogue(admin_token)
    shop.costs(admin_token, COSTS)
    result = sync(db, settings)
    mirrors(db, warehouse)
    assert result.table("events").written == result.table("events").rows == 10
    assert result.table("orders").rows == 3
    assert result.table("costs").rows == 2
    assert result.table("products").rows == 3
    assert persons(warehouse) == 4  # Marie, Jean, Luc at the till, Martin on the phone
    with warehouse.connection() as con:
        late = con.execute("SELECT ts, day FROM events WHERE ts > '2026-07-01'").fetchall()
        online = dict(con.execute("SELECT order_key, online FROM orders").fetchall())
        stock = con.execute("SELECT quantity FROM stock WHERE location = 'store:paris'").fetchall()
    assert late == [(datetime(2026, 7, 14, 22, 30), date(2026, 7, 15))]
    assert online == {"W1": True, "W2": True, "paris:T1": False}
    assert stock == [(3,)]
    found = status(db, settings)
    assert (found.lag_events, found.watermarks["event_id"], found.syncs) == (0, 10, 1)
    assert found.rows["events"] == 10


def test_the_reader_gives_the_declared_tables(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse
) -> None:
    shop.opening_day()
    sync(db, settings)
    with warehouse.reader() as tables:
        assert set(tables) == set(SCHEMAS)
        for name, table in tables.items():
            assert table.schema() == SCHEMAS[name], name
        orders = tables["orders"]
        revenue = orders.aggregate(total=orders.total_cents.sum()).to_pyarrow()
    assert revenue["total"].to_pylist() == [7990 + 4500 + 3000]


def test_a_sync_with_nothing_new_writes_nothing(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse, admin_token: str
) -> None:
    shop.opening_day()
    shop.catalogue(admin_token)
    shop.costs(admin_token, COSTS)
    first = sync(db, settings)
    # Everything was changed a moment ago, inside the overlap window: read again, unchanged.
    again = sync(db, settings)
    assert first.written > 0
    assert (again.written, again.deleted) == (0, 0)
    assert [t.rows for t in again.tables] == [t.rows for t in first.tables]
    mirrors(db, warehouse)
    assert status(db, settings).syncs == 2


def test_new_events_a_refund_a_pickup_and_new_costs_show_after_the_next_sync(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse, admin_token: str
) -> None:
    shop.opening_day()
    shop.catalogue(admin_token)
    shop.costs(admin_token, COSTS)
    sync(db, settings)
    shop.send(
        shop.web,
        {"type": "page", "userId": "u1", "name": "Retours", "timestamp": at(60)},
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Refunded",
            "properties": {
                "order_id": "W1",
                "products": [{"sku": "SKU-2", "price": 10, "quantity": 1}],
            },
            "timestamp": at(61),
        },
        order("u1", "W3", at(62), [("SKU-1", 59.90, 1)]),
    )
    shop.send(  # Jean's click & collect order picked up at the Paris till, with his card
        shop.till,
        {
            "type": "track",
            "anonymousId": "till:2",
            "event": "Order Completed",
            "properties": {
                "order_id": "P2",
                "total": 0,
                "fulfilment": "click_and_collect",
                "order_ref": "W2",
            },
            "context": {"traits": {"card": "CARD-JEAN"}},
            "timestamp": at(63),
        },
    )
    process(db)
    shop.costs(admin_token, MORE_COSTS)
    shop.catalogue(admin_token, price=49.90)
    result = sync(db, settings)
    mirrors(db, warehouse)
    assert result.table("events").written == 4
    assert result.table("refunds").written == 1
    assert result.table("costs").written == 1
    assert result.table("products").written == 1
    with warehouse.connection() as con:
        orders = con.execute(
            "SELECT order_key, store, status, refunded_cents FROM orders ORDER BY order_key"
        ).fetchall()
        returned = con.execute(
            "SELECT sku, returned_quantity FROM order_lines l JOIN orders o USING (order_id) "
            "WHERE o.order_key = 'W1' ORDER BY sku"
        ).fetchall()
        pickers = con.execute(
            "SELECT count(DISTINCT person_id) FROM events WHERE profile_id IN "
            "(SELECT profile_id FROM orders WHERE order_key = 'W2') OR channel = 'store:paris' "
            "AND event = 'Order Completed' AND order_id = (SELECT order_id FROM orders "
            "WHERE order_key = 'W2')"
        ).fetchone()
    assert orders == [
        ("W1", None, "partially_refunded", 1000),
        ("W2", "paris", "completed", 0),
        ("W3", None, "completed", 0),
        ("paris:T1", "paris", "completed", 0),
    ]
    assert returned == [("SKU-1", 0), ("SKU-2", 1)]
    assert pickers == (1,)  # the receipt joined Jean


def test_a_merge_and_its_undoing_move_rows_between_persons(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse
) -> None:
    shop.opening_day()
    sync(db, settings)
    assert persons(warehouse) == 4
    # Marie gives the phone the call centre knew: the caller was her.
    shop.send(
        shop.web,
        {
            "type": "identify",
            "userId": "u1",
            "traits": {"phone": "+33671284593"},
            "timestamp": at(90),
        },
    )
    process(db)
    merged = sync(db, settings)
    mirrors(db, warehouse)
    assert persons(warehouse) == 3
    assert merged.table("events").written >= 2  # the new identify, the call moved to Marie
    with db.engine.connect() as conn:
        caller = conn.execute(
            text("SELECT id FROM profile WHERE merged_into IS NOT NULL")
        ).scalar_one()
    with warehouse.connection() as con:
        calls = con.execute(
            "SELECT DISTINCT e.person_id = m.person_id FROM events e, "
            "(SELECT person_id FROM orders WHERE order_key = 'W1') m "
            "WHERE e.channel = 'call_centre'"
        ).fetchall()
    assert calls == [(True,)]
    with db.engine.begin() as conn:
        identity.unmerge(conn, caller)
    undone = sync(db, settings)
    mirrors(db, warehouse)
    assert persons(warehouse) == 4
    assert undone.table("profiles").written == 1
    assert undone.table("events").written == 1  # the call is the caller's again
