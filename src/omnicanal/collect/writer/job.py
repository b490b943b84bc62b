"""What a request hands the writer: its rows, its rejections and the future it waits on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from omnicanal.collect.segment import Row


@dataclass(slots=True)
class Rejection:
    """One refused message or request, as stored for inspection."""

    source_id: int
    received_at: datetime
    endpoint: str
    batch_index: int | None
    status: int
    code: str
    errors: str
    payload: str
    payload_truncated: bool


@dataclass(slots=True)
class Job:
    """One request's rows and the future it waits on."""

    source_id: int
    rows: list[Row]
    rejections: list[Rejection]
    future: asyncio.Future[int] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    stored: int = 0
