"""KPIs on a hand-made warehouse, every figure computed by hand below; and on the demo.

The shop (period 10-20 March 2026, previous period 1-10 March):

    person  orders (id: day, channel, euros)                       visits in the period
    P1      1: 20 Feb web 50 | 2: 5 Mar store paris 30 |            12 Mar via ads:google (buys 4),
            4: 12 Mar web 120 | 6: 15 Mar store paris 60            14 Mar direct, views a product
    P2      5: 11 Mar web 80, 20 refunded | 10: 2 Apr web 35        11 Mar direct (buys 5)
    P3      3: 3 Mar web 40 (visit 3 Mar, direct)                   -
    P4      7: 12 Mar 2025 store lyon 25 | 8: 13 Mar store lyon 45  -
    P5      -                                                       12 and 16 Mar via email
    P6      9: 14 Mar web, click & collect paris 70                 14 Mar via social:instagram
    P7      11: 1 Jun 2025 web 15                                   -

Costs in the period: ads:google 100 + 50 (15,000 impressions, 300 clicks), ads:instagram 40
(4,000 / 40), email 20, event:workshop 300; in the previous period ads:google 80.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import ibis
import pandas as pd
import pyarrow as pa
import pytest
from bench.warehouse_data import generate as generate_warehouse

from omnicanal.analytics import kpis, kpis_base, kpis_channels, segments
from omnicanal.analytics.scope import Scope
from omnicanal.analytics.touchpoints import sessions
from omnicanal.core.errors import InvalidError
from omnicanal.demo.retailer import generate
from tests.analytics.warehouse import load

PERIOD = Scope(date(2026, 3, 10), date(2026, 3, 20))
PREVIOUS = Scope(date(2026, 3, 1), date(2026, 3, 10))
WEB, APP, EMAIL, SMS, PUSH, TILL = 1, 2, 3, 4, 5, 6
MEDIA = {"ads": "paid", "social": "earned", "event": "hors_media", "store": "hors_media"}


def at(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute)


class Shop:
    """Rows of the hand-made warehouse."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def event(self, person, ts, source, kind, name=None, channel="web", **extra) -> None:
        self.events.append(
            {
                "event_id": len(self.events) + 1,
                "profile_id": person,
                "person_id": person,
                "source_id": source,
                "ts": ts,
                "day": ts.date(),
                "type": kind,
                "event": name,
                "channel": channel,
                "media_class": MEDIA.get(channel.split(":")[0], "owned"),
                "online": not channel.startswith(("store", "event")),
                **extra,
            }
        )

    def visit(self, person, ts, channel, *, order=None, view=False) -> None:
        self.event(person, ts, WEB, "page", channel=channel)
        if view:
            self.event(person, ts + timedelta(minutes=5), WEB, "track", "Product Viewed")
        if order:
            order_id, cents = order
            self.event(
                person,
                ts + timedelta(minutes=10),
                WEB,
                "track",
                "Order Completed",
                order_id=order_id,
                revenue_cents=cents,
            )


def order(order_id, person, ts, channel, cents, *, refunded=0, fulfilment=None, store=None):
    online = not channel.startswith("store")
    code = channel.split(":")[1] if not online else store
    return {
        "order_id": order_id,
        "profile_id": person,
        "person_id": person,
        "source_id": WEB if online else TILL,
        "ts": ts,
        "day": ts.date(),
        "channel": channel,
        "online": online,
        "store": code,
        "fulfilment": fulfilment or ("delivery" if online else "in_store"),
        "status": "partially_refunded" if refunded else "completed",
        "currency": "EUR",
        "total_cents": cents,
        "refunded_cents": refunded,
    }


def cost(day, channel, euros, impressions=None, clicks=None, kind="ad_spend"):
    return {
        "cost_id": hash((day, channel)) % 10**9,
        "day": date.fromisoformat(day),
        "channel": channel,
        "media_class": MEDIA.get(channel.split(":")[0], "owned"),
        "campaign": "",
        "kind": kind,
        "amount_cents": euros * 100,
        "impressions": impressions,
        "clicks": clicks,
    }


def answer(event_id, person, kind, score, channel, day="2026-03-16"):
    ts = at(day, 12)
    return {
        "event_id": event_id,
        "profile_id": person,
        "person_id": person,
        "kind": kind,
        "score": score,
        "channel": channel,
        "ts": ts,
        "day": ts.date(),
    }


def shop_orders() -> list[dict]:
    return [
        order(1, 1, at("2026-02-20", 12), "web", 5000),
        order(2, 1, at("2026-03-05", 15), "store:paris-01", 3000),
        order(3, 3, at("2026-03-03", 11, 10), "web", 4000),
        order(4, 1, at("2026-03-12", 10, 10), "web", 12000),
        order(5, 2, at("2026-03-11", 9, 10), "web", 8000, refunded=2000),
        order(6, 1, at("2026-03-15", 16), "store:paris-01", 6000),
        order(7, 4, at("2025-03-12", 11), "store:lyon-01", 2500),
        order(8, 4, at("2026-03-13", 11), "store:lyon-01", 4500),
        order(
            9,
            6,
            at("2026-03-14", 18, 5),
            "web",
            7000,
            fulfilment="click_and_collect",
            store="paris-01",
        ),
        order(10, 2, at("2026-04-02", 10), "web", 3500),
        order(11, 7, at("2025-06-01", 10), "web", 1500),
    ]


def shop_rows() -> dict[str, list[dict]]:
    shop = Shop()
    shop.visit(3, at("2026-03-03", 11), "web", order=(3, 4000))
    shop.visit(2, at("2026-03-11", 9), "web", order=(5, 8000))
    shop.visit(1, at("2026-03-12", 10), "ads:google", order=(4, 12000), view=True)
    shop.visit(5, at("2026-03-12", 14), "email")
    shop.visit(1, at("2026-03-14", 9), "web", view=True)
    shop.visit(6, at("2026-03-14", 17, 55), "social:instagram", order=(9, 7000))
    shop.visit(5, at("2026-03-16", 14), "email")
    messages = [
        (p, at("2026-03-11", 8), EMAIL, "Email Delivered", "email") for p in (1, 2, 3, 5)
    ] + [
        (5, at("2026-03-12", 13, 55), EMAIL, "Email Opened", "email"),
        (5, at("2026-03-16", 13, 50), EMAIL, "Email Opened", "email"),
        (1, at("2026-03-12", 9), EMAIL, "Email Opened", "email"),
        (5, at("2026-03-12", 13, 59), EMAIL, "Email Link Clicked", "email"),
        (3, at("2026-03-11", 9), EMAIL, "Unsubscribed", "email"),
        (1, at("2026-03-13", 10), SMS, "SMS Delivered", "sms"),
        (4, at("2026-03-13", 10), SMS, "SMS Delivered", "sms"),
        (4, at("2026-03-13", 10, 2), SMS, "SMS Link Clicked", "sms"),
        (2, at("2026-03-17", 19), PUSH, "Push Notification Received", "push"),
        (2, at("2026-03-17", 19, 1), PUSH, "Push Notification Tapped", "push"),
    ]
    for person, ts, source, name, channel in messages:
        shop.event(person, ts, source, "track", name, channel=channel, campaign="spring")
    orders = shop_orders()
    placed = {e["order_id"]: e["event_id"] for e in shop.events if e.get("order_id")}
    for o in orders:
        o["event_id"] = placed.get(o["order_id"])  # the event that placed it, if any
    return {
        "events": shop.events,
        "sources": [
            {"source_id": i, "name": n, "channel": c}
            for i, n, c in [
                (WEB, "eshop", "web"),
                (APP, "app", "app"),
                (EMAIL, "newsletter", "email"),
                (SMS, "sms", "sms"),
                (PUSH, "push", "push"),
                (TILL, "till", "import"),
            ]
        ],
        "orders": orders,
        "refunds": [
            {
                "refund_id": 1,
                "order_id": 5,
                "profile_id": 2,
                "person_id": 2,
                "ts": at("2026-03-18", 10),
                "day": date(2026, 3, 18),
                "channel": "web",
                "amount_cents": 2000,
            }
        ],
        "costs": [
            cost("2026-03-12", "ads:google", 100, 10_000, 200),
            cost("2026-03-13", "ads:google", 50, 5_000, 100),
            cost("2026-03-13", "ads:instagram", 40, 4_000, 40),
            cost("2026-03-11", "email", 20, kind="sending"),
            cost("2026-03-14", "event:workshop", 300, kind="event"),
            cost("2026-03-05", "ads:google", 80, 8_000, 160),
        ],
        "feedback": [
            answer(101, 1, "nps", 10, "store:paris-01"),
            answer(102, 2, "nps", 9, "web"),
            answer(103, 4, "nps", 7, "store:lyon-01"),
            answer(104, 6, "nps", 3, "web"),
            answer(105, 1, "csat", 5, "store:paris-01"),
            answer(106, 2, "csat", 4, "web"),
            answer(107, 4, "csat", 2, "store:lyon-01"),
        ],
    }


@pytest.fixture(scope="module")
def tables():
    return load(ibis.duckdb.connect(), shop_rows())


@pytest.fixture(scope="module")
def generated():
    """A year of a synthetic retailer (bench.warehouse_data), 60,000 events."""
    return load(ibis.duckdb.connect(), generate_warehouse(60_000, 3_000, seed=3))


def values(result: list[kpis.Kpi]) -> dict[str, object]:
    return {k.name: k.value for k in result}


def previous(result: list[kpis.Kpi]) -> dict[str, object]:
    return {k.name: k.previous for k in result}


def assert_figures(got: dict, expected: dict) -> None:
    for name, value in expected.items():
        if isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=1e-12), name
        else:
            assert got[name] == value, name


def row(frame: pd.DataFrame, column: str, key: object) -> dict:
    rows = frame[frame[column].isna()] if key is None else frame[frame[column] == key]
    assert len(rows) == 1, (key, frame[column].tolist())
    return rows.iloc[0].to_dict()


# ---------------------------------------------------------------------------------
# overview


def test_overview_of_the_period(tables) -> None:
    result = kpis.overview(tables, PERIOD, compare=None)
    assert [k.name for k in result] == list(kpis.UNITS)
    assert {k.name: k.unit for k in result} == kpis.UNITS
    assert all(k.previous is None and k.change is None for k in result)
    cost = 100 + 50 + 40 + 20 + 300  # every cost of the period, media and hors-média
    assert_figures(
        values(result),
        {
            "revenue": 120 + 80 + 60 + 45 + 70,  # orders 4, 5, 6, 8, 9
            "net_revenue": 375 - 20,
            "orders": 5,
            "buyers": 4,  # P1, P2, P4, P6
            "new_customers": 2,  # P2 and P6: first order ever in the period
            "returning_customers": 2,  # P1 (since February) and P4 (since 2025)
            "average_order_value": 75.0,
            "visits": 6,
            "visitors": 4,  # P1, P2, P5, P6
            "conversion_rate": 3 / 6,  # orders 4, 5 and 9 were placed during visits
            "visitor_conversion_rate": 3 / 4,
            "marketing_cost": float(cost),
            "cac": 255.0,  # 510 / 2
            "roas": 375 / cost,
            "roi": (355 - cost) / cost,
            "repeat_purchase_rate": 1 / 4,  # P1 ordered twice
            "retention_rate": 1 / 2,  # of P1 and P3 (previous period), P1 came back
            "churn_rate": 1 / 2,
            "nps": 100 * (2 - 1) / 4,  # 10, 9 | 7 | 3
            "csat": 2 / 3,  # 5, 4 | 2
            "refund_rate": 20 / 375,
        },
    )


def test_overview_compares_with_the_previous_period(tables) -> None:
    result = kpis.overview(tables, PERIOD)
    before = previous(result)
    assert_figures(
        before,
        {
            "revenue": 70.0,  # orders 2 (store, 30) and 3 (web, 40)
            "orders": 2,
            "buyers": 2,
            "new_customers": 1,  # P3
            "returning_customers": 1,  # P1
            "visits": 1,
            "conversion_rate": 1.0,
            "marketing_cost": 80.0,
            "roas": 70 / 80,
            "retention_rate": 1.0,  # P1 bought 19-28 Feb and again 1-9 March
            "nps": None,
        },
    )
    change = {k.name: k.change for k in result}
    assert change["revenue"] == pytest.approx((375 - 70) / 70)
    assert change["orders"] == pytest.approx(1.5)
    assert change["nps"] is None  # no answers before


def test_overview_compares_with_a_year_before(tables) -> None:
    result = kpis.overview(tables, PERIOD, compare="year")
    before = previous(result)
    assert_figures(before, {"revenue": 25.0, "orders": 1, "new_customers": 1, "visits": 0})
    # no cost a year before: the cost KPIs are unknown, not zero or infinite
    assert before["marketing_cost"] == 0.0
    assert before["cac"] is None
    assert before["roas"] is None
    assert before["roi"] is None
    assert before["conversion_rate"] is None
    assert {k.name: k.change for k in result}["revenue"] == pytest.approx(14.0)


def test_overview_roi_on_gross_margin(tables) -> None:
    got = values(kpis.overview(tables, PERIOD, compare=None, margin=0.4))
    assert got["roi"] == pytest.approx((355 * 0.4 - 510) / 510)
    with pytest.raises(InvalidError) as caught:
        kpis.overview(tables, PERIOD, margin=1.5)
    assert caught.value.errors[0]["field"] == "margin"


def test_an_empty_period(tables) -> None:
    empty = Scope(date(2027, 1, 1), date(2027, 1, 8))
    result = kpis.overview(tables, empty)
    got = values(result)
    for name in ("orders", "buyers", "new_customers", "visits", "visitors"):
        assert got[name] == 0, name
    assert got["revenue"] == 0.0
    assert got["marketing_cost"] == 0.0
    for name in ("average_order_value", "conversion_rate", "cac", "roas", "roi", "nps"):
        assert got[name] is None, name
    assert got["retention_rate"] is None  # nobody bought in the week before either
    assert all(k.change is None for k in result)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        # kinds: every store; only orders placed there, no visit, no store cost
        (
            {"channels": ("store",)},
            {"orders": 2, "revenue": 105.0, "buyers": 2, "new_customers": 0, "visits": 0,
             "returning_customers": 2, "marketing_cost": 0.0},
        ),
        # a marketing channel: the orders of the visits it brought, and its cost
        (
            {"channels": ("ads",)},
            {"orders": 1, "revenue": 120.0, "visits": 1, "marketing_cost": 190.0,
             "roas": 120 / 190},
        ),
        # the e-shop: every order placed on it, and its direct visits
        ({"channels": ("web",)}, {"orders": 3, "revenue": 270.0, "visits": 2, "buyers": 3}),
        # an exact channel
        ({"channels": ("store:paris-01",)}, {"orders": 1, "revenue": 60.0}),
        # a store: bought or picked up there
        (
            {"stores": ("paris-01",)},
            {"orders": 2, "revenue": 130.0, "visits": 0, "marketing_cost": 0.0},
        ),
        ({"media_classes": ("paid",)}, {"orders": 1, "revenue": 120.0, "marketing_cost": 190.0}),
        # stores are hors-média in the taxonomy, like the workshop
        (
            {"media_classes": ("hors_media",)},
            {"orders": 2, "revenue": 105.0, "visits": 0, "marketing_cost": 300.0},
        ),
        ({"media_classes": ("earned",)}, {"orders": 1, "revenue": 70.0, "visits": 1}),
    ],
)  # fmt: skip
def test_overview_filters(tables, filters, expected) -> None:
    assert_figures(values(kpis.overview(tables, replace(PERIOD, **filters))), expected)


def test_overview_of_a_segment(tables) -> None:
    members = segments.segment(tables, PERIOD, "omnichannel")  # P1 and P6
    got = values(kpis.overview(tables, replace(PERIOD, persons=members)))
    assert_figures(
        got,
        {
            "orders": 3,  # 4, 6, 9
            "revenue": 250.0,
            "buyers": 2,
            "new_customers": 1,
            "returning_customers": 1,
            "visits": 3,
            "visitors": 2,
        },
    )
    # spend is not per person: cost KPIs are unknown for a segment
    assert all(got[k] is None for k in ("marketing_cost", "cac", "roas", "roi"))


# ---------------------------------------------------------------------------------
# breakdown


def test_breakdown_by_channel(tables) -> None:
    frame = kpis.breakdown(tables, PERIOD)
    assert list(frame.columns) == ["channel", *kpis_channels.BREAKDOWN_COLUMNS]
    assert frame["channel"].tolist() == [
        "ads:google", "ads:instagram", "email", "event:workshop", "social:instagram",
        "store:lyon-01", "store:paris-01", "web",
    ]  # fmt: skip
    assert_figures(
        row(frame, "channel", "ads:google"),
        {
            "visits": 1,
            "conversion_rate": 1.0,
            "orders": 0,  # nothing is placed on an ad
            "credited_orders": 1,  # order 4
            "credited_revenue_eur": 120.0,
            "credited_new_customers": 0,
            "cost_eur": 150.0,
            "impressions": 15_000,
            "clicks": 300,
            "ctr": 0.02,
            "roas": 0.8,
            "cac_eur": None,  # brought no new customer
            "roi": (120 - 150) / 150,
        },
    )
    # visits but no order: ROI is measured, -100 %
    assert_figures(
        row(frame, "channel", "email"),
        {"visits": 2, "visitors": 1, "conversion_rate": 0.0, "cost_eur": 20.0, "roi": -1.0},
    )
    # spent, never tracked: ROI unknown
    assert_figures(
        row(frame, "channel", "event:workshop"),
        {"cost_eur": 300.0, "roas": None, "cac_eur": None, "roi": None, "visits": 0},
    )
    # a paid-social network: spent and clicked, no tracked visit either
    assert row(frame, "channel", "ads:instagram")["roi"] is None
    assert_figures(
        row(frame, "channel", "web"),
        {
            "visits": 2,
            "visitors": 2,
            "conversion_rate": 0.5,
            "orders": 3,  # 4, 5, 9 were placed on the e-shop
            "revenue_eur": 270.0,
            "net_revenue_eur": 250.0,
            "buyers": 3,
            "new_customers": 2,
            "aov_eur": 90.0,
            "credited_orders": 1,  # only order 5 came from a direct visit
            "credited_revenue_eur": 80.0,
        },
    )
    assert_figures(
        row(frame, "channel", "social:instagram"),
        {"credited_orders": 1, "credited_new_customers": 1, "credited_revenue_eur": 70.0},
    )
    assert frame["orders"].sum() == 5  # every order placed once
    assert frame["credited_orders"].sum() == 3  # the orders placed during a visit


def test_breakdown_by_media_class_and_kind(tables) -> None:
    frame = kpis.breakdown(tables, PERIOD, by="media_class")
    assert frame["media_class"].tolist() == ["earned", "hors_media", "owned", "paid"]
    assert_figures(
        row(frame, "media_class", "paid"),
        {"visits": 1, "credited_revenue_eur": 120.0, "cost_eur": 190.0, "roas": 120 / 190},
    )
    assert_figures(
        row(frame, "media_class", "owned"),
        {"visits": 4, "orders": 3, "credited_orders": 1, "cost_eur": 20.0},
    )
    assert_figures(
        row(frame, "media_class", "hors_media"),
        {"orders": 2, "revenue_eur": 105.0, "cost_eur": 300.0, "roi": None},
    )
    kinds = kpis.breakdown(tables, PERIOD, by="channel_kind")
    assert_figures(
        row(kinds, "channel_kind", "ads"),
        {"visits": 1, "cost_eur": 190.0, "clicks": 340, "credited_orders": 1},
    )
    assert_figures(row(kinds, "channel_kind", "store"), {"orders": 2, "buyers": 2})


def test_breakdown_by_store_and_fulfilment(tables) -> None:
    stores = kpis.breakdown(tables, PERIOD, by="store")
    assert stores["store"].tolist() == ["lyon-01", "paris-01", None]
    assert_figures(row(stores, "store", "paris-01"), {"orders": 2, "revenue_eur": 130.0})
    assert_figures(row(stores, "store", None), {"orders": 2, "revenue_eur": 200.0})
    fulfilment = kpis.breakdown(tables, PERIOD, by="fulfilment")
    assert dict(zip(fulfilment["fulfilment"], fulfilment["orders"], strict=True)) == {
        "click_and_collect": 1,
        "delivery": 2,
        "in_store": 2,
    }


def test_breakdown_with_an_attribution_credit(tables) -> None:
    credit = pd.DataFrame(
        {
            "channel": ["ads:google", "email", "press:elle"],
            "orders": [0.5, 0.5, 1.0],
            "revenue_eur": [60.0, 60.0, 80.0],
            "new_customers": [0.0, 0.5, 0.5],
        }
    )
    frame = kpis.breakdown(tables, PERIOD, credit=credit)
    assert_figures(
        row(frame, "channel", "ads:google"),
        {"credited_orders": 0.5, "credited_revenue_eur": 60.0, "roas": 0.4, "roi": -0.6},
    )
    assert_figures(
        row(frame, "channel", "email"),
        {"roas": 3.0, "cac_eur": 40.0, "credited_new_customers": 0.5},
    )
    assert_figures(row(frame, "channel", "press:elle"), {"credited_orders": 1.0, "cost_eur": 0.0})
    assert row(frame, "channel", "web")["credited_orders"] == 0
    with pytest.raises(InvalidError) as caught:
        kpis.breakdown(tables, PERIOD, credit=credit.drop(columns="revenue_eur"))
    assert caught.value.errors == [{"field": "credit.revenue_eur", "reason": "missing"}]


def test_breakdown_compared_and_filtered(tables) -> None:
    frame = kpis.breakdown(tables, PERIOD, compare="previous")
    google = row(frame, "channel", "ads:google")
    assert google["cost_eur_previous"] == 80.0
    assert google["cost_eur_change"] == pytest.approx((150 - 80) / 80)
    web = row(frame, "channel", "web")
    assert (web["orders_previous"], web["visits_previous"]) == (1, 1)
    assert row(frame, "channel", "ads:instagram")["cost_eur_previous"] is None
    paid = kpis.breakdown(tables, replace(PERIOD, media_classes=("paid",)))
    # the web order that an ad brought, and the paid channels
    assert paid["channel"].tolist() == ["ads:google", "ads:instagram", "web"]
    assert row(paid, "channel", "web")["orders"] == 1


# ---------------------------------------------------------------------------------
# time series, engagement, satisfaction


def test_timeseries_by_day_and_week(tables) -> None:
    daily = kpis.timeseries(tables, PERIOD, metrics=("revenue", "orders", "nps"))
    assert daily["period"].tolist() == [date(2026, 3, d) for d in range(10, 20)]
    assert daily["revenue"].tolist() == [0.0, 80.0, 120.0, 45.0, 70.0, 60.0, 0.0, 0.0, 0.0, 0.0]
    assert daily["nps"].tolist() == [None] * 6 + [25.0] + [None] * 3
    weekly = kpis.timeseries(
        tables, PERIOD, metrics=("visits", "revenue", "marketing_cost", "roas"), grain="week"
    )
    # 10 March is a Tuesday: the first week starts on Monday 9th
    assert weekly["period"].tolist() == [date(2026, 3, 9), date(2026, 3, 16)]
    assert weekly["visits"].tolist() == [5, 1]
    assert weekly["marketing_cost"].tolist() == [510.0, 0.0]
    assert weekly["roas"].tolist() == [pytest.approx(375 / 510), None]
    with pytest.raises(InvalidError) as caught:
        kpis.timeseries(tables, PERIOD, metrics=("revenue", "retention_rate"))
    assert caught.value.errors[0]["field"] == "metrics"


def test_engagement(tables) -> None:
    frame = kpis.engagement(tables, PERIOD)
    assert frame["channel"].tolist() == ["email", "sms", "push"]
    assert_figures(
        row(frame, "channel", "email"),
        {
            "delivered": 4,
            "opened": 2,  # P5 opened twice: one unique open
            "clicked": 1,
            "unsubscribed": 1,
            "open_rate": 0.5,
            "click_rate": 0.25,
            "click_to_open_rate": 0.5,
            "unsubscribe_rate": 0.25,
        },
    )
    assert_figures(
        row(frame, "channel", "sms"),
        {"delivered": 2, "opened": None, "clicked": 1, "click_rate": 0.5, "open_rate": None},
    )
    assert_figures(row(frame, "channel", "push"), {"delivered": 1, "opened": 1, "clicked": 1})
    compared = kpis.engagement(tables, PERIOD, compare="previous")
    assert row(compared, "channel", "email")["delivered_previous"] == 0


def test_social_engagement(tables) -> None:
    frame = kpis.social_engagement(tables, PERIOD)
    assert frame.to_dict("records") == [
        {
            "network": "instagram",
            "visits": 1,
            "engaged_visits": 1,  # a page and an order
            "engagement_rate": 1.0,
            "paid_visits": 0,
            "impressions": 4_000,
            "clicks": 40,
            "ctr": 0.01,
            "cost_eur": 40.0,
        }
    ]


def test_satisfaction(tables) -> None:
    overall = kpis.satisfaction(tables, PERIOD, by=None).to_dict("records")
    assert overall == [
        {
            "nps_answers": 4,
            "promoters": 2,
            "passives": 1,
            "detractors": 1,
            "nps": 25.0,
            "csat_answers": 3,
            "satisfied": 2,
            "csat": pytest.approx(2 / 3),
        }
    ]
    per_channel = kpis.satisfaction(tables, PERIOD)
    assert per_channel["channel"].tolist() == ["store:lyon-01", "store:paris-01", "web"]
    assert per_channel["nps"].tolist() == [0.0, 100.0, 0.0]  # 7 | 10 | 9 and 3
    assert per_channel["csat"].tolist() == [0.0, 1.0, 1.0]
    stores = kpis.satisfaction(tables, replace(PERIOD, channels=("store",)), by=None)
    assert stores["nps_answers"].tolist() == [2]


# ---------------------------------------------------------------------------------
# omnichannel, click & collect, ROPO, segments


def test_omnichannel_customers(tables) -> None:
    frame = kpis.omnichannel(tables, PERIOD)
    assert frame["group"].tolist() == ["online_only", "store_only", "omnichannel"]
    online, store, omni = frame.to_dict("records")
    assert_figures(online, {"customers": 1, "orders": 1, "revenue_eur": 80.0, "retained": 1})
    assert_figures(store, {"customers": 1, "revenue_eur": 45.0, "retention_rate": 0.0})
    assert_figures(
        omni,
        {
            "customers": 2,  # P1 (web and store) and P6 (click & collect)
            "share": 0.5,
            "orders": 3,
            "revenue_eur": 250.0,
            "revenue_per_customer_eur": 125.0,
            "orders_per_customer": 1.5,
            "aov_eur": round(250 / 3, 2),
        },
    )
    # the latest order is 2 April: the 90 days after the period are not all there yet
    assert not online["retention_complete"]
    ten = kpis.omnichannel(tables, PERIOD, retention_days=10)
    assert ten["retained"].tolist() == [0, 0, 0]  # P2 came back after 30 March
    assert ten["retention_complete"].all()


def test_click_and_collect(tables) -> None:
    frame = kpis.click_and_collect(tables, PERIOD)
    assert frame["store"].tolist() == ["lyon-01", "paris-01", None]
    assert frame["online_orders"].tolist() == [3, 3, 3]  # orders 4, 5, 9
    assert frame["click_and_collect_orders"].tolist() == [0, 1, 1]
    assert frame["share_of_online_orders"].tolist() == [0.0, 1 / 3, 1 / 3]
    assert frame["click_and_collect_revenue_eur"].tolist() == [0.0, 70.0, 70.0]
    assert frame["in_store_orders"].tolist() == [1, 1, 2]


def test_ropo(tables) -> None:
    frame = kpis.ropo(tables, PERIOD)
    # P1 viewed a product on 12 and 14 March before buying in Paris on the 15th; P4 never
    assert frame["store"].tolist() == ["lyon-01", "paris-01", None]
    assert frame["researched_orders"].tolist() == [0, 1, 1]
    assert frame["researched_share"].tolist() == [0.0, 1.0, 0.5]
    assert frame["researched_revenue_share"].tolist()[-1] == pytest.approx(60 / 105)
    # the last view was 30 h 55 min before the purchase
    assert kpis.ropo(tables, PERIOD, lookback_days=1)["researched_orders"].tolist() == [0, 0, 0]
    assert kpis.ropo(tables, PERIOD, lookback_days=2)["researched_orders"].tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    ("name", "members"),
    [
        ("new", {2, 6}),
        ("returning", {1, 4}),
        ("online_only", {2}),
        ("store_only", {4}),
        ("omnichannel", {1, 6}),
        ("lapsed", {7}),  # nothing since 1 June 2025, 90 days before 20 March
    ],
)
def test_segments(tables, name, members) -> None:
    table = segments.segment(tables, PERIOD, name)
    assert table.columns == ("person_id",)
    assert set(table.to_pyarrow()["person_id"].to_pylist()) == members


def test_lapsed_days_and_unknown_segment(tables) -> None:
    # last orders before 20 March: P3 on 3 March, P7 in 2025; the others after the 5th
    got = segments.segment(tables, PERIOD, "lapsed", lapsed_days=15).to_pyarrow()
    assert set(got["person_id"].to_pylist()) == {3, 7}
    with pytest.raises(InvalidError) as caught:
        segments.segment(tables, PERIOD, "vip")
    assert caught.value.errors[0]["field"] == "segment"
    assert "omnichannel" in caught.value.errors[0]["reason"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda t: kpis.overview(t, PERIOD, compare="quarter"), "compare"),
        (lambda t: kpis.breakdown(t, PERIOD, by="city"), "by"),
        (lambda t: kpis.timeseries(t, PERIOD, grain="hour"), "grain"),
        (lambda t: kpis.satisfaction(t, PERIOD, by="store"), "by"),
        (lambda t: kpis.ropo(t, PERIOD, lookback_days=0), "lookback_days"),
        (lambda t: kpis.omnichannel(t, PERIOD, retention_days=0), "retention_days"),
    ],
)
def test_invalid_arguments_name_the_field(tables, call, field) -> None:
    with pytest.raises(InvalidError) as caught:
        call(tables)
    assert caught.value.errors[0]["field"] == field


# ---------------------------------------------------------------------------------
# the visits reports count are those of touchpoints.sessions


@pytest.mark.parametrize(
    ("warehouse", "period"),
    [
        ("tables", PERIOD),
        ("tables", PREVIOUS),
        ("generated", Scope(date(2025, 6, 1), date(2025, 7, 1))),
        ("generated", Scope(date(2025, 1, 1), date(2025, 3, 1))),
    ],
)
def test_visits_are_those_of_touchpoints_sessions(request, warehouse, period) -> None:
    warehouse = request.getfixturevalue(warehouse)
    ours = kpis_base.visits(warehouse, period)
    starts = ours.starts.to_pyarrow().to_pandas().sort_values(["person_id", "ts"])
    reference = sessions(warehouse, period).to_pyarrow().to_pandas()
    reference = reference.sort_values(["person_id", "ts"])
    assert len(starts) > 0
    columns = ["person_id", "ts", "day", "channel", "media_class"]
    assert starts[columns].reset_index(drop=True).equals(reference[columns].reset_index(drop=True))
    assert len(ours.orders.to_pyarrow()) == reference["orders"].sum() > 0
    engaged = (reference["events"] >= 2) | (reference["orders"] > 0)
    assert starts["engaged"].tolist() == engaged.tolist()


# ---------------------------------------------------------------------------------
# the demo retailer's ground truth

PARIS = ZoneInfo("Europe/Paris")
DEMO_END = date(2026, 11, 23)


def _person(value: str) -> int:
    return int(value[1:])


def _demo_rows(world) -> dict[str, list[dict]]:
    """Orders from the ground truth; site events with the person each identifier truly is.

    This leaves identity resolution out: the reports are checked on perfect identities.
    """
    truth = pd.read_parquet(world.truth / "orders.parquet")
    truth = truth[truth["period"] == "loaded"].reset_index(drop=True)
    ids = pd.read_parquet(world.truth / "identifiers.parquet")
    ids = ids[ids["kind"].isin(["anonymous_id", "user_id"])]
    identifiers = ids[["kind", "value", "person_id"]].itertuples(index=False)
    person_of = {(kind, value): _person(p) for kind, value, p in identifiers}
    orders = []
    for i, o in enumerate(truth.itertuples(index=False)):
        local = o.at.to_pydatetime()
        channel = f"store:{o.store}" if o.channel == "store" else o.channel
        orders.append(
            {
                "order_id": i + 1,
                "person_id": _person(o.person_id),
                "ts": local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None),
                "day": local.date(),
                "channel": channel,
                "online": o.channel != "store",
                "store": o.store if isinstance(o.store, str) else None,
                "fulfilment": o.fulfilment,
                "total_cents": round(o.revenue_eur * 100),
                "refunded_cents": round(o.refunded_eur * 100),
            }
        )
    events = []
    for source, message in world.messages():
        if source not in ("demo-eshop", "demo-app") or message["type"] not in ("page", "track"):
            continue
        person = person_of.get(("user_id", message.get("userId"))) or person_of.get(
            ("anonymous_id", message.get("anonymousId"))
        )
        ts = datetime.fromisoformat(message["timestamp"])
        events.append(
            {
                "event_id": len(events) + 1,
                "person_id": person,
                "source_id": 1 if source == "demo-eshop" else 2,
                "ts": ts.replace(tzinfo=None),
                "day": ts.astimezone(PARIS).date(),
                "type": message["type"],
                "event": message.get("event"),
                "channel": "web" if source == "demo-eshop" else "app",
            }
        )
    sources = [{"source_id": 1, "channel": "web"}, {"source_id": 2, "channel": "app"}]
    return {"orders": orders, "events": events, "sources": sources}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    world = generate(
        customers=600, months=6, seed=11, holdout_months=1, end=DEMO_END,
        out=Path(tmp_path_factory.mktemp("demo")),
    )  # fmt: skip
    truth = pd.read_parquet(world.truth / "orders.parquet")
    truth = truth[truth["period"] == "loaded"]
    return load(ibis.duckdb.connect(), _demo_rows(world)), truth


DEMO_PERIOD = Scope(date(2026, 7, 1), date(2026, 11, 1))


def _truth_in_period(truth: pd.DataFrame) -> pd.DataFrame:
    days = truth["at"].dt.date
    return truth[(days >= DEMO_PERIOD.start) & (days < DEMO_PERIOD.end)]


def test_click_and_collect_matches_the_demo_truth(demo) -> None:
    tables, truth = demo
    orders = _truth_in_period(truth)
    online = orders[orders["channel"] != "store"]
    collected = online[online["fulfilment"] == "click_and_collect"]
    frame = kpis.click_and_collect(tables, DEMO_PERIOD)
    total = row(frame, "store", None)
    assert total["online_orders"] == len(online)
    assert total["click_and_collect_orders"] == len(collected) > 0
    for store, count in collected["store"].value_counts().items():
        assert row(frame, "store", store)["click_and_collect_orders"] == count


def test_omnichannel_matches_the_demo_truth(demo) -> None:
    tables, truth = demo
    orders = _truth_in_period(truth)
    # the truth's own channels: click & collect counts as web and store, as in ours
    online = set(orders.loc[orders["channel"] != "store", "person_id"])
    in_store = (orders["channel"] == "store") | (orders["fulfilment"] == "click_and_collect")
    store = set(orders.loc[in_store, "person_id"])
    frame = kpis.omnichannel(tables, DEMO_PERIOD)
    counts = dict(zip(frame["group"], frame["customers"], strict=True))
    assert counts == {
        "online_only": len(online - store),
        "store_only": len(store - online),
        "omnichannel": len(online & store),
    }
    assert counts["omnichannel"] > 0
    omni = row(frame, "group", "omnichannel")
    spent = orders[orders["person_id"].isin(online & store)]["revenue_eur"].sum()
    assert omni["revenue_eur"] == pytest.approx(spent, abs=0.01)


def _buyers(ids) -> ibis.Table:
    return ibis.memtable(pa.table({"person_id": pa.array(sorted(ids), pa.int64())}))


def test_ropo_finds_the_store_sales_the_demo_researched_online(demo) -> None:
    tables, truth = demo
    store = _truth_in_period(truth)
    store = store[store["channel"] == "store"].assign(pid=lambda f: f["person_id"].map(_person))
    # the demo's research visit comes 0.15 to 5 days before the purchase
    frame = kpis.ropo(tables, DEMO_PERIOD, lookback_days=6)
    total = row(frame, "store", None)
    assert total["store_orders"] == len(store)
    truth_share = store["researched_online"].mean()
    assert truth_share > 0.1
    # other browsing in the week before a purchase adds some
    assert truth_share <= total["researched_share"] <= truth_share + 0.15
    # buyers whose every store sale was researched: all found
    per_buyer = store.groupby("pid")["researched_online"]
    always, never = per_buyer.all(), ~per_buyer.any()
    researched = replace(DEMO_PERIOD, persons=_buyers(always[always].index))
    assert (
        row(kpis.ropo(tables, researched, lookback_days=6), "store", None)["researched_share"]
        == 1.0
    )
    # buyers who never researched: only unrelated browsing of the days before is counted
    others = replace(DEMO_PERIOD, persons=_buyers(never[never].index))
    assert row(kpis.ropo(tables, others, lookback_days=6), "store", None)["researched_share"] < 0.2
