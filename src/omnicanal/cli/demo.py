"""`omnicanal demo`: generate the demo retailer, load it through the real API, then serve.

The world is generated into `<data>/demo/` (import files) and `<data>/ground-truth/`
(the true answers, for evaluation). Messages go through `/v1/import` and files
through the importers API of the running server, exactly as a retailer's systems
would send them; then the processor works the log, probabilistic matching joins the
noisy offline records, and the product serves. Running it again on a loaded folder
loads nothing twice.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import typer
import uvicorn
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import text

from omnicanal.api.app import create_app, open_database
from omnicanal.auth import service as auth_service
from omnicanal.auth.schemas import TokenCreate
from omnicanal.cli.context import DataOption, console, settings_for
from omnicanal.cli.profiles import MATCH_STEPS, match_timing
from omnicanal.collect import service as collect_service
from omnicanal.collect.schemas import SourceCreate
from omnicanal.core.errors import InvalidError
from omnicanal.core.settings import Settings
from omnicanal.demo.load import LoadReport, load
from omnicanal.demo.retailer import SOURCES, generate
from omnicanal.identity import linkage
from omnicanal.profiles.processor import BatchResult, Processor
from omnicanal.store.engine import Database
from omnicanal.warehouse import sync as warehouse_sync


def _create_sources(db: Database, sources: list[tuple[str, str]]) -> dict[str, str] | None:
    """Create the demo sources; None when a previous run already did."""
    with db.sessions.begin() as session:
        existing = {s.name for s in collect_service.list_sources(session=session)}
        if {name for name, _ in sources} <= existing:
            return None
        return {
            name: collect_service.create_source(
                session=session, data=SourceCreate(name=name, channel=channel)
            ).write_key
            for name, channel in sources
            if name not in existing
        }


# The whole demo log is one backlog: five times the live batch takes a tenth less time
# (fewer commits rewrite the same index pages), docs/benchmarks.md.
DRAIN_BATCH = 10_000


def _generate_and_send(
    order: _Order, data_dir: Path, url: str, keys: dict[str, str], token: str
) -> LoadReport:
    """Generate the retailer and send it to the server, in a process of its own.

    The server (this command's parent process) parses and stores what arrives while
    this process draws the next messages: each has an interpreter and a core, where
    one interpreter doing both kept the load to about one core.
    """
    dataset = generate(
        customers=order.customers,
        months=order.months,
        seed=order.seed,
        out=data_dir / "demo",
        truth_dir=data_dir / "ground-truth",
    )
    return load(dataset, url, keys, token, console=console)


def _process(db: Database, settings: Settings) -> Processor:
    """Work the whole log with a progress bar; return the processor to keep running."""
    with db.engine.connect() as conn:
        total = conn.execute(text("SELECT COUNT(*) FROM collect_event")).scalar_one()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("Traitement : identités, profils, commandes", total=total)

        def advance(result: BatchResult) -> None:
            progress.advance(task, result.events)

        processor = Processor.configured(db, settings, batch_size=DRAIN_BATCH, on_batch=advance)
        try:
            processor.drain()
        finally:
            processor.close()  # started again by the next backlog, if one comes
    processor.on_batch = None
    processor.batch_size = settings.processor.batch_size  # live events: short batches
    return processor


def _match(db: Database, settings: Settings) -> None:
    """Join the noisy offline records by probabilistic matching, when there are enough."""
    try:
        with (
            console.status("Rapprochement probabiliste des fiches hors ligne…") as status,
            db.engine.begin() as conn,
        ):
            matched = linkage.run(
                conn,
                settings.identity,
                progress=lambda step, n: status.update(
                    f"Rapprochement probabiliste : {MATCH_STEPS[step](n)}…".replace(",", " ")
                ),
            )
    except InvalidError as exc:  # too few people to learn from, in a tiny demo
        console.print(f"Rapprochement probabiliste non lancé : {exc.detail}")
        return
    counts = f"{matched.merged:,} fusions et {matched.queued:,} paires à vérifier"
    console.print(f"Rapprochement : {counts.replace(',', ' ')}, en {match_timing(matched)}.")


def _sync_warehouse(db: Database, settings: Settings) -> None:
    """Fill the analytics warehouse, so every report answers as soon as the demo is up."""
    with console.status("Entrepôt analytique : synchronisation…"):
        done = warehouse_sync.sync(db, settings)
    console.print(
        f"Entrepôt analytique : {sum(t.rows for t in done.tables):,} lignes en "
        f"{done.seconds:.0f} s.".replace(",", " ")
    )


@dataclass(frozen=True)
class _Order:
    """What the demo was asked for."""

    customers: int
    months: int
    seed: int


def _loading(settings: Settings) -> Settings:
    """The server's settings while the demo loads.

    The demo runs the processor itself (after the load, with a progress bar) rather than
    beside collection, where both would share the write lock. The warehouse likewise
    syncs once, after processing, then in the background.
    """
    return settings.model_copy(
        update={
            "processor": settings.processor.model_copy(update={"enabled": False}),
            "warehouse": settings.warehouse.model_copy(update={"sync_enabled": False}),
        }
    )


def _load(db: Database, settings: Settings, order: _Order, url: str, token: str) -> Processor:
    """Generate and load the retailer, process, match and sync; return the processor."""
    started = time.perf_counter()
    keys = _create_sources(db, list(SOURCES))
    if keys is None:
        console.print("Données de démonstration déjà chargées.")
    else:
        console.print("Génération et envoi du commerçant de démonstration…")
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            sent = pool.submit(_generate_and_send, order, settings.data_dir, url, keys, token)
            report = sent.result()
        console.print(
            f"{report.messages:,} messages et {len(report.imports)} fichiers chargés "
            f"en {report.seconds:.0f} s.".replace(",", " ")
        )
    processor = _process(db, settings)
    if keys is not None:
        _match(db, settings)
    _sync_warehouse(db, settings)
    console.print(
        f"Démo prête en {time.perf_counter() - started:.0f} s. Vérité terrain : "
        f"{settings.data_dir / 'ground-truth'}"
    )
    return processor


def _background(
    db: Database, settings: Settings, processor: Processor, stop: threading.Event
) -> list[threading.Thread]:
    """Start the processor, and the warehouse sync when enabled, until `stop`."""
    workers = [threading.Thread(target=processor.run, args=(stop,), daemon=True)]
    if settings.warehouse.sync_enabled:
        workers.append(
            threading.Thread(target=warehouse_sync.run, args=(stop, settings, db), daemon=True)
        )
    for worker in workers:
        worker.start()
    return workers


def demo(
    customers: int = typer.Option(20_000, help="How many customers to simulate."),
    months: int = typer.Option(24, help="How many months of history."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same retailer."),
    data: Path | None = DataOption,
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Keep serving once loaded."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Load the demo retailer through the real API and importers, then serve the product."""
    settings = settings_for(data)
    db = open_database(settings)
    with db.sessions.begin() as session:
        token = auth_service.create(session=session, data=TokenCreate(name="demo")).token
    config = uvicorn.Config(
        create_app(_loading(settings), db),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    url = f"http://{host}:{port}"
    failure: list[BaseException] = []
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def run() -> None:
        try:
            while not server.started:
                time.sleep(0.05)
            processor = _load(db, settings, _Order(customers, months, seed), url, token)
            workers.extend(_background(db, settings, processor, stop))
            console.print(
                f"omnicanal : [bold]{url}[/bold] · API : {url}/docs · "
                f"jeton d'administration : {token}"
            )
        except BaseException as exc:  # reported in the main thread
            failure.append(exc)
            server.should_exit = True
        if not serve:
            server.should_exit = True

    loader = threading.Thread(target=run, name="demo-loader")
    loader.start()
    server.run()
    loader.join()
    stop.set()
    for worker in workers:
        worker.join()
    db.dispose()
    if failure:
        raise failure[0]
