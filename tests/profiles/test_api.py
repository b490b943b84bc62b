"""Profiles through the management API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from omnicanal.store.engine import Database
from tests.conftest import SourceKey, make_source
from tests.profiles.test_processor import at, process, send


def test_search_show_and_unmerge_over_http(
    client: TestClient, db: Database, admin_token: str
) -> None:
    web: SourceKey = make_source(db, "eshop", "web")
    till = make_source(db, "till", "store:lyon")
    send(
        client,
        web,
        [
            {
                "type": "identify",
                "userId": "u9",
                "traits": {"email": "hugo@exemple.fr", "firstName": "Hugo", "lastName": "Bernard"},
                "timestamp": at(0),
            }
        ],
    )
    send(
        client,
        till,
        [
            {
                "type": "track",
                "anonymousId": "till:9",
                "event": "Order Completed",
                "properties": {"order_id": "L-9", "total": "24,90"},
                "context": {"traits": {"email": "hugo@exemple.fr", "card": "4455 66"}},
                "timestamp": at(5),
            }
        ],
    )
    process(db)
    admin = {"Authorization": f"Bearer {admin_token}"}
    assert client.get("/api/v1/profiles", params={"q": "hugo"}).status_code == 401
    found = client.get("/api/v1/profiles", params={"q": "bernard"}, headers=admin).json()
    assert [(p["first_name"], p["card"]) for p in found] == [("hugo", "445566")]
    profile = client.get("/api/v1/profiles/4455-66", headers=admin).json()
    assert profile["orders_by_channel"][0]["revenue_eur"] == 24.9
    assert {c["channel"] for c in profile["channels"]} == {"web", "store:lyon"}
    missing = client.get("/api/v1/profiles/nobody@exemple.fr", headers=admin)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    root_only = client.post(f"/api/v1/profiles/{profile['id']}/unmerge", headers=admin)
    assert root_only.status_code == 422
    assert root_only.json()["errors"][0]["field"] == "profile"
    assert profile["merges"] == []  # the till record joined by email without a merge
