"""Customer value: RFM, cohorts, historic CLV, and BG/NBD + Gamma-Gamma validated on CDNOW.

CDNOW is the 1/10th sample of Fader, Hardie & Lee (2005) shipped by `lifetimes`: 2,357
customers who first bought in the first 12 weeks of 1997, a 39-week calibration period
(to 1997-09-30) and a 39-week holdout (to 1998-06-30).
"""

from __future__ import annotations

import sys
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from omnicanal.analytics import clv
from omnicanal.core.errors import InvalidError
from omnicanal.demo.retailer import generate

with warnings.catch_warnings():
    # lifetimes (unmaintained) touches options that pandas 3 deprecates.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
    import lifetimes
    from lifetimes.datasets import __file__ as _datasets_init

CDNOW = Path(_datasets_init).parent / "CDNOW_sample.txt"
CALIBRATION_END = "1997-09-30"
HOLDOUT_END = "1998-06-30"
PAPER_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PAPER_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    frame = pd.read_csv(
        CDNOW,
        sep=r"\s+",
        header=None,
        names=["master_id", "customer", "date", "cds", "value"],
        dtype={"date": str},
    )
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


@pytest.fixture(scope="module")
def calibration(cdnow: pd.DataFrame) -> pd.DataFrame:
    return clv.rfm_summary(
        cdnow, "customer", "date", "value", observation_end=CALIBRATION_END, freq="W"
    )


@pytest.fixture(scope="module")
def bgnbd(calibration: pd.DataFrame) -> clv.BetaGeoParams:
    return clv.fit_bgnbd(calibration)


@pytest.fixture(scope="module")
def gamma_gamma(calibration: pd.DataFrame) -> clv.GammaGammaParams:
    return clv.fit_gamma_gamma(calibration)


def _columns(summary: pd.DataFrame) -> tuple[Any, Any, Any]:
    return (
        summary["frequency"].to_numpy(dtype="float64"),
        summary["recency"].to_numpy(dtype="float64"),
        summary["T"].to_numpy(dtype="float64"),
    )


# ---------------------------------------------------------------------------------
# CDNOW


def test_cdnow_summary_matches_the_papers_data(calibration):
    """Our RFM summary of the raw log equals the summary Fader and Hardie published."""
    published = pd.read_csv(
        CDNOW.parent / "cdnow_customers_summary_with_transactions.csv", index_col="ID"
    )
    assert len(calibration) == 2357
    assert (calibration["frequency"].to_numpy() == published["x"].to_numpy()).all()
    # The published file rounds to two decimals.
    np.testing.assert_allclose(calibration["recency"], published["t_x"], atol=0.006)
    np.testing.assert_allclose(calibration["T"], published["T"], atol=0.006)
    np.testing.assert_allclose(calibration["monetary_value"], published["zbar"], atol=0.006)


def test_bgnbd_on_cdnow_reproduces_the_paper(bgnbd):
    fitted = {"r": bgnbd.r, "alpha": bgnbd.alpha, "a": bgnbd.a, "b": bgnbd.b}
    for name, paper in PAPER_BGNBD.items():
        assert fitted[name] == pytest.approx(paper, abs=0.002), name
    assert bgnbd.log_likelihood == pytest.approx(-9582.4, abs=0.1)  # the paper's LL
    assert bgnbd.customers == 2357


def test_gamma_gamma_on_cdnow_reproduces_the_paper(gamma_gamma):
    assert gamma_gamma.customers == 946  # the repeat customers of the calibration period
    fitted = {"p": gamma_gamma.p, "q": gamma_gamma.q, "v": gamma_gamma.v}
    for name, paper in PAPER_GAMMA_GAMMA.items():
        assert fitted[name] == pytest.approx(paper, abs=0.02), name


def _holdout(cdnow: pd.DataFrame, calibration: pd.DataFrame) -> pd.Series:
    held = cdnow[(cdnow["date"] > CALIBRATION_END) & (cdnow["date"] <= HOLDOUT_END)]
    per_customer = held.drop_duplicates(["customer", "date"]).groupby("customer").size()
    return per_customer.reindex(calibration.index, fill_value=0)


def test_holdout_repeat_transactions_predicted(cdnow, calibration, bgnbd):
    """Predicted vs actual holdout repeat transactions, in total and by calibration frequency."""
    actual = _holdout(cdnow, calibration)
    predicted = clv.predict(calibration, bgnbd, horizon=39.0, freq="W")["expected_purchases"]
    assert int(actual.sum()) == 1882
    # Conditional expectations summed over customers: 1,653 for 1,882 actual.
    assert predicted.sum() == pytest.approx(1653.4, abs=0.5)
    assert predicted.sum() == pytest.approx(actual.sum(), rel=0.15)
    # Population expectation from each customer's trial, as in the paper's tracking plot.
    t = calibration["T"].to_numpy()
    population = clv.expected_purchases_new(bgnbd, t + 39) - clv.expected_purchases_new(bgnbd, t)
    assert population.sum() == pytest.approx(1666.7, abs=0.5)
    bucket = calibration["frequency"].clip(upper=7)
    table = pd.DataFrame({"actual": actual, "predicted": predicted}).groupby(bucket).mean()
    expected_actual = [0.237, 0.697, 1.393, 1.560, 2.532, 2.947, 3.862, 6.359]
    expected_predicted = [0.225, 0.523, 1.044, 1.520, 2.164, 2.654, 3.504, 6.157]
    np.testing.assert_allclose(table["actual"], expected_actual, atol=0.001)
    np.testing.assert_allclose(table["predicted"], expected_predicted, atol=0.001)
    # Predictions grow with past frequency, as the data do.
    assert table["predicted"].is_monotonic_increasing


def test_predictions_match_lifetimes(calibration, bgnbd, gamma_gamma):
    x, tx, t = _columns(calibration)
    ours = clv.predict(calibration, bgnbd, gamma_gamma, horizon=39.0, months=12, freq="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        bgf = lifetimes.BetaGeoFitter().fit(x, tx, t)
        ggf = lifetimes.GammaGammaFitter().fit(
            calibration["frequency"][x > 0], calibration["monetary_value"][x > 0]
        )
        expected = bgf.conditional_expected_number_of_purchases_up_to_time(39.0, x, tx, t)
        alive = bgf.conditional_probability_alive(x, tx, t)
        repeaters = calibration[x > 0]
        spend = ggf.conditional_expected_average_profit(
            repeaters["frequency"], repeaters["monetary_value"]
        )
        value = ggf.customer_lifetime_value(
            bgf,
            repeaters["frequency"],
            repeaters["recency"],
            repeaters["T"],
            repeaters["monetary_value"],
            time=12,
            discount_rate=0.01,
            freq="W",
        )
    np.testing.assert_allclose(ours["expected_purchases"], expected, rtol=1e-3)
    np.testing.assert_allclose(ours["p_alive"], alive, rtol=1e-3)
    np.testing.assert_allclose(ours["churn_risk"], 1 - ours["p_alive"])
    np.testing.assert_allclose(ours.loc[x > 0, "expected_spend"], spend, rtol=2e-3)
    np.testing.assert_allclose(ours.loc[x > 0, "clv"], value, rtol=3e-3)
    # A customer without repeats is expected to spend the population mean p·v/(q-1).
    population = gamma_gamma.p * gamma_gamma.v / (gamma_gamma.q - 1)
    assert ours.loc[x == 0, "expected_spend"].to_numpy() == pytest.approx(population)


def test_bgnbd_matches_pymc_marketing_map(calibration, bgnbd, tmp_path_factory, monkeypatch):
    """The production alternative, pymc-marketing MAP with flat priors, finds the same optimum."""
    if "pytensor" not in sys.modules:  # keep PyTensor's compiled code out of $HOME
        compiled = tmp_path_factory.mktemp("pytensor")
        monkeypatch.setenv("PYTENSOR_FLAGS", f"base_compiledir={compiled}")
    with warnings.catch_warnings():  # ArviZ announces its refactor on first import
        warnings.filterwarnings("ignore", r"\s*ArviZ is undergoing", FutureWarning)
        from pymc_marketing.clv import BetaGeoModel
        from pymc_marketing.prior import Prior

    data = calibration.reset_index().rename(columns={"customer": "customer_id"})
    flat = {name: Prior("HalfFlat") for name in ("r", "alpha", "a", "b")}
    model = BetaGeoModel(model_config=flat)
    model.fit(data[["customer_id", "frequency", "recency", "T"]], method="map", progressbar=False)
    posterior = model.idata.posterior
    for name in ("r", "alpha", "a", "b"):
        assert float(posterior[name].mean()) == pytest.approx(getattr(bgnbd, name), rel=2e-3)


def test_simulated_bgnbd_customers_give_back_their_parameters():
    """Customers drawn from a known BG/NBD are fitted back to its parameters."""
    rng = np.random.default_rng(3)
    true = clv.BetaGeoParams(r=0.5, alpha=8.0, a=0.9, b=3.0, log_likelihood=0.0, customers=0)
    summary = pd.DataFrame(
        dict(
            zip(
                ["frequency", "recency", "T"],
                clv.simulate_bgnbd(true, 20_000, 52.0, rng),
                strict=True,
            )
        )
    )
    fitted = clv.fit_bgnbd(summary)
    assert fitted.r == pytest.approx(true.r, rel=0.1)
    assert fitted.alpha == pytest.approx(true.alpha, rel=0.15)
    assert fitted.a == pytest.approx(true.a, rel=0.25)
    assert fitted.b == pytest.approx(true.b, rel=0.35)


# ---------------------------------------------------------------------------------
# The demo retailer's ground truth


def test_demo_holdout_predicted(tmp_path):
    """Fitted on the demo's loaded orders, the models predict its simulated, unloaded future."""
    end = date(2026, 1, 1)
    generate(customers=3000, months=24, seed=0, holdout_months=6, out=tmp_path, end=end)
    truth = tmp_path / "ground-truth"
    orders = pd.read_parquet(truth / "orders.parquet")
    holdout = pd.read_parquet(truth / "holdout.parquet").set_index("person_id")
    loaded = orders[orders["period"] == "loaded"]
    summary = clv.rfm_summary(
        loaded, "person_id", "at", "revenue_eur", observation_end=date(2025, 12, 31)
    )
    bgnbd, gamma_gamma = clv.fit_bgnbd(summary), clv.fit_gamma_gamma(summary)
    days = (date(2026, 7, 1) - end).days
    predicted = clv.predict(summary, bgnbd, gamma_gamma, horizon=days, months=6)
    actual = holdout.reindex(summary.index)
    assert not actual["purchases"].isna().any()
    # 2,287 predicted for 2,228 orders; 278 k€ of 6-month CLV for 253 k€ spent.
    assert predicted["expected_purchases"].sum() == pytest.approx(
        actual["purchases"].sum(), rel=0.05
    )
    assert predicted["clv"].sum() == pytest.approx(actual["spend_eur"].sum(), rel=0.15)
    bucket = summary["frequency"].clip(upper=7)
    both = pd.DataFrame(
        {"actual": actual["purchases"], "predicted": predicted["expected_purchases"]}
    )
    table = both.groupby(bucket).mean()
    # Buckets of 4 to 6 past purchases hold 95 to 152 customers each: sampling noise ~0.15.
    np.testing.assert_allclose(table["predicted"], table["actual"], atol=0.25)
    rho = stats.spearmanr(predicted["expected_purchases"], actual["purchases"]).statistic
    # Measured 0.445 on 3,000 customers (standard error about 0.02); unrelated scores give 0.
    assert rho > 0.4
    # Being alive is hard to see from purchases alone, but P(alive) ranks it better than chance.
    assert roc_auc_score(actual["alive_at_start"], predicted["p_alive"]) > 0.57


# ---------------------------------------------------------------------------------
# Hand-made transactions


@pytest.fixture
def orders() -> pd.DataFrame:
    rows = [
        ("A", "2024-01-01 09:00", 10.0),
        ("A", "2024-01-01 18:30", 5.0),  # same day: one purchase of 15
        ("A", "2024-01-11", 20.0),
        ("A", "2024-01-31", 30.0),
        ("B", "2024-01-21", 100.0),
        ("C", "2024-01-05", 8.0),
        ("C", "2024-02-05", 12.0),
        ("C", "2024-03-01", 99.0),  # after the end of observation
    ]
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])


def test_rfm_summary_by_hand(orders):
    summary = clv.rfm_summary(
        orders, "customer_id", "timestamp", "amount", observation_end="2024-02-10"
    )
    assert summary.to_dict("index") == {
        "A": {"frequency": 2, "recency": 30.0, "T": 40.0, "monetary_value": 25.0},
        "B": {"frequency": 0, "recency": 0.0, "T": 20.0, "monetary_value": 0.0},
        "C": {"frequency": 1, "recency": 31.0, "T": 36.0, "monetary_value": 12.0},
    }
    weekly = clv.rfm_summary(
        orders, "customer_id", "timestamp", observation_end="2024-02-10", freq="W"
    )
    assert list(weekly.columns) == ["frequency", "recency", "T"]
    assert weekly.loc["A", "recency"] == pytest.approx(30 / 7)
    # Without an end, observation stops at the last purchase day.
    assert clv.rfm_summary(orders, "customer_id", "timestamp").loc["C", "T"] == 56.0


def test_historic_clv_by_hand(orders):
    value = clv.historic_clv(
        orders, "customer_id", "timestamp", "amount", observation_end="2024-02-10", margin=0.4
    )
    assert value["orders"].to_dict() == {"A": 4, "B": 1, "C": 2}
    assert value["revenue"].to_dict() == {"A": 65.0, "B": 100.0, "C": 20.0}
    assert value["historic_clv"].to_dict() == pytest.approx({"A": 26.0, "B": 40.0, "C": 8.0})
    assert value.loc["C", "average_order_value"] == 10.0
    assert value.loc["B", "tenure_days"] == 20.0


def _five_customers(order_counts: list[int]) -> pd.DataFrame:
    """Customer i last bought 10·(4-i) days before 2024-06-30, with the given order count."""
    rows = []
    for i, count in enumerate(order_counts):
        last = pd.Timestamp("2024-06-30") - pd.Timedelta(days=10 * (4 - i))
        for k in range(count):
            rows.append((f"c{i}", last - pd.Timedelta(days=30 * k), 10.0 * (i + 1)))
    return pd.DataFrame(rows, columns=["who", "when", "eur"])


@pytest.mark.parametrize(
    ("order_counts", "segments", "segments_fr"),
    [
        (
            [1, 2, 3, 4, 5],
            ["Hibernating", "Hibernating", "Need attention", "Loyal", "Champions"],
            ["Hibernants", "Hibernants", "À surveiller", "Clients fidèles", "Champions"],
        ),
        (
            [5, 4, 3, 2, 1],
            [
                "Can't lose them",
                "At risk",
                "Need attention",
                "Potential loyalists",
                "New customers",
            ],
            [
                "À ne pas perdre",
                "À risque",
                "À surveiller",
                "Fidèles potentiels",
                "Nouveaux clients",
            ],
        ),
    ],
)
def test_rfm_scores_by_hand(order_counts, segments, segments_fr):
    scores = clv.rfm_scores(_five_customers(order_counts), "who", "when", "eur")
    assert scores["recency_days"].tolist() == [40, 30, 20, 10, 0]
    assert scores["r"].tolist() == [1, 2, 3, 4, 5]
    assert scores["f"].tolist() == [{1: 1, 2: 2, 3: 3, 4: 4, 5: 5}[c] for c in order_counts]
    assert scores["segment"].tolist() == segments
    assert scores["segment_fr"].tolist() == segments_fr


def test_rfm_ties_share_a_score():
    frame = pd.DataFrame(
        {"who": ["a", "b", "c", "d"], "when": ["2024-01-01"] * 4, "eur": [5.0, 5.0, 5.0, 9.0]}
    )
    scores = clv.rfm_scores(frame, "who", "when", "eur")
    assert scores["r"].nunique() == 1
    assert scores["m"].tolist() == [3, 3, 3, 5]


def test_cohort_retention_by_hand():
    orders = pd.DataFrame(
        [
            ("u1", "2024-01-05"),
            ("u1", "2024-02-10"),
            ("u1", "2024-03-01"),
            ("u2", "2024-01-20"),
            ("u2", "2024-03-15"),
            ("u3", "2024-02-02"),
            ("u3", "2024-02-20"),
            ("u3", "2024-03-03"),
            ("u4", "2024-02-14"),
        ],
        columns=["customer_id", "timestamp"],
    )
    shares = clv.cohort_retention(orders)
    assert [str(c) for c in shares.index] == ["2024-01", "2024-02"]
    assert shares.columns.tolist() == [0, 1, 2]
    assert shares.loc[pd.Period("2024-01", "M")].tolist() == [1.0, 0.5, 1.0]
    february = shares.loc[pd.Period("2024-02", "M")]
    assert february.iloc[:2].tolist() == [1.0, 0.5]
    assert np.isnan(february.iloc[2])  # April is not observed yet
    counts = clv.cohort_retention(orders, counts=True)
    assert counts.loc[pd.Period("2024-01", "M")].tolist() == [2, 1, 2]


# ---------------------------------------------------------------------------------
# Errors


def test_missing_column_is_named(orders):
    with pytest.raises(InvalidError, match="amount") as caught:
        clv.rfm_summary(orders.drop(columns="amount"), "customer_id", "timestamp", "amount")
    assert caught.value.extensions()["errors"] == [{"field": "amount", "reason": "missing column"}]


@pytest.mark.parametrize(
    ("column", "bad", "message"),
    [("timestamp", "yesterday", "'timestamp' must hold dates"), ("amount", "ten", "'amount'")],
)
def test_bad_values_are_named(orders, column, bad, message):
    orders[column] = orders[column].astype(object)
    orders.loc[0, column] = bad
    with pytest.raises(InvalidError, match=message):
        clv.rfm_summary(orders, "customer_id", "timestamp", "amount")


def test_unknown_units_are_refused(orders):
    with pytest.raises(InvalidError, match="freq must be one of D, W"):
        clv.rfm_summary(orders, "customer_id", "timestamp", freq="Q")
    with pytest.raises(InvalidError, match="period must be a pandas period alias"):
        clv.cohort_retention(orders, period="fortnight")


def test_impossible_summary_is_refused():
    summary = pd.DataFrame({"frequency": [1, 2], "recency": [5.0, 9.0], "T": [4.0, 10.0]})
    with pytest.raises(InvalidError, match="'recency' exceeds 'T'"):
        clv.fit_bgnbd(summary)
    summary["monetary_value"] = [0.0, 10.0]
    with pytest.raises(InvalidError, match="at least two customers with repeat purchases"):
        clv.fit_gamma_gamma(summary)


def test_whole_number_counts_give_the_same_answers_as_floats() -> None:
    """Frequencies and ages often arrive as integers (days, counts): no truncation."""
    params = clv.BetaGeoParams(r=0.24, alpha=4.41, a=0.79, b=2.43, log_likelihood=0.0, customers=0)
    x, tx, t = np.array([0, 2, 5]), np.array([0, 10, 30]), np.array([39, 39, 39])
    as_float = [a.astype("float64") for a in (x, tx, t)]
    alive = clv.probability_alive(params, x, tx, t)
    assert np.allclose(alive, clv.probability_alive(params, *as_float))
    assert 0 < alive[1] < 1  # not truncated to 0 or 1
    assert np.allclose(
        clv.expected_purchases(params, x, tx, t, 52.0),
        clv.expected_purchases(params, *as_float, 52.0),
    )
