"""Fixtures of the analytics tests: a local Spark session, one per test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ibis
import pytest

from tests.analytics.spark import local_session


@pytest.fixture(scope="module")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local Spark session (started only by the tests that ask for it)."""
    with local_session(tmp_path_factory) as session:
        yield session


@pytest.fixture(scope="module")
def spark(spark_session: Any) -> Any:
    """The Spark session as an Ibis backend."""
    return ibis.pyspark.connect(spark_session)
