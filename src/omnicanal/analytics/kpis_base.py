"""What every KPI report shares: the scoped orders, visits, costs and answers, and arithmetic.

An order has a **placement channel** (`orders.channel`: web, app, store:<code>,
call_centre...) and, when it was placed during a visit to the e-shop or the app, a
**credited channel**: the entry channel of that visit (the ad, e-mail or search engine
that brought the person; `web` or `app` for a direct visit), i.e. last touch within the
visit. Orders placed outside a visit (till sales, call-centre orders) have no credited
channel unless an attribution model gives one.

Channel and media-class filters keep an order when its placement channel or its
credited channel matches, so "paid" keeps the orders brought by ads and "web" every
order placed on the e-shop. Store filters keep orders bought or picked up in the store.
Money stays in integer cents until the end; the helpers here turn it into euros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import ibis
import ibis.expr.types as ir
import pandas as pd

from omnicanal.analytics.scope import Scope, Tables, channel_matches, in_period, with_filters
from omnicanal.analytics.touchpoints import site_events
from omnicanal.core.channels import KINDS
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import COSTS, EVENTS, FEEDBACK, ORDERS

COMPARES: Final = ("previous", "year")
GAP_MINUTES: Final = 30  # the visit gap of touchpoints.sessions
MEDIA_CLASSES: Final = {name: kind.media_class.value for name, kind in KINDS.items()}


# ---------------------------------------------------------------------------------
# Arithmetic on fetched figures


def number(value: Any) -> int:
    """Return a fetched count or sum of cents as an int (0 for null or NaN)."""
    if value is None or pd.isna(value):
        return 0
    return int(value)


def euros(cents: float | None) -> float | None:
    """Return cents as euros rounded to the cent."""
    return None if cents is None else round(cents / 100, 2)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Return the fraction, or None when the denominator is 0 or unknown."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def change(value: float | None, previous: float | None) -> float | None:
    """Return the relative change from `previous`, None when it is 0 or unknown."""
    if value is None or not previous:
        return None
    return (value - previous) / abs(previous)


def roi(net_cents: float | None, cost_cents: float, margin: float | None) -> float | None:
    """Return (net revenue x margin - cost) / cost, or (net revenue - cost) / cost."""
    if net_cents is None or not cost_cents:
        return None
    gain = net_cents * margin if margin is not None else net_cents
    return (gain - cost_cents) / cost_cents


def check_margin(margin: float | None) -> None:
    """Refuse a gross margin outside (0, 1]."""
    if margin is not None and not 0 < margin <= 1:
        raise InvalidError(
            "the gross margin must be a fraction",
            errors=[{"field": "margin", "reason": "must be above 0 and at most 1"}],
        )


def comparison(scope: Scope, compare: str | None) -> Scope | None:
    """Return the period to compare with: the previous one, a year before, or none."""
    if compare is None:
        return None
    if compare == "previous":
        return scope.previous()
    if compare == "year":
        return scope.shifted_years(-1)
    raise InvalidError(
        "unknown comparison",
        errors=[{"field": "compare", "reason": f"must be {' or '.join(COMPARES)}, or empty"}],
    )


def fetch(expr: ir.Table) -> pd.DataFrame:
    """Run a query and return its rows (through Arrow: exact integers, dates as dates)."""
    frame: pd.DataFrame = expr.to_pyarrow().to_pandas()
    return frame


def frame_of(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Build a result frame; a column with a missing value keeps Python values and None."""
    data = {}
    for column in columns:
        values = [r[column] for r in rows]
        missing = any(v is None for v in values)
        data[column] = pd.Series(values, dtype=object if missing or not values else None)
    return pd.DataFrame(data, columns=list(columns))


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Give missing values as None (JSON null) rather than NaN, and a fresh index."""
    frame = frame.reset_index(drop=True)
    for column in frame.columns:
        if frame[column].isna().any():
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
    return frame


def to_date(value: Any) -> date | None:
    """Return a fetched day as a date (engines give dates, timestamps or strings)."""
    if value is None or (not isinstance(value, date) and pd.isna(value)):
        return None
    stamp = pd.Timestamp(value)
    return date(stamp.year, stamp.month, stamp.day)


# ---------------------------------------------------------------------------------
# The channel taxonomy as expressions


def kind_of(channel: ir.StringValue) -> ir.StringValue:
    """Return the channel's kind: `store` for `store:paris-01`."""
    return channel.split(":")[0]


def media_class_of(channel: ir.StringValue) -> ir.StringValue:
    """Return the taxonomy's media class of a channel (null for an unknown kind)."""
    return kind_of(channel).substitute(MEDIA_CLASSES, else_=ibis.null("string"))


def channel_kept(channel: str, scope: Scope) -> bool:
    """Say whether the scope's channel and media-class filters keep a channel (in Python)."""
    kind = channel.split(":", maxsplit=1)[0]
    if scope.channels and not any(channel == c if ":" in c else kind == c for c in scope.channels):
        return False
    return not scope.media_classes or MEDIA_CLASSES.get(kind) in scope.media_classes


def _media_filter(table: ir.Table, scope: Scope, column: str = "channel") -> ir.Table:
    if not scope.media_classes:
        return table
    return table.filter(media_class_of(table[column]).isin(list(scope.media_classes)))


# ---------------------------------------------------------------------------------
# Scoped tables


def order_history(tables: Tables) -> ir.Table:
    """Every order with `first` (the person's first order ever) and `first_day`.

    `first` orders a person's orders by (ts, order_id) like `touchpoints.conversions`.
    """
    orders = tables[ORDERS]
    ranked = ibis.window(group_by="person_id", order_by=["ts", "order_id"])
    person = ibis.window(group_by="person_id")
    return orders.mutate(
        first=ibis.row_number().over(ranked) == 0,
        first_day=orders.day.min().over(person),
    )


@dataclass(frozen=True)
class Visits:
    """The visits that started in a period, and the orders placed during them.

    The visits are exactly those of `touchpoints.sessions` (same events, same 30-minute
    cut, same entry channel), computed with one window over the site events instead of
    three, since reports only count them. `starts`: one row per visit, columns
    person_id, ts, day, channel, media_class (of the entry), engaged (more than one
    event, or an order). `orders`: one row per order event of those visits, columns
    event_id, order_id, person_id, and the visit's day, channel and media_class.
    """

    starts: ir.Table
    orders: ir.Table


def visits(tables: Tables, scope: Scope) -> Visits:
    """Return the period's visits (see `Visits`), without the scope's filters."""
    # a visit that started just before the period is cut right: look back a day
    margin = ibis.literal(scope.start) - ibis.interval(days=1)
    period = tables[EVENTS].filter(
        (tables[EVENTS].day >= margin) & (tables[EVENTS].day < ibis.literal(scope.end))
    )
    # filtered first, so that no query shares (and an engine materialises) every event
    events = site_events(tables, period)
    person = ibis.window(group_by="person_id", order_by=["ts", "event_id"])
    gap = ibis.interval(minutes=GAP_MINUTES)
    marked = events.mutate(
        prev_ts=events.ts.lag().over(person), next_ts=events.ts.lead().over(person)
    )
    marked = marked.mutate(new=marked.prev_ts.isnull() | (marked.ts > marked.prev_ts + gap))
    alone = marked.next_ts.isnull() | (marked.next_ts > marked.ts + gap)
    starts = marked.filter(marked.new).select(
        "person_id", "ts", "day", "channel", "media_class",
        engaged=~alone | marked.order_id.notnull(),
    )  # fmt: skip
    # a visit lasts until the person's next visit: its events are those in between
    following = starts.ts.lead().over(ibis.window(group_by="person_id", order_by="ts"))
    bounded = starts.mutate(until=following)
    placed = marked.filter(marked.order_id.notnull()).select(
        "event_id", "order_id", o_person=marked.person_id, o_ts=marked.ts
    )
    linked = placed.join(
        bounded,
        [
            placed.o_person == bounded.person_id,
            placed.o_ts >= bounded.ts,
            bounded.until.isnull() | (placed.o_ts < bounded.until),
        ],
    ).select("event_id", "order_id", "person_id", "day", "channel", "media_class")
    started = in_period(starts, scope)
    return Visits(starts=started, orders=in_period(linked, scope))


def scoped_visits(all_visits: Visits, scope: Scope) -> Visits:
    """Visits kept by the scope: by entry channel, media class and person."""

    def keep(table: ir.Table) -> ir.Table:
        return with_filters(table, scope, channel="channel", media_class="media_class", store=None)

    return Visits(starts=keep(all_visits.starts), orders=keep(all_visits.orders))


def with_visit_channel(orders: ir.Table, all_visits: Visits) -> ir.Table:
    """Add `credited_channel` and `credited_media_class` (null outside a visit) to orders.

    An order was placed during a visit when the event that placed it (`orders.event_id`)
    is one of the visit's events.
    """
    linked = all_visits.orders.select(
        v_event=all_visits.orders.event_id,
        credited_channel=all_visits.orders.channel,
        credited_media_class=all_visits.orders.media_class,
    )
    return orders.left_join(linked, orders.event_id == linked.v_event).drop("v_event")


def scoped_orders(
    tables: Tables, scope: Scope, history: ir.Table, all_visits: Visits | None
) -> ir.Table:
    """The period's orders kept by the scope, with their credited channel when known.

    Columns: those of `orders`, `first`, `first_day`, and `credited_channel`,
    `credited_media_class` when `all_visits` is given.
    """
    orders = with_filters(in_period(history, scope), scope, channel=None, store="store")
    if all_visits is None:
        return orders
    orders = with_visit_channel(orders, all_visits)
    if scope.channels:
        keep = channel_matches(orders.channel, scope.channels) | channel_matches(
            orders.credited_channel, scope.channels
        )
        orders = orders.filter(keep.fill_null(False))
    if scope.media_classes:
        classes = list(scope.media_classes)
        keep = media_class_of(orders.channel).isin(classes) | orders.credited_media_class.isin(
            classes
        )
        orders = orders.filter(keep.fill_null(False))
    return orders


def needs_visits(scope: Scope) -> bool:
    """Say whether filtering orders needs their visit (channel or media-class filters)."""
    return bool(scope.channels or scope.media_classes)


def scoped_costs(tables: Tables, scope: Scope) -> ir.Table:
    """The period's costs of the scope's channels, media classes and stores."""
    costs = in_period(tables[COSTS], scope)
    return with_filters(costs, scope, media_class="media_class", person=None)


def scoped_feedback(tables: Tables, scope: Scope) -> ir.Table:
    """The period's NPS and CSAT answers kept by the scope (by the answer's channel)."""
    feedback = with_filters(in_period(tables[FEEDBACK], scope), scope)
    return _media_filter(feedback, scope)


def feedback_figures(feedback: ir.Table) -> dict[str, ir.Scalar]:
    """Answer counts for NPS (0-10) and CSAT (1-5) as aggregate expressions."""
    nps = feedback.kind == "nps"
    csat = feedback.kind == "csat"
    return {
        "nps_answers": feedback.count(where=nps),
        "promoters": feedback.count(where=nps & (feedback.score >= 9)),
        "detractors": feedback.count(where=nps & (feedback.score <= 6)),
        "csat_answers": feedback.count(where=csat),
        "satisfied": feedback.count(where=csat & (feedback.score >= 4)),
    }


def nps(promoters: int, detractors: int, answers: int) -> float | None:
    """Return the Net Promoter Score in points (-100..100)."""
    return None if not answers else 100 * (promoters - detractors) / answers


@dataclass(frozen=True)
class Periods:
    """The report's period and the one it is compared with, if any."""

    current: Scope
    compared: Scope | None

    @property
    def all(self) -> list[Scope]:
        """Return the periods to compute, the report's first."""
        return [self.current] if self.compared is None else [self.current, self.compared]


def union_all(tables: list[ir.Table]) -> ir.Table:
    """Stack tables with the same columns (one is returned as is)."""
    return tables[0] if len(tables) == 1 else ibis.union(*tables, distinct=False)


def with_previous(
    current: pd.DataFrame, previous: pd.DataFrame, key: str, metrics: tuple[str, ...]
) -> pd.DataFrame:
    """Add `<metric>_previous` and `<metric>_change` for each metric, matched on `key`."""
    before = previous[[key, *metrics]].rename(columns={m: f"{m}_previous" for m in metrics})
    merged = current.merge(before, on=key, how="left")
    for m in metrics:
        merged[f"{m}_change"] = [
            change(None if pd.isna(v) else v, None if pd.isna(p) else p)
            for v, p in zip(merged[m], merged[f"{m}_previous"], strict=True)
        ]
    return merged
