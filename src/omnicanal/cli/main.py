"""The `omnicanal` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
import uvicorn
from rich.table import Table

from omnicanal.api.app import create_app, open_database
from omnicanal.auth import service as auth_service
from omnicanal.auth.schemas import TokenCreate
from omnicanal.cli import collect as collect_cli
from omnicanal.cli import imports as imports_cli
from omnicanal.cli import profiles as profiles_cli
from omnicanal.cli import report as report_cli
from omnicanal.cli import warehouse as warehouse_cli
from omnicanal.cli.context import (
    DataOption,
    JsonOption,
    console,
    print_json,
    session_for,
    settings_for,
)
from omnicanal.cli.demo import demo
from omnicanal.store.migrate import current_revision

app = typer.Typer(help="omnicanal: omnichannel marketing platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tokens_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tokens_app, name="tokens")
collect_cli.register(app)
imports_cli.register(app)
profiles_cli.register(app)
warehouse_cli.register(app)
report_cli.register(app)
app.command()(demo)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    data: Path | None = DataOption,
    workers: int = typer.Option(1, min=1, help="Server processes (one event writer each)."),
) -> None:
    """Serve the API, collection and dashboard, with the background workers."""
    settings = settings_for(data)
    console.print(f"omnicanal on [bold]http://{host}:{port}[/bold] — data in {settings.data_dir}")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 5,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    database = open_database(settings)  # migrate once, before the workers start
    if database.dialect == "sqlite":
        console.print(
            "[yellow]SQLite has one write lock: several server processes take turns at it "
            "and collect less than one (docs/concepts/collection.md). Use --workers with "
            "PostgreSQL.[/yellow]"
        )
    database.dispose()
    os.environ["OMNICANAL_MIGRATE_ON_START"] = "false"
    uvicorn.run("omnicanal.api.app:create_app", factory=True, workers=workers, **options)


@db_app.command("upgrade")
def db_upgrade(data: Path | None = DataOption) -> None:
    """Bring the database schema to the latest version."""
    db = open_database(settings_for(data))
    console.print(f"schema at revision {current_revision(db.engine)}")
    db.dispose()


@tokens_app.command("create")
def tokens_create(
    name: str = typer.Option("admin", help="What the token is for."),
    data: Path | None = DataOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an admin API token and print it (shown once)."""
    with session_for(data) as session:
        token = auth_service.create(session=session, data=TokenCreate(name=name))
    if as_json:
        print_json(token)
    else:
        typer.echo(token.token)


@tokens_app.command("list")
def tokens_list(data: Path | None = DataOption, as_json: bool = JsonOption) -> None:
    """List admin API tokens (never their secrets)."""
    with session_for(data) as session:
        tokens = auth_service.list_(session=session)
    if as_json:
        print_json(tokens)
        return
    table = Table("id", "name", "prefix", "created", "revoked")
    for t in tokens:
        table.add_row(
            str(t.id),
            t.name,
            t.prefix + "…",
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int, data: Path | None = DataOption) -> None:
    """Revoke an admin API token."""
    with session_for(data) as session:
        auth_service.revoke(session=session, token_id=token_id)
    console.print(f"token {token_id} revoked")
