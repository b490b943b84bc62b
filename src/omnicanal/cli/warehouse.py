"""`omnicanal warehouse sync|status`: the analytics warehouse, a DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from omnicanal.api.app import open_database
from omnicanal.cli.context import (
    DataOption,
    JsonOption,
    console,
    err_console,
    print_json,
    reported_errors,
    settings_for,
)
from omnicanal.warehouse import sync as warehouse_sync
from omnicanal.warehouse.connect import Warehouse
from omnicanal.warehouse.load import Progress as ProgressCallback
from omnicanal.warehouse.state import WarehouseStatus

warehouse_app = typer.Typer(
    help="The analytics warehouse: a DuckDB file kept in step with the store.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Attach `warehouse` to the main command."""
    app.add_typer(warehouse_app, name="warehouse")


def _warn(message: str) -> None:
    err_console.print(f"[yellow]{message}[/yellow]")


@warehouse_app.command("sync")
def sync_command(
    data: Path | None = DataOption,
    full: bool = typer.Option(
        False, "--full", help="Rebuild from scratch into a new file, swapped in at the end."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Bring the warehouse up to date with the store (only what changed, unless --full)."""
    settings = settings_for(data)
    db = open_database(settings)
    warehouse = Warehouse.from_settings(settings, on_wait=_warn)
    try:
        with reported_errors(), _progress(enabled=not as_json) as progress:
            result = warehouse_sync.sync(
                db, settings, full=full, warehouse=warehouse, progress=progress
            )
    finally:
        db.dispose()
    if as_json:
        print_json(result.to_dict())
        return
    table = Table("table", "written", "deleted", "rows", title="Warehouse sync")
    for t in result.tables:
        table.add_row(t.table, f"{t.written:,}", f"{t.deleted:,}", f"{t.rows:,}")
    console.print(table)
    kind = "rebuilt" if result.full else "synced"
    console.print(
        f"[green]{kind}[/green] {warehouse.path} up to event {result.event_id:,} "
        f"in {result.seconds:.1f} s: {result.written:,} rows written, "
        f"{result.deleted:,} deleted"
    )


@contextmanager
def _progress(*, enabled: bool) -> Iterator[ProgressCallback | None]:
    """Show one bar per table as the sync reads it, on stderr."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.completed:>12,} rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(step: str, done: int, total: int | None) -> None:
        if step not in tasks:
            tasks[step] = bar.add_task(step, total=total)
        bar.update(tasks[step], completed=done, total=total)

    with bar:
        yield update


@warehouse_app.command("status")
def status_command(data: Path | None = DataOption, as_json: bool = JsonOption) -> None:
    """Show the watermarks, rows, file size and last sync, and the lag behind the store."""
    settings = settings_for(data)
    db = open_database(settings)
    warehouse = Warehouse.from_settings(settings, on_wait=_warn)
    try:
        with reported_errors():
            found = warehouse_sync.status(db, settings, warehouse=warehouse)
    finally:
        db.dispose()
    if as_json:
        print_json(found.to_dict())
        return
    _print_status(found)


def _print_status(found: WarehouseStatus) -> None:
    if not found.exists:
        console.print(
            f"No warehouse at {found.path} yet; `omnicanal warehouse sync` builds it. "
            f"The store has processed {found.store_checkpoint:,} events."
        )
        return
    last = found.last_sync
    when = f"{last.started:%Y-%m-%d %H:%M:%S} UTC, {last.seconds:.1f} s" if last else "never"
    console.print(f"[bold]{found.path}[/bold] — {found.size_bytes / 2**20:,.1f} MiB")
    console.print(
        f"last sync: {when} · {found.syncs:,} sync{'s' if found.syncs != 1 else ''} "
        f"remembered · store at event "
        f"{found.store_checkpoint:,} · lag {found.lag_events:,} events"
        + (f" · {_ago(last.started)}" if last else "")
    )
    marks = Table("watermark", "value", title="Watermarks")
    for name, value in found.watermarks.items():
        marks.add_row(name, f"{value:,}")
    console.print(marks)
    rows = Table("table", "rows", title="Tables")
    for name, count in found.rows.items():
        rows.add_row(name, f"{count:,}")
    console.print(rows)


def _ago(started: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC).replace(tzinfo=None) - started).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
