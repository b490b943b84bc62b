"""A kind's canonical columns, and matching a file's header to them (names, aliases, --map)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from omnicanal.collect.tabular.errors import TabularError
from omnicanal.core.errors import InvalidError


class ColumnType(StrEnum):
    """How a cell's text becomes a value."""

    TEXT = "text"
    INT = "int"
    CENTS = "cents"  # a decimal amount, as integer cents
    DATETIME = "datetime"  # an aware datetime
    DATE = "date"
    BOOL = "bool"


# Short names, so an import kind's column table reads like its documentation.
T, N, C, D, B = (
    ColumnType.TEXT,
    ColumnType.INT,
    ColumnType.CENTS,
    ColumnType.DATETIME,
    ColumnType.BOOL,
)


@dataclass(frozen=True, slots=True)
class Column:
    """One canonical column of an import kind."""

    name: str
    type: ColumnType = ColumnType.TEXT
    required: bool = False
    aliases: tuple[str, ...] = ()
    help: str = ""


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


def match_header(
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
