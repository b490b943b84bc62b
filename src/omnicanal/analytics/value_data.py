"""Customer value on the warehouse: purchases per person and day, RFM, cohorts, CLV.

The models of `omnicanal.analytics.clv` take purchases; this module reads them from the
warehouse's orders for a scope:

- a purchase is a person's orders of one local day (the BG/NBD literature counts purchase
  days), worth what was paid for the goods (VAT included, after discounts, without shipping)
  net of the refunds recorded on the orders, never below zero;
- the scope's `stores` keep orders bought or picked up there, `channels` orders placed
  through those channels, `persons` those people; media classes do not apply to orders.

RFM and cohorts look at the scope's period. CLV fits on every order before the period's end
(the models need each customer's whole history; the start is not used) and predicts the
`horizon_days` after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Final

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from omnicanal.analytics import clv as models
from omnicanal.analytics.journeys_common import first_touches, instant
from omnicanal.analytics.scope import GRAINS, Scope, Tables, in_period, truncate, with_filters
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import ORDERS

BGNBD: Final = "bgnbd"
NBD: Final = "nbd"
MODELS: Final = (BGNBD, NBD)
"""`bgnbd`: BG/NBD purchases with Gamma-Gamma spend. `nbd`: the Poisson-gamma (NBD) model,
customers who never leave, with the same spend model: the baseline BG/NBD should beat."""
CHURN_BANDS: Final = ((0.5, "high"), (0.2, "medium"), (0.0, "low"))
"""Band of a churn risk (1 - probability alive): the first whose threshold it reaches."""
NO_TOUCH: Final = "direct"
_EARLIEST: Final = date(1970, 1, 2)
_PERIODS: Final = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}


def _fetch(expr: ir.Table) -> pd.DataFrame:
    """Run an expression; through Arrow, which every backend gives the same way."""
    frame: pd.DataFrame = expr.to_pyarrow().to_pandas()
    return frame


def _orders(tables: Tables, scope: Scope) -> ir.Table:
    orders = with_filters(tables[ORDERS], scope, channel="channel", store="store")
    return orders.filter(orders.day < ibis.literal(scope.end))


def _net(orders: ir.Table) -> ir.IntegerValue:
    goods = orders.total_cents - orders.shipping_cents.fill_null(0)
    return ibis.greatest(goods - orders.refunded_cents.fill_null(0), 0)


def transactions(tables: Tables, scope: Scope, *, since_start: bool = True) -> ir.Table:
    """One row per person and local day with orders: person_id, day, orders, value_cents.

    Orders of the period, or of all time before its end with `since_start=False`.
    """
    orders = _orders(tables, scope)
    if since_start:
        orders = in_period(orders, scope)
    return orders.group_by(["person_id", "day"]).aggregate(
        orders=orders.count(), value_cents=_net(orders).sum()
    )


def _purchases(tables: Tables, scope: Scope, *, since_start: bool) -> pd.DataFrame:
    frame = _fetch(transactions(tables, scope, since_start=since_start))
    frame["day"] = pd.to_datetime(frame["day"])
    frame["value"] = frame["value_cents"].astype("float64") / 100
    return frame.sort_values(["person_id", "day"], ignore_index=True)


def _last_day(scope: Scope) -> pd.Timestamp:
    return pd.Timestamp(scope.end - timedelta(days=1))


# ---------------------------------------------------------------------------------
# RFM and cohorts


def rfm(tables: Tables, scope: Scope) -> pd.DataFrame:
    """Score each person who bought in the period on recency, frequency and spend (1-5).

    Columns: person_id, recency_days (from the last purchase to the period's last day),
    frequency (purchase days), monetary_eur, r, f, m, rfm, segment, segment_fr
    (`omnicanal.analytics.clv.rfm_scores`).
    """
    frame = _purchases(tables, scope, since_start=True)
    scores = models.rfm_scores(
        frame, "person_id", "day", "value", observation_end=_last_day(scope)
    ).reset_index()
    scores = scores.rename(columns={"monetary": "monetary_eur"})
    scores["monetary_eur"] = scores["monetary_eur"].round(2)
    return scores


def cohorts(tables: Tables, scope: Scope, grain: str = "month") -> pd.DataFrame:
    """Retention of the customers acquired in the period, by cohort and period since.

    A cohort is the customers whose first order ever fell in one `grain` (day, week from
    Monday, month, quarter, year) of the period. One row per cohort and period up to the
    period's end, zeros included. Columns: cohort, period (first days), periods_since,
    cohort_customers, customers (who ordered in that period), retention (their share),
    orders, revenue_eur.
    """
    if grain not in GRAINS:
        raise InvalidError(
            f"Unknown time grain {grain!r}; use one of: {', '.join(GRAINS)}.",
            errors=[{"field": "grain", "reason": "unknown"}],
        )
    orders = _orders(tables, scope)
    first = orders.group_by(buyer=orders.person_id).aggregate(first_day=orders.day.min())
    first = in_period(first, scope, "first_day")
    joined = orders.join(first, orders.person_id == first.buyer)
    joined = joined.mutate(
        cohort=truncate(joined.first_day, grain), period=truncate(joined.day, grain)
    )
    counts = _fetch(
        joined.group_by(["cohort", "period"]).aggregate(
            customers=joined.person_id.nunique(),
            orders=joined.count(),
            revenue_cents=_net(joined).sum(),
        )
    )
    return _cohort_grid(counts, scope, grain)


def _cohort_grid(counts: pd.DataFrame, scope: Scope, grain: str) -> pd.DataFrame:
    freq = _PERIODS[grain]
    last = pd.Period(scope.end - timedelta(days=1), freq)
    rows = []
    for cohort in sorted(pd.to_datetime(counts["cohort"]).dt.date.unique()):
        start = pd.Period(cohort, freq)
        for since in range(last.ordinal - start.ordinal + 1):
            rows.append((cohort, (start + since).start_time.date(), since))
    grid = pd.DataFrame(rows, columns=["cohort", "period", "periods_since"])
    counts = counts.assign(
        cohort=pd.to_datetime(counts["cohort"]).dt.date,
        period=pd.to_datetime(counts["period"]).dt.date,
    )
    frame = grid.merge(counts, on=["cohort", "period"], how="left")
    for column in ("customers", "orders", "revenue_cents"):
        frame[column] = frame[column].fillna(0).astype("int64")
    size = frame[frame["periods_since"] == 0].set_index("cohort")["customers"]
    frame["cohort_customers"] = frame["cohort"].map(size).astype("int64")
    frame["retention"] = (frame["customers"] / frame["cohort_customers"]).round(4)
    frame["revenue_eur"] = (frame["revenue_cents"] / 100).round(2)
    columns = ["cohort", "period", "periods_since", "cohort_customers", "customers"]
    return frame.loc[:, [*columns, "retention", "orders", "revenue_eur"]]


# ---------------------------------------------------------------------------------
# Predictive value


@dataclass(frozen=True)
class CustomerValue:
    """Predicted value of every customer, with totals and by acquisition channel.

    `customers`: person_id, first_order, last_order, orders, purchase_days, frequency
    (repeat purchase days), recency_days, tenure_days, historic_value_eur,
    p_alive, churn_risk, churn_band, expected_purchases, expected_spend_eur,
    predicted_value_eur (expected purchases times expected spend over the horizon,
    undiscounted), first_order_channel, first_touch_channel.
    `summary`: one row of totals. `by_first_order_channel`, `by_first_touch_channel`:
    one row per acquisition channel.
    """

    customers: pd.DataFrame
    summary: pd.DataFrame
    by_first_order_channel: pd.DataFrame
    by_first_touch_channel: pd.DataFrame
    model: str
    horizon_days: int
    observation_end: date
    parameters: dict[str, float]


def _fit_nbd(x: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Fit the NBD (Poisson rate ~ Gamma(r, alpha)) to x repeat purchases in t days."""

    (x, t), weight = models.distinct_rows(x, t)

    def loss(log_params: np.ndarray) -> float:
        r, alpha = np.exp(log_params)
        ll = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        ll -= (r + x) * np.log(alpha + t)
        value = float((weight * ll).sum())
        return -value if np.isfinite(value) else np.inf

    start = np.log([1.0, max(float(t.mean()), 1.0)])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = optimize.minimize(loss, start, method="L-BFGS-B")
    r, alpha = np.exp(result.x)
    return float(r), float(alpha)


#: Fewer customers than this cannot support a BG/NBD fit (four parameters).
MIN_CUSTOMERS = 30


def _purchase_model(
    summary: pd.DataFrame, model: str, horizon: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    x, tx, t = (summary[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "T"))
    result = pd.DataFrame(index=summary.index)
    if model == BGNBD:
        if len(summary) < MIN_CUSTOMERS:
            raise InvalidError(
                f"{len(summary)} customers are too few to fit BG/NBD (at least "
                f"{MIN_CUSTOMERS} are needed); historic value is in the rfm and cohorts reports",
                errors=[{"field": "from", "reason": "widen the period or the filters"}],
            )
        params = models.fit_bgnbd(summary)
        if abs(params.a - 1) < 1e-6:  # eq. 10 divides by a - 1
            raise InvalidError(
                "these purchases do not let BG/NBD estimate when customers leave "
                "(fitted a = 1); try the nbd model or a longer period",
                errors=[{"field": "model", "reason": "BG/NBD does not fit these purchases"}],
            )
        result["expected_purchases"] = models.expected_purchases(params, x, tx, t, horizon)
        result["p_alive"] = models.probability_alive(params, x, tx, t)
        return result, {"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b}
    r, alpha = _fit_nbd(x, t)
    result["expected_purchases"] = (r + x) / (alpha + t) * horizon
    result["p_alive"] = 1.0
    return result, {"r": r, "alpha": alpha}


def _spend(summary: pd.DataFrame, purchases: pd.DataFrame) -> tuple[np.ndarray, dict[str, float]]:
    """Expected spend per purchase day: Gamma-Gamma, or the mean day when it cannot fit."""
    x = summary["frequency"].to_numpy(dtype="float64")
    m = summary["monetary_value"].to_numpy(dtype="float64")
    try:
        params = models.fit_gamma_gamma(summary)
    except InvalidError:
        return np.full(len(x), float(purchases["value"].mean())), {}
    spend = models.expected_spend(params, x, m)
    return spend, {"p": params.p, "q": params.q, "v": params.v}


def _band(risk: pd.Series) -> list[str]:
    return [next(name for limit, name in CHURN_BANDS if value >= limit) for value in risk]


def _history(purchases: pd.DataFrame) -> pd.DataFrame:
    grouped = purchases.groupby("person_id", sort=True)
    return pd.DataFrame(
        {
            "first_order": grouped["day"].min().dt.date,
            "last_order": grouped["day"].max().dt.date,
            "orders": grouped["orders"].sum().astype("int64"),
            "purchase_days": grouped["day"].count().astype("int64"),
            "historic_value_eur": (grouped["value_cents"].sum() / 100).round(2),
        }
    )


def _check(model: str, horizon_days: int) -> None:
    if model not in MODELS:
        raise InvalidError(
            f"Unknown customer-value model {model!r}; use one of: {', '.join(MODELS)}.",
            errors=[{"field": "model", "reason": "unknown"}],
        )
    if horizon_days < 1:
        raise InvalidError(
            "The horizon must be one day or more.",
            errors=[{"field": "horizon_days", "reason": "less than one day"}],
        )


def _predict(
    tables: Tables, scope: Scope, model: str, horizon_days: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    purchases = _purchases(tables, scope, since_start=False)
    if purchases.empty:
        raise InvalidError(
            f"No customer ordered before {scope.end.isoformat()}: there is no value to predict.",
            errors=[{"field": "to", "reason": "no orders before it"}],
        )
    summary = models.rfm_summary(
        purchases, "person_id", "day", "value", observation_end=_last_day(scope)
    )
    result, params = _purchase_model(summary, model, horizon_days)
    spend, spend_params = _spend(summary, purchases)
    frame = _history(purchases).join(summary[["frequency", "recency", "T"]])
    frame = frame.rename(columns={"recency": "recency_days", "T": "tenure_days"})
    frame["frequency"] = frame["frequency"].astype("int64")
    frame["p_alive"] = result["p_alive"].round(4)
    frame["churn_risk"] = (1 - result["p_alive"]).round(4)
    frame["churn_band"] = _band(frame["churn_risk"])
    frame["expected_purchases"] = result["expected_purchases"].round(4)
    frame["expected_spend_eur"] = np.round(spend, 2)
    frame["predicted_value_eur"] = (result["expected_purchases"] * spend).round(2)
    return frame.reset_index(), {**params, **spend_params}


def _first_channels(tables: Tables, scope: Scope) -> pd.DataFrame:
    """Each customer's first order channel and first touchpoint (at or before that order)."""
    orders = _orders(tables, scope)
    rank = ibis.row_number().over(ibis.window(group_by="person_id", order_by=["ts", "order_id"]))
    first = orders.mutate(rank=rank).filter(lambda t: t["rank"] == 0)
    first = first.select(buyer="person_id", first_ts="ts", first_order_channel="channel")
    # A person's first touchpoint ever is their first before their first order, if any was.
    everything = replace(scope, channels=(), media_classes=(), stores=())
    touch = first_touches(tables, everything)
    touch = touch.select(toucher="person_id", touch_ts="ts", first_touch_channel="channel")
    both = first.left_join(
        touch, (first.buyer == touch.toucher) & (touch.touch_ts <= instant(first.first_ts))
    )
    return _fetch(
        both.select(
            person_id=both.buyer,
            first_order_channel=both.first_order_channel,
            first_touch_channel=both.first_touch_channel.fill_null(NO_TOUCH),
        )
    )


def _by_channel(customers: pd.DataFrame, column: str) -> pd.DataFrame:
    grouped = customers.groupby(column, sort=True)
    frame = pd.DataFrame(
        {
            "customers": grouped["person_id"].count().astype("int64"),
            "historic_value_eur": grouped["historic_value_eur"].sum().round(2),
            "expected_purchases": grouped["expected_purchases"].sum().round(2),
            "predicted_value_eur": grouped["predicted_value_eur"].sum().round(2),
            "mean_p_alive": grouped["p_alive"].mean().round(4),
            "high_churn_risk": grouped["churn_band"].agg(lambda b: int((b == "high").sum())),
        }
    )
    frame["predicted_value_per_customer_eur"] = (
        frame["predicted_value_eur"] / frame["customers"]
    ).round(2)
    frame["customer_share"] = (frame["customers"] / frame["customers"].sum()).round(4)
    frame = frame.rename_axis("channel").reset_index()
    return frame.sort_values(["customers", "channel"], ascending=[False, True], ignore_index=True)


def _summary(customers: pd.DataFrame, model: str, horizon: int, end: date) -> pd.DataFrame:
    bands = customers["churn_band"].value_counts()
    row = {
        "model": model,
        "observation_end": end,
        "horizon_days": horizon,
        "customers": len(customers),
        "repeat_customers": int((customers["frequency"] > 0).sum()),
        "orders": int(customers["orders"].sum()),
        "historic_value_eur": round(float(customers["historic_value_eur"].sum()), 2),
        "expected_purchases": round(float(customers["expected_purchases"].sum()), 2),
        "predicted_value_eur": round(float(customers["predicted_value_eur"].sum()), 2),
        "mean_p_alive": round(float(customers["p_alive"].mean()), 4),
        **{f"churn_{name}": int(bands.get(name, 0)) for _, name in CHURN_BANDS},
    }
    return pd.DataFrame([row])


def clv(
    tables: Tables,
    scope: Scope,
    *,
    horizon_days: int = 365,
    model: str = BGNBD,
    acquisition: bool = True,
) -> CustomerValue:
    """Predict each customer's purchases and value over the `horizon_days` after the period.

    Args:
        model: `bgnbd` or `nbd` (see `MODELS`).
        acquisition: also find each customer's first order and first touchpoint channels
            (reads the touchpoints of all history); otherwise they are empty.
    """
    _check(model, horizon_days)
    customers, params = _predict(tables, scope, model, horizon_days)
    if acquisition:
        channels = _first_channels(tables, scope)
        customers = customers.merge(channels, on="person_id", how="left")
    else:
        customers["first_order_channel"] = None
        customers["first_touch_channel"] = None
    end = scope.end - timedelta(days=1)
    return CustomerValue(
        customers=customers,
        summary=_summary(customers, model, horizon_days, end),
        by_first_order_channel=_by_channel(customers, "first_order_channel"),
        by_first_touch_channel=_by_channel(customers, "first_touch_channel"),
        model=model,
        horizon_days=horizon_days,
        observation_end=end,
        parameters=params,
    )


# ---------------------------------------------------------------------------------
# Checking forecasts


def _correlation(a: np.ndarray, b: np.ndarray, method: str) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    function = stats.spearmanr if method == "spearman" else stats.pearsonr
    return round(float(function(a, b)[0]), 4)


def forecast_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """Compare predicted and actual purchases and value per customer, in one row.

    `frame` has predicted_purchases, actual_purchases, predicted_value_eur,
    actual_value_eur (one row per customer). Returns the customers, the totals and their
    ratio (predicted / actual), the mean absolute error per customer, and the Pearson and
    Spearman correlations across customers, for purchases and for value.
    """
    row: dict[str, float | int] = {"customers": len(frame)}
    for what in ("purchases", "value_eur"):
        predicted = frame[f"predicted_{what}"].to_numpy(dtype="float64")
        actual = frame[f"actual_{what}"].to_numpy(dtype="float64")
        total_p, total_a = float(predicted.sum()), float(actual.sum())
        row[f"predicted_{what}"] = round(total_p, 2)
        row[f"actual_{what}"] = round(total_a, 2)
        row[f"ratio_{what}"] = round(total_p / total_a, 4) if total_a else float("nan")
        mae = float(np.abs(predicted - actual).mean()) if len(frame) else float("nan")
        row[f"mae_{what}"] = round(mae, 4)
        row[f"pearson_{what}"] = _correlation(predicted, actual, "pearson")
        row[f"spearman_{what}"] = _correlation(predicted, actual, "spearman")
    return pd.DataFrame([row])


@dataclass(frozen=True)
class Backtest:
    """Forecast of the last `holdout_days` of a period from the days before, and the truth."""

    customers: pd.DataFrame  # person_id, predicted_*, actual_* purchases and value_eur
    accuracy: pd.DataFrame  # `forecast_accuracy`
    cutoff: date  # first day of the holdout


def backtest(tables: Tables, scope: Scope, *, holdout_days: int, model: str = BGNBD) -> Backtest:
    """Fit on the orders before the period's last `holdout_days` days, predict those days,
    and compare with what customers bought then (customers known at the cutoff)."""
    cutoff = scope.end - timedelta(days=holdout_days)
    if holdout_days < 1 or cutoff <= scope.start:
        raise InvalidError(
            "The holdout must be one day or more and shorter than the period.",
            errors=[{"field": "holdout_days", "reason": "out of range"}],
        )
    before = replace(scope, end=cutoff)
    value = clv(tables, before, horizon_days=holdout_days, model=model, acquisition=False)
    after = _purchases(tables, replace(scope, start=cutoff), since_start=True)
    actual = after.groupby("person_id").agg(
        actual_purchases=("day", "count"), actual_value_eur=("value", "sum")
    )
    customers = value.customers.set_index("person_id")[
        ["expected_purchases", "predicted_value_eur"]
    ].rename(
        columns={
            "expected_purchases": "predicted_purchases",
            "predicted_value_eur": "predicted_value_eur",
        }
    )
    customers = customers.join(actual, how="left").fillna(0.0).reset_index()
    return Backtest(customers=customers, accuracy=forecast_accuracy(customers), cutoff=cutoff)
