"""Collection through HTTP: storage, dedup, clock skew, partial batches, management."""

from __future__ import annotations

import gzip

import orjson
from fastapi.testclient import TestClient

from tests.conftest import SourceKey


def _events(client: TestClient, token: str) -> list[dict]:
    page = client.get(
        "/api/v1/events", params={"limit": 1000}, headers={"Authorization": f"Bearer {token}"}
    )
    assert page.status_code == 200
    return page.json()["items"]


def test_track_is_stored_once_per_message_id(client, source: SourceKey, admin_token) -> None:
    body = {
        "userId": "u1",
        "event": "Order Completed",
        "messageId": "m-1",
        "properties": {"revenue": 59.9, "currency": "EUR"},
    }
    for _ in range(3):
        answer = client.post("/v1/track", json=body, auth=(source.write_key, ""))
        assert answer.status_code == 200
        assert answer.json() == {"success": True}
    events = _events(client, admin_token)
    assert len(events) == 1
    assert events[0]["event"] == "Order Completed"
    assert events[0]["payload"]["properties"] == {"revenue": 59.9, "currency": "EUR"}
    stats = client.get("/api/v1/stats", headers={"Authorization": f"Bearer {admin_token}"})
    assert stats.json()["events_by_type"] == {"track": 1}


def test_clock_skew_is_corrected_as_segment_does(client, source, admin_token) -> None:
    # The device clock is one hour ahead: sentAt and timestamp share the error.
    body = {
        "anonymousId": "a1",
        "event": "Product Viewed",
        "messageId": "skew",
        "timestamp": "2030-01-01T10:00:00.000Z",
        "sentAt": "2030-01-01T10:00:30.000Z",
    }
    assert client.post("/v1/track", json=body, auth=(source.write_key, "")).status_code == 200
    payload = _events(client, admin_token)[0]["payload"]
    received = payload["receivedAt"]
    from omnicanal.core.clock import parse_iso8601

    delta = parse_iso8601(received) - parse_iso8601(payload["timestamp"])
    assert abs(delta.total_seconds() - 30) < 0.01
    assert payload["originalTimestamp"] == "2030-01-01T10:00:00.000Z"


def test_import_keeps_historical_timestamps(client, source, admin_token) -> None:
    body = {
        "batch": [
            {
                "type": "track",
                "userId": "u",
                "event": "Order Completed",
                "timestamp": "2024-03-01T09:30:00Z",
                "messageId": "h1",
            }
        ],
        "sentAt": "2026-01-01T00:00:00Z",
    }
    assert client.post("/v1/import", json=body, auth=(source.write_key, "")).status_code == 200
    assert _events(client, admin_token)[0]["timestamp"].startswith("2024-03-01T09:30:00")


def test_batch_is_partial_and_names_each_bad_message(client, source, admin_token) -> None:
    body = {
        "batch": [
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"email": "a@example.fr"},
                "messageId": "1",
            },
            {"type": "track", "userId": "u1", "messageId": "2"},
            {"type": "page", "anonymousId": "a", "timestamp": "yesterday", "messageId": "3"},
            {"type": "screen", "anonymousId": "a", "name": "Home", "messageId": "4"},
        ]
    }
    answer = client.post("/v1/batch", json=body, auth=(source.write_key, ""))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["accepted"] == 2
    assert problem["rejected"] == 2
    assert {(e["index"], e["field"]) for e in problem["errors"]} == {(1, "event"), (2, "timestamp")}
    assert [e["type"] for e in _events(client, admin_token)] == ["identify", "screen"]
    rejected = client.get(
        "/api/v1/rejected-events", headers={"Authorization": f"Bearer {admin_token}"}
    ).json()["items"]
    assert sorted(r["batch_index"] for r in rejected) == [1, 2]
    # Retrying the same batch stores nothing twice.
    client.post("/v1/batch", json=body, auth=(source.write_key, ""))
    assert len(_events(client, admin_token)) == 2


def test_gzip_batch_and_write_key_in_body(client, source, admin_token) -> None:
    body = {
        "writeKey": source.write_key,
        "batch": [
            {"type": "track", "anonymousId": f"a{i}", "event": "Cart Viewed"} for i in range(50)
        ],
    }
    answer = client.post(
        "/v1/batch",
        content=gzip.compress(orjson.dumps(body)),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    )
    assert answer.status_code == 200
    events = _events(client, admin_token)
    assert len(events) == 50
    assert all("writeKey" not in e["payload"] for e in events)


def test_batch_context_is_merged_into_messages(client, source, admin_token) -> None:
    body = {
        "context": {"library": {"name": "till", "version": "1"}},
        "batch": [{"type": "track", "userId": "u", "event": "Sale", "context": {"ip": "10.0.0.1"}}],
    }
    assert client.post("/v1/batch", json=body, auth=(source.write_key, "")).status_code == 200
    context = _events(client, admin_token)[0]["payload"]["context"]
    assert context == {"library": {"name": "till", "version": "1"}, "ip": "10.0.0.1"}


def test_management_needs_an_admin_token(client, source) -> None:
    assert client.get("/api/v1/stats").status_code == 401
    wrong = client.get("/api/v1/stats", headers={"Authorization": f"Bearer {source.write_key}"})
    assert wrong.status_code == 401
    assert wrong.json()["status"] == 401


def test_sources_through_the_api(client, admin_token) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    created = client.post(
        "/api/v1/sources", json={"name": "Paris", "channel": "store:paris-01"}, headers=auth
    )
    assert created.status_code == 201
    key = created.json()["write_key"]
    assert (
        client.post("/v1/track", json={"userId": "u", "event": "Sale"}, auth=(key, "")).status_code
        == 200
    )
    bad = client.post("/api/v1/sources", json={"name": "X", "channel": "telepathy"}, headers=auth)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "channel"
    dup = client.post("/api/v1/sources", json={"name": "Paris", "channel": "web"}, headers=auth)
    assert dup.status_code == 409
    source_id = created.json()["id"]
    assert client.post(f"/api/v1/sources/{source_id}/disable", headers=auth).status_code == 200
    listed = client.get("/api/v1/sources", headers=auth).json()
    assert listed[0]["disabled_at"] is not None
    assert "write_key" not in listed[0]


def test_home_page_shows_what_is_loaded(client, source) -> None:
    client.post("/v1/track", json={"userId": "u", "event": "Sale"}, auth=(source.write_key, ""))
    page = client.get("/")
    assert page.status_code == 200
    assert "données collectées" in page.text
    assert 'href="/docs"' in page.text
    assert "collected data" in client.get("/?lang=en").text


def test_empty_user_id_means_not_known_yet(client, source, admin_token) -> None:
    # RudderStack's browser SDK sends userId "" before identify, with an anonymousId.
    body = {"userId": "", "anonymousId": "anon-1", "name": "Home"}
    assert client.post("/v1/page", json=body, auth=(source.write_key, "")).status_code == 200
    stored = _events(client, admin_token)[0]
    assert (stored["user_id"], stored["anonymous_id"]) == (None, "anon-1")
    alone = client.post("/v1/page", json={"userId": ""}, auth=(source.write_key, ""))
    assert alone.status_code == 422
    assert alone.json()["errors"] == [
        {"field": "userId", "reason": "userId or anonymousId is required"}
    ]
    alias = client.post(
        "/v1/alias", json={"userId": "u", "previousId": ""}, auth=(source.write_key, "")
    )
    assert alias.json()["errors"] == [
        {"field": "previousId", "reason": "is required for alias calls"}
    ]


def test_beacon_batch_takes_the_write_key_from_the_query(client, source, admin_token) -> None:
    body = {"batch": [{"type": "track", "anonymousId": "a", "event": "Page Left"}]}
    answer = client.post(f"/beacon/v1/batch?writeKey={source.write_key}", json=body)
    assert answer.status_code == 200
    assert _events(client, admin_token)[0]["event"] == "Page Left"
    # The query key is only for beacons.
    assert client.post(f"/v1/batch?writeKey={source.write_key}", json=body).status_code == 401


def test_preflight_grants_the_headers_sdks_ask_for(client) -> None:
    answer = client.options(
        "/v1/track",
        headers={
            "Origin": "https://shop.example.fr",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, anonymousid, sentat, content-type",
        },
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "https://shop.example.fr"
    assert "sentat" in answer.headers["access-control-allow-headers"]
    management = client.options("/api/v1/stats", headers={"Origin": "https://shop.example.fr"})
    assert "access-control-allow-origin" not in management.headers


def test_dashboard_speaks_french_until_asked_otherwise(client) -> None:
    english_browser = {"Accept-Language": "en-GB,en;q=0.9"}
    assert "données collectées" in client.get("/", headers=english_browser).text
    chosen = client.get("/?lang=en")
    assert "collected data" in chosen.text
    assert "collected data" in client.get("/").text  # the choice is remembered
    assert "données collectées" in client.get("/?lang=fr").text


def test_a_storage_failure_is_a_503_that_stores_nothing(client, db, source) -> None:
    from sqlalchemy import text

    with db.engine.begin() as conn:  # the log's table is gone: every write fails
        conn.execute(text("ALTER TABLE collect_event RENAME TO collect_event_away"))
    answer = client.post(
        "/v1/track", json={"userId": "u", "event": "Sale"}, auth=(source.write_key, "")
    )
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["type"].endswith("collect.storage-unavailable")
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE collect_event_away RENAME TO collect_event"))
        assert conn.execute(text("SELECT count(*) FROM collect_event")).scalar() == 0
    again = client.post(
        "/v1/track", json={"userId": "u", "event": "Sale"}, auth=(source.write_key, "")
    )
    assert again.status_code == 200
