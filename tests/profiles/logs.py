"""Writing messages straight into the event log, for tests that start after collection."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from omnicanal.collect.importers import run_import
from omnicanal.collect.models import Event
from omnicanal.collect.segment import Envelope, Limits, Row, normalise
from omnicanal.demo.retailer import Dataset
from omnicanal.store.engine import Database
from tests.conftest import make_source


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


def write_world(db: Database, world: Dataset, kinds: Iterable[str]) -> None:
    """Put a demo world in the store as collection and the importers would: its messages
    in the log under one source each, then its files of `kinds` through the importers."""
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for source, message in world.messages():
        by_source[source].append(message)
    for name, channel in world.sources:
        write_log(db, make_source(db, name, channel).id, by_source[name])
    for kind in kinds:
        if kind in world.files:
            run_import(db=db, kind=kind, path=world.files[kind])
