"""Rows to Segment messages to the event log: what the person kinds share.

A kind's builder turns rows into messages; `person_loader` normalises them as
collection does, spools them to disk while the file is checked, then appends them
under the source `import-<kind>` in the transaction that finishes the run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from omnicanal.collect import service
from omnicanal.collect.importers.registry import ImportOptions, Loader, LoadResult
from omnicanal.collect.importers.runs import finish_run
from omnicanal.collect.models import Source
from omnicanal.collect.schemas import SourceCreate
from omnicanal.collect.segment import Envelope, Row, normalise
from omnicanal.collect.tabular.columns import Column, T
from omnicanal.collect.tabular.errors import ErrorLog
from omnicanal.collect.tabular.reader import TabularFile
from omnicanal.collect.writer import append_rows
from omnicanal.core.clock import isoformat, utcnow
from omnicanal.core.errors import ConflictError
from omnicanal.store.engine import Database

_WRITE_ROWS = 5_000


@dataclass(slots=True)
class Built:
    """One message made from file rows: its first line, and how many rows it carries."""

    message: dict[str, Any]
    line: int
    rows: int = 1
    time_column: str | None = None


Builder = Callable[[Iterable[tuple[int, dict[str, Any]]], ErrorLog], Iterator[Built]]


def message_id(kind: str, *parts: object) -> str:
    """Return the deterministic messageId of a row of a kind."""
    text = "\x1f".join(str(p) for p in (kind, *parts))
    return f"import-{kind}-{hashlib.blake2b(text.encode(), digest_size=16).hexdigest()}"


@functools.lru_cache(maxsize=4096)
def slug(value: str) -> str:
    """Return a channel qualifier from a name: `Paris Opéra` -> `paris-opera`."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9_.]+", "-", text).strip("-._")[:63]


def person_traits(values: dict[str, Any]) -> dict[str, Any]:
    names = {
        "email": "email",
        "phone": "phone",
        "card": "card",
        "first_name": "firstName",
        "last_name": "lastName",
        "postcode": "postalCode",
    }
    traits = {out: values[name] for name, out in names.items() if values.get(name) is not None}
    if "email" in traits:
        traits["email"] = traits["email"].lower()
    return traits


def without_empty(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v is not None}


class _Spool:
    """Checked log rows kept on disk until the whole file is known to be clean.

    Each row is two lines: its fields as a JSON array, then its payload as it is (JSON
    from orjson never holds a raw newline), so the payload is not escaped twice.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def add(self, row: Row, rows: int) -> None:
        fields = (
            row.dedup_time,
            row.dedup_key,
            row.message_id,
            row.type,
            row.event,
            row.user_id,
            row.anonymous_id,
            row.timestamp_ms,
            row.received_ms,
            rows,
        )
        self.file.write(b"%b\n%b\n" % (orjson.dumps(fields), row.payload))

    def chunks(self, size: int) -> Iterator[list[tuple[Row, int]]]:
        self.file.seek(0)
        chunk: list[tuple[Row, int]] = []
        lines = iter(self.file)
        for head in lines:
            v = orjson.loads(head)
            payload = next(lines)[:-1]
            chunk.append((Row(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], payload), v[9]))
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _import_source(db: Database, kind: str) -> int:
    """Return the id of the source `import-<kind>`, created on first use."""
    name = f"import-{kind}"
    for _ in range(2):  # a concurrent import may create it between the read and the write
        with contextlib.suppress(ConflictError, IntegrityError), db.sessions.begin() as session:
            found = session.scalar(select(Source.id).where(Source.name == name))
            if found is not None:
                return int(found)
            data = SourceCreate(name=name, channel="import")
            return service.create_source(session=session, data=data).id
    raise ConflictError(f"The source {name!r} could not be created.")


def person_loader(kind: str, build: Builder) -> Loader:
    """Return a loader that turns rows into messages and appends them to the event log."""

    def load(
        *, db: Database, table: TabularFile, run_id: int, options: ImportOptions
    ) -> LoadResult:
        source_id = _import_source(db, kind)
        env = Envelope(
            source_id=source_id, received_at=utcnow(), limits=options.limits, historical=True
        )
        with tempfile.TemporaryFile() as handle:
            spool = _Spool(handle)
            for built in build(table.rows(), table.errors):
                row = normalise(built.message, kind=None, env=env)
                if isinstance(row, list):
                    for problem in row:
                        column = built.time_column if problem["field"] == "timestamp" else None
                        reason = f"{problem['field']} {problem['reason']}"
                        table.errors.add(built.line, column, reason)
                elif not table.errors:
                    spool.add(row, built.rows)
            result = LoadResult(rows=table.data_rows, stored=0, source_id=source_id)
            if not table.errors:
                _append(db, spool, run_id, result)
            return result

    return load


def _append(db: Database, spool: _Spool, run_id: int, result: LoadResult) -> None:
    assert result.source_id is not None
    with db.engine.begin() as conn:
        for chunk in spool.chunks(_WRITE_ROWS):
            new = {row.key for row in append_rows(conn, result.source_id, [r for r, _ in chunk])}
            result.stored += sum(rows for row, rows in chunk if row.key in new)
        finish_run(conn, run_id, result)


def iso_time(value: datetime) -> str:
    return isoformat(value)


def money(cents: int) -> float:
    return cents / 100


PERSON_COLUMNS = (
    Column("card", T, False, ("carte", "carte_fidelite", "loyalty_card", "numero_carte")),
    Column("email", T, False, ("courriel", "mail", "adresse_email")),
    Column("phone", T, False, ("telephone", "tel", "mobile", "portable")),
    Column("first_name", T, False, ("prenom",)),
    Column("last_name", T, False, ("nom", "nom_de_famille")),
    Column("postcode", T, False, ("code_postal", "cp", "zip", "zipcode")),
)
