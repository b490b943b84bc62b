"""Assemble the application: API, collection, dashboard and background workers."""

from __future__ import annotations

import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from omnicanal import __version__
from omnicanal.analytics import catalogue, reports_api  # noqa: F401  (catalogue registers reports)
from omnicanal.api import problems
from omnicanal.collect import api as collect_api
from omnicanal.collect import browser, imports_api
from omnicanal.collect.cors import CollectCorsMiddleware
from omnicanal.collect.ingest import Collector
from omnicanal.collect.writer import EventWriter
from omnicanal.core.runtime import tune_gc
from omnicanal.core.settings import Settings, get_settings
from omnicanal.profiles import api as profiles_api
from omnicanal.profiles import catalogue_api
from omnicanal.profiles import imports as profile_imports
from omnicanal.profiles.processor import Processor
from omnicanal.profiles.worker import ProcessorProcess, separable
from omnicanal.store.engine import Database, make_engine
from omnicanal.store.migrate import upgrade
from omnicanal.warehouse import sync as warehouse_sync
from omnicanal.web import pages

DESCRIPTION = """
omnicanal collects every interaction of a retailer's customers, on every channel.

* **Collection** (`/v1/...`) follows the Segment HTTP Tracking API: point the Segment or
  RudderStack SDKs at this host. Authenticate with a source's write key as HTTP Basic user.
* **Management** (`/api/v1/...`) needs an admin token: `Authorization: Bearer <token>`
  (`omnicanal tokens create`).
* **Profiles** (`/api/v1/profiles`): one person across every channel, and why their
  records were joined.
* Errors are RFC 9457 problem details (`application/problem+json`).
"""


def open_database(settings: Settings) -> Database:
    """Open the configured database and bring its schema up to date."""
    db = Database(
        make_engine(
            settings.resolved_database_url(), sqlite_synchronous=settings.sqlite_synchronous
        )
    )
    upgrade(db.engine)
    return db


def tune_threads() -> None:
    """Hand the interpreter between threads every millisecond instead of every five.

    The event writer gives the GIL up for each statement SQLite runs and then waits for
    the event loop to hand it back, which Python does only when the switch interval
    elapses: at 5 ms, a group commit of four statements spent most of its time waiting,
    and requests waited with it. At 1 ms collection takes 10-15 % more events per second
    (docs/benchmarks.md, "Collection — 2026-11-24 12:26 UTC").
    """
    sys.setswitchinterval(0.001)


def _start_workers(
    database: Database, settings: Settings, stop: threading.Event
) -> list[threading.Thread]:
    """Start the background work `serve` runs beside the API, until `stop` is set."""
    workers: list[threading.Thread] = []
    if settings.processor.enabled:
        processor: Processor | ProcessorProcess
        if settings.processor.own_process and separable(database):
            processor = ProcessorProcess(database, settings)
        else:
            processor = Processor.configured(database, settings)
        workers.append(
            threading.Thread(
                target=processor.run, args=(stop,), name="event-processor", daemon=True
            )
        )
    if settings.warehouse.sync_enabled:
        workers.append(
            threading.Thread(
                target=warehouse_sync.run,
                args=(stop, settings, database),
                name="warehouse-sync",
                daemon=True,
            )
        )
    for worker in workers:
        worker.start()
    return workers


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    """Build the application; the database opens when it starts."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or open_database(settings)
        writer = EventWriter(
            database,
            max_rows=settings.collect.group_commit_rows,
            dedup_window=settings.collect.dedup_window,
        )
        writer.start()
        tune_gc()
        tune_threads()
        app.state.db = database
        app.state.settings = settings
        app.state.collector = Collector(database, settings.collect, writer)
        stop = threading.Event()
        workers = _start_workers(database, settings, stop)
        try:
            yield
        finally:
            stop.set()
            for worker in workers:
                worker.join()
            writer.stop()
            if db is None:
                database.dispose()

    app = FastAPI(
        title="omnicanal", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    problems.install(app)
    app.include_router(collect_api.tracking)
    app.include_router(collect_api.beacon)
    app.include_router(collect_api.management)
    profile_imports.register()  # catalogue, stock and costs join the import kinds
    app.include_router(imports_api.router)
    app.include_router(browser.router)
    app.include_router(profiles_api.router)
    app.include_router(catalogue_api.router)
    app.include_router(reports_api.build_router())
    app.include_router(pages.router)
    app.add_middleware(CollectCorsMiddleware, origins=settings.collect.allowed_origins)
    return app
