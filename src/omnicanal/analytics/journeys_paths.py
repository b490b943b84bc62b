"""Paths to purchase and the time they take.

A path is the sequence of channels of a person's touchpoints before a purchase, ending
with the purchase's own channel: `ads:instagram → web → store:paris-01`. Consecutive
repeats merge into one step (a direct visit then an order on the e-shop is `web`); at
equal timestamps touchpoints come before the purchase, then go by channel name. A
purchase with no touchpoint before it reads `(none) → store:paris-01`. A path longer
than `max_steps` keeps its last `max_steps` steps (the ones nearest the purchase) and
counts as `truncated`.

`before="first_purchase"` follows each person's first purchase ever (when it falls in
the period) with every touchpoint before it; `before="purchase"` follows repeat
purchases in the period with the touchpoints since the person's previous purchase.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import ibis
import ibis.expr.types as ir
import pandas as pd

from omnicanal.analytics.journeys_common import (
    ALL,
    ARROW,
    LEVELS,
    NONE,
    at_level,
    check_choice,
    check_positive,
    computed,
    days_between,
    euros,
    fetch,
    first_touches,
    instant,
    matches,
    media_class_of,
    order_history,
    ratio,
    touch_history,
)
from omnicanal.analytics.scope import Scope, Tables, in_period, with_filters
from omnicanal.warehouse.schema import EVENTS

BEFORE: Final = ("first_purchase", "purchase")
#: Columns of `paths`.
PATH_COLUMNS: Final = (
    "path",
    "steps",
    "purchases",
    "people",
    "share",
    "revenue",
    "median_days",
    "truncated",
)
MEASURES: Final = ("first_purchase", "repeat_purchase")
#: Columns of `time_to_convert` (the channel column is named after `level`).
TIME_COLUMNS: Final = (
    "measure",
    "purchases",
    "people",
    "median_days",
    "p25_days",
    "p75_days",
    "p90_days",
)


def paths(
    tables: Tables,
    scope: Scope,
    *,
    before: str = "first_purchase",
    top: int = 20,
    max_steps: int = 6,
    level: str = "channel",
    lookback_days: int | None = None,
) -> pd.DataFrame:
    """The most frequent paths to purchase, with their people, revenue and duration.

    Args:
        before: `first_purchase` (acquisition paths) or `purchase` (repeat purchases,
            from the previous purchase).
        top: how many paths to return, the most frequent first.
        max_steps: longest path shown, purchase included.
        level: `channel` (`store:paris-01`), `kind` (`store`) or `media_class`
            (`hors_media`).
        lookback_days: ignore touchpoints more than this many days before the
            purchase (None: since the beginning of the data).

    Columns: path, steps (shown), purchases, people, share (of all the purchases
    followed, not just the top), revenue (euros, order totals), median_days (first
    touchpoint of the path to purchase; empty for `(none)` paths) and truncated
    (purchases whose path was cut to `max_steps`). The period picks the purchases;
    channel and media-class filters keep paths with a matching step, store filters
    purchases placed in or collected from those stores.
    """
    check_choice(before, BEFORE, "before")
    check_choice(level, LEVELS, "level")
    check_positive(top, "top")
    check_positive(max_steps, "max_steps")
    if lookback_days is not None:
        check_positive(lookback_days, "lookback_days")
    journeys = _journeys(tables, scope, before, level, max_steps, lookback_days)
    grouped = journeys.group_by("path").aggregate(
        steps=journeys.shown.max(),
        purchases=journeys.count(),
        people=journeys.person_id.nunique(),
        revenue_cents=journeys.cents.sum(),
        median_days=journeys.days.median(),
        truncated=journeys.truncated.cast("int64").sum(),
    )
    total = grouped.purchases.sum().over(ibis.window())
    ranked = grouped.mutate(total=total).order_by(
        [ibis.desc("purchases"), ibis.desc("revenue_cents"), "path"]
    )
    frame = fetch(ranked.limit(top))
    frame["share"] = ratio(frame["purchases"], frame["total"])
    frame["revenue"] = euros(frame["revenue_cents"])
    frame["median_days"] = frame["median_days"].astype("float64").round(2)
    return frame[list(PATH_COLUMNS)]


def _targets(orders: ir.Table, scope: Scope, before: str) -> ir.Table:
    """The purchases whose paths are followed, with the person's `ordinal` of each."""
    targets = in_period(orders, scope)
    if before == "first_purchase":
        targets = targets.filter(targets.first)
    else:
        targets = targets.filter(~targets.first)
    targets = with_filters(targets, scope, channel=None, store="store", person=None)
    return targets.select(
        "person_id",
        "ordinal",
        since=instant(targets.previous_ts),
        journey=targets.order_id,
        order_ts=instant(targets.ts),
        order_channel=targets.channel,
        cents=targets.total_cents,
    )


def _numbered_touches(
    tables: Tables, scope: Scope, orders: ir.Table, buyers: ir.Table, since: date | None
) -> ir.Table:
    """The buyers' touchpoints, each with the ordinal of the purchase it leads to.

    Touchpoints and orders are sorted together per person (touchpoints first at the same
    instant); a touchpoint leads to the order after it, number (orders before it) + 1.
    Only the buyers' events are read, from a day before their earliest purchase that
    starts a path (`buyers.since`): visits are cut per person, so leaving the rest out
    changes no visit of the paths (the day covers a visit running over that purchase, as
    `sessions` looks back a day at a period's start) and saves most of the work.
    """
    events = tables[EVENTS]
    kept = events.join(
        buyers,
        (events.person_id == buyers.buyer)
        & (buyers.since.isnull() | (events.ts >= buyers.since - ibis.interval(days=1))),
    )
    events = kept.select(*events.columns)
    touches = touch_history({**tables, EVENTS: events}, scope, since=since)
    columns = ["person_id", "ts", "rank", "order_id", "channel", "media_class"]
    touch_marks = touches.mutate(
        ts=instant(touches.ts), rank=ibis.literal(0, "int64"), order_id=ibis.null("int64")
    ).select(*columns)
    orders = orders.semi_join(buyers, orders.person_id == buyers.buyer)
    order_marks = orders.mutate(
        ts=instant(orders.ts), rank=ibis.literal(1, "int64"), media_class=ibis.null("string")
    ).select(*columns)
    marks = ibis.union(touch_marks, order_marks)
    running = ibis.cumulative_window(group_by="person_id", order_by=["ts", "rank", "order_id"])
    marks = marks.mutate(before=(marks["rank"] == 1).cast("int64").sum().over(running))
    touched = marks.filter(marks["rank"] == 0)
    return touched.mutate(ordinal=touched.before + 1)


def _steps(
    tables: Tables, scope: Scope, before: str, level: str, lookback_days: int | None
) -> ir.Table:
    """One row per touchpoint of each path (rank 0) and one for its purchase (rank 1)."""
    orders = order_history(tables, scope)
    targets = _targets(orders, scope, before)
    buyers = targets.group_by(buyer=targets.person_id).aggregate(since=targets.since.min())
    since = None if lookback_days is None else scope.start - timedelta(days=lookback_days + 1)
    touches = _numbered_touches(tables, scope, orders, buyers, since)
    touches = touches.select(
        "ts",
        "channel",
        "media_class",
        touch_person=touches.person_id,
        touch_ordinal=touches.ordinal,
    )
    found = targets.join(
        touches,
        (targets.person_id == touches.touch_person) & (targets.ordinal == touches.touch_ordinal),
    )
    if lookback_days is not None:
        found = found.filter(found.ts >= found.order_ts - ibis.interval(days=lookback_days))
    columns = ["journey", "person_id", "cents", "order_ts", "ts", "rank", "node", "match"]
    touch_rows = found.mutate(
        rank=ibis.literal(0, "int64"),
        node=at_level(found.channel, level),
        match=matches(scope, found.channel, found.media_class),
    ).select(*columns)
    purchase_rows = targets.mutate(
        ts=targets.order_ts,
        rank=ibis.literal(1, "int64"),
        node=at_level(targets.order_channel, level),
        match=matches(scope, targets.order_channel, media_class_of(targets.order_channel)),
    ).select(*columns)
    return ibis.union(touch_rows, purchase_rows)


def _journeys(
    tables: Tables,
    scope: Scope,
    before: str,
    level: str,
    max_steps: int,
    lookback_days: int | None,
) -> ir.Table:
    """One row per purchase followed: person_id, path, shown, cents, days, truncated.

    Each path's rows are read once: whole-path figures come from windows, then
    repeats are merged and the last `max_steps` steps spread into columns s0 (the
    purchase), s1, ...
    """
    rows = _steps(tables, scope, before, level, lookback_days)
    whole = ibis.window(group_by="journey")
    is_touch = rows["rank"] == 0
    forward = ibis.window(group_by="journey", order_by=["ts", "rank", "node"])
    rows = rows.mutate(
        touches=is_touch.cast("int64").sum().over(whole),
        first_touch=ibis.ifelse(is_touch, rows.ts, ibis.null(rows.ts.type())).min().over(whole),
        keep=rows.match.cast("int64").max().over(whole),
        previous=rows.node.lag().over(forward),
    )
    kept = rows.filter((rows.keep == 1) & (rows.previous.isnull() | (rows.node != rows.previous)))
    backward = ibis.window(
        group_by="journey",
        order_by=[ibis.desc("ts"), ibis.desc("rank"), ibis.desc("node")],
    )
    kept = kept.mutate(position=ibis.row_number().over(backward))
    last = {f"s{i}": kept.node.max(where=kept.position == i) for i in range(max_steps)}
    journeys = kept.group_by("journey").aggregate(
        person_id=kept.person_id.max(),
        cents=kept.cents.max(),
        order_ts=kept.order_ts.max(),
        touches=kept.touches.max(),
        first_touch=kept.first_touch.max(),
        length=kept.count(),
        **last,
    )
    return journeys.select(
        "person_id",
        "cents",
        path=_path(journeys, max_steps),
        shown=ibis.least(journeys.length, max_steps) + (journeys.touches == 0).cast("int64"),
        days=days_between(journeys.first_touch, journeys.order_ts),
        truncated=journeys.length > max_steps,
    )


def _path(journeys: ir.Table, max_steps: int) -> ir.StringValue:
    """The kept steps joined by arrows, earliest first, after `(none)` without touches."""
    text: ir.StringValue = ibis.ifelse(journeys.touches == 0, NONE + ARROW, "")
    for i in reversed(range(1, max_steps)):
        step = journeys[f"s{i}"]
        text = text + ibis.ifelse(step.isnull(), "", step + ARROW)
    return text + journeys["s0"]


def time_to_convert(tables: Tables, scope: Scope, *, level: str = "channel") -> pd.DataFrame:
    """How long people take to buy, per channel of their first touchpoint.

    Two measures over the purchases of the period: `first_purchase`, days from the
    person's first touchpoint ever to their first purchase, and `repeat_purchase`, days
    from the person's previous purchase. Both are broken down by the channel (or kind,
    see `level`) of the person's first touchpoint when it came before their first
    purchase, `(none)` otherwise (such a first purchase has no duration), with an
    `(all)` row per measure.

    Columns: measure, <level>, purchases, people, median_days, p25_days, p75_days,
    p90_days. Channel and media-class filters apply to the first touchpoint, store
    filters to the purchase.
    """
    check_choice(level, LEVELS, "level")
    orders = order_history(tables, scope)
    acquired = orders.filter(orders.first).select("person_id", acquired=orders.ts)
    touches = first_touches(tables, scope)
    firsts = touches.select(
        "person_id",
        touch_ts=touches.ts,
        touch_channel=touches.channel,
        touch_media=touches.media_class,
    )
    targets = in_period(orders, scope)
    targets = targets.join(acquired, "person_id").left_join(firsts, "person_id")
    touched = targets.touch_ts.notnull() & (targets.touch_ts <= targets.acquired)
    rows = targets.select(
        "person_id",
        "store",
        "touch_channel",
        "touch_media",
        measure=ibis.ifelse(targets.first, MEASURES[0], MEASURES[1]),
        group=ibis.ifelse(touched, at_level(targets.touch_channel, level), NONE),
        days=ibis.ifelse(
            targets.first,
            ibis.ifelse(touched, days_between(targets.touch_ts, targets.ts), ibis.null("float64")),
            days_between(targets.previous_ts, targets.ts),
        ),
    )
    rows = rows.filter(matches(scope, rows.touch_channel, rows.touch_media, rows.store))
    with computed(rows.select("person_id", "measure", "group", "days")) as durations:
        every = durations.mutate(group=ibis.literal(ALL))
        frame = fetch(ibis.union(_durations(durations), _durations(every)))
    return _time_frame(frame, level)


def _durations(rows: ir.Table) -> ir.Table:
    days = rows.days
    return rows.group_by("measure", "group").aggregate(
        purchases=rows.count(),
        people=rows.person_id.nunique(),
        median_days=days.median(),
        p25_days=days.quantile(0.25),
        p75_days=days.quantile(0.75),
        p90_days=days.quantile(0.9),
    )


def _time_frame(frame: pd.DataFrame, level: str) -> pd.DataFrame:
    frame = frame.rename(columns={"group": level})
    for column in TIME_COLUMNS[3:]:
        frame[column] = frame[column].astype("float64").round(2)
    frame["_measure"] = frame["measure"].map(MEASURES.index)
    frame["_all"] = frame[level] != ALL
    frame = frame.sort_values(
        ["_measure", "_all", "purchases", level], ascending=[True, True, False, True]
    )
    columns = [TIME_COLUMNS[0], level, *TIME_COLUMNS[1:]]
    return frame[columns].reset_index(drop=True)
