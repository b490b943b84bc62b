"""SQLite's WAL stays bounded under a steady stream of writes (the checkpointer's job)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from omnicanal.collect.writer import _Checkpointer
from omnicanal.store.engine import Database, make_engine

TRANSACTIONS, ROWS, ROW_BYTES = 300, 20, 4_000  # 24 MB written in all


def _stream(path: Path, catch_up_pages: int) -> tuple[int, int]:
    """Write without pause beside a checkpointer; return the WAL's largest and final size."""
    db = Database(make_engine(f"sqlite:///{path}"))
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    checkpointer = _Checkpointer(db, interval=0.01, catch_up_pages=catch_up_pages)
    checkpointer.start()
    raw = db.engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # as the event writer does
    wal, largest = Path(f"{path}-wal"), 0
    try:
        for _ in range(TRANSACTIONS):
            cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(
                "INSERT INTO t (body) VALUES (?)", [(os.urandom(ROW_BYTES),) for _ in range(ROWS)]
            )
            cursor.execute("COMMIT")
            checkpointer.catch_up(raw)  # as the event writer does between commits
            time.sleep(0.001)  # the writer waits for requests; the checkpointer gets a turn
            largest = max(largest, wal.stat().st_size)
    finally:
        raw.close()
        checkpointer.stop()
        db.dispose()
    return largest, wal.stat().st_size if wal.exists() else 0


def test_a_steady_stream_of_writes_keeps_the_wal_bounded(tmp_path: Path) -> None:
    written = TRANSACTIONS * ROWS * ROW_BYTES
    largest, final = _stream(tmp_path / "stream.db", catch_up_pages=64)  # past 256 KiB

    # The WAL starts over each time the writer's checkpoint catches up: it never holds
    # more than a few checkpoints' worth of pages, whatever the stream writes.
    assert largest < written / 4, (largest, written)
    assert final == 0  # stopping truncates it
