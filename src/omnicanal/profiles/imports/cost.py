"""The costs import: one amount per (day, channel, campaign, kind).

A re-import replaces an amount, never adds to it; rows of one file sharing that key
(an ad platform's report by ad group) are summed, in euros and in their currency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection

from omnicanal.collect.importers.registry import ImportOptions, LoadResult, currency_of
from omnicanal.collect.importers.runs import finish_run
from omnicanal.collect.tabular.columns import C, Column, ColumnType, N, T
from omnicanal.collect.tabular.errors import ErrorLog
from omnicanal.collect.tabular.reader import TabularFile
from omnicanal.core.channels import parse_channel
from omnicanal.profiles.imports.common import existing, table_of, to_euro_cents, upper
from omnicanal.profiles.models import Cost
from omnicanal.store.engine import Database

COST_COLUMNS = (
    Column("date", ColumnType.DATE, True, ("jour", "day", "date_cout")),
    Column("channel", T, True, ("canal", "media", "support")),
    Column("campaign", T, False, ("campagne", "campaign_name", "nom_campagne")),
    Column("amount", C, True, ("montant", "cout", "cost", "spend", "depense", "amount_spent")),
    Column("currency", T, False, ("devise",)),
    Column("kind", T, False, ("type", "nature", "type_cout")),
    Column("impressions", N, False, ("impr", "affichages")),
    Column("clicks", N, False, ("clics", "clic")),
)
COST_KINDS = frozenset({"ad_spend", "event", "direct_mail", "press", "production", "other"})
_DEFAULT_KIND = {
    "ads": "ad_spend",
    "social": "ad_spend",
    "marketplace": "ad_spend",
    "affiliate": "ad_spend",
    "event": "event",
    "direct_mail": "direct_mail",
    "press": "press",
}


@dataclass(slots=True)
class _Cost:
    day: date
    channel: str
    campaign: str
    kind: str
    media_class: str
    currency: str
    amount_cents: int = 0
    amount_eur_cents: int = 0
    impressions: int | None = None
    clicks: int | None = None
    line: int = 0
    rows: int = 0

    def add(self, cents: int, eur: int, impressions: int | None, clicks: int | None) -> None:
        self.amount_cents += cents
        self.amount_eur_cents += eur
        if impressions is not None:
            self.impressions = (self.impressions or 0) + impressions
        if clicks is not None:
            self.clicks = (self.clicks or 0) + clicks
        self.rows += 1


def _cost_key(
    values: dict[str, Any], line: int, errors: ErrorLog
) -> tuple[date, str, str, str, str] | None:
    try:
        kind_of, qualifier = parse_channel(values["channel"])
    except ValueError as exc:
        errors.add(line, "channel", str(exc))
        return None
    channel = f"{kind_of.name}:{qualifier}" if qualifier else kind_of.name
    kind = (values.get("kind") or _DEFAULT_KIND.get(kind_of.name, "other")).lower()
    if kind not in COST_KINDS:
        errors.add(line, "kind", f"{kind[:20]!r} is not one of {', '.join(sorted(COST_KINDS))}")
        return None
    campaign = (values.get("campaign") or "")[:255]
    return values["date"], channel, campaign, kind, str(kind_of.media_class)


def _cost_rows(
    rows: Iterable[tuple[int, dict[str, Any]]], rates: dict[str, Decimal], errors: ErrorLog
) -> dict[tuple[Any, ...], _Cost]:
    costs: dict[tuple[Any, ...], _Cost] = {}
    for line, values in rows:
        key = _cost_key(values, line, errors)
        currency = currency_of(values, line, errors)
        if key is None or currency is None:
            continue
        eur = to_euro_cents(values["amount"], currency, rates, line, "amount", errors)
        if eur is None:
            continue
        cost = costs.get(key[:4])
        if cost is None:
            day, channel, campaign, kind, media = key
            cost = _Cost(day, channel, campaign, kind, media, currency, line=line)
            costs[key[:4]] = cost
        elif cost.currency != currency:
            errors.add(
                line,
                "currency",
                f"differs from line {cost.line}, which has the same "
                "day, channel, campaign and kind",
            )
            continue
        cost.add(values["amount"], eur, values.get("impressions"), values.get("clicks"))
    return costs


def _write_costs(conn: Connection, costs: dict[tuple[Any, ...], _Cost], run_id: int) -> int:
    table = table_of(Cost)
    known = existing(conn, table, list(costs), "day", "channel", "campaign", "kind")
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    stored = 0
    fields = (
        "media_class",
        "currency",
        "amount_cents",
        "amount_eur_cents",
        "impressions",
        "clicks",
    )
    for key, cost in costs.items():
        values = {f: getattr(cost, f) for f in fields}
        old = known.get(key)
        if old is not None and all(old[f] == values[f] for f in fields):
            continue
        stored += cost.rows
        if old is None:
            new.append(
                {
                    **dict(zip(("day", "channel", "campaign", "kind"), key, strict=True)),
                    **values,
                    "import_id": run_id,
                }
            )
        else:
            changed.append({**values, "import_id": run_id, "b_id": old["id"]})
    if new:
        conn.execute(insert(table), new)
    if changed:
        update_values: dict[str, Any] = {f: bindparam(f) for f in (*fields, "import_id")}
        conn.execute(
            update(table).where(table.c.id == bindparam("b_id")).values(update_values), changed
        )
    return stored


def load_costs(
    *, db: Database, table: TabularFile, run_id: int, options: ImportOptions
) -> LoadResult:
    """Upsert costs per (day, channel, campaign, kind): a re-import replaces, never adds."""
    costs = _cost_rows(table.rows(), upper(options.rates), table.errors)
    result = LoadResult(rows=table.data_rows, stored=0)
    if table.errors:
        return result
    with db.engine.begin() as conn:
        result.stored = _write_costs(conn, costs, run_id)
        finish_run(conn, run_id, result)
    return result
