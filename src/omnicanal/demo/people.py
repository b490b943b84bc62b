"""The people of one chunk of the demo world: who they are and how they behave.

A chunk holds a block of customers and the prospects (visitors who never buy) that go
with them. People have a persona, a household (some share an address and a family
email), a name, an address near one of the stores or elsewhere in France, their own
identifiers (e-mails, phone, customer id, loyalty card, one anonymous id per browser or
app) and the hidden parameters of their behaviour: a purchase rate and a dropout
probability (a BG/NBD process), basket size, e-mail engagement, satisfaction, and how
and when they became customers.

Identifiers that must never collide are bijections of the person's number (phone,
customer id, card); e-mails are made unique within the chunk, and across chunks by
`unique_emails`, whose changes the caller keeps so a chunk is always rebuilt the same.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from functools import cache

import numpy as np
from faker import Faker
from faker.providers.person.fr_FR import Provider as Names

from omnicanal.demo.days import PRE_DAYS, BoolArray, FloatArray, IntArray
from omnicanal.demo.shop import COMMUNES, ELSEWHERE, STORES
from omnicanal.demo.world import NEW_SHARE, PERSONA_SHARES, PROSPECTS, World, affinity

WEB, STORE, OMNI, APP, BARGAIN, PROSPECT = range(6)
# Purchase channel mix per persona: web delivery, web click & collect, app, store.
CHANNEL_MIX = np.array(
    [
        [1.00, 0.00, 0.00, 0.00],
        [0.00, 0.00, 0.00, 1.00],
        [0.33, 0.15, 0.12, 0.40],
        [0.10, 0.05, 0.75, 0.10],
        [0.50, 0.06, 0.04, 0.40],
        [0.00, 0.00, 0.00, 0.00],
    ]
)
_PURCHASES_PER_YEAR = np.array([2.6, 2.5, 4.9, 3.8, 2.9, 0.0])
_DROPOUT_AB = np.array([[1.0, 6.0], [1.0, 7.5], [1.0, 10.0], [1.0, 7.0], [1.2, 5.0], [1.0, 1.0]])
_EXTRA_ITEMS = np.array([0.25, 0.25, 0.55, 0.35, 0.45, 0.0])
_SATISFACTION = np.array([7.6, 7.9, 8.5, 8.2, 7.2, 7.5])
_REGION_IN_STORES = np.array([0.5, 0.28, 0.22])
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
CHUNK_CUSTOMERS = 40_000  # customers simulated at once: memory stays flat at any size
BLOCK = 100_000  # person numbers reserved per chunk (customers and prospects)
MAX_CHUNK_CUSTOMERS = int((BLOCK - 1) / (1 + PROSPECTS))


@dataclass(slots=True)
class People:
    """The people of one chunk, as parallel arrays and lists (index = local number)."""

    chunk: int
    gidx: IntArray  # person number in the world
    customer: BoolArray
    persona: IntArray
    household: IntArray  # person number of the household's first member
    family_email: BoolArray  # uses the household's shared e-mail
    female: BoolArray
    first: list[str]
    last: list[str]
    birth: list[str]  # ISO date
    region: IntArray  # store index, or ELSEWHERE
    street: list[str]
    postcode: list[str]
    city: list[str]
    email: list[str]
    email2: list[str | None]
    phone: list[str]  # E.164
    phone_style: IntArray  # how the person types the number in forms
    customer_id: list[str]
    card: list[str]  # the number the person would get on enrolling
    wants_card: BoolArray
    app: BoolArray
    mobile_web: BoolArray
    anon_desktop: list[str]
    anon_mobile: list[str]
    anon_app: list[str]
    cause: IntArray  # index in world.causes; -1 before the loaded period or prospect
    t0: FloatArray  # first purchase (days from the loaded period's start); nan for prospects
    rate: FloatArray  # purchases per day while alive
    dropout: FloatArray  # chance of leaving after each purchase
    extra_items: FloatArray
    engagement: FloatArray  # chance of opening a marketing message
    satisfaction: FloatArray

    def __len__(self) -> int:
        return len(self.gidx)

    def gives_phone(self, i: int) -> bool:
        """Return whether the person types a phone number in the e-shop's forms."""
        return (int(self.gidx[i]) * 7919) % 10 < 7

    def person_id(self, i: int) -> str:
        """Return the ground-truth id of a local person."""
        return person_id(int(self.gidx[i]))


def person_id(gidx: int) -> str:
    """Return the ground-truth id of a person number."""
    return f"P{gidx:08d}"


def chunks(customers: int, size: int = CHUNK_CUSTOMERS) -> list[tuple[int, int]]:
    """Return (chunk number, customers in it) for a world of this size."""
    if not 1 <= size <= MAX_CHUNK_CUSTOMERS:
        raise ValueError(f"a chunk holds 1 to {MAX_CHUNK_CUSTOMERS} customers, not {size}")
    full, rest = divmod(customers, size)
    sizes = [size] * full + ([rest] if rest else [])
    return list(enumerate(sizes))


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


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    data = rng.bytes(16 * n)
    return [str(uuid.UUID(bytes=data[16 * i : 16 * i + 16], version=4)) for i in range(n)]


def _households(rng: np.random.Generator, n_customers: int) -> tuple[IntArray, BoolArray]:
    """Group consecutive customers into households; return each one's first member."""
    head = np.arange(n_customers, dtype=np.int64)
    family = np.zeros(n_customers, dtype=bool)
    i = 0
    sizes = rng.choice([1, 2, 3], size=n_customers, p=[0.72, 0.2, 0.08])
    shares = rng.random(n_customers) < 0.35
    while i < n_customers:
        size = min(int(sizes[i]), n_customers - i)
        head[i : i + size] = i
        if size > 1 and shares[i]:
            family[i : i + size] = True
        i += size
    return head, family


def _personas(rng: np.random.Generator, n_customers: int, n_prospects: int) -> IntArray:
    personas = rng.choice(5, size=n_customers, p=PERSONA_SHARES)
    return np.concatenate([personas, np.full(n_prospects, PROSPECT)]).astype(np.int64)


def _regions(rng: np.random.Generator, persona: IntArray) -> IntArray:
    stores = rng.choice(len(STORES), size=len(persona), p=_REGION_IN_STORES)
    far = rng.random(len(persona)) < np.where(
        np.isin(persona, [WEB, APP]), 0.5, np.where(persona == PROSPECT, 0.4, 0.0)
    )
    return np.where(far, ELSEWHERE, stores).astype(np.int64)


def _acquisition(
    rng: np.random.Generator, world: World, persona: IntArray, customer: BoolArray
) -> tuple[IntArray, FloatArray]:
    """Draw each customer's acquisition: its cause and the time of the first purchase."""
    n = len(persona)
    cause = np.full(n, -1, dtype=np.int64)
    day = rng.uniform(-PRE_DAYS, 0, size=n).astype(np.int64) - 1
    new = customer & (rng.random(n) < NEW_SHARE)
    flat = world.acquisition.shape[1]
    for p in range(5):
        who = np.flatnonzero(new & (persona == p))
        weights = world.acquisition * np.array([affinity(c)[p] for c in world.causes])[:, None]
        picks = rng.choice(weights.size, size=len(who), p=(weights / weights.sum()).ravel())
        cause[who], day[who] = np.divmod(picks, flat)
    hour = np.where(np.isin(persona, [STORE]), rng.uniform(10.0, 19.0, n), online_hours(rng, n))
    t0 = np.where(customer, day + hour / 24.0, np.nan)
    return cause, t0


def online_hours(rng: np.random.Generator, n: int) -> FloatArray:
    """Draw hours of the day for online activity: lunch, evening, and the rest of the day."""
    kind = rng.choice(3, size=n, p=[0.3, 0.45, 0.25])
    hours = np.where(
        kind == 0,
        rng.normal(12.7, 1.2, n),
        np.where(kind == 1, rng.normal(21.0, 1.4, n), rng.uniform(7.5, 23.5, n)),
    )
    result: FloatArray = np.clip(hours, 6.0, 23.95)
    return result


def store_hours(rng: np.random.Generator, n: int) -> FloatArray:
    """Draw hours of the day for store visits (open 10:00-19:30, busiest late afternoon)."""
    result: FloatArray = np.clip(rng.normal(15.5, 2.3, n), 10.05, 19.45)
    return result


def _addresses(
    rng: np.random.Generator, seed: int, region: IntArray, head: IntArray
) -> tuple[list[str], list[str], list[str]]:
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


def _identity_numbers(gidx: IntArray) -> tuple[list[str], list[str], list[str]]:
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


def _emails_of(
    rng: np.random.Generator,
    first: list[str],
    last: list[str],
    years: IntArray,
    head: IntArray,
    family: BoolArray,
) -> tuple[list[str], list[str | None]]:
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


def build(world: World, chunk: int, size: int, renamed: dict[str, str] | None = None) -> People:
    """Build the people of one chunk: `size` customers, then their prospects."""
    rng = np.random.default_rng([world.seed, 1, chunk])
    n = size + round(size * PROSPECTS)
    local = np.arange(n, dtype=np.int64)
    customer = local < size
    persona = _personas(rng, size, n - size)
    head = local.copy()
    head[:size], family = _households(rng, size)
    family = np.concatenate([family, np.zeros(n - size, dtype=bool)])
    member = head != local
    persona[family & member] = STORE  # one account per address: the others shop in store
    region = _regions(rng, persona)[head]
    persona[(region == ELSEWHERE) & np.isin(persona, [STORE, OMNI, BARGAIN])] = WEB
    female = rng.random(n) < 0.64
    first, last = _names(rng, female)
    same_last = member & (rng.random(n) < 0.7)
    last = [last[int(head[i])] if same_last[i] else last[i] for i in range(n)]
    age = _ages(rng, n)
    birth_day = np.datetime64(world.calendar.start) - (age * 365.25).astype("timedelta64[D]")
    years = birth_day.astype("datetime64[Y]").astype(np.int64) + 1970
    street, postcode, city = _addresses(rng, world.seed, region, head)
    email, email2 = _emails_of(rng, first, last, years, head, family)
    if renamed:
        email = [renamed.get(e, e) for e in email]
        email2 = [renamed.get(e, e) if e else None for e in email2]
    gidx = chunk * BLOCK + local
    phone, customer_id, card = _identity_numbers(gidx)
    app = rng.random(n) < np.array([0.1, 0.0, 0.3, 1.0, 0.15, 0.05])[persona]
    cause, t0 = _acquisition(rng, world, persona, customer)
    ab = _DROPOUT_AB[persona]
    mean_rate = _PURCHASES_PER_YEAR[persona] / 365.0
    return People(
        chunk=chunk,
        gidx=gidx,
        customer=customer,
        persona=persona,
        household=chunk * BLOCK + head,
        family_email=family,
        female=female,
        first=first,
        last=last,
        birth=[str(d) for d in birth_day],
        region=region,
        street=street,
        postcode=postcode,
        city=city,
        email=email,
        email2=email2,
        phone=phone,
        phone_style=rng.choice(4, size=n, p=[0.55, 0.3, 0.1, 0.05]).astype(np.int64),
        customer_id=customer_id,
        card=card,
        wants_card=(CHANNEL_MIX[persona, 3] > 0) & (rng.random(n) < 0.5),
        app=app,
        mobile_web=rng.random(n) < 0.7,
        anon_desktop=_uuids(rng, n),
        anon_mobile=_uuids(rng, n),
        anon_app=_uuids(rng, n),
        cause=cause,
        t0=t0,
        rate=rng.gamma(1.3, 1.0, n) * mean_rate / 1.3,
        dropout=rng.beta(ab[:, 0], ab[:, 1]),
        extra_items=_EXTRA_ITEMS[persona],
        engagement=np.where(persona == BARGAIN, rng.beta(3, 5, n), rng.beta(1.6, 5, n)),
        satisfaction=rng.normal(_SATISFACTION[persona], 1.5),
    )
