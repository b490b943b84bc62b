"""The import kinds: what a user says about an import, what a kind is, and the registry.

Also the currency checks the kinds share: a row's currency code, and the rates given
to `--rate` for amounts in another currency than EUR.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from omnicanal.collect.segment import Limits
from omnicanal.collect.tabular.columns import Column
from omnicanal.collect.tabular.errors import ErrorLog
from omnicanal.collect.tabular.reader import Progress, TabularFile
from omnicanal.core.errors import InvalidError, NotFoundError
from omnicanal.store.engine import Database


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


# --- currencies ----------------------------------------------------------------------

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def currency_of(values: dict[str, Any], line: int, errors: ErrorLog) -> str | None:
    """Return the row's currency (EUR by default), or None after recording an error."""
    code = str(values.get("currency") or "EUR").upper()
    if not _CURRENCY.match(code):
        errors.add(line, "currency", f"{code[:12]!r} is not a currency code such as EUR")
        return None
    return code


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
