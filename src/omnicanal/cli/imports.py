"""`omnicanal import KIND FILE` and `omnicanal imports list|show`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from omnicanal.api.app import open_database
from omnicanal.cli.context import (
    DataOption,
    JsonOption,
    console,
    err_console,
    print_json,
    settings_for,
)
from omnicanal.collect import importers
from omnicanal.collect.importers import ImportFailedError, ImportOptions
from omnicanal.collect.segment import Limits
from omnicanal.collect.tabular.columns import parse_mapping
from omnicanal.collect.tabular.reader import Progress as ProgressCallback
from omnicanal.core.errors import OmnicanalError
from omnicanal.profiles import imports as profile_imports
from omnicanal.store.engine import Database

SHOWN_ERRORS = 50
R = TypeVar("R")

imports_app = typer.Typer(help="File imports: past runs and their error reports.")


def register(app: typer.Typer) -> None:
    """Attach `import` and `imports` to the main command."""
    profile_imports.register()  # catalogue, stock and costs join the import kinds
    app.command("import")(import_file)
    app.add_typer(imports_app, name="imports", no_args_is_help=True)


def import_file(
    kind: str = typer.Argument(
        ..., help="till, customers, attendance, calls, survey, catalogue, stock or costs."
    ),
    file: Path = typer.Argument(  # noqa: B008
        ..., exists=True, dir_okay=False, readable=True, help="A CSV, Parquet or XLSX file."
    ),
    map_: list[str] = typer.Option(  # noqa: B008 - Typer reads defaults at definition
        [], "--map", help="file_column=canonical_column; repeat for each column."
    ),
    rate: list[str] = typer.Option(  # noqa: B008
        [], "--rate", help="Euros for one unit of a currency, e.g. USD=0.92; repeatable."
    ),
    data: Path | None = DataOption,
    as_json: bool = JsonOption,
) -> None:
    """Import a file of a kind, all or nothing; list every bad row otherwise (exit 1)."""
    settings = settings_for(data)
    try:
        importers.get_kind(kind)
        mapping, rates = parse_mapping(map_), importers.parse_rates(rate)
    except OmnicanalError as exc:
        err_console.print(f"[red]{exc.title}[/red]: {exc.detail}")
        raise typer.Exit(2) from exc
    limits = Limits(settings.collect.max_event_bytes, settings.collect.max_depth)
    db = open_database(settings)
    try:
        with _progress(file.name, enabled=not as_json) as progress:
            options = ImportOptions(mapping=mapping, rates=rates, limits=limits, progress=progress)
            run = importers.run_import(db=db, kind=kind, path=file, options=options)
    except ImportFailedError as exc:
        _failed(exc, as_json)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    if as_json:
        print_json(run)
        return
    console.print(
        f"[green]imported[/green] {run.filename} as {run.kind} (import {run.id}): "
        f"{run.rows:,} rows, {run.stored:,} new, {run.already:,} already there"
    )


@contextmanager
def _progress(name: str, *, enabled: bool) -> Iterator[ProgressCallback | None]:
    """Show a bar of the file read so far, with the rows read, on stderr."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows read"),
        TimeElapsedColumn(),
        console=err_console,
    )
    task = bar.add_task(f"reading {name}", total=None, rows=0)

    def update(rows: int, done: int, total: int) -> None:
        description = "writing" if total and done >= total else f"reading {name}"
        bar.update(task, completed=done, total=total or None, rows=rows, description=description)

    with bar:
        yield update


def _failed(exc: ImportFailedError, as_json: bool) -> None:
    if as_json:
        print_json({**exc.run.model_dump(mode="json"), "error_count": exc.count})
        return
    _error_table(exc.run.errors)
    err_console.print(
        f"[red]{exc.count:,} error(s) in {exc.run.filename}[/red]: nothing was imported "
        f"(import {exc.run.id})."
    )


def _error_table(errors: list[dict[str, Any]]) -> None:
    table = Table("file", "line", "column", "reason", title="Errors")
    for error in errors[:SHOWN_ERRORS]:
        line = error.get("line")
        table.add_row(
            str(error.get("file") or ""),
            "" if line is None else str(line),
            str(error.get("column") or ""),
            str(error.get("reason") or ""),
        )
    err_console.print(table)
    if len(errors) > SHOWN_ERRORS:
        err_console.print(f"… and {len(errors) - SHOWN_ERRORS:,} more listed in the report")


@imports_app.command("list")
def imports_list(
    limit: int = typer.Option(50, min=1, max=500),
    data: Path | None = DataOption,
    as_json: bool = JsonOption,
) -> None:
    """List import runs, newest first."""
    runs = _with_db(data, lambda db: importers.list_imports(db=db, limit=limit))
    if as_json:
        print_json(runs)
        return
    table = Table("id", "kind", "file", "status", "rows", "new", "already", "errors", "started")
    for run in runs:
        table.add_row(
            str(run.id),
            run.kind,
            run.filename,
            run.status,
            f"{run.rows:,}",
            f"{run.stored:,}",
            f"{run.already:,}",
            str(len(run.errors)),
            f"{run.started_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@imports_app.command("show")
def imports_show(
    import_id: int, data: Path | None = DataOption, as_json: bool = JsonOption
) -> None:
    """Show one import run and its errors."""
    run = _with_db(data, lambda db: importers.get_import(db=db, import_id=import_id))
    if as_json:
        print_json(run)
        return
    console.print(
        f"import {run.id}: {run.filename} as {run.kind}, {run.status}; {run.rows:,} rows, "
        f"{run.stored:,} new, {run.already:,} already there"
    )
    if run.errors:
        _error_table(run.errors)


@imports_app.command("kinds")
def imports_kinds(as_json: bool = JsonOption) -> None:
    """List the kinds of file and their columns (* required)."""
    kinds = importers.list_kinds()
    if as_json:
        print_json(
            [
                {"name": k.name, "summary": k.summary, "columns": [c.name for c in k.columns]}
                for k in kinds
            ]
        )
        return
    table = Table("kind", "columns (* required)")
    for kind in kinds:
        names = ", ".join(c.name + ("*" if c.required else "") for c in kind.columns)
        table.add_row(kind.name, names)
    console.print(table)


def _with_db(data: Path | None, work: Callable[[Database], R]) -> R:
    db = open_database(settings_for(data))
    try:
        return work(db)
    except OmnicanalError as exc:
        err_console.print(f"[red]{exc.title}[/red]: {exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
