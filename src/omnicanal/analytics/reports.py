"""Every report, one way in: parameters, a scope, a table out.

A report is a name, a parameter model (the common scope parameters plus its own), and a
function from the warehouse tables and a `Scope` to a table of results. The HTTP API
(`/api/v1/reports/<name>`) and the CLI (`omnicanal report <name>`) are both generated
from this registry, so they accept the same parameters, validate them the same way and
return the same columns; a dashboard reads the same JSON.

Periods: `from` and `to` are local calendar days, both included (`--from 2026-03-01
--to 2026-03-31` is March). Without them a report covers the last 30 days that hold
data (the warehouse's last day with events or orders), so a demo loaded months ago still
shows its figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from omnicanal.analytics.scope import Scope, Tables
from omnicanal.core.channels import MediaClass, normalise_channel
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import EVENTS, ORDERS

DEFAULT_DAYS = 30
Compare = Literal["previous", "year", "none"]


def _split(values: Any) -> list[str]:
    """Accept repeated parameters and comma-separated lists alike."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


class ScopeParams(BaseModel):
    """What every report accepts: a period and filters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: date | None = Field(
        None, alias="from", description="First day (local), included. Default: 30 days before `to`."
    )
    to: date | None = Field(
        None, description="Last day (local), included. Default: the last day holding data."
    )
    channel: list[str] = Field(
        default_factory=list,
        description="Channels or kinds (`store`, `ads:google`); repeat or separate with commas.",
    )
    media_class: list[MediaClass] = Field(
        default_factory=list, description="paid, owned, earned, hors_media."
    )
    store: list[str] = Field(default_factory=list, description="Store codes (`paris-01`).")
    segment: str | None = Field(None, description="A built-in segment (new, omnichannel...).")

    @field_validator("channel", "store", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> list[str]:
        return _split(value)

    @field_validator("media_class", mode="before")
    @classmethod
    def _classes(cls, value: Any) -> list[str]:
        return _split(value)

    @field_validator("channel")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        out = []
        for channel in value:
            try:
                out.append(normalise_channel(channel))
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return out


class CompareParams(ScopeParams):
    """Reports whose figures are compared with another period."""

    compare: Compare = Field(
        "previous",
        description="previous: the period of the same length just before; year: a year "
        "earlier; none.",
    )


@dataclass
class ReportResult:
    """A report's table, with notes a reader should see beside it."""

    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


Runner = Callable[[Tables, Scope, Any], "ReportResult | pd.DataFrame | Sequence[Any]"]


@dataclass(frozen=True)
class ReportSpec:
    """One report: its name, parameters and computation."""

    name: str
    summary: str
    params: type[ScopeParams]
    run: Runner
    period_required: bool = True  # False: the report looks at all history up to `to`


REGISTRY: dict[str, ReportSpec] = {}


def report(
    name: str, params: type[ScopeParams] = ScopeParams, *, summary: str
) -> Callable[[Runner], Runner]:
    """Register a report function under `name`."""

    def register(func: Runner) -> Runner:
        REGISTRY[name] = ReportSpec(name, summary, params, func)
        return func

    return register


def spec(name: str) -> ReportSpec:
    """Return a report by name, or say which exist."""
    found = REGISTRY.get(name)
    if found is None:
        raise InvalidError(
            f"unknown report {name!r}",
            errors=[{"field": "report", "reason": f"must be one of {', '.join(sorted(REGISTRY))}"}],
        )
    return found


def last_data_day(tables: Tables) -> date | None:
    """The last local day holding events or orders, None for an empty warehouse."""
    days = [
        tables[EVENTS].day.max().name("d").to_pyarrow().as_py(),
        tables[ORDERS].day.max().name("d").to_pyarrow().as_py(),
    ]
    found = [d for d in days if d is not None]
    return max(found) if found else None


def scope_of(tables: Tables, params: ScopeParams) -> Scope:
    """Turn parameters into a Scope, filling the default period and resolving the segment."""
    to = params.to
    if to is None:
        to = last_data_day(tables) or date.today()
    start = params.from_ or to - timedelta(days=DEFAULT_DAYS - 1)
    if start > to:
        raise InvalidError(
            "the period is empty",
            errors=[{"field": "from", "reason": f"must not be after `to` ({to.isoformat()})"}],
        )
    scope = Scope(
        start=start,
        end=to + timedelta(days=1),
        channels=tuple(params.channel),
        media_classes=tuple(str(m) for m in params.media_class),
        stores=tuple(params.store),
    )
    if params.segment:
        from omnicanal.analytics.segments import segment

        scope = Scope(
            start=scope.start,
            end=scope.end,
            channels=scope.channels,
            media_classes=scope.media_classes,
            stores=scope.stores,
            persons=segment(tables, scope, params.segment),
        )
    return scope


def _frame(value: ReportResult | pd.DataFrame | Sequence[Any]) -> ReportResult:
    if isinstance(value, ReportResult):
        return value
    if isinstance(value, pd.DataFrame):
        return ReportResult(value)
    rows = [asdict(v) if is_dataclass(v) and not isinstance(v, type) else dict(v) for v in value]
    return ReportResult(pd.DataFrame(rows))


def run(name: str, tables: Tables, params: ScopeParams) -> dict[str, Any]:
    """Run a report and return its JSON envelope (see `envelope`)."""
    found = spec(name)
    scope = scope_of(tables, params)
    result = _frame(found.run(tables, scope, params))
    if last_data_day(tables) is None:
        result.notes.append(
            "The warehouse holds no data yet: `omnicanal warehouse sync` fills it "
            "(`omnicanal serve` syncs it in the background)."
        )
    return envelope(found, scope, params, result)


_INFERRED = {
    "integer": "integer",
    "floating": "number",
    "mixed-integer-float": "number",
    "decimal": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "datetime64": "datetime",
}


def _kind(series: pd.Series) -> str:
    """The JSON type of a column, looking through the missing values of object columns."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return _INFERRED.get(pd.api.types.infer_dtype(series, skipna=True), "string")


def _plain(value: Any) -> Any:
    """A JSON-ready value: NaN and NaT become null, numpy scalars Python ones."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is pd.NaT or (not isinstance(value, str | bytes | dict) and pd.isna(value)):
        return None
    return value


def envelope(
    found: ReportSpec, scope: Scope, params: ScopeParams, result: ReportResult
) -> dict[str, Any]:
    """The report as JSON: what it covers, its columns with their types, its rows."""
    frame = result.frame
    columns = [{"name": str(c), "type": _kind(frame[c])} for c in frame.columns]
    rows = [
        {str(k): _plain(v) for k, v in zip(frame.columns, values, strict=True)}
        for values in frame.itertuples(index=False, name=None)
    ]
    return {
        "report": found.name,
        "scope": {
            "from": scope.start.isoformat(),
            "to": (scope.end - timedelta(days=1)).isoformat(),
            "channel": list(scope.channels),
            "media_class": list(scope.media_classes),
            "store": list(scope.stores),
            "segment": params.segment,
            "compare": getattr(params, "compare", None),
        },
        "columns": columns,
        "rows": rows,
        "notes": result.notes,
    }


def names() -> Iterable[str]:
    """The registered reports, sorted."""
    return sorted(REGISTRY)


__all__ = [
    "REGISTRY",
    "CompareParams",
    "ReportResult",
    "ReportSpec",
    "ScopeParams",
    "envelope",
    "names",
    "report",
    "run",
    "scope_of",
    "spec",
]
