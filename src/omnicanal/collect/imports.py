"""File imports: the kinds registry, import runs, and the kinds that describe people.

An import reads a file (see `tabular`), checks every row, and writes all of it or
nothing: any bad row and the run ends `failed` with its full error report. Each run
is kept in `collect_import`.

The person kinds (till, customers, attendance, calls, survey) become Segment-spec
messages under one source per kind (`import-<kind>`, channel `import`), validated
as collection validates them and appended to the event log in one transaction, so
the processor builds profiles, orders and consents from them as from any event.
A message's id is a digest of the kind and the row's key and its time is the
file's: re-importing a file stores nothing twice (`stored=0`, `already=rows`).

Other layers add kinds with `register_kind` (profiles adds catalogue, stock, costs).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import re
import tempfile
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from pydantic import BaseModel
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from omnicanal.collect import service
from omnicanal.collect.models import ImportRun, Source
from omnicanal.collect.schemas import SourceCreate
from omnicanal.collect.segment import Envelope, Limits, Row, normalise
from omnicanal.collect.tabular import (
    Column,
    ColumnType,
    ErrorLog,
    Progress,
    RowError,
    TabularError,
    TabularFile,
)
from omnicanal.collect.writer import append_rows
from omnicanal.core.channels import normalise_channel
from omnicanal.core.clock import isoformat, utcnow
from omnicanal.core.errors import ConflictError, InvalidError, NotFoundError
from omnicanal.store.engine import Database

# Column types, short, so the column tables below read like the documentation.
T, N, C, D, B = (
    ColumnType.TEXT,
    ColumnType.INT,
    ColumnType.CENTS,
    ColumnType.DATETIME,
    ColumnType.BOOL,
)
_WRITE_ROWS = 5_000
RECEIPT_WINDOW = 10_000


# --- the registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    """What a user can say about one import.

    Args:
        mapping: file column -> canonical column (`--map`).
        rates: euros for one unit of a currency, e.g. {"USD": Decimal("0.92")}; amounts
            in another currency than EUR are refused unless their rate is here.
        limits: the per-message limits of the event log.
        progress: called as rows are read.
    """

    mapping: dict[str, str] = field(default_factory=dict)
    rates: dict[str, Decimal] = field(default_factory=dict)
    limits: Limits = field(default_factory=lambda: Limits(max_event_bytes=32 * 1024, max_depth=32))
    progress: Progress | None = None


@dataclass
class LoadResult:
    """What a kind did with a file's rows: `stored` rows brought something new."""

    rows: int
    stored: int
    source_id: int | None = None


class Loader(Protocol):
    """Check a table's rows, then write them all in one transaction that ends with
    `finish_run`; write nothing when `table.errors` holds anything."""

    def __call__(
        self, *, db: Database, table: TabularFile, run_id: int, options: ImportOptions
    ) -> LoadResult: ...


@dataclass(frozen=True)
class ImportKind:
    """One kind of file: its columns (documented in docs/how-to/import-files.md) and loader."""

    name: str
    summary: str
    columns: tuple[Column, ...]
    load: Loader


_KINDS: dict[str, ImportKind] = {}


def register_kind(name: str, handler: ImportKind) -> None:
    """Make a kind importable under `name` (a later registration replaces it)."""
    _KINDS[name] = handler


def list_kinds() -> list[ImportKind]:
    """Return the importable kinds by name."""
    return [_KINDS[name] for name in sorted(_KINDS)]


class UnknownKindError(NotFoundError):
    code = "import.unknown-kind"

    def __init__(self, name: str) -> None:
        super().__init__(f"No import kind {name!r}; kinds: {', '.join(sorted(_KINDS))}.")
        self.kinds = sorted(_KINDS)

    def extensions(self) -> dict[str, Any]:
        return {"kinds": self.kinds}


def get_kind(name: str) -> ImportKind:
    """Return a registered kind or raise UnknownKindError naming the kinds."""
    kind = _KINDS.get(name.strip().lower())
    if kind is None:
        raise UnknownKindError(name)
    return kind


# --- runs ---------------------------------------------------------------------------------


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


# --- person kinds: rows -> Segment messages -> event log ------------------------------------


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


def _traits(values: dict[str, Any]) -> dict[str, Any]:
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


def _clean(props: dict[str, Any]) -> dict[str, Any]:
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


def _when(value: datetime) -> str:
    return isoformat(value)


def _money(cents: int) -> float:
    return cents / 100


_CURRENCY = re.compile(r"^[A-Z]{3}$")


def currency_of(values: dict[str, Any], line: int, errors: ErrorLog) -> str | None:
    """Return the row's currency (EUR by default), or None after recording an error."""
    code = str(values.get("currency") or "EUR").upper()
    if not _CURRENCY.match(code):
        errors.add(line, "currency", f"{code[:12]!r} is not a currency code such as EUR")
        return None
    return code


# --- till -------------------------------------------------------------------------------------

_PERSON = (
    Column("card", T, False, ("carte", "carte_fidelite", "loyalty_card", "numero_carte")),
    Column("email", T, False, ("courriel", "mail", "adresse_email")),
    Column("phone", T, False, ("telephone", "tel", "mobile", "portable")),
    Column("first_name", T, False, ("prenom",)),
    Column("last_name", T, False, ("nom", "nom_de_famille")),
    Column("postcode", T, False, ("code_postal", "cp", "zip", "zipcode")),
)
TILL_COLUMNS = (
    Column("receipt_id", T, True, ("ticket", "numero_ticket", "num_ticket", "transaction_id")),
    Column("store", T, True, ("magasin", "store_id", "code_magasin")),
    Column("datetime", D, True, ("date", "date_heure", "timestamp")),
    Column("line", N, False, ("line_no", "ligne", "num_ligne")),
    Column("sku", T, True, ("ean", "reference", "ref", "code_article")),
    Column("product_name", T, False, ("libelle", "designation", "article")),
    Column("category", T, False, ("categorie", "rayon")),
    Column("brand", T, False, ("marque",)),
    Column("quantity", N, True, ("qte", "quantite", "qty")),
    Column("unit_price", C, True, ("prix_unitaire", "prix", "price", "pu")),
    Column("currency", T, False, ("devise",)),
    *_PERSON,
    Column("fulfilment", T, False, ("fulfillment", "mode_retrait")),
    Column("order_ref", T, False, ("commande", "numero_commande", "commande_web")),
    Column("discount", C, False, ("remise",)),
)
_FULFILMENT = {
    "in_store": "in_store",
    "instore": "in_store",
    "store": "in_store",
    "magasin": "in_store",
    "click_and_collect": "click_and_collect",
    "clickandcollect": "click_and_collect",
    "click&collect": "click_and_collect",
    "clickcollect": "click_and_collect",
    "c&c": "click_and_collect",
    "retrait": "click_and_collect",
    "pickup": "click_and_collect",
}
_RECEIPT_FIELDS = ("card", "email", "phone", "first_name", "last_name", "postcode", "order_ref")


@dataclass(slots=True)
class _Receipt:
    store: str
    receipt_id: str
    line: int
    last: int
    when: datetime
    currency: str
    values: dict[str, Any]  # receipt-wide values: identifiers, fulfilment, order_ref
    lines: list[dict[str, Any]] = field(default_factory=list)
    numbers: dict[int, int] = field(default_factory=dict)  # receipt line number -> file line
    contents: dict[tuple[Any, ...], int] = field(default_factory=dict)
    discount: int | None = None


def _fulfilment(values: dict[str, Any], line: int, errors: ErrorLog) -> str | None:
    given = values.get("fulfilment")
    if given is None:
        return "in_store"
    key = re.sub(r"[\s\-]+", "_", given.lower())
    found = _FULFILMENT.get(key) or _FULFILMENT.get(key.replace("_", ""))
    if found is None:
        errors.add(line, "fulfilment", f"{given[:30]!r} is not in_store or click_and_collect")
    return found


def _store(values: dict[str, Any], line: int, errors: ErrorLog) -> str | None:
    store = slug(values["store"])
    if not store:
        errors.add(line, "store", f"{values['store'][:30]!r} cannot name a store")
        return None
    return store


def _open_receipt(
    key: tuple[str, str], line: int, values: dict[str, Any], errors: ErrorLog
) -> _Receipt | None:
    currency = currency_of(values, line, errors)
    fulfilment = _fulfilment(values, line, errors)
    if currency is None or fulfilment is None:
        return None
    return _Receipt(
        key[0], key[1], line, line, values["datetime"], currency, {"fulfilment": fulfilment}
    )


def _add_line(receipt: _Receipt, line: int, values: dict[str, Any], errors: ErrorLog) -> None:
    """Check one receipt line against the others and keep it."""
    ok = not _duplicate(receipt, line, values, errors)
    if values["quantity"] == 0:
        errors.add(line, "quantity", "is 0: a line sells (positive) or returns (negative) units")
        ok = False
    if (values.get("currency") or "EUR").upper() != receipt.currency:
        errors.add(line, "currency", f"differs from line {receipt.line} of the same receipt")
        ok = False
    discount = values.get("discount")
    if discount is not None:
        if receipt.discount is not None and receipt.discount != discount:
            errors.add(
                line,
                "discount",
                "differs from the receipt's discount on another line; give the receipt's "
                "discount once, or the same on each line",
            )
            ok = False
        receipt.discount = discount
    for name in _RECEIPT_FIELDS:
        if values.get(name) is not None:
            receipt.values.setdefault(name, values[name])
    receipt.last = line
    if ok:
        receipt.lines.append(values)


def _duplicate(receipt: _Receipt, line: int, values: dict[str, Any], errors: ErrorLog) -> bool:
    """Tell, after recording an error, if the receipt already has this line."""
    number = values.get("line")
    if number is not None:
        first = receipt.numbers.setdefault(number, line)
        if first != line:
            errors.add(
                line,
                "line",
                f"receipt {receipt.receipt_id} line {number} is already at line {first}: "
                "a duplicate row",
            )
        return first != line
    content = tuple(values.values())
    first = receipt.contents.setdefault(content, line)
    if first != line:
        errors.add(
            line,
            "receipt_id",
            f"repeats line {first} exactly (a duplicate row); if both are real, number them "
            "in a `line` column",
        )
    return first != line


def _product(values: dict[str, Any]) -> dict[str, Any]:
    product = {"sku": values["sku"]}
    for name, out in (("product_name", "name"), ("category", "category"), ("brand", "brand")):
        if values.get(name) is not None:
            product[out] = values[name]
    product["quantity"] = abs(values["quantity"])
    product["price"] = values["unit_price"] / 100
    return product


def _receipt_messages(receipt: _Receipt) -> Iterator[Built]:
    base = {
        "type": "track",
        "anonymousId": f"till:{receipt.store}:{receipt.receipt_id}",
        "timestamp": _when(receipt.when),
        "context": _clean(
            {"channel": f"store:{receipt.store}", "traits": _traits(receipt.values) or None}
        ),
    }
    sales = [v for v in receipt.lines if v["quantity"] > 0]
    returns = [v for v in receipt.lines if v["quantity"] < 0]
    for event, items, part in (
        ("Order Completed", sales, "sale"),
        ("Order Refunded", returns, "return"),
    ):
        if not items:
            continue
        products = [_product(v) for v in items]
        discount = receipt.discount if part == "sale" else None
        total = sum(abs(v["quantity"]) * v["unit_price"] for v in items) - (discount or 0)
        props = _clean(
            {
                "order_id": receipt.receipt_id,
                "products": products,
                "total": _money(total),
                "revenue": _money(total) if part == "sale" else None,
                "currency": receipt.currency,
                "discount": _money(discount) if discount else None,
                "store": receipt.store,
                "fulfilment": receipt.values["fulfilment"],
                "order_ref": receipt.values.get("order_ref"),
            }
        )
        message = {
            **base,
            "event": event,
            "properties": props,
            "messageId": message_id("till", receipt.store, receipt.receipt_id, part),
        }
        yield Built(message, receipt.line, rows=len(items), time_column="datetime")


def build_till(rows: Iterable[tuple[int, dict[str, Any]]], errors: ErrorLog) -> Iterator[Built]:
    """Group receipt lines into one sale and one return message per receipt.

    A receipt's lines must come within RECEIPT_WINDOW lines of each other (till exports
    keep them together): a receipt is complete once that many lines passed without it.
    """
    open_: OrderedDict[tuple[str, str], _Receipt] = OrderedDict()
    closed: dict[tuple[str, str], int] = {}
    current: _Receipt | None = None
    for line, values in rows:
        store = _store(values, line, errors)
        if store is None:
            continue
        key = (store, values["receipt_id"])
        if current is not None and key == (current.store, current.receipt_id):
            _add_line(current, line, values, errors)  # the usual case: the next line
            continue
        receipt = open_.get(key)
        if receipt is not None:
            open_.move_to_end(key)
        elif key in closed:
            errors.add(
                line,
                "receipt_id",
                f"receipt {key[1]} of store {store} began at line {closed[key]} and ended "
                f"more than {RECEIPT_WINDOW:,} lines before; keep a receipt's lines together",
            )
            continue
        else:
            receipt = _open_receipt(key, line, values, errors)
            if receipt is None:
                continue
            open_[key] = receipt
            while next(iter(open_.values())).last < line - RECEIPT_WINDOW:
                _, done = open_.popitem(last=False)
                closed[(done.store, done.receipt_id)] = done.line
                yield from _receipt_messages(done)
        current = receipt
        _add_line(receipt, line, values, errors)
    for done in open_.values():
        yield from _receipt_messages(done)


# --- customers, attendance, calls, survey -------------------------------------------------

CUSTOMER_COLUMNS = (
    Column("customer_id", T, False, ("id_client", "client_id", "external_id", "id", "num_client")),
    *_PERSON,
    Column("birth_date", ColumnType.DATE, False, ("date_naissance", "birthday", "naissance")),
    Column("street", T, False, ("adresse", "address", "rue")),
    Column("city", T, False, ("ville", "commune")),
    Column("country", T, False, ("pays",)),
    Column("optin_email", B, False, ("optin", "newsletter", "consentement_email")),
    Column("optin_sms", B, False, ("consentement_sms",)),
    Column("optin_post", B, False, ("optin_courrier", "consentement_courrier")),
    Column("consent_date", D, False, ("date_consentement", "date_optin")),
    Column("consent_wording", T, False, ("wording", "version_consentement", "consent_version")),
    Column("signup_source", T, False, ("source", "origine")),
    Column("created_at", D, False, ("date_creation", "date_inscription")),
)


def _customer_key(values: dict[str, Any]) -> str | None:
    for name in ("customer_id", "email", "phone", "card"):
        if values.get(name) is not None:
            value = values[name].lower() if name == "email" else values[name]
            return f"{name}:{value}"
    return None


def _address(values: dict[str, Any]) -> dict[str, Any] | None:
    address = _clean(
        {
            "street": values.get("street"),
            "postalCode": values.get("postcode"),
            "city": values.get("city"),
        }
    )
    if not address:
        return None
    country = values.get("country") or "FR"
    address["country"] = country.upper() if len(country) == 2 else country
    return address


def _customer(values: dict[str, Any], key: str, line: int) -> Built:
    traits = _traits(values)
    traits.pop("postalCode", None)
    traits.update(
        _clean(
            {
                "birthday": values["birth_date"].isoformat() if values.get("birth_date") else None,
                "address": _address(values),
                "signupSource": values.get("signup_source"),
                "createdAt": _when(values["created_at"]) if values.get("created_at") else None,
            }
        )
    )
    channels = {"email": "optin_email", "sms": "optin_sms", "post": "optin_post"}
    consents = {ch: values[col] for ch, col in channels.items() if values.get(col) is not None}
    context = {}
    if consents:
        context["consent"] = _clean(
            {"wording": values.get("consent_wording"), "purposes": {"marketing": consents}}
        )
    content = orjson.dumps(values, default=str, option=orjson.OPT_SORT_KEYS)
    when = values.get("consent_date") or values.get("created_at")
    message = _clean(
        {
            "type": "identify",
            "traits": traits,
            "context": context or None,
            # A changed record is a new message; the same record again is not.
            "messageId": message_id("customers", key, hashlib.sha256(content).hexdigest()),
            "timestamp": _when(when) if when else None,
        }
    )
    if values.get("customer_id") is not None:
        message["userId"] = values["customer_id"]
    else:
        message["anonymousId"] = f"customers:{key}"
    column = "consent_date" if values.get("consent_date") else "created_at"
    return Built(message, line, time_column=column)


def build_customers(
    rows: Iterable[tuple[int, dict[str, Any]]], errors: ErrorLog
) -> Iterator[Built]:
    """One identify per person record, with consents when the file gives opt-ins."""
    seen: dict[str, int] = {}
    for line, values in rows:
        key = _customer_key(values)
        if key is None:
            errors.add(line, "customer_id", "give at least one of customer_id, email, phone, card")
            continue
        if key in seen:
            errors.add(
                line, key.split(":", 1)[0], f"{key} is already at line {seen[key]}: a duplicate row"
            )
            continue
        seen[key] = line
        yield _customer(values, key, line)


def _keyed(
    kind: str,
    key_column: str,
    key_of: Callable[[int, dict[str, Any]], str],
    make: Callable[[str, dict[str, Any], int, ErrorLog], Built | None],
) -> Builder:
    """A builder of one message per row, refusing a row key seen twice in the file."""

    def build(rows: Iterable[tuple[int, dict[str, Any]]], errors: ErrorLog) -> Iterator[Built]:
        seen: dict[str, int] = {}
        for line, values in rows:
            key = key_of(line, values)
            if key in seen:
                errors.add(
                    line,
                    key_column,
                    f"{kind} row {key!r} is already at line {seen[key]}: a duplicate row",
                )
                continue
            seen[key] = line
            built = make(key, values, line, errors)
            if built is not None:
                yield built

    build.__doc__ = f"One message per {kind} row."
    return build


ATTENDANCE_COLUMNS = (
    Column("event_name", T, True, ("evenement", "event", "nom_evenement", "operation")),
    Column("event_type", T, False, ("type", "type_evenement")),
    Column("date", D, True, ("datetime", "date_evenement", "date_heure")),
    Column("location", T, False, ("lieu", "store", "magasin")),
    *_PERSON,
    Column("attendee_id", T, False, ("participant_id", "id_participant", "inscription_id")),
)
_EVENT_TYPES = {
    "workshop": "workshop",
    "atelier": "workshop",
    "fair": "fair",
    "salon": "fair",
    "foire": "fair",
    "street": "street",
    "street_marketing": "street",
    "other": "other",
    "autre": "other",
}


def _attendee_key(line: int, values: dict[str, Any]) -> str:
    day = values["date"].date().isoformat()
    if values.get("attendee_id") is not None:
        return f"{values['event_name']}\x1f{day}\x1f{values['attendee_id']}"
    person = [values.get(c.name) for c in _PERSON]
    if any(v is not None for v in person):  # a re-ordered file keeps its keys
        digest = hashlib.blake2b(orjson.dumps(person), digest_size=8).hexdigest()
        return f"{values['event_name']}\x1f{day}\x1f{digest}"
    return f"{values['event_name']}\x1f{day}\x1fline{line}"


def _attendance(key: str, values: dict[str, Any], line: int, errors: ErrorLog) -> Built | None:
    given = (values.get("event_type") or "other").lower().replace(" ", "_").replace("-", "_")
    kind = _EVENT_TYPES.get(given)
    if kind is None:
        errors.add(line, "event_type", f"{given[:30]!r} is not workshop, fair, street or other")
        return None
    attendee = key.rsplit("\x1f", 1)[1]
    message = {
        "type": "track",
        "event": "Event Attended",
        "timestamp": _when(values["date"]),
        "messageId": message_id("attendance", key),
        "anonymousId": f"attendance:{slug(values['event_name']) or 'event'}:{attendee}",
        "properties": _clean(
            {
                "event_name": values["event_name"],
                "event_type": kind,
                "location": values.get("location"),
            }
        ),
        "context": _clean(
            {
                "channel": "street" if kind == "street" else f"event:{kind}",
                "traits": _traits(values) or None,
            }
        ),
    }
    return Built(message, line, time_column="date")


CALL_COLUMNS = (
    Column("contact_id", T, True, ("id_contact", "call_id", "id_appel", "appel_id")),
    Column("datetime", D, True, ("date", "date_heure", "date_appel")),
    *_PERSON,
    Column("reason", T, False, ("motif", "raison")),
    Column("outcome", T, False, ("resultat", "issue", "statut")),
    Column("order_ref", T, False, ("commande", "order_id", "numero_commande")),
    Column("duration_s", N, False, ("duree", "duree_s", "duration")),
)


def _call(key: str, values: dict[str, Any], line: int, errors: ErrorLog) -> Built:
    message = {
        "type": "track",
        "event": "Call Centre Contact",
        "timestamp": _when(values["datetime"]),
        "messageId": message_id("calls", key),
        "anonymousId": f"calls:{key}",
        "properties": _clean(
            {k: values.get(k) for k in ("reason", "outcome", "order_ref", "duration_s")}
        ),
        "context": _clean({"channel": "call_centre", "traits": _traits(values) or None}),
    }
    return Built(message, line, time_column="datetime")


SURVEY_COLUMNS = (
    Column("response_id", T, True, ("id_reponse", "reponse_id", "id")),
    Column("datetime", D, True, ("date", "date_reponse", "date_heure")),
    Column("kind", T, True, ("type", "type_enquete", "survey", "enquete")),
    Column("score", N, True, ("note",)),
    Column("comment", T, False, ("commentaire", "verbatim")),
    Column("channel", T, False, ("canal",)),
    Column("email", T, False, ("courriel", "mail")),
    Column("phone", T, False, ("telephone", "tel", "mobile")),
    Column("card", T, False, ("carte", "carte_fidelite", "loyalty_card")),
    Column("customer_id", T, False, ("id_client", "client_id")),
)
_SCORES = {"nps": (0, 10), "csat": (1, 5)}


def _survey(key: str, values: dict[str, Any], line: int, errors: ErrorLog) -> Built | None:
    kind, score = values["kind"].lower(), values["score"]
    if kind not in _SCORES:
        errors.add(line, "kind", f"{kind[:20]!r} is not nps or csat")
        return None
    low, high = _SCORES[kind]
    if not low <= score <= high:
        errors.add(line, "score", f"{score} is outside {low}-{high} for {kind}")
        return None
    channel = values.get("channel")
    if channel is not None:
        try:
            channel = normalise_channel(channel)
        except ValueError as exc:
            errors.add(line, "channel", str(exc))
            return None
    message = {
        "type": "track",
        "event": "Survey Answered",
        "timestamp": _when(values["datetime"]),
        "messageId": message_id("survey", key),
        "properties": _clean(
            {"kind": kind, "score": score, "comment": values.get("comment"), "channel": channel}
        ),
        "context": {"traits": _traits(values)} if _traits(values) else {},
    }
    if values.get("customer_id") is not None:
        message["userId"] = values["customer_id"]
    else:
        message["anonymousId"] = f"survey:{key}"
    return Built(message, line, time_column="datetime")


def _register_person_kinds() -> None:
    kinds = (
        (
            "till",
            "Till and POS receipt lines: sales, returns, click & collect pick-ups.",
            TILL_COLUMNS,
            build_till,
        ),
        (
            "customers",
            "Customer lists: CRM or newsletter exports, with opt-ins.",
            CUSTOMER_COLUMNS,
            build_customers,
        ),
        (
            "attendance",
            "Attendance at workshops, fairs and street operations.",
            ATTENDANCE_COLUMNS,
            _keyed("attendance", "attendee_id", _attendee_key, _attendance),
        ),
        (
            "calls",
            "Call-centre contacts.",
            CALL_COLUMNS,
            _keyed("calls", "contact_id", lambda _, v: str(v["contact_id"]), _call),
        ),
        (
            "survey",
            "Survey answers: NPS (0-10) and CSAT (1-5).",
            SURVEY_COLUMNS,
            _keyed("survey", "response_id", lambda _, v: str(v["response_id"]), _survey),
        ),
    )
    for name, summary, columns, build in kinds:
        register_kind(name, ImportKind(name, summary, columns, person_loader(name, build)))


_register_person_kinds()


def parse_rates(items: Iterable[str]) -> dict[str, Decimal]:
    """Read `USD=0.92` pairs (euros for one unit of the currency), as given to `--rate`."""
    rates: dict[str, Decimal] = {}
    for item in items:
        code, _, value = item.partition("=")
        code = code.strip().upper()
        try:
            rate = Decimal(value.strip().replace(",", "."))
        except ArithmeticError:
            rate = Decimal(0)
        if not _CURRENCY.match(code) or not rate.is_finite() or rate <= 0:
            raise InvalidError(
                f"--rate {item!r} is not CODE=euros_per_unit, e.g. USD=0.92",
                errors=[{"field": "rate", "reason": f"{item!r} is not CODE=euros_per_unit"}],
            )
        rates[code] = rate
    return rates
