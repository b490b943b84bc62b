"""Opening the warehouse file for one unit of work: a sync, a report, a status.

DuckDB lets one process open a file for writing, or any number of processes open it
read-only, never both. So nobody keeps the file open between units of work (`serve`
neither): a sync, a report or `omnicanal warehouse status` in another process can get
in between. When the file is held elsewhere we wait and retry, up to `wait_seconds`,
saying who holds it, then fail with `WarehouseBusyError` naming that process.

Inside one process, units of work share one DuckDB instance of the file: each gets
its own connection to it (`cursor()`; connections are per thread), so report threads
read while the background sync writes, each seeing the last committed state. The
instance is opened read-only unless someone writes, and closed when its last user
leaves. A writer waits for a read-only instance to be released and is served before
readers that come after it. Writers take turns, within the process (a lock) and
between processes (an exclusive `flock` on `<file>.lock`, which also guards the swap
of a rebuilt file).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

import duckdb
import ibis
import ibis.expr.operations as ops

from omnicanal.warehouse import ddl
from omnicanal.warehouse.errors import WarehouseBusyError, WarehouseError, WarehouseOutdatedError
from omnicanal.warehouse.locking import REGISTRY, Wait, process_turn, thread_turn
from omnicanal.warehouse.schema import SCHEMAS

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

    from omnicanal.core.settings import Settings

log = logging.getLogger(__name__)

#: The warehouse tables by name (omnicanal.warehouse.schema), as Ibis tables.
Tables = Mapping[str, "ir.Table"]

WAIT_SECONDS: Final = 30.0

__all__ = [
    "WAIT_SECONDS",
    "Tables",
    "Warehouse",
    "WarehouseBusyError",
    "WarehouseError",
    "WarehouseOutdatedError",
]


def _log_wait(message: str) -> None:
    log.warning(message)


class Warehouse:
    """The warehouse file, opened for one unit of work at a time."""

    def __init__(
        self,
        path: Path,
        *,
        wait_seconds: float = WAIT_SECONDS,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path).absolute()
        self.wait_seconds = wait_seconds
        self.on_wait = on_wait or _log_wait

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        wait_seconds: float = WAIT_SECONDS,
        on_wait: Callable[[str], None] | None = None,
    ) -> Warehouse:
        """Return the warehouse of these settings (`Settings.resolved_warehouse_path`)."""
        return cls(settings.resolved_warehouse_path(), wait_seconds=wait_seconds, on_wait=on_wait)

    def _wait(self) -> Wait:
        return Wait(self.path, self.wait_seconds, self.on_wait)

    @contextmanager
    def turn(self) -> Iterator[Wait]:
        """Hold the writers' turn (this process and others) without opening the file."""
        wait = self._wait()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with thread_turn(wait), process_turn(wait):
            yield wait

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a connection that may write (the only writer anywhere); tables created."""
        with self.turn() as wait:
            instance, con = REGISTRY.connect(wait, write=True, prepare=create_tables)
            try:
                yield con
            finally:
                REGISTRY.release(self.path, instance, con, write=True)

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a reading connection: read-only unless this process is writing."""
        if not self.path.exists() and not REGISTRY.is_open(self.path):
            with self.writer():
                pass  # an empty warehouse: reports show nothing rather than fail
        instance, con = REGISTRY.connect(self._wait(), write=False)
        try:
            yield con
        finally:
            REGISTRY.release(self.path, instance, con, write=False)

    def replace_with(self, built: Path) -> None:
        """Swap a file built elsewhere (closed, checkpointed) in place of this one, atomically.

        Taken in the writers' turn: no sync has the old file open, so the only
        write-ahead log beside it is a crashed writer's, which belongs to the old file
        and must not be replayed into the new one. Readers already in keep reading the
        old file until they finish.
        """
        with self.turn():
            REGISTRY.retire(self.path)
            Path(f"{self.path}.wal").unlink(missing_ok=True)
            os.replace(built, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    @contextmanager
    def reader(self) -> Iterator[Tables]:
        """Yield the warehouse tables as Ibis tables, for one unit of reading."""
        with self.connection() as con:
            check_fingerprint(con, self.path)
            backend = ibis.duckdb.from_connection(con)
            yield {name: bound_table(backend, name) for name in SCHEMAS}


def bound_table(backend: BaseBackend, name: str) -> ir.Table:
    """Return a warehouse table on a backend, typed exactly as `SCHEMAS` declares it.

    The file's tables were created from `SCHEMAS` (the fingerprint says so), so they
    need no inspection; DuckDB would report timestamps as `timestamp(6)`.
    """
    return ops.DatabaseTable(
        name,
        schema=SCHEMAS[name],
        source=backend,
        namespace=ops.Namespace(catalog=None, database=None),
    ).to_expr()


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the warehouse tables and the sync's bookkeeping where missing."""
    con.execute("BEGIN")
    for name in SCHEMAS:
        con.execute(ddl.create_table(name))
    for statement in ddl.bookkeeping():
        con.execute(statement)
    con.execute(
        f"INSERT INTO {ddl.STATE} (schema_fingerprint) SELECT $fp "
        f"WHERE NOT EXISTS (SELECT 1 FROM {ddl.STATE})",
        {"fp": ddl.fingerprint()},
    )
    con.execute("COMMIT")


def check_fingerprint(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Raise WarehouseOutdatedError when the file was built for other tables."""
    found = con.execute(f"SELECT schema_fingerprint FROM {ddl.STATE}").fetchone()
    if found is None or found[0] != ddl.fingerprint():
        raise WarehouseOutdatedError(
            f"the warehouse {path} was built for another version of its tables; "
            "run `omnicanal warehouse sync --full` to rebuild it"
        )
