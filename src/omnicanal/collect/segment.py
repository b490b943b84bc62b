"""Validation and normalisation of Segment-spec messages.

Each message becomes one log row or a list of problems naming the field and the
reason. Checks that need a walk of the whole message (depth, NUL characters,
numbers beyond 2^53) only walk when the serialised bytes show a reason to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import blake2b as _blake2b
from typing import Any

import orjson

from omnicanal.core.clock import isoformat, parse_iso8601
from omnicanal.core.ids import uuid7

TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
SHORT_TYPES = {
    "i": "identify",
    "t": "track",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
MAX_ID_CHARS = 255
MAX_SAFE_NUMBER = 2**53
FUTURE_TOLERANCE = timedelta(days=1)
_OBJECT_FIELDS = ("context", "integrations", "properties", "traits")
_STRING_FIELDS = ("event", "name", "category")
# Reasons to walk a message, looked for in its serialised bytes at C speed: an escaped
# NUL, a run of 16 digits (an integer that may be beyond 2^53), or `e+`, which orjson
# writes for floats from 1e16 up (and for integers beyond 64 bits, which it reads as
# floats). One translation folds digits to 0, so one substring search finds any run, and
# `[` to `{`, so one count gives the containers a message opens.
_FOLD = bytes.maketrans(b"123456789[", b"000000000{")
_LONG_RUN = b"0" * 16
_NUL = b"\\u0000"
_BIG_EXPONENT = b"e+"

Problem = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-message limits in force."""

    max_event_bytes: int
    max_depth: int


@dataclass(slots=True)
class Row:
    """One accepted message, ready for the log."""

    dedup_time: int  # the client's own timestamp (ms), so a retry's key sits near the new rows
    dedup_key: int
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp_ms: int
    received_ms: int
    payload: bytes

    @property
    def key(self) -> tuple[int, int]:
        """Return what makes the message unique in the log."""
        return (self.dedup_time, self.dedup_key)

    def columns(self, source_id: int) -> dict[str, Any]:
        """Return the row as the log's columns (for inserts outside the writer)."""
        return {
            "source_id": source_id,
            "dedup_time": self.dedup_time,
            "dedup_key": self.dedup_key,
            "message_id": self.message_id,
            "type": self.type,
            "event": self.event,
            "user_id": self.user_id,
            "anonymous_id": self.anonymous_id,
            "timestamp_ms": self.timestamp_ms,
            "received_ms": self.received_ms,
            "payload": self.payload.decode(),
        }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_US = timedelta(microseconds=1)
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _US
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _US
_FUTURE_US = FUTURE_TOLERANCE // _US
# Whole seconds already read or written, by their text: the messages of a batch share a
# few seconds, and datetime's parsing and formatting were a fifth of a message's time.
_SECONDS: dict[str, int] = {}
_SECOND_TEXT: dict[int, str] = {}
_CACHED_SECONDS = 100_000


def _millis(value: datetime) -> int:
    """Return whole milliseconds since the epoch, exactly."""
    return (value - _EPOCH) // _MS


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _US


def epoch_micros(value: str) -> int:
    """Read an ISO-8601 instant as microseconds since the epoch; ValueError if it is none.

    The SDKs' shape, `2026-11-25T03:08:03.063Z`, is read from a cache of its seconds.
    """
    if len(value) == 24 and value[19] == "." and value[23] == "Z":
        seconds = _SECONDS.get(value[:19])
        fraction = value[20:23]
        if seconds is not None and fraction.isascii() and fraction.isdigit():
            return seconds * 1_000_000 + int(fraction) * 1000
        micros = _micros(parse_iso8601(value))
        if fraction.isascii() and fraction.isdigit():
            if len(_SECONDS) >= _CACHED_SECONDS:
                _SECONDS.clear()
            _SECONDS[value[:19]] = (micros - int(fraction) * 1000) // 1_000_000
        return micros
    return _micros(parse_iso8601(value))


def iso_micros(micros: int) -> str:
    """Format microseconds since the epoch as Segment does: UTC, milliseconds, trailing Z."""
    seconds, rest = divmod(micros, 1_000_000)
    text = _SECOND_TEXT.get(seconds)
    if text is None:
        instant = datetime(1970, 1, 1) + timedelta(seconds=seconds)
        text = instant.isoformat(timespec="seconds")
        if len(_SECOND_TEXT) >= _CACHED_SECONDS:
            _SECOND_TEXT.clear()
        _SECOND_TEXT[seconds] = text
    return f"{text}.{rest // 1000:03d}Z"


def dedup_key(source_id: int, message_id: str, salt: int = 0) -> int:
    """Return the signed 64-bit digest that identifies a message within a source."""
    text = f"{source_id}\x1f{message_id}\x1f{salt}" if salt else f"{source_id}\x1f{message_id}"
    return int.from_bytes(_blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _identifier(msg: dict[str, Any], field: str, problems: list[Problem]) -> str | None:
    value = msg.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append({"field": field, "reason": "must be a string"})
        return None
    text = str(value).strip()
    if not text:  # SDKs send "" for "not known yet" (RudderStack's userId before identify)
        return None
    if len(text) > MAX_ID_CHARS:
        problems.append({"field": field, "reason": f"is longer than {MAX_ID_CHARS} characters"})
        return None
    return text


def _instant(msg: dict[str, Any], field: str, problems: list[Problem]) -> int | None:
    """Read a timestamp field as microseconds since the epoch."""
    value = msg.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append({"field": field, "reason": "must be an ISO-8601 string"})
        return None
    try:
        instant = epoch_micros(value)
    except (ValueError, OverflowError):
        problems.append({"field": field, "reason": f"{value[:40]!r} is not an ISO-8601 timestamp"})
        return None
    if instant < 0:
        problems.append({"field": field, "reason": "is before 1970"})
        return None
    return instant


def _check_shape(msg: dict[str, Any], kind: str, problems: list[Problem]) -> None:
    for field in _OBJECT_FIELDS:
        value = msg.get(field)
        if value is not None and not isinstance(value, dict):
            problems.append({"field": field, "reason": "must be an object"})
    for field in _STRING_FIELDS:
        value = msg.get(field)
        if value is not None and not isinstance(value, str):
            problems.append({"field": field, "reason": "must be a string"})
    if kind == "track":
        event = msg.get("event")
        if not isinstance(event, str) or not event.strip():
            if event is None:
                problems.append({"field": "event", "reason": "is required for track calls"})
            elif isinstance(event, str):
                problems.append({"field": "event", "reason": "must not be empty"})
        elif len(event) > MAX_ID_CHARS:
            problems.append(
                {"field": "event", "reason": f"is longer than {MAX_ID_CHARS} characters"}
            )


def _walk(value: Any, path: str, depth: int, limits: Limits) -> Problem | None:
    """Find the first NUL, out-of-range number or too-deep nesting (depth counts containers)."""
    if isinstance(value, str):
        return {"field": path, "reason": "contains a NUL character"} if "\x00" in value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if abs(value) > MAX_SAFE_NUMBER:
            reason = "is beyond ±2^53; send large numbers or identifiers as strings"
            return {"field": path, "reason": reason}
        return None
    if depth > limits.max_depth:
        return {"field": path or "(message)", "reason": f"nests deeper than {limits.max_depth}"}
    items: Any = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        if isinstance(key, str) and "\x00" in key:
            return {"field": path, "reason": "has a key with a NUL character"}
        child_path = (
            f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)
        )
        found = _walk(child, child_path, depth + 1, limits)
        if found is not None:
            return found
    return None


def _deep_problems(payload: bytes, msg: dict[str, Any], limits: Limits) -> list[Problem]:
    if len(payload) > limits.max_event_bytes:
        reason = f"is {len(payload)} bytes; the limit is {limits.max_event_bytes} bytes per message"
        return [{"field": "(message)", "reason": reason, "limit": limits.max_event_bytes}]
    folded = payload.translate(_FOLD)
    if (
        folded.count(b"{") > limits.max_depth
        or (b"\\" in folded and _NUL in folded)  # one byte is found faster than six
        or (b"+" in folded and _BIG_EXPONENT in folded)
        or _LONG_RUN in folded
    ):
        found = _walk(msg, "", 1, limits)
        if found is not None:
            return [found]
    return []


@dataclass(slots=True)
class Envelope:
    """What a request gives every message it carries."""

    source_id: int
    received_at: datetime
    limits: Limits
    sent_at: datetime | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    historical: bool = False
    sent_text: str | None = None
    received_text: str = ""
    received_ms: int = 0
    received_us: int = 0
    sent_us: int | None = None

    def __post_init__(self) -> None:
        self.received_text = isoformat(self.received_at)
        self.received_ms = _millis(self.received_at)
        self.received_us = _micros(self.received_at)
        self.sent_us = None if self.sent_at is None else _micros(self.sent_at)


def _message_type(msg: dict[str, Any], kind: str | None, problems: list[Problem]) -> str:
    if kind is not None:
        return kind
    declared = msg.get("type")
    resolved = SHORT_TYPES.get(declared, declared) if isinstance(declared, str) else None
    if resolved not in TYPES:
        reason = "is required" if declared is None else f"{str(declared)[:20]!r} is not a call type"
        problems.append({"field": "type", "reason": f"{reason}; use one of {sorted(TYPES)}"})
        return "track"
    return str(resolved)


def _required(msg: dict[str, Any], field: str, problems: list[Problem], reason: str) -> None:
    before = len(problems)
    if _identifier(msg, field, problems) is None and len(problems) == before:
        problems.append({"field": field, "reason": reason})


def _identities(msg: dict[str, Any], kind: str, problems: list[Problem]) -> tuple[str | None, ...]:
    before = len(problems)
    user_id = _identifier(msg, "userId", problems)
    anonymous_id = _identifier(msg, "anonymousId", problems)
    if kind == "alias":
        _required(msg, "previousId", problems, "is required for alias calls")
        if user_id is None and len(problems) == before:
            problems.append({"field": "userId", "reason": "is required for alias calls"})
    if kind == "group":
        _required(msg, "groupId", problems, "is required for group calls")
    if user_id is None and anonymous_id is None and len(problems) == before:
        problems.append({"field": "userId", "reason": "userId or anonymousId is required"})
    return user_id, anonymous_id


def _timestamp(original: int | None, sent_at: int | None, env: Envelope) -> int:
    """Correct the client's clock as Segment does: receivedAt - (sentAt - timestamp)."""
    if original is None:
        return env.received_us
    if env.historical or sent_at is None:
        return original
    return env.received_us - (sent_at - original)


def _text(msg: dict[str, Any], field: str) -> str | None:
    value = msg.get(field)
    return value if isinstance(value, str) else None


def _payload(
    msg: dict[str, Any],
    kind: str,
    message_id: str,
    env: Envelope,
    times: dict[str, str | None],
) -> dict[str, Any]:
    out = dict(msg)
    out.pop("writeKey", None)
    out["type"] = kind
    out["messageId"] = message_id
    if env.context:
        out["context"] = {**env.context, **(msg.get("context") or {})}
    if env.integrations:
        out["integrations"] = {**env.integrations, **(msg.get("integrations") or {})}
    for name, value in times.items():
        if value is not None:
            out[name] = value
        else:
            out.pop(name, None)
    return out


def normalise(msg: Any, *, kind: str | None, env: Envelope) -> Row | list[Problem]:
    """Turn one message into a log row, or return every problem found in it."""
    if not isinstance(msg, dict):
        return [{"field": "(message)", "reason": "must be a JSON object"}]
    problems: list[Problem] = []
    call = _message_type(msg, kind, problems)
    if problems:
        return problems
    user_id, anonymous_id = _identities(msg, call, problems)
    message_id = _identifier(msg, "messageId", problems) or uuid7()
    original = _instant(msg, "timestamp", problems)
    if original is None:
        original = _instant(msg, "originalTimestamp", problems)
    sent_at = _instant(msg, "sentAt", problems)
    if sent_at is None:
        sent_at = env.sent_us
    _check_shape(msg, call, problems)
    if problems:
        return problems
    timestamp = _timestamp(original, sent_at, env)
    if not _MIN_US <= timestamp <= _MAX_US:
        field = "sentAt" if sent_at is not None and not env.historical else "timestamp"
        return [{"field": field, "reason": "puts the corrected timestamp out of range"}]
    if timestamp > env.received_us + _FUTURE_US:
        return [{"field": "timestamp", "reason": "is more than a day in the future"}]
    times = {
        "timestamp": iso_micros(timestamp),
        "originalTimestamp": _text(msg, "timestamp") or _text(msg, "originalTimestamp"),
        "sentAt": _text(msg, "sentAt") or env.sent_text,
        "receivedAt": env.received_text,
    }
    out = _payload(msg, call, message_id, env, times)
    payload = orjson.dumps(out)
    deep = _deep_problems(payload, out, env.limits)
    if deep:
        return deep
    event = out.get("event") if call == "track" else out.get("name")
    return Row(
        original // 1000 if original is not None else 0,
        dedup_key(env.source_id, message_id),
        message_id,
        call,
        event.strip()[:MAX_ID_CHARS] if isinstance(event, str) else None,
        user_id,
        anonymous_id,
        timestamp // 1000,
        env.received_ms,
        payload,
    )
