"""Durability under kill -9: an acknowledged batch is on disk, stored once, whole.

Client threads send 2,000 batches of 100 track events to the real server; another
thread kills it with SIGKILL once ~40% are acknowledged, requests still in flight.
The database must then hold every acknowledged event exactly once and each batch
whole or not at all. After a restart the clients resend what was not acknowledged,
and a sample of what was, until everything is: 200,000 events, each stored once,
each as sent, and the exact counters equal to the rows.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import LiveServer, SourceKey

pytestmark = pytest.mark.slow

BATCHES = 2_000
PER_BATCH = 100
THREADS = 4
KILL_AFTER = int(BATCHES * 0.4)
RESENT_ACKED = 100


def message(batch: int, i: int) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": f"user-{batch % 97}",
        "event": "Crash Tested",
        "messageId": f"crash-{batch:04d}-{i:03d}",
        "properties": {"batch": batch, "i": i, "check": f"{batch * 7919 + i * 104729:x}"},
    }


@cache
def bodies() -> list[bytes]:
    """Return the request body of every batch, built once."""
    return [
        orjson.dumps({"batch": [message(b, i) for i in range(PER_BATCH)]}) for b in range(BATCHES)
    ]


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    acked: set[int] = field(default_factory=set)
    unanswered: set[int] = field(default_factory=set)  # sent, no answer: the server died
    refused: list[tuple[int, int, str]] = field(default_factory=list)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def send(url: str, key: str, batches: Iterable[int], tally: Tally, stop: threading.Event) -> None:
    """Send batches from THREADS clients until the queue is empty or `stop` is set."""
    todo = collections.deque(batches)
    payloads = bodies()

    def worker() -> None:
        with httpx.Client(
            base_url=url,
            auth=(key, ""),
            headers={"Content-Type": "application/json"},
            timeout=httpx.Timeout(30, connect=5),
        ) as http:
            while not stop.is_set():
                with tally.lock:
                    if not todo:
                        return
                    index = todo.popleft()
                    tally.in_flight += 1
                try:
                    answer = http.post("/v1/batch", content=payloads[index])
                except httpx.TransportError:
                    answer = None
                with tally.lock:
                    tally.in_flight -= 1
                    if answer is None:
                        tally.unanswered.add(index)
                    elif answer.status_code == 200:
                        tally.acked.add(index)
                        tally.unanswered.discard(index)
                    else:
                        tally.refused.append((index, answer.status_code, answer.text[:300]))

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()


def kill_midway(
    server: LiveServer, tally: Tally, stop: threading.Event, seen: dict[str, Any]
) -> None:
    """Kill the server with SIGKILL once KILL_AFTER batches are acknowledged."""
    while len(tally.acked) < KILL_AFTER:
        if stop.wait(0.001):  # the clients gave up before: the test fails on its own
            return
    deadline = time.monotonic() + 2
    while tally.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0)
    with tally.lock:
        seen["in_flight"] = tally.in_flight
        seen["acked"] = set(tally.acked)
    stop.set()  # no new request starts; those in flight are cut by the kill
    server.kill()


def stored_rows(database_url: str) -> tuple[list[tuple[str, str]], int]:
    """Return (message_id, payload) of every logged event and the counter of track calls."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = [
                (m, p)
                for m, p in conn.execute(text("SELECT message_id, payload FROM collect_event"))
            ]
            counted = conn.execute(
                text("SELECT coalesce(sum(count), 0) FROM collect_counter WHERE name = 'track'")
            ).scalar_one()
    finally:
        engine.dispose()
    return rows, int(counted)


def batches_of(rows: list[tuple[str, str]]) -> collections.Counter[int]:
    return collections.Counter(int(message_id.split("-")[1]) for message_id, _ in rows)


def test_kill_9_loses_no_acknowledged_event(
    live_server: LiveServer, source: SourceKey, database_url: str
) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()
    tally, stop, seen = Tally(), threading.Event(), dict[str, Any]()
    killer = threading.Thread(
        target=kill_midway, args=(live_server, tally, stop, seen), daemon=True
    )
    killer.start()
    try:
        send(live_server.url, source.write_key, range(BATCHES), tally, stop)
    finally:
        stop.set()
    killer.join(timeout=60)
    timings["until kill"] = time.monotonic() - started
    assert tally.refused == []
    acked_at_kill = seen["acked"]
    assert KILL_AFTER <= len(acked_at_kill) < BATCHES
    assert seen["in_flight"] >= 1, "the kill should land while requests are in flight"

    # Before any retry: every acknowledged event is on disk, once; every batch is whole or absent.
    rows, counted = stored_rows(database_url)
    per_batch = batches_of(rows)
    assert len({m for m, _ in rows}) == len(rows), "an event is stored twice"
    assert not {b for b in tally.acked if per_batch[b] != PER_BATCH}, "acknowledged, not stored"
    assert {b: n for b, n in per_batch.items() if n != PER_BATCH} == {}, "a batch is half-written"
    assert set(per_batch) <= tally.acked | tally.unanswered, "stored without being sent"
    assert counted == len(rows)

    # Restart; resend what was not acknowledged, plus a sample of what was, as a client retry would.
    live_server.start()
    restarted = time.monotonic()
    sample = random.Random(9).sample(sorted(tally.acked), RESENT_ACKED)
    resend = [b for b in range(BATCHES) if b not in tally.acked] + sample
    retry = Tally()
    for _ in range(5):
        send(live_server.url, source.write_key, resend, retry, threading.Event())
        resend = [b for b in resend if b not in retry.acked]
        if not resend:
            break
    assert resend == [], f"still not acknowledged: {resend[:10]}"
    assert retry.refused == []
    timings["retries"] = time.monotonic() - restarted

    rows, counted = stored_rows(database_url)
    assert len(rows) == BATCHES * PER_BATCH
    assert len({m for m, _ in rows}) == len(rows)
    expected = {f"crash-{b:04d}-{i:03d}": (b, i) for b in range(BATCHES) for i in range(PER_BATCH)}
    for message_id, payload in rows:
        stored = orjson.loads(payload)
        sent = message(*expected.pop(message_id))
        assert {k: stored.get(k) for k in sent} == sent
    assert expected == {}
    assert counted == len(rows)
    timings["total"] = time.monotonic() - started
    print(
        f"acknowledged at kill: {len(acked_at_kill)}/{BATCHES} batches, "
        f"in flight: {seen['in_flight']}, unanswered: {len(tally.unanswered)}, "
        f"stored at kill: {len(per_batch)}; "
        + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    )
