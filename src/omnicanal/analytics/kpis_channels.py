"""What each channel, channel kind, media class, store or fulfilment brings and costs.

`breakdown` puts two families of order figures side by side, so that neither is counted
twice: **placed** (`orders`, `revenue_eur`, `buyers`, `new_customers`: the orders taken
by the channel: the e-shop, the app, a store's tills) and **credited** (`credited_*`:
the orders the channel brought, from an attribution model's credit or, by default, the
orders of the visits the channel started: last touch within the visit, see
`kpis_base`). ROAS, CAC and ROI use the credited figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import ibis
import ibis.expr.types as ir
import pandas as pd

from omnicanal.analytics import kpis_base as kb
from omnicanal.analytics.scope import Scope, Tables
from omnicanal.core.errors import InvalidError

BY: Final = ("channel", "channel_kind", "media_class", "store", "fulfilment")
MARKETING_GROUPS: Final = ("channel", "channel_kind", "media_class")
CREDIT_COLUMNS: Final = ("channel", "orders", "revenue_eur", "new_customers")
BREAKDOWN_COLUMNS: Final = (
    "visits",
    "visitors",
    "conversion_rate",
    "orders",
    "revenue_eur",
    "net_revenue_eur",
    "buyers",
    "new_customers",
    "aov_eur",
    "credited_orders",
    "credited_revenue_eur",
    "credited_new_customers",
    "cost_eur",
    "impressions",
    "clicks",
    "ctr",
    "roas",
    "cac_eur",
    "roi",
)
BREAKDOWN_COMPARED: Final = (
    "visits",
    "orders",
    "revenue_eur",
    "credited_revenue_eur",
    "new_customers",
    "cost_eur",
    "roas",
)
_NO_KEY: Final = "(none)"  # a null group while pandas merges (no channel or code has brackets)


def breakdown(
    tables: Tables,
    scope: Scope,
    *,
    by: str = "channel",
    compare: str | None = None,
    credit: pd.DataFrame | None = None,
    previous_credit: pd.DataFrame | None = None,
    margin: float | None = None,
) -> pd.DataFrame:
    """Return the KPIs of each channel, channel kind, media class, store or fulfilment.

    Args:
        by: the group; `store` groups orders by the store of purchase or pick-up (None:
            delivered orders), `fulfilment` by delivery, click_and_collect or in_store.
        credit: an attribution model's credit for the period, columns channel, orders,
            revenue_eur, new_customers (fractions allowed); None credits each order to the
            entry channel of the visit it was placed in (see the module doc).
        previous_credit: the same for the comparison period.
        margin: gross margin (0..1] for ROI; None computes ROI on net revenue.

    Columns: the group (named as `by`), then BREAKDOWN_COLUMNS (money in euros, rates
    as fractions, None where a rate has no denominator), then `<metric>_previous` and
    `<metric>_change` for BREAKDOWN_COMPARED when `compare` is given. ROAS, CAC and ROI
    are None without cost, and also for a group with cost but nothing tracked (no visit
    and no credit: a press insertion), where they are unknown rather than -100 %.
    """
    if by not in BY:
        raise InvalidError(
            "unknown breakdown",
            errors=[{"field": "by", "reason": f"must be one of {', '.join(BY)}"}],
        )
    kb.check_margin(margin)
    credits = [_check_credit(credit, "credit"), _check_credit(previous_credit, "previous_credit")]
    periods = kb.Periods(scope, kb.comparison(scope, compare)).all
    defaults = [c is None and by in MARKETING_GROUPS for c in credits]
    figures = _figures(tables, periods, by, defaults)
    frames = [_period_frame(figures, k, p, by, credits[k], margin) for k, p in enumerate(periods)]
    result = frames[0]
    if len(frames) > 1:
        result = kb.with_previous(result, frames[1], by, BREAKDOWN_COMPARED)
    result[by] = result[by].where(result[by] != _NO_KEY, None)
    return kb.clean(result)


def _check_credit(credit: pd.DataFrame | None, field: str) -> pd.DataFrame | None:
    if credit is None:
        return None
    missing = [c for c in CREDIT_COLUMNS if c not in credit.columns]
    if missing:
        raise InvalidError(
            f"the credit lacks column(s) {', '.join(missing)}",
            errors=[{"field": f"{field}.{c}", "reason": "missing"} for c in missing],
        )
    return credit


#: What each part of the breakdown query measures, in the order of its columns m1..m5.
_FAMILIES: Final = {
    "placed": ("orders", "gross", "refunded", "buyers", "new"),
    "credited": ("credited_orders", "credited_gross", "credited_refunded", "credited_new"),
    "visits": ("visits", "visitors"),
    "visit_orders": ("visit_orders",),
    "costs": ("cost", "impressions", "clicks"),
}
_M: Final = ("m1", "m2", "m3", "m4", "m5")


def _figures(tables: Tables, periods: list[Scope], by: str, credits: list[bool]) -> pd.DataFrame:
    """Fetch every period's figures per group in one query.

    Columns: period, family (of `_FAMILIES`), key (the group, `_NO_KEY` for null), m1-m5.
    """
    parts = []
    for k, scope in enumerate(periods):
        for family, table, key, metrics in _parts(tables, scope, by, default_credit=credits[k]):
            measures = {m: v.cast("int64") for m, v in zip(_M, metrics, strict=False)}
            measures |= {m: ibis.literal(0, "int64") for m in _M[len(metrics) :]}
            grouped = table.group_by(key=key).aggregate(**measures)
            parts.append(
                grouped.mutate(period=ibis.literal(k, "int32"), family=ibis.literal(family))
            )
    frame = kb.fetch(kb.union_all(parts))
    frame["key"] = frame["key"].astype(object).where(frame["key"].notna(), _NO_KEY)
    return frame


def _parts(
    tables: Tables, scope: Scope, by: str, *, default_credit: bool
) -> list[tuple[str, ir.Table, ir.Value, list[ir.Value]]]:
    """The grouped parts of one period: (family, table, group key, measures)."""
    marketing = by in MARKETING_GROUPS
    all_visits = kb.visits(tables, scope) if marketing or kb.needs_visits(scope) else None
    linked = all_visits if (default_credit or kb.needs_visits(scope)) else None
    o = kb.scoped_orders(tables, scope, kb.order_history(tables), linked)
    money = [o.count(), o.total_cents.sum(), o.refunded_cents.sum()]
    parts = [
        ("placed", o, _group_key(by, o), [*money, o.person_id.nunique(), o.count(where=o.first)])
    ]
    if default_credit:
        credited = o.filter(o.credited_channel.notnull())
        c_money = [credited.count(), credited.total_cents.sum(), credited.refunded_cents.sum()]
        key = _group_key(by, credited, credited=True)
        parts.append(("credited", credited, key, [*c_money, credited.count(where=credited.first)]))
    if marketing and all_visits is not None:
        v = kb.scoped_visits(all_visits, scope)
        s, vo = v.starts, v.orders
        parts.append(("visits", s, _group_key(by, s), [s.count(), s.person_id.nunique()]))
        parts.append(("visit_orders", vo, _group_key(by, vo), [vo.count()]))
    if by != "fulfilment" and scope.persons is None:
        c = kb.scoped_costs(tables, scope)
        spend = [c.amount_cents.sum(), c.impressions.sum(), c.clicks.sum()]
        parts.append(("costs", c, _group_key(by, c), spend))
    return parts


def _period_frame(
    figures: pd.DataFrame,
    k: int,
    scope: Scope,
    by: str,
    credit: pd.DataFrame | None,
    margin: float | None,
) -> pd.DataFrame:
    """Compute the columns of one period from the fetched figures."""
    mine = figures[figures["period"] == k]
    merged = pd.DataFrame({by: pd.Series([], dtype=object)})
    for family, names in _FAMILIES.items():
        part = mine[mine["family"] == family]
        if family in ("credited", "costs") and by == "store":
            part = part[part["key"] != _NO_KEY]
        part = part[["key", *_M[: len(names)]]].rename(
            columns={"key": by, **dict(zip(_M, names, strict=False))}
        )
        merged = merged.merge(part, on=by, how="outer")
    tracked_keys: set[object] = set()
    if credit is not None and by != "fulfilment":
        supplied = _supplied_credit(credit, scope, by)
        tracked_keys = set(supplied[by])
        merged = merged.drop(columns=list(_FAMILIES["credited"])).merge(
            supplied, on=by, how="outer"
        )
    rows = [
        _breakdown_row(r, by, margin, tracked_keys, fractional=credit is not None)
        for r in merged.to_dict("records")
    ]
    rows.sort(key=lambda r: _sort_key(r[by]))
    return kb.frame_of(rows, [by, *BREAKDOWN_COLUMNS])


def _sort_key(value: object) -> str:
    return "\U0010ffff" if value == _NO_KEY else str(value)


def _group_key(by: str, table: ir.Table, *, credited: bool = False) -> ir.StringValue:
    """The group of each row of an orders, visits or costs table."""
    channel: ir.StringValue = table.credited_channel if credited else table.channel
    if by == "channel":
        return channel
    if by == "channel_kind":
        return kb.kind_of(channel)
    if by == "media_class":
        if credited:
            return table.credited_media_class
        return table.media_class if "media_class" in table.columns else kb.media_class_of(channel)
    if by == "store":
        if "store" in table.columns:
            return table.store
        return ibis.ifelse(channel.startswith("store:"), channel.substr(6), ibis.null("string"))
    return table.fulfilment


def _credit_key(channel: str, by: str) -> str | None:
    kind = channel.split(":", maxsplit=1)[0]
    if by == "channel":
        return channel
    if by == "channel_kind":
        return kind
    if by == "media_class":
        return kb.MEDIA_CLASSES.get(kind)
    return channel[len("store:") :] if channel.startswith("store:") else None


def _supplied_credit(credit: pd.DataFrame, scope: Scope, by: str) -> pd.DataFrame:
    """The attribution model's credit per group; revenue in cents like the rest."""
    rows = [
        (
            _credit_key(str(r["channel"]), by),
            float(r["orders"]),
            float(r["revenue_eur"]) * 100,
            float(r["new_customers"]),
        )
        for r in credit.to_dict("records")
        if kb.channel_kept(str(r["channel"]), scope)
    ]
    frame = pd.DataFrame(
        [r for r in rows if r[0] is not None],
        columns=[by, "credited_orders", "credited_gross", "credited_new"],
    )
    frame["credited_refunded"] = 0.0
    return frame.groupby(by, as_index=False).sum()


def _breakdown_row(
    r: Mapping[Any, Any],
    by: str,
    margin: float | None,
    tracked_keys: set[object],
    *,
    fractional: bool,
) -> dict[str, object]:
    def n(name: str) -> float:
        value = r.get(name)
        if isinstance(value, float) and fractional and not pd.isna(value):
            return value
        return kb.number(value)

    visits, orders, gross, cost = n("visits"), n("orders"), n("gross"), n("cost")
    c_orders, c_gross, c_new = n("credited_orders"), n("credited_gross"), n("credited_new")
    tracked = bool(visits or c_orders or r[by] in tracked_keys)
    known = tracked and cost > 0
    return {
        by: r[by],
        "visits": int(visits),
        "visitors": int(n("visitors")),
        "conversion_rate": kb.ratio(n("visit_orders"), visits),
        "orders": int(orders),
        "revenue_eur": kb.euros(gross),
        "net_revenue_eur": kb.euros(gross - n("refunded")),
        "buyers": int(n("buyers")),
        "new_customers": int(n("new")),
        "aov_eur": kb.euros(kb.ratio(gross, orders)),
        "credited_orders": c_orders if fractional else int(c_orders),
        "credited_revenue_eur": kb.euros(c_gross),
        "credited_new_customers": c_new if fractional else int(c_new),
        "cost_eur": kb.euros(cost),
        "impressions": int(n("impressions")),
        "clicks": int(n("clicks")),
        "ctr": kb.ratio(n("clicks"), n("impressions")),
        "roas": kb.ratio(c_gross, cost) if known else None,
        "cac_eur": kb.euros(kb.ratio(cost, c_new)) if known else None,
        "roi": kb.roi(c_gross - n("credited_refunded"), cost, margin) if known else None,
    }
