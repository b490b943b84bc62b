"""Visits to the e-shop and the app: what brought people there and what they did.

A session is one visit on one device (laptop browser, phone browser, app): how it
started (typed address, search engine, an ad click with its click id, a newsletter,
an SMS, a push, a QR code on a flyer), what was looked at, and whether it ended with an
order, an abandoned cart, a newsletter sign-up or a review. Sessions come from orders
(the checkout visit, the research visit before a store purchase), from acquisition
(the ad click that made someone discover the brand), from campaign clicks, and from
browsing that leads nowhere. Only the loaded period has sessions.

The number of messages each session sends is decided here, so the count is known
before any message is built.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from omnicanal.demo.activity import APP_ORDER, CAMPAIGN, IN_STORE, Demand
from omnicanal.demo.days import BoolArray, FloatArray, IntArray
from omnicanal.demo.orders import Orders
from omnicanal.demo.people import APP, PROSPECT, STORE, People, online_hours
from omnicanal.demo.world import NETWORKS, World

DESKTOP, MOBILE, APP_DEVICE = range(3)
PURCHASE, RESEARCH, DISCOVERY, BROWSE, CART, SIGNUP, REVIEW = range(7)
DIRECT, SEARCH, SOCIAL, AD, BRAND, EMAIL, SMS, PUSH, QR, REFERRAL = range(10)
_CAMPAIGN_ENTRY = {"email": EMAIL, "sms": SMS, "push": PUSH}
# Entries of ordinary visits: direct, search engine, organic social, ad networks, brand search,
# referral. Ad clicks here are people who would have come anyway: no incremental effect.
_CUSTOMER_ENTRIES = (
    (DIRECT, -1, 0.30),
    (SEARCH, -1, 0.22),
    (SOCIAL, -1, 0.10),
    (BRAND, 0, 0.13),
    (AD, 0, 0.05),
    (AD, 1, 0.05),
    (AD, 2, 0.04),
    (AD, 3, 0.02),
    (REFERRAL, -1, 0.05),
)
_PROSPECT_ENTRIES = (
    (DIRECT, -1, 0.08),
    (SEARCH, -1, 0.20),
    (SOCIAL, -1, 0.12),
    (BRAND, 0, 0.02),
    (AD, 0, 0.14),
    (AD, 1, 0.18),
    (AD, 2, 0.10),
    (AD, 3, 0.12),
    (REFERRAL, -1, 0.04),
)
_BROWSE_PER_YEAR = np.array([1.2, 0.2, 1.6, 0.6, 1.2, 0.0])  # web visits without an order
_APP_PER_YEAR = np.array([0.6, 0.0, 1.2, 2.5, 0.6, 0.3])
_RESEARCH = np.array([0.25, 0.12, 0.55, 0.30, 0.35, 0.0])  # a visit before a store purchase


@dataclass(slots=True)
class Sessions:
    """Visits, sorted by start time."""

    t: FloatArray
    person: IntArray
    device: IntArray
    kind: IntArray
    order: IntArray  # order index (purchase, research, review) or -1
    entry: IntArray
    ref: IntArray  # network (AD, BRAND), campaign (EMAIL, SMS, PUSH) or -1
    duration: FloatArray  # days
    views: IntArray
    list_view: BoolArray
    search: BoolArray
    adds: IntArray
    cart: BoolArray
    checkout: BoolArray
    identify: BoolArray  # sends an identify call
    known: BoolArray  # the device already knows the customer's userId when the visit starts

    def __len__(self) -> int:
        return len(self.t)

    def messages(self) -> IntArray:
        """Return how many messages each session sends."""
        app = self.device == APP_DEVICE
        count = 1 + app + 2 * self.list_view + self.search + 2 * self.views + self.adds
        count += 2 * self.cart + 2 * self.checkout + self.identify
        count += (self.kind == PURCHASE) + (self.kind == REVIEW)
        result: IntArray = count.astype(np.int64)
        return result


@dataclass(slots=True)
class _Part:
    t: FloatArray
    person: IntArray
    device: IntArray
    kind: int
    order: IntArray
    entry: IntArray
    ref: IntArray


def _entries(
    rng: np.random.Generator, n: int, table: tuple[tuple[int, int, float], ...]
) -> tuple[IntArray, IntArray]:
    p = np.array([w for _, _, w in table])
    pick = rng.choice(len(table), size=n, p=p / p.sum())
    entry = np.array([e for e, _, _ in table], dtype=np.int64)[pick]
    ref = np.array([r for _, r, _ in table], dtype=np.int64)[pick]
    return entry, ref


def _web_device(rng: np.random.Generator, people: People, who: IntArray, mobile: float) -> IntArray:
    on_phone = people.mobile_web[who] & (rng.random(len(who)) < mobile)
    result: IntArray = np.where(on_phone, MOBILE, DESKTOP).astype(np.int64)
    return result


def _purchases(
    rng: np.random.Generator, world: World, people: People, orders: Orders, discovered: BoolArray
) -> _Part:
    """The checkout visit of each online order, with what brought the customer."""
    idx = np.flatnonzero(
        (orders.channel != IN_STORE) & (orders.t >= 0) & (orders.t < world.calendar.days)
    )
    who = orders.person[idx]
    device = np.where(
        orders.channel[idx] == APP_ORDER, APP_DEVICE, _web_device(rng, people, who, 0.45)
    )
    entry, ref = _entries(rng, len(idx), _CUSTOMER_ENTRIES)
    cause = people.cause[who]
    first = orders.first[idx]
    for n, net in enumerate(NETWORKS):
        hit = first & (cause == world.causes.index(net.channel)) & ~discovered[who]
        entry[hit], ref[hit] = AD, n
    press = first & np.isin(
        cause, [i for i, c in enumerate(world.causes) if c.startswith("press:")]
    )
    u = rng.random(len(idx))
    entry[press] = np.where(u[press] < 0.4, BRAND, np.where(u[press] < 0.8, DIRECT, SEARCH))
    ref[press] = np.where(u[press] < 0.4, 0, -1)
    street = first & (cause == world.causes.index(world.street.channel))
    entry[street], ref[street] = QR, -1
    camp = orders.kind[idx] == CAMPAIGN
    camp_channel = [world.campaigns[r].channel for r in orders.ref[idx][camp]]
    entry[camp] = [_CAMPAIGN_ENTRY[c] for c in camp_channel]
    ref[camp] = orders.ref[idx][camp]
    device[camp] = np.where(
        entry[camp] == PUSH, APP_DEVICE, np.where(entry[camp] == SMS, MOBILE, device[camp])
    )
    return _Part(orders.t[idx], who, device.astype(np.int64), PURCHASE, idx, entry, ref)


def _research(rng: np.random.Generator, world: World, people: People, orders: Orders) -> _Part:
    """Visits before a purchase: reading reviews before buying online, or before a store visit."""
    who = orders.person
    chance = np.where(orders.channel == IN_STORE, _RESEARCH[people.persona[who]], 0.2)
    chance = np.where(people.persona[who] == STORE, chance * (orders.channel == IN_STORE), chance)
    t = orders.t - rng.uniform(0.15, 5.0, len(who))
    t = np.floor(t) + online_hours(rng, len(who)) / 24.0
    hit = (
        (rng.random(len(who)) < chance)
        & (t >= 0)
        & (t < orders.t - 0.05)
        & (orders.t < world.calendar.days)
    )
    idx = np.flatnonzero(hit)
    entry, ref = _entries(rng, len(idx), _CUSTOMER_ENTRIES)
    device = _web_device(rng, people, who[idx], 0.6)
    return _Part(t[idx], who[idx], device, RESEARCH, idx, entry, ref)


def _discovery(rng: np.random.Generator, world: World, people: People) -> tuple[_Part, BoolArray]:
    """The ad click or QR scan some days before a new customer's first purchase."""
    networks = {world.causes.index(n.channel): i for i, n in enumerate(NETWORKS)}
    street = world.causes.index(world.street.channel)
    paid = np.isin(people.cause, list(networks))
    lag = 0.1 + rng.exponential(3.0, len(people))
    early = paid & (rng.random(len(people)) < 0.65) | (people.cause == street) & (
        rng.random(len(people)) < 0.4
    )
    t = np.floor(people.t0 - lag) + online_hours(rng, len(people)) / 24.0
    early &= (t >= 0) & (t < people.t0 - 0.02) & (people.t0 < world.calendar.days)
    who = np.flatnonzero(early)
    ref = np.array([networks.get(int(c), -1) for c in people.cause[who]], dtype=np.int64)
    entry = np.where(ref >= 0, AD, QR).astype(np.int64)
    device = np.where(people.persona[who] == APP, APP_DEVICE, _web_device(rng, people, who, 0.7))
    device = np.where(entry == QR, np.where(people.mobile_web[who], MOBILE, DESKTOP), device)
    part = _Part(t[who], who, device.astype(np.int64), DISCOVERY, np.full(len(who), -1), entry, ref)
    return part, early


def _browsing(rng: np.random.Generator, world: World, people: People, dem: Demand) -> list[_Part]:
    """Visits that lead nowhere (or to an abandoned cart), on the web and in the app."""
    days = float(world.calendar.days)
    visit = np.where(np.isfinite(dem.crm), dem.crm - 0.01, rng.uniform(0, days, len(people)))
    begin = np.clip(np.where(people.customer, people.t0 - 20.0, visit), 0, days)
    end = np.clip(np.where(people.customer, dem.churn + 90.0, begin + 30.0), 0, days)
    span = np.maximum(end - begin, 0.0) / 365.0
    parts = []
    for device, per_year in ((DESKTOP, _BROWSE_PER_YEAR), (APP_DEVICE, _APP_PER_YEAR)):
        rate = per_year[people.persona] * span * (people.app if device == APP_DEVICE else 1.0)
        count = rng.poisson(rate)
        if device == DESKTOP:
            count = np.where(people.persona == PROSPECT, 1 + rng.poisson(0.4, len(people)), count)
        who = np.repeat(np.arange(len(people)), count)
        t = (
            np.floor(begin[who] + rng.random(len(who)) * (end[who] - begin[who]))
            + online_hours(rng, len(who)) / 24.0
        )
        keep = (t >= 0) & (t < days) & (people.customer[who] | (t >= begin[who]))
        who, t = who[keep], t[keep]
        prospect = people.persona[who] == PROSPECT
        entry, ref = _entries(rng, len(who), _CUSTOMER_ENTRIES)
        p_entry, p_ref = _entries(rng, len(who), _PROSPECT_ENTRIES)
        entry, ref = np.where(prospect, p_entry, entry), np.where(prospect, p_ref, ref)
        dev = (
            _web_device(rng, people, who, 0.5)
            if device == DESKTOP
            else np.full(len(who), APP_DEVICE)
        )
        parts.append(_Part(t, who, dev.astype(np.int64), BROWSE, np.full(len(who), -1), entry, ref))
    return parts


def _clicks(
    world: World, people: People, dem: Demand, orders: Orders, rng: np.random.Generator
) -> _Part:
    """Landing visits from campaign clicks that did not end in an order on the spot."""
    reach = dem.reach
    assert reach is not None
    bought = (orders.kind == CAMPAIGN) & (orders.channel != IN_STORE)
    done = set((orders.person[bought] * 1000 + orders.ref[bought]).tolist())
    key = reach.person * 1000 + reach.campaign
    hit = np.isfinite(reach.clicked) & (reach.clicked < world.calendar.days)
    hit &= ~np.isin(key, np.array(sorted(done), dtype=np.int64))
    idx = np.flatnonzero(hit)
    channel = np.array([world.campaigns[c].channel for c in reach.campaign[idx]], dtype=object)
    entry = np.array([_CAMPAIGN_ENTRY[c] for c in channel], dtype=np.int64)
    who = reach.person[idx]
    web = _web_device(rng, people, who, 0.55)
    device = np.where(entry == PUSH, APP_DEVICE, np.where(entry == SMS, MOBILE, web))
    return _Part(
        reach.clicked[idx],
        who,
        device.astype(np.int64),
        BROWSE,
        np.full(len(idx), -1),
        entry,
        reach.campaign[idx],
    )


def _signups(world: World, people: People, dem: Demand, rng: np.random.Generator) -> _Part:
    """Prospects subscribing to the newsletter on the e-shop."""
    who = np.flatnonzero((people.persona == PROSPECT) & (dem.crm < world.calendar.days))
    device = _web_device(rng, people, who, 0.5)
    entry, ref = _entries(rng, len(who), _PROSPECT_ENTRIES)
    return _Part(dem.crm[who], who, device, SIGNUP, np.full(len(who), -1), entry, ref)


def _reviews(world: World, people: People, orders: Orders, rng: np.random.Generator) -> _Part:
    idx = np.flatnonzero((orders.review_t >= 0) & (orders.review_t < world.calendar.days))
    who = orders.person[idx]
    device = _web_device(rng, people, who, 0.3)
    return _Part(
        orders.review_t[idx],
        who,
        device,
        REVIEW,
        idx,
        np.full(len(idx), DIRECT),
        np.full(len(idx), -1),
    )


def _known(person: IntArray, device: IntArray, t: FloatArray, login: BoolArray) -> BoolArray:
    """Whether a device already carries the userId: an earlier login on the same device."""
    order = np.lexsort((t, device, person))
    p, d, lg = person[order], device[order], login[order].astype(np.int64)
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = (p[1:] != p[:-1]) | (d[1:] != d[:-1])
    before = np.cumsum(lg) - lg
    start = np.maximum.accumulate(np.where(new_group, np.arange(len(order)), 0))
    known_sorted = (before - before[start]) > 0
    known = np.empty(len(order), dtype=bool)
    known[order] = known_sorted
    return known


_VIEWS = np.array([0.2, 0.4, 0.5, 0.5, 0.5, 0.3, 0.0])
_LIST = np.array([0.25, 0.35, 0.3, 0.35, 0.35, 0.2, 0.0])
_SEARCH = np.array([0.2, 0.25, 0.0, 0.2, 0.2, 0.0, 0.0])


def _shape(
    rng: np.random.Generator, kind: IntArray, order: IntArray, orders: Orders
) -> dict[str, np.ndarray]:
    n = len(kind)
    lines = np.where(order >= 0, orders.line_count[np.maximum(order, 0)], 0)
    with_lines = np.isin(kind, [PURCHASE, RESEARCH])
    base = np.where(with_lines, lines, np.where(np.isin(kind, [DISCOVERY, BROWSE, CART]), 1, 0))
    views = base + rng.poisson(_VIEWS[kind])
    views = np.where(kind == REVIEW, 1, views)
    cart_only = kind == CART
    return {
        "views": views.astype(np.int64),
        "list_view": rng.random(n) < _LIST[kind],
        "search": rng.random(n) < _SEARCH[kind],
        "adds": np.where(
            kind == PURCHASE, lines, np.where(cart_only, 1 + (rng.random(n) < 0.3), 0)
        ).astype(np.int64),
        "cart": (kind == PURCHASE) | cart_only,
        "checkout": (kind == PURCHASE) | (cart_only & (rng.random(n) < 0.3)),
        "duration": np.where(
            kind == PURCHASE, rng.uniform(0.006, 0.02, n), rng.uniform(0.002, 0.015, n)
        ),
    }


def build(world: World, people: People, dem: Demand, orders: Orders) -> Sessions:
    """Build the chunk's visits to the e-shop and the app, in time order."""
    rng = np.random.default_rng([world.seed, 6, people.chunk])
    discovery, discovered = _discovery(rng, world, people)
    parts = [
        _purchases(rng, world, people, orders, discovered),
        _research(rng, world, people, orders),
        discovery,
        *_browsing(rng, world, people, dem),
        _clicks(world, people, dem, orders, rng),
        _signups(world, people, dem, rng),
        _reviews(world, people, orders, rng),
    ]
    kind = np.concatenate([np.full(len(p.t), p.kind, dtype=np.int64) for p in parts])
    browse = kind == BROWSE
    entries = np.concatenate([p.entry for p in parts])
    abandon = browse & (rng.random(len(kind)) < 0.2) & (entries != PUSH)
    kind[abandon] = CART
    order = np.concatenate([p.order for p in parts])
    shape = _shape(rng, kind, order, orders)
    t = np.concatenate([p.t for p in parts])
    t = np.where(kind == PURCHASE, t - shape["duration"], t)
    person = np.concatenate([p.person for p in parts])
    device = np.concatenate([p.device for p in parts])
    login = np.isin(kind, [PURCHASE, REVIEW])
    known = _known(person, device, t, login)
    identify = (kind == PURCHASE) | (kind == SIGNUP) | ((kind == REVIEW) & ~known)
    sort = np.argsort(t, kind="stable")
    columns = {
        "t": t,
        "person": person,
        "device": device,
        "kind": kind,
        "order": order,
        "entry": entries,
        "ref": np.concatenate([p.ref for p in parts]),
        "identify": identify,
        "known": known,
        **shape,
    }
    return Sessions(**{f.name: columns[f.name][sort] for f in fields(Sessions)})
