"""The official Segment and RudderStack Python SDKs, pointed at a live server, unchanged."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.conftest import LiveServer, make_source

WHEN = dt.datetime(2026, 3, 14, 15, 9, 26, tzinfo=dt.UTC)


def _send_everything(client: SegmentClient | RudderClient, tag: str) -> None:
    """Make every kind of call once, plus enough tracks to span several batches."""
    client.identify(f"{tag}-u1", {"email": "alice@example.fr", "name": "Alice", "city": "Lyon"})
    client.track(
        f"{tag}-u1",
        "Order Completed",
        {
            "order_id": "A-1",
            "revenue": 89.9,
            "currency": "EUR",
            "products": [{"sku": "TSHIRT-M", "price": 29.95, "quantity": 3}],
        },
    )
    client.page(f"{tag}-u1", "Shop", "Product", {"path": "/p/tshirt", "title": "T-shirt"})
    client.screen(f"{tag}-u1", "App", "Basket", {"items": 2})
    client.group(f"{tag}-u1", "household-42", {"name": "Martin family"})
    client.alias(f"{tag}-anon-9", f"{tag}-u1")
    for i in range(250):
        client.track(
            anonymous_id=f"{tag}-anon-{i % 7}",
            event="Product Viewed",
            properties={"sku": f"SKU-{i}", "price": i + 0.5},
            timestamp=WHEN,
        )
    client.flush()


def _stored(server: LiveServer, token: str) -> list[dict]:
    items: list[dict] = []
    after = 0
    while True:
        page = httpx.get(
            f"{server.url}/api/v1/events",
            params={"after": after, "limit": 1000},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        items += page["items"]
        if not page["items"]:
            return items
        after = page["next_after"]


def _check(events: list[dict], tag: str, traits_under_context: bool) -> None:
    assert len(events) == 256
    assert len({e["message_id"] for e in events}) == 256
    by_type: dict[str, list[dict]] = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e)
    assert {k: len(v) for k, v in by_type.items()} == {
        "identify": 1,
        "track": 251,
        "page": 1,
        "screen": 1,
        "group": 1,
        "alias": 1,
    }
    identify = by_type["identify"][0]["payload"]
    traits = identify["context"]["traits"] if traits_under_context else identify["traits"]
    assert traits == {"email": "alice@example.fr", "name": "Alice", "city": "Lyon"}
    order = next(e for e in by_type["track"] if e["event"] == "Order Completed")
    assert order["user_id"] == f"{tag}-u1"
    assert order["payload"]["properties"]["products"] == [
        {"sku": "TSHIRT-M", "price": 29.95, "quantity": 3}
    ]
    views = [e for e in by_type["track"] if e["event"] == "Product Viewed"]
    assert sorted(e["payload"]["properties"]["sku"] for e in views) == sorted(
        f"SKU-{i}" for i in range(250)
    )
    assert all(e["anonymous_id"].startswith(f"{tag}-anon-") for e in views)
    page = by_type["page"][0]["payload"]
    assert (page["name"], page["properties"]["path"]) == ("Product", "/p/tshirt")
    assert by_type["screen"][0]["event"] == "Basket"
    assert by_type["group"][0]["payload"]["groupId"] == "household-42"
    alias = by_type["alias"][0]["payload"]
    assert (alias["previousId"], alias["userId"]) == (f"{tag}-anon-9", f"{tag}-u1")


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_segment_python_sdk(live_server: LiveServer, db, admin_token, gzip: bool) -> None:
    source = make_source(db, "segment-python", "server")
    errors: list[Exception] = []
    client = SegmentClient(
        source.write_key,
        host=live_server.url,
        gzip=gzip,
        max_retries=1,
        on_error=lambda exc, batch: errors.append(exc),
        upload_size=100,
    )
    _send_everything(client, "seg")
    client.shutdown()
    assert errors == []
    _check(_stored(live_server, admin_token), "seg", traits_under_context=False)


def test_rudderstack_python_sdk(live_server: LiveServer, db, admin_token) -> None:
    source = make_source(db, "rudder-python", "server")
    errors: list[Exception] = []
    client = RudderClient(
        source.write_key,
        host=live_server.url,
        max_retries=1,
        on_error=lambda exc, batch: errors.append(exc),
    )
    _send_everything(client, "rs")
    client.shutdown()
    assert errors == []
    _check(_stored(live_server, admin_token), "rs", traits_under_context=True)


def test_sdk_retry_is_stored_once(live_server: LiveServer, db, admin_token) -> None:
    """An SDK resends the same messageId after a lost answer: nothing doubles."""
    source = make_source(db, "retry", "server")
    client = SegmentClient(source.write_key, host=live_server.url, sync_mode=True)
    for _ in range(3):
        client.track("u1", "Checkout Started", {"step": 1}, message_id="fixed-id")
    events = _stored(live_server, admin_token)
    assert [e["message_id"] for e in events] == ["fixed-id"]
