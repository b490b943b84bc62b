"""Read a CSV, Parquet or XLSX file into typed rows, with a report of every bad cell.

Files come from tills, CRMs, spreadsheets and ad platforms, so the reader guesses
what people rarely say: the format (from the first bytes, then the extension), the
encoding of a CSV (BOM, valid UTF-8, else charset-normalizer among the Western
single-byte code pages), its delimiter, and which file column is which (names
compared without case, accents, spaces, `-` or `_`, with aliases). Values are
converted by type: French or ISO decimals to integer cents, French or ISO dates
(naive times are Europe/Paris), yes/no booleans.

Rows are read in chunks (pyarrow's streaming CSV reader, Parquet row groups,
openpyxl's read-only mode) so a file of millions of rows never sits in memory.
A bad cell is reported with the file, its line as a spreadsheet shows it (the
header is line 1) and the column, and the row is left out; the caller decides
what a bad row means (for an import: nothing is written).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import charset_normalizer
import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from omnicanal.core.errors import InvalidError

PARIS = ZoneInfo("Europe/Paris")
DELIMITERS = (",", ";", "\t", "|")
MAX_KEPT_ERRORS = 1_000
_SAMPLE_BYTES = 256 * 1024
_CSV_BLOCK = 1024 * 1024  # larger blocks read no faster and hold more memory
_CHUNK_ROWS = 20_000
_SINGLE_BYTE = ("cp1252", "latin_1", "cp850", "mac_roman")

Progress = Callable[[int, int, int], None]
"""Called with (rows read, units done, units in all): bytes for CSV, rows otherwise."""


class ColumnType(StrEnum):
    """How a cell's text becomes a value."""

    TEXT = "text"
    INT = "int"
    CENTS = "cents"  # a decimal amount, as integer cents
    DATETIME = "datetime"  # an aware datetime
    DATE = "date"
    BOOL = "bool"


@dataclass(frozen=True, slots=True)
class Column:
    """One canonical column of an import kind."""

    name: str
    type: ColumnType = ColumnType.TEXT
    required: bool = False
    aliases: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem, located as a spreadsheet user would find it."""

    file: str
    line: int | None
    column: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """Return the error as JSON-ready data."""
        return {"file": self.file, "line": self.line, "column": self.column, "reason": self.reason}


class ErrorLog:
    """Every problem found in one file: counted in full, the first ones kept."""

    def __init__(self, file: str, keep: int = MAX_KEPT_ERRORS) -> None:
        self.file = file
        self.keep = keep
        self.items: list[RowError] = []
        self.count = 0

    def add(self, line: int | None, column: str | None, reason: str) -> None:
        """Record a problem at a line and column (None: the whole row or file)."""
        self.count += 1
        if len(self.items) < self.keep:
            self.items.append(RowError(self.file, line, column, reason))

    def __bool__(self) -> bool:
        return self.count > 0

    def report(self) -> list[dict[str, Any]]:
        """Return the kept errors in file order, plus a last entry counting those left out."""
        ordered = sorted(self.items, key=lambda e: (e.line is not None, e.line or 0))
        out = [e.as_dict() for e in ordered]
        if self.count > len(self.items):
            more = self.count - len(self.items)
            out.append(
                RowError(self.file, None, None, f"{more:,} more errors not listed").as_dict()
            )
        return out


class TabularError(InvalidError):
    """The file cannot be read as a table: format, encoding, header, structure."""

    code = "import.unreadable-file"
    title = "Unreadable file"

    def __init__(
        self,
        file: str,
        reason: str,
        *,
        line: int | None = None,
        column: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            f"{file}: {reason}",
            errors=errors or [RowError(file, line, column, reason).as_dict()],
        )


# --- header matching ---------------------------------------------------------------

_IGNORED_IN_NAMES = re.compile(r"[\s\-_.'’]+")


def header_key(name: object) -> str:
    """Fold a column name for matching: no case, accents, spaces, `-`, `_`, dots."""
    text = unicodedata.normalize("NFKD", str(name or "").replace("\ufeff", "").strip().strip('"'))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _IGNORED_IN_NAMES.sub("", text.casefold())


def parse_mapping(items: Sequence[str]) -> dict[str, str]:
    """Read `file_column=canonical` pairs, as given to `--map`."""
    mapping: dict[str, str] = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InvalidError(
                f"--map {item!r} is not file_column=canonical_column",
                errors=[{"field": "map", "reason": f"{item!r} is not file_column=canonical"}],
            )
        mapping[source.strip()] = target.strip()
    return mapping


def _match_header(
    file: str, header: list[str], columns: Sequence[Column], mapping: dict[str, str]
) -> tuple[dict[str, int], list[str]]:
    """Return canonical name -> index in the file, and the file columns left unused.

    A column named by `--map` wins over one named as the canonical column, which wins
    over an alias; two file columns of the same rank giving one column is an error.
    """
    found: dict[str, tuple[int, int]] = {}
    names = _names(file, columns, mapping)
    for index, name in enumerate(header):
        target, rank = names.get(header_key(name), ("", 0))
        if not rank:
            continue
        if target in found and found[target][1] == rank:
            raise TabularError(
                file,
                f"columns {header[found[target][0]]!r} and {name!r} both give {target}; keep "
                "one, or map one of them to another column with --map",
                line=1,
                column=str(name),
            )
        if target not in found or found[target][1] < rank:
            found[target] = (index, rank)
    _check_found(file, header, columns, found)
    used = {index for index, _ in found.values()}
    ignored = [str(h).strip() for i, h in enumerate(header) if i not in used and str(h).strip()]
    return {name: index for name, (index, _) in found.items()}, ignored


def _names(
    file: str, columns: Sequence[Column], mapping: dict[str, str]
) -> dict[str, tuple[str, int]]:
    """Return folded name -> (column, rank): 1 an alias, 2 the column's name, 3 `--map`."""
    names: dict[str, tuple[str, int]] = {}
    for column in columns:
        for alias in column.aliases:
            names.setdefault(header_key(alias), (column.name, 1))
    names.update({header_key(c.name): (c.name, 2) for c in columns})
    known = {c.name for c in columns}
    for source, target in mapping.items():
        if target not in known:
            raise TabularError(
                file,
                f"--map names {target!r}, which is not a column of this kind; "
                f"columns: {', '.join(c.name for c in columns)}",
                column=target,
            )
        names[header_key(source)] = (target, 3)
    return names


def _check_found(
    file: str, header: list[str], columns: Sequence[Column], found: dict[str, Any]
) -> None:
    """Refuse a header without the required columns, or without any column of the kind."""
    listed = ", ".join(repr(str(h)) for h in header if str(h).strip()) or "none"
    missing = [c.name for c in columns if c.required and c.name not in found]
    if missing:
        raise TabularError(
            file,
            f"missing required column(s) {', '.join(missing)}; the file has: {listed}. "
            f"Rename them, or map them with --map file_column={missing[0]}",
            line=1,
            column=", ".join(missing),
        )
    if not found:
        expected = ", ".join(c.name for c in columns)
        raise TabularError(
            file, f"no column of the file is one of {expected}; the file has: {listed}", line=1
        )


# --- converters ----------------------------------------------------------------------

_SPACES = re.compile(r"[ \u00a0\u202f]+")  # thousands separators
_FRENCH_DATE = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2})[:h](\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?$"
)
_TRUE = frozenset({"yes", "y", "oui", "o", "true", "vrai", "1", "x", "on"})
_FALSE = frozenset({"no", "n", "non", "false", "faux", "0", "off"})
_CENT = Decimal(100)
_PLAIN_INT = re.compile(r"^\s*-?\d{1,18}\s*$")
_PLAIN_AMOUNT = re.compile(r"^\s*(-?)(\d{1,15})(?:[.,](\d{1,2}))?\s*$")


def to_text(value: object) -> str:
    """Return a cell as trimmed text (whole floats lose their `.0`: EANs from Excel)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def to_int(value: object) -> int:
    """Return a whole number; `1 234` and `12,0` are accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _PLAIN_INT.match(value):
        return int(value)
    try:
        number = _decimal(value)
    except ValueError:
        number = Decimal("NaN")
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"{to_text(value)[:40]!r} is not a whole number")
    return int(number)


def _decimal(value: object) -> Decimal:
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    else:
        text = _SPACES.sub("", str(value)).removesuffix("€").removesuffix("EUR")
        if "," in text and "." in text:  # the last separator is the decimal one
            thousands = "." if text.rfind(",") > text.rfind(".") else ","
            text = text.replace(thousands, "")
        try:
            number = Decimal(text.replace(",", "."))
        except InvalidOperation:
            raise ValueError(f"{to_text(value)[:40]!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{to_text(value)[:40]!r} is not a number")
    return number


def to_cents(value: object) -> int:
    """Return an amount in integer cents: `12.50`, `12,50`, `1 234,50` (rounded half up)."""
    match = _PLAIN_AMOUNT.match(value) if isinstance(value, str) else None
    if match:
        sign, whole, fraction = match.groups()
        cents = int(whole) * 100 + int((fraction or "0").ljust(2, "0"))
        return -cents if sign else cents
    return int((_decimal(value) * _CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _parse_text_datetime(text: str) -> datetime:
    if len(text) in (16, 19) and text[2] == "/" and text[5] == "/" and text[10] == " ":
        # `23/11/2026 14:05[:00]`, as French tills and spreadsheets write it, read fast
        seconds = int(text[17:19]) if len(text) == 19 and text[16] == ":" else 0
        if text[13] == ":" and (len(text) == 16 or text[16] == ":"):
            return datetime(
                int(text[6:10]),
                int(text[3:5]),
                int(text[:2]),
                int(text[11:13]),
                int(text[14:16]),
                seconds,
            )
    match = _FRENCH_DATE.match(text)
    if match:
        day, month, year, hour, minute, second, fraction = match.groups()
        micro = int((fraction or "0").ljust(6, "0"))
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
        )
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    return datetime.fromisoformat(iso)


def to_datetime(value: object) -> datetime:
    """Return an aware datetime; naive values are Europe/Paris time."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    else:
        text = str(value).strip()
        try:
            parsed = _parse_text_datetime(text)
        except ValueError:
            raise ValueError(
                f"{text[:40]!r} is not a date (use 2026-11-23, 2026-11-23T14:05:00, "
                "23/11/2026 or 23/11/2026 14:05)"
            ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=PARIS)


def to_date(value: object) -> date:
    """Return a calendar date (a time, if given, is read in Europe/Paris)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return to_datetime(value).astimezone(PARIS).date()


def to_bool(value: object) -> bool:
    """Return yes/no from oui/non, yes/no, true/false, 1/0."""
    if isinstance(value, bool):
        return value
    text = to_text(value).casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{text[:20]!r} is not yes/no (use oui/non, yes/no, 1/0, true/false)")


CONVERTERS: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.TEXT: to_text,
    ColumnType.INT: to_int,
    ColumnType.CENTS: to_cents,
    ColumnType.DATETIME: to_datetime,
    ColumnType.DATE: to_date,
    ColumnType.BOOL: to_bool,
}


# --- format, encoding, delimiter -----------------------------------------------------


def detect_format(path: Path, file: str) -> str:
    """Return `csv`, `parquet` or `xlsx` from the file's first bytes, then its name."""
    with path.open("rb") as handle:
        head = handle.read(8)
    suffix = Path(file).suffix.lower()
    if not head:
        raise TabularError(file, "the file is empty")
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise TabularError(file, "XLS (Excel 97-2003) files are not read; save it as XLSX or CSV")
    if suffix in {".parquet", ".pq", ".xlsx", ".xlsm"}:
        raise TabularError(file, f"the file is named {suffix} but is not one")
    return "csv"


def detect_encoding(path: Path, file: str) -> str:
    """Return the encoding of a text file: BOM, else UTF-8 if valid, else a Western code page."""
    with path.open("rb") as handle:
        head = handle.read(_SAMPLE_BYTES)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8"  # pyarrow skips the BOM itself
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if b"\x00" in head:
            raise TabularError(file, "this is not a text (CSV), Parquet or XLSX file")
        handle.seek(0)
        bad_at, non_ascii = _first_invalid_utf8(handle)
    if bad_at is None:
        return "utf-8"
    if non_ascii:  # valid UTF-8 accents before a byte that is not UTF-8: two encodings
        line = _line_of(path, bad_at)
        raise TabularError(
            file,
            "the file mixes encodings: it is UTF-8 up to this line, which is not; "
            "save the whole file again as UTF-8",
            line=line,
        )
    return _single_byte(path, file)


def _first_invalid_utf8(handle: BinaryIO) -> tuple[int | None, bool]:
    """Return the offset of the first byte that is not UTF-8, and if UTF-8 accents came first."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, non_ascii = 0, False
    while block := handle.read(1024 * 1024):
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            start = offset + exc.start - len(decoder.getstate()[0])
            return max(start, 0), non_ascii or not block[: exc.start].isascii()
        non_ascii = non_ascii or not block.isascii()
        offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset, non_ascii
    return None, non_ascii


def _line_of(path: Path, offset: int) -> int:
    with path.open("rb") as handle:
        return handle.read(offset).count(b"\n") + 1


def _single_byte(path: Path, file: str) -> str:
    """Ask charset-normalizer among Western code pages, on lines holding non-ASCII bytes."""
    sample = bytearray()
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.isascii():
                sample += raw
                if len(sample) > _SAMPLE_BYTES:
                    break
    matches = charset_normalizer.from_bytes(bytes(sample), cp_isolation=list(_SINGLE_BYTE))
    best = matches.best()
    if best is None:
        raise TabularError(
            file, "the file's encoding is not UTF-8, Windows-1252 or Latin-1; save it as UTF-8 CSV"
        )
    # Windows-1252 is what French spreadsheets write: prefer it when it reads as well.
    for match in matches:
        if match.encoding == "cp1252" and match.percent_chaos <= best.percent_chaos + 0.1:
            return "cp1252"
    return str(best.encoding)


def _sample_text(path: Path, encoding: str) -> str:
    with path.open("rb") as handle:
        raw = handle.read(_SAMPLE_BYTES)
    text = raw.decode(encoding, errors="replace").removeprefix("\ufeff")
    if len(raw) == _SAMPLE_BYTES and "\n" in text:
        text = text[: text.rfind("\n")]
    return text


def detect_delimiter(sample: str) -> str:
    """Pick the delimiter that splits the header most and the next lines alike."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    best, best_fields = ",", 1
    for delimiter in DELIMITERS:
        rows = list(csv.reader(lines, delimiter=delimiter))
        if not rows:
            continue
        width = len(rows[0])
        if width < 2:
            continue
        alike = sum(1 for row in rows[1:] if len(row) == width)
        if rows[1:] and alike < (len(rows) - 1) / 2:
            continue
        if width > best_fields:
            best, best_fields = delimiter, width
    return best


# --- sources: a header, then chunks of raw columns -------------------------------------


@dataclass(slots=True)
class _Chunk:
    columns: dict[int, list[Any]]  # file column index -> raw values
    rows: int
    trimmed: bool = False  # text cells already trimmed, blank ones None (CSV)


class _Source:
    """One format's reader: the header row, then chunks of the wanted columns."""

    header: list[str]
    total: int = 0
    done: int = 0

    def chunks(self, indexes: list[int]) -> Iterator[_Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        return None


class _CountingFile(io.RawIOBase):
    """A file that counts the bytes pyarrow has read from it, for the progress bar."""

    def __init__(self, handle: BinaryIO, source: _Source) -> None:
        self._handle, self._source = handle, source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._handle.readinto(buffer)  # type: ignore[attr-defined]
        self._source.done += count or 0
        return int(count or 0)


class _CsvSource(_Source):
    def __init__(self, path: Path, file: str) -> None:
        self.path, self.file = path, file
        self.encoding = detect_encoding(path, file)
        sample = _sample_text(path, self.encoding)
        if not sample.strip():
            raise TabularError(file, "the file is empty")
        self.delimiter = detect_delimiter(sample)
        first = next(csv.reader(io.StringIO(sample), delimiter=self.delimiter), [])
        self.header = [h.strip() for h in first]
        self.total = path.stat().st_size

    def chunks(self, indexes: list[int]) -> Iterator[_Chunk]:
        names = [f"c{i}" for i in range(len(self.header))]
        wanted = [names[i] for i in indexes]
        options = {
            "read_options": pacsv.ReadOptions(
                column_names=names,
                skip_rows=1,
                block_size=_CSV_BLOCK,
                encoding=self.encoding if self.encoding != "utf-8" else "utf8",
            ),
            "parse_options": pacsv.ParseOptions(
                delimiter=self.delimiter, ignore_empty_lines=False, newlines_in_values=True
            ),
            "convert_options": pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                include_columns=wanted,
                strings_can_be_null=True,
                null_values=[""],
            ),
        }
        with self.path.open("rb") as handle:
            try:
                stream = io.BufferedReader(_CountingFile(handle, self), _CSV_BLOCK)
                for batch in pacsv.open_csv(stream, **options):
                    columns = {i: _trimmed(batch.column(k)) for k, i in enumerate(indexes)}
                    yield _Chunk(columns, batch.num_rows, trimmed=True)
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise self._structure_error(str(exc)) from None

    def _structure_error(self, detail: str) -> TabularError:
        """Find, with Python's csv module, the rows whose number of fields is wrong."""
        errors = ErrorLog(self.file)
        width = len(self.header)
        with self.path.open(encoding=self.encoding, errors="replace", newline="") as text:
            reader = csv.reader(text, delimiter=self.delimiter)
            for line, row in enumerate(reader, start=1):
                if row and len(row) != width and any(cell.strip() for cell in row):
                    errors.add(line, None, f"has {len(row)} fields; the header has {width}")
        if not errors:
            errors.add(None, None, f"cannot be read as CSV: {detail}")
        return TabularError(self.file, errors.items[0].reason, errors=errors.report())


def _trimmed(array: Any) -> list[Any]:
    """Return a text column trimmed, with blank cells as None, the work done in Arrow."""
    array = pc.utf8_trim_whitespace(array)
    values: list[Any] = array.to_pylist()
    if "" in values:  # cells of spaces only
        return [v or None for v in values]
    return values


class _ParquetSource(_Source):
    def __init__(self, path: Path, file: str) -> None:
        self.file = file
        try:
            self.parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise TabularError(file, f"this is not a readable Parquet file ({exc})") from None
        self.header = list(self.parquet.schema_arrow.names)
        self.total = int(self.parquet.metadata.num_rows)

    def chunks(self, indexes: list[int]) -> Iterator[_Chunk]:
        names = [self.header[i] for i in indexes]
        try:
            for batch in self.parquet.iter_batches(batch_size=_CHUNK_ROWS, columns=names):
                columns = {i: _pylist(batch.column(k)) for k, i in enumerate(indexes)}
                self.done += batch.num_rows
                yield _Chunk(columns, batch.num_rows)
        except (pa.ArrowException, OSError) as exc:
            raise TabularError(self.file, f"the Parquet file is damaged ({exc})") from None

    def close(self) -> None:
        self.parquet.close()


def _pylist(array: Any) -> list[Any]:
    kind = array.type
    if pa.types.is_timestamp(kind) and kind.unit == "ns":  # Python datetimes hold µs
        array = array.cast(pa.timestamp("us", kind.tz), safe=False)
    return list(array.to_pylist())


class _XlsxSource(_Source):
    def __init__(self, path: Path, file: str) -> None:
        self.file = file
        try:
            with warnings.catch_warnings():  # styles and extensions openpyxl does not read
                warnings.simplefilter("ignore")
                self.book = openpyxl.load_workbook(path, read_only=True, data_only=True)
            sheet = self.book.worksheets[0]
            self.rows = sheet.iter_rows(values_only=True)
            first = next(self.rows, None)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError, IndexError) as exc:
            raise TabularError(file, f"this is not a readable XLSX file ({exc})") from None
        if first is None:
            raise TabularError(file, "the first sheet is empty")
        self.header = ["" if h is None else str(h).strip() for h in first]
        self.total = max(int(sheet.max_row or 1) - 1, 0)

    def chunks(self, indexes: list[int]) -> Iterator[_Chunk]:
        while True:
            block = [row for _, row in zip(range(_CHUNK_ROWS), self.rows, strict=False)]
            if not block:
                return
            columns = {i: [r[i] if i < len(r) else None for r in block] for i in indexes}
            self.done += len(block)
            yield _Chunk(columns, len(block))

    def close(self) -> None:
        self.book.close()


# --- the reader ----------------------------------------------------------------------


@dataclass
class TabularFile:
    """A file opened for one kind's columns: rows come out typed, bad cells go to `errors`.

    Args:
        path: the file on disk.
        columns: the kind's canonical columns.
        file: the name to show in errors (the uploaded or given name).
        mapping: file column -> canonical column, over the names and aliases.
        progress: called after each chunk.
    """

    path: Path
    columns: Sequence[Column]
    file: str = ""
    mapping: dict[str, str] = field(default_factory=dict)
    progress: Progress | None = None
    errors: ErrorLog = field(init=False)
    format: str = field(init=False)
    matched: dict[str, str] = field(init=False)
    ignored: list[str] = field(init=False)
    rows_read: int = field(init=False, default=0)  # blank rows included
    data_rows: int = field(init=False, default=0)  # rows with a value, good or bad
    _source: _Source = field(init=False)
    _closed: bool = field(init=False, default=False)
    _found: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.file = self.file or self.path.name
        self.errors = ErrorLog(self.file)
        self.format = detect_format(self.path, self.file)
        sources = {"csv": _CsvSource, "parquet": _ParquetSource, "xlsx": _XlsxSource}
        self._source = sources[self.format](self.path, self.file)
        header = self._source.header
        if not any(str(h).strip() for h in header):
            raise TabularError(self.file, "the first row holds no column names", line=1)
        self._found, self.ignored = _match_header(self.file, header, self.columns, self.mapping)
        self.matched = {name: str(header[i]) for name, i in self._found.items()}

    @property
    def encoding(self) -> str | None:
        """Return the CSV encoding found (None for Parquet and XLSX)."""
        return self._source.encoding if isinstance(self._source, _CsvSource) else None

    @property
    def delimiter(self) -> str | None:
        """Return the CSV delimiter found (None for Parquet and XLSX)."""
        return self._source.delimiter if isinstance(self._source, _CsvSource) else None

    def close(self) -> None:
        """Release the file (rows() does it once read to the end)."""
        if not self._closed:
            self._closed = True
            self._source.close()

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (line, values) for each row whose cells all convert; blank rows are skipped."""
        spec = [(c, self._found[c.name]) for c in self.columns if c.name in self._found]
        try:
            for chunk in self._source.chunks([index for _, index in spec]):
                yield from self._convert(chunk, spec)
                self.rows_read += chunk.rows
                if self.progress is not None:
                    self.progress(self.rows_read, self._source.done, self._source.total)
        finally:
            self.close()

    def _convert(
        self, chunk: _Chunk, spec: list[tuple[Column, int]]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        first_line = self.rows_read + 2  # the header is line 1
        bad: set[int] = set()
        values = [
            self._column(column, chunk.columns[index], first_line, bad, trimmed=chunk.trimmed)
            for column, index in spec
        ]
        names = [column.name for column, _ in spec]
        required = [k for k, (column, _) in enumerate(spec) if column.required]
        empty = {
            o for k in required if None in values[k] for o, v in enumerate(values[k]) if v is None
        }
        width = len(spec)
        for offset, row in enumerate(zip(*values, strict=True)):
            if row.count(None) == width:
                continue  # a blank row, as spreadsheets leave at the end
            self.data_rows += 1
            if offset in empty:
                for k in required:
                    if row[k] is None:
                        self.errors.add(first_line + offset, names[k], "is empty; it is required")
            elif offset not in bad:
                yield first_line + offset, dict(zip(names, row, strict=True))

    def _column(
        self, column: Column, cells: list[Any], first_line: int, bad: set[int], *, trimmed: bool
    ) -> list[Any]:
        """Convert one column of a chunk; record each bad cell and its row's offset in `bad`."""
        if column.type is ColumnType.TEXT and trimmed:
            return cells  # CSV text: nothing to convert
        convert = CONVERTERS[column.type]
        if trimmed:
            return self._distinct(column, cells, first_line, bad, convert)
        # Exports repeat values (a receipt's date, quantities, prices): convert each once.
        memo: dict[Any, Any] = {}
        out: list[Any] = []
        append = out.append
        for offset, cell in enumerate(cells):
            if cell is None or (type(cell) is str and not cell.strip()):
                append(None)
                continue
            key: Any = (type(cell), cell)
            try:
                value = memo.get(key, _MISSING)
            except TypeError:  # an unhashable cell (a Parquet list) is converted each time
                key, value = None, _MISSING
            if value is _MISSING:
                try:
                    value = convert(cell)
                except (ValueError, OverflowError, TypeError) as exc:
                    value = _Bad(str(exc))
                if key is not None:
                    memo[key] = value
            if type(value) is _Bad:
                self.errors.add(first_line + offset, column.name, value.reason)
                bad.add(offset)
                value = _BAD
            append(value)
        return out

    def _distinct(
        self,
        column: Column,
        cells: list[str | None],
        first_line: int,
        bad: set[int],
        convert: Callable[[Any], Any],
    ) -> list[Any]:
        """Convert each distinct text of a column once: exports repeat dates and prices."""
        converted: dict[str | None, Any] = {}
        failed = False
        for cell in set(cells):
            if cell is None:
                continue
            try:
                converted[cell] = convert(cell)
            except (ValueError, OverflowError, TypeError) as exc:
                converted[cell] = _Bad(str(exc))
                failed = True
        out = [converted.get(cell) for cell in cells]
        if failed:
            for offset, value in enumerate(out):
                if type(value) is _Bad:
                    self.errors.add(first_line + offset, column.name, value.reason)
                    bad.add(offset)
                    out[offset] = _BAD
        return out


class _Bad:
    """Marks a cell that did not convert; its error is recorded once per line."""

    __slots__ = ("reason",)

    def __init__(self, reason: str = "") -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return "<bad cell>"


_BAD: Any = _Bad()
_MISSING: Any = object()
