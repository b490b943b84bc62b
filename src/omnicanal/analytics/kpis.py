"""Marketing KPIs for any period, channel, media class, store or segment.

Every report takes the warehouse tables and a `Scope` and answers in euros (floats
rounded to the cent), counts, and fractions (0..1; NPS in points). `overview` gives the
headline figures with the comparison period; `timeseries` the same figures per day,
week or month for charts. The per-channel, engagement, satisfaction and omnichannel
reports live in `kpis_channels`, `kpis_engagement` and `kpis_customers` and are
re-exported here.
docs/concepts/kpis.md defines each figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import ibis
import ibis.expr.types as ir
import pandas as pd

from omnicanal.analytics import kpis_base as kb
from omnicanal.analytics.kpis_channels import breakdown
from omnicanal.analytics.kpis_customers import click_and_collect, omnichannel, ropo, satisfaction
from omnicanal.analytics.kpis_engagement import engagement, social_engagement
from omnicanal.analytics.scope import GRAINS, Scope, Tables, truncate
from omnicanal.core.errors import InvalidError

__all__ = [
    "UNITS",
    "Kpi",
    "breakdown",
    "click_and_collect",
    "engagement",
    "omnichannel",
    "overview",
    "ropo",
    "satisfaction",
    "social_engagement",
    "timeseries",
]

#: Every overview KPI, in the order `overview` returns them, with its unit.
UNITS: Final[dict[str, str]] = {
    "revenue": "eur",
    "net_revenue": "eur",
    "orders": "count",
    "buyers": "count",
    "new_customers": "count",
    "returning_customers": "count",
    "average_order_value": "eur",
    "visits": "count",
    "visitors": "count",
    "conversion_rate": "ratio",
    "visitor_conversion_rate": "ratio",
    "marketing_cost": "eur",
    "cac": "eur",
    "roas": "ratio",
    "roi": "ratio",
    "repeat_purchase_rate": "ratio",
    "retention_rate": "ratio",
    "churn_rate": "ratio",
    "nps": "score",
    "csat": "ratio",
    "refund_rate": "ratio",
}
#: KPIs that `timeseries` can chart (retention needs a window per point: overview only).
SERIES: Final = tuple(
    k for k in UNITS if k not in ("repeat_purchase_rate", "retention_rate", "churn_rate")
)
_COST_KPIS: Final = ("marketing_cost", "cac", "roas", "roi")

Value = float | int | None


@dataclass(frozen=True)
class Kpi:
    """One figure of a period, the comparison period's, and the relative change."""

    name: str
    unit: str  # eur, count, ratio, days, score
    value: Value
    previous: Value = None
    change: float | None = None  # (value - previous) / previous; None when previous is 0


def overview(
    tables: Tables,
    scope: Scope,
    *,
    compare: str | None = "previous",
    margin: float | None = None,
) -> list[Kpi]:
    """Return every headline KPI of the scope, with the comparison period's value.

    Args:
        compare: "previous" (the period of the same length just before), "year" (the
            same dates a year before) or None.
        margin: gross margin (0..1] for ROI; None computes ROI on net revenue.

    Costs are not per person: with a segment (`scope.persons`) the cost KPIs are None.
    """
    kb.check_margin(margin)
    periods = kb.Periods(scope, kb.comparison(scope, compare))
    rows = _overview_figures(tables, periods)
    current = _values(rows[0], scope, margin)
    before = _values(rows[1], scope, margin) if periods.compared is not None else {}
    return [
        Kpi(name, UNITS[name], value, before.get(name), kb.change(value, before.get(name)))
        for name, value in current.items()
    ]


def _values(row: dict[str, int], scope: Scope, margin: float | None) -> dict[str, Value]:
    """Turn one period's exact figures into the KPIs (euros and fractions at the end)."""
    gross, refunded, cost = row["gross"], row["refunded"], row["cost"]
    base, retained = row["retention_base"], row["retained"]
    retention = kb.ratio(retained, base)
    values: dict[str, Value] = {
        "revenue": kb.euros(gross),
        "net_revenue": kb.euros(gross - refunded),
        "orders": row["orders"],
        "buyers": row["buyers"],
        "new_customers": row["new_customers"],
        "returning_customers": row["returning"],
        "average_order_value": kb.euros(kb.ratio(gross, row["orders"])),
        "visits": row["visits"],
        "visitors": row["visitors"],
        "conversion_rate": kb.ratio(row["visit_orders"], row["visits"]),
        "visitor_conversion_rate": kb.ratio(row["converting_visitors"], row["visitors"]),
        "marketing_cost": kb.euros(cost),
        "cac": kb.euros(kb.ratio(cost, row["new_customers"])) if cost else None,
        "roas": kb.ratio(gross, cost),
        "roi": kb.roi(gross - refunded, cost, margin),
        "repeat_purchase_rate": kb.ratio(row["repeat_buyers"], row["buyers"]),
        "retention_rate": retention,
        "churn_rate": None if retention is None else 1 - retention,
        "nps": kb.nps(row["promoters"], row["detractors"], row["nps_answers"]),
        "csat": kb.ratio(row["satisfied"], row["csat_answers"]),
        "refund_rate": kb.ratio(refunded, gross),
    }
    if scope.persons is not None:
        values.update(dict.fromkeys(_COST_KPIS))
    return values


# ---------------------------------------------------------------------------------
# The overview's single query


def _overview_figures(tables: Tables, periods: kb.Periods) -> list[dict[str, int]]:
    """Compute every period's exact figures in one query; one dict per period."""
    reports = periods.all
    scopes = _distinct_scopes([*reports, *(p.previous() for p in reports)])
    index = {(s.start, s.end): k for k, s in enumerate(scopes)}
    history = kb.order_history(tables)
    filtered = kb.needs_visits(reports[0])
    all_visits = {
        k: kb.visits(tables, s) for k, s in enumerate(scopes) if filtered or k < len(reports)
    }
    per_person = kb.union_all(
        [
            _person_orders(
                kb.scoped_orders(tables, s, history, all_visits[k] if filtered else None), s
            ).mutate(period=ibis.literal(k, "int32"))
            for k, s in enumerate(scopes)
        ]
    )
    flags = per_person.group_by("person_id").aggregate(
        **{f"in{k}": per_person.count(where=per_person.period == k) > 0 for k in index.values()}
    )
    rows = []
    for k, report in enumerate(reports):
        window = index[(report.previous().start, report.previous().end)]
        row = _order_row(per_person, k).cross_join(_retention_row(flags, k, window))
        row = row.cross_join(_visit_row(kb.scoped_visits(all_visits[k], report)))
        row = row.cross_join(_cost_row(tables, report)).cross_join(_feedback_row(tables, report))
        rows.append(row.mutate(period=ibis.literal(k, "int32")))
    frame = kb.fetch(kb.union_all(rows)).sort_values("period")
    return [
        {str(c): kb.number(v) for c, v in record.items()}
        for record in frame.to_dict(orient="records")
    ]


def _distinct_scopes(scopes: list[Scope]) -> list[Scope]:
    seen: dict[tuple[date, date], Scope] = {}
    for s in scopes:
        seen.setdefault((s.start, s.end), s)
    return list(seen.values())


def _person_orders(orders: ir.Table, scope: Scope) -> ir.Table:
    """One row per buyer: orders, cents, whether new and whether returning."""
    return orders.group_by("person_id").aggregate(
        orders=orders.count(),
        gross=orders.total_cents.sum(),
        refunded=orders.refunded_cents.sum(),
        new=orders.count(where=orders.first),
        returning=orders.first_day.min() < ibis.literal(scope.start),
    )


def _order_row(per_person: ir.Table, k: int) -> ir.Table:
    p = per_person.filter(per_person.period == k)
    return p.aggregate(
        orders=p.orders.sum(),
        gross=p.gross.sum(),
        refunded=p.refunded.sum(),
        buyers=p.count(),
        new_customers=p.new.sum(),
        returning=p.count(where=p.returning),
        repeat_buyers=p.count(where=p.orders >= 2),
    )


def _retention_row(flags: ir.Table, k: int, window: int) -> ir.Table:
    before = flags[f"in{window}"]
    return flags.aggregate(
        retention_base=flags.count(where=before),
        retained=flags.count(where=before & flags[f"in{k}"]),
    )


def _visit_row(visits: kb.Visits) -> ir.Table:
    starts, orders = visits.starts, visits.orders
    counted = starts.aggregate(visits=starts.count(), visitors=starts.person_id.nunique())
    return counted.cross_join(
        orders.aggregate(
            visit_orders=orders.count(), converting_visitors=orders.person_id.nunique()
        )
    )


def _cost_row(tables: Tables, scope: Scope) -> ir.Table:
    costs = kb.scoped_costs(tables, scope)
    return costs.aggregate(cost=costs.amount_cents.sum())


def _feedback_row(tables: Tables, scope: Scope) -> ir.Table:
    feedback = kb.scoped_feedback(tables, scope)
    return feedback.aggregate(**kb.feedback_figures(feedback))


# ---------------------------------------------------------------------------------
# Time series


def timeseries(
    tables: Tables,
    scope: Scope,
    *,
    metrics: Sequence[str] = ("revenue", "orders", "visits", "marketing_cost"),
    grain: str = "day",
    margin: float | None = None,
) -> pd.DataFrame:
    """Return one row per day, week (from Monday) or month of the period, for charts.

    Columns: `period` (first day of the bucket, a date; the first and last buckets may
    be cut by the period) and one column per metric, named and computed as in
    `overview` (units in `UNITS`). Buckets without data hold 0 or None.
    """
    unknown = [m for m in metrics if m not in SERIES]
    if unknown or not metrics:
        raise InvalidError(
            f"unknown metric(s): {', '.join(unknown) or '(none given)'}",
            errors=[{"field": "metrics", "reason": f"use some of {', '.join(SERIES)}"}],
        )
    if grain not in GRAINS:
        truncate(ibis.literal(scope.start), grain)  # raises the grain's InvalidError
    kb.check_margin(margin)
    buckets = _buckets(scope, grain)
    figures = pd.DataFrame({"period": buckets})
    for family in _families(metrics):
        part = _SERIES_QUERIES[family](tables, scope, grain)
        figures = figures.merge(part, on="period", how="left")
    rows = [
        {str(c): (v if c == "period" else kb.number(v)) for c, v in r.items()}
        for r in figures.to_dict(orient="records")
    ]
    series = [{"period": r["period"], **_series_values(r, scope, margin)} for r in rows]
    return kb.frame_of(series, ["period", *dict.fromkeys(metrics)])


_FAMILY_OF: Final = {
    **dict.fromkeys(("revenue", "net_revenue", "orders", "buyers", "new_customers"), ("orders",)),
    **dict.fromkeys(("returning_customers", "average_order_value", "refund_rate"), ("orders",)),
    **dict.fromkeys(("visits", "visitors", "conversion_rate"), ("visits",)),
    "visitor_conversion_rate": ("visits",),
    "marketing_cost": ("costs",),
    "cac": ("costs", "orders"),
    "roas": ("costs", "orders"),
    "roi": ("costs", "orders"),
    "nps": ("feedback",),
    "csat": ("feedback",),
}


def _families(metrics: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(f for m in metrics for f in _FAMILY_OF[m]))


def _series_values(row: dict[str, Any], scope: Scope, margin: float | None) -> dict[str, Value]:
    figures = {
        name: row.get(name, 0)
        for name in (
            "gross",
            "refunded",
            "cost",
            "orders",
            "buyers",
            "new_customers",
            "returning",
            "visits",
            "visitors",
            "visit_orders",
            "converting_visitors",
            "promoters",
            "detractors",
            "nps_answers",
            "satisfied",
            "csat_answers",
        )
    }
    full = {**figures, "retention_base": 0, "retained": 0, "repeat_buyers": 0}
    return _values(full, scope, margin)


def _bucket_start(day: date, grain: str) -> date:
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    if grain == "quarter":
        return day.replace(month=3 * ((day.month - 1) // 3) + 1, day=1)
    if grain == "year":
        return day.replace(month=1, day=1)
    return day


def _next_bucket(start: date, grain: str) -> date:
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[grain]
    month = start.month - 1 + months
    return start.replace(year=start.year + month // 12, month=month % 12 + 1)


def _buckets(scope: Scope, grain: str) -> list[date]:
    out, current = [], _bucket_start(scope.start, grain)
    while current < scope.end:
        out.append(current)
        current = _next_bucket(current, grain)
    return out


def _grouped(table: ir.Table, grain: str, **metrics: ir.Scalar) -> pd.DataFrame:
    """Aggregate per bucket and fetch, with `period` as dates."""
    frame = kb.fetch(table.group_by(period=truncate(table.day, grain)).aggregate(**metrics))
    frame["period"] = [kb.to_date(v) for v in frame["period"]]
    return frame


def _order_series(tables: Tables, scope: Scope, grain: str) -> pd.DataFrame:
    history = kb.order_history(tables)
    all_visits = kb.visits(tables, scope) if kb.needs_visits(scope) else None
    o = kb.scoped_orders(tables, scope, history, all_visits)
    since = ibis.greatest(truncate(o.day, grain), ibis.literal(scope.start))
    return _grouped(
        o,
        grain,
        orders=o.count(),
        gross=o.total_cents.sum(),
        refunded=o.refunded_cents.sum(),
        buyers=o.person_id.nunique(),
        new_customers=o.count(where=o.first),
        returning=o.person_id.nunique(where=o.first_day < since),
    )


def _visit_series(tables: Tables, scope: Scope, grain: str) -> pd.DataFrame:
    v = kb.scoped_visits(kb.visits(tables, scope), scope)
    starts = _grouped(
        v.starts, grain, visits=v.starts.count(), visitors=v.starts.person_id.nunique()
    )
    orders = _grouped(
        v.orders,
        grain,
        visit_orders=v.orders.count(),
        converting_visitors=v.orders.person_id.nunique(),
    )
    return starts.merge(orders, on="period", how="outer")


def _cost_series(tables: Tables, scope: Scope, grain: str) -> pd.DataFrame:
    costs = kb.scoped_costs(tables, scope)
    return _grouped(costs, grain, cost=costs.amount_cents.sum())


def _feedback_series(tables: Tables, scope: Scope, grain: str) -> pd.DataFrame:
    feedback = kb.scoped_feedback(tables, scope)
    return _grouped(feedback, grain, **kb.feedback_figures(feedback))


_SERIES_QUERIES: Final = {
    "orders": _order_series,
    "visits": _visit_series,
    "costs": _cost_series,
    "feedback": _feedback_series,
}
