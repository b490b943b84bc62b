"""Multi-touch attribution: which channels earn the credit for conversions and revenue.

Journeys are held in a compact, columnar `Journeys` value (touches in journey order,
one offsets array per journey, as in a CSR matrix) built from one of three inputs:

- touchpoints, one row per touch (`journey_id`, `timestamp`, `channel`) with a
  per-journey outcome table (`journey_id`, `converted`, `value`, `conversion_ms`):
  `journeys_from_touchpoints`;
- aggregated paths as the `channelattribution` package takes them
  (`path` = `"web > email > store"`, `conversions`, `nulls`, `value`):
  `journeys_from_paths`;
- raw events (`profile_id`, `timestamp_ms`, `channel`, `is_conversion`, `value`):
  `journeys_from_events`.

Every model returns one row per channel: `channel`, `conversions` (credit),
`value` (credit of revenue) and `share` (of the credited conversions). Rule-based
models weigh the touches of each journey (weights summing to 1) and spread the
journey's conversions and value by those weights. `markov` solves the removal
effect exactly on the absorbing chain (no simulation); `shapley` is the Shapley
value of the game "conversions of journeys whose channel set lies in the
coalition" (Zhao et al., 2018), computed exactly in closed form. Journeys without
any touch (for example after `lookback`) carry no credit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse
from scipy.sparse.linalg import splu

from omnicanal.core.errors import InvalidError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_MS = 86_400_000
DIRECT_CHANNELS: frozenset[str] = frozenset({"direct", "web", "app"})
"""Channels a person reaches on their own; `last_non_direct` looks past them."""
RESULT_COLUMNS = ("channel", "conversions", "value", "share")
_MASK_CHANNELS = 64  # channel sets fit one uint64 bit mask
_DENSE_STATES = 400  # below this many states a dense solve beats a sparse factorisation


@dataclass(frozen=True, slots=True)
class Journeys:
    """Journeys in columnar form: journey `j` is `codes[offsets[j]:offsets[j + 1]]`.

    A journey stands for `conversions + nulls` identical paths (1 + 0 or 0 + 1 for one
    person's journey, any counts for an aggregated path). `end_ms` is the conversion
    time of a converting journey, else the time of its last touch.
    """

    channels: tuple[str, ...]
    offsets: IntArray
    codes: IntArray
    conversions: FloatArray
    nulls: FloatArray
    value: FloatArray
    times_ms: IntArray | None = None
    end_ms: IntArray | None = None

    @property
    def lengths(self) -> IntArray:
        """Return the number of touches of each journey."""
        return np.diff(self.offsets)

    def journey_of_touch(self) -> IntArray:
        """Return, for each touch, the index of its journey."""
        return np.repeat(np.arange(len(self.lengths), dtype=np.int64), self.lengths)


# ---------------------------------------------------------------------------------
# Building journeys


def _require(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidError(
            f"The {table} table lacks column(s) {', '.join(missing)}.",
            errors=[{"field": c, "reason": f"missing from the {table} table"} for c in missing],
        )


def _to_ms(column: pd.Series[Any], name: str) -> IntArray:
    """Read a column of epoch milliseconds or datetimes as int64 milliseconds."""
    if column.isna().any():
        raise InvalidError(
            f"Column {name} has empty values.", errors=[{"field": name, "reason": "empty"}]
        )
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        utc = pd.to_datetime(column, utc=True)
        return np.asarray(utc.dt.tz_localize(None).astype("datetime64[ms]").astype(np.int64))
    if pd.api.types.is_numeric_dtype(column.dtype):
        return np.asarray(column, dtype=np.int64)
    raise InvalidError(
        f"Column {name} must hold epoch milliseconds or datetimes, not {column.dtype}.",
        errors=[{"field": name, "reason": "not a time"}],
    )


def _channel_codes(column: pd.Series[Any], name: str = "channel") -> tuple[IntArray, list[str]]:
    if column.isna().any():
        raise InvalidError(
            f"Column {name} has empty values.", errors=[{"field": name, "reason": "empty"}]
        )
    codes, uniques = pd.factorize(column.astype(str), sort=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _counts(column: pd.Series[Any], name: str) -> FloatArray:
    values = np.asarray(pd.to_numeric(column, errors="coerce"), dtype=np.float64)
    if np.isnan(values).any() or (values < 0).any():
        raise InvalidError(
            f"Column {name} must hold numbers of zero or more.",
            errors=[{"field": name, "reason": "empty, not a number or negative"}],
        )
    return values


def journeys_from_touchpoints(
    touches: pd.DataFrame, outcomes: pd.DataFrame | None = None
) -> Journeys:
    """Build journeys from touch rows and a per-journey outcome table.

    Args:
        touches: `journey_id`, `timestamp` (epoch ms or datetime), `channel`.
        outcomes: `journey_id`, `converted` (bool), optional `value` (revenue, 0 when
            absent) and `conversion_ms` (the last touch's time when absent). Journeys
            it does not list did not convert; those it lists without touches are kept
            (with no touch, so they earn no channel credit).
    """
    _require(touches, ("journey_id", "timestamp", "channel"), "touchpoints")
    outcomes = (
        outcomes if outcomes is not None else pd.DataFrame({"journey_id": [], "converted": []})
    )
    _require(outcomes, ("journey_id", "converted"), "outcomes")
    if outcomes["journey_id"].duplicated().any():
        raise InvalidError(
            "Column journey_id of the outcomes table lists a journey twice.",
            errors=[{"field": "journey_id", "reason": "duplicated"}],
        )
    ids, _ = pd.factorize(pd.concat([outcomes["journey_id"], touches["journey_id"]]))
    if (ids < 0).any():
        raise InvalidError(
            "Column journey_id has empty values.",
            errors=[{"field": "journey_id", "reason": "empty"}],
        )
    n_out = len(outcomes)
    n = int(ids.max()) + 1 if len(ids) else 0
    journey = ids[n_out:].astype(np.int64)
    ms = _to_ms(touches["timestamp"], "timestamp")
    codes, channels = _channel_codes(touches["channel"])
    order = np.lexsort((ms, journey))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(journey, minlength=n), out=offsets[1:])
    converted = np.zeros(n, dtype=np.float64)
    converted[ids[:n_out]] = np.asarray(outcomes["converted"].fillna(False), dtype=bool)
    value = np.zeros(n, dtype=np.float64)
    if "value" in outcomes.columns:
        value[ids[:n_out]] = (
            _counts(outcomes["value"].fillna(0.0), "value") * converted[ids[:n_out]]
        )
    times = ms[order]
    return Journeys(
        channels=tuple(channels),
        offsets=offsets,
        codes=codes[order],
        conversions=converted,
        nulls=1.0 - converted,
        value=value,
        times_ms=times,
        end_ms=_end_ms(offsets, times, outcomes, ids[:n_out]),
    )


def _end_ms(
    offsets: IntArray, times: IntArray, outcomes: pd.DataFrame, out_ids: npt.NDArray[Any]
) -> IntArray:
    lengths = np.diff(offsets)
    end = np.zeros(len(lengths), dtype=np.int64)
    has = lengths > 0
    end[has] = times[offsets[1:][has] - 1]
    if "conversion_ms" in outcomes.columns:
        given = outcomes["conversion_ms"]
        known = np.asarray(given.notna())
        if known.any():
            end[out_ids[known]] = _to_ms(given[known], "conversion_ms")
    return end


def journeys_from_paths(
    paths: pd.DataFrame,
    *,
    path: str = "path",
    conversions: str = "conversions",
    nulls: str | None = "nulls",
    value: str | None = "value",
    sep: str = ">",
) -> Journeys:
    """Build journeys from aggregated paths (`"web > email > store"` or lists of channels)."""
    _require(paths, [c for c in (path, conversions, nulls, value) if c is not None], "paths")
    steps = [
        [s.strip() for s in p.split(sep)] if isinstance(p, str) else [str(s) for s in p]
        for p in paths[path]
    ]
    if any(s == "" for p in steps for s in p):
        raise InvalidError(
            f"Column {path} has an empty step.", errors=[{"field": path, "reason": "empty step"}]
        )
    flat = pd.Series([s for p in steps for s in p], dtype=object)
    codes, channels = _channel_codes(flat, path)
    offsets = np.zeros(len(steps) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in steps], out=offsets[1:])
    zeros = np.zeros(len(paths), dtype=np.float64)
    return Journeys(
        channels=tuple(channels),
        offsets=offsets,
        codes=codes,
        conversions=_counts(paths[conversions], conversions),
        nulls=_counts(paths[nulls], nulls) if nulls and nulls in paths else zeros,
        value=_counts(paths[value], value) if value and value in paths else zeros.copy(),
    )


def journeys_from_events(events: pd.DataFrame, *, conversion_event: str | None = None) -> Journeys:
    """Cut each person's events into journeys, each ending with (and including) a conversion.

    Events after a person's last conversion form one non-converting journey. With
    `conversion_event`, conversions are the rows whose `event` column equals it;
    otherwise the `is_conversion` column says so. `value` is the conversion's revenue.
    """
    _require(events, ("profile_id", "timestamp_ms", "channel"), "events")
    flag = "event" if conversion_event is not None else "is_conversion"
    _require(events, (flag,), "events")
    is_conv = (
        np.asarray(events["event"] == conversion_event, dtype=bool)
        if conversion_event is not None
        else np.asarray(events["is_conversion"].fillna(False), dtype=bool)
    )
    if len(events) == 0:
        return journeys_from_touchpoints(
            pd.DataFrame({"journey_id": [], "timestamp": [], "channel": []}), None
        )
    ms = _to_ms(events["timestamp_ms"], "timestamp_ms")
    person, _ = pd.factorize(events["profile_id"])
    order = np.lexsort((is_conv, ms, person))  # a conversion closes touches of its instant
    person, is_conv = person[order], is_conv[order]
    new_person = np.r_[True, person[1:] != person[:-1]]
    starts = new_person | np.r_[False, is_conv[:-1]]
    journey = np.cumsum(starts) - 1
    n = int(journey[-1]) + 1 if len(journey) else 0
    value = np.zeros(n, dtype=np.float64)
    if "value" in events.columns:
        raw = np.asarray(pd.to_numeric(events["value"], errors="coerce"), dtype=np.float64)
        value[journey[is_conv]] = np.nan_to_num(raw[order][is_conv])
    converted = np.zeros(n, dtype=np.float64)
    converted[journey[is_conv]] = 1.0
    frame = pd.DataFrame({"journey_id": journey, "timestamp": ms[order]})
    frame["channel"] = np.asarray(events["channel"])[order]
    outcomes = pd.DataFrame({"journey_id": np.arange(n), "converted": converted > 0})
    outcomes["value"] = value
    return journeys_from_touchpoints(frame, outcomes)


def lookback(journeys: Journeys, *, days: float) -> Journeys:
    """Drop touches more than `days` before each journey's conversion (or last touch)."""
    if journeys.times_ms is None or journeys.end_ms is None:
        raise InvalidError(
            "A lookback window needs touch times; these journeys were built from paths.",
            errors=[{"field": "timestamp", "reason": "absent"}],
        )
    if days < 0:
        raise InvalidError("The lookback window must be zero days or more.")
    jot = journeys.journey_of_touch()
    keep = journeys.times_ms >= journeys.end_ms[jot] - days * DAY_MS
    offsets = np.zeros_like(journeys.offsets)
    np.cumsum(np.bincount(jot[keep], minlength=len(journeys.lengths)), out=offsets[1:])
    return replace(
        journeys, offsets=offsets, codes=journeys.codes[keep], times_ms=journeys.times_ms[keep]
    )


def paths_table(journeys: Journeys, *, sep: str = " > ") -> pd.DataFrame:
    """Aggregate journeys into distinct paths: `path`, `conversions`, `nulls`, `value`."""
    names = np.asarray(journeys.channels, dtype=object)[journeys.codes]
    bounds = journeys.offsets
    paths = [sep.join(names[bounds[j] : bounds[j + 1]]) for j in range(len(bounds) - 1)]
    frame = pd.DataFrame(
        {
            "path": paths,
            "conversions": journeys.conversions,
            "nulls": journeys.nulls,
            "value": journeys.value,
        }
    )
    frame = frame[frame["path"] != ""]
    return frame.groupby("path", as_index=False, sort=True).sum()


# ---------------------------------------------------------------------------------
# Rule-based models: one weight per touch, summing to 1 within each journey


def _credit(
    journeys: Journeys, codes: IntArray, journey: IntArray, weight: FloatArray
) -> pd.DataFrame:
    n = len(journeys.channels)
    conv = np.bincount(codes, weight * journeys.conversions[journey], minlength=n)
    value = np.bincount(codes, weight * journeys.value[journey], minlength=n)
    return _result(journeys.channels, conv.astype(np.float64), value.astype(np.float64))


def _result(channels: Sequence[str], conv: FloatArray, value: FloatArray) -> pd.DataFrame:
    total = conv.sum()
    share = conv / total if total > 0 else np.zeros_like(conv)
    return pd.DataFrame(
        {"channel": list(channels), "conversions": conv, "value": value, "share": share}
    )


def _by_touch(journeys: Journeys, weight: FloatArray) -> pd.DataFrame:
    return _credit(journeys, journeys.codes, journeys.journey_of_touch(), weight)


def _at_positions(journeys: Journeys, positions: IntArray) -> pd.DataFrame:
    weight = np.zeros(len(journeys.codes), dtype=np.float64)
    weight[positions] = 1.0
    return _by_touch(journeys, weight)


def first_touch(journeys: Journeys) -> pd.DataFrame:
    """Give each journey's credit to its first touch."""
    nonempty = journeys.lengths > 0
    return _at_positions(journeys, journeys.offsets[:-1][nonempty])


def last_touch(journeys: Journeys) -> pd.DataFrame:
    """Give each journey's credit to its last touch."""
    nonempty = journeys.lengths > 0
    return _at_positions(journeys, journeys.offsets[1:][nonempty] - 1)


def last_non_direct(
    journeys: Journeys, *, direct: Collection[str] = DIRECT_CHANNELS
) -> pd.DataFrame:
    """Give the credit to the last touch outside `direct`, or the last touch if all are direct."""
    direct_codes = [i for i, name in enumerate(journeys.channels) if name in direct]
    position = np.arange(len(journeys.codes), dtype=np.int64)
    candidate = np.where(np.isin(journeys.codes, direct_codes), -1, position)
    nonempty = journeys.lengths > 0
    starts = journeys.offsets[:-1][nonempty]
    chosen = np.maximum.reduceat(candidate, starts) if len(starts) else starts
    last = journeys.offsets[1:][nonempty] - 1
    return _at_positions(journeys, np.where(chosen >= 0, chosen, last))


def linear(journeys: Journeys) -> pd.DataFrame:
    """Share each journey's credit equally among its touches."""
    lengths = journeys.lengths
    return _by_touch(journeys, 1.0 / np.repeat(lengths, lengths).astype(np.float64))


def time_decay(journeys: Journeys, *, half_life_days: float = 7.0) -> pd.DataFrame:
    """Weigh touches by 2^(-age / half-life), age counted back from the conversion."""
    if journeys.times_ms is None:
        raise InvalidError(
            "Time decay needs touch times; these journeys were built from paths.",
            errors=[{"field": "timestamp", "reason": "absent"}],
        )
    if half_life_days <= 0:
        raise InvalidError("The half-life must be more than zero days.")
    jot = journeys.journey_of_touch()
    nonempty = journeys.lengths > 0
    latest = np.zeros(len(journeys.lengths), dtype=np.int64)
    latest[nonempty] = journeys.times_ms[journeys.offsets[1:][nonempty] - 1]
    # Ages from the latest touch: the factor 2^(-(conversion - latest) / half-life) that
    # the conversion time adds is the same for every touch, so normalising removes it.
    age_days = (latest[jot] - journeys.times_ms) / DAY_MS
    raw = np.exp2(-age_days / half_life_days)
    return _by_touch(journeys, raw / np.bincount(jot, raw, minlength=len(latest))[jot])


def position_based(journeys: Journeys, *, first: float = 0.4, last: float = 0.4) -> pd.DataFrame:
    """Give `first` and `last` shares to the end touches and spread the rest between them.

    A journey of one touch gives it everything; of two, splits first : last.
    """
    if first < 0 or last < 0 or first + last > 1:
        raise InvalidError("The first and last shares must be 0 or more and add up to 1 or less.")
    lengths = journeys.lengths
    n = np.repeat(lengths, lengths)
    index = np.arange(len(journeys.codes)) - np.repeat(journeys.offsets[:-1], lengths)
    middle = (1.0 - first - last) / np.maximum(n - 2, 1)
    weight = np.where(index == 0, first, np.where(index == n - 1, last, middle))
    two = n == 2
    weight[two] = np.where(index[two] == 0, first, last) / (first + last) if first + last else 0.5
    weight[n == 1] = 1.0
    return _by_touch(journeys, weight)


# ---------------------------------------------------------------------------------
# Data-driven models


def shapley(journeys: Journeys) -> pd.DataFrame:
    """Credit channels by their Shapley value in the game v(S) = conversions of journeys ⊆ S.

    With R(T) the conversions of journeys whose channel set is exactly T, v(S) is the sum
    of R(T) over T ⊆ S: a sum of unanimity games, whose Shapley value is
    φ_c = Σ_{T ∋ c} R(T) / |T|. This is exact, in O(touches + journeys · log journeys +
    sets · channels) time, where the subset formula Σ_S |S|!(n-|S|-1)!/n! (v(S ∪ c) - v(S))
    costs O(2^n · sets).
    """
    n = len(journeys.channels)
    nonempty = np.flatnonzero(journeys.lengths > 0)
    if n > _MASK_CHANNELS or len(nonempty) == 0:
        return _shapley_by_pairs(journeys)
    bits = np.left_shift(np.uint64(1), journeys.codes.astype(np.uint64))
    masks = np.bitwise_or.reduceat(bits, journeys.offsets[:-1][nonempty])
    sets, which = np.unique(masks, return_inverse=True)  # the distinct channel sets T
    conv = np.bincount(which, journeys.conversions[nonempty], minlength=len(sets))
    value = np.bincount(which, journeys.value[nonempty], minlength=len(sets))
    member = (sets[:, None] >> np.arange(n, dtype=np.uint64)) & np.uint64(1) == 1
    size = member.sum(axis=1)
    return _result(
        journeys.channels,
        ((conv / size)[:, None] * member).sum(axis=0),
        ((value / size)[:, None] * member).sum(axis=0),
    )


def _shapley_by_pairs(journeys: Journeys) -> pd.DataFrame:
    """Shapley for any number of channels: credit the distinct (journey, channel) pairs."""
    n = max(len(journeys.channels), 1)
    key = np.unique(journeys.journey_of_touch() * n + journeys.codes)
    journey, codes = key // n, key % n
    size = np.bincount(journey, minlength=len(journeys.lengths)).astype(np.float64)
    return _credit(journeys, codes, journey, 1.0 / size[journey])


@dataclass(frozen=True, slots=True)
class _Chain:
    """Order-k chain: state 0 is the start; `contains[s, c]` says state s involves channel c."""

    counts: sparse.csr_matrix
    to_conversion: FloatArray
    to_value: FloatArray  # one column per value measured
    exits: FloatArray
    contains: npt.NDArray[np.bool_]


def _states(journeys: Journeys, order: int) -> tuple[IntArray, IntArray]:
    """Return each touch's state (1-based, 0 is the start) and each state's channel key."""
    base = len(journeys.channels) + 1
    if order < 1 or base**order >= 2**62:
        raise InvalidError(
            f"Markov order {order} is not possible with {base - 1} channels.",
            errors=[{"field": "order", "reason": "must be 1 or more and small enough"}],
        )
    codes = journeys.codes
    index = np.arange(len(codes)) - np.repeat(journeys.offsets[:-1], journeys.lengths)
    key = np.zeros(len(codes), dtype=np.int64)
    for back in range(order):
        shifted = np.zeros(len(codes), dtype=np.int64)
        shifted[back:] = codes[: len(codes) - back] + 1
        key += np.where(index >= back, shifted, 0) * base**back
    uniques, state = np.unique(key, return_inverse=True)
    return state.astype(np.int64) + 1, uniques


def _chain(journeys: Journeys, order: int, values: FloatArray) -> _Chain:
    """The chain of `journeys`; `values` holds one column per value, a row per journey."""
    state, keys = _states(journeys, order)
    size = len(keys) + 1
    weight = journeys.conversions + journeys.nulls
    jot = journeys.journey_of_touch()
    first = np.zeros(len(state), dtype=bool)
    nonempty = journeys.lengths > 0
    first[journeys.offsets[:-1][nonempty]] = True
    source = np.where(first, 0, np.r_[0, state[:-1]])
    counts = sparse.coo_matrix((weight[jot], (source, state)), shape=(size, size)).tocsr()
    ends = state[journeys.offsets[1:][nonempty] - 1]
    journeys_ending = np.flatnonzero(nonempty)

    def _sum(values: FloatArray) -> FloatArray:
        return np.bincount(ends, values[journeys_ending], minlength=size).astype(np.float64)

    to_conversion = _sum(journeys.conversions)
    to_value = np.column_stack([_sum(column) for column in values.T]).reshape(size, -1)
    exits = np.asarray(counts.sum(axis=1)).ravel() + to_conversion + _sum(journeys.nulls)
    base = len(journeys.channels) + 1
    contains = np.zeros((size, len(journeys.channels)), dtype=bool)
    rest = keys.copy()
    for _ in range(order):
        digit = rest % base
        has = digit > 0
        contains[1:][np.flatnonzero(has), digit[has] - 1] = True
        rest //= base
    return _Chain(counts, to_conversion, to_value, exits, contains)


def _absorb(chain: _Chain, keep: npt.NDArray[np.bool_]) -> FloatArray:
    """Return P(conversion) and each expected value from the start, through `keep` states."""
    if chain.exits[0] == 0:
        return np.zeros(1 + chain.to_value.shape[1])
    idx = np.flatnonzero(keep & (chain.exits > 0))
    scale = 1.0 / chain.exits[idx]
    transitions = sparse.diags(scale) @ chain.counts[idx][:, idx]
    system = sparse.identity(len(idx), format="csc") - transitions.tocsc()
    rhs = np.column_stack([chain.to_conversion[idx], chain.to_value[idx]]) * scale[:, None]
    if len(idx) <= _DENSE_STATES:
        solution = np.linalg.solve(system.toarray(), rhs)
    else:
        solution = splu(system).solve(rhs)
    return np.asarray(solution[0], dtype=np.float64)  # idx[0] is the start state


def markov_removal_effects(journeys: Journeys, *, order: int = 1) -> pd.DataFrame:
    """Return each channel's removal effect on conversions and on value, solved exactly.

    The removal effect of c is 1 - P'(conversion) / P(conversion), where P' is the
    absorption probability of the chain in which every state involving c leads nowhere.
    """
    effects = _removal_effects(journeys, order, journeys.value[:, None])
    return pd.DataFrame(
        {
            "channel": list(journeys.channels),
            "removal_effect": effects[:, 0],
            "removal_effect_value": effects[:, 1],
        }
    )


def _removal_effects(journeys: Journeys, order: int, values: FloatArray) -> FloatArray:
    """Removal effects on conversions (column 0) and on each column of `values`."""
    chain = _chain(journeys, order, values)
    everything = np.ones(len(chain.exits), dtype=bool)
    base = _absorb(chain, everything)
    effects = np.zeros((len(journeys.channels), len(base)))
    for c in range(len(journeys.channels)):
        without = _absorb(chain, everything & ~chain.contains[:, c])
        effects[c] = np.where(base > 0, 1.0 - without / np.where(base > 0, base, 1.0), 0.0)
    return effects


def markov(journeys: Journeys, *, order: int = 1) -> pd.DataFrame:
    """Share conversions and value in proportion to each channel's exact removal effect."""
    conversions, (value,) = markov_values(journeys, [journeys.value], order=order)
    return _result(journeys.channels, conversions, value)


def markov_values(
    journeys: Journeys, values: Sequence[FloatArray], *, order: int = 1
) -> tuple[FloatArray, list[FloatArray]]:
    """Markov credit of the conversions and of several values per journey (revenue, new
    customers...), from one chain solved once for all of them.

    Returns the conversions credited per channel and, for each value, its credit.
    """
    stacked = np.column_stack([np.asarray(v, dtype=np.float64) for v in values])
    effects = _removal_effects(journeys, order, stacked)
    attributable = journeys.lengths > 0
    totals = [journeys.conversions[attributable].sum(), *stacked[attributable].sum(axis=0)]
    credit = []
    for column, total in enumerate(totals):
        effect = effects[:, column]
        credit.append(effect / effect.sum() * total if effect.sum() > 0 else np.zeros_like(effect))
    return credit[0], credit[1:]


# ---------------------------------------------------------------------------------
# Dispatch

MODELS: dict[str, Callable[..., pd.DataFrame]] = {
    "first_touch": first_touch,
    "last_touch": last_touch,
    "last_non_direct": last_non_direct,
    "linear": linear,
    "time_decay": time_decay,
    "position_based": position_based,
    "markov": markov,
    "shapley": shapley,
}


def attribute(journeys: Journeys, *, model: str, **options: Any) -> pd.DataFrame:
    """Run the attribution model named `model` with its options (e.g. `order=2`)."""
    return check_options(model, options)(journeys, **options)


def check_options(model: str, options: Mapping[str, Any]) -> Callable[..., pd.DataFrame]:
    """Return the model named `model`, or raise InvalidError naming what is wrong."""
    function = MODELS.get(model)
    if function is None:
        raise InvalidError(
            f"Unknown attribution model {model!r}; use one of: {', '.join(MODELS)}.",
            errors=[{"field": "model", "reason": "unknown"}],
        )
    accepted = set(inspect.signature(function).parameters) - {"journeys"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InvalidError(
            f"Model {model} takes no option {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(accepted)) or 'none'}.",
            errors=[{"field": name, "reason": f"not an option of {model}"} for name in unknown],
        )
    return function
