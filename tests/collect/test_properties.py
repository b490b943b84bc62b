"""Invariants of collection, checked on generated input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnicanal.collect.segment import (
    Envelope,
    Limits,
    Row,
    dedup_key,
    epoch_micros,
    iso_micros,
    normalise,
)
from omnicanal.core.clock import parse_iso8601

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "type",
        "userId",
        "anonymousId",
        "event",
        "messageId",
        "timestamp",
        "sentAt",
        "properties",
        "traits",
        "context",
        "groupId",
        "previousId",
        "name",
        "integrations",
    ]
)
MESSAGES = st.dictionaries(FIELDS, JSON, max_size=8)
ENV = Envelope(1, datetime(2026, 11, 23, tzinfo=UTC), Limits(32 * 1024, 32))


@given(MESSAGES, st.sampled_from([None, "track", "identify", "page", "alias", "group"]))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_message_is_stored_or_refused_with_reasons(message, kind) -> None:
    result = normalise(message, kind=kind, env=ENV)
    if isinstance(result, Row):
        stored = orjson.loads(result.payload)
        assert stored["messageId"] == result.message_id
        assert stored["type"] in {"track", "identify", "page", "screen", "group", "alias"}
        assert "writeKey" not in stored
        assert result.user_id or result.anonymous_id
    else:
        assert result
        assert all(p["field"] and p["reason"] for p in result)


SDK_INSTANTS = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31))


@given(SDK_INSTANTS)
def test_an_sdk_timestamp_reads_and_writes_back_the_same_from_its_cached_second(moment) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    first = epoch_micros(text)  # the second may be cached by an earlier example: read twice
    assert first == epoch_micros(text) == _micros_of(text)
    assert iso_micros(first) == iso_micros(first + 999) == text
    other = f"{text[:20]}{(int(text[20:23]) + 1) % 1000:03d}Z"  # same second, cached
    assert epoch_micros(other) == _micros_of(other)


def _micros_of(text: str) -> int:
    return (parse_iso8601(text) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@given(st.text(min_size=1, max_size=40), st.integers(1, 10**6))
def test_dedup_key_is_stable_and_per_source(message_id, source_id) -> None:
    key = dedup_key(source_id, message_id)
    assert key == dedup_key(source_id, message_id)
    assert -(2**63) <= key < 2**63
    assert key != dedup_key(source_id + 1, message_id)
    assert key != dedup_key(source_id, message_id, salt=1)


@given(st.lists(MESSAGES, max_size=5))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_batch_gets_a_server_error(client, source, batch) -> None:
    answer = client.post("/v1/batch", json={"batch": batch}, auth=(source.write_key, ""))
    assert answer.status_code in {200, 413, 422}
    if answer.status_code != 200:
        problem = answer.json()
        assert answer.headers["content-type"] == "application/problem+json"
        assert problem["accepted"] + problem["rejected"] == len(batch)
