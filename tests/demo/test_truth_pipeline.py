"""The measurement reports against the demo retailer's ground truth, through the whole pipeline.

A small world is generated; its messages go into the event log (as collection writes them)
and its files through the importers; the processor resolves identities, probabilistic
matching joins the offline records, and the warehouse syncs. The analytics then read the
warehouse as `omnicanal report` does and are scored against the generator's truth, as
`python -m bench.measure_demo` scores the full demo: orders and revenue must arrive whole,
attribution credits every order once and is compared with the true channel effects, and the
customer-value models are compared with what the customers bought in the holdout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omnicanal.analytics import attribution, attribution_data, reports
from omnicanal.analytics.scope import Tables
from omnicanal.core.settings import Settings
from omnicanal.demo import scoring
from omnicanal.demo.retailer import FILE_KINDS, Dataset, generate
from omnicanal.identity import linkage
from omnicanal.profiles.processor import Processor
from omnicanal.store.engine import Database, make_engine
from omnicanal.store.migrate import upgrade
from omnicanal.warehouse.connect import Warehouse
from omnicanal.warehouse.sync import sync
from tests.profiles.logs import write_world

WORLD = {"customers": 800, "months": 12, "seed": 31, "holdout_months": 4}
END = date(2026, 9, 1)


@dataclass(frozen=True)
class Loaded:
    world: Dataset
    warehouse: Warehouse

    @property
    def truth(self) -> Path:
        return self.world.truth


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    folder = tmp_path_factory.mktemp("truth")
    world = generate(**WORLD, end=END, out=folder / "world")
    url = f"sqlite:///{folder / 'omnicanal.db'}"
    settings = Settings(
        data_dir=folder / "data",
        database_url=url,
        processor={"enabled": False},
        warehouse={"sync_enabled": False},
    )
    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    try:
        write_world(db, world, FILE_KINDS)
        Processor(db).drain()
        with db.engine.begin() as conn:
            linkage.run(conn, settings.identity)
        sync(db, settings)
        yield Loaded(world, Warehouse.from_settings(settings))
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def tables(loaded: Loaded) -> Iterator[Tables]:
    with loaded.warehouse.reader() as found:
        yield found


def true_orders(truth: Path) -> pd.DataFrame:
    orders = pd.read_parquet(truth / "orders.parquet")
    return orders[orders["period"] == "loaded"]


def test_every_true_order_reaches_the_warehouse_once(loaded: Loaded, tables: Tables) -> None:
    truth = true_orders(loaded.truth)
    orders = tables["orders"].to_pyarrow().to_pandas()
    assert len(orders) == len(truth)
    shipping = orders["shipping_cents"].fillna(0)
    revenue = (orders["total_cents"] - shipping).sum() / 100
    assert revenue == pytest.approx(truth["revenue_eur"].sum(), abs=0.01 * len(truth))
    by_channel = orders["channel"].str.split(":").str[0].value_counts().sort_index()
    expected = truth["channel"].value_counts().sort_index()
    assert by_channel.to_dict() == expected.to_dict()


def test_buyers_are_the_true_people(loaded: Loaded, tables: Tables) -> None:
    persons = scoring.person_map(tables, loaded.truth)
    matched = persons["true_person_id"].notna().mean()
    assert matched == 1.0  # every warehouse buyer's orders are a true person's orders
    # Identity resolution: how many warehouse persons each true buyer was split into.
    # Measured (seed 31): 82.1% of the true buyers are one warehouse person; the others
    # have till receipts no rule or match could join (178 of the 188 orders left apart are
    # store orders: cash receipts carrying no card, or a name too common to merge on).
    splits = persons.groupby("true_person_id")["person_id"].nunique()
    assert (splits == 1).mean() > 0.8
    orders = tables["orders"].to_pyarrow().to_pandas()
    sizes = orders.groupby("person_id").size().rename("orders")
    ranked = persons.merge(sizes, left_on="person_id", right_index=True)
    ranked = ranked.sort_values(["orders", "person_id"], ascending=[False, True])
    apart = ranked[ranked.duplicated("true_person_id")]  # all but each person's main one
    left = orders[orders["person_id"].isin(apart["person_id"])]
    assert left["channel"].str.startswith("store:").mean() > 0.9


def test_attribution_credits_each_order_once_and_is_scored_per_model(
    loaded: Loaded, tables: Tables
) -> None:
    periods = scoring.truth_periods(loaded.truth)
    score = scoring.score_attribution(tables, loaded.truth)
    credits = attribution_data.compare_models(tables, periods.loaded)
    orders = tables["orders"].to_pyarrow().to_pandas()
    in_period = orders["day"].between(periods.loaded.start, periods.loaded.end, inclusive="left")
    for model, credited in credits.groupby("model"):
        assert credited["orders"].sum() == pytest.approx(in_period.sum(), abs=0.01), model
    models = score.models.set_index(["model", "view"])
    assert set(models.index.get_level_values("model")) == set(attribution.MODELS)
    errors = models["wape_revenue"]
    assert errors.notna().all()
    assert (errors > 0).all()
    # Journeys see correlation, the truth is causal: no model recovers the true effects
    # (measured, seed 31: revenue errors 0.74 to 0.81, press never credited since it leaves
    # no touch), but crediting channels must beat crediting nothing (an error of exactly 1).
    assert (errors < 1).all(), errors.to_dict()
    # The channels with the largest true revenue also get more credit (Spearman 0.25 to 0.55).
    orders_view = models.xs("orders", level="view")
    assert (orders_view["spearman_revenue"] > 0).all(), orders_view["spearman_revenue"].to_dict()


def test_the_attribution_report_matches_the_scored_credit(loaded: Loaded, tables: Tables) -> None:
    periods = scoring.truth_periods(loaded.truth)
    last = periods.loaded.end.toordinal() - 1
    params = reports.spec("attribution").params.model_validate(
        {"from": periods.loaded.start.isoformat(), "to": date.fromordinal(last).isoformat()}
    )
    answer = reports.run("attribution", tables, params)
    rows = pd.DataFrame(answer["rows"], columns=[c["name"] for c in answer["columns"]])
    scored = scoring.score_attribution(tables, loaded.truth).channels
    linear = rows[rows["model"] == "linear"].set_index("channel")
    for row in scored[scored["model"] == "linear"].itertuples():
        reported = linear["orders"].get(row.channel, 0.0)
        assert reported == pytest.approx(row.credited_orders, abs=0.01), row.channel


def test_customer_value_forecasts_the_holdout(loaded: Loaded, tables: Tables) -> None:
    score = scoring.score_clv(tables, loaded.truth)
    holdout = pd.read_parquet(loaded.truth / "holdout.parquet")
    models = score.models.set_index("model")
    assert (models["actual_purchases"] == holdout["purchases"].sum()).all()
    bgnbd = models.loc["bgnbd"]
    assert 0.6 < bgnbd["ratio_purchases"] < 1.5, bgnbd.to_dict()
    assert bgnbd["spearman_purchases"] > 0.3
    # Measured (seed 31): BG/NBD predicts 435 holdout purchases for 484 (NBD 489), Spearman
    # 0.36 (0.35). Its probability alive hardly tells who will buy again in this world
    # (AUC 0.50; 0.53 on the full demo); NBD assumes everyone alive, exactly 0.5.
    assert bgnbd["auc_p_alive"] >= 0.5
    assert models.loc["nbd", "auc_p_alive"] == 0.5
    assert np.isfinite(models["mae_purchases"]).all()
