"""Who the demo people are: names, birth dates, addresses, e-mails and numbers.

Identifiers that must never collide are bijections of the person's number (phone,
customer id, card); e-mails are made unique within the chunk, and across chunks by the
retailer's `_unique_emails`, whose changes the caller keeps so a chunk is always rebuilt
the same.
"""

from __future__ import annotations

import unicodedata
import uuid
from functools import cache

import numpy as np
from faker import Faker
from faker.providers.person.fr_FR import Provider as Names

from omnicanal.demo.days import BoolArray, FloatArray, IntArray
from omnicanal.demo.shop import COMMUNES
from omnicanal.demo.world import World

_DOMAINS = (
    ("gmail.com", 0.30),
    ("orange.fr", 0.16),
    ("hotmail.fr", 0.10),
    ("free.fr", 0.08),
    ("yahoo.fr", 0.07),
    ("outlook.fr", 0.06),
    ("icloud.com", 0.06),
    ("laposte.net", 0.05),
    ("sfr.fr", 0.04),
    ("wanadoo.fr", 0.04),
    ("live.fr", 0.04),
)
_BLOCKED_PHONES = {0, 12345678, 99999999, 11111111}


def ascii_fold(text: str) -> str:
    """Return text without accents (é -> e, ç -> c)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def scramble(n: IntArray, half: int, key: int) -> IntArray:
    """Map numbers below half**2 one-to-one onto numbers that look random (a Feistel network)."""
    left, right = np.divmod(n.astype(np.int64), half)
    for k in range(4):
        mixed = (right * 2_654_435_761 + key * 97 + k * 7_919) % 1_000_003
        left, right = right, (left + mixed * 48_271) % half
    result: IntArray = left * half + right
    return result


@cache
def _streets(seed: int) -> tuple[str, ...]:
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    return tuple(sorted({fake.street_name() for _ in range(2500)}))


def _ages(rng: np.random.Generator, n: int) -> FloatArray:
    """Draw adult ages around 38, redrawing those outside 18-78.

    Clipping would give thousands of customers the same 18th birthday, which no
    real file has (and which blocking on birth dates would pair all together).
    """
    age: FloatArray = rng.normal(38, 12, n)
    out = (age < 18) | (age > 78)
    while out.any():
        age[out] = rng.normal(38, 12, int(out.sum()))
        out = (age < 18) | (age > 78)
    return age


def _names(rng: np.random.Generator, female: BoolArray) -> tuple[list[str], list[str]]:
    women, men, lasts = Names.first_names_female, Names.first_names_male, Names.last_names
    w = 1.0 / (np.arange(len(lasts)) + 8.0)  # the list is roughly in order of frequency
    last_i = rng.choice(len(lasts), size=len(female), p=w / w.sum())
    fi = rng.integers(0, 10**6, size=len(female))
    first = [
        women[k % len(women)] if f else men[k % len(men)] for k, f in zip(fi, female, strict=True)
    ]
    return first, [lasts[k] for k in last_i]


def _email_local(first: str, last: str, style: int, birth_year: int) -> str:
    f = ascii_fold(first).lower().replace(" ", "")
    la = ascii_fold(last).lower().replace(" ", "").replace("'", "")
    return (
        f"{f}.{la}",
        f"{f}{la}",
        f"{f[0]}.{la}",
        f"{f}_{la}",
        f"{f}.{la}{birth_year % 100:02d}",
        f"{la}.{f}",
        f"{f}{la}{birth_year}",
        f"{f[0]}{la}",
    )[style]


def _emails(
    rng: np.random.Generator, first: list[str], last: list[str], years: IntArray
) -> list[str]:
    domains = [d for d, _ in _DOMAINS]
    p = np.array([w for _, w in _DOMAINS])
    dom = rng.choice(len(domains), size=len(first), p=p / p.sum())
    style = rng.integers(0, 8, size=len(first))
    return [
        f"{_email_local(f, la, int(s), int(y))}@{domains[d]}"
        for f, la, s, y, d in zip(first, last, style, years, dom, strict=True)
    ]


def _dedupe(values: list[str], taken: set[str]) -> list[str]:
    """Make each address unique by adding a number before the @, deterministically."""
    out: list[str] = []
    for value in values:
        candidate, n = value, 1
        while candidate in taken:
            local, _, domain = value.partition("@")
            candidate, n = f"{local}{n}@{domain}", n + 1
        taken.add(candidate)
        out.append(candidate)
    return out


def uuids(rng: np.random.Generator, n: int) -> list[str]:
    """Draw `n` random (version 4) UUIDs, such as the anonymous ids of browsers and apps."""
    data = rng.bytes(16 * n)
    return [str(uuid.UUID(bytes=data[16 * i : 16 * i + 16], version=4)) for i in range(n)]


def addresses(
    rng: np.random.Generator, seed: int, region: IntArray, head: IntArray
) -> tuple[list[str], list[str], list[str]]:
    """Draw street, postcode and city near each region's store; a household shares one."""
    streets = _streets(seed)
    number = rng.integers(1, 140, size=len(region))
    suffix = np.where(rng.random(len(region)) < 0.04, " bis", "")
    name = rng.integers(0, len(streets), size=len(region))
    commune = rng.integers(0, 10**6, size=len(region))
    street, postcode, city = [], [], []
    for h in head:
        places = COMMUNES[int(region[h])]
        pc, town = places[int(commune[h]) % len(places)]
        street.append(f"{number[h]}{suffix[h]} {streets[name[h]]}")
        postcode.append(pc)
        city.append(town)
    return street, postcode, city


def identity_numbers(gidx: IntArray) -> tuple[list[str], list[str], list[str]]:
    """Phone, customer id and card number: one-to-one in the person number, never shared."""
    digits = scramble(gidx, 10**4, 1)
    mobile = np.where(gidx % 3 == 0, "7", "6")
    phone = [
        f"+339{d:08d}" if int(d) in _BLOCKED_PHONES else f"+33{m}{d:08d}"
        for m, d in zip(mobile, digits, strict=True)
    ]
    customer = [f"C{d:08d}" for d in scramble(gidx, 10**4, 2)]
    card = [f"29770{d:08d}" for d in scramble(gidx, 10**4, 3)]
    return phone, customer, card


def emails_of(
    rng: np.random.Generator,
    first: list[str],
    last: list[str],
    years: IntArray,
    head: IntArray,
    family: BoolArray,
) -> tuple[list[str], list[str | None]]:
    """Draw each person's e-mail (a family's shared one, if so) and some a second one."""
    own = _emails(rng, first, last, years)
    family_style = rng.random(len(first)) < 0.5
    taken: set[str] = set()
    for i in range(len(own)):  # the family address: a shared mailbox or the head's own
        if family[i] and head[i] == i and family_style[i]:
            name = ascii_fold(last[i]).lower().replace(" ", "").replace("'", "")
            own[i] = f"famille.{name}@{own[i].partition('@')[2]}"
    unique = _dedupe(own, taken)
    primary = [
        unique[int(h)] if f else unique[i]
        for i, (h, f) in enumerate(zip(head, family, strict=True))
    ]
    second = _emails(rng, first, last, years)
    has_second = rng.random(len(first)) < 0.12
    deduped = _dedupe([e for e, h in zip(second, has_second, strict=True) if h], taken)
    it = iter(deduped)
    return primary, [next(it) if h else None for h in has_second]


def civil(
    rng: np.random.Generator, world: World, head: IntArray
) -> tuple[BoolArray, list[str], list[str], np.ndarray]:
    """Draw sex, names (most household members share one) and birth dates."""
    n = len(head)
    member = head != np.arange(n, dtype=np.int64)
    female = rng.random(n) < 0.64
    first, last = _names(rng, female)
    same_last = member & (rng.random(n) < 0.7)
    last = [last[int(head[i])] if same_last[i] else last[i] for i in range(n)]
    age = _ages(rng, n)
    birth_day = np.datetime64(world.calendar.start) - (age * 365.25).astype("timedelta64[D]")
    return female, first, last, birth_day
