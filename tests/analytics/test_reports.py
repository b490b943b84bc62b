"""Every report through the API and the CLI, on a shop's real store and warehouse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from omnicanal.analytics import reports
from omnicanal.cli import report as report_cli
from omnicanal.core.settings import Settings, get_settings
from omnicanal.store.engine import Database
from omnicanal.warehouse.sync import sync
from tests.warehouse.shop import COSTS, Shop

runner = CliRunner()
app = typer.Typer()
report_cli.register(app)
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture
def shop(client: TestClient, db: Database) -> Shop:
    return Shop(client, db)


@pytest.fixture
def loaded(shop: Shop, db: Database, settings: Settings, admin_token: str) -> dict[str, str]:
    """The shop's opening day and its costs, processed and synced into the warehouse."""
    shop.opening_day()
    shop.costs(admin_token, COSTS)
    sync(db, settings)
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture
def data(settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("OMNICANAL_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield settings.data_dir
    get_settings.cache_clear()


def _get(client: TestClient, auth: dict[str, str], name: str, **params: Any) -> dict[str, Any]:
    answer = client.get(f"/api/v1/reports/{name}", params=params, headers=auth)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _kpis(body: dict[str, Any]) -> dict[str, Any]:
    return {row["name"]: row for row in body["rows"]}


def test_the_overview_of_a_month(client: TestClient, loaded: dict[str, str]) -> None:
    body = _get(client, loaded, "kpis", **MARCH)
    assert body["scope"] == {
        "from": "2026-03-01",
        "to": "2026-03-31",
        "channel": [],
        "media_class": [],
        "store": [],
        "segment": None,
        "compare": "previous",
    }
    kpis = _kpis(body)
    # Marie 59.90 + 2 x 10.00, Jean 45.00 (click & collect), Luc 30.00 at the till.
    assert kpis["revenue"]["value"] == pytest.approx(154.90)
    assert kpis["orders"]["value"] == 3
    assert kpis["buyers"]["value"] == 3
    assert kpis["new_customers"]["value"] == 3
    # Google Ads 120.50 and a direct mailing 1,200.00 (hors-média).
    assert kpis["marketing_cost"]["value"] == pytest.approx(1320.50)
    assert kpis["cac"]["value"] == pytest.approx(1320.50 / 3, abs=0.01)
    assert kpis["nps"]["value"] == pytest.approx(100.0)  # one answer, a 9: a promoter
    assert kpis["revenue"]["previous"] in (0, 0.0, None)  # nothing in February
    assert kpis["revenue"]["change"] is None


def test_filters_narrow_the_figures(client: TestClient, loaded: dict[str, str]) -> None:
    store = _kpis(_get(client, loaded, "kpis", store="paris", **MARCH))
    # Luc's receipt; Jean's click & collect names no store until it is picked up.
    assert store["orders"]["value"] == 1
    assert store["revenue"]["value"] == pytest.approx(30.0)
    online = _kpis(_get(client, loaded, "kpis", channel="web", **MARCH))
    assert online["orders"]["value"] == 2  # Marie's and Jean's orders, placed on the web
    nothing = _kpis(_get(client, loaded, "kpis", **{"from": "2025-01-01", "to": "2025-01-31"}))
    assert nothing["orders"]["value"] == 0


def test_the_cli_gives_the_api_figures(
    client: TestClient, loaded: dict[str, str], data: Path
) -> None:
    api = _get(client, loaded, "channels", by="media_class", **MARCH)
    result = runner.invoke(
        app,
        [
            "report",
            "channels",
            "--by",
            "media_class",
            "--from",
            MARCH["from"],
            "--to",
            MARCH["to"],
            "--format",
            "json",
            "--data",
            str(data),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == api
    table = runner.invoke(app, ["report", "kpis", "--from", "2026-03-01", "--data", str(data)])
    assert table.exit_code == 0, table.output
    assert "154.90 €" in table.output
    csv = runner.invoke(
        app, ["report", "cohorts", "--format", "csv", "--data", str(data), *_period()]
    )
    assert csv.exit_code == 0, csv.output
    assert csv.output.splitlines()[0].startswith("cohort,")


def _period() -> list[str]:
    return ["--from", MARCH["from"], "--to", MARCH["to"]]


def test_every_report_answers_with_its_declared_columns(
    client: TestClient, loaded: dict[str, str]
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for name in reports.names():
        assert f"/api/v1/reports/{name}" in paths
        body = _get(client, loaded, name, **MARCH)
        assert body["report"] == name
        names = [c["name"] for c in body["columns"]]
        for row in body["rows"]:
            assert list(row) == names


def test_bad_parameters_are_named(client: TestClient, loaded: dict[str, str], data: Path) -> None:
    answer = client.get(
        "/api/v1/reports/kpis",
        params={"channel": "telepathy", "compare": "decade", "colour": "blue"},
        headers=loaded,
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"channel", "compare", "colour"}
    backwards = client.get(
        "/api/v1/reports/kpis", params={"from": "2026-03-31", "to": "2026-03-01"}, headers=loaded
    )
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "from"
    segment = client.get("/api/v1/reports/kpis", params={"segment": "vip"}, headers=loaded)
    assert segment.status_code == 422
    assert segment.json()["errors"][0]["field"] == "segment"
    assert client.get("/api/v1/reports/kpis").status_code == 401
    cli = runner.invoke(app, ["report", "kpis", "--channel", "telepathy", "--data", str(data)])
    assert cli.exit_code == 2
    assert "--channel" in cli.output


def test_an_empty_warehouse_says_how_to_fill_it(client: TestClient, admin_token: str) -> None:
    body = _get(client, {"Authorization": f"Bearer {admin_token}"}, "kpis")
    assert body["rows"]
    assert "warehouse sync" in body["notes"][-1]
