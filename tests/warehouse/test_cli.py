"""`omnicanal warehouse sync|status`, run in-process against a real data folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from omnicanal.cli import warehouse as warehouse_cli
from omnicanal.core.settings import Settings, get_settings
from omnicanal.store.engine import Database
from omnicanal.warehouse.connect import Warehouse
from tests.warehouse.shop import Shop, mirrors

runner = CliRunner()
app = typer.Typer()
warehouse_cli.register(app)


@pytest.fixture
def data(settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("OMNICANAL_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield settings.data_dir
    get_settings.cache_clear()


def run(*args: str) -> str:
    result = runner.invoke(app, ["warehouse", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_sync_and_status(shop: Shop, db: Database, settings: Settings, data: Path) -> None:
    shop.opening_day()
    before = json.loads(run("status", "--json", "--data", str(data)))
    assert (before["exists"], before["store_checkpoint"], before["lag_events"]) == (False, 10, 10)
    assert "No warehouse" in run("status", "--data", str(data))

    synced = json.loads(run("sync", "--json", "--data", str(data)))
    assert synced["tables"]["events"] == {"written": 10, "deleted": 0, "rows": 10}
    assert synced["full"] is False
    mirrors(db, Warehouse.from_settings(settings))

    shown = run("sync", "--data", str(data))
    assert "Warehouse sync" in shown
    assert "0 rows written" in shown

    after = json.loads(run("status", "--json", "--data", str(data)))
    assert (after["exists"], after["lag_events"], after["syncs"]) == (True, 0, 2)
    assert after["watermarks"]["event_id"] == 10
    assert after["rows"]["orders"] == 3
    assert after["last_sync"]["written"] == 0
    assert "lag 0 events" in run("status", "--data", str(data))

    rebuilt = json.loads(run("sync", "--full", "--json", "--data", str(data)))
    assert rebuilt["full"] is True
    assert rebuilt["tables"]["events"]["rows"] == 10


def test_an_unusable_warehouse_path_is_reported_without_a_traceback(
    shop: Shop, data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    monkeypatch.setenv("OMNICANAL_WAREHOUSE__PATH", str(folder))  # a folder, not a file
    get_settings.cache_clear()
    result = runner.invoke(app, ["warehouse", "sync", "--data", str(data)])
    assert result.exit_code == 1
    assert "cannot open the warehouse" in result.output
    assert "Traceback" not in result.output
