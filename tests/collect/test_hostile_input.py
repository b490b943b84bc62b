"""Hostile input to collection: each refusal is a precise 4xx problem and nothing is half-written.

Every case of the battery is sent once through the in-process app, on SQLite and on
PostgreSQL, and then checked the same way: the status, the problem document (field,
reason, limit), the event log (exactly the valid messages), the rejected events (exactly
the refused ones, when the source is known), the exact counters, and a valid request
answered right after. The cases that need a real socket run against `omnicanal serve`.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any, BinaryIO

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer, SourceKey, make_source

PROBLEM = "application/problem+json"
MESSAGE_LIMIT = 32 * 1024
BODY_LIMIT = 500 * 1024
BATCH_LIMIT = 2_500
MAX_DEPTH = 32
FAR_FUTURE = "2999-01-01T00:00:00Z"


# --- building bodies ---------------------------------------------------------------------


def track(message_id: str, **fields: Any) -> dict[str, Any]:
    """Return a valid track message, with `fields` added or replaced."""
    return {"type": "track", "userId": "u1", "event": "Sale", "messageId": message_id, **fields}


def batch(*messages: Any, **envelope: Any) -> dict[str, Any]:
    return {"batch": list(messages), **envelope}


def nested(containers: int, *, array: bool = False) -> Any:
    """Return a value made of `containers` nested objects (or arrays) around a scalar."""
    value: Any = [1] if array else {"leaf": 1}
    for _ in range(containers - 1):
        value = [value] if array else {"n": value}
    return value


def at_depth(message_id: str, depth: int, *, array: bool = False, **fields: Any) -> dict:
    """Return a track message whose deepest container is the `depth`-th, the message being 1st."""
    return track(message_id, properties={"deep": nested(depth - 2, array=array), **fields})


def raw_json(value: Any) -> bytes:
    # The standard library, not orjson: it writes integers beyond 64 bits, NaN and Infinity.
    return json.dumps(value).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6)


@cache
def gzip_bomb() -> bytes:
    """Return 100 MB of zeros gzipped to about 100 KB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    chunk = b"\0" * (1 << 20)
    return b"".join(packer.compress(chunk) for _ in range(100)) + packer.flush()


@cache
def incompressible(size: int) -> bytes:
    return os.urandom(size)


def many_tiny(count: int) -> bytes:
    body = raw_json(batch(*({"type": "t", "anonymousId": "a", "event": "e"} for _ in range(count))))
    assert len(body) < BODY_LIMIT
    return body


def oversize_body() -> bytes:
    # Twenty messages, each under the 32 KB limit, together above the 500 KB limit.
    return raw_json(
        batch(*(track(f"big-{i}", properties={"pad": "x" * 30_000}) for i in range(20)))
    )


# --- the battery ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile request and everything we expect of its answer and its traces."""

    body: Any
    status: int
    endpoint: str = "track"
    errors: frozenset[tuple[int | None, str]] = frozenset()  # (batch index, field)
    field_prefixes: frozenset[str] = frozenset()  # instead of `errors`: each field starts so
    reason: str | None = None  # found in a reason or in the detail, case-insensitive
    limit: int | None = None
    stored: tuple[str, ...] = ()  # the messageIds in the log afterwards
    stored_count: int | None = None  # instead of `stored`, for generated messageIds
    rejected: tuple[int | None, ...] = ()  # batch index of each kept rejection
    auth: str = "basic"  # basic | none | body | header
    headers: dict[str, Any] = field(default_factory=dict)  # a value may be f(write key)
    gzip: bool = False
    seconds: float = 10.0


def bad(*pairs: tuple[int | None, str]) -> frozenset[tuple[int | None, str]]:
    return frozenset(pairs)


def key_header(value: Callable[[str], str]) -> dict[str, Any]:
    return {"auth": "header", "headers": {"Authorization": value}}


def basic(user: bytes) -> str:
    return "Basic " + base64.b64encode(user).decode()


ONE = track("m1")
BODY_400 = {"errors": bad((None, "(body)")), "rejected": (None,)}
MSG_422 = {"status": 422, "rejected": (None,)}

CASES: dict[str, Case] = {
    # Credentials: refused before anything is read, nothing kept (no source to file it under).
    "no-auth": Case(ONE, 401, auth="none", reason="write key"),
    "unknown-write-key": Case(ONE, 401, **key_header(lambda k: basic(b"oc_wk_unknown:"))),
    "unknown-write-key-in-body": Case({**ONE, "writeKey": "oc_wk_unknown"}, 401, auth="none"),
    "empty-write-key-in-body": Case({**ONE, "writeKey": ""}, 401, auth="none"),
    "write-key-in-body-not-a-string": Case({**ONE, "writeKey": {"k": 1}}, 401, auth="none"),
    "basic-not-base64": Case(ONE, 401, **key_header(lambda k: "Basic %%%not-base64%%%")),
    "basic-not-utf8": Case(ONE, 401, **key_header(lambda k: basic(b"\xff\xfe:"))),
    "basic-empty-user": Case(ONE, 401, **key_header(lambda k: basic(b":"))),
    "basic-without-token": Case(ONE, 401, **key_header(lambda k: "Basic")),
    "bearer-instead-of-basic": Case(ONE, 401, **key_header(lambda k: f"Bearer {k}")),
    "write-key-as-raw-header": Case(ONE, 401, **key_header(lambda k: k)),
    # Bodies that cannot be read as one JSON object.
    "malformed-json": Case(b'{"userId": "u1", "event": ', 400, **BODY_400),
    "empty-body": Case(b"", 400, **BODY_400),
    "whitespace-body": Case(b" \r\n\t ", 400, **BODY_400),
    "json-array": Case(b'[{"userId": "u1", "event": "Sale"}]', 400, **BODY_400),
    "json-string": Case(b'"track"', 400, **BODY_400),
    "json-number": Case(b"42", 400, **BODY_400),
    "json-null": Case(b"null", 400, **BODY_400),
    "json-trailing-garbage": Case(raw_json(ONE) + b"}", 400, **BODY_400),
    "two-json-documents": Case(raw_json(ONE) + raw_json(track("m2")), 400, **BODY_400),
    "invalid-utf8": Case(b'{"userId": "\xff\xfe", "event": "Sale"}', 400, **BODY_400),
    "overlong-utf8-nul": Case(b'{"userId": "a\xc0\x80", "event": "Sale"}', 400, **BODY_400),
    "raw-control-character": Case(b'{"userId": "u\x01", "event": "Sale"}', 400, **BODY_400),
    "form-urlencoded": Case(
        b"userId=u1&event=Sale",
        400,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        **BODY_400,
    ),
    "utf8-bom": Case(b"\xef\xbb\xbf" + raw_json(track("bom")), 200, stored=("bom",)),
    "utf8-bom-gzip": Case(
        b"\xef\xbb\xbf" + raw_json(track("bomgz")), 200, stored=("bomgz",), gzip=True
    ),
    # NUL characters, which PostgreSQL text cannot hold.
    "nul-in-value": Case(
        track("m1", properties={"note": "a\x00b"}), errors=bad((None, "properties.note")), **MSG_422
    ),
    "nul-in-key": Case(
        track("m1", properties={"a\x00b": 1}), errors=bad((None, "properties")), **MSG_422
    ),
    "nul-in-user-id": Case(track("m1", userId="u\x00"), errors=bad((None, "userId")), **MSG_422),
    "nul-in-event": Case(track("m1", event="Sale\x00"), errors=bad((None, "event")), **MSG_422),
    "nul-in-message-id": Case(track("m\x00"), errors=bad((None, "messageId")), **MSG_422),
    "nul-in-batch-message": Case(
        batch(track("ok-0"), track("bad-1", properties={"x": ["\x00"]}), track("ok-2")),
        422,
        endpoint="batch",
        errors=bad((1, "properties.x[0]")),
        stored=("ok-0", "ok-2"),
        rejected=(1,),
    ),
    # Wrong types.
    "user-id-object": Case(track("m1", userId={"id": 1}), errors=bad((None, "userId")), **MSG_422),
    "user-id-bool": Case(track("m1", userId=True), errors=bad((None, "userId")), **MSG_422),
    "user-id-array": Case(track("m1", userId=["u1"]), errors=bad((None, "userId")), **MSG_422),
    "user-id-float": Case(track("m1", userId=1.5), errors=bad((None, "userId")), **MSG_422),
    "anonymous-id-object": Case(
        track("m1", userId=None, anonymousId={"a": 1}), errors=bad((None, "anonymousId")), **MSG_422
    ),
    "event-number": Case(track("m1", event=42), errors=bad((None, "event")), **MSG_422),
    "event-null": Case(track("m1", event=None), errors=bad((None, "event")), **MSG_422),
    "properties-array": Case(
        track("m1", properties=[1, 2]), errors=bad((None, "properties")), **MSG_422
    ),
    "properties-string": Case(
        track("m1", properties="{}"), errors=bad((None, "properties")), **MSG_422
    ),
    "traits-string": Case(
        {"userId": "u1", "traits": "vip", "messageId": "m1"},
        endpoint="identify",
        errors=bad((None, "traits")),
        **MSG_422,
    ),
    "context-array": Case(track("m1", context=[]), errors=bad((None, "context")), **MSG_422),
    "integrations-string": Case(
        track("m1", integrations="all"), errors=bad((None, "integrations")), **MSG_422
    ),
    "timestamp-number": Case(
        track("m1", timestamp=1767225600), errors=bad((None, "timestamp")), **MSG_422
    ),
    "message-id-object": Case(
        track("m1", messageId={"id": "m1"}), errors=bad((None, "messageId")), **MSG_422
    ),
    "page-name-number": Case(
        {"anonymousId": "a", "name": 7, "messageId": "m1"},
        endpoint="page",
        errors=bad((None, "name")),
        **MSG_422,
    ),
    "batch-object": Case(
        {"batch": {"0": ONE}}, 400, endpoint="batch", errors=bad((None, "batch")), rejected=(None,)
    ),
    "batch-string": Case(
        {"batch": "[]"}, 400, endpoint="batch", errors=bad((None, "batch")), rejected=(None,)
    ),
    "batch-missing": Case(
        ONE, 400, endpoint="batch", errors=bad((None, "batch")), rejected=(None,)
    ),
    "batch-context-string": Case(
        batch(ONE, context="web"),
        400,
        endpoint="batch",
        errors=bad((None, "context")),
        rejected=(None,),
    ),
    "batch-sent-at-not-a-date": Case(
        batch(ONE, sentAt="soon"),
        400,
        endpoint="batch",
        errors=bad((None, "sentAt")),
        rejected=(None,),
    ),
    "batch-items-not-objects": Case(
        batch(track("ok-0"), "track", 3, None, [], track("ok-5")),
        422,
        endpoint="batch",
        errors=bad((1, "(message)"), (2, "(message)"), (3, "(message)"), (4, "(message)")),
        stored=("ok-0", "ok-5"),
        rejected=(1, 2, 3, 4),
    ),
    # Missing or empty required fields.
    "empty-event": Case(track("m1", event=""), errors=bad((None, "event")), **MSG_422),
    "blank-event": Case(track("m1", event="   "), errors=bad((None, "event")), **MSG_422),
    "missing-event": Case(
        {"userId": "u1", "messageId": "m1"}, errors=bad((None, "event")), **MSG_422
    ),
    "missing-user-and-anonymous-id": Case(
        {"event": "Sale", "messageId": "m1"}, errors=bad((None, "userId")), **MSG_422
    ),
    "empty-user-id": Case(track("m1", userId=""), errors=bad((None, "userId")), **MSG_422),
    "blank-user-id": Case(track("m1", userId="  "), errors=bad((None, "userId")), **MSG_422),
    "alias-without-previous-id": Case(
        {"userId": "u1", "messageId": "m1"},
        endpoint="alias",
        errors=bad((None, "previousId")),
        **MSG_422,
    ),
    "alias-without-user-id": Case(
        {"previousId": "a1", "messageId": "m1"},
        endpoint="alias",
        errors=bad((None, "userId")),
        **MSG_422,
    ),
    "group-without-group-id": Case(
        {"userId": "u1", "messageId": "m1"},
        endpoint="group",
        errors=bad((None, "groupId")),
        **MSG_422,
    ),
    "group-id-object": Case(
        {"userId": "u1", "groupId": {"id": 1}, "messageId": "m1"},
        endpoint="group",
        errors=bad((None, "groupId")),
        **MSG_422,
    ),
    "unknown-type-in-batch": Case(
        batch(track("ok-0"), track("bad-1", type="purchase"), track("ok-2")),
        422,
        endpoint="batch",
        errors=bad((1, "type")),
        reason="purchase",
        stored=("ok-0", "ok-2"),
        rejected=(1,),
    ),
    "missing-type-in-batch": Case(
        batch(track("ok-0"), {"userId": "u1", "event": "Sale", "messageId": "bad-1"}),
        422,
        endpoint="batch",
        errors=bad((1, "type")),
        stored=("ok-0",),
        rejected=(1,),
    ),
    "type-object-in-batch": Case(
        batch(track("bad-0", type={"t": "track"}), track("ok-1")),
        422,
        endpoint="batch",
        errors=bad((0, "type")),
        stored=("ok-1",),
        rejected=(0,),
    ),
    "every-message-bad": Case(
        batch(track("bad-0", event=""), track("bad-1", userId=None)),
        422,
        endpoint="batch",
        errors=bad((0, "event"), (1, "userId")),
        rejected=(0, 1),
    ),
    # Sizes and compression.
    "oversize-message": Case(
        track("m1", properties={"pad": "x" * MESSAGE_LIMIT}),
        413,
        errors=bad((None, "(message)")),
        limit=MESSAGE_LIMIT,
        rejected=(None,),
    ),
    "oversize-message-in-batch": Case(
        batch(
            track("ok-0"), track("big-1", properties={"pad": "x" * MESSAGE_LIMIT}), track("ok-2")
        ),
        413,
        endpoint="batch",
        errors=bad((1, "(message)")),
        limit=MESSAGE_LIMIT,
        stored=("ok-0", "ok-2"),
        rejected=(1,),
    ),
    "oversize-body": Case(
        oversize_body,
        413,
        endpoint="batch",
        errors=bad((None, "(body)")),
        limit=BODY_LIMIT,
        rejected=(None,),
    ),
    "oversize-body-gzip": Case(
        oversize_body,
        413,
        endpoint="batch",
        gzip=True,
        errors=bad((None, "(body)")),
        limit=BODY_LIMIT,
        rejected=(None,),
    ),
    "oversize-compressed-body": Case(
        lambda: incompressible(BODY_LIMIT + 1024),
        413,
        endpoint="batch",
        headers={"Content-Encoding": "gzip"},
        errors=bad((None, "(body)")),
        limit=BODY_LIMIT,
        rejected=(None,),
    ),
    "gzip-bomb": Case(
        gzip_bomb,
        413,
        endpoint="batch",
        headers={"Content-Encoding": "gzip"},
        errors=bad((None, "(body)")),
        limit=BODY_LIMIT,
        rejected=(None,),
        seconds=2.0,
    ),
    "corrupt-gzip": Case(
        b"\x1f\x8b\x08\x00" + b"\xde\xad\xbe\xef" * 64,
        400,
        headers={"Content-Encoding": "gzip"},
        **BODY_400,
    ),
    "truncated-gzip": Case(
        gz(raw_json(batch(*(track(f"m{i}") for i in range(50)))))[:-40],
        400,
        endpoint="batch",
        headers={"Content-Encoding": "gzip"},
        reason="truncated",
        **BODY_400,
    ),
    "gzip-declared-plain-body": Case(
        raw_json(ONE), 400, headers={"Content-Encoding": "gzip"}, **BODY_400
    ),
    "gzip-with-trailing-garbage": Case(
        gz(raw_json(ONE)) + b"garbage", 400, headers={"Content-Encoding": "gzip"}, **BODY_400
    ),
    "gzip-two-members": Case(
        gz(b'{"userId": "u1", ') + gz(b'"event": "Sale", "messageId": "gz2"}'),
        200,
        headers={"Content-Encoding": "gzip"},
        stored=("gz2",),
    ),
    "deflate-encoding": Case(
        zlib.compress(raw_json(track("zz"))),
        200,
        headers={"Content-Encoding": "deflate"},
        stored=("zz",),
    ),
    "brotli-encoding": Case(
        raw_json(ONE), 415, headers={"Content-Encoding": "br"}, reason="br", rejected=(None,)
    ),
    "compress-encoding": Case(
        raw_json(ONE), 415, headers={"Content-Encoding": "compress"}, rejected=(None,)
    ),
    "stacked-encodings": Case(
        gz(gz(raw_json(ONE))), 415, headers={"Content-Encoding": "gzip, gzip"}, rejected=(None,)
    ),
    "multipart-body": Case(
        b'--xx\r\nContent-Disposition: form-data; name="batch"\r\n\r\n[]\r\n--xx--\r\n',
        415,
        endpoint="batch",
        headers={"Content-Type": "multipart/form-data; boundary=xx"},
        rejected=(None,),
    ),
    # Nesting: the message is level 1; 32 levels are allowed, whatever else it holds.
    "depth-32": Case(at_depth("d32", MAX_DEPTH), 200, stored=("d32",)),
    "depth-32-with-a-sibling-list": Case(
        at_depth("d32", MAX_DEPTH, tags=["a"]), 200, stored=("d32",)
    ),
    "depth-33": Case(
        at_depth("m1", MAX_DEPTH + 1),
        field_prefixes=frozenset({"properties.deep"}),
        reason="deeper",
        **MSG_422,
    ),
    "depth-33-arrays": Case(
        at_depth("m1", MAX_DEPTH + 1, array=True),
        field_prefixes=frozenset({"properties.deep"}),
        reason="deeper",
        **MSG_422,
    ),
    "depth-33-in-batch": Case(
        batch(track("ok-0"), at_depth("bad-1", MAX_DEPTH + 1)),
        422,
        endpoint="batch",
        field_prefixes=frozenset({"properties.deep"}),
        stored=("ok-0",),
        rejected=(1,),
    ),
    "depth-5000": Case(
        b'{"userId": "u1", "event": "Sale", "properties": {"deep": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}}",
        400,
        reason="depth",
        **BODY_400,
    ),
    # Numbers beyond ±2^53 and non-finite literals.
    "integer-1e30": Case(
        raw_json(track("m1", properties={"big": 10**30})),
        errors=bad((None, "properties.big")),
        reason="2^53",
        **MSG_422,
    ),
    "integer-minus-1e30": Case(
        raw_json(track("m1", properties={"big": -(10**30)})),
        errors=bad((None, "properties.big")),
        **MSG_422,
    ),
    "integer-2-53-plus-1": Case(
        raw_json(track("m1", properties={"big": 2**53 + 1})),
        errors=bad((None, "properties.big")),
        **MSG_422,
    ),
    "float-1e308": Case(
        track("m1", properties={"big": 1e308}), errors=bad((None, "properties.big")), **MSG_422
    ),
    "float-1e20-in-list": Case(
        track("m1", properties={"prices": [1.5, 1e20]}),
        errors=bad((None, "properties.prices[1]")),
        **MSG_422,
    ),
    "integer-1e30-in-batch": Case(
        raw_json(batch(track("bad-0", properties={"big": 10**30}), track("ok-1"))),
        422,
        endpoint="batch",
        errors=bad((0, "properties.big")),
        stored=("ok-1",),
        rejected=(0,),
    ),
    "integer-user-id-1e30": Case(
        raw_json(track("m1", userId=10**30)), errors=bad((None, "userId")), **MSG_422
    ),
    "nan-literal": Case(
        b'{"userId": "u1", "event": "Sale", "properties": {"x": NaN}}', 400, **BODY_400
    ),
    "infinity-literal": Case(
        b'{"userId": "u1", "event": "Sale", "properties": {"x": Infinity}}', 400, **BODY_400
    ),
    "minus-infinity-literal": Case(
        b'{"userId": "u1", "event": "Sale", "properties": {"x": -Infinity}}', 400, **BODY_400
    ),
    # Timestamps.
    "timestamp-not-a-date": Case(
        track("m1", timestamp="yesterday"), errors=bad((None, "timestamp")), **MSG_422
    ),
    "timestamp-empty": Case(track("m1", timestamp=""), errors=bad((None, "timestamp")), **MSG_422),
    "timestamp-year-0001": Case(
        track("m1", timestamp="0001-01-01T00:00:00Z"), errors=bad((None, "timestamp")), **MSG_422
    ),
    "timestamp-year-0001-east-of-utc": Case(
        track("m1", timestamp="0001-01-01T00:00:00+01:00"),
        errors=bad((None, "timestamp")),
        **MSG_422,
    ),
    "timestamp-year-9999-west-of-utc": Case(
        track("m1", timestamp="9999-12-31T23:59:59-01:00"),
        errors=bad((None, "timestamp")),
        **MSG_422,
    ),
    "timestamp-far-future": Case(
        track("m1", timestamp=FAR_FUTURE),
        errors=bad((None, "timestamp")),
        reason="future",
        **MSG_422,
    ),
    "timestamp-month-13": Case(
        track("m1", timestamp="2026-13-45T00:00:00Z"), errors=bad((None, "timestamp")), **MSG_422
    ),
    "timestamp-year-10000": Case(
        track("m1", timestamp="10000-01-01T00:00:00Z"), errors=bad((None, "timestamp")), **MSG_422
    ),
    "sent-at-not-a-date": Case(track("m1", sentAt="now"), errors=bad((None, "sentAt")), **MSG_422),
    "clock-skew-beyond-the-calendar": Case(
        track("m1", timestamp="1970-01-01T00:00:00Z", sentAt="9999-12-31T00:00:00Z"),
        field_prefixes=frozenset({"timestamp", "sentAt"}),
        **MSG_422,
    ),
    "far-future-in-batch": Case(
        batch(track("ok-0"), track("bad-1", timestamp=FAR_FUTURE)),
        422,
        endpoint="batch",
        errors=bad((1, "timestamp")),
        stored=("ok-0",),
        rejected=(1,),
    ),
    # Message counts: 2,500 per batch at most, however small the messages.
    "batch-of-2500": Case(
        raw_json(batch(*(track(f"m{i}") for i in range(BATCH_LIMIT)))),
        200,
        endpoint="batch",
        stored=tuple(f"m{i}" for i in range(BATCH_LIMIT)),
    ),
    "batch-of-2501": Case(
        raw_json(batch(*(track(f"m{i}") for i in range(BATCH_LIMIT + 1)))),
        413,
        endpoint="batch",
        errors=bad((None, "batch")),
        limit=BATCH_LIMIT,
        rejected=(None,),
    ),
    "batch-of-10000-tiny-events": Case(
        lambda: many_tiny(10_000),
        413,
        endpoint="batch",
        errors=bad((None, "batch")),
        limit=BATCH_LIMIT,
        rejected=(None,),
        seconds=2.0,
    ),
    # Identifiers and strings.
    "user-id-255-chars": Case(track("m1", userId="u" * 255), 200, stored=("m1",)),
    "user-id-256-chars": Case(
        track("m1", userId="u" * 256), errors=bad((None, "userId")), **MSG_422
    ),
    "anonymous-id-10000-chars": Case(
        track("m1", userId=None, anonymousId="a" * 10_000),
        errors=bad((None, "anonymousId")),
        **MSG_422,
    ),
    "message-id-256-chars": Case(track("m" * 256), errors=bad((None, "messageId")), **MSG_422),
    "event-256-chars": Case(track("m1", event="e" * 256), errors=bad((None, "event")), **MSG_422),
    "lone-high-surrogate": Case(
        b'{"userId": "\\ud800", "event": "Sale", "messageId": "m1"}', 400, **BODY_400
    ),
    "lone-low-surrogate-in-property": Case(
        b'{"userId": "u1", "event": "Sale", "properties": {"x": "a\\udc00b"}}', 400, **BODY_400
    ),
    "surrogate-pair": Case(
        b'{"userId": "\\ud83d\\ude00", "event": "Sale", "messageId": "emoji"}',
        200,
        stored=("emoji",),
    ),
    "duplicate-keys": Case(
        b'{"userId": "first", "event": "Sale", "messageId": "dup", "userId": "second"}',
        200,
        stored=("dup",),
    ),
    "duplicate-message-id-in-batch": Case(
        batch(track("same", properties={"n": 1}), track("same", properties={"n": 2})),
        200,
        endpoint="batch",
        stored=("same",),
    ),
    "no-message-id": Case({"userId": "u1", "event": "Sale"}, 200, stored_count=1),
}


# --- reading what the server kept ------------------------------------------------------------


def admin(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read_events(http: TestClient | httpx.Client, token: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = http.get(
            "/api/v1/events", params={"after": after, "limit": 1000}, headers=admin(token)
        )
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        if not items:
            return events
        events.extend(items)
        after = page.json()["next_after"]


def read_rejected(http: TestClient | httpx.Client, token: str) -> list[dict[str, Any]]:
    page = http.get("/api/v1/rejected-events", params={"limit": 1000}, headers=admin(token))
    assert page.status_code == 200, page.text
    return sorted(page.json()["items"], key=lambda r: r["id"])


def read_stats(http: TestClient | httpx.Client, token: str) -> dict[str, Any]:
    answer = http.get("/api/v1/stats", headers=admin(token))
    assert answer.status_code == 200, answer.text
    return answer.json()


def send_valid(http: TestClient | httpx.Client, key: str, message_id: str = "after") -> None:
    """The server answers a valid request right after a hostile one."""
    answer = http.post("/v1/track", json=track(message_id), auth=(key, ""))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True}


# --- checking one answer ---------------------------------------------------------------------


def _request(case: Case, key: str) -> tuple[bytes, dict[str, str], tuple[str, str] | None]:
    body = case.body() if callable(case.body) else case.body
    if case.auth == "body" and isinstance(body, dict):
        body = {**body, "writeKey": key}
    raw = body if isinstance(body, bytes) else raw_json(body)
    headers = {"Content-Type": "application/json"}
    for name, value in case.headers.items():
        headers[name] = value(key) if callable(value) else value
    if case.gzip:
        raw, headers["Content-Encoding"] = gz(raw), "gzip"
    return raw, headers, ((key, "") if case.auth == "basic" else None)


def check_problem(answer: httpx.Response, case: Case) -> dict[str, Any]:
    assert answer.status_code == case.status, answer.text[:2000]
    if case.status == 200:
        assert answer.json() == {"success": True}
        return {}
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert problem["status"] == case.status
    assert isinstance(problem["detail"], str)
    assert problem["detail"]
    errors = problem.get("errors", [])
    for error in errors:
        assert isinstance(error["field"], str)
        assert error["field"]
        assert isinstance(error["reason"], str)
        assert error["reason"]
    found = {(e.get("index"), e["field"]) for e in errors}
    if case.errors:
        assert found == set(case.errors), errors
    if case.field_prefixes:
        assert errors, problem
        assert all(f.startswith(tuple(case.field_prefixes)) for _, f in found), errors
    if case.reason is not None:
        texts = [problem["detail"], *(e["reason"] for e in errors)]
        assert any(case.reason.lower() in t.lower() for t in texts), problem
    if case.limit is not None:
        limits = [problem.get("limit"), *(e.get("limit") for e in errors)]
        assert case.limit in limits, problem
    if case.status == 401:
        assert "www-authenticate" in answer.headers
    return problem


def check_traces(
    http: TestClient | httpx.Client,
    case: Case,
    problem: dict[str, Any],
    source: SourceKey,
    token: str,
) -> None:
    """The log holds exactly the valid messages, the rejected list exactly the refused ones."""
    events = read_events(http, token)
    ids = [e["message_id"] for e in events]
    if case.stored_count is None:
        assert sorted(ids) == sorted([*case.stored, "after"])
    else:
        assert len(ids) == case.stored_count + 1
    assert all(e["source_id"] == source.id for e in events)
    for event in events:  # the columns and the stored payload tell the same story
        assert event["payload"]["messageId"] == event["message_id"]
        assert event["payload"].get("userId") == event["user_id"]
    rejected = read_rejected(http, token)
    indexes = [r["batch_index"] for r in rejected]
    assert sorted(indexes, key=str) == sorted(case.rejected, key=str)
    by_index = {}
    for error in problem.get("errors", []):
        by_index.setdefault(error.get("index"), set()).add(error["field"])
    for row in rejected:
        assert row["source_id"] == source.id
        assert row["endpoint"] == case.endpoint
        if row["batch_index"] is None:
            assert row["status"] == case.status
        else:
            limited = any("limit" in e for e in row["errors"])
            assert row["status"] == (413 if limited else 422)
        if by_index:
            assert {e["field"] for e in row["errors"]} == by_index[row["batch_index"]]
    if case.status == 422 or (case.status == 413 and case.limit == MESSAGE_LIMIT):
        assert problem["accepted"] == len(case.stored)
        assert problem["rejected"] == len(case.rejected)
    stats = read_stats(http, token)
    assert stats["events"] == len(events)
    assert stats["rejected"] == len(rejected)
    assert stats["refused_without_source"] == (1 if case.status == 401 else 0)


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items()])
def test_hostile_request(client: TestClient, source: SourceKey, admin_token: str, case: Case):
    raw, headers, auth = _request(case, source.write_key)
    started = time.monotonic()
    answer = client.post(f"/v1/{case.endpoint}", content=raw, headers=headers, auth=auth)
    assert time.monotonic() - started < case.seconds
    problem = check_problem(answer, case)
    send_valid(client, source.write_key)
    check_traces(client, case, problem, source, admin_token)


# --- behaviours a user relies on ----------------------------------------------------------------


@pytest.mark.parametrize("used_before", [False, True], ids=["never-used", "used-before"])
def test_disabled_source_is_refused_at_once(client, source, admin_token, used_before) -> None:
    """Disabling a source stops its events from the next request on, cached key or not."""
    if used_before:
        send_valid(client, source.write_key, "before")
    answer = client.post(f"/api/v1/sources/{source.id}/disable", headers=admin(admin_token))
    assert answer.status_code == 200
    for auth in ("basic", "body"):
        case = Case(track(f"m-{auth}"), 401, auth=auth)
        raw, headers, basic_auth = _request(case, source.write_key)
        refused = client.post("/v1/track", content=raw, headers=headers, auth=basic_auth)
        check_problem(refused, case)
    assert [e["message_id"] for e in read_events(client, admin_token)] == (
        ["before"] if used_before else []
    )
    assert read_rejected(client, admin_token) == []
    assert read_stats(client, admin_token)["refused_without_source"] == 2


def test_retry_after_partial_rejection_stores_nothing_twice(client, source, admin_token) -> None:
    messages = [track("r-0"), track("r-1", event=""), track("r-2"), track("r-3", timestamp="x")]
    for _ in range(3):
        answer = client.post("/v1/batch", json=batch(*messages), auth=(source.write_key, ""))
        assert answer.status_code == 422
        assert answer.json()["accepted"] == 2
        assert {e["index"] for e in answer.json()["errors"]} == {1, 3}
    assert sorted(e["message_id"] for e in read_events(client, admin_token)) == ["r-0", "r-2"]
    # Each attempt is on file: the operator sees that the client kept retrying.
    kept = sorted(r["batch_index"] for r in read_rejected(client, admin_token))
    assert kept == [1] * 3 + [3] * 3
    fixed = [track("r-0"), track("r-1"), track("r-2"), track("r-3")]
    answer = client.post("/v1/batch", json=batch(*fixed), auth=(source.write_key, ""))
    assert answer.status_code == 200
    events = read_events(client, admin_token)
    assert sorted(e["message_id"] for e in events) == ["r-0", "r-1", "r-2", "r-3"]
    stats = read_stats(client, admin_token)
    assert stats["events_by_type"] == {"track": 4}
    assert stats["rejected"] == 6


def test_retry_keeps_the_first_version_of_a_message(client, source, admin_token) -> None:
    first = track("same", properties={"version": 1})
    second = track("same", properties={"version": 2})
    for body in (first, second, first):
        assert client.post("/v1/track", json=body, auth=(source.write_key, "")).status_code == 200
    (event,) = read_events(client, admin_token)
    assert event["payload"]["properties"] == {"version": 1}
    assert read_stats(client, admin_token)["events_by_type"] == {"track": 1}


def test_same_message_id_from_two_sources_is_two_events(client, db, source, admin_token) -> None:
    other = make_source(db, name="till", channel="store:paris-01")
    for key in (source.write_key, other.write_key, source.write_key):
        assert client.post("/v1/track", json=track("shared"), auth=(key, "")).status_code == 200
    events = read_events(client, admin_token)
    assert sorted(e["source_id"] for e in events) == sorted([source.id, other.id])


def test_a_rejected_message_keeps_its_content_for_inspection(client, source, admin_token) -> None:
    bad = track("inspect-me", properties={"note": "kept"}, timestamp="not a date")
    answer = client.post("/v1/batch", json=batch(track("ok"), bad), auth=(source.write_key, ""))
    assert answer.status_code == 422
    (row,) = read_rejected(client, admin_token)
    assert row["batch_index"] == 1
    assert json.loads(row["payload"])["messageId"] == "inspect-me"
    assert row["errors"] == [{"field": "timestamp", "reason": answer.json()["errors"][0]["reason"]}]


# --- whatever a client sends ---------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def _instants(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    minutes = draw(st.integers(min_value=-14 * 60, max_value=14 * 60))
    return moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()


_fields = {
    "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "t", "x"]),
    "userId": st.one_of(st.text(max_size=300), _values),
    "anonymousId": st.one_of(st.text(max_size=8), _values),
    "event": st.one_of(st.text(max_size=300), _values),
    "name": _values,
    "groupId": _values,
    "previousId": _values,
    "properties": _values,
    "traits": _values,
    "context": _values,
    "timestamp": st.one_of(_instants(), st.text(max_size=30), _values),
    "sentAt": st.one_of(_instants(), _values),
}
_messages = st.fixed_dictionaries({}, optional=_fields) | _values


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(_messages, max_size=6), sent_at=st.none() | _instants())
def test_any_batch_is_stored_or_refused_precisely(
    client, source, admin_token, messages, sent_at
) -> None:
    """Any batch: 200 or a precise 4xx, and the counters move by exactly what the answer says."""
    for message in messages:
        if isinstance(message, dict):  # unique, so a retry never hides a stored message
            message["messageId"] = f"fuzz-{time.monotonic_ns()}-{id(message)}"
    body = batch(*messages, **({"sentAt": sent_at} if sent_at else {}))
    before = read_stats(client, admin_token)
    answer = client.post("/v1/batch", content=raw_json(body), auth=(source.write_key, ""))
    after = read_stats(client, admin_token)
    stored = after["events"] - before["events"]
    rejected = after["rejected"] - before["rejected"]
    assert answer.status_code in (200, 400, 413, 422), answer.text
    if answer.status_code == 200:
        assert (stored, rejected) == (len(messages), 0)
        return
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert all(e["field"] and e["reason"] for e in problem["errors"])
    if answer.status_code == 400:  # the envelope itself (sentAt) is refused
        assert (stored, rejected) == (0, 1)
        return
    named = {e["index"] for e in problem["errors"]}
    assert (problem["accepted"], problem["rejected"]) == (stored, rejected)
    assert (stored + rejected, len(named)) == (len(messages), rejected)


# --- through a real socket --------------------------------------------------------------------


def _auth_header(key: str) -> str:
    return basic(f"{key}:".encode())


def _connect(server: LiveServer, timeout: float = 5.0) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _head(key: str, endpoint: str, length: int | None, *extra: str) -> bytes:
    lines = [
        f"POST /v1/{endpoint} HTTP/1.1",
        "Host: localhost",
        f"Authorization: {_auth_header(key)}",
        "Content-Type: application/json",
        *([f"Content-Length: {length}"] if length is not None else []),
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_answer(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response from `sock.makefile("rb")`; skip interim 1xx answers."""
    while True:
        status_line = stream.readline()
        if not status_line:
            raise ConnectionError("closed without an answer")
        status = int(status_line.split()[1])
        headers = {}
        while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if not 100 <= status < 200:
            return status, headers, stream.read(int(headers.get("content-length", "0")))


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    with sock.makefile("rb") as stream:
        return _read_answer(stream)


def _server_peak_rss(server: LiveServer) -> int:
    """Return the server's peak resident memory (VmHWM), or its current one off Linux."""
    assert server.process is not None
    status = f"/proc/{server.process.pid}/status"
    if os.path.exists(status):
        with open(status) as lines:
            for line in lines:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return int(psutil.Process(server.process.pid).memory_info().rss)


def _log_text(server: LiveServer) -> str:
    return (server.data_dir / "server.log").read_text(errors="replace")


@pytest.fixture
def live(live_server: LiveServer, source: SourceKey, admin_token: str) -> Any:
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        yield live_server, http, source, admin_token


def _assert_only(http: httpx.Client, token: str, message_ids: list[str]) -> None:
    assert sorted(e["message_id"] for e in read_events(http, token)) == sorted(message_ids)


def test_live_truncated_body_stores_nothing(live) -> None:
    server, http, source, token = live
    body = raw_json(batch(*(track(f"t{i}") for i in range(20))))
    for cut in (1, len(body) // 2, len(body) - 1):
        with _connect(server) as sock:
            sock.sendall(_head(source.write_key, "batch", len(body)) + body[:cut])
            sock.shutdown(socket.SHUT_WR)
            try:
                status: int | None = _answer(sock)[0]
            except OSError:  # ConnectionError and TimeoutError too: no answer
                status = None
        assert status is None or 400 <= status < 500
    send_valid(http, source.write_key)
    _assert_only(http, token, ["after"])
    # A client that hangs up is the network's doing, not a server error.
    assert "unexpected error" not in _log_text(server)
    assert "Traceback" not in _log_text(server)


def test_live_body_over_the_limit_sent_for_real(live) -> None:
    _server, http, source, token = live
    body = oversize_body() * 2
    answer = http.post("/v1/batch", content=body, auth=(source.write_key, ""))
    assert answer.status_code == 413
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["limit"] == BODY_LIMIT
    send_valid(http, source.write_key)
    _assert_only(http, token, ["after"])
    assert len(read_rejected(http, token)) == 1


def test_live_chunked_body_over_the_limit(live) -> None:
    _server, http, source, token = live

    def chunks() -> Any:
        yield b'{"batch": ['
        for i in range(200):
            yield raw_json(track(f"c{i}", properties={"pad": "x" * 4000})) + b","
        yield raw_json(track("last")) + b"]}"

    answer = http.post("/v1/batch", content=chunks(), auth=(source.write_key, ""))
    assert answer.status_code == 413
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["limit"] == BODY_LIMIT
    send_valid(http, source.write_key)
    _assert_only(http, token, ["after"])


@pytest.mark.parametrize("expect_continue", [False, True], ids=["plain", "expect-100-continue"])
def test_live_declared_huge_length_is_refused_at_once(live, expect_continue) -> None:
    """A Content-Length of 100 MB is refused from the headers, not after reading the body."""
    server, http, source, token = live
    extra = ("Expect: 100-continue",) if expect_continue else ()
    with _connect(server, timeout=3) as sock:
        sock.sendall(_head(source.write_key, "batch", 100_000_000, *extra))
        if not expect_continue:
            sock.sendall(b'{"batch": [' + b" " * 65536)
        try:
            status, headers, body = _answer(sock)
        except TimeoutError:
            pytest.fail("no answer within 3 s: the server waits for 100 MB it will refuse")
    assert status == 413
    assert headers["content-type"] == PROBLEM
    assert json.loads(body)["limit"] == BODY_LIMIT
    send_valid(http, source.write_key)
    _assert_only(http, token, ["after"])


def test_live_gzip_bomb_keeps_memory_flat(live) -> None:
    server, http, source, token = live
    bomb = gzip_bomb()
    assert len(bomb) < 200_000
    send_valid(http, source.write_key, "warm-up")
    before = _server_peak_rss(server)
    for _ in range(5):
        started = time.monotonic()
        answer = http.post(
            "/v1/batch",
            content=bomb,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            auth=(source.write_key, ""),
        )
        assert time.monotonic() - started < 2
        assert answer.status_code == 413
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["limit"] == BODY_LIMIT
    assert _server_peak_rss(server) - before < 64 * 2**20
    send_valid(http, source.write_key)
    _assert_only(http, token, ["warm-up", "after"])
    assert len(read_rejected(http, token)) == 5


def test_live_slow_sender_does_not_hold_up_others(live) -> None:
    server, http, source, token = live
    body = raw_json(track("slow"))
    with _connect(server, timeout=10) as slow:
        slow.sendall(_head(source.write_key, "track", len(body)))
        for i, byte in enumerate(body):
            slow.sendall(bytes([byte]))
            if i == len(body) // 2:
                # Half a body is on the wire: another client is served meanwhile.
                started = time.monotonic()
                send_valid(http, source.write_key, "fast")
                assert time.monotonic() - started < 1
            time.sleep(0.01)
        status, _headers, answer = _answer(slow)
    assert status == 200
    assert json.loads(answer) == {"success": True}
    _assert_only(http, token, ["fast", "slow"])


def test_live_idle_and_half_open_connections(live) -> None:
    server, http, source, token = live
    idle = [_connect(server) for _ in range(100)]
    try:
        for i, sock in enumerate(idle):
            if i % 2:  # half of them stop in the middle of their headers
                sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: localhost\r\nContent-Le")
        started = time.monotonic()
        send_valid(http, source.write_key)
        assert time.monotonic() - started < 2
    finally:
        for sock in idle:
            sock.close()
    send_valid(http, source.write_key, "after-close")
    _assert_only(http, token, ["after", "after-close"])


def test_live_pipelined_requests_are_each_answered(live) -> None:
    server, http, source, token = live
    requests = b""
    for i in range(50):
        body = raw_json(track(f"p{i}"))
        requests += _head(source.write_key, "track", len(body)) + body
    with _connect(server) as sock:
        sock.sendall(requests)
        with sock.makefile("rb") as answers:
            statuses = [_read_answer(answers)[0] for _ in range(50)]
    assert statuses == [200] * 50
    _assert_only(http, token, [f"p{i}" for i in range(50)])


GARBAGE = {
    "tls-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
    "http-9": b"GET / HTTP/9.9\r\n\r\n",
    "negative-length": b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "two-lengths": b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Content-Length: 6\r\n\r\nhello!",
    "length-and-chunked": b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-chunk-size": b"POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nhello\r\n0\r\n\r\n",
    "header-of-1mb": b"POST /v1/track HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2**20 + b"\r\n\r\n",
}


def test_live_garbage_on_the_wire(live) -> None:
    """Each input: a 4xx or a closed connection, no traceback, and the next client served."""
    server, http, source, token = live
    outcomes = {}
    for i, (name, garbage) in enumerate(GARBAGE.items()):
        logged = len(_log_text(server))
        with _connect(server) as sock:
            sock.sendall(garbage)
            try:
                status: int | None = _answer(sock)[0]
            except OSError:
                status = None  # closing the connection is a fine answer to garbage
        send_valid(http, source.write_key, f"after-{i}")
        traceback = "Traceback" in _log_text(server)[logged:]
        outcomes[name] = (status, traceback)
    bad = {n: o for n, o in outcomes.items() if not (o[0] is None or 400 <= o[0] < 500) or o[1]}
    assert bad == {}, f"(status, traceback logged) per input: {outcomes}"
    _assert_only(http, token, [f"after-{i}" for i in range(len(GARBAGE))])


def test_live_concurrent_hostile_and_valid_traffic(live) -> None:
    """Hostile requests in parallel with valid ones: every valid one stored, no 5xx."""
    server, http, source, token = live
    hostile = [
        "malformed-json",
        "invalid-utf8",
        "nul-in-batch-message",
        "batch-items-not-objects",
        "unknown-type-in-batch",
        "oversize-message-in-batch",
        "oversize-body",
        "gzip-bomb",
        "corrupt-gzip",
        "truncated-gzip",
        "multipart-body",
        "depth-5000",
        "depth-33-in-batch",
        "far-future-in-batch",
        "batch-of-2501",
        "lone-high-surrogate",
    ]
    statuses: list[int] = []
    failures: list[str] = []

    def hostile_worker() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as own:
            for name in hostile:
                case = CASES[name]
                raw, headers, auth = _request(case, source.write_key)
                answer = own.post(f"/v1/{case.endpoint}", content=raw, headers=headers, auth=auth)
                if answer.status_code != case.status:
                    failures.append(f"{name}: {answer.status_code}")

    def valid_worker(start: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as own:
            for i in range(start, start + 50):
                answer = own.post("/v1/track", json=track(f"v{i}"), auth=(source.write_key, ""))
                statuses.append(answer.status_code)

    threads = [threading.Thread(target=hostile_worker) for _ in range(2)]
    threads += [threading.Thread(target=valid_worker, args=(k * 50,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 100
    expected = [f"v{i}" for i in range(100)]
    expected += [m for name in hostile for m in CASES[name].stored]
    assert sorted(e["message_id"] for e in read_events(http, token)) == sorted(set(expected))
    assert failures == []
