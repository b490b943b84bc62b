"""The processor under kill -9: it resumes exactly where its last commit stopped.

A log of 30,000 events (people browsing on several devices, signing in, ordering on
the web and at the till) is processed by `omnicanal process` in its own process, which
is killed with SIGKILL mid-way. What was committed must be whole (every event up to
the checkpoint processed once, none after it), and a restart must finish the log with
the same people, merges and orders as an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from omnicanal.profiles.processor import Processor
from omnicanal.store.engine import Database
from tests.conftest import make_source
from tests.profiles.logs import write_log

pytestmark = pytest.mark.slow

PEOPLE = 3_000
DERIVED = (
    "profile_event",
    "orders",
    "order_line",
    "identity",
    "identity_merge",
    "identity_conflict",
    "profile",
    "processor_checkpoint",
    "household_member",
    "household",
    "consent",
)


def messages() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    minute = 0
    for p in range(PEOPLE):
        devices = [f"d{p}-{d}" for d in range(1 + p % 3)]
        for device in devices:
            for _ in range(3):
                minute += 1
                out.append(
                    {
                        "type": "page",
                        "anonymousId": device,
                        "name": "Produit",
                        "timestamp": _at(minute),
                    }
                )
        out.append(
            {
                "type": "identify",
                "anonymousId": devices[-1],
                "userId": f"u{p}",
                "traits": {"email": f"client{p}@exemple.fr"},
                "timestamp": _at(minute),
            }
        )
        for device in devices[:-1]:
            out.append(
                {
                    "type": "track",
                    "anonymousId": device,
                    "event": "Newsletter Signup",
                    "context": {"traits": {"email": f"client{p}@exemple.fr"}},
                    "timestamp": _at(minute),
                }
            )
        out.append(
            {
                "type": "track",
                "userId": f"u{p}",
                "event": "Order Completed",
                "properties": {"order_id": f"W{p}", "total": 10 + p % 90},
                "timestamp": _at(minute),
            }
        )
    for i, msg in enumerate(out):
        msg["messageId"] = f"m{i}"
    return out


def _at(minute: int) -> str:
    day, rest = divmod(minute, 24 * 60)
    return f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T{rest // 60:02d}:{rest % 60:02d}:00Z"


def snapshot(db: Database) -> dict[str, Any]:
    with db.engine.connect() as conn:
        partition = conn.execute(
            text(
                "SELECT e.message_id, COALESCE(p.merged_into, p.id) FROM profile_event pe "
                "JOIN collect_event e ON e.id = pe.event_id JOIN profile p ON p.id = pe.profile_id"
            )
        ).all()
        orders = conn.execute(text("SELECT order_key, total_cents FROM orders")).all()
        merges = conn.execute(text("SELECT COUNT(*) FROM identity_merge")).scalar_one()
    groups: dict[int, set[str]] = {}
    for message_id, root in partition:
        groups.setdefault(root, set()).add(message_id)
    return {
        "people": {frozenset(g) for g in groups.values()},
        "orders": sorted(map(tuple, orders)),
        "merges": merges,
    }


def logged(db: Database) -> list[dict[str, Any]]:
    """Write the shop's messages to the log of a new source; return them."""
    sent = messages()
    write_log(db, make_source(db, "eshop", "web").id, sent)
    return sent


def process_command(data: Path, batch: str) -> list[str]:
    """The `omnicanal process` worker, as an operator starts it."""
    return [sys.executable, "-m", "omnicanal.cli", "process", "--data", str(data), "--batch", batch]


def test_kill_9_mid_batch_then_resume(db: Database, database_url: str, tmp_path: Path) -> None:
    sent = logged(db)
    env = {**os.environ, "OMNICANAL_DATABASE_URL": database_url}
    command = process_command(tmp_path, "200")
    worker = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    checkpoint = 0
    # A plain engine: it reads without taking SQLite's write lock, so it sees the worker's
    # progress instead of queueing behind it.
    watcher = create_engine(database_url)
    with watcher.connect() as conn:
        while checkpoint < len(sent) * 0.05 and time.monotonic() < deadline:
            time.sleep(0.01)
            checkpoint = conn.execute(
                text(
                    "SELECT COALESCE(MAX(last_event_id), 0) FROM processor_checkpoint "
                    "WHERE name = 'main'"
                )
            ).scalar_one()
            conn.rollback()
    watcher.dispose()
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert 0 < checkpoint < len(sent), "the worker should be killed mid-way"

    with db.engine.connect() as conn:
        checkpoint = conn.execute(
            text("SELECT last_event_id FROM processor_checkpoint WHERE name = 'main'")
        ).scalar_one()
        done = conn.execute(
            text("SELECT MIN(event_id), MAX(event_id), COUNT(*) FROM profile_event")
        ).one()
        covered = conn.execute(
            text("SELECT COUNT(*) FROM collect_event WHERE id <= :c"), {"c": checkpoint}
        ).scalar_one()
    assert done[1] == checkpoint  # nothing beyond the last commit
    assert done[2] == covered  # everything up to it, once

    resumed = subprocess.run(
        [*command, "--once"], env=env, capture_output=True, timeout=300, check=False
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    after_crash = snapshot(db)
    assert sum(len(g) for g in after_crash["people"]) == len(sent)
    assert len(after_crash["people"]) == PEOPLE

    with db.engine.begin() as conn:  # the same log processed without interruption
        for table in DERIVED:
            conn.execute(text(f"DELETE FROM {table}"))
    Processor(db).drain()
    assert snapshot(db) == after_crash


def test_two_workers_on_postgresql_share_the_log_safely(
    backend: str, db: Database, database_url: str, tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("several processor processes are a PostgreSQL deployment")
    sent = logged(db)
    env = {**os.environ, "OMNICANAL_DATABASE_URL": database_url}
    command = [*process_command(tmp_path, "300"), "--once"]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        _out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()
    shared = snapshot(db)
    assert sum(len(g) for g in shared["people"]) == len(sent)
    with db.engine.begin() as conn:
        for table in DERIVED:
            conn.execute(text(f"DELETE FROM {table}"))
    Processor(db).drain()
    assert snapshot(db) == shared
