"""Orders of the real world: where they were placed, baskets, prices, returns, after-sales.

Each purchase of the simulation becomes an order: a channel (e-shop delivery, click &
collect, app, store) drawn from the persona's mix, a basket from the catalogue with the
season's markdowns and coupons, and what follows it: a pick-up at the store, a return by
post or at the till, a product review, an NPS survey answer, a call to the call centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnicanal.demo.activity import (
    APP_ORDER,
    BASE,
    CAMPAIGN,
    COLLECT,
    COUPONS,
    DELIVERY,
    IN_STORE,
    WORKSHOP,
    Demand,
    slot_keys,
)
from omnicanal.demo.days import BoolArray, FloatArray, IntArray
from omnicanal.demo.numbering import order_numbers
from omnicanal.demo.people import APP, CHANNEL_MIX, People, online_hours, store_hours
from omnicanal.demo.shop import ELSEWHERE, STORES
from omnicanal.demo.world import NETWORKS, World

RETURN_RATE = np.array([0.20, 0.12, 0.18, 0.07])  # by DELIVERY, COLLECT, APP_ORDER, IN_STORE
SHIPPING_EUR = 4.90
FREE_SHIPPING_FROM = 60.0
CALL_REASONS = ("suivi de commande", "retour", "remboursement", "taille", "article défectueux")
CALL_OUTCOMES = ("résolu", "rappel prévu", "transmis à la logistique", "geste commercial")


@dataclass(slots=True)
class Orders:
    """Orders of a chunk; order i's lines are `lines(i)`."""

    person: IntArray
    t: FloatArray  # when paid (days from the loaded period's start, Paris time)
    channel: IntArray  # DELIVERY, COLLECT, APP_ORDER, IN_STORE
    store: IntArray  # store of a store sale or a click & collect; -1 otherwise
    kind: IntArray  # BASE, CAMPAIGN, WORKSHOP
    ref: IntArray
    key: IntArray  # slot key (activity.slot_keys)
    first: BoolArray  # the customer's first purchase
    number: list[str]  # e-shop order number, or till receipt number of a store sale
    line_start: IntArray
    line_count: IntArray
    line_product: IntArray
    line_quantity: IntArray
    line_price: FloatArray  # unit price charged (after markdown), VAT included
    subtotal: FloatArray
    discount: FloatArray
    coupon: IntArray  # index in activity.COUPONS, or -1
    shipping: FloatArray
    revenue: FloatArray  # paid for the goods, VAT included, after discounts
    pickup_t: FloatArray  # click & collect: when collected; nan otherwise
    pickup_number: list[str]  # till receipt of the pick-up
    returned_line: IntArray  # line returned, or -1
    return_t: FloatArray
    return_in_store: BoolArray
    return_store: IntArray
    return_number: list[str]  # till receipt of a return made in store
    refund: FloatArray
    review_t: FloatArray  # nan: no review
    review_rating: IntArray
    survey_t: FloatArray  # nan: no survey answer
    survey_score: IntArray
    call_t: FloatArray  # nan: no call
    call_reason: IntArray
    call_outcome: IntArray
    call_seconds: IntArray
    csat: IntArray  # -1: no CSAT answer after the call, else 1-5

    def __len__(self) -> int:
        return len(self.t)

    def lines(self, i: int) -> range:
        """Return the line indices of order i."""
        start = int(self.line_start[i])
        return range(start, start + int(self.line_count[i]))


def next_open(world: World, t: FloatArray) -> FloatArray:
    """Move store times that fall on a closed day to the next open day, same hour."""
    cal = world.calendar
    days = np.floor(t).astype(np.int64)
    frac = t - days
    for _ in range(3):
        idx = np.clip(days + cal.index(0), 0, len(cal.closed) - 1)
        days = np.where(cal.closed[idx], days + 1, days)
    result: FloatArray = days + frac
    return result


def _channels(rng: np.random.Generator, world: World, people: People, dem: Demand) -> IntArray:
    who = dem.person
    mix = CHANNEL_MIX[people.persona[who]].copy()
    first = (dem.kind == BASE) & (dem.ref == 0)
    paid = np.isin(people.cause[who], [world.causes.index(n.channel) for n in NETWORKS])
    mix[first & paid, :3] *= 3.0  # an ad click leads to the e-shop more often than to a store
    cum = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
    channel = np.minimum((rng.random(len(who))[:, None] > cum).sum(axis=1), IN_STORE)
    camp = dem.kind == CAMPAIGN
    online = camp & dem.online
    push = np.array([world.campaigns[r].channel == "push" for r in dem.ref[online]], dtype=bool)
    channel[online] = np.where(push | (people.persona[who[online]] == APP), APP_ORDER, DELIVERY)
    channel[camp & ~dem.online] = IN_STORE
    channel[dem.kind == WORKSHOP] = IN_STORE
    far = people.region[who] == ELSEWHERE
    channel[far & np.isin(channel, [COLLECT, IN_STORE])] = DELIVERY
    result: IntArray = channel.astype(np.int64)
    return result


def _stores(rng: np.random.Generator, people: People, who: IntArray, channel: IntArray) -> IntArray:
    away = rng.random(len(who)) < 0.05  # a customer visiting another city's store
    store = np.where(away, rng.integers(0, len(STORES), len(who)), people.region[who])
    result: IntArray = np.where(np.isin(channel, [COLLECT, IN_STORE]), store, -1).astype(np.int64)
    return result


def _times(rng: np.random.Generator, world: World, dem: Demand, channel: IntArray) -> FloatArray:
    n = len(channel)
    hours = np.where(channel == IN_STORE, store_hours(rng, n), online_hours(rng, n))
    redraw = (dem.kind == BASE) & (dem.ref > 0)
    late_store = (channel == IN_STORE) & (
        ((dem.t % 1.0) * 24.0 < 10.0) | ((dem.t % 1.0) * 24.0 > 19.5)
    )
    t = np.where(redraw | late_store, np.floor(dem.t) + hours / 24.0, dem.t)
    shop = channel == IN_STORE
    t[shop] = next_open(world, t[shop])
    return t


@dataclass(slots=True)
class _Basket:
    count: IntArray
    start: IntArray
    product: IntArray
    quantity: IntArray
    price: FloatArray


def _baskets(
    rng: np.random.Generator, world: World, people: People, person: IntArray, t: FloatArray
) -> _Basket:
    cat, cal = world.catalogue, world.calendar
    count = np.minimum(1 + rng.poisson(people.extra_items[person]), 6).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    total = int(count.sum())
    product = rng.choice(len(cat), size=total, p=cat.popularity).astype(np.int64)
    quantity = np.where(rng.random(total) < 0.08, 2, 1).astype(np.int64)
    idx = np.clip(
        np.repeat(np.floor(t).astype(np.int64), count) + cal.index(0), 0, len(cal.sales) - 1
    )
    on_sale = cal.sales[idx] & (rng.random(total) < 0.6)
    markdown = np.where(on_sale, np.where(cal.sales_opening[idx], 0.7, 0.6), 1.0)
    return _Basket(count, start, product, quantity, np.round(cat.price[product] * markdown, 2))


def _coupons(
    rng: np.random.Generator,
    world: World,
    people: People,
    dem: Demand,
    t: FloatArray,
    channel: IntArray,
) -> IntArray:
    cal = world.calendar
    idx = np.clip(np.floor(t).astype(np.int64) + cal.index(0), 0, len(cal.sales) - 1)
    u = rng.random(len(t))
    new = (
        (dem.kind == BASE)
        & (dem.ref == 0)
        & (people.cause[dem.person] >= 0)
        & (channel != IN_STORE)
    )
    promo = np.zeros(len(t), dtype=bool)
    camp = np.flatnonzero(dem.kind == CAMPAIGN)
    promo[camp] = [world.campaigns[r].promo for r in dem.ref[camp].tolist()]
    vip = (dem.kind == CAMPAIGN) & promo & ~cal.black_friday[idx]
    coupon = np.where(cal.black_friday[idx] & (u < 0.6), 1, -1)
    coupon = np.where(new & (coupon < 0) & (u < 0.35), 0, coupon)
    result: IntArray = np.where(vip & (coupon < 0) & (u < 0.5), 2, coupon).astype(np.int64)
    return result


def _sorted(dem: Demand) -> Demand:
    order = np.argsort(dem.t, kind="stable")
    return Demand(
        dem.person[order],
        dem.t[order],
        dem.kind[order],
        dem.ref[order],
        dem.online[order],
        dem.exists,
        dem.churn,
        dem.crm,
        dem.unsubscribed,
    )


@dataclass(slots=True)
class _Money:
    subtotal: FloatArray
    discount: FloatArray
    coupon: IntArray
    rate: FloatArray
    shipping: FloatArray
    revenue: FloatArray


def _money(
    rng: np.random.Generator,
    world: World,
    people: People,
    dem: Demand,
    t: FloatArray,
    channel: IntArray,
    basket: _Basket,
) -> _Money:
    line_total: FloatArray = basket.price * basket.quantity
    subtotal: FloatArray = np.zeros(0)
    if len(t):
        subtotal = np.round(np.add.reduceat(line_total, basket.start), 2).astype(np.float64)
    coupon = _coupons(rng, world, people, dem, t, channel)
    rates = np.array([c[1] for c in COUPONS])
    rate: FloatArray = np.where(coupon >= 0, rates[np.maximum(coupon, 0)], 0.0)
    discount: FloatArray = np.round(subtotal * rate, 2)
    revenue: FloatArray = np.round(subtotal - discount, 2)
    shipped = (channel == DELIVERY) | (channel == APP_ORDER)
    shipping: FloatArray = np.where(shipped & (revenue < FREE_SHIPPING_FROM), SHIPPING_EUR, 0.0)
    return _Money(subtotal, discount, coupon, rate, shipping, revenue)


@dataclass(slots=True)
class _Returns:
    line: IntArray
    t: FloatArray
    in_store: BoolArray
    store: IntArray
    refund: FloatArray


def _returns(
    rng: np.random.Generator,
    world: World,
    people: People,
    who: IntArray,
    t: FloatArray,
    channel: IntArray,
    store: IntArray,
    basket: _Basket,
    money: _Money,
) -> _Returns:
    n = len(t)
    returned = rng.random(n) < RETURN_RATE[channel]
    pick = np.floor(rng.random(n) * basket.count).astype(np.int64)
    line = np.where(returned, basket.start + pick, -1)
    by_post = np.isin(channel, [DELIVERY, APP_ORDER]) & (
        (rng.random(n) < 0.65) | (people.region[who] == ELSEWHERE)
    )
    in_store = returned & ~by_post
    where = np.where(store >= 0, store, np.minimum(people.region[who], len(STORES) - 1))
    when = np.floor(t) + rng.integers(3, 22, n) + store_hours(rng, n) / 24.0
    when = np.where(in_store, next_open(world, when), when)
    line_total = basket.price * basket.quantity
    refund = np.round(line_total[np.maximum(line, 0)] * (1.0 - money.rate), 2)
    return _Returns(
        line=line,
        t=np.where(returned, when, np.nan),
        in_store=in_store,
        store=np.where(in_store, where, -1).astype(np.int64),
        refund=np.where(returned, refund, 0.0),
    )


@dataclass(slots=True)
class _After:
    review_t: FloatArray
    review_rating: IntArray
    survey_t: FloatArray
    survey_score: IntArray
    call_t: FloatArray
    call_reason: IntArray
    call_outcome: IntArray
    call_seconds: IntArray
    csat: IntArray


def _after(
    rng: np.random.Generator,
    people: People,
    who: IntArray,
    t: FloatArray,
    channel: IntArray,
    ret: _Returns,
) -> _After:
    """Draw reviews, survey answers and calls; unhappy experiences lower the scores."""
    n = len(t)
    returned = ret.line >= 0
    shipped = channel != IN_STORE
    call = (shipped & (rng.random(n) < 0.05)) | (returned & ~ret.in_store & (rng.random(n) < 0.25))
    mood = people.satisfaction[who] + rng.normal(0.0, 1.2, n) - 1.8 * returned - 1.5 * call
    reviewed = shipped & ~returned & (rng.random(n) < 0.08)
    surveyed = rng.random(n) < 0.15
    reason = np.where(returned, rng.choice([1, 2, 3], n), rng.choice([0, 0, 0, 4, 3], n))
    return _After(
        review_t=np.where(reviewed, t + rng.uniform(7.0, 16.0, n), np.nan),
        review_rating=np.clip(np.round(mood / 2.0), 1, 5).astype(np.int64),
        survey_t=np.where(surveyed, t + rng.uniform(1.5, 5.0, n), np.nan),
        survey_score=np.clip(np.round(mood), 0, 10).astype(np.int64),
        call_t=np.where(
            call, np.floor(t + rng.uniform(2.0, 12.0, n)) + rng.uniform(9.0, 19.0, n) / 24.0, np.nan
        ),
        call_reason=reason.astype(np.int64),
        call_outcome=rng.choice(len(CALL_OUTCOMES), n, p=[0.6, 0.15, 0.15, 0.1]).astype(np.int64),
        call_seconds=np.round(rng.gamma(2.0, 150.0, n) + 30).astype(np.int64),
        csat=np.where(call & (rng.random(n) < 0.3), np.clip(np.round(mood / 2.0), 1, 5), -1).astype(
            np.int64
        ),
    )


def _pickups(
    rng: np.random.Generator, world: World, t: FloatArray, channel: IntArray
) -> FloatArray:
    """Draw when click & collect orders are picked up: 1 to 3 days later, when open."""
    n = len(t)
    pickup_t = np.floor(t) + 1 + rng.integers(0, 3, n) + store_hours(rng, n) / 24.0
    result: FloatArray = np.where(channel == COLLECT, next_open(world, pickup_t), np.nan)
    return result


def build(world: World, people: People, dem: Demand) -> Orders:
    """Turn the real world's purchases into orders with baskets, returns and after-sales."""
    rng = np.random.default_rng([world.seed, 5, people.chunk])
    dem = _sorted(dem)
    who = dem.person
    channel = _channels(rng, world, people, dem)
    store = _stores(rng, people, who, channel)
    t = _times(rng, world, dem, channel)
    basket = _baskets(rng, world, people, who, t)
    money = _money(rng, world, people, dem, t, channel, basket)
    ret = _returns(rng, world, people, who, t, channel, store, basket, money)
    after = _after(rng, people, who, t, channel, ret)
    number, pickup_number, return_number = order_numbers(people.chunk, channel, store, ret.store)
    pickup_t = _pickups(rng, world, t, channel)
    return Orders(
        person=who,
        t=t,
        channel=channel,
        store=store,
        kind=dem.kind,
        ref=dem.ref,
        key=slot_keys(dem),
        first=(dem.kind == BASE) & (dem.ref == 0),
        number=number,
        line_start=basket.start,
        line_count=basket.count,
        line_product=basket.product,
        line_quantity=basket.quantity,
        line_price=basket.price,
        subtotal=money.subtotal,
        discount=money.discount,
        coupon=money.coupon,
        shipping=money.shipping,
        revenue=money.revenue,
        pickup_t=pickup_t,
        pickup_number=pickup_number,
        returned_line=ret.line,
        return_t=ret.t,
        return_in_store=ret.in_store,
        return_store=ret.store,
        return_number=return_number,
        refund=ret.refund,
        review_t=after.review_t,
        review_rating=after.review_rating,
        survey_t=after.survey_t,
        survey_score=after.survey_score,
        call_t=after.call_t,
        call_reason=after.call_reason,
        call_outcome=after.call_outcome,
        call_seconds=after.call_seconds,
        csat=after.csat,
    )
