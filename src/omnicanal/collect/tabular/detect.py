"""Guess what a file does not say: its format, a CSV's encoding and its delimiter."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import BinaryIO

import charset_normalizer

from omnicanal.collect.tabular.errors import TabularError

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 256 * 1024
SINGLE_BYTE = ("cp1252", "latin_1", "cp850", "mac_roman")


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
        head = handle.read(SAMPLE_BYTES)
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
                if len(sample) > SAMPLE_BYTES:
                    break
    matches = charset_normalizer.from_bytes(bytes(sample), cp_isolation=list(SINGLE_BYTE))
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


def sample_text(path: Path, encoding: str) -> str:
    with path.open("rb") as handle:
        raw = handle.read(SAMPLE_BYTES)
    text = raw.decode(encoding, errors="replace").removeprefix("\ufeff")
    if len(raw) == SAMPLE_BYTES and "\n" in text:
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
