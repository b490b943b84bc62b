"""The `omnicanal` command, run in-process against a real data folder."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from typer.testing import CliRunner

from omnicanal.cli.main import app
from omnicanal.core.settings import get_settings

runner = CliRunner()


@pytest.fixture
def data(tmp_path, backend, database_url, monkeypatch):
    monkeypatch.setenv("OMNICANAL_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_sources_tokens_and_stats(data) -> None:
    key = run("sources", "create", "e-shop", "--channel", "web", "--data", str(data)).strip()
    assert key.startswith("oc_wk_")
    listed = json.loads(run("sources", "list", "--json", "--data", str(data)))
    assert [(s["name"], s["channel"]) for s in listed] == [("e-shop", "web")]
    assert key not in json.dumps(listed)
    token = run("tokens", "create", "--data", str(data)).strip()
    assert token.startswith("oc_admin_")
    stats = json.loads(run("stats", "--json", "--data", str(data)))
    assert stats["events"] == 0
    assert stats["sources"][0]["name"] == "e-shop"


def test_unknown_channel_is_refused_with_the_accepted_list(data) -> None:
    result = runner.invoke(app, ["sources", "create", "x", "--channel", "fax", "--data", str(data)])
    assert result.exit_code == 2
    assert "unknown channel 'fax'" in result.output
    assert "store" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_loads_through_the_api_and_reports(data) -> None:
    port = str(_free_port())
    run(
        "demo",
        "--customers",
        "20",
        "--months",
        "3",
        "--no-serve",
        "--port",
        port,
        "--data",
        str(data),
    )
    stats = json.loads(run("stats", "--json", "--data", str(data)))
    assert stats["events"] > 100
    assert stats["rejected"] == 0
    channels = {s["channel"] for s in stats["sources"]}
    assert channels >= {"web", "app", "email", "sms", "push", "import"}
    # Processed: people known, nothing left behind; the till file went through the importer.
    assert stats["profiles"] > 0
    assert stats["unprocessed"] == 0
    assert any(s["name"] == "import-till" and s["events"] for s in stats["sources"])
    assert (data / "ground-truth" / "identifiers.parquet").exists()
    # A second run finds the data loaded and adds nothing.
    run("demo", "--no-serve", "--port", port, "--data", str(data))
    assert json.loads(run("stats", "--json", "--data", str(data)))["events"] == stats["events"]
    tail = run("events", "tail", "--once", "--last", "5", "--data", str(data))
    assert "track" in tail or "identify" in tail
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")


def test_rejected_list_shows_reasons(data, tmp_path) -> None:
    key = run("sources", "create", "till", "--channel", "store:paris-01", "--data", str(data))
    from fastapi.testclient import TestClient

    from omnicanal.api.app import create_app

    with TestClient(create_app(get_settings())) as client:
        answer = client.post("/v1/track", json={"userId": "u"}, auth=(key.strip(), ""))
        assert answer.status_code == 422
    rows = json.loads(run("rejected", "list", "--json", "--data", str(data)))
    assert rows[0]["errors"] == [{"field": "event", "reason": "is required for track calls"}]
    table = run("rejected", "list", "--data", str(data))
    assert "event:" in table
    assert "422" in table


def test_process_then_show_search_unmerge_and_export(data, tmp_path) -> None:
    import base64

    from fastapi.testclient import TestClient

    from omnicanal.api.app import create_app
    from omnicanal.core.settings import Settings

    key = run("sources", "create", "e-shop", "--channel", "web", "--data", str(data)).strip()
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    settings = Settings(data_dir=data, processor={"enabled": False})
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/v1/import",
            headers=auth,
            json={
                "batch": [
                    {"type": "page", "anonymousId": "a1", "timestamp": "2026-05-01T10:00:00Z"},
                    {
                        "type": "identify",
                        "userId": "u1",
                        "traits": {"email": "lea@exemple.fr", "lastName": "Petit"},
                        "timestamp": "2026-05-01T10:01:00Z",
                    },
                    {
                        "type": "identify",
                        "anonymousId": "a1",
                        "traits": {"email": "lea@exemple.fr"},
                        "timestamp": "2026-05-01T10:02:00Z",
                    },
                ]
            },
        )
        assert answer.status_code == 200, answer.text
    stats = json.loads(run("stats", "--json", "--data", str(data)))
    assert stats["unprocessed"] == 3
    assert "3" in run("process", "--once", "--data", str(data))
    stats = json.loads(run("stats", "--json", "--data", str(data)))
    assert (stats["profiles"], stats["unprocessed"]) == (1, 0)
    shown = json.loads(run("profiles", "show", "lea@exemple.fr", "--json", "--data", str(data)))
    assert {i["value"] for i in shown["identities"]} == {"a1", "u1", "lea@exemple.fr"}
    (merge,) = shown["merges"]
    assert merge["rule"] == "shared_identifier"
    assert "Pourquoi ces fiches sont réunies" in run("profiles", "show", "u1", "--data", str(data))
    found = json.loads(run("profiles", "search", "petit", "--json", "--data", str(data)))
    assert [p["id"] for p in found] == [shown["id"]]
    out = tmp_path / "identities.parquet"
    run("identity", "export", str(out), "--data", str(data))
    import pyarrow.parquet as pq

    exported = pq.read_table(out).to_pylist()
    assert {row["person_id"] for row in exported} == {shown["id"]}
    assert "annulée" in run("profiles", "unmerge", str(merge["merged_id"]), "--data", str(data))
    assert json.loads(run("stats", "--json", "--data", str(data)))["profiles"] == 2
    missing = runner.invoke(app, ["profiles", "show", "nobody@exemple.fr", "--data", str(data)])
    assert missing.exit_code == 1
    assert "no profile" in missing.output


def test_identity_match_says_what_each_step_took_then_review_lists_the_doubtful(data) -> None:
    import random

    from omnicanal.api.app import open_database
    from omnicanal.profiles.processor import Processor
    from tests.conftest import make_source
    from tests.identity.test_linkage import _world
    from tests.profiles.logs import write_log

    run("db", "upgrade", "--data", str(data))
    settings = get_settings()
    db = open_database(settings)
    try:
        web, till, _copied = _world(random.Random(3))
        write_log(db, make_source(db, "eshop", "web").id, web)
        write_log(db, make_source(db, "till", "store:lyon").id, till)
        Processor(db).drain()
    finally:
        db.dispose()
    done = json.loads(run("identity", "match", "--json", "--data", str(data)))
    assert done["merged"] > 0
    assert list(done["steps"]) == ["records", "training", "scoring", "merging"]
    assert sum(done["steps"].values()) <= done["seconds"]
    said = run("identity", "match", "--data", str(data))
    for step in ("lecture", "apprentissage", "notation", "fusions et file"):
        assert step in said
    queue = json.loads(run("identity", "review", "--json", "--data", str(data)))
    assert len(queue) == done["queued"]
