"""Customer value from warehouse tables: purchases per day, RFM, cohorts, CLV, backtests."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from omnicanal.analytics import clv as models
from omnicanal.analytics import value_data as vd
from omnicanal.analytics.scope import Scope
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import ORDERS
from tests.analytics.test_attribution_data import Shop

HALF = Scope(date(2025, 1, 1), date(2025, 7, 1))
A, B, C, D = 1, 2, 3, 4


def refund(shop: Shop, order_id: int, cents: int) -> None:
    row = shop.rows[ORDERS][order_id - 1]
    row["refunded_cents"] = cents
    row["status"] = "refunded" if cents == row["total_cents"] else "partially_refunded"


@pytest.fixture(scope="module")
def shop() -> Shop:
    """A: three purchase days (two orders on one, one of them half refunded), an ad first.
    B: one order, refunded. C: two orders in May. D: a customer from before the period."""
    shop = Shop()
    shop.visit(A, "2025-01-08T10:00:00", "ads:google")
    shop.order(A, "2025-01-10T10:00:00", goods=10_000, shipping=500)
    shop.order(A, "2025-03-10T10:00:00", goods=5_000, store="paris-01")
    refund(shop, shop.order(A, "2025-03-10T17:00:00", goods=3_000), 1_500)
    shop.order(A, "2025-06-01T10:00:00", goods=8_000)
    refund(shop, shop.order(B, "2025-02-01T10:00:00", goods=20_000, store="lyon-01"), 20_000)
    shop.order(C, "2025-05-05T10:00:00", goods=4_000, store="lyon-01")
    shop.order(C, "2025-05-20T10:00:00", goods=6_000, store="lyon-01")
    shop.order(D, "2024-12-01T10:00:00", goods=7_000)
    shop.order(D, "2025-04-01T10:00:00", goods=9_000)
    return shop


def test_transactions_are_purchase_days_net_of_refunds(shop) -> None:
    frame = vd.transactions(shop.tables(), HALF).to_pyarrow().to_pandas()
    rows = {(r.person_id, r.day): (r.orders, r.value_cents) for r in frame.itertuples()}
    assert rows == {
        (A, date(2025, 1, 10)): (1, 10_000),  # shipping is not what the customer is worth
        (A, date(2025, 3, 10)): (2, 6_500),
        (A, date(2025, 6, 1)): (1, 8_000),
        (B, date(2025, 2, 1)): (1, 0),
        (C, date(2025, 5, 5)): (1, 4_000),
        (C, date(2025, 5, 20)): (1, 6_000),
        (D, date(2025, 4, 1)): (1, 9_000),
    }
    everything = vd.transactions(shop.tables(), HALF, since_start=False).count()
    assert everything.to_pyarrow().as_py() == 8  # D's December order too
    lyon = Scope(HALF.start, HALF.end, stores=("lyon-01",))
    assert vd.transactions(shop.tables(), lyon).count().to_pyarrow().as_py() == 3


def test_rfm_scores_the_period(shop) -> None:
    scores = vd.rfm(shop.tables(), HALF).set_index("person_id")
    assert scores.loc[A, "frequency"] == 3
    assert scores.loc[A, "recency_days"] == 29  # 1 June to 30 June
    assert scores.loc[A, "monetary_eur"] == 245
    assert scores.loc[D, "frequency"] == 1  # December is outside the period
    assert scores.loc[A, "r"] == 5
    assert scores.loc[A, "segment"] == "Champions"
    assert set(scores.columns) >= {"r", "f", "m", "rfm", "segment", "segment_fr"}


def test_cohorts_by_month_with_months_without_orders(shop) -> None:
    frame = vd.cohorts(shop.tables(), HALF)
    january = frame[frame["cohort"] == date(2025, 1, 1)]
    assert january["period"].tolist() == [date(2025, m, 1) for m in range(1, 7)]
    assert january["periods_since"].tolist() == [0, 1, 2, 3, 4, 5]
    assert january["customers"].tolist() == [1, 0, 1, 0, 0, 1]
    assert january["retention"].tolist() == [1, 0, 1, 0, 0, 1]
    assert january["orders"].tolist() == [1, 0, 2, 0, 0, 1]
    assert january["revenue_eur"].tolist() == [100, 0, 65, 0, 0, 80]
    # D was acquired in December: no cohort of the period.
    assert sorted(set(frame["cohort"])) == [date(2025, 1, 1), date(2025, 2, 1), date(2025, 5, 1)]
    may = frame[frame["cohort"] == date(2025, 5, 1)]
    assert may["customers"].tolist() == [1, 0]
    assert may["cohort_customers"].tolist() == [1, 1]


def test_cohorts_by_quarter_and_week(shop) -> None:
    quarters = vd.cohorts(shop.tables(), HALF, grain="quarter")
    first = quarters[quarters["cohort"] == date(2025, 1, 1)]
    assert first["cohort_customers"].tolist() == [2, 2]  # A and B
    assert first["retention"].tolist() == [1, 0.5]
    weeks = vd.cohorts(shop.tables(), HALF, grain="week")
    assert min(weeks["cohort"]) == date(2025, 1, 6)  # the Monday of 10 January
    with pytest.raises(InvalidError, match="grain"):
        vd.cohorts(shop.tables(), HALF, grain="fortnight")


def test_clv_columns_bands_and_acquisition_channels(shop) -> None:
    value = vd.clv(shop.tables(), HALF, horizon_days=90, model="nbd")
    customers = value.customers.set_index("person_id")
    assert set(customers.index) == {A, B, C, D}
    assert customers.loc[A, "first_order_channel"] == "web"
    assert customers.loc[A, "first_touch_channel"] == "ads:google"
    # B's order was in a store with no touch before; A's visit counts for A only.
    assert customers.loc[B, "first_touch_channel"] == vd.NO_TOUCH
    assert customers.loc[B, "first_order_channel"] == "store:lyon-01"
    # D's web order is a visit, the first touch, the same instant.
    assert customers.loc[D, "first_touch_channel"] == "web"
    assert customers.loc[D, "first_order"] == date(2024, 12, 1)
    assert customers.loc[D, "tenure_days"] == (date(2025, 6, 30) - date(2024, 12, 1)).days
    assert customers.loc[A, "historic_value_eur"] == 245
    r, alpha = value.parameters["r"], value.parameters["alpha"]
    x, t = customers["frequency"], customers["tenure_days"]
    assert customers["expected_purchases"].to_numpy() == pytest.approx(
        ((r + x) / (alpha + t) * 90).to_numpy(), abs=1e-4
    )
    assert (customers["p_alive"] == 1).all()  # the NBD's customers never leave
    summary = value.summary.iloc[0]
    assert summary["customers"] == 4
    assert summary["orders"] == 9
    assert summary["historic_value_eur"] == 245 + 0 + 100 + 160
    by_touch = value.by_first_touch_channel.set_index("channel")
    assert by_touch.loc[vd.NO_TOUCH, "customers"] == 2  # B, C
    assert value.by_first_order_channel["customers"].sum() == 4


def test_clv_rejects_wrong_settings(shop) -> None:
    with pytest.raises(InvalidError, match="Unknown customer-value model"):
        vd.clv(shop.tables(), HALF, model="pareto")
    with pytest.raises(InvalidError, match="horizon"):
        vd.clv(shop.tables(), HALF, horizon_days=0)
    with pytest.raises(InvalidError, match="No customer ordered"):
        vd.clv(shop.tables(), Scope(date(2020, 1, 1), date(2020, 2, 1)))


# ---------------------------------------------------------------------------------
# A simulated BG/NBD world, written as warehouse orders

TRUE = {"r": 0.8, "alpha": 60.0, "a": 1.0, "b": 6.0}
START = date(2024, 1, 1)


def simulate(customers: int, days: int, seed: int) -> pd.DataFrame:
    """Purchases (person, day, cents) of BG/NBD customers born in the first 180 days."""
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(1, customers + 1):
        rate = rng.gamma(TRUE["r"], 1 / TRUE["alpha"])
        dropout = rng.beta(TRUE["a"], TRUE["b"])
        scale = rng.gamma(6.0, 15.0)  # this customer's typical spend, in euros
        t, first = rng.uniform(0, 180), True
        while t < days:
            rows.append((person, int(t), int(rng.gamma(4.0, scale / 4.0) * 100) + 100))
            if not first and rng.random() < dropout:  # dropping out follows repeat purchases
                break
            t, first = t + rng.exponential(1 / rate), False
    return pd.DataFrame(rows, columns=["person", "day", "cents"])


def as_shop(purchases: pd.DataFrame) -> Shop:
    shop = Shop()
    for person, day, cents in purchases.itertuples(index=False):
        when = datetime.combine(START + timedelta(days=int(day)), datetime.min.time())
        shop.order(int(person), (when + timedelta(hours=10)).isoformat(), goods=int(cents))
    return shop


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, Shop]:
    purchases = simulate(customers=1500, days=540, seed=11)
    return purchases, as_shop(purchases)


def test_clv_fits_the_models_on_the_warehouse_purchases(simulated) -> None:
    purchases, shop = simulated
    scope = Scope(START, START + timedelta(days=420))
    value = vd.clv(shop.tables(), scope, horizon_days=120, acquisition=False)
    seen = purchases[purchases["day"] < 420].assign(
        when=lambda f: pd.to_datetime(START) + pd.to_timedelta(f["day"], unit="D"),
        euros=lambda f: f["cents"] / 100,
    )
    summary = models.rfm_summary(
        seen,
        "person",
        "when",
        "euros",
        observation_end=pd.Timestamp(scope.end) - pd.Timedelta(days=1),
    )
    expected = models.fit_bgnbd(summary)
    for name in ("r", "alpha", "a", "b"):
        assert value.parameters[name] == pytest.approx(getattr(expected, name), rel=1e-6)
        assert value.parameters[name] == pytest.approx(TRUE[name], rel=0.35)
    customers = value.customers.set_index("person_id").loc[summary.index]
    x, tx, t = (summary[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "T"))
    assert customers["p_alive"].to_numpy() == pytest.approx(
        models.probability_alive(expected, x, tx, t), abs=1e-4
    )
    assert ((customers["churn_risk"] >= 0.5) == (customers["churn_band"] == "high")).all()
    low = customers["churn_risk"] < 0.2
    assert (low == (customers["churn_band"] == "low")).all()
    assert value.summary.iloc[0]["customers"] == len(summary)


def test_backtest_predicts_the_last_days_of_the_period(simulated) -> None:
    purchases, shop = simulated
    scope = Scope(START, START + timedelta(days=540))
    result = vd.backtest(shop.tables(), scope, holdout_days=120)
    assert result.cutoff == START + timedelta(days=420)
    known = purchases[purchases["day"] < 420]["person"].unique()
    later = purchases[(purchases["day"] >= 420) & purchases["person"].isin(known)]
    accuracy = result.accuracy.iloc[0]
    assert accuracy["customers"] == len(known)
    assert accuracy["actual_purchases"] == later.groupby("person")["day"].nunique().sum()
    assert 0.8 < accuracy["ratio_purchases"] < 1.25
    assert accuracy["spearman_purchases"] > 0.3
    nbd = vd.backtest(shop.tables(), scope, holdout_days=120, model="nbd").accuracy.iloc[0]
    # Customers leave in this world: the model that knows it forecasts better.
    assert abs(accuracy["ratio_purchases"] - 1) < abs(nbd["ratio_purchases"] - 1)
    with pytest.raises(InvalidError, match="holdout"):
        vd.backtest(shop.tables(), scope, holdout_days=540)


def test_forecast_accuracy_by_hand() -> None:
    frame = pd.DataFrame(
        {
            "predicted_purchases": [1.0, 2.0, 0.0],
            "actual_purchases": [1, 3, 0],
            "predicted_value_eur": [10.0, 10.0, 10.0],
            "actual_value_eur": [0.0, 20.0, 10.0],
        }
    )
    row = vd.forecast_accuracy(frame).iloc[0]
    assert row["ratio_purchases"] == 0.75
    assert row["mae_purchases"] == pytest.approx(1 / 3, abs=1e-4)
    assert row["pearson_purchases"] == pytest.approx(0.9820, abs=1e-4)
    assert np.isnan(row["spearman_value_eur"])  # predictions all alike: no ranking to judge


def test_an_empty_period_gives_empty_tables(shop) -> None:
    before = Scope(date(2020, 1, 1), date(2020, 7, 1))
    assert vd.rfm(shop.tables(), before).empty
    frame = vd.cohorts(shop.tables(), before)
    assert frame.empty
    assert list(frame.columns)[:3] == ["cohort", "period", "periods_since"]
