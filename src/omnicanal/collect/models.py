"""Sources, the durable event log and the rejected events.

The log is append-only and written by the group-commit writer with the driver's
own executemany, not the ORM: these classes define the schema and serve reads.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicanal.store.base import Base, BigId


class Source(Base):
    __tablename__ = "collect_source"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    channel: Mapped[str] = mapped_column(String(80))
    write_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    write_key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class Event(Base):
    """One accepted message, exactly as received plus the server's fields.

    A message is the same as another when it has the same source, messageId and client
    timestamp: the unique key is (client timestamp in ms, 64-bit digest of source and
    messageId). Leading with the client's time keeps each insert near the newest keys,
    so the index grows at the end instead of being rewritten at random; SDK retries
    resend the message unchanged, timestamp included.
    """

    __tablename__ = "collect_event"
    __table_args__ = (UniqueConstraint("dedup_time", "dedup_key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(Integer)  # no FK: the writer checks, inserts stay lean
    dedup_time: Mapped[int] = mapped_column(BigInteger)  # client timestamp, ms; 0 if none
    dedup_key: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    event: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    anonymous_id: Mapped[str | None] = mapped_column(String(255))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)  # corrected event time, ms
    received_ms: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)


class RejectedEvent(Base):
    """A message or request we refused, kept with the reason for inspection."""

    __tablename__ = "collect_rejected_event"
    __table_args__ = (Index("ix_collect_rejected_event_received_at", "received_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("collect_source.id"))
    received_at: Mapped[datetime]
    endpoint: Mapped[str] = mapped_column(String(32))
    batch_index: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    errors: Mapped[str] = mapped_column(Text)  # JSON list of {field, reason}
    payload: Mapped[str] = mapped_column(Text)  # the message, or the body's first bytes
    payload_truncated: Mapped[bool] = mapped_column(default=False)


class Counter(Base):
    """Exact running counts per source (event types, rejections), kept by the writer."""

    __tablename__ = "collect_counter"
    source_id: Mapped[int] = mapped_column(ForeignKey("collect_source.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class ImportRun(Base):
    """One file import: what it was, how it ended, and the report of any bad row.

    `digest` is the SHA-256 of the file's bytes with the kind: re-running the same
    file finds the finished run and stores nothing twice (the rows' own keys also
    make every import idempotent, whatever the file's name).
    """

    __tablename__ = "collect_import"
    __table_args__ = (Index("ix_collect_import_digest", "digest"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(512))
    digest: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # running, done, failed
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    stored: Mapped[int] = mapped_column(BigInteger, default=0)  # new rows (0 on a re-run)
    errors: Mapped[str] = mapped_column(Text, default="[]")  # JSON: [{line, column, reason}]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
