"""Collection endpoints (Segment HTTP Tracking API) and the management API of collection."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from omnicanal.auth.api import AdminDep
from omnicanal.collect import service
from omnicanal.collect.ingest import Collector
from omnicanal.collect.schemas import (
    EventPage,
    RejectedEventPage,
    SourceCreate,
    SourceCreated,
    SourceRead,
    StatsRead,
)
from omnicanal.store.session import SessionDep

_OK = b'{"success":true}'
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "A Segment-spec message (or `{batch: [...]}`); gzip accepted.",
    }
}
_CALLS = {
    "identify": "Tie a user to their traits.",
    "track": "Record an action the user performed.",
    "page": "Record a page view.",
    "screen": "Record an app screen view.",
    "group": "Associate a user with a group (household, company).",
    "alias": "Merge two user identities.",
    "batch": "Send many messages in one request (up to 500 KB).",
    "import": "Load historical messages; timestamps are taken as given.",
}

tracking = APIRouter(prefix="/v1", tags=["collection"])
management = APIRouter(prefix="/api/v1", tags=["collection"])


def _collector(request: Request) -> Collector:
    collector: Collector = request.app.state.collector
    return collector


def _route(endpoint: str) -> Any:
    async def collect(request: Request) -> Response:
        await _collector(request).collect(request, endpoint)
        return Response(_OK, media_type="application/json")

    collect.__name__ = f"collect_{endpoint}"
    return collect


for _name, _doc in _CALLS.items():
    tracking.add_api_route(
        f"/{_name}", _route(_name), methods=["POST"], summary=_doc, openapi_extra=_BODY_DOC
    )
for _short in ("i", "t", "p", "s", "g", "a", "b"):
    tracking.add_api_route(f"/{_short}", _route(_short), methods=["POST"], include_in_schema=False)


beacon = APIRouter(prefix="/beacon/v1", tags=["collection"])


@beacon.post(
    "/batch",
    summary="A batch sent by `navigator.sendBeacon` (write key in the query).",
    openapi_extra=_BODY_DOC,
)
async def collect_beacon(request: Request) -> Response:
    """Store a batch from RudderStack's beacon transport: `?writeKey=` authenticates it."""
    await _collector(request).collect(request, "batch", key_in_query=True)
    return Response(_OK, media_type="application/json")


@tracking.post("/m", include_in_schema=False)
async def browser_metrics() -> Response:
    """Accept the browser SDK's own delivery metrics; they are not customer data."""
    return Response(_OK, media_type="application/json")


@management.get("/sources", response_model=list[SourceRead])
def list_sources(_: AdminDep, session: SessionDep) -> list[SourceRead]:
    """List the sources."""
    return service.list_sources(session=session)


@management.post("/sources", response_model=SourceCreated, status_code=201)
def create_source(body: SourceCreate, _: AdminDep, session: SessionDep) -> SourceCreated:
    """Create a source; its write key is in this answer only."""
    return service.create_source(session=session, data=body)


@management.get("/sources/{source_id}", response_model=SourceRead)
def get_source(source_id: int, _: AdminDep, session: SessionDep) -> SourceRead:
    """Read one source."""
    return service.get_source(session=session, source_id=source_id)


@management.post("/sources/{source_id}/disable", response_model=SourceRead)
def disable_source(
    source_id: int, request: Request, _: AdminDep, session: SessionDep
) -> SourceRead:
    """Stop accepting events from a source."""
    disabled = service.disable_source(session=session, source_id=source_id)
    session.commit()  # before the cache is dropped, so no request sees the old state
    _collector(request).forget_keys()
    return disabled


@management.get("/rejected-events", response_model=RejectedEventPage)
def list_rejected(
    _: AdminDep,
    session: SessionDep,
    source_id: int | None = None,
    before: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> RejectedEventPage:
    """List refused messages and requests with their reasons, newest first."""
    return service.list_rejected(session=session, source_id=source_id, before=before, limit=limit)


@management.get("/events", response_model=EventPage)
def list_events(
    _: AdminDep,
    session: SessionDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    source_id: int | None = None,
) -> EventPage:
    """Read the event log in order, after a given event id."""
    return service.list_events(session=session, after=after, limit=limit, source_id=source_id)


@management.get("/stats", response_model=StatsRead)
def stats(request: Request, _: AdminDep, session: SessionDep) -> StatsRead:
    """Count events by type and source, and rejected events."""
    refused = _collector(request).refused_without_source
    return service.stats(session=session, refused_without_source=refused)
