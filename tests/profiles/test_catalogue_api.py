"""The catalogue and stock kept current through the API, with their history."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_products_and_stock_with_history(client: TestClient, admin_token: str) -> None:
    admin = {"Authorization": f"Bearer {admin_token}"}
    robe = {"sku": "R-1", "name": "Robe lin", "category": "robes", "price": "89.90"}
    answer = client.put("/api/v1/products", json=[robe], headers=admin)
    assert answer.json() == {"received": 1, "changed": 1}
    assert client.put("/api/v1/products", json=[robe], headers=admin).json()["changed"] == 0
    client.put("/api/v1/products", json=[{**robe, "price": "69.90"}], headers=admin)
    readings = [
        {"sku": "R-1", "location": "store:paris", "quantity": 4, "at": "2026-11-01T09:00:00Z"},
        {"sku": "R-1", "location": "online", "quantity": 0, "at": "2026-11-01T09:00:00Z"},
    ]
    assert client.put("/api/v1/stock", json=readings, headers=admin).json()["changed"] == 2
    older = {**readings[0], "quantity": 9, "at": "2026-10-01T09:00:00Z"}
    assert client.put("/api/v1/stock", json=[older], headers=admin).json()["changed"] == 0
    back = {**readings[1], "quantity": 12, "at": "2026-11-02T09:00:00Z"}
    client.put("/api/v1/stock", json=[back], headers=admin)
    product = client.get("/api/v1/products/R-1", headers=admin).json()
    assert product["price_eur"] == 69.9
    assert [(h["previous_cents"], h["price_cents"]) for h in product["price_history"]] == [
        (None, 8990),
        (8990, 6990),
    ]
    assert {s["location"]: s["quantity"] for s in product["stock"]} == {
        "online": 12,
        "store:paris": 4,
    }
    online = [h for h in product["stock_history"] if h["location"] == "online"]
    assert [(h["previous"], h["quantity"]) for h in online] == [(None, 0), (0, 12)]
    listed = client.get("/api/v1/products", params={"q": "lin"}, headers=admin).json()
    assert [(p["sku"], p["stock"]) for p in listed] == [("R-1", 16)]


def test_bad_catalogue_requests_are_refused_whole(client: TestClient, admin_token: str) -> None:
    admin = {"Authorization": f"Bearer {admin_token}"}
    twice = [{"sku": "A", "name": "a", "price": 1}, {"sku": "A", "name": "b", "price": 2}]
    answer = client.put("/api/v1/products", json=twice, headers=admin)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"index": 1, "field": "sku", "reason": "A is already at index 0"}
    ]
    negative = client.put(
        "/api/v1/products", json=[{"sku": "B", "name": "b", "price": -1}], headers=admin
    )
    assert negative.status_code == 422
    nowhere = client.put(
        "/api/v1/stock", json=[{"sku": "A", "location": "?!", "quantity": 1}], headers=admin
    )
    assert nowhere.status_code == 422
    assert nowhere.json()["errors"][0]["field"] == "location"
    assert client.get("/api/v1/products", headers=admin).json() == []
    assert client.get("/api/v1/products/A", headers=admin).status_code == 404
