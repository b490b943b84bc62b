"""Fixtures: a fresh database per test on SQLite and PostgreSQL, the app, a live server."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from omnicanal.api.app import create_app
from omnicanal.auth import service as auth_service
from omnicanal.auth.schemas import TokenCreate
from omnicanal.collect import service as collect_service
from omnicanal.collect.schemas import SourceCreate
from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database, make_engine
from omnicanal.store.migrate import upgrade
from tests.postgres import Cluster, free_port

BACKENDS = ("sqlite", "postgresql")
_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default="all",
        choices=("all", *BACKENDS),
        help="Database backends to run the store-backed tests on.",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--db")
        metafunc.parametrize("backend", BACKENDS if chosen == "all" else (chosen,))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL: OMNICANAL_TEST_DATABASE_URL, or a cluster started here."""
    given = os.environ.get("OMNICANAL_TEST_DATABASE_URL")
    if given:
        yield given
        return
    cluster = Cluster()
    url = cluster.start()
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """A migrated template database; each test copies it."""
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS omnicanal_template"))
        conn.execute(text("CREATE DATABASE omnicanal_template"))
    admin.dispose()
    engine = make_engine(postgres_server.rsplit("/", 1)[0] + "/omnicanal_template")
    upgrade(engine)
    engine.dispose()
    return "omnicanal_template"


@contextmanager
def _fresh_database(backend: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Create a migrated database (a SQLite file in `folder`, or a PostgreSQL copy of the
    template); drop it afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'omnicanal.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template")
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {template}"))
    yield server.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    with _fresh_database(backend, tmp_path / "data", request) as url:
        yield url


@pytest.fixture
def other_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A second fresh database of the same kind: two ways of doing one thing, compared."""
    with _fresh_database(backend, tmp_path / "other", request) as url:
        database = Database(make_engine(url))
        yield database
        database.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # The processor runs where a test calls it, not behind its back.
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        processor={"enabled": False},
        warehouse={"sync_enabled": False},
    )


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(make_engine(database_url))
    yield database
    database.dispose()


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db)) as test_client:
        yield test_client


@pytest.fixture
def admin_token(db: Database) -> str:
    with db.sessions.begin() as session:
        return auth_service.create(session=session, data=TokenCreate(name="tests")).token


@dataclass
class SourceKey:
    id: int
    write_key: str


def make_source(db: Database, name: str = "web", channel: str = "web") -> SourceKey:
    with db.sessions.begin() as session:
        created = collect_service.create_source(
            session=session, data=SourceCreate(name=name, channel=channel)
        )
    return SourceKey(created.id, created.write_key)


@pytest.fixture
def source(db: Database) -> SourceKey:
    return make_source(db)


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = self.url.rsplit(":", 1)[1]
        with open(self.data_dir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "omnicanal.cli",
                    "serve",
                    "--port",
                    port,
                    "--data",
                    str(self.data_dir),
                ],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start; see server.log")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): no shutdown, no flush."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


@pytest.fixture
def live_server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    """The real `omnicanal serve` in a subprocess, on the test's database."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "OMNICANAL_DATABASE_URL": database_url,
        "OMNICANAL_DATA_DIR": str(data_dir),
    }
    server = LiveServer(f"http://127.0.0.1:{free_port()}", data_dir, env)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data_dir / "tmp", ignore_errors=True)
