"""How people engage with messages (e-mail, SMS, push) and with social networks.

Message figures count the Segment events the messaging platforms send back (see
`MESSAGE_EVENTS`); social figures count visits from each network and its costs.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

from omnicanal.analytics import kpis_base as kb
from omnicanal.analytics.scope import Scope, Tables, in_period, with_filters
from omnicanal.warehouse.schema import EVENTS

#: The Segment events that count each step, per messaging channel. A push has no open
#: apart from the tap, which is both its open and its click; an SMS has no open.
MESSAGE_EVENTS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "email": {
        "delivered": ("Email Delivered",),
        "opened": ("Email Opened",),
        "clicked": ("Email Link Clicked",),
    },
    "sms": {"delivered": ("SMS Delivered",), "opened": (), "clicked": ("SMS Link Clicked",)},
    "push": {
        "delivered": ("Push Notification Received",),
        "opened": ("Push Notification Tapped",),
        "clicked": ("Push Notification Tapped",),
    },
}
UNSUBSCRIBED: Final = "Unsubscribed"  # counted on the channel of the event
ENGAGEMENT_COLUMNS: Final = (
    "delivered",
    "opened",
    "clicked",
    "unsubscribed",
    "open_rate",
    "click_rate",
    "click_to_open_rate",
    "unsubscribe_rate",
)
ENGAGEMENT_COMPARED: Final = ("delivered", "open_rate", "click_rate", "unsubscribe_rate")


def engagement(tables: Tables, scope: Scope, *, compare: str | None = None) -> pd.DataFrame:
    """Return message engagement per messaging channel (email, sms, push).

    Columns: channel, delivered (messages), opened and clicked (unique: one per person
    and campaign), unsubscribed (people), open_rate and click_rate (of delivered),
    click_to_open_rate (clicked / opened), unsubscribe_rate (of delivered); None where
    the channel has no such step. With `compare`: `<metric>_previous` and
    `<metric>_change` for ENGAGEMENT_COMPARED.
    """
    periods = kb.Periods(scope, kb.comparison(scope, compare))
    frames = [_engagement_period(tables, p) for p in periods.all]
    result = frames[0]
    if len(frames) > 1:
        result = kb.with_previous(result, frames[1], "channel", ENGAGEMENT_COMPARED)
    return kb.clean(result)


def _engagement_period(tables: Tables, scope: Scope) -> pd.DataFrame:
    names = sorted({e for steps in MESSAGE_EVENTS.values() for e in sum(steps.values(), ())})
    events = with_filters(
        in_period(tables[EVENTS], scope), scope, media_class="media_class", store=None
    )
    events = events.filter(events.event.isin([*names, UNSUBSCRIBED]))
    unique = events.person_id.cast("string") + "|" + events.campaign.fill_null("")
    counts = kb.fetch(
        events.group_by(kind=kb.kind_of(events.channel), event=events.event).aggregate(
            events=events.count(), unique=unique.nunique(), people=events.person_id.nunique()
        )
    )
    rows = [_engagement_row(channel, steps, counts) for channel, steps in MESSAGE_EVENTS.items()]
    return kb.frame_of(rows, ["channel", *ENGAGEMENT_COLUMNS])


def _engagement_row(
    channel: str, steps: dict[str, tuple[str, ...]], counts: pd.DataFrame
) -> dict[str, object]:
    def total(names: tuple[str, ...], column: str) -> int | None:
        if not names:
            return None
        return int(counts.loc[counts["event"].isin(names), column].sum())

    delivered = total(steps["delivered"], "events") or 0
    opened = total(steps["opened"], "unique")
    clicked = total(steps["clicked"], "unique")
    mine = counts[(counts["event"] == UNSUBSCRIBED) & (counts["kind"] == channel)]
    unsubscribed = int(mine["people"].sum())
    return {
        "channel": channel,
        "delivered": delivered,
        "opened": opened,
        "clicked": clicked,
        "unsubscribed": unsubscribed,
        "open_rate": kb.ratio(opened, delivered),
        "click_rate": kb.ratio(clicked, delivered),
        "click_to_open_rate": kb.ratio(clicked, opened),
        "unsubscribe_rate": kb.ratio(unsubscribed, delivered),
    }


# ---------------------------------------------------------------------------------
# Social networks

#: Networks whose ads count as paid social (`ads:<network>`), besides every `social:<x>`.
SOCIAL_NETWORKS: Final = frozenset(
    {"facebook", "instagram", "tiktok", "pinterest", "linkedin", "snapchat", "x", "youtube"}
)
SOCIAL_COLUMNS: Final = (
    "visits",
    "engaged_visits",
    "engagement_rate",
    "paid_visits",
    "impressions",
    "clicks",
    "ctr",
    "cost_eur",
)
SOCIAL_COMPARED: Final = ("visits", "engaged_visits", "clicks")


def social_engagement(tables: Tables, scope: Scope, *, compare: str | None = None) -> pd.DataFrame:
    """Return engagement per social network.

    Columns: network; visits and engaged_visits from the network's organic channel
    (`social:<network>`; engaged: more than one page, screen or event, or an order) and
    engagement_rate; paid_visits from its ads (`ads:<network>`); impressions, clicks,
    ctr and cost_eur from the costs of both. With `compare`: `<metric>_previous` and
    `<metric>_change` for SOCIAL_COMPARED.
    """
    periods = kb.Periods(scope, kb.comparison(scope, compare))
    frames = [_social_period(tables, p) for p in periods.all]
    result = frames[0]
    if len(frames) > 1:
        result = kb.with_previous(result, frames[1], "network", SOCIAL_COMPARED)
    return kb.clean(result)


def _social_period(tables: Tables, scope: Scope) -> pd.DataFrame:
    visits = kb.scoped_visits(kb.visits(tables, scope), scope).starts
    visits = visits.filter(kb.kind_of(visits.channel).isin(["social", "ads"]))
    seen = visits.group_by("channel").aggregate(
        visits=visits.count(), engaged=visits.count(where=visits.engaged)
    )
    costs = kb.scoped_costs(tables, scope)
    costs = costs.filter(kb.kind_of(costs.channel).isin(["social", "ads"]))
    spent = costs.group_by("channel").aggregate(
        cost=costs.amount_cents.sum(),
        impressions=costs.impressions.sum(),
        clicks=costs.clicks.sum(),
    )
    figures = kb.fetch(seen).merge(kb.fetch(spent), on="channel", how="outer")
    return _social_rows(figures)


def _social_rows(figures: pd.DataFrame) -> pd.DataFrame:
    figures["kind"] = [str(c).split(":")[0] for c in figures["channel"]]
    figures["network"] = [str(c).partition(":")[2] for c in figures["channel"]]
    networks = SOCIAL_NETWORKS | set(figures.loc[figures["kind"] == "social", "network"])
    figures = figures[figures["network"].isin(networks - {""})].fillna(0)
    rows = []
    for network in sorted(set(figures["network"])):
        own = figures[figures["network"] == network]
        organic = own[own["kind"] == "social"]
        visits, engaged = int(organic["visits"].sum()), int(organic["engaged"].sum())
        impressions, clicks = int(own["impressions"].sum()), int(own["clicks"].sum())
        rows.append(
            {
                "network": network,
                "visits": visits,
                "engaged_visits": engaged,
                "engagement_rate": kb.ratio(engaged, visits),
                "paid_visits": int(own.loc[own["kind"] == "ads", "visits"].sum()),
                "impressions": impressions,
                "clicks": clicks,
                "ctr": kb.ratio(clicks, impressions),
                "cost_eur": kb.euros(int(own["cost"].sum())),
            }
        )
    return kb.frame_of(rows, ["network", *SOCIAL_COLUMNS])
