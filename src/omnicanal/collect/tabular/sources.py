"""One reader per format (CSV, Parquet, XLSX): a header row, then chunks of raw columns."""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from omnicanal.collect.tabular.detect import detect_delimiter, detect_encoding, sample_text
from omnicanal.collect.tabular.errors import ErrorLog, TabularError

CSV_BLOCK = 1024 * 1024  # larger blocks read no faster and hold more memory
CHUNK_ROWS = 20_000


@dataclass(slots=True)
class Chunk:
    columns: dict[int, list[Any]]  # file column index -> raw values
    rows: int
    trimmed: bool = False  # text cells already trimmed, blank ones None (CSV)


class Source:
    """One format's reader: the header row, then chunks of the wanted columns."""

    header: list[str]
    total: int = 0
    done: int = 0

    def chunks(self, indexes: list[int]) -> Iterator[Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        return None


class _CountingFile(io.RawIOBase):
    """A file that counts the bytes pyarrow has read from it, for the progress bar."""

    def __init__(self, handle: BinaryIO, source: Source) -> None:
        self._handle, self._source = handle, source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._handle.readinto(buffer)  # type: ignore[attr-defined]
        self._source.done += count or 0
        return int(count or 0)


class CsvSource(Source):
    def __init__(self, path: Path, file: str) -> None:
        self.path, self.file = path, file
        self.encoding = detect_encoding(path, file)
        sample = sample_text(path, self.encoding)
        if not sample.strip():
            raise TabularError(file, "the file is empty")
        self.delimiter = detect_delimiter(sample)
        first = next(csv.reader(io.StringIO(sample), delimiter=self.delimiter), [])
        self.header = [h.strip() for h in first]
        self.total = path.stat().st_size

    def chunks(self, indexes: list[int]) -> Iterator[Chunk]:
        names = [f"c{i}" for i in range(len(self.header))]
        wanted = [names[i] for i in indexes]
        options = {
            "read_options": pacsv.ReadOptions(
                column_names=names,
                skip_rows=1,
                block_size=CSV_BLOCK,
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
                stream = io.BufferedReader(_CountingFile(handle, self), CSV_BLOCK)
                for batch in pacsv.open_csv(stream, **options):
                    columns = {i: _trimmed(batch.column(k)) for k, i in enumerate(indexes)}
                    yield Chunk(columns, batch.num_rows, trimmed=True)
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


class ParquetSource(Source):
    def __init__(self, path: Path, file: str) -> None:
        self.file = file
        try:
            self.parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise TabularError(file, f"this is not a readable Parquet file ({exc})") from None
        self.header = list(self.parquet.schema_arrow.names)
        self.total = int(self.parquet.metadata.num_rows)

    def chunks(self, indexes: list[int]) -> Iterator[Chunk]:
        names = [self.header[i] for i in indexes]
        try:
            for batch in self.parquet.iter_batches(batch_size=CHUNK_ROWS, columns=names):
                columns = {i: _pylist(batch.column(k)) for k, i in enumerate(indexes)}
                self.done += batch.num_rows
                yield Chunk(columns, batch.num_rows)
        except (pa.ArrowException, OSError) as exc:
            raise TabularError(self.file, f"the Parquet file is damaged ({exc})") from None

    def close(self) -> None:
        self.parquet.close()


def _pylist(array: Any) -> list[Any]:
    kind = array.type
    if pa.types.is_timestamp(kind) and kind.unit == "ns":  # Python datetimes hold µs
        array = array.cast(pa.timestamp("us", kind.tz), safe=False)
    return list(array.to_pylist())


class XlsxSource(Source):
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

    def chunks(self, indexes: list[int]) -> Iterator[Chunk]:
        while True:
            block = [row for _, row in zip(range(CHUNK_ROWS), self.rows, strict=False)]
            if not block:
                return
            columns = {i: [r[i] if i < len(r) else None for r in block] for i in indexes}
            self.done += len(block)
            yield Chunk(columns, len(block))

    def close(self) -> None:
        self.book.close()
