"""Customers across channels: satisfaction, omnichannel value, click & collect, ROPO.

These reports measure, on the retailer's own data, the claims marketers make about
omnichannel customers: that they spend more and come back more often, that a share of
online orders is collected in store, that store sales are researched online first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

import ibis
import ibis.expr.types as ir
import pandas as pd

from omnicanal.analytics import kpis_base as kb
from omnicanal.analytics import segments
from omnicanal.analytics.scope import Scope, Tables, in_period, with_filters
from omnicanal.analytics.touchpoints import SITE_SOURCES
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import EVENTS, ORDERS, SOURCES

SATISFACTION_COLUMNS: Final = (
    "nps_answers",
    "promoters",
    "passives",
    "detractors",
    "nps",
    "csat_answers",
    "satisfied",
    "csat",
)
OMNICHANNEL_COLUMNS: Final = (
    "group",
    "customers",
    "share",
    "orders",
    "revenue_eur",
    "net_revenue_eur",
    "revenue_per_customer_eur",
    "orders_per_customer",
    "aov_eur",
    "retained",
    "retention_rate",
    "retention_complete",
)
CLICK_AND_COLLECT_COLUMNS: Final = (
    "store",
    "online_orders",
    "click_and_collect_orders",
    "share_of_online_orders",
    "click_and_collect_revenue_eur",
    "in_store_orders",
)
ROPO_COLUMNS: Final = (
    "store",
    "store_orders",
    "researched_orders",
    "researched_share",
    "revenue_eur",
    "researched_revenue_eur",
    "researched_revenue_share",
)
PRODUCT_VIEWED: Final = "Product Viewed"
RETENTION_DAYS: Final = 90


def satisfaction(tables: Tables, scope: Scope, *, by: str | None = "channel") -> pd.DataFrame:
    """Return NPS and CSAT with their answer counts, per answer channel or overall.

    Columns: channel (when `by="channel"`), nps_answers, promoters (9-10), passives
    (7-8), detractors (0-6), nps (promoters minus detractors, in points of the answers),
    csat_answers, satisfied (4-5 of 5), csat (satisfied / answers).
    """
    if by not in ("channel", None):
        raise InvalidError(
            "unknown satisfaction breakdown",
            errors=[{"field": "by", "reason": "must be channel or empty"}],
        )
    feedback = kb.scoped_feedback(tables, scope)
    figures = kb.feedback_figures(feedback)
    grouped = feedback.group_by("channel") if by else feedback
    frame = kb.fetch(grouped.aggregate(**figures))
    rows = []
    for r in frame.to_dict("records"):
        n = {k: kb.number(r[k]) for k in figures}
        passives = n["nps_answers"] - n["promoters"] - n["detractors"]
        row = {
            **n,
            "passives": passives,
            "nps": kb.nps(n["promoters"], n["detractors"], n["nps_answers"]),
            "csat": kb.ratio(n["satisfied"], n["csat_answers"]),
        }
        rows.append({"channel": r["channel"], **row} if by else row)
    if by:
        rows.sort(key=lambda r: str(r["channel"]))
    return kb.frame_of(rows, (["channel"] if by else []) + list(SATISFACTION_COLUMNS))


def omnichannel(
    tables: Tables, scope: Scope, *, retention_days: int = RETENTION_DAYS
) -> pd.DataFrame:
    """Compare online-only, store-only and omnichannel customers of the period.

    Groups as in `segments.purchase_places` (click & collect counts as online and store).
    Columns: group, customers, share (of the period's customers), orders, revenue_eur,
    net_revenue_eur, revenue_per_customer_eur, orders_per_customer, aov_eur, retained
    (customers who ordered again in the `retention_days` after the period), retention_rate,
    retention_complete (the warehouse holds orders up to the end of that window; if not,
    the rate is a floor). The scope's segment applies; its channel and store filters don't.
    """
    if retention_days < 1:
        raise InvalidError(
            "the retention window must last at least a day",
            errors=[{"field": "retention_days", "reason": "must be 1 or more"}],
        )
    orders = with_filters(in_period(tables[ORDERS], scope), scope, channel=None)
    places = segments.purchase_places(tables, scope)
    after = Scope(scope.end, scope.end + timedelta(days=retention_days))
    back = in_period(tables[ORDERS], after).select("person_id").distinct().mutate(back=True)
    spent = orders.group_by("person_id").aggregate(
        orders=orders.count(),
        gross=orders.total_cents.sum(),
        refunded=orders.refunded_cents.sum(),
    )
    people = spent.join(places, "person_id").left_join(back, "person_id")
    people = people.mutate(back=people.back.fill_null(False))
    grouped = people.group_by("group").aggregate(
        customers=people.count(),
        orders=people.orders.sum(),
        gross=people.gross.sum(),
        refunded=people.refunded.sum(),
        retained=people.count(where=people.back),
    )
    last = tables[ORDERS].day.max().name("last_day").as_table()
    frame = kb.fetch(grouped.cross_join(last))
    complete = _complete(frame, after.end)
    return _omnichannel_rows(frame, complete)


def _complete(frame: pd.DataFrame, window_end: object) -> bool:
    if frame.empty:
        return False
    last = kb.to_date(frame["last_day"].iloc[0])
    return last is not None and last >= window_end - timedelta(days=1)  # type: ignore[operator]


def _omnichannel_rows(frame: pd.DataFrame, complete: bool) -> pd.DataFrame:
    figures = {str(r["group"]): r for r in frame.to_dict("records")}
    total = sum(kb.number(r["customers"]) for r in figures.values())
    rows = []
    for group in (segments.ONLINE_ONLY, segments.STORE_ONLY, segments.OMNICHANNEL):
        r = figures.get(group, {})
        customers, orders = kb.number(r.get("customers")), kb.number(r.get("orders"))
        gross, retained = kb.number(r.get("gross")), kb.number(r.get("retained"))
        rows.append(
            {
                "group": group,
                "customers": customers,
                "share": kb.ratio(customers, total),
                "orders": orders,
                "revenue_eur": kb.euros(gross),
                "net_revenue_eur": kb.euros(gross - kb.number(r.get("refunded"))),
                "revenue_per_customer_eur": kb.euros(kb.ratio(gross, customers)),
                "orders_per_customer": kb.ratio(orders, customers),
                "aov_eur": kb.euros(kb.ratio(gross, orders)),
                "retained": retained,
                "retention_rate": kb.ratio(retained, customers),
                "retention_complete": complete,
            }
        )
    return kb.frame_of(rows, list(OMNICHANNEL_COLUMNS))


def click_and_collect(tables: Tables, scope: Scope) -> pd.DataFrame:
    """Return the share of online orders collected in each store, then the total.

    Columns: store (None on the last row, the total), online_orders (every online order
    of the scope: the denominator), click_and_collect_orders (online orders picked up in
    the store), share_of_online_orders, click_and_collect_revenue_eur, in_store_orders
    (till sales of the store). The channel filter applies to where orders were placed
    (`app` for orders from the app); the store filter selects the stores shown.
    """
    orders = with_filters(in_period(tables[ORDERS], scope), scope, store=None)
    in_stores = orders.filter(orders.store.notnull())
    if scope.stores:
        in_stores = in_stores.filter(in_stores.store.isin(list(scope.stores)))
    collected = in_stores.online & (in_stores.fulfilment == segments.CLICK_AND_COLLECT)
    per_store = in_stores.group_by("store").aggregate(
        collected=in_stores.count(where=collected),
        cents=in_stores.total_cents.sum(where=collected),
        in_store=in_stores.count(where=~in_stores.online),
    )
    online = kb.number(orders.count(where=orders.online).to_pyarrow().as_py())
    records = kb.fetch(per_store).sort_values("store").to_dict("records")
    totals = {k: sum(kb.number(r[k]) for r in records) for k in ("collected", "cents", "in_store")}
    rows = [_collect_row(r["store"], r, online) for r in records]
    rows.append(_collect_row(None, totals, online))
    return kb.frame_of(rows, list(CLICK_AND_COLLECT_COLUMNS))


def _collect_row(store: object, r: Mapping[Any, Any], online: int) -> dict[str, object]:
    collected = kb.number(r["collected"])
    return {
        "store": store,
        "online_orders": online,
        "click_and_collect_orders": collected,
        "share_of_online_orders": kb.ratio(collected, online),
        "click_and_collect_revenue_eur": kb.euros(kb.number(r["cents"])),
        "in_store_orders": kb.number(r["in_store"]),
    }


def ropo(tables: Tables, scope: Scope, *, lookback_days: int = 30) -> pd.DataFrame:
    """Return the share of store sales researched online (ROPO), per store then in total.

    A store order (a till sale) is researched online when its buyer viewed a product
    (`Product Viewed`) on the e-shop or the app in the `lookback_days` before it.
    Columns: store (None on the last row, the total), store_orders, researched_orders,
    researched_share, revenue_eur, researched_revenue_eur, researched_revenue_share.
    The store filter and the segment apply; channel filters don't.
    """
    if lookback_days < 1:
        raise InvalidError(
            "the look-back must last at least a day",
            errors=[{"field": "lookback_days", "reason": "must be 1 or more"}],
        )
    orders = with_filters(in_period(tables[ORDERS], scope), scope, channel=None, store="store")
    orders = orders.filter(~orders.online).select(
        "order_id", "person_id", "ts", "store", "total_cents"
    )
    views = _product_views(tables, scope, lookback_days)
    hits = orders.join(
        views,
        [
            orders.person_id == views.v_person,
            views.v_ts < orders.ts,
            views.v_ts >= orders.ts - ibis.interval(days=lookback_days),
        ],
    )
    researched = hits.select(r_order=hits.order_id).distinct()
    flagged = orders.left_join(researched, orders.order_id == researched.r_order)
    flagged = flagged.mutate(seen=flagged.r_order.notnull())
    grouped = flagged.group_by("store").aggregate(
        store_orders=flagged.count(),
        researched_orders=flagged.count(where=flagged.seen),
        cents=flagged.total_cents.sum(),
        researched_cents=flagged.total_cents.sum(where=flagged.seen),
    )
    frame = kb.fetch(grouped).sort_values("store")
    rows = [_ropo_row(r["store"], r) for r in frame.to_dict("records")]
    total = {k: sum(kb.number(r[k]) for r in frame.to_dict("records")) for k in _ROPO_SUMS}
    rows.append(_ropo_row(None, total))
    return kb.frame_of(rows, list(ROPO_COLUMNS))


_ROPO_SUMS: Final = ("store_orders", "researched_orders", "cents", "researched_cents")


def _product_views(tables: Tables, scope: Scope, lookback_days: int) -> ir.Table:
    """Product views on the e-shop and the app that can precede the period's store sales."""
    events = tables[EVENTS]
    since = scope.start - timedelta(days=lookback_days + 1)  # `day` is local, `ts` UTC
    events = events.filter(
        (events.day >= ibis.literal(since))
        & (events.day < ibis.literal(scope.end))
        & (events.event == PRODUCT_VIEWED)
    )
    sources = tables[SOURCES]
    site = sources.filter(sources.channel.isin(list(SITE_SOURCES))).select("source_id")
    events = events.semi_join(site, events.source_id == site.source_id)
    return events.select(v_person=events.person_id, v_ts=events.ts)


def _ropo_row(store: object, r: Mapping[Any, Any]) -> dict[str, object]:
    orders, seen = kb.number(r["store_orders"]), kb.number(r["researched_orders"])
    cents, seen_cents = kb.number(r["cents"]), kb.number(r["researched_cents"])
    return {
        "store": store,
        "store_orders": orders,
        "researched_orders": seen,
        "researched_share": kb.ratio(seen, orders),
        "revenue_eur": kb.euros(cents),
        "researched_revenue_eur": kb.euros(seen_cents),
        "researched_revenue_share": kb.ratio(seen_cents, cents),
    }
