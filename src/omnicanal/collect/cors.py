"""CORS for the collection endpoints only, so browser SDKs can post from any shop page.

A pure ASGI wrapper: it answers preflights and adds the headers to every response of
/v1, /sourceConfig and /beacon, errors included, without touching the management API.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# SDKs add headers of their own (RudderStack: AnonymousId, SentAt, Rsa-Retry-*); the
# preflight grants whatever the browser asks for, as these endpoints take any origin.
_DEFAULT_HEADERS = b"authorization, content-type, content-encoding"
PREFIXES = ("/v1/", "/sourceConfig", "/beacon/")


class CollectCorsMiddleware:
    """Adds CORS headers to responses under the collection prefixes."""

    def __init__(
        self, app: ASGIApp, *, origins: Iterable[str], prefixes: tuple[str, ...] = PREFIXES
    ) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.prefixes = prefixes

    def _allowed(self, origin: bytes) -> bytes | None:
        text = origin.decode("latin-1")
        if "*" in self.origins or text in self.origins:
            return origin
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        allowed = self._allowed(origin) if origin else None
        if scope["method"] == "OPTIONS" and allowed is not None:
            asked = headers.get(b"access-control-request-headers", _DEFAULT_HEADERS)
            await _preflight(send, allowed, asked)
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


async def _preflight(send: Send, origin: bytes, allow_headers: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", allow_headers),
                (b"access-control-max-age", b"86400"),
                (b"vary", b"Origin"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
