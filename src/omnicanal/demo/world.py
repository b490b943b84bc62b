"""The demo retailer's world: stores, catalogue, calendar, media plan and campaigns.

Everything here is shared by every customer: what kind of day it is (weekday, sales,
Black Friday, Christmas), how much each ad network spends that day and how many new
customers that spend brings (a Hill saturation curve, so the next euro brings less than
the last), which newsletters, SMS and push notifications go out, the press insertions,
the street-marketing operation and the store workshops. Built once from the seed and the
size of the world; amounts scale with the number of customers so that costs per
customer stay those of a real mid-sized French fashion retailer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from omnicanal.demo import days, shop
from omnicanal.demo.days import PRE_DAYS, Calendar, FloatArray, months_before
from omnicanal.demo.shop import STORES, Catalogue

REFERENCE_CUSTOMERS = 20_000  # amounts below are for this many customers, then scaled


@dataclass(frozen=True, slots=True)
class Network:
    """An ad network bought by the retailer, and its true response to spend."""

    channel: str
    source: str  # utm_source
    medium: str  # utm_medium
    click_id: str  # the click identifier the network appends to landing URLs
    campaign: str
    daily_eur: float  # typical daily spend at the reference size
    share: float  # share of new customers it brings at the planned spend
    shape: float  # Hill exponent
    flighting: bool = False  # on three weeks, off two


NETWORKS = (
    Network("ads:google", "google", "cpc", "gclid", "generique", 140.0, 0.13, 1.2),
    Network("ads:instagram", "instagram", "paid_social", "fbclid", "prospection", 170.0, 0.13, 1.0),
    Network("ads:facebook", "facebook", "paid_social", "fbclid", "prospection", 110.0, 0.07, 1.0),
    Network("ads:tiktok", "tiktok", "paid_social", "ttclid", "tendances", 150.0, 0.06, 1.4, True),
)
BRAND_SEARCH_EUR = 35.0  # Google brand-keyword spend: clicks from people already looking for us
ORGANIC_SHARE = 0.50


@dataclass(frozen=True, slots=True)
class Insertion:
    """A paid press insertion: a cost on one day and a lift that fades over weeks."""

    channel: str
    title: str
    day: int
    cost_eur: float
    share: float


@dataclass(frozen=True, slots=True)
class Operation:
    """An offline operation: the street-marketing days or a workshop in a store."""

    channel: str
    event_type: str  # attendance file's event_type
    name: str
    store: int
    day: int
    days: int
    hour: float
    cost_eur: float


@dataclass(frozen=True, slots=True)
class Campaign:
    """A newsletter, SMS or push campaign sent to the consenting customers."""

    channel: str  # email | sms | push
    campaign_id: str
    name: str
    day: int
    hour: float
    effect: float  # chance that it makes an alive, engaged customer buy who would not have
    promo: bool


@dataclass(frozen=True, slots=True)
class World:
    """Everything shared by all customers of one demo world."""

    seed: int
    customers: int
    scale: float  # customers / REFERENCE_CUSTOMERS
    calendar: Calendar
    catalogue: Catalogue
    spend: FloatArray  # [network, day index] euros
    brand_spend: FloatArray  # [day index] euros
    half_saturation: FloatArray  # [network] euros per day
    insertions: tuple[Insertion, ...]
    street: Operation
    workshops: tuple[Operation, ...]
    campaigns: tuple[Campaign, ...]
    causes: tuple[str, ...]  # acquisition causes: organic, then each paid or offline channel
    acquisition: FloatArray  # [cause, loaded day]: chance a new customer came that day by it
    max_new_per_day: FloatArray  # [cause]: expected new customers a day at saturation


def _spend(rng: np.random.Generator, cal_: Calendar, scale: float) -> tuple[FloatArray, FloatArray]:
    n = len(cal_.weekday)
    trend = 1.0 + 0.15 * np.clip(np.arange(n) - PRE_DAYS, 0, None) / max(cal_.days, 1)
    boost = np.where(cal_.sales, 1.6, 1.0) * np.where(cal_.black_friday, 2.2, 1.0)
    boost *= np.where(cal_.christmas, 1.4, 1.0) * np.where(cal_.demand < 0.8, 0.8, 1.0)
    weekly = np.array([1.0, 1.0, 1.0, 1.0, 1.05, 1.1, 1.15])[cal_.weekday]
    spend = np.empty((len(NETWORKS), n))
    for i, net in enumerate(NETWORKS):
        noise = rng.lognormal(0.0, 0.15, size=n)
        on = np.ones(n)
        if net.flighting:
            on = ((np.arange(n) // 7) % 5 < 3).astype(float)
        else:  # a few paused weeks, so the response to spend can be measured
            weeks = rng.choice(n // 7, size=max(1, n // 120), replace=False)
            on[np.isin(np.arange(n) // 7, weeks)] = 0.0
        spend[i] = np.round(net.daily_eur * scale * trend * boost * weekly * noise * on, 2)
    brand = np.round(BRAND_SEARCH_EUR * scale * cal_.demand * rng.lognormal(0, 0.1, size=n), 2)
    return spend, brand


def hill(spend: FloatArray, half_saturation: float, shape: float) -> FloatArray:
    """Return the Hill saturation of a spend: 0 at 0, 1/2 at half_saturation, 1 at infinity."""
    x = np.power(np.maximum(spend, 0.0) / half_saturation, shape)
    result: FloatArray = x / (1.0 + x)
    return result


def _fading(days: int, start: int, length: int, decay: float) -> FloatArray:
    d = np.arange(days, dtype=np.float64) - start
    result: FloatArray = np.where(d < 0, 0.0, np.where(d < length, 1.0, decay ** (d - length + 1)))
    return result


def _offline(
    rng: np.random.Generator, cal_: Calendar, scale: float
) -> tuple[tuple[Insertion, ...], Operation, tuple[Operation, ...]]:
    days = cal_.days
    insertions = tuple(
        Insertion(f"press:{title}", label, int(days * at), round(cost * scale, 2), share)
        for title, label, at, cost, share in (
            ("elle", "ELLE", 0.22, 14_000.0, 0.022),
            ("le-parisien", "Le Parisien", 0.46, 9_000.0, 0.015),
            ("elle", "ELLE", 0.71, 14_000.0, 0.022),
            ("le-parisien", "Le Parisien", 0.88, 9_000.0, 0.015),
        )
    )
    friday = int(days * 0.6)
    friday += int(4 - cal_.weekday[cal_.index(friday)]) % 7
    street = Operation(
        "street",
        "street",
        "Opération Printemps Marais",
        0,
        friday,
        3,
        11.0,
        round(15_000.0 * scale, 2),
    )
    themes = ("upcycling denim", "broderie", "retouches", "styling", "teinture végétale", "tricot")
    months = (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    )
    workshops: list[Operation] = []
    for s, store in enumerate(STORES):
        day = 10 + 9 * s
        while day < days + cal_.holdout:
            day += int(5 - cal_.weekday[cal_.index(day)]) % 7  # Saturdays
            when = cal_.date_of(day)
            theme = themes[len(workshops) % len(themes)]
            name = f"Atelier {theme} {store.city} {months[when.month - 1]} {when.year}"
            cost = round(600.0 * scale, 2)
            workshops.append(Operation("event:workshop", "workshop", name, s, day, 1, 15.0, cost))
            day += int(rng.integers(35, 50))
    return insertions, street, tuple(sorted(workshops, key=lambda w: w.day))


_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def _campaigns(cal_: Calendar) -> tuple[Campaign, ...]:
    """Plan the newsletters, SMS and push campaigns of the loaded period and the holdout."""
    out: list[Campaign] = []
    for day in range(0, cal_.days + cal_.holdout):
        when, i = cal_.date_of(day), cal_.index(day)
        label = f"{_MONTHS[when.month - 1]} {when.year}"
        stamp = f"{when:%Y-%m}"
        out += _monthly(day, when, label, stamp)
        if cal_.sales_opening[i] and not cal_.sales_opening[i - 1]:
            out += _sales(day, label, stamp)
        if cal_.black_friday[i] and not cal_.black_friday[i - 1]:
            out += _black_friday(day, when.year)
        out += _seasonal(day, when, label, stamp)
    # A stable sort: campaigns of the same day and hour keep the order they were planned in.
    return tuple(sorted((c for c in out if c.day >= 0), key=lambda c: (c.day, c.hour)))


def _monthly(day: int, when: date, label: str, stamp: str) -> list[Campaign]:
    """Return the newsletter (first Thursday) and the push (first Tuesday) of a month."""
    out: list[Campaign] = []
    if when.day <= 7 and when.weekday() == 3:
        out.append(Campaign("email", f"NL-{stamp}", f"Newsletter {label}", day, 10.0, 0.004, False))
    if when.day <= 7 and when.weekday() == 1:
        out.append(
            Campaign("push", f"PUSH-{stamp}", f"Nouveautés {label}", day, 18.5, 0.006, False)
        )
    return out


def _sales(day: int, label: str, stamp: str) -> list[Campaign]:
    """Return the e-mail, SMS and push announcing the opening of the sales."""
    return [
        Campaign("email", f"SOLDES-{stamp}", f"Soldes {label}", day, 7.5, 0.010, True),
        Campaign("sms", f"SMS-SOLDES-{stamp}", f"Soldes {label}", day, 9.0, 0.012, True),
        Campaign("push", f"PUSH-SOLDES-{stamp}", f"Soldes {label}", day, 8.0, 0.008, True),
    ]


def _black_friday(day: int, year: int) -> list[Campaign]:
    """Return the Black Friday campaigns: the e-mail the evening before, SMS and push on the day."""
    name = f"Black Friday {year}"
    return [
        Campaign("email", f"BF-{year}", name, day - 1, 18.0, 0.010, True),
        Campaign("sms", f"SMS-BF-{year}", name, day, 9.0, 0.012, True),
        Campaign("push", f"PUSH-BF-{year}", name, day, 12.0, 0.008, True),
    ]


def _seasonal(day: int, when: date, label: str, stamp: str) -> list[Campaign]:
    """Return the Christmas e-mail (5 December) and SMS (15 December), and the private sales."""
    out: list[Campaign] = []
    if (when.month, when.day) == (12, 5):
        gifts = f"Idées cadeaux {when.year}"
        out.append(Campaign("email", f"NOEL-{when.year}", gifts, day, 10.0, 0.008, True))
        noel = f"Noël {when.year}"
        out.append(Campaign("sms", f"SMS-NOEL-{when.year}", noel, day + 10, 11.0, 0.012, True))
    if (when.month, when.day) in ((6, 2), (11, 8)):
        name = f"Ventes privées {label}"
        out.append(Campaign("email", f"VP-{stamp}", name, day, 10.0, 0.009, True))
        out.append(Campaign("sms", f"SMS-VP-{stamp}", name, day, 12.0, 0.012, True))
    return out


PERSONAS = ("web_only", "store_only", "omnichannel", "app_lover", "bargain_hunter", "prospect")
PERSONA_SHARES = np.array([0.25, 0.30, 0.20, 0.10, 0.15])  # among customers
NEW_SHARE = 0.7  # customers acquired during the loaded period; the others came before it
PROSPECTS = 0.4  # visitors who never buy, per customer
# How likely each persona is to be brought by each cause, relative to the others:
# organic, the ad networks (NETWORKS order), each press title, street marketing.
_AFFINITY = {
    "organic": (1.0, 1.6, 1.0, 0.8, 1.0),
    "ads:google": (1.2, 0.3, 1.0, 0.8, 1.3),
    "ads:instagram": (1.0, 0.4, 1.2, 1.4, 1.0),
    "ads:facebook": (1.0, 0.5, 1.0, 0.8, 1.2),
    "ads:tiktok": (1.0, 0.2, 0.8, 1.8, 1.0),
    "press": (0.7, 1.2, 1.0, 0.5, 0.6),
    "street": (0.3, 1.5, 1.0, 0.5, 1.0),
}


def affinity(cause: str) -> FloatArray:
    """Return how likely each customer persona is to be brought by a cause."""
    key = "press" if cause.startswith("press:") else cause
    return np.array(_AFFINITY[key])


def _acquisition(
    world_spend: FloatArray,
    half: FloatArray,
    cal_: Calendar,
    insertions: tuple[Insertion, ...],
    street: Operation,
) -> tuple[tuple[str, ...], FloatArray, FloatArray]:
    loaded = slice(PRE_DAYS, PRE_DAYS + cal_.days)
    demand = cal_.demand[loaded]
    causes = ["organic"]
    rows, shares, peaks = [demand], [ORGANIC_SHARE], [0.0]
    for i, net in enumerate(NETWORKS):
        response = hill(world_spend[i, loaded], float(half[i]), net.shape) * demand
        causes.append(net.channel)
        rows.append(response)
        shares.append(net.share)
        peaks.append(net.share / response.sum())  # weight per unit of response
    titles = sorted({ins.channel for ins in insertions})
    for title in titles:
        lift = sum(
            (
                ins.share * _fading(cal_.days, ins.day, 3, 0.85)
                for ins in insertions
                if ins.channel == title
            ),
            start=np.zeros(cal_.days),
        )
        causes.append(title)
        rows.append(lift)
        shares.append(sum(ins.share for ins in insertions if ins.channel == title))
        peaks.append(0.0)
    causes.append(street.channel)
    rows.append(_fading(cal_.days, street.day, street.days, 0.7))
    shares.append(0.04)
    peaks.append(0.0)
    weights = np.array([r / r.sum() * s for r, s in zip(rows, shares, strict=True)])
    total = weights.sum()
    return tuple(causes), weights / total, np.array(peaks) / total


def _max_new_per_day(
    causes: tuple[str, ...], weights: FloatArray, per_response: FloatArray, new_customers: float
) -> FloatArray:
    """Expected new customers a day from each ad network at saturation, on an average day.

    A new customer of persona p comes by cause c on day d with chance proportional to
    weights[c, d] * affinity[p, c]; summing over personas gives the expected count.
    """
    aff = np.array([affinity(c) for c in causes])  # [cause, persona]
    norm = (weights.sum(axis=1)[:, None] * aff).sum(axis=0)  # [persona]
    per_cause = (aff / norm[None, :] * PERSONA_SHARES[None, :]).sum(axis=1)
    result: FloatArray = new_customers * per_cause * per_response
    return result


def build(*, customers: int, months: int, seed: int, holdout_months: int, end: date) -> World:
    """Build the shared world: calendar, catalogue, media plan, campaigns, operations."""
    rng = np.random.default_rng([seed, 0])
    start = months_before(end, months)
    holdout_end = months_before(end, -holdout_months)
    cal_ = days.build(start, (end - start).days, (holdout_end - end).days)
    scale = customers / REFERENCE_CUSTOMERS
    spend, brand = _spend(rng, cal_, scale)
    half = np.array([net.daily_eur * scale for net in NETWORKS])
    insertions, street, workshops = _offline(rng, cal_, scale)
    causes, weights, per_response = _acquisition(spend, half, cal_, insertions, street)
    peaks = _max_new_per_day(causes, weights, per_response, customers * NEW_SHARE)
    return World(
        seed=seed,
        customers=customers,
        scale=scale,
        calendar=cal_,
        catalogue=shop.catalogue(rng),
        spend=spend,
        brand_spend=brand,
        half_saturation=half,
        insertions=insertions,
        street=street,
        workshops=workshops,
        campaigns=_campaigns(cal_),
        causes=causes,
        acquisition=weights,
        max_new_per_day=peaks,
    )
