"""How close the analytics come to the demo retailer's ground truth.

The demo world is simulated, so what each channel caused and what each customer buys next
are known (`<data>/ground-truth/`, see docs/concepts/demo-retailer.md). These functions run
the analytics on a warehouse loaded from the demo and compare:

- `score_attribution`: every attribution model's credit per channel with the channel's true
  incremental orders, revenue and customers (`channel_effects.parquet`), in two views. The
  *orders* view credits each order through its own journey; the *customers* view credits
  each new customer's first-order journey with all that customer's orders of the period,
  which is how the truth counts what an acquisition channel brought.
- `score_clv`: predicted purchases and spend over the holdout with what each true person
  really bought (`holdout.parquet`).

Warehouse persons are matched to true persons through their orders: a warehouse order's
`order_key` is the e-shop order id or the till receipt (after its `<store>:` prefix), which
`orders.parquet` gives as `order_ref` with its true person; a warehouse person is the true
person most of its orders belong to. `person_map_from_identifiers` does the same from a
profile's identifiers (user id, card, e-mail, phone) when the caller has them. A warehouse
person matching nobody counts as unmatched: its predictions are kept in the totals.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from scipy import stats

from omnicanal.analytics import attribution_data as attribution
from omnicanal.analytics import value_data
from omnicanal.analytics.scope import Scope, Tables
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import ORDERS

ORDERS_VIEW: Final = "orders"
CUSTOMERS_VIEW: Final = "customers"
IDENTIFIER_PRIORITY: Final = ("user_id", "card", "email", "phone", "anonymous_id")


def _read(truth_dir: Path, name: str) -> pd.DataFrame:
    path = Path(truth_dir) / f"{name}.parquet"
    if not path.is_file():
        raise InvalidError(
            f"The ground truth lacks {path.name} in {truth_dir}.",
            errors=[{"field": "truth_dir", "reason": f"no {path.name}"}],
        )
    return pd.read_parquet(path)


@dataclass(frozen=True)
class TruthPeriods:
    """The demo's loaded period (a scope) and the first day after its holdout."""

    loaded: Scope
    holdout_end: date

    @property
    def holdout_days(self) -> int:
        """Return the length of the holdout in days."""
        return (self.holdout_end - self.loaded.end).days


def truth_periods(truth_dir: Path) -> TruthPeriods:
    """Read the loaded and holdout periods from the truth's README (Paris calendar days).

    Without the README, the days of the true orders stand in for it.
    """
    readme = Path(truth_dir) / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    loaded = re.search(r"Loaded period: ([\d-]{10}) to the day before ([\d-]{10})", text)
    holdout = re.search(r"holdout period[^:]*: [\d-]{10} to the day before ([\d-]{10})", text)
    if loaded and holdout:
        start, end = (date.fromisoformat(d) for d in loaded.groups())
        return TruthPeriods(Scope(start, end), date.fromisoformat(holdout[1]))
    orders = _read(truth_dir, "orders")
    days = pd.to_datetime(orders["at"]).dt.date
    loaded_days = days[orders["period"] == "loaded"]
    holdout_days = days[orders["period"] == "holdout"]
    if loaded_days.empty:
        raise InvalidError("The ground truth has no order of the loaded period.")
    end = max(loaded_days) + timedelta(days=1)
    after = max(holdout_days) + timedelta(days=1) if not holdout_days.empty else end
    return TruthPeriods(loaded=Scope(min(loaded_days), end), holdout_end=max(after, end))


# ---------------------------------------------------------------------------------
# Warehouse persons -> true persons


def _majority(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per warehouse person, the true person of most rows (ties: the smallest id)."""
    counts = pairs.groupby(["person_id", "true_person_id"], as_index=False).size()
    counts = counts.sort_values(
        ["person_id", "size", "true_person_id"], ascending=[True, False, True]
    )
    totals = counts.groupby("person_id")["size"].sum()
    best = counts.drop_duplicates("person_id").set_index("person_id")
    best["agreement"] = (best["size"] / totals).round(4)
    return best[["true_person_id", "agreement"]].reset_index()


def person_map(tables: Tables, truth_dir: Path) -> pd.DataFrame:
    """Map every warehouse buyer to a true person through their orders' keys.

    Columns: person_id (warehouse), true_person_id (None when no order matched),
    agreement (share of the person's matched orders that belong to that true person).
    """
    orders = tables[ORDERS].select("person_id", "order_key").to_pyarrow().to_pandas()
    orders["ref"] = orders["order_key"].astype(str).str.rsplit(":", n=1).str[-1]
    truth = _read(truth_dir, "orders")[["order_ref", "person_id"]]
    truth = truth.rename(columns={"order_ref": "ref", "person_id": "true_person_id"})
    pairs = orders.merge(truth, on="ref")[["person_id", "true_person_id"]]
    everyone = pd.DataFrame({"person_id": np.sort(orders["person_id"].unique())})
    return everyone.merge(_majority(pairs), on="person_id", how="left")


def person_map_from_identifiers(identities: pd.DataFrame, truth_dir: Path) -> pd.DataFrame:
    """Map warehouse persons to true persons through identifiers (person_id, kind, value).

    Each person's strongest kind of identifier decides (`IDENTIFIER_PRIORITY`); an import
    row's key (`till:<store>:<receipt>`...) is the anonymous id the importer gave it; values
    the truth gives to several people (family e-mails) decide nothing.
    """
    missing = {"person_id", "kind", "value"} - set(identities.columns)
    if missing:
        raise InvalidError(
            f"The identities lack the column(s) {', '.join(sorted(missing))}.",
            errors=[{"field": c, "reason": "missing column"} for c in sorted(missing)],
        )
    truth = _read(truth_dir, "identifiers")
    # Import rows reach the store as the anonymous ids the importers give them.
    truth = truth.assign(kind=truth["kind"].replace({"import_row": "anonymous_id"}))
    truth = truth[truth["kind"].isin(IDENTIFIER_PRIORITY)].drop_duplicates(
        ["kind", "value", "person_id"]
    )
    shared = truth.duplicated(["kind", "value"], keep=False)
    truth = truth[~shared].rename(columns={"person_id": "true_person_id"})
    pairs = identities[["person_id", "kind", "value"]].astype({"value": str})
    pairs = pairs.merge(truth[["kind", "value", "true_person_id"]], on=["kind", "value"])
    pairs["rank"] = pairs["kind"].map({k: i for i, k in enumerate(IDENTIFIER_PRIORITY)})
    best = pairs.groupby("person_id")["rank"].transform("min")
    pairs = pairs[pairs["rank"] == best]
    everyone = pd.DataFrame({"person_id": np.sort(identities["person_id"].unique())})
    return everyone.merge(_majority(pairs), on="person_id", how="left")


# ---------------------------------------------------------------------------------
# Attribution


@dataclass(frozen=True)
class AttributionScore:
    """Attribution models against the true incremental effects.

    `channels`: one row per model and true channel: credited orders, revenue, new
    customers and the new customers' orders and revenue, beside the true incremental
    customers, orders and revenue. `models`: one row per model and view (`orders`,
    `customers`): weighted absolute error of orders and revenue (sum of |credit - truth|
    over the sum of truth), mean absolute error of the revenue share (shares among the true
    channels), Spearman correlation and mean absolute difference of the channels' ranks by
    revenue; and for the customers view the weighted absolute error of new customers.
    """

    channels: pd.DataFrame
    models: pd.DataFrame
    scope: Scope
    lookback_days: int | None


def _truth_channels(truth_dir: Path) -> pd.DataFrame:
    effects = _read(truth_dir, "channel_effects")
    return effects[
        [
            "channel",
            "media_class",
            "true_incremental_customers",
            "true_incremental_orders",
            "true_incremental_revenue_eur",
        ]
    ]


def _credited_channels(credits: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    columns = {
        "orders": "credited_orders",
        "revenue_eur": "credited_revenue_eur",
        "new_customers": "credited_new_customers",
        "customer_orders": "credited_customer_orders",
        "customer_revenue_eur": "credited_customer_revenue_eur",
    }
    credited = credits[["model", "channel", *columns]].rename(columns=columns)
    grid = pd.MultiIndex.from_product(
        [credits["model"].unique(), truth["channel"]], names=["model", "channel"]
    ).to_frame(index=False)
    frame = grid.merge(credited, on=["model", "channel"], how="left").fillna(
        dict.fromkeys(columns.values(), 0.0)
    )
    return frame.merge(truth, on="channel")


def _wape(credited: np.ndarray, true: np.ndarray) -> float:
    total = float(np.abs(true).sum())
    return round(float(np.abs(credited - true).sum()) / total, 4) if total else float("nan")


def _ranks(credited: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    if len(true) < 2 or np.std(credited) == 0 or np.std(true) == 0:
        return float("nan"), float("nan")
    rho = float(stats.spearmanr(credited, true)[0])
    gap = np.abs(stats.rankdata(-credited) - stats.rankdata(-true)).mean()
    return round(rho, 4), round(float(gap), 4)


def _shares(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


def _view_errors(rows: pd.DataFrame, view: str) -> dict[str, float | str]:
    prefix = "credited_" if view == ORDERS_VIEW else "credited_customer_"
    orders = rows[f"{prefix}orders"].to_numpy(dtype="float64")
    revenue = rows[f"{prefix}revenue_eur"].to_numpy(dtype="float64")
    true_orders = rows["true_incremental_orders"].to_numpy(dtype="float64")
    true_revenue = rows["true_incremental_revenue_eur"].to_numpy(dtype="float64")
    rho, gap = _ranks(revenue, true_revenue)
    share_error = np.abs(_shares(revenue) - _shares(true_revenue)).mean()
    errors: dict[str, float | str] = {
        "view": view,
        "wape_orders": _wape(orders, true_orders),
        "wape_revenue": _wape(revenue, true_revenue),
        "mae_revenue_share": round(float(share_error), 4),
        "spearman_revenue": rho,
        "mean_rank_error": gap,
        "wape_customers": float("nan"),
    }
    if view == CUSTOMERS_VIEW:
        errors["wape_customers"] = _wape(
            rows["credited_new_customers"].to_numpy(dtype="float64"),
            rows["true_incremental_customers"].to_numpy(dtype="float64"),
        )
    return errors


def score_attribution(
    tables: Tables,
    truth_dir: Path,
    scope: Scope | None = None,
    *,
    lookback_days: int | None = attribution.DEFAULT_LOOKBACK_DAYS,
    models: Collection[str] | None = None,
    coupon_channels: Mapping[str, str] | None = None,
) -> AttributionScore:
    """Score every attribution model (or `models`) on the demo's loaded period (or `scope`)."""
    scope = scope or truth_periods(truth_dir).loaded
    truth = _truth_channels(truth_dir)
    credits = attribution.compare_models(
        tables, scope, models=models, lookback_days=lookback_days,
        coupon_channels=coupon_channels,
    )  # fmt: skip
    channels = _credited_channels(credits, truth)
    rows = []
    for model, group in channels.groupby("model", sort=False):
        for view in (ORDERS_VIEW, CUSTOMERS_VIEW):
            rows.append({"model": model, **_view_errors(group, view)})
    return AttributionScore(
        channels=channels.round(3),
        models=pd.DataFrame(rows),
        scope=scope,
        lookback_days=lookback_days,
    )


# ---------------------------------------------------------------------------------
# Customer value


@dataclass(frozen=True)
class ClvScore:
    """Customer-value models against what the demo's customers bought in the holdout.

    `models`: one row per model: the accuracy of `value_data.forecast_accuracy` over the
    true customers (predictions of the warehouse persons matched to each added up; a true
    customer nobody matched is predicted 0), the predictions of unmatched warehouse persons,
    and the AUC of the probability alive for being alive at the holdout's start.
    `customers`: one row per model and true customer. `persons`: how warehouse buyers
    matched (see `person_map`).
    """

    models: pd.DataFrame
    customers: pd.DataFrame
    persons: pd.DataFrame
    holdout_days: int


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney), ties counted half."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(score)
    return round(float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)), 4)


def _by_true_person(
    predicted: pd.DataFrame, persons: pd.DataFrame, holdout: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add predictions up per true person; return (per true customer, unmatched rows)."""
    joined = predicted.merge(persons[["person_id", "true_person_id"]], on="person_id", how="left")
    unmatched = joined[joined["true_person_id"].isna()]
    grouped = joined.dropna(subset=["true_person_id"]).groupby("true_person_id")
    sums = grouped.agg(
        predicted_purchases=("expected_purchases", "sum"),
        predicted_value_eur=("predicted_value_eur", "sum"),
        p_alive=("p_alive", "max"),
        warehouse_persons=("person_id", "count"),
    )
    frame = holdout.set_index("person_id").join(sums, how="left")
    frame = frame.rename(columns={"purchases": "actual_purchases", "spend_eur": "actual_value_eur"})
    frame = frame.fillna({"predicted_purchases": 0.0, "predicted_value_eur": 0.0})
    frame["warehouse_persons"] = frame["warehouse_persons"].fillna(0).astype("int64")
    return frame.rename_axis("true_person_id").reset_index(), unmatched


def _clv_row(model: str, frame: pd.DataFrame, unmatched: pd.DataFrame) -> dict[str, object]:
    accuracy = {str(k): v for k, v in value_data.forecast_accuracy(frame).iloc[0].items()}
    seen = frame["p_alive"].notna().to_numpy()
    alive = frame["alive_at_start"].to_numpy(dtype=bool)
    return {
        "model": model,
        **accuracy,
        "unmatched_persons": len(unmatched),
        "unmatched_predicted_purchases": round(float(unmatched["expected_purchases"].sum()), 2),
        "unmatched_predicted_value_eur": round(float(unmatched["predicted_value_eur"].sum()), 2),
        "auc_p_alive": _auc(frame["p_alive"].to_numpy()[seen], alive[seen]),
    }


def score_clv(
    tables: Tables,
    truth_dir: Path,
    scope: Scope | None = None,
    *,
    models: Collection[str] = value_data.MODELS,
    persons: pd.DataFrame | None = None,
    holdout_days: int | None = None,
) -> ClvScore:
    """Fit each model on the demo's loaded period (or `scope`) and score its holdout forecast.

    Args:
        persons: warehouse person -> true person (`person_map` by default).
        holdout_days: the forecast horizon (the truth's holdout length by default).
    """
    periods = truth_periods(truth_dir)
    scope = scope or periods.loaded
    horizon = holdout_days or periods.holdout_days
    persons = persons if persons is not None else person_map(tables, truth_dir)
    holdout = _read(truth_dir, "holdout")
    rows, customers = [], []
    for model in models:
        value = value_data.clv(tables, scope, horizon_days=horizon, model=model, acquisition=False)
        frame, unmatched = _by_true_person(value.customers, persons, holdout)
        rows.append(_clv_row(model, frame, unmatched))
        customers.append(frame.assign(model=model))
    return ClvScore(
        models=pd.DataFrame(rows),
        customers=pd.concat(customers, ignore_index=True),
        persons=persons,
        holdout_days=horizon,
    )
