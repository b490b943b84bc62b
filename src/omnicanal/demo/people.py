"""The people of one chunk of the demo world: who they are and how they behave.

A chunk holds a block of customers and the prospects (visitors who never buy) that go
with them. People have a persona, a household (some share an address and a family
email), a name, an address near one of the stores or elsewhere in France, their own
identifiers (e-mails, phone, customer id, loyalty card, one anonymous id per browser or
app) and the hidden parameters of their behaviour: a purchase rate and a dropout
probability (a BG/NBD process), basket size, e-mail engagement, satisfaction, and how
and when they became customers. Their personal details are drawn by `personal`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnicanal.demo.days import PRE_DAYS, BoolArray, FloatArray, IntArray
from omnicanal.demo.personal import addresses, civil, emails_of, identity_numbers, uuids
from omnicanal.demo.shop import ELSEWHERE, STORES
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


def _homes(
    rng: np.random.Generator, size: int, n: int
) -> tuple[IntArray, IntArray, BoolArray, IntArray]:
    """Draw personas, households and regions; return persona, head, family email, region."""
    local = np.arange(n, dtype=np.int64)
    persona = _personas(rng, size, n - size)
    head = local.copy()
    head[:size], family = _households(rng, size)
    family = np.concatenate([family, np.zeros(n - size, dtype=bool)])
    persona[family & (head != local)] = STORE  # one account per address: the others shop in store
    region = _regions(rng, persona)[head]
    persona[(region == ELSEWHERE) & np.isin(persona, [STORE, OMNI, BARGAIN])] = WEB
    return persona, head, family, region


@dataclass(slots=True)
class _Habits:
    """How a person uses the channels and how they buy, drawn after their identity."""

    app: BoolArray
    cause: IntArray
    t0: FloatArray
    phone_style: IntArray
    wants_card: BoolArray
    mobile_web: BoolArray
    anon_desktop: list[str]
    anon_mobile: list[str]
    anon_app: list[str]
    rate: FloatArray
    dropout: FloatArray
    engagement: FloatArray
    satisfaction: FloatArray


def _habits(
    rng: np.random.Generator, world: World, persona: IntArray, customer: BoolArray
) -> _Habits:
    """Draw devices, acquisition and the hidden parameters of behaviour, in this order."""
    n = len(persona)
    app = rng.random(n) < np.array([0.1, 0.0, 0.3, 1.0, 0.15, 0.05])[persona]
    cause, t0 = _acquisition(rng, world, persona, customer)
    ab = _DROPOUT_AB[persona]
    mean_rate = _PURCHASES_PER_YEAR[persona] / 365.0
    return _Habits(
        app=app,
        cause=cause,
        t0=t0,
        phone_style=rng.choice(4, size=n, p=[0.55, 0.3, 0.1, 0.05]).astype(np.int64),
        wants_card=(CHANNEL_MIX[persona, 3] > 0) & (rng.random(n) < 0.5),
        mobile_web=rng.random(n) < 0.7,
        anon_desktop=uuids(rng, n),
        anon_mobile=uuids(rng, n),
        anon_app=uuids(rng, n),
        rate=rng.gamma(1.3, 1.0, n) * mean_rate / 1.3,
        dropout=rng.beta(ab[:, 0], ab[:, 1]),
        engagement=np.where(persona == BARGAIN, rng.beta(3, 5, n), rng.beta(1.6, 5, n)),
        satisfaction=rng.normal(_SATISFACTION[persona], 1.5),
    )


def build(world: World, chunk: int, size: int, renamed: dict[str, str] | None = None) -> People:
    """Build the people of one chunk: `size` customers, then their prospects."""
    rng = np.random.default_rng([world.seed, 1, chunk])
    n = size + round(size * PROSPECTS)
    local = np.arange(n, dtype=np.int64)
    persona, head, family, region = _homes(rng, size, n)
    female, first, last, birth_day = civil(rng, world, head)
    years = birth_day.astype("datetime64[Y]").astype(np.int64) + 1970
    street, postcode, city = addresses(rng, world.seed, region, head)
    email, email2 = emails_of(rng, first, last, years, head, family)
    if renamed:
        email = [renamed.get(e, e) for e in email]
        email2 = [renamed.get(e, e) if e else None for e in email2]
    gidx = chunk * BLOCK + local
    phone, customer_id, card = identity_numbers(gidx)
    h = _habits(rng, world, persona, local < size)
    return People(
        chunk=chunk,
        gidx=gidx,
        customer=local < size,
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
        phone_style=h.phone_style,
        customer_id=customer_id,
        card=card,
        wants_card=h.wants_card,
        app=h.app,
        mobile_web=h.mobile_web,
        anon_desktop=h.anon_desktop,
        anon_mobile=h.anon_mobile,
        anon_app=h.anon_app,
        cause=h.cause,
        t0=h.t0,
        rate=h.rate,
        dropout=h.dropout,
        extra_items=_EXTRA_ITEMS[persona],
        engagement=h.engagement,
        satisfaction=h.satisfaction,
    )
