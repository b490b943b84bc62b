"""Baseline servers, served exactly as `omnicanal serve` serves ours.

    python -m bench.apps hello --port 8001
    python -m bench.apps naive --port 8002 --db /tmp/naive.db

* `hello`: a plain FastAPI endpoint that answers `{"ok":true}` without reading the
  body; what FastAPI on uvicorn can do here at best (the HTTP ceiling).
* `naive`: the design the collection issue argues against: one FastAPI process,
  sqlite3 directly, `INSERT OR IGNORE` on a unique index over the messageId text,
  one commit per request, on the event loop.
"""

from __future__ import annotations

import argparse
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

_OK = b'{"success":true}'

NAIVE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS event ("
    " id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL, message_id TEXT NOT NULL,"
    " type TEXT NOT NULL, event TEXT, user_id TEXT, anonymous_id TEXT,"
    " timestamp TEXT NOT NULL, received_at TEXT NOT NULL, payload TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS event_message_id ON event (message_id)",
)
_NAIVE_INSERT = (
    "INSERT OR IGNORE INTO event (source_id, message_id, type, event, user_id, anonymous_id,"
    " timestamp, received_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def hello_app() -> FastAPI:
    """Return the ceiling app: `POST /v1/batch` and `POST /v1/track` answer at once."""
    app = FastAPI()

    @app.post("/v1/batch")
    @app.post("/v1/track")
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    return app


def open_naive(path: Path) -> sqlite3.Connection:
    """Open the naive app's SQLite file: WAL, synchronous=NORMAL, as omnicanal's default."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in NAIVE_SCHEMA:
        conn.execute(statement)
    return conn


def _naive_rows(body: dict[str, Any], received_at: str) -> list[tuple[object, ...]]:
    messages: list[dict[str, Any]] = body.get("batch", [body])
    return [
        (
            1,
            m["messageId"],
            m.get("type", "track"),
            m.get("event"),
            m.get("userId"),
            m.get("anonymousId"),
            m.get("timestamp", received_at),
            received_at,
            orjson.dumps(m).decode(),
        )
        for m in messages
    ]


def naive_app(path: Path) -> FastAPI:
    """Return the naive app: parse, INSERT OR IGNORE, commit, answer; one request at a time."""
    app = FastAPI()
    conn = open_naive(path)

    @app.post("/v1/batch")
    @app.post("/v1/track")
    async def collect(request: Request) -> Response:
        body = orjson.loads(await request.body())
        rows = _naive_rows(body, datetime.now(UTC).isoformat())
        conn.execute("BEGIN")
        conn.executemany(_NAIVE_INSERT, rows)
        conn.execute("COMMIT")
        return Response(_OK, media_type="application/json")

    return app


def main() -> None:
    """Serve one baseline app with omnicanal's uvicorn settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=("hello", "naive"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, help="SQLite file of the naive app.")
    args = parser.parse_args()
    if args.app == "naive" and args.db is None:
        parser.error("naive needs --db")
    app = hello_app() if args.app == "hello" else naive_app(args.db)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
