"""Sources, their write keys, and reads of the log, the rejections and the counts."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from omnicanal.collect.models import Counter, Event, RejectedEvent, Source
from omnicanal.collect.schemas import (
    EventPage,
    EventRead,
    RejectedEventPage,
    RejectedEventRead,
    SourceCreate,
    SourceCreated,
    SourceIdentity,
    SourceRead,
    SourceStats,
    StatsRead,
)
from omnicanal.core.clock import utcnow
from omnicanal.core.errors import ConflictError, NotFoundError
from omnicanal.core.ids import hash_secret, new_secret

WRITE_KEY_PREFIX = "oc_wk_"


def create_source(*, session: Session, data: SourceCreate) -> SourceCreated:
    """Create a source and return it with its write key, shown this once."""
    if session.scalar(select(Source.id).where(Source.name == data.name)) is not None:
        raise ConflictError(f"A source named {data.name!r} already exists.")
    key = new_secret(WRITE_KEY_PREFIX)
    source = Source(
        name=data.name,
        channel=data.channel,
        write_key_hash=hash_secret(key),
        write_key_prefix=key[: len(WRITE_KEY_PREFIX) + 4],
        created_at=utcnow(),
        disabled_at=None,
    )
    session.add(source)
    session.flush()
    return SourceCreated(**SourceRead.model_validate(source).model_dump(), write_key=key)


def list_sources(*, session: Session) -> list[SourceRead]:
    """Return every source, oldest first."""
    return [
        SourceRead.model_validate(s) for s in session.scalars(select(Source).order_by(Source.id))
    ]


def get_source(*, session: Session, source_id: int) -> SourceRead:
    """Return one source or raise NotFoundError."""
    source = session.get(Source, source_id)
    if source is None:
        raise NotFoundError(f"No source with id {source_id}.")
    return SourceRead.model_validate(source)


def disable_source(*, session: Session, source_id: int) -> SourceRead:
    """Stop accepting events from a source; its history stays."""
    source = session.get(Source, source_id)
    if source is None:
        raise NotFoundError(f"No source with id {source_id}.")
    if source.disabled_at is None:
        source.disabled_at = utcnow()
        session.flush()
    return SourceRead.model_validate(source)


def get_by_write_key(*, session: Session, write_key: str) -> SourceIdentity | None:
    """Return the enabled source behind a write key, or None."""
    source = session.scalar(select(Source).where(Source.write_key_hash == hash_secret(write_key)))
    if source is None or source.disabled_at is not None:
        return None
    return SourceIdentity(id=source.id, name=source.name, channel=source.channel)


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rejected_read(row: RejectedEvent) -> RejectedEventRead:
    return RejectedEventRead(
        id=row.id,
        source_id=row.source_id,
        received_at=_utc(row.received_at),
        endpoint=row.endpoint,
        batch_index=row.batch_index,
        status=row.status,
        code=row.code,
        errors=orjson.loads(row.errors),
        payload=row.payload,
        payload_truncated=row.payload_truncated,
    )


def list_rejected(
    *, session: Session, source_id: int | None = None, before: int | None = None, limit: int = 50
) -> RejectedEventPage:
    """Return rejected events, newest first, a page at a time."""
    query = select(RejectedEvent).order_by(RejectedEvent.id.desc()).limit(limit)
    if source_id is not None:
        query = query.where(RejectedEvent.source_id == source_id)
    if before is not None:
        query = query.where(RejectedEvent.id < before)
    rows = list(session.scalars(query))
    items = [_rejected_read(r) for r in rows]
    return RejectedEventPage(items=items, next_before=rows[-1].id if len(rows) == limit else None)


def list_events(
    *, session: Session, after: int = 0, limit: int = 100, source_id: int | None = None
) -> EventPage:
    """Return logged events in log order after the id `after`."""
    query = select(Event).where(Event.id > after).order_by(Event.id).limit(limit)
    if source_id is not None:
        query = query.where(Event.source_id == source_id)
    items = [
        EventRead(
            id=e.id,
            source_id=e.source_id,
            message_id=e.message_id,
            type=e.type,
            event=e.event,
            user_id=e.user_id,
            anonymous_id=e.anonymous_id,
            timestamp=_from_ms(e.timestamp_ms),
            received_at=_from_ms(e.received_ms),
            payload=orjson.loads(e.payload),
        )
        for e in session.scalars(query)
    ]
    return EventPage(items=items, next_after=items[-1].id if items else after)


def last_event_id(*, session: Session) -> int:
    """Return the id of the newest logged event (0 when the log is empty)."""
    return int(session.scalar(select(func.coalesce(func.max(Event.id), 0))) or 0)


def stats(*, session: Session, refused_without_source: int = 0) -> StatsRead:
    """Count events by type and source, and rejections, from the writer's exact counters."""
    by_source: dict[int, dict[str, int]] = defaultdict(dict)
    for counter in session.scalars(select(Counter)):
        by_source[counter.source_id][counter.name] = counter.count
    by_type: dict[str, int] = defaultdict(int)
    sources = []
    for source in session.scalars(select(Source).order_by(Source.id)):
        counts = by_source.get(source.id, {})
        events = {k: v for k, v in sorted(counts.items()) if k != "rejected"}
        for name, count in events.items():
            by_type[name] += count
        sources.append(
            SourceStats(
                source_id=source.id,
                name=source.name,
                channel=source.channel,
                events=events,
                rejected=counts.get("rejected", 0),
            )
        )
    # People and processing progress, read by table name: the processor (a higher layer)
    # owns these tables.
    profiles = session.execute(
        text("SELECT COUNT(*) FROM profile WHERE merged_into IS NULL")
    ).scalar_one()
    checkpoint = session.execute(
        text("SELECT COALESCE(MAX(last_event_id), 0) FROM processor_checkpoint WHERE name = 'main'")
    ).scalar_one()
    unprocessed = session.scalar(
        select(func.count()).select_from(Event).where(Event.id > checkpoint)
    )
    return StatsRead(
        profiles=int(profiles),
        unprocessed=int(unprocessed or 0),
        events=sum(by_type.values()),
        events_by_type=dict(sorted(by_type.items())),
        rejected=sum(s.rejected for s in sources),
        sources=sources,
        refused_without_source=refused_without_source,
    )
