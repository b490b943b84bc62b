"""One way to start a local Spark session for the engine-equality tests (see DESIGN.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def local_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local Spark session in UTC with its own warehouse folder, stopped at the end."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    pyspark_sql = pytest.importorskip("pyspark.sql")
    folder = tmp_path_factory.mktemp("spark")
    session = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("omnicanal-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")  # tiny tables: no 200-way shuffles
        .config("spark.sql.warehouse.dir", str(folder / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Djava.io.tmpdir={folder}")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
