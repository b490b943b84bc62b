"""What people give on offline records, and how it gets typed.

A till receipt, a workshop sign-up sheet or a call-centre note carries the identifiers
the person gave (a card, an e-mail for an e-receipt, a phone, a name, a postcode), each
with its own habits, damaged by `noise` as staff or the person typed them. Every
identifier written is recorded with its true person for the ground truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from omnicanal.demo import noise
from omnicanal.demo.people import People


@dataclass(slots=True)
class Identifiers:
    """Identifiers written in files or sent in messages, with their true person."""

    kind: list[str] = field(default_factory=list)
    value: list[str] = field(default_factory=list)
    person: list[str] = field(default_factory=list)
    kind_file: list[str] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)  # the value is the person's own, undamaged

    def add(
        self, kind: str, value: str | None, person: str, kind_file: str, exact: bool = True
    ) -> None:
        """Record one identifier, if there is one."""
        if value:
            self.kind.append(kind)
            self.value.append(value)
            self.person.append(person)
            self.kind_file.append(kind_file)
            self.exact.append(exact)

    def __len__(self) -> int:
        return len(self.kind)


@dataclass(slots=True)
class Contact:
    """What a person gave on one offline record, as typed."""

    first: str = ""
    last: str = ""
    email: str = ""
    phone: str = ""
    postcode: str = ""
    card: str = ""


def _pick_email(
    rnd: random.Random, pp: People, i: int, second: float, damaged: float
) -> tuple[str, bool]:
    u = rnd.random()
    if u < second and pp.email2[i]:
        return str(pp.email2[i]), True
    if u > 1.0 - damaged:
        return noise.email(pp.email[i], rnd), False
    return pp.email[i], True


@dataclass(frozen=True, slots=True)
class Habits:
    """How often each field is filled in, and damaged, on one kind of record."""

    name: float
    email: float
    phone: float
    postcode: float
    card: float
    slip: float = 0.08
    swap: float = 0.03
    plain: float = 0.4
    upper: float = 0.3
    second: float = 0.12
    damaged: float = 0.08
    postcode_typo: float = 0.04


SALE = Habits(name=0.2, email=0.35, phone=0.12, postcode=0.4, card=0.85, upper=0.35)
PICKUP = Habits(name=0.95, email=0.5, phone=0.3, postcode=0.1, card=0.5, second=0.0)
RETURN = Habits(name=0.85, email=0.25, phone=0.2, postcode=0.3, card=0.6)
SIGN_UP = Habits(
    name=1.0,
    email=0.7,
    phone=0.45,
    postcode=0.6,
    card=0.25,
    slip=0.12,
    swap=0.05,
    plain=0.3,
    upper=0.15,
    second=0.15,
)
CALL = Habits(
    name=1.0,
    email=0.4,
    phone=0.9,
    postcode=0.25,
    card=0.1,
    slip=0.2,
    swap=0.06,
    plain=0.5,
    upper=0.3,
    second=0.0,
    damaged=0.2,
    postcode_typo=0.06,
)


def contact(
    rnd: random.Random,
    pp: People,
    i: int,
    has_card: bool,
    h: Habits,
    kind_file: str,
    ids: Identifiers,
) -> Contact:
    """Fill in a record's identifiers as the person gave them and someone typed them."""
    who = pp.person_id(i)
    c = Contact()
    if has_card and rnd.random() < h.card:
        c.card = pp.card[i]
        ids.add("card", c.card, who, kind_file)
    if rnd.random() < h.email:
        c.email, exact = _pick_email(rnd, pp, i, h.second, h.damaged)
        ids.add("email", c.email, who, kind_file, exact)
    if rnd.random() < h.phone:
        c.phone = noise.phone(pp.phone[i], rnd)
        ids.add("phone", c.phone, who, kind_file)
    if c.card or c.email or c.phone or rnd.random() < h.name:
        c.first, c.last = noise.name(
            pp.first[i], pp.last[i], rnd, slip=h.slip, swap=h.swap, plain=h.plain, upper=h.upper
        )
        if rnd.random() < h.postcode:
            typo = rnd.random() < h.postcode_typo
            c.postcode = noise.postcode(pp.postcode[i], rnd) if typo else pp.postcode[i]
    return c
