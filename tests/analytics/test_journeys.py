"""Journey reports on small hand-made warehouses where every count is known by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibis.backends import BaseBackend

from omnicanal.analytics import journeys
from omnicanal.analytics.scope import Scope, Tables
from omnicanal.core.channels import parse_channel
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import EVENTS, ORDERS, SCHEMAS, SOURCES
from tests.analytics.spark import on_spark
from tests.analytics.warehouse import load

WEB, APP, NEWSLETTER, TILL = 1, 2, 3, 7
_SOURCES = [
    {"source_id": WEB, "name": "eshop", "channel": "web"},
    {"source_id": APP, "name": "app", "channel": "app"},
    {"source_id": NEWSLETTER, "name": "newsletter", "channel": "email"},
    {"source_id": TILL, "name": "till", "channel": "import"},
]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Warehouse:
    """Rows of the warehouse tables, written as a test reads them."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SCHEMAS}
        self.rows[SOURCES] = list(_SOURCES)

    def event(
        self,
        person: int,
        when: str,
        event: str | None = None,
        *,
        type: str = "track",
        channel: str = "web",
        source: int = WEB,
        order_id: int | None = None,
        revenue_cents: int | None = None,
    ) -> None:
        kind, _ = parse_channel(channel)
        ts = at(when)
        self.rows[EVENTS].append(
            {
                "event_id": len(self.rows[EVENTS]) + 1,
                "profile_id": person,
                "person_id": person,
                "source_id": source,
                "ts": ts,
                "day": ts.date(),
                "type": type,
                "event": event,
                "channel": channel,
                "media_class": str(kind.media_class),
                "online": kind.online,
                "campaign": None,
                "order_id": order_id,
                "revenue_cents": revenue_cents,
            }
        )

    def page(self, person: int, when: str, channel: str = "web", source: int = WEB) -> None:
        self.event(person, when, "Accueil", type="page", channel=channel, source=source)

    def order(
        self, person: int, when: str, channel: str = "web", cents: int = 10_000, **extra: Any
    ) -> int:
        order_id = len(self.rows[ORDERS]) + 1
        ts = at(when)
        store = channel.split(":")[1] if channel.startswith("store:") else None
        online = not channel.startswith("store:")
        source = TILL if store else (APP if channel == "app" else WEB)
        self.event(
            person,
            when,
            "Order Completed",
            channel=channel,
            source=source,
            order_id=order_id,
            revenue_cents=cents,
        )
        row = {
            "order_id": order_id,
            "profile_id": person,
            "person_id": person,
            "source_id": source,
            "event_id": len(self.rows[EVENTS]),
            "order_key": f"o{order_id}",
            "ts": ts,
            "day": ts.date(),
            "channel": channel,
            "online": online,
            "store": store,
            "fulfilment": "in_store" if store else "delivery",
            "status": "completed",
            "currency": "EUR",
            "total_cents": cents,
            "discount_cents": 0,
            "shipping_cents": 0,
            "tax_cents": cents // 6,
            "refunded_cents": 0,
            "coupon": None,
            "campaign": None,
        }
        row.update(extra)
        self.rows[ORDERS].append(row)
        return order_id

    def tables(self, con: BaseBackend | None = None) -> Tables:
        """The warehouse tables on `con` (a new in-memory DuckDB by default)."""
        return load(con or ibis.duckdb.connect(), self.rows)


MARCH = Scope(date(2026, 3, 1), date(2026, 4, 1))


def records(frame: pd.DataFrame, *columns: str) -> list[tuple[Any, ...]]:
    """Rows of the chosen columns, floats rounded, missing values as None."""
    out = []
    for row in frame[list(columns)].itertuples(index=False):
        out.append(
            tuple(
                None
                if pd.isna(v)
                else round(float(v), 4)
                if isinstance(v, float)
                else v.item()
                if hasattr(v, "item")
                else v
                for v in row
            )
        )
    return out


def members(*persons: int) -> ibis.Table:
    return ibis.memtable(pa.table({"person_id": pa.array(persons, pa.int64())}))


# ---------------------------------------------------------------------------------
# Stages


@pytest.fixture
def staged() -> Tables:
    w = Warehouse()
    # 1: discovers on the web, comes back through an ad, buys in store, then stays.
    w.page(1, "2026-03-02 10:00")
    w.event(1, "2026-03-02 10:01", "Product Viewed")
    w.page(1, "2026-03-05 12:00", "ads:google")
    w.event(1, "2026-03-05 12:01", "Product Added", channel="ads:google")
    w.event(1, "2026-03-06 09:00", "Email Opened", channel="email", source=NEWSLETTER)
    w.order(1, "2026-03-07 15:00", "store:paris-01")
    w.page(1, "2026-03-09 10:00")
    w.event(1, "2026-03-09 10:02", "Product Reviewed")
    w.order(1, "2026-03-20 10:00", "web")
    # 2: a customer since January: an ad click is loyalty now.
    w.order(2, "2026-01-10 11:00", "store:lyon-01")
    w.page(2, "2026-03-03 11:00", "ads:instagram")
    w.event(2, "2026-03-03 11:01", "Product Viewed", channel="ads:instagram")
    # 3: first seen in February, never buys.
    w.page(3, "2026-02-20 10:00")
    w.page(3, "2026-03-04 10:00")
    w.page(3, "2026-03-04 18:00", "social:instagram")
    w.event(3, "2026-03-04 18:01", "Product Viewed", channel="social:instagram")
    # 4: clicks an e-mail and buys on the web at the same instant.
    w.event(4, "2026-03-12 10:00", "Email Link Clicked", channel="email", source=NEWSLETTER)
    w.order(4, "2026-03-12 10:00", "web")
    return w.tables()


STAGE_ROWS = ("stage", "people", "touchpoints", "next_stage", "reached_next", "conversion")


def test_stages_by_hand(staged):
    frame = journeys.stages(staged, MARCH)
    assert list(frame.columns) == list(journeys.STAGE_COLUMNS)
    assert records(frame, *STAGE_ROWS) == [
        ("discovery", 3, 4, "consideration", 3, 1.0),
        ("consideration", 3, 6, "purchase", 2, round(2 / 3, 4)),
        ("purchase", 2, 2, "loyalty", 1, 0.5),
        ("loyalty", 2, 6, None, None, None),
    ]


def test_stages_by_kind(staged):
    frame = journeys.stages(staged, MARCH, by="kind")
    assert list(frame.columns) == ["stage", "kind", *journeys.STAGE_COLUMNS[1:]]
    assert records(frame, "stage", "kind", "people", "touchpoints", "reached_next") == [
        ("discovery", "ads", 1, 1, 1),
        ("discovery", "email", 1, 1, 1),
        ("discovery", "social", 1, 1, 1),
        ("discovery", "web", 1, 1, 1),
        ("consideration", "web", 3, 3, 2),
        ("consideration", "ads", 1, 1, 1),
        ("consideration", "email", 1, 1, 1),
        ("consideration", "social", 1, 1, 0),
        ("purchase", "store", 1, 1, 1),
        ("purchase", "web", 1, 1, 0),
        ("loyalty", "ads", 1, 2, None),
        ("loyalty", "web", 1, 4, None),
    ]


def test_stage_filters_count_what_matches_and_look_for_the_next_stage_everywhere(staged):
    ads = journeys.stages(staged, Scope(MARCH.start, MARCH.end, channels=("ads",)))
    assert records(ads, "stage", "people", "touchpoints", "reached_next") == [
        ("discovery", 1, 1, 1),
        ("consideration", 1, 1, 1),
        ("purchase", 0, 0, 0),
        ("loyalty", 1, 2, None),
    ]
    three = journeys.stages(staged, Scope(MARCH.start, MARCH.end, persons=members(3)))
    assert records(three, "stage", "people", "touchpoints", "reached_next") == [
        ("discovery", 1, 1, 1),
        ("consideration", 1, 2, 0),
        ("purchase", 0, 0, 0),
        ("loyalty", 0, 0, None),
    ]


def test_stages_compared_with_the_previous_period(staged):
    frame = journeys.stages(staged, MARCH, compare=True)
    assert records(frame, "stage", "previous_people", "previous_conversion") == [
        ("discovery", 1, 0.0),
        ("consideration", 0, None),
        ("purchase", 0, None),
        ("loyalty", 0, None),
    ]
    assert records(frame, "conversion_change")[:2] == [(1.0,), (None,)]


def test_stages_of_an_empty_period_are_zero(staged):
    frame = journeys.stages(staged, Scope(date(2025, 3, 1), date(2025, 4, 1)))
    assert records(frame, "stage", "people", "touchpoints") == [
        (stage, 0, 0) for stage in journeys.STAGES
    ]


# ---------------------------------------------------------------------------------
# Funnels


@pytest.fixture
def shoppers() -> Tables:
    w = Warehouse()
    # 1: the whole funnel in one visit from an ad; rows written out of time order.
    w.order(1, "2026-03-02 10:05", "web")
    w.event(1, "2026-03-02 10:02", "Product Added")
    w.event(1, "2026-03-02 10:03", "Checkout Started")
    w.page(1, "2026-03-02 10:00", "ads:google")
    w.event(1, "2026-03-02 10:01", "Product Viewed")
    # 2: adds to cart and starts checkout at the same instant: in order.
    w.page(2, "2026-03-03 09:00")
    w.event(2, "2026-03-03 09:01", "Product Viewed")
    w.event(2, "2026-03-03 09:02", "Product Added")
    w.event(2, "2026-03-03 09:02", "Checkout Started")
    # 3: starts checkout before adding to cart: stops at the cart.
    w.page(3, "2026-03-04 09:00")
    w.event(3, "2026-03-04 09:00:30", "Product Viewed")
    w.event(3, "2026-03-04 09:01", "Checkout Started")
    w.event(3, "2026-03-04 09:02", "Product Added")
    # 4: orders exactly 30 days after entering, after the period: counted.
    w.page(4, "2026-03-05 10:00")
    w.event(4, "2026-03-05 10:01", "Product Viewed")
    w.event(4, "2026-03-05 10:02", "Product Added")
    w.event(4, "2026-03-05 10:03", "Checkout Started")
    w.order(4, "2026-04-04 10:00", "web")
    # 5: orders one second too late.
    w.page(5, "2026-03-06 10:00")
    w.event(5, "2026-03-06 10:01", "Product Viewed")
    w.event(5, "2026-03-06 10:02", "Product Added")
    w.event(5, "2026-03-06 10:03", "Checkout Started")
    w.order(5, "2026-04-05 10:00:01", "web")
    # 6: one page and gone.
    w.page(6, "2026-03-07 10:00")
    # 7: everything in February: not in March's funnel.
    w.page(7, "2026-02-27 10:00")
    w.event(7, "2026-02-27 10:01", "Product Viewed")
    # 8: on the app, views a product and leaves.
    w.page(8, "2026-03-08 10:00", "app", source=APP)
    w.event(8, "2026-03-08 10:01", "Product Viewed", channel="app", source=APP)
    return w.tables()


FUNNEL_ROWS = ("step", "people", "drop_off", "drop_off_rate", "visits", "breaking_point")


def test_funnel_by_hand(shoppers):
    report = journeys.funnel(shoppers, MARCH)
    assert list(report.steps.columns) == list(journeys.STEP_COLUMNS)
    assert records(report.steps, *FUNNEL_ROWS) == [
        ("visit", 7, 0, 0.0, 7, False),
        ("Product Viewed", 6, 1, round(1 / 7, 4), 6, False),
        ("Product Added", 5, 1, round(1 / 6, 4), 5, False),
        ("Checkout Started", 4, 1, 0.2, 4, False),
        ("Order Completed", 2, 2, 0.5, 1, True),
    ]
    assert records(report.steps, "rate", "step_rate") == [
        (1.0, 1.0),
        (round(6 / 7, 4), round(6 / 7, 4)),
        (round(5 / 7, 4), round(5 / 6, 4)),
        (round(4 / 7, 4), 0.8),
        (round(2 / 7, 4), 0.5),
    ]
    assert list(report.breaking_points.columns) == list(journeys.BREAK_COLUMNS)
    assert records(report.breaking_points, *journeys.BREAK_COLUMNS) == [
        (5, "Order Completed", "Checkout Started", 4, 2, 2, 0.5)
    ]
    assert report.window_days == 30
    assert report.by is None


def test_funnel_compared_with_the_previous_period(shoppers):
    steps = journeys.funnel(shoppers, MARCH, compare=True).steps
    assert records(steps, "previous_people", "previous_rate", "rate_change") == [
        (1, 1.0, 0.0),
        (1, 1.0, round(6 / 7 - 1, 4)),
        (0, 0.0, round(5 / 7, 4)),
        (0, 0.0, round(4 / 7, 4)),
        (0, 0.0, round(2 / 7, 4)),
    ]


def test_funnel_window_is_counted_from_entering(shoppers):
    week = journeys.funnel(shoppers, MARCH, window_days=7)
    assert records(week.steps, "people") == [(7,), (6,), (5,), (4,), (1,)]
    wide = journeys.funnel(shoppers, MARCH, window_days=31)
    assert records(wide.steps, "people")[-1] == (3,)


def test_funnel_by_channel_shows_where_each_channel_breaks(shoppers):
    report = journeys.funnel(shoppers, MARCH, by="channel")
    assert list(report.steps.columns) == ["channel", *journeys.STEP_COLUMNS]
    by_group = report.steps.groupby("channel", sort=False)["people"].apply(list)
    assert list(by_group.index) == ["(all)", "web", "ads:google", "app"]
    assert by_group.to_dict() == {
        "(all)": [7, 6, 5, 4, 2],
        "web": [5, 4, 4, 3, 1],
        "ads:google": [1, 1, 1, 1, 1],
        "app": [1, 1, 0, 0, 0],
    }
    assert records(report.breaking_points, "channel", "step", "from_step", "drop_off_rate") == [
        ("(all)", "Order Completed", "Checkout Started", 0.5),
        ("web", "Order Completed", "Checkout Started", round(2 / 3, 4)),
        ("app", "Product Added", "Product Viewed", 1.0),
    ]


def test_funnel_by_device_and_media_class(shoppers):
    device = journeys.funnel(shoppers, MARCH, by="device").steps
    assert device.groupby("device", sort=False)["people"].apply(list).to_dict() == {
        "(all)": [7, 6, 5, 4, 2],
        "web": [6, 5, 5, 4, 2],
        "app": [1, 1, 0, 0, 0],
    }
    media = journeys.funnel(shoppers, MARCH, by="media_class").steps
    assert media.groupby("media_class", sort=False)["people"].apply(list).to_dict() == {
        "(all)": [7, 6, 5, 4, 2],
        "owned": [6, 5, 4, 3, 1],
        "paid": [1, 1, 1, 1, 1],
    }


def test_a_funnel_nobody_entered(shoppers):
    report = journeys.funnel(shoppers, Scope(date(2025, 3, 1), date(2025, 4, 1)), by="channel")
    assert (
        records(report.steps, "channel", "people", "visits", "drop_off") == [("(all)", 0, 0, 0)] * 5
    )
    assert report.breaking_points.empty


def test_funnel_filters_choose_who_enters(shoppers):
    ads = journeys.funnel(shoppers, Scope(MARCH.start, MARCH.end, channels=("ads",)))
    assert records(ads.steps, "people") == [(1,), (1,), (1,), (1,), (1,)]
    assert ads.breaking_points.empty
    some = journeys.funnel(shoppers, Scope(MARCH.start, MARCH.end, persons=members(3, 8)))
    assert records(some.steps, "people") == [(2,), (2,), (1,), (0,), (0,)]


def test_a_repeated_event_must_happen_again():
    w = Warehouse()
    w.page(1, "2026-03-02 10:00")
    w.event(1, "2026-03-02 10:01", "Product Viewed")
    w.page(2, "2026-03-02 10:00")
    w.event(2, "2026-03-02 10:01", "Product Viewed")
    w.event(2, "2026-03-02 10:05", "Product Viewed")
    steps = ["Product Viewed@web", "Product Viewed"]
    report = journeys.funnel(w.tables(), MARCH, steps)
    assert records(report.steps, "step", "people", "visits") == [
        ("Product Viewed@web", 2, 2),
        ("Product Viewed", 1, 1),
    ]


def test_research_online_buy_in_store():
    w = Warehouse()
    w.page(1, "2026-03-02 10:00", "search:google")
    w.event(1, "2026-03-02 10:01", "Product Viewed", channel="search:google")
    w.order(1, "2026-03-10 15:00", "store:paris-01")
    w.page(2, "2026-03-03 10:00")
    w.event(2, "2026-03-03 10:01", "Product Viewed")
    w.order(2, "2026-03-03 10:10", "web")
    w.order(3, "2026-03-04 15:00", "store:lyon-01")
    tables = w.tables()
    report = journeys.research_online_buy_offline(tables, MARCH, by="kind")
    assert records(report.steps, "kind", "step", "people", "visits") == [
        ("(all)", "online research", 2, 2),
        ("(all)", "store purchase", 1, 0),
        ("search", "online research", 1, 1),
        ("search", "store purchase", 1, 0),
        ("web", "online research", 1, 1),
        ("web", "store purchase", 0, 0),
    ]
    written = journeys.funnel(tables, MARCH, ["Product Viewed@online", "order@store"])
    assert records(written.steps, "step", "people") == [
        ("Product Viewed@online", 2),
        ("order@store", 1),
    ]
    online = journeys.funnel(tables, MARCH, ["visit", "order@web,app"])
    assert records(online.steps, "people") == [(2,), (1,)]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"steps": ["visit"]}, "steps"),
        ({"steps": ["visit", "visit"]}, "steps"),
        ({"steps": ["visit", "order@nowhere"]}, "steps"),
        ({"steps": ["visit", " @web"]}, "steps"),
        ({"by": "planet"}, "by"),
        ({"window_days": 0}, "window_days"),
    ],
)
def test_funnel_refuses_bad_arguments(shoppers, arguments, field):
    with pytest.raises(InvalidError) as caught:
        journeys.funnel(shoppers, MARCH, **arguments)
    assert caught.value.errors[0]["field"] == field


# ---------------------------------------------------------------------------------
# Paths and time to convert


def buyers_warehouse() -> Warehouse:
    w = Warehouse()
    # 1: an Instagram ad, two direct visits (one step), a store purchase 4 days later.
    w.page(1, "2026-03-01 10:00", "ads:instagram")
    w.page(1, "2026-03-02 10:00")
    w.page(1, "2026-03-03 10:00")
    w.order(1, "2026-03-05 10:00", "store:paris-01", 12_000)
    # 2: two ads, then an order on the e-shop in the second ad's visit; buys again.
    w.page(2, "2026-03-01 20:00", "ads:facebook")
    w.page(2, "2026-03-02 09:00", "ads:google")
    w.order(2, "2026-03-02 09:30", "web")
    w.order(2, "2026-03-20 10:00", "web", 5_000)
    # 3: buys in store without any touchpoint.
    w.order(3, "2026-03-06 15:00", "store:paris-01", 8_000)
    # 4: the same path as 1; the last visit and the purchase share an instant.
    w.page(4, "2026-03-10 10:00", "ads:instagram")
    w.page(4, "2026-03-12 10:00")
    w.order(4, "2026-03-12 10:00", "store:paris-01", 10_000)
    # 5: a long path, started in February, ending with an order on the app.
    w.page(5, "2026-02-01 10:00")
    w.event(5, "2026-02-05 10:00", "Email Opened", channel="email", source=NEWSLETTER)
    w.event(5, "2026-02-07 10:00", "SMS Link Clicked", channel="sms", source=NEWSLETTER)
    w.page(5, "2026-02-10 10:00", "ads:google")
    w.page(5, "2026-02-12 10:00", "social:instagram")
    w.page(5, "2026-02-14 10:00", "search:google")
    w.page(5, "2026-02-16 10:00")
    w.order(5, "2026-03-15 10:00", "app")
    # 6: a customer since January, brought back by an e-mail.
    w.order(6, "2026-01-15 10:00", "web")
    w.event(6, "2026-03-02 08:00", "Email Opened", channel="email", source=NEWSLETTER)
    w.order(6, "2026-03-03 10:00", "web")
    return w


@pytest.fixture
def buyers() -> Tables:
    return buyers_warehouse().tables()


PATH_ROWS = ("path", "steps", "purchases", "people", "share", "revenue", "median_days", "truncated")
LONG = "sms → ads:google → social:instagram → search:google → web → app"


def test_paths_to_first_purchase_by_hand(buyers):
    frame = journeys.paths(buyers, MARCH)
    assert list(frame.columns) == list(journeys.PATH_COLUMNS)
    assert records(frame, *PATH_ROWS) == [
        ("ads:instagram → web → store:paris-01", 3, 2, 2, 0.4, 220.0, 3.0, 0),
        ("ads:facebook → ads:google → web", 3, 1, 1, 0.2, 100.0, 0.56, 0),
        (LONG, 6, 1, 1, 0.2, 100.0, 42.0, 1),
        ("(none) → store:paris-01", 2, 1, 1, 0.2, 80.0, None, 0),
    ]


def test_paths_by_kind_and_top(buyers):
    frame = journeys.paths(buyers, MARCH, level="kind", top=2)
    assert records(frame, "path", "purchases", "share", "median_days") == [
        ("ads → web → store", 2, 0.4, 3.0),
        ("ads → web", 1, 0.2, 0.56),
    ]
    short = journeys.paths(buyers, MARCH, level="kind", max_steps=2)
    assert records(short, "path", "steps", "truncated") == [
        ("web → store", 2, 2),
        ("ads → web", 2, 0),
        ("web → app", 2, 1),
        ("(none) → store", 2, 0),
    ]


def test_paths_by_media_class(buyers):
    frame = journeys.paths(buyers, MARCH, level="media_class")
    assert records(frame, "path", "purchases", "truncated") == [
        ("paid → owned → hors_media", 2, 0),
        ("owned → paid → earned → owned", 1, 0),
        ("paid → owned", 1, 0),
        ("(none) → hors_media", 1, 0),
    ]


def test_paths_between_purchases(buyers):
    frame = journeys.paths(buyers, MARCH, before="purchase")
    assert records(frame, *PATH_ROWS) == [
        ("email → web", 2, 1, 1, 0.5, 100.0, 1.08, 0),
        ("web", 1, 1, 1, 0.5, 50.0, 0.0, 0),
    ]


def test_path_filters(buyers):
    paris = journeys.paths(buyers, Scope(MARCH.start, MARCH.end, stores=("paris-01",)))
    assert records(paris, "path", "purchases", "share") == [
        ("ads:instagram → web → store:paris-01", 2, round(2 / 3, 4)),
        ("(none) → store:paris-01", 1, round(1 / 3, 4)),
    ]
    social = journeys.paths(buyers, Scope(MARCH.start, MARCH.end, channels=("social",)))
    assert records(social, "path", "share") == [(LONG, 1.0)]
    earned = journeys.paths(buyers, Scope(MARCH.start, MARCH.end, media_classes=("earned",)))
    assert records(earned, "path") == [(LONG,)]
    two = journeys.paths(buyers, Scope(MARCH.start, MARCH.end, persons=members(2)))
    assert records(two, "path") == [("ads:facebook → ads:google → web",)]


def test_paths_lookback(buyers):
    frame = journeys.paths(buyers, MARCH, lookback_days=10)
    assert ("app", 1, 1, 0.0) in records(frame, "path", "steps", "purchases", "median_days")
    assert LONG not in set(frame["path"])


def test_time_to_convert_by_hand(buyers):
    frame = journeys.time_to_convert(buyers, MARCH)
    assert list(frame.columns) == ["measure", "channel", *journeys.TIME_COLUMNS[1:]]
    first = [4.0, 2.0, 13.5 / 24, 42.0]
    assert records(frame, "measure", "channel", "purchases", "people", "median_days") == [
        ("first_purchase", "(all)", 5, 5, 3.0),
        ("first_purchase", "ads:instagram", 2, 2, 3.0),
        ("first_purchase", "(none)", 1, 1, None),
        ("first_purchase", "ads:facebook", 1, 1, round(first[2], 2)),
        ("first_purchase", "web", 1, 1, 42.0),
        ("repeat_purchase", "(all)", 2, 2, round((18 + 1 / 48 + 47) / 2, 2)),
        ("repeat_purchase", "ads:facebook", 1, 1, 18.02),
        ("repeat_purchase", "web", 1, 1, 47.0),
    ]
    every = frame.iloc[0]
    expected = pd.Series(first).quantile([0.25, 0.75, 0.9]).round(2).tolist()
    assert [every.p25_days, every.p75_days, every.p90_days] == expected
    kinds = journeys.time_to_convert(buyers, MARCH, level="kind")
    assert records(kinds, "kind", "purchases")[:2] == [
        ("(all)", 5),
        ("ads", 3),
    ]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"before": "lunch"}, "before"),
        ({"level": "planet"}, "level"),
        ({"top": 0}, "top"),
        ({"max_steps": -1}, "max_steps"),
        ({"lookback_days": 0}, "lookback_days"),
    ],
)
def test_paths_refuse_bad_arguments(buyers, arguments, field):
    with pytest.raises(InvalidError) as caught:
        journeys.paths(buyers, MARCH, **arguments)
    assert caught.value.errors[0]["field"] == field


# ---------------------------------------------------------------------------------
# Channel switches


@pytest.fixture
def movers() -> Tables:
    w = Warehouse()
    w.page(1, "2026-03-01 10:00", "ads:google")
    w.page(1, "2026-03-02 10:00")
    w.page(1, "2026-03-02 12:00")
    w.order(1, "2026-03-04 12:00", "store:paris-01")
    w.event(1, "2026-03-06 12:00", "Email Opened", channel="email", source=NEWSLETTER)
    w.page(1, "2026-04-02 10:00")  # after the period
    w.page(2, "2026-03-03 08:00")
    w.order(2, "2026-03-03 20:00", "store:paris-01")
    w.order(3, "2026-03-05 15:00", "store:lyon-01")
    return w.tables()


SWITCH_ROWS = ("source", "source_type", "target", "target_type", "value", "people", "share")


def test_switches_by_hand(movers):
    frame = journeys.switches(movers, MARCH)
    assert list(frame.columns) == list(journeys.SWITCH_COLUMNS)
    assert records(frame, *SWITCH_ROWS, "median_hours", "switch") == [
        ("web", "touch", "store:paris-01", "purchase", 2, 2, 1.0, 30.0, True),
        ("ads:google", "touch", "web", "touch", 1, 1, 1.0, 24.0, True),
        ("store:paris-01", "purchase", "email", "touch", 1, 1, 1.0, 48.0, True),
    ]


def test_switches_with_repeats_by_kind(movers):
    frame = journeys.switches(movers, MARCH, level="kind", include_repeats=True)
    assert records(frame, *SWITCH_ROWS, "median_hours", "switch") == [
        ("web", "touch", "store", "purchase", 2, 2, round(2 / 3, 4), 30.0, True),
        ("ads", "touch", "web", "touch", 1, 1, 1.0, 24.0, True),
        ("store", "purchase", "email", "touch", 1, 1, 1.0, 48.0, True),
        ("web", "touch", "web", "touch", 1, 1, round(1 / 3, 4), 2.0, False),
    ]


def test_switches_into_purchase_and_filters(movers):
    into = journeys.switches(movers, MARCH, into_purchase=True)
    assert records(into, "source", "target", "value") == [("web", "store:paris-01", 2)]
    top = journeys.switches(movers, MARCH, top=1)
    assert records(top, "source", "value") == [("web", 2)]
    email = journeys.switches(movers, Scope(MARCH.start, MARCH.end, channels=("email",)))
    assert records(email, "source", "target") == [("store:paris-01", "email")]
    lyon = journeys.switches(movers, Scope(MARCH.start, MARCH.end, stores=("lyon-01",)))
    assert lyon.empty
    paris = journeys.switches(movers, Scope(MARCH.start, MARCH.end, stores=("paris-01",)))
    assert records(paris, "source", "target", "value") == [
        ("web", "store:paris-01", 2),
        ("store:paris-01", "email", 1),
    ]
    with pytest.raises(InvalidError) as caught:
        journeys.switches(movers, MARCH, level="planet")
    assert caught.value.errors[0]["field"] == "level"


# ---------------------------------------------------------------------------------
# Invariants

ACTIONS = ("page", "Product Viewed", "Product Added", "Checkout Started", "order")
moves = st.lists(
    st.tuples(
        st.integers(1, 4),  # person
        st.integers(0, 45 * 24 * 60),  # minutes after 2026-02-20
        st.sampled_from(ACTIONS),
        st.sampled_from(("web", "ads:google", "store:paris-01")),
    ),
    min_size=1,
    max_size=25,
    # Two orders of one person at the same instant are told apart by their ids, which
    # the rows' order would change here.
    unique_by=lambda row: (row[0], row[1]),
)


def _warehouse(rows) -> Warehouse:
    w = Warehouse()
    for person, minutes, action, channel in rows:
        when = (datetime(2026, 2, 20) + timedelta(minutes=minutes)).isoformat(sep=" ")
        if action == "order":
            w.order(person, when, channel)
        elif channel.startswith("store:"):
            continue
        elif action == "page":
            w.page(person, when, channel)
        else:
            w.event(person, when, action, channel=channel)
    return w


@settings(max_examples=8, deadline=None)
@given(rows=moves, seed=st.randoms(use_true_random=False))
def test_reports_do_not_depend_on_row_order_and_funnels_only_narrow(rows, seed):
    shuffled = list(rows)
    seed.shuffle(shuffled)
    tables, again = _warehouse(rows).tables(), _warehouse(shuffled).tables()
    report = journeys.funnel(tables, MARCH, by="channel")
    pd.testing.assert_frame_equal(report.steps, journeys.funnel(again, MARCH, by="channel").steps)
    for _, group in report.steps.groupby("channel"):
        assert group["people"].is_monotonic_decreasing
        assert group["visits"].is_monotonic_decreasing
        assert (group["people"] <= group["people"].iloc[0]).all()
    paths = journeys.paths(tables, MARCH, top=100)
    pd.testing.assert_frame_equal(paths, journeys.paths(again, MARCH, top=100))
    firsts = {}
    for person, minutes, action, _ in sorted(rows, key=lambda r: r[1]):
        if action == "order":
            firsts.setdefault(person, minutes)
    march = [m for m in firsts.values() if 9 * 24 * 60 <= m < 40 * 24 * 60]
    assert paths["purchases"].sum() == len(march)
    if march:
        assert paths["share"].sum() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------
# The same reports on Spark


@on_spark
def test_spark_gives_the_same_reports(spark, buyers):
    remote = buyers_warehouse().tables(spark)
    pd.testing.assert_frame_equal(journeys.stages(remote, MARCH), journeys.stages(buyers, MARCH))
    spark_funnel = journeys.funnel(remote, MARCH, by="channel")
    duck_funnel = journeys.funnel(buyers, MARCH, by="channel")
    pd.testing.assert_frame_equal(spark_funnel.steps, duck_funnel.steps)
    pd.testing.assert_frame_equal(spark_funnel.breaking_points, duck_funnel.breaking_points)
    pd.testing.assert_frame_equal(journeys.paths(remote, MARCH), journeys.paths(buyers, MARCH))
    pd.testing.assert_frame_equal(
        journeys.time_to_convert(remote, MARCH), journeys.time_to_convert(buyers, MARCH)
    )
    pd.testing.assert_frame_equal(
        journeys.switches(remote, MARCH, level="kind"),
        journeys.switches(buyers, MARCH, level="kind"),
    )
