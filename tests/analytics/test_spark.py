"""Every KPI report gives the same answer on PySpark as on DuckDB, on the same warehouse.

One local Spark session for the module (it takes seconds to start); the warehouse is a
year of a synthetic retailer (bench.warehouse_data) loaded into both engines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import ibis
import pandas as pd
import pytest
from bench.warehouse_data import generate

from omnicanal.analytics import kpis, segments
from omnicanal.analytics.scope import Scope, Tables
from tests.analytics.spark import ON_SPARK
from tests.analytics.warehouse import load

pytestmark = ON_SPARK

MONTH = Scope(date(2025, 6, 1), date(2025, 7, 1))


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return generate(20_000, 1_500, seed=5)


@pytest.fixture(scope="module")
def engines(data, spark) -> tuple[Tables, Tables]:
    return load(ibis.duckdb.connect(), data), load(spark, data)


def _suite() -> dict[str, Callable[[Tables], Any]]:
    """Every report, with the filters and options that take other paths."""
    omni = lambda t: replace(MONTH, persons=segments.segment(t, MONTH, "omnichannel"))  # noqa: E731
    suite: dict[str, Callable[[Tables], Any]] = {
        "overview": lambda t: kpis.overview(t, MONTH),
        "overview, year, margin": lambda t: kpis.overview(t, MONTH, compare="year", margin=0.4),
        # the channel and media-class filters of orders (through their visits)
        "timeseries, ads, paid": lambda t: kpis.timeseries(
            t,
            replace(MONTH, channels=("ads",), media_classes=("paid",)),
            metrics=("revenue", "orders", "new_customers", "visits", "marketing_cost"),
            grain="week",
        ),
        "overview, segment, store": lambda t: kpis.overview(
            t, replace(omni(t), stores=("paris-01", "lyon-01"))
        ),
        "breakdown by channel": lambda t: kpis.breakdown(t, MONTH, compare="previous"),
        "timeseries by week": lambda t: kpis.timeseries(
            t, MONTH, metrics=kpis.SERIES, grain="week"
        ),
        "engagement": lambda t: kpis.engagement(t, MONTH, compare="previous"),
        "social": lambda t: kpis.social_engagement(t, MONTH),
        "satisfaction": lambda t: kpis.satisfaction(t, MONTH),
        "omnichannel": lambda t: kpis.omnichannel(t, MONTH, retention_days=30),
        "click and collect": lambda t: kpis.click_and_collect(t, MONTH),
        "ropo": lambda t: kpis.ropo(t, MONTH),
    }
    for by in ("channel_kind", "media_class", "store", "fulfilment"):
        suite[f"breakdown by {by}"] = lambda t, by=by: kpis.breakdown(t, MONTH, by=by)
    for name in segments.NAMES:
        suite[f"segment {name}"] = lambda t, name=name: sorted(
            segments.segment(t, MONTH, name).to_pyarrow()["person_id"].to_pylist()
        )
    return suite


def assert_same(ours: Any, theirs: Any, where: str) -> None:
    """Exact on integers, strings, dates and None; 1e-9 relative on floats."""
    if isinstance(ours, pd.DataFrame):
        assert list(ours.columns) == list(theirs.columns), where
        assert len(ours) == len(theirs), where
        for column in ours.columns:
            for i, (a, b) in enumerate(zip(ours[column], theirs[column], strict=True)):
                assert_same(a, b, f"{where}: {column}[{i}]")
    elif isinstance(ours, list):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(ours, kpis.Kpi):
        for field in ("name", "unit", "value", "previous", "change"):
            assert_same(getattr(ours, field), getattr(theirs, field), f"{where}.{field}")
    elif isinstance(ours, float) and not isinstance(theirs, (int, type(None))):
        assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=0), (where, ours, theirs)
    else:
        assert ours == theirs, (where, ours, theirs)
        assert type(ours) is type(theirs), (where, type(ours), type(theirs))


def test_every_report_is_the_same_on_spark_and_duckdb(engines) -> None:
    duck, spark = engines
    checked = 0
    for name, report in _suite().items():
        ours, theirs = report(duck), report(spark)
        assert_same(ours, theirs, name)
        checked += len(ours)
    assert checked > 300  # the reports are not empty
