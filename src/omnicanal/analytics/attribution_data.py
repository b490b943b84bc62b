"""Attribution on the warehouse: journeys cut from touchpoints and conversions, then credited.

A journey is what one person met on the way to one conversion. For every conversion of the
scope's period (an order, a person's first order, or a named track event), the journey holds
that person's touchpoints (visits by their entry channel, engaged messages, offline
interactions: `omnicanal.analytics.touchpoints`) that came

- after the person's previous conversion of the same kind: a touch counts for the next
  conversion only, never for two. With `first_order`, touches after a person's first order
  belong to no journey: nobody is acquired twice;
- at most `lookback_days` before the conversion (30 by default; None: no limit).

The touches a person met after their last conversion (within the window before their last
touch, which falls in the period) form one journey that did not convert: the Markov model
needs them; the other models give them nothing. A conversion without any touch in its window
gets one touch `direct` at its own time, so that every conversion is credited to something
(`direct=None` leaves it uncredited). Orders carrying a coupon of `coupon_channels` (say a
code printed in a magazine) get a touch of that coupon's channel at the order's time.

Scope: the period selects conversions (by local day) and non-converting journeys (by the day
of their last touch); `stores` keeps the conversions in those stores (orders bought or picked
up there, track events of those store channels), which still cut the journeys of other
stores' conversions; `persons` keeps those people; `channels` and `media_classes` select rows
of the result, whose credits are computed on whole journeys.

Money is the order's revenue: what was paid for the goods, VAT included, after discounts,
without shipping, before later refunds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Final

import ibis
import ibis.expr.types as ir
import numpy as np
import numpy.typing as npt
import pandas as pd

from omnicanal.analytics import attribution as at
from omnicanal.analytics.journeys_common import computed, instant
from omnicanal.analytics.scope import Scope, Tables, in_period, with_filters
from omnicanal.analytics.touchpoints import conversions, touchpoints
from omnicanal.core.channels import parse_channel
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import EVENTS, ORDERS

FloatArray = npt.NDArray[np.float64]

ORDER: Final = "order"
FIRST_ORDER: Final = "first_order"
DIRECT: Final = "direct"
UNKNOWN: Final = "unknown"
DEFAULT_LOOKBACK_DAYS: Final = 30
CREDIT_COLUMNS: Final = (
    "channel",
    "orders",
    "revenue_eur",
    "new_customers",
    "conversions",
    "customer_orders",
    "customer_revenue_eur",
    "share",
    "revenue_share",
    "media_class",
)
"""Columns of `credit`: credited orders, revenue and new customers first, as ROAS and CAC
reports read them; `customer_*` are the orders and revenue, to the end of the period, of the
new customers credited."""
_EARLIEST: Final = date(1970, 1, 2)
_COUNTS: Final = ("orders", "new_customers", "conversions", "customer_orders")
_MONEY: Final = ("revenue_eur", "customer_revenue_eur")


@dataclass(frozen=True)
class WarehouseJourneys:
    """The journeys of a scope, with per journey what its conversion brought (0 for nulls)."""

    journeys: at.Journeys
    revenue_cents: FloatArray
    orders: FloatArray  # 1 where the conversion is an order
    new_customers: FloatArray  # 1 where it is the person's first order ever
    customer_orders: FloatArray  # first orders: the customer's orders to the period's end
    customer_revenue_cents: FloatArray
    conversion: str
    lookback_days: int | None
    untouched: int  # conversions with no touch in their window (credited to `direct`)

    @property
    def converting(self) -> int:
        """Return the number of conversions."""
        return int(self.journeys.conversions.sum())

    @property
    def non_converting(self) -> int:
        """Return the number of journeys that did not convert."""
        return int(self.journeys.nulls.sum())


# ---------------------------------------------------------------------------------
# Building journeys in the warehouse


def _check(conversion: str, lookback_days: int | None) -> None:
    if not conversion.strip():
        raise InvalidError(
            "The conversion must be order, first_order or a track event's name.",
            errors=[{"field": "conversion", "reason": "empty"}],
        )
    if lookback_days is not None and lookback_days < 0:
        raise InvalidError(
            "The lookback window must be zero days or more.",
            errors=[{"field": "lookback_days", "reason": "negative"}],
        )


def _fetch(expr: ir.Table) -> pd.DataFrame:
    """Run an expression; through Arrow, which every backend gives the same way."""
    frame: pd.DataFrame = expr.to_pyarrow().to_pandas()
    return frame


def _only_persons(table: ir.Table, scope: Scope) -> ir.Table:
    return with_filters(table, scope, channel=None, media_class=None, store=None)


def _revenue(orders: ir.Table) -> ir.IntegerValue:
    """Paid for the goods: the order total without shipping, never below zero."""
    return ibis.greatest(orders.total_cents - orders.shipping_cents.fill_null(0), 0)


def _touches(
    tables: Tables,
    window: Scope,
    scope: Scope,
    conversion: str,
    coupon_channels: Mapping[str, str] | None,
    gap_minutes: int,
) -> ir.Table:
    """Touches of the window: person_id, ts, day, channel."""
    found = touchpoints(tables, window, gap_minutes=gap_minutes)
    touches = found.select("person_id", "ts", "day", channel=found.channel.fill_null(UNKNOWN))
    if coupon_channels:
        orders = in_period(tables[ORDERS], window)
        orders = orders.filter(orders.coupon.isin(list(coupon_channels)))
        by_coupon = orders.coupon.substitute(dict(coupon_channels))
        touches = ibis.union(touches, orders.select("person_id", "ts", "day", channel=by_coupon))
    touches = _only_persons(touches, scope)
    if conversion != FIRST_ORDER:
        return touches
    orders = tables[ORDERS]
    first = orders.group_by(buyer=orders.person_id).aggregate(first_ts=orders.ts.min())
    joined = touches.left_join(first, touches.person_id == first.buyer)
    kept = joined.filter(joined.first_ts.isnull() | (joined.ts <= joined.first_ts))
    return kept.select("person_id", "ts", "day", "channel")


def _conversions(tables: Tables, window: Scope, scope: Scope, conversion: str) -> ir.Table:
    """Conversions of the window: person_id, conv_id, ts, day, store, revenue_cents, is_order,
    first."""
    placed = conversions(tables, window)
    shipping = tables[ORDERS].select(shipped_id="order_id", shipping_cents="shipping_cents")
    placed = placed.join(shipping, placed.order_id == shipping.shipped_id)
    placed = placed.mutate(revenue_cents=_revenue(placed))
    if conversion in (ORDER, FIRST_ORDER):
        rows = placed.select(
            "person_id", "ts", "day", "store", "revenue_cents", "first",
            conv_id="order_id", is_order=ibis.literal(True),
        )  # fmt: skip
        rows = rows.filter(rows.first) if conversion == FIRST_ORDER else rows
        return _only_persons(rows, scope)
    events = tables[EVENTS]
    if not events.filter(events.event == conversion).limit(1).count().to_pyarrow().as_py():
        raise InvalidError(
            f"No track event is named {conversion!r}; use order, first_order or an event's name.",
            errors=[{"field": "conversion", "reason": "no such event"}],
        )
    events = in_period(events, window)
    events = events.filter((events.type == "track") & (events.event == conversion))
    known = placed.select(known_id="order_id", known_store="store", known_first="first")
    joined = events.left_join(known, events.order_id == known.known_id)
    own_store = ibis.ifelse(joined.channel.startswith("store:"), joined.channel.substr(6), None)
    rows = joined.select(
        "person_id", "ts", "day",
        conv_id=joined.event_id,
        store=joined.known_store.fill_null(own_store),
        revenue_cents=ibis.greatest(joined.revenue_cents.fill_null(0), 0),
        is_order=joined.order_id.notnull(),
        first=joined.known_first.fill_null(False),
    )  # fmt: skip
    return _only_persons(rows, scope)


def _numbered(touches: ir.Table, convs: ir.Table) -> ir.Table:
    """Number each person's rows by the conversions before them: a touch's journey is the
    number of conversions before it, a conversion's the number before it too."""
    columns = {"person_id": "person_id", "ts": "ts", "day": "day"}
    rows = ibis.union(
        touches.select(
            **columns, channel="channel",
            is_conv=ibis.literal(0, "int64"), conv_id=ibis.null("int64"),
        ),
        convs.select(
            **columns, channel=ibis.null("string"),
            is_conv=ibis.literal(1, "int64"), conv_id="conv_id",
        ),
    )  # fmt: skip
    # A touch at the very instant of a conversion came first (the visit the order was in).
    running = ibis.cumulative_window(group_by="person_id", order_by=["ts", "is_conv", "conv_id"])
    return rows.mutate(journey=rows.is_conv.sum().over(running) - rows.is_conv)


def _customer_value(tables: Tables, scope: Scope) -> ir.Table:
    """Orders and revenue of each person in the period."""
    orders = in_period(tables[ORDERS], scope)
    return orders.group_by(customer=orders.person_id).aggregate(
        period_orders=orders.count(), period_revenue=_revenue(orders).sum()
    )


def _in_scope(convs: ir.Table, numbered: ir.Table, tables: Tables, scope: Scope) -> ir.Table:
    """The conversions of the period and stores, with their journey number and values."""
    rows = numbered.filter(numbered.is_conv == 1).select(
        who="person_id", number="journey", which="conv_id"
    )
    joined = convs.join(rows, (convs.person_id == rows.who) & (convs.conv_id == rows.which))
    joined = in_period(joined, scope)
    stores = replace(scope, channels=(), media_classes=(), persons=None)
    joined = with_filters(joined, stores, channel=None, store="store", person=None)
    value = _customer_value(tables, scope)
    joined = joined.left_join(value, joined.person_id == value.customer)
    first = joined["first"]
    return joined.select(
        "person_id", "ts", "revenue_cents",
        journey=joined.number,
        is_order=joined.is_order.cast("float64"),
        new=first.cast("float64"),
        customer_orders=ibis.ifelse(first, joined.period_orders.fill_null(0), 0),
        customer_revenue=ibis.ifelse(first, joined.period_revenue.fill_null(0), 0),
    )  # fmt: skip


def _window_touches(
    numbered: ir.Table, scoped: ir.Table, scope: Scope, lookback_days: int | None
) -> ir.Table:
    """Touches kept: those of converting journeys in scope, and of non-converting journeys."""
    touches = numbered.filter(numbered.is_conv == 0).select(
        "person_id", "journey", "ts", "day", "channel"
    )
    ends = numbered.filter(numbered.is_conv == 1).select(who="person_id", number="journey")
    target = scoped.select(who="person_id", number="journey", end_ts=instant(scoped.ts))
    converting = touches.join(
        target, (touches.person_id == target.who) & (touches.journey == target.number)
    )
    after_last = touches.anti_join(
        ends, (touches.person_id == ends.who) & (touches.journey == ends.number)
    )
    last = after_last.group_by(who="person_id", number="journey").aggregate(
        end_ts=instant(after_last.ts.max()), end_day=after_last.day.max()
    )
    last = in_period(last, scope, "end_day")
    open_ = after_last.join(
        last, (after_last.person_id == last.who) & (after_last.journey == last.number)
    )
    columns = ["person_id", "journey", "ts", "channel", "end_ts"]
    kept = ibis.union(converting.select(*columns), open_.select(*columns))
    if lookback_days is not None:
        kept = kept.filter(kept.ts >= kept.end_ts - ibis.interval(days=lookback_days))
    return kept.select("person_id", "journey", "ts", "channel")


def build_journeys(
    tables: Tables,
    scope: Scope,
    *,
    conversion: str = ORDER,
    lookback_days: int | None = DEFAULT_LOOKBACK_DAYS,
    direct: str | None = DIRECT,
    coupon_channels: Mapping[str, str] | None = None,
    gap_minutes: int = 30,
) -> WarehouseJourneys:
    """Cut the scope's journeys from the warehouse (see the module's description).

    Args:
        conversion: `order`, `first_order`, or the name of a track event.
        lookback_days: days before a conversion whose touches count; None for no limit.
        direct: channel given to conversions without touch; None leaves them uncredited.
        coupon_channels: coupon code -> channel, for orders a coupon says were brought.
    """
    (found,) = build_periods(
        tables, [scope], conversion=conversion, lookback_days=lookback_days,
        direct=direct, coupon_channels=coupon_channels, gap_minutes=gap_minutes,
    )  # fmt: skip
    return found


def build_periods(
    tables: Tables,
    scopes: Sequence[Scope],
    *,
    conversion: str = ORDER,
    lookback_days: int | None = DEFAULT_LOOKBACK_DAYS,
    direct: str | None = DIRECT,
    coupon_channels: Mapping[str, str] | None = None,
    gap_minutes: int = 30,
) -> list[WarehouseJourneys]:
    """The journeys of several periods with the same filters, as `build_journeys` cuts
    each of them.

    Periods whose windows (the period and its lookback) meet, such as a period and the one
    before it, share one pass over the events: touches and conversions are numbered once
    over the span, then each period reads what it would have seen alone, the rows before
    its end. Its earliest touches differ from a separate cut only before its own lookback
    window, which no journey keeps.
    """
    _check(conversion, lookback_days)
    margin = timedelta(days=lookback_days + 1) if lookback_days is not None else None
    starts = [s.start - margin if margin is not None else _EARLIEST for s in scopes]
    if len(scopes) > 1 and max(starts) > min(s.end for s in scopes):
        return [
            build_periods(
                tables, [s], conversion=conversion, lookback_days=lookback_days,
                direct=direct, coupon_channels=coupon_channels, gap_minutes=gap_minutes,
            )[0]
            for s in scopes
        ]  # fmt: skip
    first = min(scopes, key=lambda s: s.start)
    window = replace(first, start=min(*starts, first.start), end=max(s.end for s in scopes))
    touches = _touches(tables, window, first, conversion, coupon_channels, gap_minutes)
    convs = _conversions(tables, window, first, conversion)
    found = []
    with computed(_numbered(touches, convs)) as numbered:
        for scope in scopes:
            seen = in_period(numbered, replace(scope, start=window.start))
            scoped = _in_scope(convs, seen, tables, scope)
            kept = _window_touches(seen, scoped, scope, lookback_days)
            found.append((_fetch(scoped), _fetch(kept)))
    return [_assemble(s, k, conversion, lookback_days, direct) for s, k in found]


# ---------------------------------------------------------------------------------
# From warehouse rows to `Journeys`


def _assemble(
    convs: pd.DataFrame,
    touches: pd.DataFrame,
    conversion: str,
    lookback_days: int | None,
    direct: str | None,
) -> WarehouseJourneys:
    keys = ["person_id", "journey"]
    convs = convs.assign(converted=True)
    opened = touches[keys].drop_duplicates().merge(convs[keys], how="left", indicator=True)
    nulls = opened.loc[opened["_merge"] == "left_only", keys].assign(converted=False)
    outcomes = pd.concat([convs, nulls], ignore_index=True).sort_values(keys, ignore_index=True)
    outcomes["journey_id"] = np.arange(len(outcomes), dtype=np.int64)
    touches = touches.merge(outcomes[[*keys, "journey_id"]], on=keys)
    touched = outcomes["journey_id"].isin(touches["journey_id"])
    untouched = outcomes[outcomes["converted"] & ~touched]
    if direct is not None and len(untouched):
        extra = pd.DataFrame(
            {"journey_id": untouched["journey_id"], "ts": untouched["ts"], "channel": direct}
        )
        touches = pd.concat([touches, extra], ignore_index=True)
    frame = pd.DataFrame(
        {
            "journey_id": touches["journey_id"].to_numpy(dtype=np.int64),
            "timestamp": pd.to_datetime(touches["ts"]).to_numpy(dtype="datetime64[ms]"),
            "channel": touches["channel"].astype(str).to_numpy(),
        }
    )
    value = outcomes["revenue_cents"].fillna(0).to_numpy(dtype=np.float64)
    ends = pd.to_datetime(outcomes["ts"]).to_numpy(dtype="datetime64[ms]")
    journeys = at.journeys_from_touchpoints(
        frame,
        pd.DataFrame(
            {
                "journey_id": outcomes["journey_id"].to_numpy(),
                "converted": outcomes["converted"].to_numpy(dtype=bool),
                "value": value,
                "conversion_ms": pd.Series(ends),
            }
        ),
    )

    def column(name: str) -> FloatArray:
        return outcomes[name].fillna(0).to_numpy(dtype=np.float64)

    return WarehouseJourneys(
        journeys=journeys,
        revenue_cents=value,
        orders=column("is_order"),
        new_customers=column("new"),
        customer_orders=column("customer_orders"),
        customer_revenue_cents=column("customer_revenue"),
        conversion=conversion,
        lookback_days=lookback_days,
        untouched=len(untouched),
    )


# ---------------------------------------------------------------------------------
# Credit


def _media_class(channel: str) -> str | None:
    try:
        return parse_channel(channel)[0].media_class.value
    except ValueError:
        return None  # `direct`, or a channel outside the taxonomy


def _matches(channel: str, channels: Collection[str]) -> bool:
    """Mirror `scope.channel_matches`: a bare kind matches its qualified channels."""
    return any(channel == c or (":" not in c and channel.startswith(c + ":")) for c in channels)


def credit_journeys(data: WarehouseJourneys, model: str, **options: Any) -> pd.DataFrame:
    """Credit each channel with the conversions, orders, revenue and new customers of `data`.

    Every quantity is credited by the same model: rule-based models and Shapley share each
    journey's amount by the same weights; Markov by each channel's removal effect on it.
    """
    journeys = data.journeys
    quantities = {
        "revenue_eur": data.revenue_cents,
        "new_customers": data.new_customers,
        "customer_orders": data.customer_orders,
        "customer_revenue_eur": data.customer_revenue_cents,
    }
    if data.conversion not in (ORDER, FIRST_ORDER):
        quantities["orders"] = data.orders
    if model == "markov":  # one chain, solved for every quantity at once
        at.check_options("markov", options)
        conversions, credited = at.markov_values(journeys, list(quantities.values()), **options)
        frame = pd.DataFrame({"channel": list(journeys.channels), "conversions": conversions})
        for column, values in zip(quantities, credited, strict=True):
            frame[column] = values
    else:
        base = at.attribute(journeys, model=model, **options)
        frame = pd.DataFrame({"channel": base["channel"], "conversions": base["conversions"]})
        for column, values in quantities.items():
            found = at.attribute(replace(journeys, value=values), model=model, **options)
            frame[column] = found["value"].to_numpy()
    if data.conversion in (ORDER, FIRST_ORDER):
        frame["orders"] = frame["conversions"]
    for column in _MONEY:
        frame[column] = frame[column] / 100
    return _finish(frame)


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    conversions, revenue = frame["conversions"].sum(), frame["revenue_eur"].sum()
    frame["share"] = frame["conversions"] / conversions if conversions > 0 else 0.0
    frame["revenue_share"] = frame["revenue_eur"] / revenue if revenue > 0 else 0.0
    frame["media_class"] = [_media_class(c) for c in frame["channel"]]
    frame = frame.round({**dict.fromkeys(_COUNTS, 3), **dict.fromkeys(_MONEY, 2)})
    frame = frame.round({"share": 4, "revenue_share": 4})
    frame = frame.sort_values(["conversions", "channel"], ascending=[False, True])
    return frame.loc[:, list(CREDIT_COLUMNS)].reset_index(drop=True)


def _select(frame: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    if scope.channels:
        keep &= np.array([_matches(c, scope.channels) for c in frame["channel"]], dtype=bool)
    if scope.media_classes:
        keep &= frame["media_class"].isin(list(scope.media_classes)).to_numpy()
    return frame[keep].reset_index(drop=True)


def credit(
    tables: Tables,
    scope: Scope,
    model: str,
    *,
    lookback_days: int | None = DEFAULT_LOOKBACK_DAYS,
    conversion: str = ORDER,
    direct: str | None = DIRECT,
    coupon_channels: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Credit the scope's conversions to channels with one model (columns: `CREDIT_COLUMNS`).

    `share` and `revenue_share` are fractions of everything credited, whatever channels
    the scope selects. `options` go to the model (e.g. `{"order": 2}` for Markov).
    """
    (found,) = credit_periods(
        tables, [scope], model, lookback_days=lookback_days, conversion=conversion,
        direct=direct, coupon_channels=coupon_channels, options=options,
    )  # fmt: skip
    return found


def credit_periods(
    tables: Tables,
    scopes: Sequence[Scope],
    model: str,
    *,
    lookback_days: int | None = DEFAULT_LOOKBACK_DAYS,
    conversion: str = ORDER,
    direct: str | None = DIRECT,
    coupon_channels: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[pd.DataFrame]:
    """`credit` for several periods with the same filters (a period and the one it is
    compared with), cutting their journeys together where they meet (`build_periods`)."""
    found = build_periods(
        tables, scopes, conversion=conversion, lookback_days=lookback_days,
        direct=direct, coupon_channels=coupon_channels,
    )  # fmt: skip
    settings = dict(options or {})
    return [
        _select(credit_journeys(data, model, **settings), s)
        for data, s in zip(found, scopes, strict=True)
    ]


def compare_models(
    tables: Tables,
    scope: Scope,
    *,
    models: Collection[str] | None = None,
    lookback_days: int | None = DEFAULT_LOOKBACK_DAYS,
    conversion: str = ORDER,
    direct: str | None = DIRECT,
    coupon_channels: Mapping[str, str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Credit the same journeys with several models (all by default), one row per model and
    channel: `model` then the columns of `credit`."""
    data = build_journeys(
        tables, scope, conversion=conversion, lookback_days=lookback_days,
        direct=direct, coupon_channels=coupon_channels,
    )  # fmt: skip
    frames = []
    for model in models if models is not None else at.MODELS:
        settings = dict((options or {}).get(model, {}))
        frame = _select(credit_journeys(data, model, **settings), scope)
        frames.append(frame.assign(model=model))
    if not frames:
        return pd.DataFrame(columns=["model", *CREDIT_COLUMNS])
    result = pd.concat(frames, ignore_index=True)
    return result.loc[:, ["model", *CREDIT_COLUMNS]]
