"""Journey stages: every touchpoint, shopping event and order placed in discovery,
consideration, purchase or loyalty, with how many people move on to the next stage.

Before (or at the instant of) a person's first purchase ever:

- discovery: the person's first touchpoint ever, and touchpoints from acquisition
  channels (`ACQUISITION_KINDS`: ads, social, search, press, referral, affiliate,
  marketplace, influencer, TV, radio, outdoor, events, direct mail, street);
- consideration: every other touchpoint (a direct visit, an e-mail opened or clicked,
  a call) and the shopping events (`CONSIDERATION_EVENTS`: product viewed, added to
  cart, checkout...);
- purchase: the first order itself.

After it, everything is loyalty: visits, messages, shopping events, repeat orders.
Reviews (`LOYALTY_EVENTS`) are loyalty whenever they happen.
"""

from __future__ import annotations

from typing import Final

import ibis
import ibis.expr.types as ir
import pandas as pd

from omnicanal.analytics.journeys_common import (
    ACQUISITION_KINDS,
    UNKNOWN,
    at_level,
    check_choice,
    computed,
    fetch,
    first_touches,
    instant,
    kind_of,
    matches,
    media_class_of,
    of_persons,
    order_history,
    ratio,
)
from omnicanal.analytics.scope import Scope, Tables, in_period
from omnicanal.analytics.touchpoints import ENGAGEMENT_EVENTS, conversions, touchpoints
from omnicanal.warehouse.schema import EVENTS

STAGES: Final = ("discovery", "consideration", "purchase", "loyalty")
#: Shopping events that show a person weighing a purchase (Segment's e-commerce spec).
CONSIDERATION_EVENTS: Final = (
    "Products Searched",
    "Product List Viewed",
    "Product List Filtered",
    "Promotion Clicked",
    "Product Clicked",
    "Product Viewed",
    "Product Added",
    "Product Added to Wishlist",
    "Wishlist Product Added to Cart",
    "Product Shared",
    "Cart Viewed",
    "Cart Shared",
    "Checkout Started",
    "Checkout Step Viewed",
    "Checkout Step Completed",
    "Payment Info Entered",
    "Coupon Entered",
    "Coupon Applied",
)
#: Events that belong to loyalty whenever they happen.
LOYALTY_EVENTS: Final = ("Product Reviewed",)
STAGE_BY: Final = (None, "channel", "kind", "media_class")
#: Columns of `stages` (with the `by` column after `stage` when broken down).
STAGE_COLUMNS: Final = (
    "stage",
    "people",
    "touchpoints",
    "next_stage",
    "reached_next",
    "conversion",
)


def stages(
    tables: Tables, scope: Scope, *, by: str | None = None, compare: bool = False
) -> pd.DataFrame:
    """Count people and touchpoints per stage in the period, and who moves on.

    Args:
        by: None for one row per stage, or `channel`, `kind` or `media_class` for one
            row per stage and channel (the channel of the touchpoint, event or order).
        compare: add the previous period of the same length: `previous_people`,
            `previous_conversion` and `conversion_change` (this period's minus it).

    Columns: stage, [by], people (distinct people with something at this stage),
    touchpoints (touchpoints, events and orders at this stage), next_stage,
    reached_next (of these people, those with something at the next stage, on any
    channel, at or after their first moment at this stage, within the period) and
    conversion (reached_next / people; empty for loyalty, the last stage). The scope's
    channel, media-class and store filters choose what is counted; moving on is
    looked for on every channel.
    """
    check_choice(by, STAGE_BY, "by")
    with computed(_compact(_items(tables, scope), scope, by)) as compact:
        frame = _stage_frame(fetch(_totals(compact)), by)
    if not compare:
        return frame
    keys = ["stage"] if by is None else ["stage", by]
    previous = stages(tables, scope.previous(), by=by)[[*keys, "people", "conversion"]]
    previous = previous.rename(
        columns={"people": "previous_people", "conversion": "previous_conversion"}
    )
    frame = frame.merge(previous, on=keys, how="left")
    frame["previous_people"] = frame["previous_people"].fillna(0).astype("int64")
    frame["conversion_change"] = frame["conversion"] - frame["previous_conversion"]
    return frame


def _compact(items: ir.Table, scope: Scope, by: str | None) -> ir.Table:
    """Per person, stage, group and whether it passes the filters: first, last, count."""
    items = items.mutate(
        group=ibis.literal("") if by is None else _group(items, by),
        counted=matches(scope, items.channel, items.media_class, items.store),
    )
    return items.group_by("person_id", "stage_index", "group", "counted").aggregate(
        first_ts=items.ts.min(), last_ts=items.ts.max(), touchpoints=items.count()
    )


def _totals(compact: ir.Table) -> ir.Table:
    """People, touchpoints and people moving on, per stage and group."""
    keys = ["person_id", "stage_index"]
    reached = compact.group_by(keys).aggregate(last_ts=compact.last_ts.max())
    counted = compact.filter(compact.counted)
    per_person = counted.group_by([*keys, "group"]).aggregate(
        first_ts=counted.first_ts.min(), touchpoints=counted.touchpoints.sum()
    )
    moved = per_person.left_join(
        reached,
        (per_person.person_id == reached.person_id)
        & (reached.stage_index == per_person.stage_index + 1)
        & (reached.last_ts >= per_person.first_ts),
    )
    moved = moved.mutate(moved=moved.last_ts.notnull().cast("int64"))
    return moved.group_by("stage_index", "group").aggregate(
        people=moved.count(),
        touchpoints=moved.touchpoints.sum(),
        reached_next=moved.moved.sum(),
    )


def _group(items: ir.Table, by: str) -> ir.StringValue:
    if by == "media_class":
        return items.media_class.fill_null(UNKNOWN)
    return at_level(items.channel, by)


def _items(tables: Tables, scope: Scope) -> ir.Table:
    """Touchpoints, shopping events and orders of the period, with their stage.

    History is read only where the stage needs it: each person's first touchpoint
    ever and first purchase ever.
    """
    columns = ["person_id", "ts", "day", "channel", "media_class", "store", "first_touch", "hint"]
    touches = of_persons(touchpoints(tables, scope), scope)
    first = first_touches(tables, scope)
    first = first.select(
        first_person=first.person_id,
        first_ts=first.ts,
        first_kind=first.kind,
        first_channel=first.channel,
    )
    touches = touches.left_join(
        first,
        (touches.person_id == first.first_person)
        & (instant(touches.ts) == first.first_ts)
        & (touches.kind == first.first_kind)
        & (touches.channel == first.first_channel),
    )
    touches = touches.mutate(
        store=ibis.null("string"),
        first_touch=touches.first_person.notnull(),
        hint=ibis.literal("touch"),
    ).select(*columns)
    events = of_persons(in_period(tables[EVENTS], scope), scope)
    names = [e for e in (*CONSIDERATION_EVENTS, *LOYALTY_EVENTS) if e not in ENGAGEMENT_EVENTS]
    shopping = events.filter(events.online.fill_null(False) & events.event.isin(names))
    shopping = shopping.mutate(
        store=ibis.null("string"),
        first_touch=ibis.literal(False),
        hint=ibis.ifelse(shopping.event.isin(list(LOYALTY_EVENTS)), "loyalty", "consideration"),
    ).select(*columns)
    orders = of_persons(conversions(tables, scope), scope)
    orders = orders.mutate(
        media_class=media_class_of(orders.channel),
        first_touch=ibis.literal(False),
        hint=ibis.ifelse(orders.first, "purchase", "loyalty"),
    ).select(*columns)
    history = order_history(tables, scope)
    firsts = history.filter(history.first).select("person_id", first_purchase=history.ts)
    items = ibis.union(*(part.mutate(ts=instant(part.ts)) for part in (touches, shopping, orders)))
    items = items.left_join(firsts, items.person_id == firsts.person_id).select(
        *columns, "first_purchase"
    )
    return items.mutate(stage_index=_stage_index(items)).drop(
        "first_touch", "hint", "first_purchase"
    )


def _stage_index(items: ir.Table) -> ir.IntegerValue:
    """0 discovery, 1 consideration, 2 purchase, 3 loyalty (see the module's table)."""
    after = items.first_purchase.notnull() & (items.ts > items.first_purchase)
    acquisition = kind_of(items.channel.fill_null("")).isin(list(ACQUISITION_KINDS))
    return ibis.cases(
        (items.hint == "purchase", 2),
        (items.hint == "loyalty", 3),
        (after, 3),
        (items.hint == "consideration", 1),
        (items.first_touch | acquisition, 0),
        else_=1,
    )


def _stage_frame(totals: pd.DataFrame, by: str | None) -> pd.DataFrame:
    group = [] if by is None else [by]
    if by is not None:
        totals = totals.rename(columns={"group": by})
    else:  # every stage appears, even with nobody at it
        every = pd.DataFrame({"stage_index": range(len(STAGES))})
        totals = every.merge(totals.drop(columns="group"), on="stage_index", how="left")
    for column in ("people", "touchpoints", "reached_next"):
        totals[column] = totals[column].fillna(0).astype("int64")
    last = totals["stage_index"] == len(STAGES) - 1
    totals["stage"] = totals["stage_index"].map(dict(enumerate(STAGES)))
    totals["next_stage"] = totals["stage_index"].map(dict(enumerate(STAGES[1:])))
    totals["conversion"] = ratio(totals["reached_next"], totals["people"]).where(~last)
    totals["reached_next"] = totals["reached_next"].astype("Int64").where(~last)
    totals = totals.sort_values(
        ["stage_index", "people", *group], ascending=[True, False, *([True] * len(group))]
    )
    columns = ["stage", *group, *STAGE_COLUMNS[1:]]
    return totals[columns].reset_index(drop=True)
