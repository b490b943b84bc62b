"""What the journey reports share: the history, the markers, levels, filters and fetching.

Journey reports look before the period (a path starts with the person's first touch,
a stage depends on whether the person had bought before), so they read each person's
history from the first day the warehouse holds up to the end of the period, then keep
what the period asks for.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from typing import Final

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.expr.types.relations import CachedTable

from omnicanal.analytics.scope import Scope, Tables, channel_matches, in_period, with_filters
from omnicanal.analytics.touchpoints import (
    BACK_OFFICE,
    ENGAGEMENT_EVENTS,
    MESSAGE,
    MESSAGE_PREFIXES,
    NOT_TOUCHES,
    OFFLINE,
    SITE_SOURCES,
    SITE_TYPES,
    VISIT,
    conversions,
    touchpoints,
)
from omnicanal.core.channels import KINDS, MediaClass
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import EVENTS, SOURCES

#: Earlier than any data the warehouse can hold: "since the beginning".
HISTORY_START: Final = date(1900, 1, 1)
#: A purchase without any touchpoint before it (in paths and time to convert).
NONE: Final = "(none)"
#: The row of a broken-down report that counts every group together.
ALL: Final = "(all)"
#: A channel the data does not give.
UNKNOWN: Final = "(unknown)"
#: How finely channels are told apart: `store:paris-01`, its kind `store`, or its media
#: class `hors_media` (from the channel taxonomy).
LEVELS: Final = ("channel", "kind", "media_class")
#: Separator of the steps of a path, as shown to users.
ARROW: Final = " → "
#: Kinds that reach people who may not know the brand yet: every paid, earned and
#: hors-média kind except the stores themselves.
ACQUISITION_KINDS: Final = tuple(
    sorted(
        name
        for name, kind in KINDS.items()
        if kind.media_class is not MediaClass.OWNED and name != "store"
    )
)
_KIND = r"^([^:]*)"
#: Names of the events messaging platforms send (as `omnicanal.analytics.touchpoints`).


def history(scope: Scope, *, since: date | None = None) -> Scope:
    """The same filters from the beginning of the data (or `since`) to the period's end."""
    return replace(scope, start=since or HISTORY_START)


def check_choice(value: str | None, choices: Sequence[str | None], field: str) -> None:
    """Raise InvalidError naming `field` when `value` is not one of `choices`."""
    if value not in choices:
        names = ", ".join("none" if c is None else c for c in choices)
        raise InvalidError(
            f"Unknown {field} {value!r}.",
            errors=[{"field": field, "reason": f"must be one of {names}"}],
        )


def check_positive(value: int, field: str) -> None:
    """Raise InvalidError naming `field` unless `value` is a whole number of 1 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidError(
            f"{field} must be a whole number of 1 or more, not {value!r}.",
            errors=[{"field": field, "reason": "must be a whole number of 1 or more"}],
        )


def kind_of(channel: ir.StringValue) -> ir.StringValue:
    """The kind of a channel: `store` for `store:paris-01`, `web` for `web`."""
    return channel.re_extract(_KIND, 1)


def at_level(channel: ir.StringValue, level: str) -> ir.StringValue:
    """The channel as the report shows it: exact, its kind or its media class."""
    check_choice(level, LEVELS, "level")
    if level == "media_class":
        return media_class_of(channel).fill_null(UNKNOWN)
    known = channel.fill_null(UNKNOWN)
    return known if level == "channel" else kind_of(known)


def media_class_of(channel: ir.StringValue) -> ir.StringValue:
    """The taxonomy's media class of a channel (orders carry no media class column)."""
    kind = kind_of(channel)
    branches = [(kind == name, str(k.media_class)) for name, k in KINDS.items()]
    return ibis.cases(*branches, else_=ibis.null("string"))


def matches(
    scope: Scope,
    channel: ir.StringValue,
    media_class: ir.StringValue | None = None,
    store: ir.StringValue | None = None,
) -> ir.BooleanValue:
    """True where a row passes the scope's channel, media-class and store filters.

    Without a store column, a store filter keeps the channels `store:<code>`, as
    `with_filters` does.
    """
    keep: ir.BooleanValue = ibis.literal(True)
    if scope.channels:
        keep = keep & channel_matches(channel, scope.channels).fill_null(False)
    if scope.media_classes and media_class is not None:
        keep = keep & media_class.isin(list(scope.media_classes)).fill_null(False)
    if scope.stores:
        wanted = channel.isin([f"store:{s}" for s in scope.stores])
        if store is not None:
            wanted = wanted | store.isin(list(scope.stores))
        keep = keep & wanted.fill_null(False)
    return keep


def of_persons(table: ir.Table, scope: Scope) -> ir.Table:
    """Rows of the scope's people (a segment), or all rows without one."""
    return with_filters(table, scope, channel=None, person="person_id")


def touch_history(tables: Tables, scope: Scope, *, since: date | None = None) -> ir.Table:
    """Every touchpoint from the beginning of the data (or `since`) to the period's end."""
    return of_persons(touchpoints(tables, history(scope, since=since)), scope)


def first_touches(tables: Tables, scope: Scope) -> ir.Table:
    """Each person's first touchpoint ever (before the period's end): person_id, ts, kind,
    channel, media_class.

    Read from the events that make touchpoints (see `omnicanal.analytics.touchpoints`)
    without cutting visits, which is much cheaper over years of history: a visit starts
    with its first event, so a person's first visit starts at their first e-shop or app
    event, on that event's channel. At the same instant the first is the first by kind
    (message, offline, visit), then by event order.
    """
    events = of_persons(in_period(tables[EVENTS], history(scope)), scope)
    sources = tables[SOURCES]
    site = sources.filter(sources.channel.isin(list(SITE_SOURCES))).source_id
    name = events.event.fill_null("")
    platform: ir.BooleanValue = ibis.literal(False)
    for prefix in MESSAGE_PREFIXES:
        platform = platform | name.startswith(prefix)
    offline = (
        ~events.online.fill_null(True)
        & (events.type == "track")
        & ~name.isin(list(NOT_TOUCHES))
        & (events.channel.fill_null("") != "import")
    )
    kind = ibis.cases(
        (
            events.source_id.isin(site)
            & events.type.isin(list(SITE_TYPES))
            & ~platform
            & ~name.isin(list(BACK_OFFICE)),
            VISIT,
        ),
        (name.isin(list(ENGAGEMENT_EVENTS)), MESSAGE),
        (offline, OFFLINE),
        else_=ibis.null("string"),
    )
    touching = events.mutate(kind=kind)
    touching = touching.filter(touching.kind.notnull())
    firsts = touching.group_by("person_id").aggregate(first_ts=touching.ts.min())
    tied = touching.join(
        firsts, (touching.person_id == firsts.person_id) & (touching.ts == firsts.first_ts)
    )
    order = ibis.window(group_by="person_id", order_by=["kind", "event_id"])
    tied = tied.mutate(rank=ibis.row_number().over(order))
    first = tied.filter(tied["rank"] == 0)
    return first.select("person_id", "kind", "channel", "media_class", ts=instant(first.ts))


def order_history(tables: Tables, scope: Scope) -> ir.Table:
    """Every order up to the period's end, with the person's `ordinal` of it (1 for the
    first) and `previous_ts`, the time of their order before."""
    orders = of_persons(conversions(tables, history(scope)), scope)
    order = ibis.window(group_by="person_id", order_by=["ts", "order_id"])
    return orders.mutate(
        ordinal=ibis.row_number().over(order) + 1, previous_ts=orders.ts.lag().over(order)
    )


def instant(value: ir.TimestampValue) -> ir.TimestampValue:
    """A timestamp in one type whatever the table's precision, so that unions line up."""
    return value.cast("timestamp")


def days_between(start: ir.TimestampValue, end: ir.TimestampValue) -> ir.FloatingValue:
    """Days from `start` to `end`, fractional."""
    seconds = end.epoch_seconds().cast("float64") - start.epoch_seconds().cast("float64")
    return seconds / 86_400.0


@contextmanager
def computed(expr: ir.Table) -> Iterator[ir.Table]:
    """Compute an expression once for the several queries that read it, then free it.

    Engines inline a shared sub-query wherever it is used; a report that reads the same
    touchpoints twice would otherwise sessionise the event log twice.
    """
    with warnings.catch_warnings():
        # Ibis 12 reads a new table's schema through a call DuckDB 2.0 deprecates.
        warnings.filterwarnings("ignore", "fetch_arrow_table", DeprecationWarning)
        table = expr.cache()
    try:
        yield table
    finally:
        if isinstance(table, CachedTable):
            table.release()


def fetch(expr: ir.Table) -> pd.DataFrame:
    """Run an expression and return its rows (through Arrow, which every backend gives)."""
    frame: pd.DataFrame = expr.to_pyarrow().to_pandas()
    return frame


def euros(cents: pd.Series) -> pd.Series:
    """Euro cents as euros, rounded to the cent."""
    return (cents.astype("float64") / 100.0).round(2)


def ratio(part: pd.Series, whole: pd.Series) -> pd.Series:
    """`part / whole` as a float, empty (NaN) where `whole` is zero."""
    whole = whole.astype("float64")
    return part.astype("float64").div(whole.where(whole != 0))
