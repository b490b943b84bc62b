"""The writer's SQL inside a caller's transaction, for file imports."""

from __future__ import annotations

from typing import Any

from omnicanal.collect.segment import Row
from omnicanal.collect.writer.dedup import RecentMessages
from omnicanal.collect.writer.job import Job
from omnicanal.collect.writer.postgres import PostgresBatch
from omnicanal.collect.writer.sqlite import SqliteBatch


def append_rows(connection: Any, source_id: int, rows: list[Row]) -> list[Row]:
    """Insert one source's rows in the caller's open transaction; return the new ones.

    The writer's own SQL, digest-collision handling and counters, without its commit:
    the rows join whatever else the caller's transaction writes, so a file import is
    all or nothing. `connection` is a SQLAlchemy Connection inside a transaction.
    """
    dbapi = connection.connection.dbapi_connection
    job = Job(source_id, rows, [])
    kind = SqliteBatch if connection.dialect.name == "sqlite" else PostgresBatch
    return kind(dbapi, [job], RecentMessages(0)).append()
