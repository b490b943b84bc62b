"""The official browser SDKs, in Chromium, on a page of another origin: only their host changed.

The browser tests serve a page and the vendored SDK (tests/collect/browser/, see its README)
from a static server on `localhost`, point the SDK at the live server on `127.0.0.1` (so CORS
is exercised for real), make every call the SDK has, and read the events back through the
management API. A request to any third host fails the test: everything works offline.
The other tests check the configuration endpoints themselves.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import ConsoleMessage, Page, Request, sync_playwright

from omnicanal.api.app import create_app
from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database
from tests.conftest import LiveServer, SourceKey, make_source
from tests.postgres import free_port

PAGES = Path(__file__).parent / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Any other host fails to resolve, so a stray request never leaves the machine; the test
    # still sees it, and fails. (Routing requests through Playwright instead would have it
    # answer CORS preflights itself, and hide the server's answers.)
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
DEADLINE = 20.0


def _calls(run: str) -> dict[str, Any]:
    """Return the calls a page makes, with identifiers unique to this run."""
    return {
        "anonymousId": f"anon-{run}",
        "userId": f"user-{run}",
        "traits": {"email": f"{run}@example.com", "name": "Ada Lovelace", "plan": "gold"},
        "event": "Order Completed",
        "properties": {
            "order_id": f"order-{run}",
            "revenue": 59.9,
            "currency": "EUR",
            "products": [{"sku": "SKU-1", "quantity": 2}],
        },
        "page": {"category": "Shop", "name": "Product", "properties": {"sku": "SKU-1"}},
        "screen": {"category": "App", "name": "Basket", "properties": {"items": 2}},
        "groupId": f"household-{run}",
        "groupTraits": {"name": "Lovelace household", "members": 3},
    }


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def static_url() -> Iterator[str]:
    """Serve tests/collect/browser/ on another origin than the live server."""
    handler = functools.partial(_QuietHandler, directory=str(PAGES))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@dataclass
class BrowserLog:
    """What the page said and tried: console errors, refused hosts, failed requests."""

    origins: tuple[str, ...]
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_request(self, request: Request) -> None:
        if not request.url.startswith(self.origins):
            self.foreign.append(request.url)


@pytest.fixture
def browser_page(static_url: str, live_server: LiveServer) -> Iterator[tuple[Page, BrowserLog]]:
    """A Chromium page that may reach the static server and the live server only."""
    log = BrowserLog(origins=(static_url + "/", live_server.url + "/"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("request", log.on_request)
        page.on("console", log.on_console)
        page.on("pageerror", lambda exc: log.errors.append(f"uncaught: {exc}"))
        page.on("requestfailed", lambda req: log.failed.append(f"{req.url}: {req.failure}"))
        page.on(
            "response",
            lambda res: (
                log.failed.append(f"{res.url}: {res.status}") if res.status >= 400 else None
            ),
        )
        try:
            yield page, log
        finally:
            browser.close()


def _events(live_server: LiveServer, token: str, source_id: int) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{live_server.url}/api/v1/events",
        params={"limit": 1000, "source_id": source_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _visit(page: Page, log: BrowserLog, sdk: str, key: str, live_server: LiveServer) -> None:
    """Open the SDK's page, pointed at the live server, and make every call."""
    query = urlencode({"api": live_server.url, "key": key})
    page.goto(f"{log.origins[0]}{sdk}.html?{query}")
    page.evaluate("calls => window.runCalls(calls)", _calls(sdk))


def _delivered(
    page: Page, log: BrowserLog, live_server: LiveServer, token: str, *, source_id: int, count: int
) -> list[dict[str, Any]]:
    """Poll the log until `count` events are there, the page reports an error, or time is up."""
    deadline = time.monotonic() + DEADLINE
    events = _events(live_server, token, source_id)
    while len(events) < count and not log.errors and time.monotonic() < deadline:
        # Waiting through Playwright, not time.sleep, lets it deliver the page's events.
        page.wait_for_timeout(200)
        events = _events(live_server, token, source_id)
    return events


def _check(
    events: list[dict[str, Any]], calls: dict[str, Any], log: BrowserLog, types: list[str]
) -> None:
    """Check that each call arrived once, carrying what the page sent."""
    assert not log.errors, log.errors
    assert not log.foreign, f"the page reached for other hosts: {log.foreign}"
    assert not log.failed, log.failed
    assert sorted(e["type"] for e in events) == sorted(types)
    by_type = {e["type"]: e for e in events}
    anonymous = calls["anonymousId"]
    assert {e["anonymous_id"] for e in events} == {anonymous}
    for kind in ("page", "screen"):
        if kind in by_type:
            # Made before identify, but analytics-next adds the user id when it sends.
            assert by_type[kind]["user_id"] in (None, calls["userId"])
            _check_page(by_type[kind]["payload"], calls[kind])
    alias = by_type["alias"]
    assert (alias["user_id"], alias["payload"]["previousId"]) == (calls["userId"], anonymous)
    identify = by_type["identify"]
    assert identify["user_id"] == calls["userId"]
    payload = identify["payload"]
    # Segment puts identify traits at the top level, RudderStack in context.traits.
    assert payload.get("traits", payload["context"].get("traits")) == calls["traits"]
    track = by_type["track"]
    assert (track["user_id"], track["event"]) == (calls["userId"], calls["event"])
    assert track["payload"]["properties"] == calls["properties"]
    group = by_type["group"]
    assert group["user_id"] == calls["userId"]
    assert group["payload"]["groupId"] == calls["groupId"]
    assert group["payload"]["traits"] == calls["groupTraits"]


def _check_page(payload: dict[str, Any], sent: dict[str, Any]) -> None:
    """Check a page or screen call; the SDKs add the page's URL, title... to its properties."""
    assert (payload["category"], payload["name"]) == (sent["category"], sent["name"])
    assert payload["properties"].items() >= sent["properties"].items()


@pytest.mark.browser
def test_analytics_next_sends_here_with_only_its_host_changed(
    live_server, db, admin_token, browser_page
) -> None:
    page, log = browser_page
    source = make_source(db, "analytics-next", "web")
    _visit(page, log, "segment", source.write_key, live_server)
    types = ["page", "screen", "alias", "identify", "track", "group"]
    events = _delivered(page, log, live_server, admin_token, source_id=source.id, count=len(types))
    _check(events, _calls("segment"), log, types)


@pytest.mark.browser
def test_rudderstack_loads_its_source_config_from_here(live_server, db, browser_page) -> None:
    page, log = browser_page
    source = make_source(db, "rudderstack", "web")
    query = urlencode({"api": live_server.url, "key": source.write_key})
    page.goto(f"{log.origins[0]}rudderstack.html?{query}")
    page.wait_for_function("() => window.sdkReady === true", timeout=DEADLINE * 1000)
    assert (log.errors, log.foreign, log.failed) == ([], [], [])


@pytest.mark.browser
def test_rudderstack_sends_here_with_only_its_hosts_changed(
    live_server, db, admin_token, browser_page
) -> None:
    page, log = browser_page
    source = make_source(db, "rudderstack", "web")
    _visit(page, log, "rudderstack", source.write_key, live_server)
    types = ["page", "alias", "identify", "track", "group"]
    events = _delivered(page, log, live_server, admin_token, source_id=source.id, count=len(types))
    _check(events, _calls("rudderstack"), log, types)


def test_segment_settings_name_this_server_and_nothing_secret(client, source: SourceKey) -> None:
    answer = client.get(
        f"/v1/projects/{source.write_key}/settings", headers={"Origin": "https://shop.example"}
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://shop.example"
    settings = answer.json()
    segmentio = settings["integrations"]["Segment.io"]
    assert (segmentio["apiKey"], segmentio["apiHost"], segmentio["protocol"]) == (
        source.write_key,
        "testserver/v1",
        "http",
    )
    assert list(settings["integrations"]) == ["Segment.io"]
    assert settings["metrics"]["host"] == "testserver/v1"
    assert "web" not in answer.text  # the source's name stays private


def test_rudderstack_config_takes_the_key_from_the_query_or_basic_auth(
    client, source: SourceKey
) -> None:
    by_query = client.get("/sourceConfig/", params={"p": "npm", "writeKey": source.write_key})
    by_basic = client.get("/sourceConfig", auth=(source.write_key, ""))
    assert by_query.status_code == by_basic.status_code == 200
    assert by_query.json() == by_basic.json()
    config = by_query.json()["source"]
    assert (config["writeKey"], config["enabled"], config["destinations"]) == (
        source.write_key,
        True,
        [],
    )
    assert config["config"]["statsCollection"]["errors"]["enabled"] is False
    assert client.get("/sourceConfig/").status_code == 401


def test_rudderstack_config_answers_cors_outside_v1(client, source: SourceKey) -> None:
    origin = {"Origin": "https://shop.example"}
    preflight = client.options(
        "/sourceConfig/",
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    answer = client.get("/sourceConfig/", headers=origin, auth=(source.write_key, ""))
    assert answer.headers["access-control-allow-origin"] == "https://shop.example"


@pytest.mark.parametrize(
    "path", ["/v1/projects/oc_wk_nope/settings", "/sourceConfig/?writeKey=oc_wk_nope"]
)
def test_unknown_or_disabled_write_key_is_not_found(
    client, source: SourceKey, admin_token, path: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/collect.unknown-write-key")
    disabled = client.post(
        f"/api/v1/sources/{source.id}/disable", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert disabled.status_code == 200
    assert client.get(path.replace("oc_wk_nope", source.write_key)).status_code == 404


def test_settings_follow_the_public_url(settings: Settings, db: Database, source) -> None:
    public = settings.model_copy(update={"public_url": "https://track.shop.example/oc/"})
    with TestClient(create_app(public, db)) as client:
        answer = client.get(f"/v1/projects/{source.write_key}/settings")
    segmentio = answer.json()["integrations"]["Segment.io"]
    assert (segmentio["apiHost"], segmentio["protocol"]) == ("track.shop.example/oc/v1", "https")
