"""Funnels: how many people (and visits) go through steps in order, and where they drop.

A person enters the funnel at their first step-1 occurrence in the period, at `t1`;
step *k* is reached by the first step-*k* occurrence at or after the one that reached
step *k - 1* (equal timestamps count as in order) and no later than `t1 + window_days`,
even past the end of the period. Visit counts apply the same rule inside one visit
(no window is needed): a visit reaches step *k* when it holds the steps up to *k* in
order. A step is an event name (`Product Viewed`), `visit` (a visit starting) or `order`
(an order from any channel), optionally restricted to channels: `order@store`,
`Product Viewed@web,app`, `Product Viewed@online` (`online`/`offline` test the
occurrence's `online` flag; a bare kind such as `store` matches all its channels).

Broken down `by` a dimension, each person counts in the group of the occurrence that
put them in the funnel: `channel` (the entry channel of the visit it happened in, or its
own channel outside visits, such as a store order), `kind`, `media_class`, or `device`
(the collecting source's platform: `web` for the e-shop, `app`, or the importer's
channel for tills and other offline files).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Final

import ibis
import ibis.expr.types as ir
import pandas as pd

from omnicanal.analytics.journeys_common import (
    ALL,
    UNKNOWN,
    at_level,
    check_choice,
    check_positive,
    computed,
    fetch,
    instant,
    matches,
    media_class_of,
    of_persons,
    ratio,
)
from omnicanal.analytics.scope import Scope, Tables, channel_matches, in_period
from omnicanal.analytics.touchpoints import sessions
from omnicanal.core.channels import parse_channel
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import EVENTS, ORDERS, SOURCES

VISIT: Final = "visit"
ORDER: Final = "order"
DEFAULT_STEPS: Final = (
    "visit",
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
)
FUNNEL_BY: Final = (None, "channel", "kind", "media_class", "device")
#: Columns of `Funnel.steps` (with the `by` column first when broken down).
STEP_COLUMNS: Final = (
    "step_index",
    "step",
    "people",
    "rate",
    "step_rate",
    "drop_off",
    "drop_off_rate",
    "visits",
    "visit_rate",
    "visit_step_rate",
    "breaking_point",
)
#: Columns of `Funnel.breaking_points` (with the `by` column first when broken down).
BREAK_COLUMNS: Final = (
    "step_index",
    "step",
    "from_step",
    "people_before",
    "people",
    "drop_off",
    "drop_off_rate",
)
_PLACES: Final = ("online", "offline")


@dataclass(frozen=True)
class Step:
    """One funnel step: an event name, `visit` or `order`, optionally on some channels."""

    event: str
    channels: tuple[str, ...] = ()  # channels, kinds, `online` or `offline`; empty: any
    label: str | None = None

    @property
    def name(self) -> str:
        """The step as reports show it."""
        if self.label:
            return self.label
        return self.event + ("@" + ",".join(self.channels) if self.channels else "")


@dataclass(frozen=True)
class Funnel:
    """A funnel's counts per step (and group), and where each group's journey breaks.

    `steps` has one row per step and group (group `(all)` adds every group up);
    `breaking_points` one row per group: the step that loses the largest share of the
    people who reached the step before it (the earliest on a tie; none when nobody is
    lost). See STEP_COLUMNS and BREAK_COLUMNS.
    """

    steps: pd.DataFrame
    breaking_points: pd.DataFrame
    by: str | None
    window_days: int


#: Research online, buy in a store (ROPO): a product viewed online, then a store order.
ROPO_STEPS: Final = (
    Step("Product Viewed", ("online",), "online research"),
    Step(ORDER, ("store",), "store purchase"),
)


def parse_step(step: str | Step) -> Step:
    """Read `event[@channel,...]` (or check a Step), naming what is wrong."""
    if isinstance(step, str):
        event, at, where = step.rpartition("@")
        if not at:
            event, where = where, ""
        channels = tuple(c.strip() for c in where.split(",") if c.strip())
        step = Step(event.strip(), channels)
    if not step.event.strip():
        raise InvalidError(
            "A funnel step has no event name.",
            errors=[{"field": "steps", "reason": "empty event name"}],
        )
    for channel in step.channels:
        if channel.lower() in _PLACES:
            continue
        try:
            parse_channel(channel)
        except ValueError as exc:
            raise InvalidError(
                f"Step {step.name!r}: {exc}", errors=[{"field": "steps", "reason": str(exc)}]
            ) from exc
    return step


def parse_steps(steps: tuple[str | Step, ...] | list[str | Step]) -> tuple[Step, ...]:
    """Read every step; a funnel needs two or more distinct steps."""
    parsed = tuple(parse_step(s) for s in steps)
    if len(parsed) < 2:
        raise InvalidError(
            "A funnel needs at least two steps.",
            errors=[{"field": "steps", "reason": "fewer than two steps"}],
        )
    names = [s.name for s in parsed]
    if len(set(names)) < len(names):
        raise InvalidError(
            "A funnel step appears twice.",
            errors=[{"field": "steps", "reason": "steps must be distinct"}],
        )
    return parsed


def funnel(
    tables: Tables,
    scope: Scope,
    steps: tuple[str | Step, ...] | list[str | Step] = DEFAULT_STEPS,
    *,
    window_days: int = 30,
    by: str | None = None,
    compare: bool = False,
) -> Funnel:
    """Count people and visits reaching each step in order, and find where they drop.

    Args:
        steps: event names, `visit` or `order`, each optionally `@channel,...`.
        window_days: days after entering the funnel within which later steps count.
        by: None, `channel`, `kind`, `media_class` or `device` (see the module).
        compare: add the previous period of the same length: `previous_people`,
            `previous_rate` and `rate_change` (this period's rate minus the previous).
    """
    parsed = parse_steps(steps)
    check_positive(window_days, "window_days")
    check_choice(by, FUNNEL_BY, "by")
    span = Scope(scope.start, scope.end + timedelta(days=window_days + 1))
    mapped = _mapped(tables, scope, span, parsed, device=by == "device")
    with computed(mapped) as occurrences:
        entries = _entries(tables, scope, occurrences, by)
        people = _people(entries, occurrences, parsed, window_days)
        visits = _visits(entries, occurrences, parsed)
        frame = fetch(ibis.union(people, visits))
    report = _report(frame, parsed, by, window_days)
    if not compare:
        return report
    before = funnel(tables, scope.previous(), parsed, window_days=window_days, by=by)
    return replace(report, steps=_compared(report.steps, before.steps, by))


def _compared(steps: pd.DataFrame, before: pd.DataFrame, by: str | None) -> pd.DataFrame:
    keys = ["step_index"] if by is None else [by, "step_index"]
    previous = before[[*keys, "people", "rate"]].rename(
        columns={"people": "previous_people", "rate": "previous_rate"}
    )
    steps = steps.merge(previous, on=keys, how="left")
    steps["previous_people"] = steps["previous_people"].fillna(0).astype("int64")
    steps["rate_change"] = steps["rate"] - steps["previous_rate"]
    return steps


def _entries(tables: Tables, scope: Scope, occurrences: ir.Table, by: str | None) -> ir.Table:
    """Step-1 occurrences of the period that pass the filters, with their group."""
    entries = occurrences.filter(
        (occurrences.step == 1)
        & (occurrences.day >= ibis.literal(scope.start))
        & (occurrences.day < ibis.literal(scope.end))
    )
    entries = entries.filter(
        matches(scope, entries.place_channel, entries.place_media_class, entries.store)
    )
    if by == "device":
        entries = _with_device(tables, entries)
    return entries.mutate(group=_group(entries, by))


def research_online_buy_offline(
    tables: Tables, scope: Scope, *, window_days: int = 30, by: str | None = None
) -> Funnel:
    """The cross-channel funnel: products viewed online, then an order in a store."""
    return funnel(tables, scope, ROPO_STEPS, window_days=window_days, by=by)


def _where(step: Step, channel: ir.StringValue, online: ir.BooleanValue) -> ir.BooleanValue:
    """True where an occurrence is on one of the step's channels (always without any)."""
    if not step.channels:
        return ibis.literal(True)
    places = {c.lower() for c in step.channels if c.lower() in _PLACES}
    named = tuple(c for c in step.channels if c.lower() not in _PLACES)
    keep: ir.BooleanValue = ibis.literal(False)
    if named:
        keep = keep | channel_matches(channel, named).fill_null(False)
    if "online" in places:
        keep = keep | online.fill_null(False)
    if "offline" in places:
        keep = keep | ~online.fill_null(True)
    return keep


_COLUMNS: Final = (
    "person_id",
    "ts",
    "day",
    "end_ts",
    "channel",
    "media_class",
    "store",
    "source_id",
    "step",
)


def _occurrences(tables: Tables, span: Scope, step: Step, index: int) -> ir.Table:
    """The rows where a step happened, in the span, as `_COLUMNS`."""
    if step.event == VISIT:
        rows = sessions(tables, span).mutate(end_ts=ibis.null("timestamp"))
        rows = rows.mutate(store=ibis.null("string"), source_id=ibis.null("int32"))
    elif step.event == ORDER:
        rows = in_period(tables[ORDERS], span)
        rows = rows.mutate(end_ts=ibis.null("timestamp"), media_class=media_class_of(rows.channel))
    else:
        rows = in_period(tables[EVENTS], span)
        rows = rows.filter(rows.event == step.event)
        rows = rows.mutate(end_ts=ibis.null("timestamp"), store=ibis.null("string"))
    rows = rows.filter(_where(step, rows.channel, rows.online))
    rows = rows.mutate(ts=instant(rows.ts), step=ibis.literal(index, "int64"))
    return rows.select(*_COLUMNS)


def _mapped(
    tables: Tables, scope: Scope, span: Scope, steps: tuple[Step, ...], *, device: bool
) -> ir.Table:
    """Every step occurrence with the visit it happened in (if any) and its place.

    Visit starts (step 0) and occurrences are sorted together per person; a running
    count of visit starts numbers the visit each occurrence follows, and the occurrence
    is in it when it comes no later than the visit's last event. `place_channel` and
    `place_media_class` are the visit's inside a visit, the occurrence's own outside.
    """
    visits = sessions(tables, span)
    visits = visits.mutate(
        ts=instant(visits.ts),
        end_ts=instant(visits.end_ts),
        step=ibis.literal(0, "int64"),
        store=ibis.null("string"),
    )
    if device:
        visits = _with_source(tables, span, visits)
    else:
        visits = visits.mutate(source_id=ibis.null("int32"))
    parts = [visits.select(*_COLUMNS)]
    parts += [_occurrences(tables, span, s, i) for i, s in enumerate(steps, start=1)]
    rows = of_persons(ibis.union(*parts), scope)
    running = ibis.cumulative_window(group_by="person_id", order_by=["ts", "step"])
    rows = rows.mutate(visit_no=(rows.step == 0).cast("int64").sum().over(running))
    starts = rows.filter(rows.step == 0).select(
        "person_id",
        "visit_no",
        visit_end=rows.end_ts,
        visit_channel=rows.channel,
        visit_media_class=rows.media_class,
        visit_source=rows.source_id,
    )
    found = rows.filter(rows.step > 0)
    found = found.left_join(
        starts, (found.person_id == starts.person_id) & (found.visit_no == starts.visit_no)
    ).drop("person_id_right", "visit_no_right")
    inside = found.visit_end.notnull() & (found.ts <= found.visit_end)
    return found.select(
        "person_id",
        "ts",
        "day",
        "step",
        "store",
        visit_no=ibis.ifelse(inside, found.visit_no, ibis.null("int64")),
        place_channel=ibis.ifelse(inside, found.visit_channel, found.channel),
        place_media_class=ibis.ifelse(inside, found.visit_media_class, found.media_class),
        place_source=ibis.ifelse(inside, found.visit_source, found.source_id),
    )


def _with_source(tables: Tables, span: Scope, visits: ir.Table) -> ir.Table:
    """Visits with the source of their first event (the e-shop or the app)."""
    events = in_period(tables[EVENTS], span).select("person_id", "ts", "source_id")
    first = visits.select("person_id", "ts").join(
        events, (visits.person_id == events.person_id) & (visits.ts == events.ts)
    )
    first = first.group_by("person_id", "ts").aggregate(source_id=first.source_id.min())
    return visits.left_join(
        first, (visits.person_id == first.person_id) & (visits.ts == first.ts)
    ).drop("person_id_right", "ts_right")


def _group(entries: ir.Table, by: str | None) -> ir.StringValue:
    if by is None:
        return ibis.literal(ALL)
    if by == "media_class":
        return entries.place_media_class.fill_null(UNKNOWN)
    if by == "device":
        return entries.device.fill_null(UNKNOWN)
    return at_level(entries.place_channel, by)


def _with_device(tables: Tables, entries: ir.Table) -> ir.Table:
    sources = tables[SOURCES]
    sources = sources.select(device_source=sources.source_id, device=sources.channel)
    joined = entries.left_join(sources, entries.place_source == sources.device_source)
    return joined.drop("device_source")


def _count(reached: ir.Table, n_steps: int, measure: str) -> ir.Table:
    """Per group, how many rows reached each step (`n1`, `n2`...: non-empty `s<k>`)."""
    counts = {f"n{k}": reached[f"s{k}"].count() for k in range(1, n_steps + 1)}
    counted = reached.group_by("group").aggregate(**counts)
    return counted.mutate(measure=ibis.literal(measure))


def _after(
    step: Step, previous: Step, at: ir.TimestampValue, last: ir.TimestampValue
) -> ir.BooleanValue:
    """In order: at or after the previous step, strictly after it for the same event."""
    return at > last if step.event == previous.event else at >= last


def _people(
    entries: ir.Table, occurrences: ir.Table, steps: tuple[Step, ...], window_days: int
) -> ir.Table:
    """People per group reaching each step in order within the window after entering.

    Each step is a left join, so one row per person carries the time of every step
    reached (`s1`, `s2`...), empty from the first step missed.
    """
    order = ibis.window(group_by="person_id", order_by=["ts", "group"])
    ranked = entries.mutate(n=ibis.row_number().over(order))
    reached = ranked.filter(ranked.n == 0).select("person_id", "group", t1=ranked.ts, s1=ranked.ts)
    window = ibis.interval(days=window_days)
    for index in range(2, len(steps) + 1):
        found = occurrences.filter(occurrences.step == index)
        later = found.select(pid=found.person_id, at=found.ts)
        last = reached[f"s{index - 1}"]
        joined = reached.left_join(
            later,
            (reached.person_id == later.pid)
            & _after(steps[index - 1], steps[index - 2], later.at, last)
            & (later.at <= reached.t1 + window),
        )
        keys = list(reached.columns)
        reached = joined.group_by(keys).aggregate(**{f"s{index}": joined.at.min()})
    return _count(reached, len(steps), "people")


def _visits(entries: ir.Table, occurrences: ir.Table, steps: tuple[Step, ...]) -> ir.Table:
    """Visits per group holding the steps up to each one in order."""
    inside = entries.filter(entries.visit_no.notnull())
    reached = inside.group_by("person_id", "visit_no", "group").aggregate(s1=inside.ts.min())
    for index in range(2, len(steps) + 1):
        found = occurrences.filter((occurrences.step == index) & occurrences.visit_no.notnull())
        later = found.select(pid=found.person_id, vno=found.visit_no, at=found.ts)
        last = reached[f"s{index - 1}"]
        joined = reached.left_join(
            later,
            (reached.person_id == later.pid)
            & (reached.visit_no == later.vno)
            & _after(steps[index - 1], steps[index - 2], later.at, last),
        )
        keys = list(reached.columns)
        reached = joined.group_by(keys).aggregate(**{f"s{index}": joined.at.min()})
    return _count(reached, len(steps), "visits")


def _report(
    frame: pd.DataFrame, steps: tuple[Step, ...], by: str | None, window_days: int
) -> Funnel:
    table = _grid(frame, len(steps), by)
    table["step"] = table["step_index"].map(lambda i: steps[i - 1].name)
    table = _rates(table)
    breaks = table[table["breaking_point"]].copy()
    breaks["from_step"] = breaks["step_index"].map(lambda i: steps[i - 2].name)
    breaks["people_before"] = breaks["people"] + breaks["drop_off"]
    group = [] if by is None else [by]
    if by is not None:
        table = table.rename(columns={"group": by})
        breaks = breaks.rename(columns={"group": by})
    return Funnel(
        steps=table[[*group, *STEP_COLUMNS]].reset_index(drop=True),
        breaking_points=breaks[[*group, *BREAK_COLUMNS]].reset_index(drop=True),
        by=by,
        window_days=window_days,
    )


def _grid(frame: pd.DataFrame, n_steps: int, by: str | None) -> pd.DataFrame:
    """People and visits for every group and step (zeros included), `(all)` first."""
    steps = range(1, n_steps + 1)
    frame = frame.rename(columns={f"n{k}": k for k in steps})
    long = frame.melt(id_vars=["group", "measure"], var_name="step_index", value_name="n")
    counts = long.groupby(["group", "step_index", "measure"])["n"].sum().unstack("measure")
    groups = sorted(set(frame["group"]) - {ALL})
    grid = pd.MultiIndex.from_product([[ALL, *groups], steps], names=["group", "step_index"])
    table = counts.reindex(grid).reindex(columns=["people", "visits"]).fillna(0)
    table = table.astype("int64").rename_axis(columns=None)
    if by is not None:
        others = table.drop(index=ALL, level="group")
        every = others.groupby(level="step_index").sum().reindex(steps, fill_value=0)
        table.loc[ALL] = every.to_numpy()
    entered = table.xs(1, level="step_index")["people"]
    order = [ALL, *sorted(groups, key=lambda g: (-int(entered[g]), g))]
    return table.reindex(order, level="group").reset_index()


def _rates(table: pd.DataFrame) -> pd.DataFrame:
    """Rates from the first and the previous step, drop-offs and the breaking point."""
    by_group = table.groupby("group", sort=False)
    for measure, prefix in (("people", ""), ("visits", "visit_")):
        first = by_group[measure].transform("first")
        previous = by_group[measure].shift(1).fillna(table[measure]).astype("int64")
        table[f"{prefix}rate"] = ratio(table[measure], first)
        table[f"{prefix}step_rate"] = ratio(table[measure], previous)
        if measure == "people":
            table["drop_off"] = previous - table["people"]
            table["drop_off_rate"] = ratio(table["drop_off"], previous)
    lost = table[(table["drop_off"] > 0) & (table["step_index"] > 1)]
    worst = lost.sort_values(
        ["drop_off_rate", "step_index"], ascending=[False, True], kind="stable"
    )
    worst = worst.drop_duplicates("group")
    table["breaking_point"] = table.index.isin(worst.index)
    return table
