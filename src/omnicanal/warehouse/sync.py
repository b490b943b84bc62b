"""Keeping the warehouse in step with the store, incrementally.

One sync reads the store in one snapshot (`source.py`) and writes the warehouse in
one DuckDB transaction (`load.py`) that also moves the watermarks (`state.py`): a
sync killed half-way leaves the warehouse as the previous sync left it, and the
next one does the whole work again.

What is read, in order:

1. tombstones past their watermark: erased profiles (and deleted rows) leave every
   table first, so that what the snapshot still holds is loaded afterwards;
2. profiles changed since the last sync started, minus the overlap window (a writer
   may stamp a row before a sync and commit it after), written where they differ;
   those whose person changed are remembered;
3. processed events past the event watermark, up to the processor's checkpoint, which
   commits with them: nothing below the checkpoint can appear later;
4. orders changed in the same window, with all their lines;
5. refunds, consents and survey answers derived from those same events (read by
   their event id, like the events; consents recorded without an event by their id);
6. any profile those rows name that the warehouse lacks;
7. `person_id` rewritten on every table for the profiles whose person changed;
8. costs, products, stock and sources, copied whole and replaced when they differ.

`sync(..., full=True)` builds a new file from scratch beside the old one and swaps it
in at the end; readers keep the old file meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb

from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database
from omnicanal.warehouse import ddl, source
from omnicanal.warehouse.connect import Warehouse, WarehouseBusyError, WarehouseError
from omnicanal.warehouse.load import Loader, Progress
from omnicanal.warehouse.schema import SCHEMAS
from omnicanal.warehouse.state import (
    SyncRecord,
    WarehouseStatus,
    history_size,
    last_sync,
    read_state,
    record,
    row_counts,
    save_state,
)
from omnicanal.warehouse.steps import CHECKPOINT, RebuildNeededError, Run, SyncResult, TableSync

__all__ = ["SyncResult", "TableSync", "WarehouseStatus", "run", "status", "sync"]

log = logging.getLogger(__name__)

_FORCE_EVERY: Final = 10  # the background loop syncs at least every this many intervals


def _quiet(_step: str, _done: int, _total: int | None) -> None:
    return None


def sync(
    database: Database,
    settings: Settings,
    *,
    full: bool = False,
    warehouse: Warehouse | None = None,
    progress: Progress | None = None,
    chunk_rows: int = source.CHUNK_ROWS,
) -> SyncResult:
    """Bring the warehouse up to date with the store; `full` rebuilds it from scratch.

    A file built for other tables, or a store whose processor restarted from an
    earlier checkpoint (a new or reprocessed store), is rebuilt the same way.
    """
    warehouse = warehouse or Warehouse.from_settings(settings)
    work = _Work(database, settings, progress or _quiet, chunk_rows)
    if not full:
        try:
            return work.into(warehouse, full=False)
        except RebuildNeededError as reason:
            log.warning("rebuilding the warehouse %s: %s", warehouse.path, reason)
    return work.rebuild(warehouse)


@dataclass
class _Work:
    database: Database
    settings: Settings
    progress: Progress
    chunk_rows: int

    def into(self, warehouse: Warehouse, *, full: bool) -> SyncResult:
        """Run one sync into a warehouse file, in one transaction."""
        store_error = self.database.engine.dialect.loaded_dbapi.Error
        try:
            return self._into(warehouse, full=full)
        except duckdb.Error as exc:
            raise WarehouseError(f"the sync into {warehouse.path} failed: {exc}") from exc
        except store_error as exc:
            raise WarehouseError(f"the sync could not read the store: {exc}") from exc

    def _into(self, warehouse: Warehouse, *, full: bool) -> SyncResult:
        clock = time.perf_counter()
        with warehouse.writer() as con:
            state = read_state(con)
            if state.fingerprint != ddl.fingerprint():
                raise RebuildNeededError("it was built for another version of its tables")
            started_ms = int(time.time() * 1000)  # before the snapshot: see the overlap
            with source.snapshot(self.database, chunk_rows=self.chunk_rows) as snap:
                con.execute("BEGIN")
                try:
                    run = Run(Loader(con, self.settings.timezone, self.progress), snap, state)
                    new_state = run.all(self.settings, started_ms)
                    rows = row_counts(con)
                    result = run.result(new_state, rows, started_ms, clock, full=full)
                    save_state(con, new_state)
                    record(con, _record(result))
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        return result

    def rebuild(self, warehouse: Warehouse) -> SyncResult:
        """Build a new file from scratch beside the current one, then swap it in."""
        built = warehouse.path.with_name(f"{warehouse.path.name}.rebuild-{os.getpid()}")
        _remove_leftovers(warehouse.path)
        fresh = Warehouse(built, wait_seconds=warehouse.wait_seconds, on_wait=warehouse.on_wait)
        try:
            result = self.into(fresh, full=True)
            warehouse.replace_with(built)
        finally:
            _remove_file(built)
        return result


def _record(result: SyncResult) -> SyncRecord:
    return SyncRecord(
        started=result.started,
        seconds=result.seconds,
        full=result.full,
        checkpoint=result.checkpoint,
        event_id=result.event_id,
        written=result.written,
        deleted=result.deleted,
        tables={t.table: {"written": t.written, "deleted": t.deleted} for t in result.tables},
    )


def _remove_file(path: Path) -> None:
    for leftover in (path, Path(f"{path}.wal"), Path(f"{path}.lock")):
        leftover.unlink(missing_ok=True)


def _remove_leftovers(target: Path) -> None:
    """Delete files of rebuilds whose process died before the swap."""
    for found in target.parent.glob(f"{target.name}.rebuild-*"):
        pid = found.name.rsplit("-", 1)[1].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            found.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(
    database: Database, settings: Settings, *, warehouse: Warehouse | None = None
) -> WarehouseStatus:
    """Return the warehouse's watermarks, size and last sync, and its lag behind the store."""
    warehouse = warehouse or Warehouse.from_settings(settings)
    with source.snapshot(database) as snap:
        checkpoint = int(snap.scalar(CHECKPOINT, {"name": source.PROCESSOR}) or 0)
    empty = WarehouseStatus(
        path=str(warehouse.path),
        exists=False,
        size_bytes=0,
        watermarks=dict.fromkeys(ddl.WATERMARKS, 0),
        rows=dict.fromkeys(SCHEMAS, 0),
        store_checkpoint=checkpoint,
        lag_events=checkpoint,
        last_sync=None,
        syncs=0,
    )
    if not warehouse.path.exists():
        return empty
    with warehouse.connection() as con:
        state = read_state(con)
        return WarehouseStatus(
            path=empty.path,
            exists=True,
            size_bytes=warehouse.path.stat().st_size,
            watermarks=state.watermarks,
            rows=row_counts(con),
            store_checkpoint=checkpoint,
            lag_events=max(0, checkpoint - state.watermarks["event_id"]),
            last_sync=last_sync(con),
            syncs=history_size(con),
        )


_PROBE = (
    "SELECT (SELECT coalesce(sum(last_event_id), 0) FROM processor_checkpoint), "
    "(SELECT coalesce(max(updated_ms), 0) FROM processor_checkpoint), "
    "(SELECT coalesce(max(updated_ms), 0) FROM profile), "
    "(SELECT coalesce(max(updated_ms), 0) FROM orders), "
    "(SELECT coalesce(max(id), 0) FROM store_tombstone), "
    "(SELECT count(*) FROM cost), (SELECT coalesce(sum(amount_eur_cents), 0) FROM cost), "
    "(SELECT coalesce(max(updated_ms), 0) FROM product), "
    "(SELECT coalesce(max(updated_ms), 0) FROM stock_level), "
    "(SELECT count(*) FROM collect_source)"
)


def _probe(database: Database) -> tuple[Any, ...]:
    """Return a cheap fingerprint of what the sync reads; it changes when the store does."""
    with source.snapshot(database) as snap:
        return snap.row(_PROBE)


def run(stop: threading.Event, settings: Settings, database: Database) -> None:
    """Sync every `sync_interval_seconds` once the store has changed, until `stop` is set.

    Meant for a thread of `serve`. The warehouse file is open only while a sync runs.
    Failures are logged and retried at the next interval; they never end the loop.
    """
    warehouse = Warehouse.from_settings(settings)
    interval = settings.warehouse.sync_interval_seconds
    seen: tuple[Any, ...] | None = None
    idle = 0
    while not stop.is_set():
        try:
            probe = _probe(database)
            if probe != seen or idle >= _FORCE_EVERY:
                done = sync(database, settings, warehouse=warehouse)
                seen, idle = probe, 0
                log.info("warehouse synced: %s rows in %.1f s", done.written, done.seconds)
            else:
                idle += 1
        except WarehouseBusyError as exc:
            log.warning("warehouse sync postponed: %s", exc.detail)
        except Exception:
            log.exception("warehouse sync failed; retrying in %.0f s", interval)
        stop.wait(interval)
