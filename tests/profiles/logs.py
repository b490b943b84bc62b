"""Writing messages straight into the event log, for tests that start after collection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from omnicanal.collect.models import Event
from omnicanal.collect.segment import Envelope, Limits, Row, normalise
from omnicanal.store.engine import Database


def write_log(db: Database, source_id: int, messages: list[dict[str, Any]]) -> None:
    """Validate the messages as collection does and append them to the log, in order."""
    env = Envelope(
        source_id=source_id,
        received_at=datetime.now(UTC),
        limits=Limits(32_768, 32),
        historical=True,
    )
    rows = []
    for msg in messages:
        row = normalise(msg, kind=None, env=env)
        assert isinstance(row, Row), row
        rows.append(row.columns(source_id))
    with db.engine.begin() as conn:
        for start in range(0, len(rows), 5_000):
            conn.execute(insert(Event), rows[start : start + 5_000])
