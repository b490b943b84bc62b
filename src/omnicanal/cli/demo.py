"""`omnicanal demo`: load the demo data through the real API, then serve."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import typer
import uvicorn
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from omnicanal.api.app import create_app, open_database
from omnicanal.auth import service as auth_service
from omnicanal.auth.schemas import TokenCreate
from omnicanal.cli.context import DataOption, console, settings_for
from omnicanal.collect import service as collect_service
from omnicanal.collect.schemas import SourceCreate
from omnicanal.core.clock import utcnow
from omnicanal.demo import sample

BATCH = 100


def _create_sources(session: Session) -> dict[str, str] | None:
    """Create the demo sources; None when a previous run already did."""
    existing = {s.name for s in collect_service.list_sources(session=session)}
    if {name for name, _ in sample.SOURCES} <= existing:
        return None
    return {
        name: collect_service.create_source(
            session=session,
            data=SourceCreate(
                name=f"{name}-{int(time.time())}" if name in existing else name, channel=channel
            ),
        ).write_key
        for name, channel in sample.SOURCES
    }


def _load(url: str, keys: dict[str, str], messages: list[sample.Message]) -> None:
    """Send the messages in batches through /v1/import, with a progress bar."""
    by_source: dict[str, list[dict[str, object]]] = defaultdict(list)
    for message in messages:
        by_source[message.source].append(message.body)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress, httpx.Client(timeout=60) as client:
        task = progress.add_task("Chargement des événements", total=len(messages))
        for source, bodies in by_source.items():
            for start in range(0, len(bodies), BATCH):
                chunk = bodies[start : start + BATCH]
                answer = client.post(
                    f"{url}/v1/import", json={"batch": chunk}, auth=(keys[source], "")
                )
                answer.raise_for_status()
                progress.advance(task, len(chunk))


def demo(
    customers: int = typer.Option(300, help="How many customers to simulate."),
    months: int = typer.Option(24, help="How many months of history."),
    seed: int = typer.Option(42, help="Random seed: the same seed gives the same data."),
    data: Path | None = DataOption,
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Keep serving once loaded."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Load the demo retailer's events through the real API, then serve the product."""
    settings = settings_for(data)
    db = open_database(settings)
    with db.sessions.begin() as session:
        keys = _create_sources(session)
        token = auth_service.create(session=session, data=TokenCreate(name="demo")).token
    db.dispose()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
        )
    )
    url = f"http://{host}:{port}"
    failure: list[BaseException] = []

    def load() -> None:
        try:
            while not server.started:
                time.sleep(0.05)
            if keys is None:
                console.print("Données de démonstration déjà chargées.")
            else:
                messages = sample.generate(
                    customers=customers, months=months, seed=seed, end=utcnow()
                )
                _load(url, keys, messages)
            console.print(
                f"omnicanal : [bold]{url}[/bold] · API : {url}/docs · "
                f"jeton d'administration : {token}"
            )
        except BaseException as exc:  # reported in the main thread
            failure.append(exc)
            server.should_exit = True
        if not serve:
            server.should_exit = True

    loader = threading.Thread(target=load, name="demo-loader")
    loader.start()
    server.run()
    loader.join()
    if failure:
        raise failure[0]
