"""Import runs: check and load a file through its kind, all or nothing, kept in `collect_import`."""

from __future__ import annotations

import contextlib
import gc
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from omnicanal.collect.importers.registry import ImportKind, ImportOptions, LoadResult, get_kind
from omnicanal.collect.models import ImportRun
from omnicanal.collect.tabular.errors import RowError, TabularError
from omnicanal.collect.tabular.reader import TabularFile
from omnicanal.core.clock import utcnow
from omnicanal.core.errors import InvalidError, NotFoundError
from omnicanal.store.engine import Database


class ImportRead(BaseModel):
    """One import run, as the API and the CLI show it: `already` rows were there before."""

    id: int
    kind: str
    filename: str
    digest: str
    source_id: int | None
    status: str
    rows: int
    stored: int
    already: int
    errors: list[dict[str, Any]]
    started_at: datetime
    finished_at: datetime | None


class ImportFailedError(InvalidError):
    """A file was refused: nothing of it was written; `errors` lists file, line, column."""

    code = "import.invalid-file"
    title = "Invalid file"

    def __init__(self, run: ImportRead, count: int) -> None:
        first = run.errors[0] if run.errors else {}
        where = ", ".join(
            f"{name} {first[name]}" for name in ("line", "column") if first.get(name) is not None
        )
        super().__init__(
            f"{run.filename}: {count} error(s), nothing was imported; "
            f"{'the first: ' if count > 1 else ''}{where + ': ' if where else ''}"
            f"{first.get('reason', '')}",
            errors=run.errors,
        )
        self.run, self.count = run, count

    def extensions(self) -> dict[str, Any]:
        return {"import_id": self.run.id, "error_count": self.count, "errors": self.errors}


def _read(run: ImportRun) -> ImportRead:
    done_rows = run.rows if run.status == "done" else 0
    return ImportRead(
        id=run.id,
        kind=run.kind,
        filename=run.filename,
        digest=run.digest,
        source_id=run.source_id,
        status=run.status,
        rows=run.rows,
        stored=run.stored,
        already=max(done_rows - run.stored, 0),
        errors=orjson.loads(run.errors),
        started_at=_utc(run.started_at),
        finished_at=None if run.finished_at is None else _utc(run.finished_at),
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite keeps naive UTC


def get_import(*, db: Database, import_id: int) -> ImportRead:
    """Return one import run or raise NotFoundError."""
    with db.sessions() as session:
        run = session.get(ImportRun, import_id)
        if run is None:
            raise NotFoundError(f"No import with id {import_id}.")
        return _read(run)


def list_imports(*, db: Database, limit: int = 50) -> list[ImportRead]:
    """Return the latest import runs, newest first."""
    with db.sessions() as session:
        runs = session.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(limit))
        return [_read(run) for run in runs]


def _digest(path: Path, kind: str) -> str:
    digest = hashlib.sha256(kind.encode() + b"\x1f")
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _start_run(db: Database, kind: str, filename: str, digest: str) -> int:
    with db.engine.begin() as conn:
        values = {
            "kind": kind,
            "filename": filename[:512],
            "digest": digest,
            "status": "running",
            "rows": 0,
            "stored": 0,
            "errors": "[]",
            "started_at": utcnow(),
        }
        return int(
            conn.execute(insert(ImportRun).values(values).returning(ImportRun.id)).scalar_one()
        )


def finish_run(conn: Connection, run_id: int, result: LoadResult) -> None:
    """Mark a run done, in the transaction that wrote its rows."""
    conn.execute(
        update(ImportRun)
        .where(ImportRun.id == run_id)
        .values(
            status="done",
            rows=result.rows,
            stored=result.stored,
            source_id=result.source_id,
            finished_at=utcnow(),
        )
    )


def _fail_run(db: Database, run_id: int, rows: int, errors: list[dict[str, Any]]) -> ImportRead:
    with db.engine.begin() as conn:
        conn.execute(
            update(ImportRun)
            .where(ImportRun.id == run_id)
            .values(
                status="failed",
                rows=rows,
                stored=0,
                errors=orjson.dumps(errors).decode(),
                finished_at=utcnow(),
            )
        )
    return get_import(db=db, import_id=run_id)


def run_import(
    *,
    db: Database,
    kind: str,
    path: Path,
    filename: str | None = None,
    options: ImportOptions | None = None,
) -> ImportRead:
    """Import a file of a kind, all or nothing; raise ImportFailedError with every bad row."""
    spec = get_kind(kind)
    options = options or ImportOptions()
    with _few_collections():
        return _run(db, spec, path, filename, options)


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Run the cycle collector rarely: an import allocates millions of acyclic objects."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 100_000), 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _run(
    db: Database, spec: ImportKind, path: Path, filename: str | None, options: ImportOptions
) -> ImportRead:
    name = filename or path.name
    run_id = _start_run(db, spec.name, name, _digest(path, spec.name))
    try:
        table = TabularFile(
            path, spec.columns, file=name, mapping=options.mapping, progress=options.progress
        )
        try:
            result = spec.load(db=db, table=table, run_id=run_id, options=options)
        finally:
            table.close()
    except TabularError as exc:
        failed = _fail_run(db, run_id, 0, exc.errors)
        raise ImportFailedError(failed, len(exc.errors)) from None
    except BaseException:
        stopped = RowError(name, None, None, "the import stopped on an internal error")
        with contextlib.suppress(Exception):  # keep the original error, not this one
            _fail_run(db, run_id, 0, [stopped.as_dict()])
        raise
    if table.errors:
        failed = _fail_run(db, run_id, result.rows, table.errors.report())
        raise ImportFailedError(failed, table.errors.count)
    return get_import(db=db, import_id=run_id)
