"""Scoring the analytics against the demo's ground truth: hand-made truths, a generated world."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from omnicanal.analytics import value_data
from omnicanal.core.errors import InvalidError
from omnicanal.demo import scoring
from omnicanal.demo.retailer import generate
from omnicanal.warehouse.schema import ORDERS
from tests.analytics.test_attribution_data import JANUARY, build_tables, january

PARIS = "Europe/Paris"
README = (
    "Maison Lumière, seed 0. Loaded period: 2026-01-01 to the day before 2026-02-01 (Paris "
    "time);\nholdout period, simulated but never loaded: 2026-02-01 to the day before "
    "2026-03-01.\n"
)


def write_truth(folder: Path, **frames: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet")
    return folder


def true_order(ref: str, person: str, at: str, period: str = "loaded") -> dict[str, object]:
    return {
        "order_ref": ref,
        "person_id": person,
        "at": pd.Timestamp(at, tz=PARIS),
        "period": period,
    }


@pytest.fixture
def truth(tmp_path) -> Path:
    """The truth of `january()`: two channels' effects, its orders, one holdout."""
    effects = pd.DataFrame(
        {
            "channel": ["ads:google", "press:elle"],
            "media_class": ["paid", "earned"],
            "spend_eur": [500.0, 900.0],
            "true_incremental_customers": [1, 1],
            "true_incremental_orders": [1, 1],
            "true_incremental_revenue_eur": [100.0, 50.0],
        }
    )
    orders = pd.DataFrame(
        [
            true_order("ML1", "P00000001", "2026-01-10 10:05"),
            true_order("R2", "P00000009", "2026-01-20 16:00"),  # not the same true person
            true_order("R3", "P00000002", "2026-01-15 12:00"),
            true_order("ML77", "P00000001", "2026-02-10 12:00", "holdout"),
        ]
    )
    folder = write_truth(tmp_path / "ground-truth", channel_effects=effects, orders=orders)
    (folder / "README.md").write_text(README, encoding="utf-8")
    return folder


def test_truth_periods_from_the_readme_or_the_orders(truth) -> None:
    periods = scoring.truth_periods(truth)
    assert (periods.loaded.start, periods.loaded.end) == (date(2026, 1, 1), date(2026, 2, 1))
    assert periods.holdout_end == date(2026, 3, 1)
    assert periods.holdout_days == 28
    (truth / "README.md").unlink()
    periods = scoring.truth_periods(truth)
    assert (periods.loaded.start, periods.loaded.end) == (date(2026, 1, 10), date(2026, 1, 21))
    assert periods.holdout_end == date(2026, 2, 11)
    with pytest.raises(InvalidError, match=r"holdout\.parquet"):
        scoring.score_clv(january().tables(), truth)


def test_person_map_through_order_keys(truth) -> None:
    persons = scoring.person_map(january().tables(), truth).set_index("person_id")
    # Person 1's web order and Paris receipt belong to two true persons: a tie, the first wins.
    assert persons.loc[1, "true_person_id"] == "P00000001"
    assert persons.loc[1, "agreement"] == 0.5
    assert persons.loc[2, "true_person_id"] == "P00000002"  # "lyon-01:R3" is receipt R3
    assert persons.loc[2, "agreement"] == 1
    assert pd.isna(persons.loc[4, "true_person_id"])  # ML4 is unknown to the truth
    assert sorted(persons.index) == [1, 2, 4]


def test_person_map_through_identifiers(tmp_path) -> None:
    identifiers = pd.DataFrame(
        {
            "kind": ["user_id", "email", "email", "email", "email", "import_row"],
            "value": [
                "U1",
                "u1@mail.fr",
                "famille@mail.fr",
                "famille@mail.fr",
                "solo@mail.fr",
                "till:paris-01:0042",
            ],
            "person_id": ["P1", "P1", "P2", "P3", "P4", "P5"],
            "kind_file": ["api", "api", "api", "api", "api", "till"],
            "exact": [True] * 6,
        }
    )
    folder = write_truth(tmp_path, identifiers=identifiers)
    identities = pd.DataFrame(
        {
            "person_id": [10, 10, 11, 12, 13, 14],
            "kind": ["email", "user_id", "email", "email", "phone", "anonymous_id"],
            "value": [
                "solo@mail.fr",
                "U1",
                "famille@mail.fr",
                "solo@mail.fr",
                "+33600000000",
                "till:paris-01:0042",
            ],
        }
    )
    persons = scoring.person_map_from_identifiers(identities, folder).set_index("person_id")
    assert persons.loc[10, "true_person_id"] == "P1"  # the user id outranks the e-mail
    assert pd.isna(persons.loc[11, "true_person_id"])  # a family e-mail says nothing
    assert persons.loc[12, "true_person_id"] == "P4"
    assert pd.isna(persons.loc[13, "true_person_id"])
    assert persons.loc[14, "true_person_id"] == "P5"  # a till receipt, by its importer's key
    with pytest.raises(InvalidError, match="value"):
        scoring.person_map_from_identifiers(identities.drop(columns="value"), folder)


def test_score_attribution_by_hand(truth) -> None:
    score = scoring.score_attribution(
        january().tables(), truth, JANUARY, models=["first_touch", "last_touch"]
    )
    channels = score.channels.set_index(["model", "channel"])
    google = channels.loc[("first_touch", "ads:google")]
    assert (google["credited_orders"], google["credited_revenue_eur"]) == (1, 100)
    # Person 1, won by Google, went on to buy in the store: 2 orders, 160 euros.
    assert (google["credited_customer_orders"], google["credited_customer_revenue_eur"]) == (2, 160)
    assert channels.loc[("last_touch", "ads:google"), "credited_orders"] == 0
    assert channels.loc[("first_touch", "press:elle"), "credited_orders"] == 0  # no touch
    models = score.models.set_index(["model", "view"])
    first = models.loc[("first_touch", "orders")]
    assert first["wape_orders"] == 0.5
    assert first["wape_revenue"] == pytest.approx(50 / 150, abs=1e-4)
    assert first["mae_revenue_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert first["spearman_revenue"] == 1
    assert first["mean_rank_error"] == 0
    customers = models.loc[("first_touch", "customers")]
    assert customers["wape_orders"] == 1
    assert customers["wape_revenue"] == pytest.approx(110 / 150, abs=1e-4)
    assert customers["wape_customers"] == 0.5
    assert np.isnan(models.loc[("last_touch", "orders"), "spearman_revenue"])


def test_score_attribution_with_a_coupon_for_the_press(truth) -> None:
    score = scoring.score_attribution(
        january().tables(), truth, JANUARY, models=["last_touch"],
        coupon_channels={"ELLE10": "press:elle"},
    )  # fmt: skip
    press = score.channels.set_index("channel").loc["press:elle"]
    assert (press["credited_orders"], press["credited_revenue_eur"]) == (1, 40)


# ---------------------------------------------------------------------------------
# A generated world, its warehouse orders written from the true orders


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate(customers=1500, months=12, seed=5, holdout_months=4, out=out, end=date(2026, 6, 1))
    return out / "ground-truth"


def warehouse_orders(truth: Path, *, split: str, unknown: int) -> dict[str, ir.Table]:
    """Warehouse tables holding the loaded orders; `split`'s store orders under another
    person (a merge the identity graph missed), and one order the truth does not know."""
    orders = pd.read_parquet(truth / "orders.parquet")
    orders = orders[orders["period"] == "loaded"].reset_index(drop=True)
    at = pd.to_datetime(orders["at"])
    person = orders["person_id"].str[1:].astype("int64")
    person = person.where(~((orders["person_id"] == split) & (orders["channel"] == "store")), 10**9)
    store = orders["store"].where(orders["channel"] == "store")
    rows = [
        {
            "order_id": i + 1,
            "profile_id": int(person[i]),
            "person_id": int(person[i]),
            "order_key": f"{store[i]}:{ref}" if isinstance(store[i], str) else ref,
            "ts": at[i].tz_convert("UTC").tz_localize(None).to_pydatetime(),
            "day": at[i].date(),
            "channel": f"store:{store[i]}" if isinstance(store[i], str) else orders["channel"][i],
            "total_cents": round((orders["revenue_eur"][i] + orders["shipping_eur"][i]) * 100),
            "shipping_cents": round(orders["shipping_eur"][i] * 100),
            "refunded_cents": round(orders["refunded_eur"][i] * 100),
        }
        for i, ref in enumerate(orders["order_ref"])
    ]
    stranger = {**rows[0], "order_id": len(rows) + 1, "order_key": "XX1"}
    rows.append({**stranger, "profile_id": unknown, "person_id": unknown})
    return build_tables({ORDERS: rows})


# A warehouse person whose order the demo never made: no person of the world has this id.
UNKNOWN = 10**9 + 7


def test_score_clv_on_a_generated_world(world) -> None:
    orders = pd.read_parquet(world / "orders.parquet")
    loaded = orders[orders["period"] == "loaded"]
    both = loaded.groupby("person_id")["channel"].agg(lambda c: {"store", "web"} <= set(c))
    split = sorted(both[both].index)[0]  # bought in a store and on the e-shop
    tables = warehouse_orders(world, split=split, unknown=UNKNOWN)
    score = scoring.score_clv(tables, world)
    assert score.holdout_days == (date(2026, 10, 1) - date(2026, 6, 1)).days
    assert list(score.models["model"]) == list(value_data.MODELS)
    holdout = pd.read_parquet(world / "holdout.parquet")
    for row in score.models.itertuples():
        assert row.customers == len(holdout)
        assert row.actual_purchases == holdout["purchases"].sum()
        assert row.unmatched_persons == 1  # a warehouse person no true order explains
        assert row.unmatched_predicted_purchases > 0
        assert 0.5 < row.ratio_purchases < 2
        assert row.spearman_purchases > 0.2
    persons = score.persons.set_index("person_id")
    assert persons.loc[10**9, "true_person_id"] == split
    customers = score.customers[score.customers["model"] == "bgnbd"].set_index("true_person_id")
    assert customers.loc[split, "warehouse_persons"] == 2
    models = score.models.set_index("model")
    seen = customers[customers["p_alive"].notna()]
    auc = roc_auc_score(seen["alive_at_start"], seen["p_alive"])
    assert models.loc["bgnbd", "auc_p_alive"] == pytest.approx(auc, abs=1e-4)
    assert models.loc["nbd", "auc_p_alive"] == 0.5  # everyone alive: no better than chance
