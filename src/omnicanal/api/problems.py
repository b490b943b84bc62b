"""The one place errors become RFC 9457 `application/problem+json`."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from omnicanal.core.errors import OmnicanalError, ServiceUnavailableError, UnauthorizedError

log = logging.getLogger(__name__)
PROBLEM_BASE = "https://omnicanal.dev/problems/"
_TITLES = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 422: "Invalid input"}


def problem(
    status: int,
    *,
    code: str,
    title: str,
    detail: str,
    instance: str,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build a problem-details response."""
    body = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **(extensions or {}),
    }
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def _instance(request: Request) -> str:
    return str(request.url.path)


async def on_omnicanal_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OmnicanalError)
    headers: dict[str, str] | None = None
    if isinstance(exc, UnauthorizedError):
        headers = {"WWW-Authenticate": "Basic, Bearer"}
    elif isinstance(exc, ServiceUnavailableError):  # SDKs retry 5xx, after this delay
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(
        exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=_instance(request),
        extensions=exc.extensions(),
        headers=headers,
    )


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(p) for p in err["loc"][1:]) or str(err["loc"][0]),
            "in": str(err["loc"][0]),
            "reason": err["msg"],
        }
        for err in exc.errors()
    ]
    return problem(
        422,
        code="invalid",
        title="Invalid input",
        detail="; ".join(f"{e['field']}: {e['reason']}" for e in errors),
        instance=_instance(request),
        extensions={"errors": errors},
    )


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = _TITLES.get(exc.status_code, "Error")
    return problem(
        exc.status_code,
        code=f"http-{exc.status_code}",
        title=title,
        detail=str(exc.detail),
        instance=_instance(request),
        headers=dict(exc.headers or {}),
    )


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return problem(
        500,
        code="internal",
        title="Internal error",
        detail="An unexpected error occurred; it has been logged.",
        instance=_instance(request),
    )


def install(app: FastAPI) -> None:
    """Register the problem handlers on an application."""
    app.add_exception_handler(OmnicanalError, on_omnicanal_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
