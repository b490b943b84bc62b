"""Engines for SQLite (WAL, in the data folder) and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

BUSY_TIMEOUT_MS = 30_000
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA cache_size=-262144",  # 256 MiB of page cache: indexes stay hot
    "PRAGMA temp_store=MEMORY",
    # When the WAL starts over, a file grown past 64 MiB is cut back to it.
    "PRAGMA journal_size_limit=67108864",
)


def _on_sqlite_connect(synchronous: str) -> Any:
    def connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy drive transactions; pysqlite's own BEGIN handling is off.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    return connect


# A writer waits for SQLite's write lock as long as the busy timeout, asking this often.
_LOCK_POLLS = (0.0005, 0.001, 0.002)


def begin_immediate(cursor: Any) -> None:
    """Take SQLite's write lock (`BEGIN IMMEDIATE`) on a connection with no busy timeout.

    SQLite's own busy handler sleeps up to 100 ms between attempts, while another
    writer (collection, a processor working a backlog) may free the lock for only a few
    milliseconds between its transactions: waiting that way, a writer could miss gap
    after gap (a 6.8 s wait for a collection request, measured). Asking every 2 ms at
    most, each writer gets its turn as soon as the lock is free.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    attempt = 0
    while True:
        try:
            cursor.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(_LOCK_POLLS[min(attempt, len(_LOCK_POLLS) - 1)])
        attempt += 1


def _on_sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two writers wait instead of deadlocking.
    dbapi = conn.connection.dbapi_connection
    cursor = dbapi.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    try:
        begin_immediate(cursor)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL", echo: bool = False) -> Engine:
    """Create an engine; for SQLite, create the folder and set WAL and pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _on_sqlite_connect(sqlite_synchronous.upper()))
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


@dataclass
class Database:
    """One engine and its session factory, owned by an entry point."""

    engine: Engine
    sessions: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """Return `sqlite` or `postgresql`."""
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
