"""The problems found in a file: a bad cell or row, a file's log of them, an unreadable file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omnicanal.core.errors import InvalidError

MAX_KEPT_ERRORS = 1_000


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
