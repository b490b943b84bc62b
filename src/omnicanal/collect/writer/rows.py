"""The columns the writer fills and each row's values in their order."""

from __future__ import annotations

from typing import Any

from omnicanal.collect.segment import Row
from omnicanal.collect.writer.job import Rejection

EVENT_COLUMNS = (
    "source_id, dedup_time, dedup_key, message_id, type, event, user_id, anonymous_id, "
    "timestamp_ms, received_ms, payload"
)
REJECT_COLUMNS = (
    "source_id, received_at, endpoint, batch_index, status, code, errors, payload, "
    "payload_truncated"
)


def values(source_id: int, r: Row, payload: Any = None) -> tuple[Any, ...]:
    """Return a row's values in `EVENT_COLUMNS` order; the payload as text unless given."""
    return (
        source_id,
        r.dedup_time,
        r.dedup_key,
        r.message_id,
        r.type,
        r.event,
        r.user_id,
        r.anonymous_id,
        r.timestamp_ms,
        r.received_ms,
        r.payload.decode() if payload is None else payload,
    )


def rejection_values(r: Rejection, sqlite: bool) -> tuple[Any, ...]:
    """Return a rejection's values in `REJECT_COLUMNS` order."""
    # SQLAlchemy keeps SQLite datetimes as naive UTC text; PostgreSQL takes the object.
    received = r.received_at.replace(tzinfo=None).isoformat(sep=" ") if sqlite else r.received_at
    return (
        r.source_id,
        received,
        r.endpoint,
        r.batch_index,
        r.status,
        r.code,
        r.errors,
        r.payload,
        r.payload_truncated,
    )
