"""The event writer's group commit: what it stores, what it counts, and whose turn it is."""

from __future__ import annotations

import asyncio
import threading
from itertools import accumulate
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from omnicanal.collect.segment import Row, dedup_key
from omnicanal.collect.writer import EventWriter, Job, postgres, sqlite
from omnicanal.collect.writer.turn import WriterTurns
from omnicanal.store.engine import Database
from tests.conftest import make_source

T0 = 1_790_000_000_000


def _row(
    source_id: int,
    message_id: str,
    *,
    at: int = T0,
    key: int | None = None,
    payload: bytes | None = None,
) -> Row:
    if payload is None:
        payload = orjson.dumps({"type": "track", "event": "Viewed", "messageId": message_id})
    return Row(
        at,
        dedup_key(source_id, message_id) if key is None else key,
        message_id,
        "track",
        "Viewed",
        None,
        "anon-1",
        at,
        at,
        payload,
    )


@pytest.fixture(params=["in-statement", "staged"])
def group_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """PostgreSQL inserts a small group with its values in the statement and a large one
    through a staging table: each test below runs both ways."""
    if request.param == "staged":
        monkeypatch.setattr(postgres, "SMALL_GROUP", 0)
    return str(request.param)


def _commit(writer: EventWriter, jobs: list[Job]) -> list[int]:
    async def submit_all() -> list[int]:
        return list(await asyncio.gather(*(writer.submit(job) for job in jobs)))

    return asyncio.run(submit_all())


def _stored(db: Database) -> list[tuple[str, int]]:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT message_id, dedup_key FROM collect_event ORDER BY id"))
        return [(m, k) for m, k in rows]


def test_a_group_mixing_new_and_known_messages_stores_and_counts_each_once(
    db, group_path: str
) -> None:
    source = make_source(db).id
    writer = EventWriter(db)
    writer.start()
    try:
        assert _commit(writer, [Job(source, [_row(source, "a"), _row(source, "b")], [])]) == [2]
        # One group: a retry of "a", two new messages, and "c" twice in two requests.
        jobs = [
            Job(source, [_row(source, "a"), _row(source, "c")], []),
            Job(source, [_row(source, "d"), _row(source, "c")], []),
        ]
        counts = _commit(writer, jobs)
    finally:
        writer.stop()
    assert sorted(m for m, _ in _stored(db)) == ["a", "b", "c", "d"]
    assert sum(counts) == 2  # "c" and "d": the retry and the repeat add nothing
    with db.engine.connect() as conn:
        tracked = conn.execute(
            text("SELECT count FROM collect_counter WHERE source_id = :s AND name = 'track'"),
            {"s": source},
        ).scalar_one()
    assert tracked == 4


def test_two_messages_sharing_a_digest_are_both_stored(db, group_path: str) -> None:
    source = make_source(db).id
    writer = EventWriter(db)
    writer.start()
    try:
        shared = dedup_key(source, "first")
        _commit(writer, [Job(source, [_row(source, "first")], [])])
        # Another messageId whose 64-bit digest is the same, beside a new message.
        clash = _row(source, "second", key=shared)
        counts = _commit(writer, [Job(source, [clash, _row(source, "third")], [])])
        again = _commit(writer, [Job(source, [_row(source, "second", key=shared)], [])])
    finally:
        writer.stop()
    stored = dict(_stored(db))
    assert sorted(stored) == ["first", "second", "third"]
    assert stored["second"] == dedup_key(source, "second", salt=1)  # kept under a salted key
    assert counts == [2]
    assert again == [0]  # the colliding message's retry is known under its salted key


def test_a_group_of_several_statements_stores_each_new_message_once(
    db, group_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "CHUNK_ROWS", 8)
    source = make_source(db).id
    known = [f"k{i}" for i in range(10)]
    writer = EventWriter(db)
    writer.start()
    try:
        assert _commit(writer, [Job(source, [_row(source, m) for m in known], [])]) == [10]
        # 30 rows, statements of 8, 8, 8, 4 and 2 rows on SQLite: retries land in several
        # of them, and the last one holds nothing new.
        ids = [f"n{i}" for i in range(10)] + known[:7] + [f"n{i}" for i in range(10, 20)]
        ids += known[7:]
        counts = _commit(writer, [Job(source, [_row(source, m) for m in ids], [])])
    finally:
        writer.stop()
    stored = [m for m, _ in _stored(db)]
    assert sorted(stored) == sorted(known + [f"n{i}" for i in range(20)])
    assert counts == [20]


def test_a_group_is_cut_into_runs_of_powers_of_two() -> None:
    assert sqlite.chunks(0, 1024) == []
    assert sqlite.chunks(1600, 1024) == [(0, 1024), (1024, 512), (1536, 64)]
    for total in range(1, 300):
        runs = sqlite.chunks(total, 64)
        assert [start for start, _ in runs] == [0, *accumulate(s for _, s in runs)][:-1]
        assert sum(size for _, size in runs) == total
        assert {size for _, size in runs} <= {64, 32, 16, 8, 4, 2, 1}


TRICKY = {
    "type": "track",
    "event": 'Viewed "quoted" \\ back',
    "properties": {
        "text": "café ☃ 😀 \u0001\u001f tab\t newline\n",
        "$path": "$.a[0]",
        "numbers": [0, -1, 1.5, 1e300, -2.5e-300, 9007199254740991],
        "nested": {"a": [{"b": [[], {}]}], "empty": ""},
        "flags": [True, False, None],
    },
    "messageId": "tricky",
}


def test_payloads_are_stored_byte_for_byte(db, group_path: str) -> None:
    source = make_source(db).id
    payloads = [orjson.dumps(TRICKY), orjson.dumps({**TRICKY, "messageId": "x" * 5000})]
    writer = EventWriter(db)
    writer.start()
    try:
        rows = [_row(source, f"p{i}", payload=p) for i, p in enumerate(payloads)]
        _commit(writer, [Job(source, rows, [])])
    finally:
        writer.stop()
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT payload FROM collect_event ORDER BY id")).scalars()
        assert [p.encode() for p in stored] == payloads


def test_writer_turns_exclude_each_other(tmp_path: Path) -> None:
    first, second = WriterTurns(str(tmp_path / "log.db")), WriterTurns(str(tmp_path / "log.db"))
    order: list[str] = []
    waiting = threading.Event()

    def other() -> None:
        waiting.set()
        with second.held():
            order.append("second")

    try:
        with first.held():
            thread = threading.Thread(target=other)
            thread.start()
            waiting.wait()
            thread.join(timeout=0.2)  # it cannot get in while the first holds the turn
            order.append("first")
        thread.join()
    finally:
        first.close()
        second.close()
    assert order == ["first", "second"]
