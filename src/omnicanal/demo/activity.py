"""What the people of one chunk do: purchases, campaigns received, workshops, returns.

Purchases follow a BG/NBD process per customer (a purchase rate while alive, and a
chance of leaving after each purchase), run in a time warped by the calendar so that
sales, Black Friday and Christmas bring more purchases. Marketing adds to it and never
takes away: a newsletter, SMS or push can make an alive customer buy who would not
have, a workshop can make an attendee buy in the store, and each acquisition cause
(organic, an ad network, a press title, street marketing) brings its own customers.

`demand(...)` is the part of the simulation that channels act on. It is run once for the
real world and once per channel with that channel switched off, on the same random
numbers (each draw belongs to one person and one campaign or purchase, whatever
happens to the others), so the difference is that channel's true incremental effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from omnicanal.demo.days import PRE_DAYS, BoolArray, FloatArray, IntArray
from omnicanal.demo.people import (
    APP,
    BARGAIN,
    CHANNEL_MIX,
    OMNI,
    PROSPECT,
    STORE,
    People,
    store_hours,
)
from omnicanal.demo.shop import ELSEWHERE
from omnicanal.demo.world import World

DELIVERY, COLLECT, APP_ORDER, IN_STORE = range(4)  # how an order was placed and fulfilled
BASE, CAMPAIGN, WORKSHOP = range(3)  # why an order happened
COUPONS = (("BIENVENUE10", 0.10), ("BLACKFRIDAY20", 0.20), ("VIP15", 0.15))
WORKSHOP_ATTENDEES = 14.0  # expected per workshop at the reference size
STREET_SIGNUPS = 0.012  # chance a Paris-area person met by the street team signs up


@dataclass(slots=True)
class Reach:
    """The marketing messages people received, one row per person and campaign."""

    person: IntArray
    campaign: IntArray
    t: FloatArray  # delivered
    opened: FloatArray  # nan when not opened (e-mail; SMS count as read when delivered)
    clicked: FloatArray  # nan when not clicked
    unsubscribed: BoolArray


@dataclass(slots=True)
class Visit:
    """People signed up at a workshop or a street-marketing operation."""

    person: IntArray
    operation: IntArray  # index in world.workshops, or -1 for the street operation
    t: FloatArray


@dataclass(slots=True)
class Demand:
    """Which purchases happen, and why, in one version of the world."""

    person: IntArray
    t: FloatArray
    kind: IntArray  # BASE, CAMPAIGN or WORKSHOP
    ref: IntArray  # purchase number (BASE), campaign or workshop index
    online: BoolArray  # a campaign purchase made online after a click
    exists: BoolArray  # [person] present in this version of the world
    churn: FloatArray  # [person] when they stopped buying (inf: never)
    crm: FloatArray  # [person] when they got a customer record (inf: never)
    unsubscribed: FloatArray  # [person] when they unsubscribed from e-mails (inf: never)
    reach: Reach | None = None
    visits: Visit | None = None


@dataclass(slots=True)
class Draws:
    """Random numbers drawn once per chunk and shared by every version of the world."""

    base_person: IntArray
    base_t: FloatArray
    base_k: IntArray
    churn: FloatArray
    crm_base: FloatArray  # when a customer record would be created, without campaigns
    optin: BoolArray  # [person, channel]: email, sms, push, post
    campaign_seed: int
    workshop_seed: int


def _warp(world: World) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return day boundaries and the cumulative demand at them (the warped clock)."""
    cal = world.calendar
    grid = np.arange(-PRE_DAYS, cal.days + cal.holdout + 1, dtype=np.float64)
    normal = np.concatenate([[0.0], np.cumsum(cal.demand)])
    bargain = np.concatenate([[0.0], np.cumsum(cal.bargain_demand)])
    return grid, normal, bargain


def _base(
    world: World, people: People, rng: np.random.Generator
) -> tuple[IntArray, FloatArray, IntArray, FloatArray]:
    """Run every customer's BG/NBD purchase process in calendar-warped time."""
    horizon = float(world.calendar.days + world.calendar.holdout)
    grid, normal, bargain = _warp(world)
    who = np.flatnonzero(people.customer)
    warped = people.persona[who] == BARGAIN
    clock = np.where(
        warped, np.interp(people.t0[who], grid, bargain), np.interp(people.t0[who], grid, normal)
    )
    persons, times, ks = [who], [people.t0[who]], [np.zeros(len(who), dtype=np.int64)]
    churn = np.full(len(people), np.inf)
    alive = rng.random(len(who)) >= people.dropout[who]
    churn[who[~alive]] = people.t0[who[~alive]]
    k = 0
    while alive.any():
        k += 1
        who, clock, warped = who[alive], clock[alive], warped[alive]
        clock = clock + rng.exponential(1.0, len(who)) / people.rate[who]
        t = np.where(warped, np.interp(clock, bargain, grid), np.interp(clock, normal, grid))
        inside = t < horizon
        who, clock, warped, t = who[inside], clock[inside], warped[inside], t[inside]
        persons.append(who)
        times.append(t)
        ks.append(np.full(len(who), k, dtype=np.int64))
        alive = rng.random(len(who)) >= people.dropout[who]
        churn[who[~alive]] = t[~alive]
    return np.concatenate(persons), np.concatenate(times), np.concatenate(ks), churn


def draw(world: World, people: People) -> Draws:
    """Draw the chunk's random numbers that every version of the world shares."""
    rng = np.random.default_rng([world.seed, 2, people.chunk])
    person, t, k, churn = _base(world, people, rng)
    n = len(people)
    online = CHANNEL_MIX[people.persona, :3].sum(axis=1) > 0
    record = people.customer & (online | people.wants_card | (rng.random(n) < 0.3))
    crm = np.where(record, people.t0, np.inf)
    signup = (people.persona == PROSPECT) & (rng.random(n) < 0.3)
    crm[signup] = rng.uniform(0.0, world.calendar.days, int(signup.sum()))
    email = rng.random(n) < np.where(signup, 1.0, np.where(online, 0.28, 0.18))
    optin = np.column_stack(
        [email, rng.random(n) < 0.22, people.app & (rng.random(n) < 0.6), rng.random(n) < 0.3]
    )
    return Draws(
        person, t, k, churn, crm, optin, int(rng.integers(2**31)), int(rng.integers(2**31))
    )


def _alive(people: People, churn: FloatArray, who: IntArray, t: float) -> BoolArray:
    result: BoolArray = people.customer[who] & (people.t0[who] <= t) & (churn[who] >= t)
    return result


@dataclass(slots=True)
class _Campaigns:
    """Running state of the campaign loop, and its results column by column."""

    unsub: FloatArray
    who: list[IntArray] = field(default_factory=list)
    campaign: list[IntArray] = field(default_factory=list)
    sent: list[FloatArray] = field(default_factory=list)
    opened: list[FloatArray] = field(default_factory=list)
    clicked: list[FloatArray] = field(default_factory=list)
    unsubscribed: list[BoolArray] = field(default_factory=list)
    buyer: list[IntArray] = field(default_factory=list)
    buy_t: list[FloatArray] = field(default_factory=list)
    buy_ref: list[IntArray] = field(default_factory=list)
    buy_online: list[BoolArray] = field(default_factory=list)


def ints(parts: list[IntArray]) -> IntArray:
    """Concatenate integer arrays (none: an empty one)."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def floats(parts: list[FloatArray]) -> FloatArray:
    """Concatenate float arrays (none: an empty one)."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def bools(parts: list[BoolArray]) -> BoolArray:
    """Concatenate boolean arrays (none: an empty one)."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _eligible(
    world: World, people: People, d: Draws, exists: BoolArray, c: int, t: float, unsub: FloatArray
) -> IntArray:
    channel = world.campaigns[c].channel
    ok = exists & (d.crm_base <= t)
    if channel == "email":
        ok &= d.optin[:, 0] & (unsub > t)
    elif channel == "sms":
        ok &= d.optin[:, 1]
    else:
        ok &= d.optin[:, 2]
    return np.flatnonzero(ok)


def _campaign(
    world: World, people: People, d: Draws, exists: BoolArray, c: int, state: _Campaigns
) -> None:
    camp = world.campaigns[c]
    rng = np.random.default_rng([d.campaign_seed, c])
    n = len(people)
    jitter, u_open, delay, u_click, u_buy, u_path, u_unsub, lag = rng.random((8, n))
    sent = camp.day + camp.hour / 24.0 + jitter * (2.0 / 24.0 if camp.channel == "email" else 0.01)
    who = _eligible(world, people, d, exists, c, float(camp.day), state.unsub)
    eng = people.engagement[who]
    opened = u_open[who] < (eng if camp.channel != "sms" else np.ones(len(who)))
    open_t = sent[who] + (
        -np.log1p(-delay[who] * 0.999) * 0.15 if camp.channel == "email" else 0.003
    )
    click_p = {"email": 0.15, "sms": 0.06, "push": 0.35}[camp.channel]
    clicked = opened & (u_click[who] < click_p)
    buys = _alive(people, d.churn, who, float(camp.day)) & (
        u_buy[who] < camp.effect * (0.5 + 2.0 * eng)
    )
    online_share = CHANNEL_MIX[people.persona[who], :3].sum(axis=1)
    online = buys & ((u_path[who] < online_share) | (people.region[who] == ELSEWHERE))
    opened |= online
    clicked |= online
    click_t = open_t + 0.002
    unsub = (camp.channel == "email") & opened & (u_unsub[who] < 0.004) & ~buys
    state.unsub[who[unsub]] = open_t[unsub]
    store_t = (
        np.floor(sent[who]) + 1.0 + np.floor(lag[who] * 3.0) + store_hours(rng, len(who)) / 24.0
    )
    buy_t = np.where(online, click_t + 0.01, store_t)
    state.who.append(who)
    state.campaign.append(np.full(len(who), c, dtype=np.int64))
    state.sent.append(sent[who])
    state.opened.append(np.where(opened, open_t, np.nan))
    state.clicked.append(np.where(clicked, click_t, np.nan))
    state.unsubscribed.append(unsub)
    state.buyer.append(who[buys])
    state.buy_t.append(buy_t[buys])
    state.buy_ref.append(np.full(int(buys.sum()), c, dtype=np.int64))
    state.buy_online.append(online[buys])


def _campaigns(
    world: World, people: People, d: Draws, exists: BoolArray, off: str | None
) -> tuple[Reach, tuple[IntArray, FloatArray, IntArray, BoolArray], FloatArray]:
    state = _Campaigns(unsub=np.full(len(people), np.inf))
    for c, camp in enumerate(world.campaigns):
        if off != camp.channel:
            _campaign(world, people, d, exists, c, state)
    reach = Reach(
        ints(state.who),
        ints(state.campaign),
        floats(state.sent),
        floats(state.opened),
        floats(state.clicked),
        bools(state.unsubscribed),
    )
    buys = (ints(state.buyer), floats(state.buy_t), ints(state.buy_ref), bools(state.buy_online))
    return reach, buys, state.unsub


def _workshops(
    world: World, people: People, d: Draws, exists: BoolArray, off: str | None
) -> tuple[Visit, tuple[IntArray, FloatArray, IntArray]]:
    cal = world.calendar
    persons, ops, times, buyers, buy_t, buy_ref = [], [], [], [], [], []
    store_like = np.isin(people.persona, [STORE, OMNI, BARGAIN, APP, PROSPECT])
    for w, op in enumerate(world.workshops):
        rng = np.random.default_rng([d.workshop_seed, w])
        u_attend, u_buy = rng.random((2, len(people)))
        acquired = 1.0 - 0.7 * max(0.0, 1.0 - op.day / max(cal.days, 1))
        share = world.customers * 0.75 * acquired * (0.5, 0.28, 0.22)[op.store]
        chance = WORKSHOP_ATTENDEES * world.scale / max(share, 1.0)
        known = people.customer & (people.t0 <= op.day) | ~people.customer
        came = exists & store_like & known & (people.region == op.store)
        came &= u_attend < np.where(people.customer, chance, chance * 0.3)
        who = np.flatnonzero(came)
        persons.append(who)
        ops.append(np.full(len(who), w))
        times.append(op.day + op.hour / 24.0 + rng.uniform(-0.01, 0.01, len(who)))
        if off != op.channel:
            buy = who[_alive(people, d.churn, who, float(op.day)) & (u_buy[who] < 0.35)]
            buyers.append(buy)
            buy_t.append(op.day + rng.uniform(16.5, 19.0, len(buy)) / 24.0)
            buy_ref.append(np.full(len(buy), w))
    visit = Visit(np.concatenate(persons), np.concatenate(ops), np.concatenate(times))
    empty = np.zeros(0, dtype=np.int64)
    bought = (
        np.concatenate(buyers or [empty]),
        np.concatenate(buy_t or [np.zeros(0)]),
        np.concatenate(buy_ref or [empty]),
    )
    return visit, bought


def _street(world: World, people: People, exists: BoolArray, seed: int) -> Visit:
    """People who signed up with the street-marketing team (its new customers, and others)."""
    op = world.street
    rng = np.random.default_rng([seed, 999_999])
    street = world.causes.index(op.channel)
    u, when = rng.random((2, len(people)))
    day = op.day + np.floor(when * op.days)
    brought = people.cause == street
    day = np.where(brought, np.minimum(np.floor(people.t0), op.day + op.days - 1), day)
    near = (people.region == op.store) & (rng.random(len(people)) < STREET_SIGNUPS)
    met = exists & (
        brought & (u < 0.8) | near & ~brought & (people.t0 < day) | near & ~people.customer
    )
    who = np.flatnonzero(met)
    t = day[who] + rng.uniform(10.5, 18.5, len(who)) / 24.0
    t = np.where(brought[who], np.minimum(t, people.t0[who] - 0.01), t)
    return Visit(who, np.full(len(who), -1), t)


def demand(world: World, people: People, d: Draws, off: str | None = None) -> Demand:
    """Return the purchases of one version of the world: all channels, or one switched off."""
    exists = np.ones(len(people), dtype=bool)
    if off is not None and off in world.causes:
        exists &= people.cause != world.causes.index(off)
    reach, camp, unsub = _campaigns(world, people, d, exists, off)
    visits, shop = _workshops(world, people, d, exists, off)
    street = _street(world, people, exists, d.workshop_seed)
    keep = exists[d.base_person]
    n_camp, n_shop = len(camp[0]), len(shop[0])
    return Demand(
        person=np.concatenate([d.base_person[keep], camp[0], shop[0]]),
        t=np.concatenate([d.base_t[keep], camp[1], shop[1]]),
        kind=np.concatenate(
            [np.full(int(keep.sum()), BASE), np.full(n_camp, CAMPAIGN), np.full(n_shop, WORKSHOP)]
        ),
        ref=np.concatenate([d.base_k[keep], camp[2], shop[2]]),
        online=np.concatenate(
            [np.zeros(int(keep.sum()), dtype=bool), camp[3], np.zeros(n_shop, dtype=bool)]
        ),
        exists=exists,
        churn=d.churn,
        crm=np.where(exists, d.crm_base, np.inf),
        unsubscribed=unsub,
        reach=reach,
        visits=Visit(
            np.concatenate([visits.person, street.person]),
            np.concatenate([visits.operation, street.operation]),
            np.concatenate([visits.t, street.t]),
        ),
    )


def slot_keys(dem: Demand) -> IntArray:
    """Return one number per purchase that names it in every version of the world."""
    result: IntArray = (dem.person * 3 + dem.kind) * 10_000 + dem.ref
    return result
