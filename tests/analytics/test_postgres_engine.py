"""The KPI reports give the same answers on PostgreSQL as on DuckDB, on the same warehouse.

The warehouse tables can live in PostgreSQL (a retailer that keeps everything in its
database server); Ibis then runs the same expressions there.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import ibis
import pandas as pd
import pytest
from bench.warehouse_data import generate
from sqlalchemy import create_engine, make_url, text

from omnicanal.analytics.scope import Tables
from tests.analytics.test_spark import _suite, assert_same
from tests.analytics.warehouse import load

_names = itertools.count()


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return generate(8_000, 600, seed=5)


@pytest.fixture(scope="module")
def postgres(postgres_server: str) -> Iterator[Any]:
    """An Ibis connection to a fresh PostgreSQL database."""
    name = f"wh_{os.getpid()}_{next(_names)}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(postgres_server)
    con = ibis.postgres.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database=name
    )
    yield con
    con.disconnect()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="module")
def engines(data: dict[str, pd.DataFrame], postgres: Any) -> tuple[Tables, Tables]:
    return load(ibis.duckdb.connect(), data), load(postgres, data)


def test_every_kpi_report_is_the_same_on_postgresql_and_duckdb(
    engines: tuple[Tables, Tables],
) -> None:
    duck, pg = engines
    checked = 0
    for name, report in _suite().items():
        ours, theirs = report(duck), report(pg)
        assert_same(ours, theirs, name)
        checked += len(ours)
    assert checked > 100  # the reports are not empty
