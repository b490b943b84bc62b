"""Import kinds for the retailer's own tables: catalogue, stock and costs.

They plug into collect's import registry (`omnicanal import catalogue FILE`, the
`/api/v1/imports/{kind}` endpoint) when this module is imported. Each file is
checked whole, then written in one transaction, or not at all.

- catalogue: products are upserted by sku; a price change appends to
  `product_price_history`. Prices are kept in euros.
- stock: levels are upserted by (sku, location); a quantity change appends to
  `stock_history`; a row older than the level known is history already seen.
- costs: one amount per (day, channel, campaign, kind), replaced by a re-import,
  never added to it; rows of one file sharing that key (an ad platform's report
  by ad group) are summed.

Amounts in another currency than EUR need a rate: `ImportOptions.rates` maps a
currency code to the euros one unit is worth, e.g. `{"USD": Decimal("0.92")}`
(`omnicanal import costs FILE --rate USD=0.92`). Without it the row is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Table, and_, bindparam, insert, select, tuple_, update
from sqlalchemy.engine import Connection

from omnicanal.collect.importers.messages import slug
from omnicanal.collect.importers.registry import (
    ImportKind,
    ImportOptions,
    LoadResult,
    currency_of,
    register_kind,
)
from omnicanal.collect.importers.runs import finish_run
from omnicanal.collect.tabular.columns import B, C, Column, ColumnType, D, N, T
from omnicanal.collect.tabular.errors import ErrorLog
from omnicanal.collect.tabular.reader import TabularFile
from omnicanal.core.channels import parse_channel
from omnicanal.core.clock import utcnow
from omnicanal.profiles.models import Cost, PriceChange, Product, StockChange, StockLevel
from omnicanal.store.engine import Database

_IN = 500  # keys per lookup query


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def to_euro_cents(
    cents: int, currency: str, rates: dict[str, Decimal], line: int, column: str, errors: ErrorLog
) -> int | None:
    """Convert an amount to euro cents with the given rates; None after recording an error."""
    if currency == "EUR":
        return cents
    rate = rates.get(currency)
    if rate is None:
        errors.add(
            line,
            "currency",
            f"amounts in {currency} need a rate to euros (--rate {currency}=0.92, "
            f"euros for one {currency}); only EUR is read without one",
        )
        return None
    return int((Decimal(cents) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- catalogue ---------------------------------------------------------------------------

CATALOGUE_COLUMNS = (
    Column("sku", T, True, ("ean", "reference", "ref", "code_article")),
    Column("name", T, True, ("nom", "libelle", "designation", "product_name", "produit")),
    Column("category", T, False, ("categorie", "rayon")),
    Column("brand", T, False, ("marque",)),
    Column("price", C, True, ("prix", "prix_ttc", "unit_price", "prix_unitaire")),
    Column("currency", T, False, ("devise",)),
    Column("image_url", T, False, ("image", "url_image", "photo")),
    Column("url", T, False, ("lien", "product_url", "url_produit")),
    Column("active", B, False, ("actif", "enabled", "en_vente")),
)
_PRODUCT_FIELDS = ("name", "category", "brand", "price_cents", "image_url", "url", "active")


def _catalogue_rows(
    rows: Iterable[tuple[int, dict[str, Any]]], rates: dict[str, Decimal], errors: ErrorLog
) -> dict[str, dict[str, Any]]:
    products: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    for line, values in rows:
        sku = values["sku"]
        if sku in lines:
            errors.add(line, "sku", f"{sku} is already at line {lines[sku]}: a duplicate row")
            continue
        lines[sku] = line
        currency = currency_of(values, line, errors)
        if currency is None:
            continue
        price = to_euro_cents(values["price"], currency, rates, line, "price", errors)
        if price is None:
            continue
        if price < 0:
            errors.add(line, "price", "is negative")
            continue
        products[sku] = {
            "sku": sku[:120],
            "name": values["name"][:255],
            "category": values.get("category"),
            "brand": values.get("brand"),
            "price_cents": price,
            "currency": "EUR",
            "image_url": values.get("image_url"),
            "url": values.get("url"),
            "active": True if values.get("active") is None else values["active"],
        }
    return products


def _existing(conn: Connection, table: Table, keys: list[Any], *columns: str) -> dict[Any, Any]:
    """Return stored rows by key, looked up a few hundred keys at a time."""
    found: dict[Any, Any] = {}
    key_columns = [table.c[name] for name in columns]
    for start in range(0, len(keys), _IN):
        part = keys[start : start + _IN]
        where = (
            key_columns[0].in_(part) if len(key_columns) == 1 else tuple_(*key_columns).in_(part)
        )
        for row in conn.execute(select(table).where(where)).mappings():
            key = row[columns[0]] if len(columns) == 1 else tuple(row[c] for c in columns)
            found[key] = dict(row)
    return found


def write_catalogue(conn: Connection, products: dict[str, dict[str, Any]], now: int) -> int:
    table = _table(Product)
    known = _existing(conn, table, list(products), "sku")
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for sku, values in products.items():
        old = known.get(sku)
        if old is not None and all(old[f] == values[f] for f in _PRODUCT_FIELDS):
            continue
        (changed if old else new).append({**values, "updated_ms": now, "b_sku": sku})
        if old is None or old["price_cents"] != values["price_cents"]:
            previous = None if old is None else old["price_cents"]
            history.append(
                {
                    "sku": sku,
                    "price_cents": values["price_cents"],
                    "previous_cents": previous,
                    "changed_ms": now,
                }
            )
    if new:
        conn.execute(insert(table), [{k: v for k, v in r.items() if k != "b_sku"} for r in new])
    if changed:
        fields: dict[str, Any] = {f: bindparam(f) for f in (*_PRODUCT_FIELDS, "updated_ms")}
        conn.execute(update(table).where(table.c.sku == bindparam("b_sku")).values(fields), changed)
    if history:
        conn.execute(insert(_table(PriceChange)), history)
    return len(new) + len(changed)


def load_catalogue(
    *, db: Database, table: TabularFile, run_id: int, options: ImportOptions
) -> LoadResult:
    """Upsert products by sku, keeping each price change."""
    products = _catalogue_rows(table.rows(), _upper(options.rates), table.errors)
    result = LoadResult(rows=table.data_rows, stored=0)
    if table.errors:
        return result
    with db.engine.begin() as conn:
        result.stored = write_catalogue(conn, products, _ms(utcnow()))
        finish_run(conn, run_id, result)
    return result


def _upper(rates: dict[str, Decimal]) -> dict[str, Decimal]:
    return {code.upper(): Decimal(rate) for code, rate in rates.items()}


# --- stock -----------------------------------------------------------------------------------

STOCK_COLUMNS = (
    Column("sku", T, True, ("ean", "reference", "ref", "code_article")),
    Column("location", T, True, ("lieu", "magasin", "store", "entrepot", "emplacement")),
    Column("quantity", N, True, ("qte", "quantite", "stock", "qty")),
    Column("datetime", D, False, ("date", "date_heure", "timestamp")),
)
_ONLINE = frozenset({"online", "web", "en-ligne", "e-shop", "eshop", "ecommerce", "internet"})


def stock_location(value: str) -> str | None:
    """Return `online` or `store:<id>` for a location as files give it, or None."""
    text = value.strip()
    if text.lower().startswith("store:"):
        text = text[6:]
    name = slug(text)
    if not name:
        return None
    return "online" if name in _ONLINE else f"store:{name}"


@dataclass(slots=True)
class StockLevelRow:
    sku: str
    location: str
    quantity: int
    ms: int
    line: int


def _stock_rows(
    rows: Iterable[tuple[int, dict[str, Any]]], now: int, errors: ErrorLog
) -> list[StockLevelRow]:
    levels: list[StockLevelRow] = []
    seen: dict[tuple[str, str, int], int] = {}
    for line, values in rows:
        location = stock_location(values["location"])
        if location is None:
            errors.add(line, "location", f"{values['location'][:30]!r} names no store or online")
            continue
        when = _ms(values["datetime"]) if values.get("datetime") else now
        key = (values["sku"], location, when)
        if key in seen:
            errors.add(
                line,
                "sku",
                f"{key[0]} at {location} is already at line {seen[key]}: a duplicate row",
            )
            continue
        seen[key] = line
        levels.append(StockLevelRow(values["sku"][:120], location, values["quantity"], when, line))
    return sorted(levels, key=lambda level: (level.sku, level.location, level.ms))


def write_stock(conn: Connection, levels: list[StockLevelRow]) -> int:
    table = _table(StockLevel)
    keys = sorted({(lv.sku, lv.location) for lv in levels})
    known = {
        k: (v["quantity"], v["updated_ms"])
        for k, v in _existing(conn, table, keys, "sku", "location").items()
    }
    current = dict(known)
    history, stored = [], 0
    for level in levels:
        key = (level.sku, level.location)
        before = current.get(key)
        if before is not None and (before[1] >= level.ms or before[0] == level.quantity):
            if before[0] == level.quantity and level.ms > before[1]:
                current[key] = (before[0], level.ms)
            continue  # older than the level known, or no change
        history.append(
            {
                "sku": level.sku,
                "location": level.location,
                "quantity": level.quantity,
                "previous": None if before is None else before[0],
                "changed_ms": level.ms,
            }
        )
        current[key] = (level.quantity, level.ms)
        stored += 1
    _save_levels(conn, table, known, current)
    if history:
        conn.execute(insert(_table(StockChange)), history)
    return stored


def _save_levels(
    conn: Connection,
    table: Table,
    known: dict[tuple[str, str], tuple[int, int]],
    current: dict[tuple[str, str], tuple[int, int]],
) -> None:
    new = [
        {"sku": k[0], "location": k[1], "quantity": q, "updated_ms": ms}
        for k, (q, ms) in current.items()
        if k not in known
    ]
    changed = [
        {"b_sku": k[0], "b_location": k[1], "quantity": q, "updated_ms": ms}
        for k, (q, ms) in current.items()
        if k in known and known[k] != (q, ms)
    ]
    if new:
        conn.execute(insert(table), new)
    if changed:
        where = and_(table.c.sku == bindparam("b_sku"), table.c.location == bindparam("b_location"))
        values: dict[str, Any] = {
            "quantity": bindparam("quantity"),
            "updated_ms": bindparam("updated_ms"),
        }
        conn.execute(update(table).where(where).values(values), changed)


def load_stock(
    *, db: Database, table: TabularFile, run_id: int, options: ImportOptions
) -> LoadResult:
    """Upsert stock levels by (sku, location), keeping each quantity change."""
    levels = _stock_rows(table.rows(), _ms(utcnow()), table.errors)
    result = LoadResult(rows=table.data_rows, stored=0)
    if table.errors:
        return result
    with db.engine.begin() as conn:
        result.stored = write_stock(conn, levels)
        finish_run(conn, run_id, result)
    return result


# --- costs -----------------------------------------------------------------------------------

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
    table = _table(Cost)
    known = _existing(conn, table, list(costs), "day", "channel", "campaign", "kind")
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
    costs = _cost_rows(table.rows(), _upper(options.rates), table.errors)
    result = LoadResult(rows=table.data_rows, stored=0)
    if table.errors:
        return result
    with db.engine.begin() as conn:
        result.stored = _write_costs(conn, costs, run_id)
        finish_run(conn, run_id, result)
    return result


def register() -> None:
    """Add catalogue, stock and costs to the import kinds."""
    for kind in (
        ImportKind(
            "catalogue",
            "Products: sku, name, price, category, brand.",
            CATALOGUE_COLUMNS,
            load_catalogue,
        ),
        ImportKind(
            "stock",
            "Stock levels per product and location (online or a store).",
            STOCK_COLUMNS,
            load_stock,
        ),
        ImportKind(
            "costs",
            "Costs per channel per day: ad spend, events, mail drops, press.",
            COST_COLUMNS,
            load_costs,
        ),
    ):
        register_kind(kind.name, kind)


register()
