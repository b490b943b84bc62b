"""What a report looks at: a period, and optionally channels, media classes, stores, people.

Every analytics function takes the warehouse tables (`Tables`, see
`omnicanal.warehouse.schema`) and a `Scope`, and applies the scope with the helpers
below, so that "revenue of paid channels in store 12 in March" means the same thing in
every report and on every engine.

Periods are local calendar days (the warehouse's `day` column), `start` included and
`end` excluded, like Python ranges: March is `Scope(date(2026, 3, 1), date(2026, 4, 1))`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Final

import ibis
import ibis.expr.types as ir

from omnicanal.core.errors import InvalidError

#: The warehouse tables by name (omnicanal.warehouse.schema), on any Ibis backend.
Tables = Mapping[str, ir.Table]

GRAINS: Final = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True)
class Scope:
    """A period and optional filters; empty filters keep everything."""

    start: date
    end: date  # excluded
    channels: tuple[str, ...] = ()  # exact channels (store:paris-01) or kinds (store, ads)
    media_classes: tuple[str, ...] = ()  # paid, owned, earned, hors_media
    stores: tuple[str, ...] = ()  # store codes, as in orders.store / channel store:<code>
    persons: ir.Table | None = None  # one column person_id: a segment's members

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise InvalidError(
                "the period is empty",
                errors=[{"field": "to", "reason": "must be after `from`"}],
            )

    @property
    def days(self) -> int:
        """Length of the period in days."""
        return (self.end - self.start).days

    def previous(self) -> Scope:
        """The period of the same length just before, with the same filters."""
        length = self.end - self.start
        return replace(self, start=self.start - length, end=self.start)

    def shifted_years(self, years: int = -1) -> Scope:
        """The same dates `years` years away (29 February becomes the 28th)."""

        def shift(d: date) -> date:
            try:
                return d.replace(year=d.year + years)
            except ValueError:
                return d.replace(year=d.year + years, day=28)

        return replace(self, start=shift(self.start), end=shift(self.end))


def in_period(table: ir.Table, scope: Scope, column: str = "day") -> ir.Table:
    """Rows of the scope's period."""
    day = table[column]
    return table.filter((day >= ibis.literal(scope.start)) & (day < ibis.literal(scope.end)))


def channel_matches(column: ir.StringValue, channels: tuple[str, ...]) -> ir.BooleanValue:
    """True where the channel is one of `channels`, a bare kind matching all its channels.

    `store` matches `store:paris-01`; `store:paris-01` matches only itself.
    """
    condition: ir.BooleanValue = ibis.literal(False)
    exact = [c for c in channels if ":" in c]
    kinds = [c for c in channels if ":" not in c]
    if exact:
        condition = condition | column.isin(exact)
    for kind in kinds:
        condition = condition | (column == kind) | column.startswith(kind + ":")
    return condition


def with_filters(
    table: ir.Table,
    scope: Scope,
    *,
    channel: str | None = "channel",
    media_class: str | None = None,
    store: str | None = None,
    person: str | None = "person_id",
) -> ir.Table:
    """Apply the scope's non-period filters to the columns named (None: not applicable).

    A store filter on a table without a store column uses the channel (`store:<code>`).
    """
    if scope.channels and channel is not None:
        table = table.filter(channel_matches(table[channel], scope.channels))
    if scope.media_classes and media_class is not None:
        table = table.filter(table[media_class].isin(list(scope.media_classes)))
    if scope.stores:
        if store is not None:
            table = table.filter(table[store].isin(list(scope.stores)))
        elif channel is not None:
            table = table.filter(table[channel].isin([f"store:{s}" for s in scope.stores]))
    if scope.persons is not None and person is not None:
        members = scope.persons.select("person_id").distinct()
        table = table.semi_join(members, table[person] == members.person_id)
    return table


def truncate(day: ir.DateValue, grain: str) -> ir.DateValue:
    """The first day of the day's week (Monday), month, quarter or year."""
    if grain not in GRAINS:
        raise InvalidError(
            "unknown time grain",
            errors=[{"field": "grain", "reason": f"must be one of {', '.join(GRAINS)}"}],
        )
    if grain == "day":
        return day
    unit = {"week": "W", "month": "M", "quarter": "Q", "year": "Y"}[grain]
    return day.truncate(unit)
