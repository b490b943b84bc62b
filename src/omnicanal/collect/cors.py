"""CORS for the collection endpoints only, so browser SDKs can post from any shop page.

A pure ASGI wrapper: it answers preflights and adds the headers to every /v1
response, errors included, without touching the management API.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALLOW_HEADERS = b"authorization, content-type, content-encoding, anonymousid, x-requested-with"


class CollectCorsMiddleware:
    """Adds CORS headers to responses under `prefix`."""

    def __init__(self, app: ASGIApp, *, origins: Iterable[str], prefix: str = "/v1/") -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.prefix = prefix

    def _allowed(self, origin: bytes) -> bytes | None:
        text = origin.decode("latin-1")
        if "*" in self.origins or text in self.origins:
            return origin
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        allowed = self._allowed(origin) if origin else None
        if scope["method"] == "OPTIONS" and allowed is not None:
            await _preflight(send, allowed)
            return
        if allowed is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"access-control-allow-origin", allowed),
                    (b"access-control-allow-credentials", b"true"),
                    (b"vary", b"Origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _preflight(send: Send, origin: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", _ALLOW_HEADERS),
                (b"access-control-max-age", b"86400"),
                (b"vary", b"Origin"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
