"""The reader: a file opened for a kind's columns; typed rows out, bad cells logged."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnicanal.collect.tabular.columns import Column, ColumnType, match_header
from omnicanal.collect.tabular.convert import CONVERTERS
from omnicanal.collect.tabular.detect import detect_format
from omnicanal.collect.tabular.errors import ErrorLog, TabularError
from omnicanal.collect.tabular.sources import (
    Chunk,
    CsvSource,
    ParquetSource,
    Source,
    XlsxSource,
)

Progress = Callable[[int, int, int], None]
"""Called with (rows read, units done, units in all): bytes for CSV, rows otherwise."""


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
    _source: Source = field(init=False)
    _closed: bool = field(init=False, default=False)
    _found: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.file = self.file or self.path.name
        self.errors = ErrorLog(self.file)
        self.format = detect_format(self.path, self.file)
        sources = {"csv": CsvSource, "parquet": ParquetSource, "xlsx": XlsxSource}
        self._source = sources[self.format](self.path, self.file)
        header = self._source.header
        if not any(str(h).strip() for h in header):
            raise TabularError(self.file, "the first row holds no column names", line=1)
        self._found, self.ignored = match_header(self.file, header, self.columns, self.mapping)
        self.matched = {name: str(header[i]) for name, i in self._found.items()}

    @property
    def encoding(self) -> str | None:
        """Return the CSV encoding found (None for Parquet and XLSX)."""
        return self._source.encoding if isinstance(self._source, CsvSource) else None

    @property
    def delimiter(self) -> str | None:
        """Return the CSV delimiter found (None for Parquet and XLSX)."""
        return self._source.delimiter if isinstance(self._source, CsvSource) else None

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
        self, chunk: Chunk, spec: list[tuple[Column, int]]
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
