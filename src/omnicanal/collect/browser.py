"""The configuration that browser SDKs fetch before they send a single event.

Segment's analytics-next reads `{cdn}/v1/projects/{writeKey}/settings`, and RudderStack's
JavaScript SDK v3 reads `{configUrl}/sourceConfig/?writeKey=...`. Both answers point the SDK
back at this server and name no destination, so the SDK loads no code from anywhere else.
They hold what the page already has (the write key, the host to send to) and, as RudderStack's
shape requires, the source's id and name; nothing secret.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from omnicanal.collect.ingest import Collector
from omnicanal.collect.schemas import SourceIdentity
from omnicanal.core.errors import NotFoundError, UnauthorizedError

router = APIRouter(tags=["collection"])

# Long enough to spare a request per page view, short enough for a disabled source to stop.
_CACHE = "public, max-age=60"
_RUDDERSTACK_PATHS = ("/sourceConfig/", "/sourceConfig")


class UnknownWriteKeyError(NotFoundError):
    """No enabled source has this write key."""

    code = "collect.unknown-write-key"
    title = "Unknown write key"

    def __init__(self) -> None:
        super().__init__("The write key is unknown, or its source is disabled.")


def _source(request: Request, write_key: str) -> SourceIdentity:
    collector: Collector = request.app.state.collector
    source = collector.source_for(write_key)
    if source is None:
        raise UnknownWriteKeyError
    return source


def _public_base(request: Request) -> str:
    """Return this server's URL as browsers reach it, without a trailing slash."""
    public: str | None = request.app.state.settings.public_url
    return (public or str(request.base_url)).rstrip("/")


@router.get(
    "/v1/projects/{write_key}/settings",
    summary="Settings for Segment's analytics-next, sending its events here.",
    responses={404: {"description": "Unknown or disabled write key."}},
)
def segment_settings(write_key: str, request: Request, response: Response) -> dict[str, Any]:
    """Return the CDN settings with which analytics-next posts to this server."""
    _source(request, write_key)
    response.headers["Cache-Control"] = _CACHE
    return _segment_settings(write_key, _public_base(request))


def _segment_settings(write_key: str, base: str) -> dict[str, Any]:
    scheme, _, host = base.partition("://")
    api_host = f"{host}/v1"
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": scheme,
                "addBundledMetadata": False,
                "unbundledIntegrations": [],
                "maybeBundledConfigIds": {},
            }
        },
        "remotePlugins": [],
        "enabledMiddleware": {},
        "middlewareSettings": {},
        "legacyVideoPluginsEnabled": False,
        # The SDK posts its own metrics over https whatever `protocol` says; they are not
        # customer data, so it sends none, and never to Segment's default host.
        "metrics": {"host": api_host, "sampleRate": 0},
    }


def rudderstack_source_config(
    request: Request,
    response: Response,
    write_key: Annotated[str | None, Query(alias="writeKey")] = None,
) -> dict[str, Any]:
    """Return the source configuration with which RudderStack's SDK posts to dataPlaneUrl."""
    key = write_key or _basic_user(request)
    if not key:
        raise UnauthorizedError("Send the write key as `writeKey` or as HTTP Basic user.")
    source = _source(request, key)
    response.headers["Cache-Control"] = _CACHE
    return {
        "isHosted": False,
        "source": {
            "id": str(source.id),
            "name": source.name,
            "writeKey": key,
            "enabled": True,
            "workspaceId": "omnicanal",
            "config": {
                "statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}
            },
            "destinations": [],
        },
    }


def _basic_user(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(token, validate=True).decode().partition(":")[0] or None
    except (binascii.Error, UnicodeDecodeError):
        return None


for _path in _RUDDERSTACK_PATHS:
    _listed = _path == _RUDDERSTACK_PATHS[0]
    router.add_api_route(
        _path,
        rudderstack_source_config,
        methods=["GET"],
        summary="Source configuration for RudderStack's JavaScript SDK (its `configUrl`).",
        responses={404: {"description": "Unknown or disabled write key."}},
        include_in_schema=_listed,
    )
