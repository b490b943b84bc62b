"""Build warehouse tables on any Ibis backend from rows or frames, checked against SCHEMAS.

    tables = load(ibis.duckdb.connect(), {"orders": [{"order_id": 1, ...}], ...})

Every table of `omnicanal.warehouse.schema.SCHEMAS` is created (empty when not given),
with exactly its columns and types; a row naming a column the schema lacks is refused,
and a column a row leaves out is null.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import ibis
import ibis.expr.schema as sch
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from ibis.backends import BaseBackend

from omnicanal.analytics.scope import Tables
from omnicanal.warehouse.schema import SCHEMAS

Rows = Iterable[Mapping[str, Any]]


def arrow(name: str, data: Rows | pd.DataFrame) -> pa.Table:
    """Return rows or a frame as an Arrow table with the schema of warehouse table `name`."""
    if name not in SCHEMAS:
        raise KeyError(f"{name!r} is not a warehouse table; use one of {sorted(SCHEMAS)}")
    schema = SCHEMAS[name].to_pyarrow()
    if isinstance(data, pd.DataFrame):
        extra = set(data.columns) - set(schema.names)
        if extra:
            raise ValueError(f"{name}: columns not in the schema: {sorted(extra)}")
        given = pa.Table.from_pandas(data, preserve_index=False)
        columns = [_column(given, f) for f in schema]
        return pa.table(columns, schema=schema)
    rows = list(data)
    for row in rows:
        extra = set(row) - set(schema.names)
        if extra:
            raise ValueError(f"{name}: columns not in the schema: {sorted(extra)}")
    return pa.Table.from_pylist([dict(r) for r in rows], schema=schema)


def _column(given: pa.Table, field: pa.Field) -> pa.ChunkedArray | pa.Array:
    if field.name not in given.column_names:
        return pa.nulls(given.num_rows, field.type)
    return given.column(field.name).cast(field.type)


def same_schema(got: sch.Schema, expected: sch.Schema) -> bool:
    """Say whether the columns, their order and types match (any timestamp precision)."""
    if list(got.names) != list(expected.names):
        return False
    return all(
        (a.is_timestamp() and b.is_timestamp()) or a.copy(nullable=True) == b.copy(nullable=True)
        for a, b in zip(got.types, expected.types, strict=True)
    )


def load(con: BaseBackend, data: Mapping[str, Rows | pd.DataFrame]) -> Tables:
    """Create every warehouse table on `con` from `data` (rows or frames by table name)."""
    unknown = set(data) - set(SCHEMAS)
    if unknown:
        raise KeyError(f"not warehouse tables: {sorted(unknown)}")
    tables = {}
    for name, schema in SCHEMAS.items():
        table = arrow(name, data.get(name, []))
        if con.name == "pyspark":
            tables[name] = _spark_table(con, name, table)
            continue
        with warnings.catch_warnings():
            # ibis 12 reads the new table's schema with a call DuckDB 2.0 deprecates
            warnings.filterwarnings("ignore", "fetch_arrow_table", DeprecationWarning)
            created = con.create_table(name, ibis.memtable(table), overwrite=True)  # type: ignore[attr-defined]
        if not same_schema(created.schema(), schema):
            raise AssertionError(f"{name}: created as {created.schema()}, not {schema}")
        tables[name] = created
    return tables


def _spark_table(con: BaseBackend, name: str, table: pa.Table) -> ir.Table:
    """Create a table on Spark from Arrow data.

    Spark reads the Arrow table itself: ibis 12's `create_table` from Arrow or a memtable
    nulls every value of an integer column that holds a null (through pandas).
    """
    session = con._session  # type: ignore[attr-defined]
    view = f"_load_{name}"
    session.createDataFrame(table).createOrReplaceTempView(view)
    created = con.create_table(name, obj=con.table(view), overwrite=True)  # type: ignore[attr-defined]
    session.catalog.dropTempView(view)
    if not same_schema(created.schema(), SCHEMAS[name]):
        raise AssertionError(f"{name}: created as {created.schema()}, not {SCHEMAS[name]}")
    return created
