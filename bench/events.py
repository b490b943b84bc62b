"""Realistic Segment track events of an e-commerce site, built once as templates.

Load generators must stay cheap (they share the two cores with the server), so
bodies are pre-serialised here; per request only marked spots change:

* `@@ID@@`, the first 23 characters of each UUID-shaped messageId,
  `aaaaaaaa-rrrr-rrrr-nnnn-tttttttttttt`: `aaaaaaaa` differs from event to event and
  looks random, as the SDKs' UUIDv4 do, so an index on the id text gets inserts all
  over; `rrrr-rrrr` is the request's own id (load-generator thread and request
  counter, mixed one to one) and `nnnn` the run's nonce, which make ids unique across
  requests, threads and runs; `tttttttttttt` is fixed and distinct within a body.
* `@@TS@@`, each event's `timestamp`: a millisecond of the second before sending, as
  an SDK's queue holds events a little while before it flushes them;
* `@@SENT@@`, the body's `sentAt`: the second of sending.

bench/batch.lua fills them in for wrk; `Template.render` does the same in Python.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

ID_MARK = "@@ID@@"
TS_MARK = "@@TS@@"
SENT_MARK = "@@SENT@@"
_FILLED_CHARS = {ID_MARK: 23, TS_MARK: 24, SENT_MARK: 24}  # "aaaaaaaa-rrrr-rrrr-nnnn"
_MARKS = re.compile("|".join(re.escape(m) for m in _FILLED_CHARS))

_EVENTS = ("Product Viewed", "Product Added", "Order Completed")
_WEIGHTS = (60, 25, 15)  # a funnel: many views, fewer adds, fewer orders
_CATEGORIES = ("Chaussures", "Robes", "Accessoires", "Maroquinerie", "Pulls", "Jeans")
_PATHS = ("/produits/{slug}", "/panier", "/commande/confirmation", "/femme/{slug}")
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36",
)


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _uuid_tail(rng: random.Random) -> str:
    """Return the last 13 characters of a UUID, the part after ID_MARK."""
    return f"-{_hex(rng, 12)}"


def _properties(rng: random.Random, name: str) -> dict[str, object]:
    number = rng.randrange(10_000, 99_999)
    price = round(rng.uniform(9, 240), 2)
    quantity = rng.randint(1, 3)
    props: dict[str, object] = {
        "product_id": f"P{number}",
        "sku": f"SKU-{number}-{rng.choice('SML')}",
        "category": rng.choice(_CATEGORIES),
        "price": price,
        "currency": "EUR",
        "quantity": quantity,
    }
    if name == "Order Completed":
        props["order_id"] = f"CMD-{rng.randrange(10**7, 10**8)}"
        props["total"] = round(price * quantity + 4.9, 2)
    return props


def _context(rng: random.Random, name: str) -> dict[str, object]:
    ip = f"203.0.113.{rng.randrange(1, 255)}"
    if name == "Order Completed":  # sent by the shop's back end once payment clears
        return {"library": {"name": "analytics-python", "version": "2.3.3"}, "ip": ip}
    path = rng.choice(_PATHS).format(slug=f"article-{rng.randrange(1000, 9999)}")
    return {
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "page": {"path": path},
        "userAgent": rng.choice(_USER_AGENTS),
        "ip": ip,
    }


def track_event(rng: random.Random) -> dict[str, object]:
    """Return one track message (400 to 550 bytes) with ID_MARK and TS_MARK in it."""
    name = rng.choices(_EVENTS, weights=_WEIGHTS)[0]
    event: dict[str, object] = {
        "type": "track",
        "event": name,
        "messageId": ID_MARK + _uuid_tail(rng),
        "anonymousId": f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-{_hex(rng, 4)}",
        "timestamp": TS_MARK,
        "properties": _properties(rng, name),
        "context": _context(rng, name),
    }
    if name == "Order Completed" or rng.random() < 0.3:  # logged-in visitors
        event["userId"] = f"client-{rng.randrange(100_000, 999_999)}"
    return event


@dataclass(frozen=True)
class Template:
    """A request body as text, with marks where per-request values go."""

    text: str
    events: int

    @property
    def body_bytes(self) -> int:
        """Return the size of one body once the marks are filled in."""
        grown = sum(n - len(m) for m in _MARKS.findall(self.text) for n in [_FILLED_CHARS[m]])
        return len(self.text.encode()) + grown

    def render(self, counter: int, *, nonce: int, now: float | None = None) -> bytes:
        """Return the body of request `counter` sent at `now` (Unix time), marks filled."""
        second = int(time.time() if now is None else now)
        prefixes = iter(message_prefixes(counter, self.events, nonce=nonce))
        stamps = iter(timestamps(second - 1, counter, self.events))
        fill: dict[str, Callable[[], str]] = {
            ID_MARK: lambda: next(prefixes),
            TS_MARK: lambda: next(stamps),
            SENT_MARK: lambda: iso_ms(second, 0),
        }
        return _MARKS.sub(lambda match: fill[match[0]](), self.text).encode()


def iso_ms(second: int, ms: int) -> str:
    """Return an ISO-8601 UTC time with milliseconds, as the SDKs write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{ms:03d}Z"


def timestamps(second: int, counter: int, events: int) -> list[str]:
    """Spread a body's event times over one second (bench/batch.lua does the same)."""
    return [iso_ms(second, (counter * 13 + i * 10) % 1000) for i in range(events)]


def batch_template(size: int, *, seed: int = 2026) -> Template:
    """Return a /v1/batch body of `size` track events, as the Segment SDKs send it."""
    rng = random.Random(seed)
    events = [track_event(rng) for _ in range(size)]
    if len({e["messageId"] for e in events}) < size:
        raise ValueError("two events of the template share a messageId tail; change the seed")
    body = {"batch": events, "sentAt": SENT_MARK}
    return Template(orjson.dumps(body).decode(), size)


def track_template(*, seed: int = 2027) -> Template:
    """Return a /v1/track body of one event (the `type` is implied by the endpoint)."""
    event = track_event(random.Random(seed))
    del event["type"]
    event["sentAt"] = SENT_MARK
    return Template(orjson.dumps(event).decode(), 1)


_SALT = 0x5BD1E995


def scramble(value: int) -> int:
    """Map a 32-bit value to another, one to one, far apart for neighbours (Knuth's hash).

    Segment's SDKs send random UUIDv4 messageIds, so request counters must not show
    through as ordered ids: an index on the id text would then only ever append.
    """
    return (value * 0x9E3779B1) & 0xFFFFFFFF


def message_prefixes(counter: int, events: int, *, nonce: int, thread: int = 0) -> list[str]:
    """Return the ID_MARK replacements of one request (bench/batch.lua does the same)."""
    if not 0 <= counter < 1 << 24:
        raise ValueError("at most 2^24 requests per thread")
    rid = scramble(thread << 24 | counter)
    tail = f"-{rid >> 16:04x}-{rid & 0xFFFF:04x}-{nonce:04x}"
    return [f"{scramble((counter * events + i) ^ _SALT):08x}{tail}" for i in range(events)]
