"""Reading ahead: a helper process parses the next batch, and nothing changes but the speed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text

from omnicanal.core.channel_rules import configured_rules
from omnicanal.core.settings import Settings
from omnicanal.profiles.processing.ahead import ReadAhead, read_events
from omnicanal.profiles.processing.parse import Parser
from omnicanal.profiles.processor import QUARANTINE_CODE, Processor
from omnicanal.store.engine import Database
from tests.conftest import SourceKey, make_source
from tests.profiles.logs import write_log

PEOPLE = 30


def _journey(p: int) -> list[dict[str, Any]]:
    """A visitor who browses, signs in, orders, consents and answers a survey."""
    when = f"2026-03-01T{10 + p % 10:02d}:{p % 60:02d}:00.000Z"
    common = {"anonymousId": f"a{p}", "timestamp": when}
    return [
        {
            **common,
            "type": "page",
            "name": "Accueil",
            "context": {
                "page": {"url": f"https://shop.fr/?utm_source=instagram&utm_medium=paid&n={p}"}
            },
        },
        {**common, "type": "track", "event": "Product Viewed", "properties": {"sku": f"S{p}"}},
        {
            **common,
            "type": "identify",
            "userId": f"u{p}",
            "traits": {
                "email": f" P{p}@Exemple.fr ",
                "firstName": "Léa",
                "address": {"street": f"{p} rue Haute", "postalCode": "75001", "city": "Paris"},
            },
            "context": {"consent": {"purposes": {"marketing": {"email": p % 2 == 0}}}},
        },
        {
            **common,
            "type": "track",
            "userId": f"u{p}",
            "event": "Order Completed",
            "properties": {
                "order_id": f"o{p}",
                "total": 40 + p,
                "currency": "EUR",
                "products": [{"sku": f"S{p}", "price": 40 + p, "quantity": 1}],
            },
        },
        {
            **common,
            "type": "track",
            "userId": f"u{p}",
            "event": "Survey Answered",
            "properties": {"kind": "nps", "score": p % 11},
        },
    ]


def _log(db: Database, source: SourceKey) -> int:
    messages = [m for p in range(PEOPLE) for m in _journey(p)]
    for i, message in enumerate(messages):
        message["messageId"] = f"m{i}"
    write_log(db, source.id, messages)
    return len(messages)


def _state(db: Database) -> dict[str, Any]:
    """What processing derived, without the clock's stamps."""
    queries = {
        "events": "SELECT event_id, profile_id, channel, media_class, online, campaign, "
        "order_id, revenue_cents, store FROM profile_event ORDER BY event_id",
        "profiles": "SELECT id, email, first_name, postcode, event_count, traits, merged_into "
        "FROM profile ORDER BY id",
        "orders": "SELECT id, profile_id, total_eur_cents, channel FROM orders ORDER BY id",
        "consents": "SELECT profile_id, purpose, channel, granted, event_id, proof FROM consent "
        "ORDER BY id",
        "feedback": "SELECT event_id, profile_id, kind, score FROM feedback ORDER BY event_id",
    }
    with db.engine.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(text(sql))] for name, sql in queries.items()}


def _checkpoint(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT last_event_id FROM processor_checkpoint WHERE name = 'main'")
            ).scalar_one()
        )


def _helper_up(processor: Processor) -> int:
    """Process a batch, which starts the helper, and wait until it has answered."""
    done = processor.step().events
    assert processor._ahead is not None
    assert processor._ahead.wait(60)
    return done


def test_the_helper_reads_what_the_processor_would(db: Database) -> None:
    source = make_source(db)
    total = _log(db, source)
    rules = configured_rules()
    ahead = ReadAhead(db.engine.url.render_as_string(hide_password=False), rules)
    try:
        ahead.ask(0, 60, 7)
        assert ahead.wait(60)
        helped = ahead.take(0, 60, 7)
        ahead.ask(60, 1_000, 7)
        rest = ahead.take(60, 1_000, 7)  # the helper is up: this one waits for its answer
    finally:
        ahead.close()
    with db.engine.connect() as conn:
        alone = read_events(conn, Parser(rules), 0, 1_000)
    assert helped is not None
    assert rest is not None
    assert len(helped) == 60
    assert len(rest) == total - 60
    assert helped + rest == alone
    identify = next(e for e in alone if e.type == "identify")
    assert ("email", "p0@exemple.fr") in identify.keys
    assert identify.consent == {"purposes": {"marketing": {"email": True}}}


def test_an_answer_to_another_question_is_not_taken(db: Database) -> None:
    source = make_source(db)
    _log(db, source)
    ahead = ReadAhead(db.engine.url.render_as_string(hide_password=False), ())
    try:
        assert ahead.take(0, 50, 1) is None  # nothing was asked
        ahead.ask(0, 50, 1)
        assert ahead.wait(60)
        assert ahead.take(10, 50, 1) is None  # the checkpoint moved meanwhile: dropped
        assert ahead.take(0, 50, 1) is None  # dropped, not kept for later
        ahead.ask(0, 50, 1)
        assert ahead.wait(60)
        assert ahead.take(0, 50, 2) is None  # the identity graph changed meanwhile
        ahead.ask(0, 50, 2)
        ahead.ask(0, 10, 2)  # one question at a time: this one is not sent
        assert ahead.wait(60)
        taken = ahead.take(0, 50, 2)
        assert taken is not None
        assert len(taken) == 50
        assert [e.id for e in taken] == list(range(1, 51))
    finally:
        ahead.close()


def test_processing_with_the_helper_gives_the_same_result(db: Database, other_db: Database) -> None:
    source = make_source(db)
    total = _log(db, source)
    processor = Processor(db, batch_size=16, read_ahead=True)
    try:
        assert _helper_up(processor) + processor.drain() == total
    finally:
        processor.close()
    assert processor.batches_read_ahead >= total // 16 - 2  # all but the first batches
    helped = _state(db)
    assert _checkpoint(db) == total
    assert len(helped["events"]) == total
    assert len(helped["orders"]) == PEOPLE
    assert len(helped["feedback"]) == PEOPLE

    # The same log processed without a helper, in a second store, derives the same rows.
    _log(other_db, make_source(other_db))
    alone = Processor(other_db, batch_size=16)
    assert alone.drain() == total
    assert alone.batches_read_ahead == 0
    assert _state(other_db) == helped


def test_a_helper_that_dies_leaves_the_processor_reading_alone(db: Database) -> None:
    source = make_source(db)
    total = _log(db, source)
    processor = Processor(db, batch_size=10, read_ahead=True)
    done = 0
    try:
        done += _helper_up(processor)
        while processor.batches_read_ahead < 2:
            done += processor.step().events
        assert processor._ahead is not None
        processor._ahead._process.kill()
        done += processor.drain()
    finally:
        processor.close()
    assert done == total
    assert processor.read_ahead is False
    assert processor._ahead is None
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM profile_event"))
        assert tuple(stored.one()) == (total, total)
    assert _checkpoint(db) == total


def test_an_unreadable_event_is_still_set_aside_with_a_helper(db: Database) -> None:
    source = make_source(db)
    first = _log(db, source)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO collect_event (source_id, dedup_time, dedup_key, message_id, type, "
                "event, timestamp_ms, received_ms, payload) VALUES (:s, 0, 1, 'torn', 'track', "
                '\'Product Viewed\', 1772359200000, 1772359200000, \'{"type": "track", "ev\')'
            ),
            {"s": source.id},
        )
    second = [m for p in range(PEOPLE, PEOPLE + 4) for m in _journey(p)]
    for i, message in enumerate(second):
        message["messageId"] = f"later-{i}"
    write_log(db, source.id, second)
    processor = Processor(db, batch_size=8, read_ahead=True)
    try:
        processed = _helper_up(processor) + processor.drain()
    finally:
        processor.close()
    assert processor.batches_read_ahead > 0
    assert processor.quarantined == 1
    assert processed == first + 1 + len(second)
    with db.engine.connect() as conn:
        codes = conn.execute(text("SELECT code FROM collect_rejected_event")).scalars().all()
        stored = conn.execute(text("SELECT COUNT(*) FROM profile_event")).scalar_one()
    assert codes == [QUARANTINE_CODE]
    assert stored == first + len(second)


def test_two_workers_with_helpers_process_each_event_once(db: Database) -> None:
    source = make_source(db)
    total = _log(db, source)
    one = Processor(db, batch_size=12, read_ahead=True)
    two = Processor(db, batch_size=12, read_ahead=True)
    done = 0
    try:
        for _ in range(100):
            a, b = one.step().events, two.step().events
            done += a + b
            if not a and not b:
                break
    finally:
        one.close()
        two.close()
    assert done == total
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM profile_event"))
        assert tuple(stored.one()) == (total, total)


def test_the_helper_stops_with_the_backlog_and_starts_again_with_the_next(db: Database) -> None:
    source = make_source(db)
    total = _log(db, source)
    processor = Processor(db, batch_size=10, read_ahead=True)
    processor.helper_rest_seconds = 0
    try:
        assert _helper_up(processor) + processor.drain() == total
        helped = processor.batches_read_ahead
        assert helped > 0
        for _ in range(3):  # live: nothing waiting, or less than a batch
            processor.step()
        assert processor._ahead is None
        later = [m for p in range(PEOPLE, 2 * PEOPLE) for m in _journey(p)]
        for i, message in enumerate(later):
            message["messageId"] = f"later-{i}"
        write_log(db, source.id, later)
        assert _helper_up(processor) + processor.drain() == len(later)
        assert processor.batches_read_ahead > helped
    finally:
        processor.close()
    assert _checkpoint(db) == total + len(later)


def test_the_helper_ends_when_its_processor_is_gone(db: Database) -> None:
    # Killed with -9, a processor says nothing: its end of the pipe just closes.
    ahead = ReadAhead(db.engine.url.render_as_string(hide_password=False), ())
    ahead.ask(0, 10, 0)
    assert ahead.wait(60)
    ahead._pipe.close()
    assert ahead._process.wait(timeout=30) == 0


def test_a_helper_that_cannot_read_answers_nothing_and_stays(tmp_path: Path) -> None:
    # A store it cannot read (here, one with no event log at all): the processor is told
    # nothing was read, reads the batch itself and meets the error there.
    ahead = ReadAhead(f"sqlite:///{tmp_path / 'empty.db'}", ())
    try:
        ahead.ask(0, 10, 0)
        assert ahead.wait(60)
        assert ahead.take(0, 10, 0) == []
        assert not ahead.broken
        assert ahead._process.poll() is None
    finally:
        ahead.close()


def test_the_settings_turn_reading_ahead_off(db: Database, tmp_path: Path) -> None:
    source = make_source(db)
    total = _log(db, source)
    on = Processor.configured(db, Settings(data_dir=tmp_path), batch_size=10)
    off = Processor.configured(
        db, Settings(data_dir=tmp_path, processor={"read_ahead": False}), batch_size=10
    )
    assert on.read_ahead is True
    assert off.read_ahead is False
    try:
        assert off.drain() == total
    finally:
        off.close()
    assert off._ahead is None
    assert off.batches_read_ahead == 0
