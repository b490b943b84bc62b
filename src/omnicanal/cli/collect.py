"""Commands over collection: sources, rejected events, the live log, counts."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table

from omnicanal.api.app import open_database
from omnicanal.cli.context import (
    DataOption,
    JsonOption,
    console,
    err_console,
    print_json,
    session_for,
    settings_for,
)
from omnicanal.collect import service
from omnicanal.collect.schemas import SourceCreate

sources_app = typer.Typer(help="Event sources and their write keys.", no_args_is_help=True)
rejected_app = typer.Typer(help="Refused events, kept with their reason.", no_args_is_help=True)
events_app = typer.Typer(help="The event log.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the collection commands to the main command."""
    app.add_typer(sources_app, name="sources")
    app.add_typer(rejected_app, name="rejected")
    app.add_typer(events_app, name="events")
    app.command()(stats)


@sources_app.command("create")
def sources_create(
    name: str,
    channel: str = typer.Option(..., "--channel", help="web, app, store:<id>, email, ads:<net>…"),
    data: Path | None = DataOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a source and print its write key (shown once)."""
    try:
        body = SourceCreate(name=name, channel=channel)
    except ValueError as exc:
        err_console.print(f"[red]Invalid source[/red]: {exc}")
        raise typer.Exit(2) from exc
    with session_for(data) as session:
        source = service.create_source(session=session, data=body)
    if as_json:
        print_json(source)
    else:
        typer.echo(source.write_key)


@sources_app.command("list")
def sources_list(data: Path | None = DataOption, as_json: bool = JsonOption) -> None:
    """List sources."""
    with session_for(data) as session:
        sources = service.list_sources(session=session)
    if as_json:
        print_json(sources)
        return
    table = Table("id", "name", "channel", "write key", "created", "disabled")
    for s in sources:
        table.add_row(
            str(s.id),
            s.name,
            s.channel,
            s.write_key_prefix + "…",
            f"{s.created_at:%Y-%m-%d %H:%M}",
            f"{s.disabled_at:%Y-%m-%d %H:%M}" if s.disabled_at else "",
        )
    console.print(table)


@sources_app.command("disable")
def sources_disable(source_id: int, data: Path | None = DataOption) -> None:
    """Stop accepting events from a source."""
    with session_for(data) as session:
        service.disable_source(session=session, source_id=source_id)
    console.print(f"source {source_id} disabled")


@rejected_app.command("list")
def rejected_list(
    source: int | None = typer.Option(None, help="Only this source id."),
    limit: int = typer.Option(50, min=1, max=1000),
    data: Path | None = DataOption,
    as_json: bool = JsonOption,
) -> None:
    """List refused events and requests with their reasons, newest first."""
    with session_for(data) as session:
        page = service.list_rejected(session=session, source_id=source, limit=limit)
    if as_json:
        print_json(page.items)
        return
    table = Table("id", "received", "source", "endpoint", "index", "status", "reasons")
    for r in page.items:
        reasons = "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in r.errors)
        table.add_row(
            str(r.id),
            f"{r.received_at:%Y-%m-%d %H:%M:%S}",
            str(r.source_id),
            r.endpoint,
            "" if r.batch_index is None else str(r.batch_index),
            str(r.status),
            reasons,
        )
    console.print(table)


@events_app.command("tail")
def events_tail(
    last: int = typer.Option(20, help="Show this many recent events first."),
    interval: float = typer.Option(1.0, help="Seconds between reads."),
    once: bool = typer.Option(False, help="Print the recent events and stop."),
    data: Path | None = DataOption,
) -> None:
    """Follow the event log live."""
    db = open_database(settings_for(data))
    with db.sessions() as session:
        after = max(service.last_event_id(session=session) - last, 0)
    table = _tail_table()
    try:
        with Live(table, console=console, refresh_per_second=4, transient=once) as live:
            while True:
                with db.sessions() as session:
                    page = service.list_events(session=session, after=after, limit=500)
                for e in page.items:
                    table.add_row(
                        str(e.id),
                        f"{e.received_at:%H:%M:%S}",
                        str(e.source_id),
                        e.type,
                        e.event or "",
                        e.user_id or "",
                        e.anonymous_id or "",
                    )
                after = page.next_after
                if once:
                    break
                if table.row_count > 200:
                    table = _tail_table()
                    live.update(table)
                time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        db.dispose()
    if once:
        console.print(table)


def _tail_table() -> Table:
    return Table("id", "received", "source", "type", "event / name", "userId", "anonymousId")


def stats(data: Path | None = DataOption, as_json: bool = JsonOption) -> None:
    """Count events by type and source, rejected events, and profiles."""
    with session_for(data) as session:
        result = service.stats(session=session)
    if as_json:
        print_json(result)
        return
    table = Table("source", "channel", "events", "rejected", "by type")
    for s in result.sources:
        by_type = ", ".join(f"{k} {v}" for k, v in s.events.items())
        table.add_row(s.name, s.channel, str(sum(s.events.values())), str(s.rejected), by_type)
    console.print(table)
    console.print(
        f"events {result.events} · rejected {result.rejected} · profiles {result.profiles}"
        f" · not yet processed {result.unprocessed}"
    )
