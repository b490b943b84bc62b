"""Visits, touchpoints and conversions: the vocabulary every journey report shares.

- A **visit** (session) is a run of one person's activity on the e-shop or the app (events
  from sources whose channel is `web` or `app`: pages, screens and tracks) with no gap
  longer than `gap_minutes` (30, as Google Analytics and Adobe count them). A visit's
  channel is the channel of its first event: the ad, search engine, e-mail or social
  network that brought the person (`web` or `app` when nothing did).
- A **touchpoint** is a moment a channel reached a person who reacted: a visit (by its
  entry channel), an engagement with a message (an e-mail opened or clicked, an SMS
  clicked, an SMS link clicked, a push notification tapped), or
  an offline interaction (a workshop or event attended, a call to the customer service,
  any other offline event that is not an order).
- A **conversion** is an order, from any channel, with whether it was the person's first.

Everything stays an Ibis expression, so the reports built on these run on any engine.
"""

from __future__ import annotations

from typing import Final

import ibis
import ibis.expr.types as ir

from omnicanal.analytics.scope import Scope, Tables, in_period
from omnicanal.warehouse.schema import EVENTS, ORDERS, SOURCES

VISIT: Final = "visit"
MESSAGE: Final = "message"
OFFLINE: Final = "offline"

#: Message events that show the person reacted. A delivery is not one: counting every
#: delivered SMS as a touch credited SMS with ten times the sales it truly caused on the
#: demo retailer (docs/concepts/attribution.md).
ENGAGEMENT_EVENTS: Final = (
    "Email Opened",
    "Email Link Clicked",
    "SMS Link Clicked",
    "Push Notification Tapped",
)
#: Events that are the order itself or bookkeeping, never a touchpoint.
#: Events the back office sends about an order, never made by a visitor.
BACK_OFFICE: Final = ("Order Refunded", "Order Cancelled")
NOT_TOUCHES: Final = ("Order Completed", "Order Placed", *BACK_OFFICE)
#: Source channels whose events are site and app activity.
SITE_SOURCES: Final = ("web", "app")
SITE_TYPES: Final = ("page", "screen", "track")
#: Message events sent by the messaging platforms, not by the visitor.
MESSAGE_PREFIXES: Final = ("Email ", "SMS ", "Push Notification ")


def site_events(tables: Tables, events: ir.Table | None = None) -> ir.Table:
    """Events from web and app sources that the visitor made (of `events`, by default all).

    Pass `events` already cut to a period: the filters below then read only those.
    """
    events = tables[EVENTS] if events is None else events
    events = events.filter(events.type.isin(list(SITE_TYPES)))
    sources = tables[SOURCES]
    site = sources.filter(sources.channel.isin(list(SITE_SOURCES))).select("source_id")
    events = events.semi_join(site, events.source_id == site.source_id)
    name = events.event.fill_null("")
    platform = name.isin(list(BACK_OFFICE))
    for prefix in MESSAGE_PREFIXES:
        platform = platform | name.startswith(prefix)
    return events.filter(~platform)


def sessions(tables: Tables, scope: Scope, *, gap_minutes: int = 30) -> ir.Table:
    """One row per visit that started in the scope's period.

    Columns: person_id, session (number of the visit for the person, from 1), ts (start),
    day, end_ts, channel, media_class, online, campaign, events, orders, revenue_cents.
    Visits are cut over the whole history, so a visit crossing midnight stays one.
    """
    # A visit that started just before the period is still cut correctly: look back a day.
    everything = tables[EVENTS]
    margin = ibis.literal(scope.start) - ibis.interval(days=1)
    events = site_events(
        tables,
        everything.filter((everything.day >= margin) & (everything.day < ibis.literal(scope.end))),
    )
    by_person = ibis.window(group_by="person_id", order_by=["ts", "event_id"])
    previous = events.ts.lag().over(by_person)
    gap = ibis.interval(minutes=gap_minutes)
    starts = events.mutate(new=ibis.ifelse(previous.isnull() | (events.ts > previous + gap), 1, 0))
    running = ibis.cumulative_window(group_by="person_id", order_by=["ts", "event_id"])
    numbered = starts.mutate(session=starts.new.sum().over(running))
    entry = numbered.filter(numbered.new == 1).select(
        "person_id", "session", "ts", "day", "channel", "media_class", "online", "campaign"
    )
    totals = numbered.group_by(["person_id", "session"]).aggregate(
        end_ts=numbered.ts.max(),
        events=numbered.count(),
        orders=numbered.order_id.count(),
        revenue_cents=numbered.revenue_cents.sum().fill_null(0),
    )
    visits = entry.join(totals, ["person_id", "session"])
    return in_period(visits, scope)


def touchpoints(tables: Tables, scope: Scope, *, gap_minutes: int = 30) -> ir.Table:
    """Every touchpoint in the period.

    Columns: person_id, ts, day, channel, media_class, online, campaign, kind (visit,
    message, offline).
    """
    columns = ["person_id", "ts", "day", "channel", "media_class", "online", "campaign"]
    visits = sessions(tables, scope, gap_minutes=gap_minutes).select(*columns)
    events = in_period(tables[EVENTS], scope)
    messages = events.filter(events.event.isin(list(ENGAGEMENT_EVENTS))).select(*columns)
    offline = events.filter(
        ~events.online
        & (events.type == "track")
        & ~events.event.fill_null("").isin(list(NOT_TOUCHES))
        & (events.channel != "import")
    ).select(*columns)
    return ibis.union(
        visits.mutate(kind=ibis.literal(VISIT)),
        messages.mutate(kind=ibis.literal(MESSAGE)),
        offline.mutate(kind=ibis.literal(OFFLINE)),
    )


def conversions(tables: Tables, scope: Scope) -> ir.Table:
    """Orders placed in the period, with `first` true for the person's first order ever.

    Columns: order_id, person_id, ts, day, channel, online, store, fulfilment,
    total_cents, refunded_cents, first.
    """
    orders = tables[ORDERS]
    rank = ibis.row_number().over(ibis.window(group_by="person_id", order_by=["ts", "order_id"]))
    ranked = orders.mutate(first=rank == 0)
    return in_period(ranked, scope).select(
        "order_id",
        "person_id",
        "ts",
        "day",
        "channel",
        "online",
        "store",
        "fulfilment",
        "total_cents",
        "refunded_cents",
        "first",
    )
