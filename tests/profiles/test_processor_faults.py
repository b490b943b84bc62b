"""An event the processor cannot handle is set aside with its error; it never stops the rest."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import insert, text

from omnicanal.collect.models import Event
from omnicanal.profiles.processor import QUARANTINE_CODE, QUARANTINE_LIMIT, Processor
from omnicanal.store.engine import Database
from tests.conftest import SourceKey
from tests.profiles.logs import write_log


def _page(n: int) -> dict[str, Any]:
    return {
        "type": "page",
        "anonymousId": f"visitor-{n}",
        "messageId": f"m-{n}",
        "timestamp": f"2026-03-01T10:{n:02d}:00.000Z",
    }


TORN = '{"type": "track", "event": "Product Vie'


def _damaged(db: Database, source_id: int, count: int = 1, payload: str = TORN) -> list[int]:
    """Append log rows whose payload is damaged: cut short, as a torn write leaves it."""
    ids = []
    with db.engine.begin() as conn:
        for i in range(count):
            values = {
                "source_id": source_id,
                "dedup_time": 0,
                "dedup_key": 9_000_000 + i,
                "message_id": f"damaged-{i}",
                "type": "track",
                "event": "Product Viewed",
                "user_id": None,
                "anonymous_id": "visitor-x",
                "timestamp_ms": 1_772_359_200_000,
                "received_ms": 1_772_359_200_000,
                "payload": payload,
            }
            ids.append(int(conn.execute(insert(Event).returning(Event.id), values).scalar_one()))
    return ids


def _count(db: Database, sql: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


@pytest.mark.parametrize("batch_size", [1, 4, 2_000])
def test_a_damaged_event_is_set_aside_and_the_others_are_processed(
    db: Database, source: SourceKey, batch_size: int
) -> None:
    write_log(db, source.id, [_page(n) for n in range(3)])
    (bad,) = _damaged(db, source.id)
    write_log(db, source.id, [_page(n) for n in range(3, 6)])

    processor = Processor(db, batch_size=batch_size)
    assert processor.drain() == 7  # six processed, one set aside
    assert processor.quarantined == 1

    assert _count(db, "SELECT COUNT(*) FROM profile_event") == 6
    assert _count(db, f"SELECT COUNT(*) FROM profile_event WHERE event_id = {bad}") == 0
    last = _count(db, "SELECT MAX(id) FROM collect_event")
    assert _count(db, "SELECT last_event_id FROM processor_checkpoint WHERE name = 'main'") == last
    with db.engine.connect() as conn:
        rejected = conn.execute(
            text(
                "SELECT source_id, endpoint, status, code, errors, payload "
                "FROM collect_rejected_event"
            )
        ).one()
    assert rejected.source_id == source.id
    assert (rejected.endpoint, rejected.status, rejected.code) == ("process", 422, QUARANTINE_CODE)
    (error,) = orjson.loads(rejected.errors)
    assert error["event_id"] == bad
    assert "JSONDecodeError" in error["reason"]
    assert rejected.payload.startswith('{"type": "track"')
    # The event stays in the log, and the source's count of rejected events shows it.
    assert _count(db, f"SELECT COUNT(*) FROM collect_event WHERE id = {bad}") == 1
    assert (
        _count(
            db,
            f"SELECT count FROM collect_counter WHERE source_id = {source.id} "
            "AND name = 'rejected'",
        )
        == 1
    )
    # Processing again changes nothing.
    assert Processor(db, batch_size=batch_size).drain() == 0
    assert _count(db, "SELECT COUNT(*) FROM collect_rejected_event") == 1


def test_a_payload_that_is_not_an_object_is_set_aside_not_read_as_empty(
    db: Database, source: SourceKey
) -> None:
    write_log(db, source.id, [_page(0)])
    (bad,) = _damaged(db, source.id, payload='[{"type": "track"}]')
    write_log(db, source.id, [_page(1)])
    processor = Processor(db)
    assert processor.drain() == 3
    assert processor.quarantined == 1
    assert _count(db, "SELECT COUNT(*) FROM profile_event") == 2
    with db.engine.connect() as conn:
        errors = conn.execute(text("SELECT errors FROM collect_rejected_event")).scalar_one()
    (error,) = orjson.loads(errors)
    assert error["event_id"] == bad
    assert "not a JSON object" in error["reason"]


def test_a_fault_that_fails_every_event_stops_the_processor_instead_of_emptying_the_log(
    db: Database, source: SourceKey
) -> None:
    _damaged(db, source.id, count=QUARANTINE_LIMIT + 5)
    processor = Processor(db, batch_size=10)
    with pytest.raises(orjson.JSONDecodeError, match="unexpected end of data"):
        processor.drain()
    assert processor.quarantined == QUARANTINE_LIMIT
    assert _count(db, "SELECT COUNT(*) FROM collect_rejected_event") == QUARANTINE_LIMIT
    assert (
        _count(db, "SELECT last_event_id FROM processor_checkpoint WHERE name = 'main'")
        == _count(db, "SELECT MIN(id) FROM collect_event") + QUARANTINE_LIMIT - 1
    )
