"""Commands over people: process the log, show and search profiles, undo merges."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.table import Table
from sqlalchemy import text

from omnicanal.api.app import open_database
from omnicanal.cli.context import (
    DataOption,
    JsonOption,
    console,
    err_console,
    print_json,
    settings_for,
)
from omnicanal.core.errors import OmnicanalError
from omnicanal.identity import linkage
from omnicanal.identity import service as identity
from omnicanal.profiles import service
from omnicanal.profiles.processor import BatchResult, Processor

profiles_app = typer.Typer(help="People: the profile 360, search, merges.", no_args_is_help=True)
identity_app = typer.Typer(help="The identity graph.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the commands to the main app."""
    app.add_typer(profiles_app, name="profiles")
    app.add_typer(identity_app, name="identity")
    app.command("process")(process)


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def process(
    data: Path | None = DataOption,
    once: bool = typer.Option(False, "--once", help="Process what is in the log, then stop."),
    batch: int = typer.Option(2_000, "--batch", min=1, help="Events per transaction."),
) -> None:
    """Process the event log: identity, profiles, orders, consents (a worker process)."""
    settings = settings_for(data)
    db = open_database(settings)
    stop = threading.Event()
    seen = {"events": 0, "started": time.monotonic()}

    def report(result: BatchResult) -> None:
        seen["events"] += result.events

    processor = Processor.configured(db, settings, batch_size=batch, on_batch=report)
    try:
        if once:
            with console.status("Traitement du journal d'événements…"):
                total = processor.drain()
            console.print(f"{total:,} événements traités.".replace(",", " "))
            return
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        console.print("Processing the event log; Ctrl+C to stop.")
        try:
            processor.run(stop)
        except KeyboardInterrupt:
            stop.set()
        elapsed = time.monotonic() - seen["started"]
        console.print(f"{seen['events']:,} events in {elapsed:.0f} s.")
    finally:
        processor.close()
        db.dispose()


def _open(data: Path | None) -> Any:
    return open_database(settings_for(data))


@profiles_app.command("show")
def show(
    reference: str = typer.Argument(..., help="Profile id, email, phone, card or userId."),
    data: Path | None = DataOption,
    as_json: bool = JsonOption,
    timeline: int = typer.Option(30, "--timeline", help="Events of the timeline to show."),
) -> None:
    """Show one person's 360 view."""
    db = _open(data)
    try:
        with db.engine.connect() as conn:
            found = service.profile_360(conn, reference, timeline=timeline)
    except OmnicanalError as exc:
        err_console.print(f"[red]{exc.title}[/red]: {exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    if as_json:
        print_json(found)
        return
    _print_profile(found)


def _print_profile(p: dict[str, Any]) -> None:
    name = " ".join(x for x in (p.get("first_name"), p.get("last_name")) if x) or "(sans nom)"
    console.rule(f"[bold]Profil {p['id']}[/bold] — {name}")
    console.print(
        f"e-mail {p.get('email') or '—'} · téléphone {p.get('phone') or '—'} · carte "
        f"{p.get('card') or '—'} · {p['events']} événements · vu du {_when(p['first_seen_ms'])} "
        f"au {_when(p['last_seen_ms'])} · {p['profiles']} fiche(s) réunie(s)"
    )
    ident = Table("identifiant", "valeur", "fiche", "source", "vu d'abord", title="Identités")
    for i in p["identities"]:
        value = i["value"] + (" [yellow](partagé)[/yellow]" if i["shared"] else "")
        ident.add_row(
            i["kind"], value, str(i["profile_id"]), i["source"] or "", _when(i["first_seen_ms"])
        )
    console.print(ident)
    if p["merges"]:
        _print_merges(p["merges"])
    _print_channels(p)
    if p["consents"]["current"]:
        _print_consents(p["consents"]["current"])
    timeline = Table(
        "date", "canal", "magasin", "type", "événement", "source", title="Parcours (récent d'abord)"
    )
    for e in p["timeline"]:
        timeline.add_row(
            _when(e["timestamp_ms"]),
            e["channel"],
            e.get("store") or "",
            e["type"],
            e["event"] or "",
            e["source"] or "",
        )
    console.print(timeline)


def _print_merges(found: list[dict[str, Any]]) -> None:
    merges = Table(
        "fusion",
        "fiche gardée",
        "fiche réunie",
        "règle",
        "preuve",
        "annulée",
        title="Pourquoi ces fiches sont réunies",
    )
    for m in found:
        evidence = ", ".join(f"{k}={v}" for k, v in m["evidence"].items())
        merges.add_row(
            str(m["id"]),
            str(m["survivor_id"]),
            str(m["merged_id"]),
            m["rule"],
            evidence,
            _when(m["undone_ms"]),
        )
    console.print(merges)


def _print_channels(p: dict[str, Any]) -> None:
    channels = Table("canal", "classe", "événements", "premier", "dernier", title="Canaux")
    for c in p["channels"]:
        channels.add_row(
            c["channel"],
            c["media_class"],
            str(c["events"]),
            _when(c["first_seen_ms"]),
            _when(c["last_seen_ms"]),
        )
    console.print(channels)
    if p["orders_by_channel"]:
        orders = Table("canal", "commandes", "CA €", "remboursé €", title="Commandes par canal")
        for o in p["orders_by_channel"]:
            orders.add_row(
                o["channel"],
                str(o["orders"]),
                f"{o['revenue_eur']:.2f}",
                f"{o['refunded_eur']:.2f}",
            )
        console.print(orders)


def _print_consents(current: list[dict[str, Any]]) -> None:
    consents = Table(
        "finalité", "canal", "accord", "source", "version", "date", title="Consentements"
    )
    for c in current:
        consents.add_row(
            c["purpose"],
            c["channel"],
            "oui" if c["granted"] else "non",
            c["source"] or "",
            c["wording_version"] or "",
            _when(c["recorded_ms"]),
        )
    console.print(consents)


@profiles_app.command("search")
def search(
    query: str,
    data: Path | None = DataOption,
    as_json: bool = JsonOption,
    limit: int = typer.Option(50, "--limit"),
) -> None:
    """Find people by email, phone, loyalty card or name."""
    db = _open(data)
    try:
        with db.engine.connect() as conn:
            found = service.search(conn, query, limit)
    finally:
        db.dispose()
    if as_json:
        print_json(found)
        return
    table = Table(
        "id", "prénom", "nom", "e-mail", "téléphone", "carte", "code postal", "événements"
    )
    for p in found:
        table.add_row(
            str(p["id"]),
            p["first_name"] or "",
            p["last_name"] or "",
            p["email"] or "",
            p["phone"] or "",
            p["card"] or "",
            p["postcode"] or "",
            str(p["events"]),
        )
    console.print(table)


@profiles_app.command("unmerge")
def unmerge(
    profile_id: int,
    data: Path | None = DataOption,
    reason: str = typer.Option("undone by hand", "--reason"),
) -> None:
    """Undo the merge that joined PROFILE_ID to another profile."""
    db = _open(data)
    try:
        with db.engine.begin() as conn:
            done = identity.unmerge(conn, profile_id, reason)
    except OmnicanalError as exc:
        err_console.print(f"[red]{exc.title}[/red]: {exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    console.print(
        f"Fusion {done.merge_id} annulée : la fiche {done.merged_id} "
        f"est séparée de {done.survivor_id}."
    )


@identity_app.command("export")
def export(file: Path, data: Path | None = DataOption) -> None:
    """Write every identifier with the profile it resolved to (Parquet or CSV)."""
    db = _open(data)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT i.kind, i.value, i.profile_id, COALESCE(p.merged_into, p.id) "
                    "AS person, i.shared FROM identity i JOIN profile p ON p.id = i.profile_id "
                    "ORDER BY i.id"
                )
            ).all()
    finally:
        db.dispose()
    table = pa.table(
        {
            "kind": [r.kind for r in rows],
            "value": [r.value for r in rows],
            "profile_id": [int(r.profile_id) for r in rows],
            "person_id": [int(r.person) for r in rows],
            "shared": [bool(r.shared) for r in rows],
        }
    )
    if file.suffix.lower() == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, file)
    else:
        pq.write_table(table, file)
    console.print(f"{len(rows):,} identifiants écrits dans {file}.")


MATCH_STEPS: dict[str, Callable[[int], str]] = {
    "records": lambda _n: "lecture des personnes",
    "training": lambda n: f"apprentissage sur {n:,} profils",
    "scoring": lambda n: f"notation d'environ {n:,} paires",
    "merging": lambda n: f"{n:,} fusions",
}


_STEP_LABELS = {
    "records": "lecture",
    "training": "apprentissage",
    "scoring": "notation",
    "merging": "fusions et file de vérification",
}


def match_timing(done: linkage.MatchRun) -> str:
    """Return how long a matching run took, step by step, in French."""
    steps = ", ".join(
        f"{_STEP_LABELS[step]} {seconds:.1f} s" for step, seconds in done.steps.items()
    )
    return f"{done.seconds:.1f} s" + (f" : {steps}" if steps else "")


@identity_app.command("match")
def match(data: Path | None = DataOption, as_json: bool = JsonOption) -> None:
    """Score people without a shared key (Splink): merge sure matches, queue doubtful ones."""
    settings = settings_for(data)
    db = open_database(settings)
    try:
        with console.status("Rapprochement probabiliste…") as status, db.engine.begin() as conn:
            done = linkage.run(
                conn,
                settings.identity,
                progress=lambda step, n: status.update(f"Rapprochement : {MATCH_STEPS[step](n)}…"),
            )
    finally:
        db.dispose()
    if as_json:
        print_json(dataclasses.asdict(done))
        return
    console.print(
        f"{done.records:,} personnes comparées, {done.candidate_pairs:,} paires candidates "
        f"(estimation), {done.pairs:,} retenues : "
        f"{done.merged:,} fusions, {done.refused:,} refusées par les garde-fous, "
        f"{done.queued:,} à vérifier ({match_timing(done)})."
    )


@identity_app.command("review")
def review(
    data: Path | None = DataOption,
    accept: int | None = typer.Option(None, "--accept", help="Merge the pair of this review."),
    reject: int | None = typer.Option(None, "--reject", help="Mark the pair as two people."),
    as_json: bool = JsonOption,
    limit: int = typer.Option(50, "--limit"),
) -> None:
    """List the matches waiting for a decision, or decide one."""
    settings = settings_for(data)
    db = open_database(settings)
    try:
        if accept is not None or reject is not None:
            review_id = accept if accept is not None else reject
            assert review_id is not None
            with db.engine.begin() as conn:
                outcome = linkage.decide_review(
                    conn, review_id, accept is not None, settings.identity
                )
            console.print(f"Vérification {review_id} : {outcome}.")
            return
        with db.engine.connect() as conn:
            queue = linkage.pending(conn, limit)
            people = {
                pid: service.summary(conn, root)
                for item in queue
                for pid in (item["left_id"], item["right_id"])
                if (root := identity.root_of(conn, pid)) is not None
            }
    except OmnicanalError as exc:
        err_console.print(f"[red]{exc.title}[/red]: {exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    if as_json:
        print_json(
            [
                {**item, "left": people.get(item["left_id"]), "right": people.get(item["right_id"])}
                for item in queue
            ]
        )
        return
    table = Table("n°", "probabilité", "fiche A", "fiche B", "comparaison", title="À vérifier")
    for item in queue:
        left, right = people.get(item["left_id"], {}), people.get(item["right_id"], {})
        table.add_row(
            str(item["id"]),
            f"{item['probability']:.2f}",
            _who(left),
            _who(right),
            ", ".join(f"{k}: {v}" for k, v in item["evidence"].items()),
        )
    console.print(table)
    console.print("Décider : omnicanal identity review --accept N | --reject N")


def _who(p: dict[str, Any]) -> str:
    parts = [p.get("first_name"), p.get("last_name"), p.get("postcode"), p.get("email")]
    return " ".join(str(x) for x in parts if x) or "—"
