"""Schemas of sources, rejected events, the log and the counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from omnicanal.core.channels import normalise_channel


class SourceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    channel: str = Field(description="A channel of the taxonomy, e.g. `web`, `store:paris-01`.")

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str) -> str:
        return normalise_channel(value)


class SourceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    channel: str
    write_key_prefix: str
    created_at: datetime
    disabled_at: datetime | None


class SourceCreated(SourceRead):
    write_key: str = Field(description="Shown once; store it in the SDK's configuration.")


class SourceIdentity(BaseModel):
    """What collection needs to know about the source behind a write key."""

    id: int
    name: str
    channel: str


class RejectedEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    source_id: int | None
    received_at: datetime
    endpoint: str
    batch_index: int | None
    status: int
    code: str
    errors: list[dict[str, Any]]
    payload: str
    payload_truncated: bool


class RejectedEventPage(BaseModel):
    items: list[RejectedEventRead]
    next_before: int | None = Field(description="Pass as `before` for the next, older page.")


class EventRead(BaseModel):
    id: int
    source_id: int
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    received_at: datetime
    payload: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventRead]
    next_after: int = Field(description="Pass as `after` to read the events that follow.")


class SourceStats(BaseModel):
    source_id: int
    name: str
    channel: str
    events: dict[str, int]
    rejected: int


class StatsRead(BaseModel):
    events: int
    events_by_type: dict[str, int]
    rejected: int
    sources: list[SourceStats]
    refused_without_source: int = Field(
        description="Requests refused before a source was known (bad write key), since start."
    )
    profiles: int = Field(0, description="People known: profiles, merged ones counted once.")
    unprocessed: int = Field(0, description="Events in the log the processor has not reached yet.")
