"""Servers under test, run as subprocesses: omnicanal, the baseline apps, PostgreSQL."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
from tests.postgres import Cluster, free_port, postgres_binary

_READY_TIMEOUT = 60.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


_SHOWN = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "shared_buffers")


def _stat_fields(pid: int) -> list[str]:
    """Return the fields of /proc/PID/stat after the command name (state is [0])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return text.rpartition(")")[2].split()


def _tree(pid: int) -> list[int]:
    """Return a process and its descendants (a server's worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def peak_memory_kib(pid: int | None) -> int:
    """Return one process's peak resident memory (VmHWM) in KiB, 0 once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return sum(int(line.split()[1]) for line in lines if line.startswith("VmHWM:"))


@dataclass
class Server:
    """One HTTP server process on a loopback port."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    authorization: str | None = None  # the value of the Authorization header to send

    @property
    def pid(self) -> int:
        """Return the server's process id."""
        return self.process.pid

    def url(self, path: str) -> str:
        """Return the URL of a path on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def peak_memory_kib(self) -> int:
        """Return the peak resident memory (VmHWM) in KiB, summed over its processes."""
        return sum(peak_memory_kib(pid) for pid in _tree(self.pid))

    def cpu_seconds(self) -> float:
        """Return the user + system CPU time used so far by the server and its workers."""
        ticks = 0
        for pid in _tree(self.pid):
            fields = _stat_fields(pid)
            if fields:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / _CLK_TCK


def basic_auth(write_key: str) -> str:
    """Return the Authorization header for a write key (Basic, key as user, no password)."""
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}): {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not listening on {port} after {_READY_TIMEOUT:.0f} s")


@contextmanager
def serve(command: list[str], *, env: dict[str, str], port: int, log: Path) -> Iterator[Server]:
    """Start a server, wait until it listens, and stop it (SIGINT, then SIGKILL) after."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_listening(process, port, log)
        yield Server(process, port, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def omnicanal_cli(*args: str, env: dict[str, str]) -> str:
    """Run `python -m omnicanal.cli ARGS` and return its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "omnicanal.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"omnicanal {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode()


def create_source(data: Path, env: dict[str, str]) -> str:
    """Create the `bench` source and return its write key."""
    out = omnicanal_cli(
        "sources", "create", "bench", "--channel", "web", "--data", str(data), env=env
    )
    return out.strip().splitlines()[-1]


def stored_counts(data: Path, env: dict[str, str]) -> tuple[int, int]:
    """Return (events, rejected) as `omnicanal stats --json` counts them."""
    stats = orjson.loads(omnicanal_cli("stats", "--json", "--data", str(data), env=env))
    return int(stats["events"]), int(stats["rejected"])


def omnicanal_command(port: int, data: Path, *, workers: int = 1) -> list[str]:
    """Return the command that serves omnicanal on a port with a data folder."""
    return [
        sys.executable,
        "-m",
        "omnicanal.cli",
        "serve",
        "--port",
        str(port),
        "--data",
        str(data),
        "--workers",
        str(workers),
    ]


def app_command(app: str, port: int, db: Path | None = None) -> list[str]:
    """Return the command that serves a baseline app of bench/apps.py."""
    extra = ["--db", str(db)] if db is not None else []
    return [sys.executable, "-m", "bench.apps", app, "--port", str(port), *extra]


class EventProbe:
    """Reads how many events a store holds now (its largest row id), cheaply, read-only."""

    def __init__(
        self,
        *,
        sqlite: Path | None = None,
        postgres: str | None = None,
        table: str = "collect_event",
    ) -> None:
        self.sqlite, self.postgres = sqlite, postgres
        self.query = f"SELECT coalesce(max(id), 0) FROM {table}"
        self._conn: sqlite3.Connection | psycopg.Connection[Any] | None = None

    def __call__(self) -> int:
        """Return the largest event id, which counts the events stored so far."""
        if self._conn is None:
            if self.sqlite is not None:
                self._conn = sqlite3.connect(f"file:{self.sqlite}?mode=ro", uri=True)
            else:
                dsn = str(self.postgres).replace("postgresql+psycopg://", "postgresql://")
                self._conn = psycopg.connect(dsn, autocommit=True)
        row = self._conn.execute(self.query).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class DurableCluster(Cluster):
    """A throwaway PostgreSQL cluster configured as in production: fsync and sync commit on.

    Only memory is raised from the defaults (shared_buffers, max_wal_size), as any
    production server would; nothing that trades durability for speed.
    """

    settings = (
        "-c shared_buffers=1GB -c max_wal_size=4GB -c max_connections=200 "
        "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
    )

    def start(self) -> str:
        """Create and start the cluster; return the URL of its `postgres` database."""
        data = self.root / "data"
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        self._run(
            postgres_binary("initdb"),
            *("-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"),
        )
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} {self.settings}"
        self._run(
            postgres_binary("pg_ctl"),
            *("-D", str(data), "-o", options, "-l", str(self.root / "log"), "-w", "start"),
        )
        return self.url("postgres")

    def url(self, database: str) -> str:
        """Return the SQLAlchemy URL of a database of this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (empty, or a copy of `template`), checkpoint, return its URL."""
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
            conn.execute("CHECKPOINT")
        return self.url(name)

    def describe(self) -> str:
        """Return the server's version and the settings that matter here, as it reports them."""
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        names = ("server_version", *_SHOWN)
        with psycopg.connect(dsn, autocommit=True) as conn:
            values = [str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names]  # type: ignore[index]
        return f"{values[0]}, " + ", ".join(
            f"{n}={v}" for n, v in zip(_SHOWN, values[1:], strict=True)
        )

    def cpu_seconds(self) -> float:
        """Return the CPU time of the postmaster and its processes (live and reaped)."""
        pid = int((self.root / "data" / "postmaster.pid").read_text().split()[0])
        seconds = sum(int(v) for v in _stat_fields(pid)[11:15])
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(pid):
                fields = _stat_fields(int(entry.name))
                if fields and int(fields[1]) == pid:
                    seconds += int(fields[11]) + int(fields[12])
        return seconds / _CLK_TCK


__all__ = ["DurableCluster", "Server", "free_port", "serve"]
