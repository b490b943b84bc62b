"""From an HTTP request to committed log rows: auth, limits, decoding, validation.

A request is refused whole (400, 401, 413, 415) when it cannot be read; a batch
that can be read is taken message by message: valid messages are stored, each
invalid one is stored among the rejected events with its reason, and the answer
(422) names every invalid message by its index, field and reason.
"""

from __future__ import annotations

import base64
import binascii
import time
import zlib
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from omnicanal.collect import service
from omnicanal.collect.schemas import SourceIdentity
from omnicanal.collect.segment import (
    SHORT_TYPES,
    TYPES,
    Envelope,
    Limits,
    Problem,
    Row,
    normalise,
)
from omnicanal.collect.writer import EventWriter, Job, Rejection
from omnicanal.core.clock import parse_iso8601, utcnow
from omnicanal.core.errors import (
    BadRequestError,
    InvalidError,
    OmnicanalError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from omnicanal.core.settings import CollectSettings
from omnicanal.store.engine import Database

# Each single-call path, long (/v1/track) or as analytics.js shortens it (/v1/t).
ENDPOINTS = {**{call: call for call in TYPES}, **SHORT_TYPES}
BATCH_ENDPOINTS = frozenset({"batch", "import", "b"})
_KEY_TTL = 5.0
_UNKNOWN_KEY_TTL = 5.0


class InvalidEventsError(InvalidError):
    """Some messages of a request were refused; the others were stored."""

    code = "collect.invalid-events"
    title = "Invalid events"

    def __init__(self, errors: list[Problem], *, accepted: int, rejected: int) -> None:
        super().__init__(
            f"{rejected} message(s) refused and kept among the rejected events; {accepted} stored.",
            errors=errors,
        )
        self.accepted, self.rejected = accepted, rejected

    def extensions(self) -> dict[str, Any]:
        return {**super().extensions(), "accepted": self.accepted, "rejected": self.rejected}


class OversizeEventsError(InvalidEventsError):
    """As InvalidEventsError, where a message is above the per-message size limit."""

    status = 413
    code = "collect.event-too-large"
    title = "Event too large"


_BOM = b"\xef\xbb\xbf"
# Bodies are read as JSON whatever they are labelled (curl says form-urlencoded, browser
# SDKs say text/plain to skip the preflight); only multipart forms are refused outright.
_REFUSED_TYPES = ("multipart/",)
_DRAIN_LIMIT = 16 * 1024 * 1024


def _text_sample(raw: bytes, limit: int) -> tuple[str, bool]:
    """Return a storable text sample of raw bytes (no NUL, valid UTF-8) and if it was cut."""
    text = raw[:limit].decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    return text, len(raw) > limit


def _message_sample(msg: Any, limit: int) -> tuple[str, bool]:
    return _text_sample(orjson.dumps(msg), limit)


class Collector:
    """Turns collection requests into log jobs for the writer."""

    def __init__(self, db: Database, settings: CollectSettings, writer: EventWriter) -> None:
        self.db = db
        self.settings = settings
        self.writer = writer
        self.limits = Limits(settings.max_event_bytes, settings.max_depth)
        self.refused_without_source = 0
        self._keys: dict[str, tuple[SourceIdentity | None, float]] = {}

    def forget_keys(self) -> None:
        """Drop cached write keys, so a disabled source is refused at once."""
        self._keys.clear()

    def source_for(self, write_key: str) -> SourceIdentity | None:
        """Return the source of a write key, cached for a few seconds."""
        cached = self._keys.get(write_key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        with self.db.sessions() as session:
            source = service.get_by_write_key(session=session, write_key=write_key)
        self._keys[write_key] = (source, now + (_KEY_TTL if source else _UNKNOWN_KEY_TTL))
        if len(self._keys) > 10_000:
            self._keys.clear()
        return source

    async def collect(self, request: Request, endpoint: str, *, key_in_query: bool = False) -> int:
        """Store what a request carries; return how many messages were new.

        `key_in_query` reads the write key from `?writeKey=`, for beacons, which cannot
        set headers.
        """
        received_at = utcnow()
        source = self._source_from_header(request)
        if source is None and key_in_query and request.query_params.get("writeKey"):
            source = self._known(request.query_params["writeKey"])
        raw = b""
        try:
            raw = await self._read(request)
            body = self._parse(request, raw)
        except OmnicanalError as exc:
            await self._reject_request(exc, source, endpoint, received_at, raw)
            raise
        if source is None:
            source = self._source_from_body(body)
        try:
            messages, env = self._messages(body, source, endpoint, received_at)
        except OmnicanalError as exc:
            await self._reject_request(exc, source, endpoint, received_at, raw)
            raise
        return await self._store(messages, env, source, endpoint)

    def _source_from_header(self, request: Request) -> SourceIdentity | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic" or not token:
            self.refused_without_source += 1
            raise UnauthorizedError("Send the write key as HTTP Basic user, e.g. `-u KEY:`.")
        try:
            user = base64.b64decode(token, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError) as exc:
            self.refused_without_source += 1
            raise UnauthorizedError("The Basic authorization header is not valid base64.") from exc
        return self._known(user)

    def _source_from_body(self, body: dict[str, Any]) -> SourceIdentity:
        key = body.get("writeKey")
        if not isinstance(key, str) or not key:
            self.refused_without_source += 1
            raise UnauthorizedError(
                "No write key: send it as HTTP Basic user or as `writeKey` in the body."
            )
        return self._known(key)

    def _known(self, key: str) -> SourceIdentity:
        source = self.source_for(key)
        if source is None:
            self.refused_without_source += 1
            raise UnauthorizedError("The write key is unknown, or its source is disabled.")
        return source

    async def _read(self, request: Request) -> bytes:
        """Read the body up to the compressed limit; drain the rest so the answer arrives."""
        limit = self.settings.max_compressed_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refuse before reading anything
            raise PayloadTooLargeError(
                f"The body is {declared} bytes; the limit is {limit} bytes per request.",
                limit=limit,
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size <= limit:
                    chunks.append(chunk)
                elif size > _DRAIN_LIMIT:
                    break
        except ClientDisconnect as exc:
            raise BadRequestError(
                "The client closed the connection before the body was complete.",
                errors=[{"field": "(body)", "reason": "incomplete"}],
            ) from exc
        if size > limit:
            raise PayloadTooLargeError(
                f"The body is {size} bytes or more; the limit is {limit} bytes per request.",
                limit=limit,
            )
        return b"".join(chunks)

    def _parse(self, request: Request, raw: bytes) -> dict[str, Any]:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media.startswith(_REFUSED_TYPES):
            raise UnsupportedMediaTypeError(
                f"Content type {media!r} is not read here; send application/json."
            )
        data = self._decompress(raw, request.headers.get("content-encoding", "").strip().lower())
        if data.startswith(_BOM):
            data = data[len(_BOM) :]
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BadRequestError(
                f"The body is not valid JSON: {exc}.",
                errors=[{"field": "(body)", "reason": str(exc)}],
            ) from exc
        if not isinstance(body, dict):
            raise BadRequestError(
                "The body must be a JSON object.",
                errors=[{"field": "(body)", "reason": "must be a JSON object"}],
            )
        return body

    def _decompress(self, raw: bytes, encoding: str) -> bytes:
        limit = self.settings.max_batch_bytes
        if encoding in ("", "identity"):
            data = raw
        elif encoding in ("gzip", "x-gzip", "deflate"):
            data = _inflate(raw, encoding, limit)
        else:
            raise UnsupportedMediaTypeError(
                f"Content encoding {encoding!r} is not read here; use gzip or none."
            )
        if len(data) > limit:
            raise PayloadTooLargeError(
                f"The decoded body is over the limit of {limit} bytes per request.", limit=limit
            )
        return data

    def _messages(
        self, body: dict[str, Any], source: SourceIdentity, endpoint: str, received_at: datetime
    ) -> tuple[list[Any], Envelope]:
        if endpoint not in BATCH_ENDPOINTS:
            return [body], Envelope(source.id, received_at, self.limits)
        batch = body.get("batch")
        if not isinstance(batch, list):
            reason = "is required" if batch is None else "must be an array of messages"
            raise BadRequestError(
                f"`batch` {reason}.", errors=[{"field": "batch", "reason": reason}]
            )
        if len(batch) > self.settings.max_batch_events:
            limit = self.settings.max_batch_events
            raise PayloadTooLargeError(
                f"The batch holds {len(batch)} messages; the limit is {limit}.",
                limit=limit,
                field="batch",
            )
        problems: list[Problem] = []
        for field in ("context", "integrations"):
            if body.get(field) is not None and not isinstance(body[field], dict):
                problems.append({"field": field, "reason": "must be an object"})
        sent_at = body.get("sentAt")
        try:
            sent = parse_iso8601(sent_at) if isinstance(sent_at, str) else None
        except ValueError:
            sent = None
        if sent_at is not None and sent is None:
            problems.append({"field": "sentAt", "reason": "must be an ISO-8601 timestamp"})
        if problems:
            raise BadRequestError("The batch envelope is invalid.", errors=problems)
        return batch, Envelope(
            source.id,
            received_at,
            self.limits,
            sent_at=sent,
            sent_text=sent_at if sent else None,
            context=body.get("context"),
            integrations=body.get("integrations"),
            historical=endpoint == "import",
        )

    async def _store(
        self, messages: list[Any], env: Envelope, source: SourceIdentity, endpoint: str
    ) -> int:
        kind = ENDPOINTS.get(endpoint)
        batch = endpoint in BATCH_ENDPOINTS
        rows: list[Row] = []
        rejections: list[Rejection] = []
        errors: list[Problem] = []
        for index, msg in enumerate(messages):
            result = normalise(msg, kind=kind, env=env)
            if isinstance(result, Row):
                rows.append(result)
                continue
            errors.extend({"index": index, **p} if batch else p for p in result)
            sample, cut = _message_sample(msg, self.settings.rejected_sample_bytes)
            rejections.append(
                Rejection(
                    source.id,
                    env.received_at,
                    endpoint,
                    index if batch else None,
                    413 if any("limit" in p for p in result) else 422,
                    "collect.invalid-event",
                    orjson.dumps(result).decode(),
                    sample,
                    cut,
                )
            )
        stored = await self.writer.submit(Job(source.id, rows, rejections))
        if rejections:
            error = OversizeEventsError if any("limit" in e for e in errors) else InvalidEventsError
            raise error(errors, accepted=len(rows), rejected=len(rejections))
        return stored

    async def _reject_request(
        self,
        exc: OmnicanalError,
        source: SourceIdentity | None,
        endpoint: str,
        received_at: datetime,
        raw: bytes,
    ) -> None:
        """Keep a refused request among the rejected events when its source is known."""
        if source is None:
            self.refused_without_source += 1
            return
        errors = exc.extensions().get("errors") or [{"field": "(body)", "reason": exc.detail}]
        sample, cut = _text_sample(raw, self.settings.rejected_sample_bytes)
        rejection = Rejection(
            source.id,
            received_at,
            endpoint,
            None,
            exc.status,
            f"collect.{exc.code}",
            orjson.dumps(errors).decode(),
            sample,
            cut,
        )
        await self.writer.submit(Job(source.id, [], [rejection]))


def _inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """Decompress with a ceiling, so a small bomb cannot fill the memory.

    A gzip body may hold several members one after another (RFC 1952); anything after
    the last complete member is refused.
    """
    wbits = zlib.MAX_WBITS | (16 if encoding != "deflate" else 0)
    out: list[bytes] = []
    size, rest = 0, raw
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            data = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            raise _unreadable(encoding, "invalid") from exc
        size += len(data)
        out.append(data)
        if size > limit:
            raise PayloadTooLargeError(
                f"The body inflates beyond the limit of {limit} bytes per request.", limit=limit
            )
        if not inflater.eof:
            raise _unreadable(encoding, "truncated")
        rest = inflater.unused_data
        if not rest:
            return b"".join(out)
        if encoding == "deflate" or not rest.startswith(b"\x1f\x8b"):
            raise _unreadable(encoding, "trailing bytes after the compressed data in")


def _unreadable(encoding: str, what: str) -> BadRequestError:
    return BadRequestError(
        f"The body is {what} {encoding}.",
        errors=[{"field": "(body)", "reason": f"{what} {encoding}"}],
    )
