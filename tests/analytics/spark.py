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


#: The marks of an engine-equality test on Spark: selectable with `-m spark`; PySpark 4.0
#: converts results with an argument pandas 3 deprecates, and py4j leaves its sockets to
#: the garbage collector.
ON_SPARK = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def on_spark(test: Any) -> Any:
    """Give a test the marks of `ON_SPARK`."""
    for mark in reversed(ON_SPARK):
        test = mark(test)
    return test
