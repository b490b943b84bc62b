"""What every command shares: settings from `--data`, the database, output helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import typer
from pydantic import BaseModel
from rich.console import Console
from sqlalchemy.orm import Session

from omnicanal.api.app import open_database
from omnicanal.core.errors import OmnicanalError
from omnicanal.core.settings import Settings, get_settings

console = Console()
err_console = Console(stderr=True)

DataOption = typer.Option(
    None, "--data", help="Data folder (default ./omnicanal-data).", envvar="OMNICANAL_DATA_DIR"
)
JsonOption = typer.Option(False, "--json", help="Print JSON for scripts.")


def settings_for(data: Path | None) -> Settings:
    """Return settings, pointing the data folder at `--data` when given."""
    if data is not None:
        os.environ["OMNICANAL_DATA_DIR"] = str(data)
        get_settings.cache_clear()
    return get_settings()


@contextmanager
def session_for(data: Path | None) -> Iterator[Session]:
    """Open the database (upgrading it) and yield a session that commits on success."""
    db = open_database(settings_for(data))
    try:
        with db.sessions.begin() as session:
            yield session
    except OmnicanalError as exc:
        err_console.print(f"[red]{exc.title}[/red]: {exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a product error into its message (and each field's reason) and exit status 1."""
    try:
        yield
    except OmnicanalError as exc:
        err_console.print(f"[red]{exc.title}[/red]: {exc.detail}")
        for error in getattr(exc, "errors", None) or []:
            err_console.print(f"  {error.get('field')}: {error.get('reason')}")
        raise typer.Exit(1) from exc


def print_json(value: Any) -> None:
    """Print models, lists of models or plain data as JSON."""

    def default(obj: Any) -> Any:
        if isinstance(obj, BaseModel):
            return obj.model_dump(mode="json")
        raise TypeError

    typer.echo(orjson.dumps(value, default=default, option=orjson.OPT_INDENT_2).decode())
