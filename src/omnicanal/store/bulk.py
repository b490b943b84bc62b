"""Writing many rows at once inside the caller's transaction.

On PostgreSQL rows are streamed with COPY, which psycopg runs in C: for the processor's
batches of a few thousand rows it takes about a quarter of the time of an executemany
INSERT (measured with `python -m bench.process`). SQLite, in process, has no round trips to
save: an executemany INSERT is its fastest way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection


def insert_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert `rows` (values in the order of `columns`) into `table`."""
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(columns))
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(rows))


def read_rows(conn: Connection, statement: str) -> list[tuple[Any, ...]]:
    """Return every row of a parameterless query, as the driver gives them.

    For reads of a million rows or more: SQLAlchemy's per-row processing costs more
    than the query itself there. Runs inside the caller's transaction.
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement)
        return list(cursor.fetchall())
    finally:
        cursor.close()
