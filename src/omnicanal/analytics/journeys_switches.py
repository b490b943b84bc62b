"""Channel switches: how people move from one channel to the next.

Each person's touchpoints and purchases of the period are put in time order (at equal
timestamps touchpoints come first, then by channel name) and every pair of consecutive
moments is a transition from a source to a target: a web visit followed by a store
purchase is `web` (touch) → `store:paris-01` (purchase). Repeats (the same channel and
type twice in a row) are left out unless asked for, so what remains are real switches
and touch-to-purchase steps. The result is a long-format matrix that a heat map or a
Sankey diagram reads directly (`source`, `target`, `value`); a Sankey wants distinct
nodes on each side, for example by suffixing the type.
"""

from __future__ import annotations

from typing import Final

import ibis
import ibis.expr.types as ir
import pandas as pd

from omnicanal.analytics.journeys_common import (
    LEVELS,
    at_level,
    check_choice,
    check_positive,
    fetch,
    instant,
    matches,
    media_class_of,
    of_persons,
    ratio,
)
from omnicanal.analytics.scope import Scope, Tables
from omnicanal.analytics.touchpoints import conversions, touchpoints

TOUCH: Final = "touch"
PURCHASE: Final = "purchase"
#: Columns of `switches`.
SWITCH_COLUMNS: Final = (
    "source",
    "source_type",
    "target",
    "target_type",
    "value",
    "people",
    "share",
    "median_hours",
    "switch",
)


def switches(
    tables: Tables,
    scope: Scope,
    *,
    level: str = "channel",
    include_repeats: bool = False,
    into_purchase: bool = False,
    top: int | None = None,
) -> pd.DataFrame:
    """Count transitions between consecutive touchpoints and purchases of each person.

    Args:
        level: `channel` (`store:paris-01`), `kind` (`store`) or `media_class`
            (`hors_media`).
        include_repeats: keep transitions from a channel and type to the same.
        into_purchase: keep only transitions whose target is a purchase.
        top: keep the most frequent transitions only.

    Columns: source, source_type (`touch` or `purchase`), target, target_type, value
    (transitions), people, share (of the transitions counted from the same source and
    type, before `top`), median_hours (between the two moments) and switch (the channel
    changes). Channel, media-class and store filters keep transitions with a matching
    end; both moments must fall in the period.
    """
    check_choice(level, LEVELS, "level")
    if top is not None:
        check_positive(top, "top")
    moves = _transitions(tables, scope, level)
    if not include_repeats:
        moves = moves.filter(
            (moves.source != moves.target) | (moves.source_type != moves.target_type)
        )
    if into_purchase:
        moves = moves.filter(moves.target_type == PURCHASE)
    keys = ["source", "source_type", "target", "target_type"]
    counted = moves.group_by(keys).aggregate(
        value=moves.count(),
        people=moves.person_id.nunique(),
        median_hours=moves.hours.median(),
    )
    leaving = ibis.window(group_by=["source", "source_type"])
    counted = counted.mutate(leaving=counted.value.sum().over(leaving))
    counted = counted.order_by([ibis.desc("value"), *keys])
    frame = fetch(counted.limit(top) if top is not None else counted)
    frame["share"] = ratio(frame["value"], frame["leaving"])
    frame["median_hours"] = frame["median_hours"].astype("float64").round(2)
    frame["switch"] = frame["source"] != frame["target"]
    return frame[list(SWITCH_COLUMNS)].reset_index(drop=True)


def _moments(tables: Tables, scope: Scope, level: str) -> ir.Table:
    """Touchpoints and purchases of the period, with whether they pass the filters."""
    columns = ["person_id", "ts", "type", "node", "match"]
    touches = of_persons(touchpoints(tables, scope), scope)
    touches = touches.mutate(
        type=ibis.literal(TOUCH),
        node=at_level(touches.channel, level),
        match=matches(scope, touches.channel, touches.media_class),
    ).select(*columns)
    orders = of_persons(conversions(tables, scope), scope)
    orders = orders.mutate(
        type=ibis.literal(PURCHASE),
        node=at_level(orders.channel, level),
        match=matches(scope, orders.channel, media_class_of(orders.channel), orders.store),
    ).select(*columns)
    return ibis.union(*(part.mutate(ts=instant(part.ts)) for part in (touches, orders)))


def _transitions(tables: Tables, scope: Scope, level: str) -> ir.Table:
    """Each moment with the person's next one: source, target, hours between."""
    moments = _moments(tables, scope, level)
    # "purchase" sorts after "touch" reversed: touchpoints first at the same instant.
    order = ibis.window(group_by="person_id", order_by=["ts", ibis.desc("type"), "node"])
    moments = moments.mutate(
        target=moments.node.lead().over(order),
        target_type=moments.type.lead().over(order),
        target_ts=moments.ts.lead().over(order),
        target_match=moments.match.lead().over(order),
    )
    moves = moments.filter(moments.target.notnull() & (moments.match | moments.target_match))
    seconds = moves.target_ts.epoch_seconds().cast("float64") - moves.ts.epoch_seconds().cast(
        "float64"
    )
    return moves.select(
        "person_id",
        "target",
        "target_type",
        source=moves.node,
        source_type=moves.type,
        hours=seconds / 3600.0,
    )
