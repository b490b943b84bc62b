"""Attribution from warehouse tables: journeys cut by hand-checked rules, credits per channel."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnicanal.analytics import attribution as at
from omnicanal.analytics import attribution_data as ad
from omnicanal.analytics.scope import Scope
from omnicanal.core.channels import parse_channel
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import EVENTS, ORDERS, SCHEMAS, SOURCES
from tests.analytics.spark import on_spark
from tests.analytics.warehouse import load

WEB, APP, NEWSLETTER, TILL = 1, 2, 3, 7
JANUARY = Scope(date(2026, 1, 1), date(2026, 2, 1))


def build_tables(rows: dict[str, list[dict[str, Any]]]) -> dict[str, ir.Table]:
    """Warehouse tables (in-memory, run by DuckDB) from rows that follow `SCHEMAS` exactly."""
    tables = {}
    for name, schema in SCHEMAS.items():
        given = rows.get(name, [])
        for row in given:
            unknown = set(row) - set(schema.names)
            assert not unknown, f"{name} has no column {unknown}"
        data = pa.Table.from_pylist(given, schema=schema.to_pyarrow())
        tables[name] = ibis.memtable(data, schema=schema)
        assert tables[name].schema() == schema
    return tables


class Shop:
    """Rows of a small shop's warehouse: visits, messages, offline events, orders."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SCHEMAS}
        self.rows[SOURCES] = [
            {"source_id": WEB, "name": "eshop", "channel": "web"},
            {"source_id": APP, "name": "app", "channel": "app"},
            {"source_id": NEWSLETTER, "name": "newsletter", "channel": "email"},
            {"source_id": TILL, "name": "till", "channel": "import"},
        ]

    def event(
        self,
        person: int,
        when: str,
        event: str | None,
        *,
        type: str = "track",
        channel: str = "web",
        source: int = WEB,
        order_id: int | None = None,
        revenue_cents: int | None = None,
    ) -> None:
        kind, _ = parse_channel(channel)
        ts = datetime.fromisoformat(when)
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
                "media_class": kind.media_class.value,
                "online": kind.online and source != TILL,
                "campaign": None,
                "order_id": order_id,
                "revenue_cents": revenue_cents,
            }
        )

    def visit(self, person: int, when: str, channel: str = "web") -> None:
        self.event(person, when, None, type="page", channel=channel)

    def opened(self, person: int, when: str) -> None:
        self.event(person, when, "Email Opened", channel="email", source=NEWSLETTER)

    def attended(self, person: int, when: str, channel: str = "event:workshop") -> None:
        self.event(person, when, "Event Attended", channel=channel, source=TILL)

    def order(
        self,
        person: int,
        when: str,
        *,
        goods: int = 10_000,
        shipping: int = 0,
        store: str | None = None,
        coupon: str | None = None,
    ) -> int:
        order_id = len(self.rows[ORDERS]) + 1
        channel = f"store:{store}" if store else "web"
        self.event(
            person,
            when,
            "Order Completed",
            channel=channel,
            source=TILL if store else WEB,
            order_id=order_id,
            revenue_cents=goods + shipping,
        )
        ts = datetime.fromisoformat(when)
        self.rows[ORDERS].append(
            {
                "order_id": order_id,
                "profile_id": person,
                "person_id": person,
                "source_id": TILL if store else WEB,
                "event_id": len(self.rows[EVENTS]),
                "order_key": f"{store}:R{order_id}" if store else f"ML{order_id}",
                "ts": ts,
                "day": ts.date(),
                "channel": channel,
                "online": store is None,
                "store": store,
                "fulfilment": "in_store" if store else "delivery",
                "status": "completed",
                "currency": "EUR",
                "total_cents": goods + shipping,
                "discount_cents": 0,
                "shipping_cents": shipping,
                "tax_cents": 0,
                "refunded_cents": 0,
                "coupon": coupon,
                "campaign": None,
            }
        )
        return order_id

    def tables(self) -> dict[str, ir.Table]:
        return build_tables(self.rows)


def january() -> Shop:
    """Four people in January 2026.

    1: Google ad visit, e-mail opened, direct visit with an order (first), then an
       Instagram visit and a store order in Paris.
    2: a store order in Lyon and nothing else.
    3: a Facebook ad visit and no order.
    4: a TikTok ad visit in November, an order on the e-shop in January (an order online
       is part of a visit: here a direct one).
    """
    shop = Shop()
    shop.visit(1, "2026-01-01T10:00:00", "ads:google")
    shop.opened(1, "2026-01-05T08:00:00")
    shop.visit(1, "2026-01-10T09:00:00")
    shop.order(1, "2026-01-10T09:05:00", goods=10_000, shipping=500)
    shop.visit(1, "2026-01-20T12:00:00", "social:instagram")
    shop.order(1, "2026-01-20T15:00:00", goods=6_000, store="paris-01")
    shop.order(2, "2026-01-15T11:00:00", goods=4_000, store="lyon-01", coupon="ELLE10")
    shop.visit(3, "2026-01-03T20:00:00", "ads:facebook")
    shop.visit(4, "2025-11-01T20:00:00", "ads:tiktok")
    shop.order(4, "2026-01-12T18:00:00", goods=2_000)
    return shop


@pytest.fixture(scope="module")
def tables() -> dict[str, ir.Table]:
    return january().tables()


def by_channel(frame: pd.DataFrame, column: str = "orders") -> dict[str, float]:
    return {c: v for c, v in zip(frame["channel"], frame[column], strict=True) if v}


def test_journeys_cut_at_conversions_with_a_lookback(tables) -> None:
    data = ad.build_journeys(tables, JANUARY)
    paths = at.paths_table(data.journeys)
    assert dict(zip(paths["path"], paths["conversions"], strict=True)) == {
        "ads:google > email > web": 1,  # person 1's first order
        "social:instagram": 1,  # the touch after it goes to the second order only
        "direct": 1,  # person 2's store order, with no touch at all
        "web": 1,  # person 4, whose TikTok visit is 72 days old
        "ads:facebook": 0,
    }
    assert dict(zip(paths["path"], paths["nulls"], strict=True))["ads:facebook"] == 1
    assert (data.converting, data.non_converting, data.untouched) == (4, 1, 1)


def test_last_touch_credit_has_the_report_columns(tables) -> None:
    frame = ad.credit(tables, JANUARY, "last_touch")
    assert list(frame.columns) == list(ad.CREDIT_COLUMNS)
    assert by_channel(frame) == {"web": 2, "social:instagram": 1, "direct": 1}
    # Revenue is what the goods cost: shipping left out.
    assert by_channel(frame, "revenue_eur") == {"web": 120, "social:instagram": 60, "direct": 40}
    assert by_channel(frame, "new_customers") == {"web": 2, "direct": 1}
    assert frame["share"].sum() == pytest.approx(1)
    assert frame["revenue_share"].sum() == pytest.approx(1)
    media = dict(zip(frame["channel"], frame["media_class"], strict=True))
    assert media["web"] == "owned"
    assert media["social:instagram"] == "earned"
    assert media["direct"] is None or pd.isna(media["direct"])


def test_first_touch_and_linear_credit(tables) -> None:
    first = ad.credit(tables, JANUARY, "first_touch")
    assert by_channel(first) == {"ads:google": 1, "social:instagram": 1, "direct": 1, "web": 1}
    linear = ad.credit(tables, JANUARY, "linear")
    third = pytest.approx(1 / 3, abs=1e-3)
    assert by_channel(linear) == {
        "ads:google": third, "email": third, "web": pytest.approx(4 / 3, abs=1e-3),
        "social:instagram": 1, "direct": 1,
    }  # fmt: skip


def test_a_longer_lookback_reaches_older_touches(tables) -> None:
    frame = ad.credit(tables, JANUARY, "first_touch", lookback_days=None)
    assert by_channel(frame) == {
        "ads:google": 1, "social:instagram": 1, "direct": 1, "ads:tiktok": 1,
    }  # fmt: skip
    short = ad.credit(tables, JANUARY, "first_touch", lookback_days=7)
    # Only the e-mail (5 days) and the direct visit are within a week of the first order.
    assert by_channel(short) == {"email": 1, "social:instagram": 1, "direct": 1, "web": 1}


def test_conversions_without_touch_can_stay_uncredited(tables) -> None:
    data = ad.build_journeys(tables, JANUARY, direct=None)
    assert data.untouched == 1
    frame = ad.credit_journeys(data, "last_touch")
    assert "direct" not in set(frame["channel"])
    assert frame["orders"].sum() == 3


def test_first_orders_and_what_the_new_customers_bought(tables) -> None:
    data = ad.build_journeys(tables, JANUARY, conversion="first_order")
    paths = at.paths_table(data.journeys)
    # Person 1's Instagram visit came after their first order: in no journey.
    assert set(paths["path"]) == {"ads:google > email > web", "direct", "web", "ads:facebook"}
    frame = ad.credit_journeys(data, "last_touch")
    assert by_channel(frame, "new_customers") == {"web": 2, "direct": 1}
    # Person 1 went on to buy in the store: both orders count for the channel that won them.
    assert by_channel(frame, "customer_orders") == {"web": 3, "direct": 1}
    assert by_channel(frame, "customer_revenue_eur") == {"web": 180, "direct": 40}


def test_customer_value_is_credited_in_order_journeys_too(tables) -> None:
    frame = ad.credit(tables, JANUARY, "last_touch")
    assert by_channel(frame, "customer_orders") == {"web": 3, "direct": 1}


def test_store_filter_keeps_that_store_orders_and_still_cuts_at_others(tables) -> None:
    paris = Scope(JANUARY.start, JANUARY.end, stores=("paris-01",))
    frame = ad.credit(tables, paris, "first_touch")
    assert by_channel(frame) == {"social:instagram": 1}


def test_channel_and_media_filters_select_rows_of_whole_journeys(tables) -> None:
    ads = Scope(JANUARY.start, JANUARY.end, channels=("ads",))
    frame = ad.credit(tables, ads, "first_touch")
    # Facebook, met on a journey that led nowhere, is listed with no credit.
    assert by_channel(frame, "conversions") == {"ads:google": 1}
    assert list(frame["channel"]) == ["ads:google", "ads:facebook"]
    assert frame["share"].iloc[0] == pytest.approx(0.25)  # of all credited conversions
    earned = Scope(JANUARY.start, JANUARY.end, media_classes=("earned",))
    assert list(ad.credit(tables, earned, "first_touch")["channel"]) == ["social:instagram"]


def test_persons_filter(tables) -> None:
    one = Scope(
        JANUARY.start,
        JANUARY.end,
        persons=ibis.memtable(pa.table({"person_id": pa.array([1], pa.int64())})),
    )
    frame = ad.credit(tables, one, "last_touch")
    assert by_channel(frame) == {"web": 1, "social:instagram": 1}


def test_period_selects_conversions_and_open_journeys(tables) -> None:
    december = Scope(date(2025, 12, 1), date(2026, 1, 1))
    data = ad.build_journeys(tables, december)
    assert (data.converting, data.non_converting) == (0, 0)  # 4's visit is too old
    november = Scope(date(2025, 11, 1), date(2025, 12, 1))
    data = ad.build_journeys(tables, november)
    assert (data.converting, data.non_converting) == (0, 1)
    assert at.paths_table(data.journeys)["path"].tolist() == ["ads:tiktok"]


def test_coupons_stand_for_the_channel_that_printed_them(tables) -> None:
    frame = ad.credit(tables, JANUARY, "last_touch", coupon_channels={"ELLE10": "press:elle"})
    assert by_channel(frame) == {"web": 2, "social:instagram": 1, "press:elle": 1}
    press = frame.set_index("channel").loc["press:elle"]
    assert press["media_class"] == "earned"
    assert press["revenue_eur"] == 40


def test_offline_interactions_are_touches() -> None:
    shop = january()
    shop.attended(2, "2026-01-14T18:00:00", "street")
    frame = ad.credit(shop.tables(), JANUARY, "last_touch")
    assert by_channel(frame)["street"] == 1


def test_a_track_event_as_the_conversion() -> None:
    shop = january()
    shop.event(3, "2026-01-03T20:05:00", "Signed Up")
    shop.visit(2, "2026-01-02T10:00:00", "search:google")
    shop.event(2, "2026-01-02T10:01:00", "Signed Up")
    frame = ad.credit(shop.tables(), JANUARY, "last_touch", conversion="Signed Up")
    assert by_channel(frame, "conversions") == {"ads:facebook": 1, "search:google": 1}
    assert frame["orders"].sum() == 0
    completed = ad.credit(shop.tables(), JANUARY, "last_touch", conversion="Order Completed")
    # Person 2's search visit now comes before their store order.
    assert by_channel(completed) == {"web": 2, "social:instagram": 1, "search:google": 1}
    assert by_channel(completed, "new_customers") == {"web": 2, "search:google": 1}


def test_wrong_settings_are_named(tables) -> None:
    with pytest.raises(InvalidError, match="Signed Upp"):
        ad.credit(tables, JANUARY, "last_touch", conversion="Signed Upp")
    with pytest.raises(InvalidError, match="lookback"):
        ad.credit(tables, JANUARY, "last_touch", lookback_days=-1)
    with pytest.raises(InvalidError, match="Unknown attribution model"):
        ad.credit(tables, JANUARY, "last_click")
    with pytest.raises(InvalidError, match="takes no option"):
        ad.credit(tables, JANUARY, "markov", options={"half_life_days": 3})


def test_compare_models_credits_every_conversion_once(tables) -> None:
    frame = ad.compare_models(tables, JANUARY)
    assert list(frame.columns) == ["model", *ad.CREDIT_COLUMNS]
    assert set(frame["model"]) == set(at.MODELS)
    totals = frame.groupby("model")[["orders", "revenue_eur", "new_customers"]].sum()
    assert totals["orders"].tolist() == pytest.approx([4] * len(at.MODELS), abs=0.01)
    assert totals["revenue_eur"].tolist() == pytest.approx([220] * len(at.MODELS), abs=0.05)
    assert totals["new_customers"].tolist() == pytest.approx([3] * len(at.MODELS), abs=0.01)
    # Markov sees the Facebook visit that led nowhere: its removal effect is nil.
    markov = frame[frame["model"] == "markov"].set_index("channel")
    assert markov.loc["ads:facebook", "orders"] == 0


def test_an_empty_warehouse_credits_nothing() -> None:
    frame = ad.credit(Shop().tables(), JANUARY, "markov")
    assert frame.empty
    assert list(frame.columns) == list(ad.CREDIT_COLUMNS)


@st.composite
def shops(draw: st.DrawFn) -> Shop:
    shop = Shop()
    channels = ["ads:google", "email", "web", "social:tiktok", "sms"]
    for person in range(1, draw(st.integers(1, 6)) + 1):
        for _ in range(draw(st.integers(0, 5))):
            day, hour = draw(st.integers(1, 40)), draw(st.integers(8, 20))
            when = f"{pd.Timestamp(2025, 12, 1) + pd.Timedelta(days=day, hours=hour)}"
            if draw(st.booleans()):
                shop.order(person, when.replace(" ", "T"), goods=draw(st.integers(1, 500)) * 100)
            else:
                shop.visit(person, when.replace(" ", "T"), draw(st.sampled_from(channels)))
    return shop


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shop=shops(), lookback=st.sampled_from([None, 0, 3, 30]))
def test_every_model_credits_exactly_the_period_orders(shop: Shop, lookback: int | None) -> None:
    tables = shop.tables()
    orders = [o for o in shop.rows[ORDERS] if JANUARY.start <= o["day"] < JANUARY.end]
    frame = ad.compare_models(tables, JANUARY, lookback_days=lookback)
    for _, credited in frame.groupby("model"):
        assert credited["orders"].sum() == pytest.approx(len(orders), abs=0.01)
        revenue = sum(o["total_cents"] for o in orders) / 100
        assert credited["revenue_eur"].sum() == pytest.approx(revenue, abs=0.05)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shop=shops(), lookback=st.sampled_from([None, 0, 3, 30]), days=st.integers(1, 20))
def test_periods_cut_together_equal_periods_cut_alone(
    shop: Shop, lookback: int | None, days: int
) -> None:
    """A period and the one before it share one pass: each must see what it sees alone,
    down to the non-converting journeys the Markov model reads."""
    tables = shop.tables()
    period = Scope(date(2026, 1, 1), date(2026, 1, 1) + pd.Timedelta(days=days).to_pytimedelta())
    periods = [period, period.previous()]
    together = ad.build_periods(tables, periods, lookback_days=lookback)
    alone = [ad.build_journeys(tables, p, lookback_days=lookback) for p in periods]
    for a, b in zip(together, alone, strict=True):
        assert (a.converting, a.non_converting, a.untouched) == (
            b.converting, b.non_converting, b.untouched
        )  # fmt: skip
        for model in ("markov", "linear", "last_non_direct"):
            pd.testing.assert_frame_equal(
                ad.credit_journeys(a, model), ad.credit_journeys(b, model)
            )


def test_periods_far_apart_are_cut_apart(tables) -> None:
    year_before = JANUARY.shifted_years(-1)
    together = ad.credit_periods(tables, [JANUARY, year_before], "markov")
    assert together[0].equals(ad.credit(tables, JANUARY, "markov"))
    assert together[1].equals(ad.credit(tables, year_before, "markov"))


@on_spark
def test_spark_gives_the_same_credit(spark) -> None:
    shop = january()
    # Spark reads the Arrow rows itself: ibis's create_table would null integer columns
    # holding a null (see tests/analytics/warehouse.py).
    tables = load(spark, shop.rows)
    on_spark = ad.credit(tables, JANUARY, "markov")
    on_duckdb = ad.credit(shop.tables(), JANUARY, "markov")
    pd.testing.assert_frame_equal(on_spark, on_duckdb)
