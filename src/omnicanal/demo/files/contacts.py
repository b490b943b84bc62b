"""Contacts outside the tills: workshop and street sign-up sheets, calls, survey answers.

- `attendance.csv`: workshop and street-marketing sign-up sheets (UTF-8 with BOM, `;`).
- `calls.csv`: call-centre contacts about orders.
- `survey.csv`: NPS answers after orders and CSAT answers after calls.
"""

from __future__ import annotations

import random

import numpy as np

from omnicanal.collect.importers.messages import slug
from omnicanal.demo.activity import APP_ORDER, IN_STORE
from omnicanal.demo.chunk import Chunk
from omnicanal.demo.files.writer import Writer
from omnicanal.demo.orders import CALL_OUTCOMES, CALL_REASONS, Orders
from omnicanal.demo.personal import scramble
from omnicanal.demo.records import CALL, SIGN_UP, Identifiers, contact
from omnicanal.demo.shop import STORES

_COMMENTS = (
    (
        "Très déçue, commande arrivée en retard.",
        "Qualité en dessous de mes attentes.",
        "Retour compliqué.",
    ),
    ("Correct sans plus.", "Un peu cher pour la qualité.", "Bien mais délais longs."),
    (
        "Super accueil en boutique !",
        "Je recommande, très belles matières.",
        "Parfait, comme toujours.",
    ),
)


def _serials(ch: Chunk, count: int, key: int) -> list[int]:
    base = ch.number * 10_000_000
    return [int(x) for x in scramble(base + np.arange(count, dtype=np.int64), 10**5, key)]


def attendance(w: Writer, ch: Chunk, ids: Identifiers) -> None:
    """Write the sign-up sheets of workshops and of the street-marketing operation."""
    visits = ch.demand.visits
    assert visits is not None
    rnd = random.Random(f"{w.world.seed}-attendance-{ch.number}")
    keep = np.flatnonzero(ch.loaded(visits.t))
    keep = keep[np.argsort(visits.t[keep], kind="stable")]
    serials = _serials(ch, len(keep), 21)
    for k, v in enumerate(keep.tolist()):
        i, t, op = int(visits.person[v]), float(visits.t[v]), int(visits.operation[v])
        event = w.world.street if op < 0 else w.world.workshops[op]
        c = contact(rnd, ch.people, i, ch.card_t[i] <= t, SIGN_UP, "attendance", ids)
        attendee = f"INS-{serials[k]:010d}"
        w.attendance.writerow(
            [
                event.name,
                event.event_type,
                f"{w.when(t):%d/%m/%Y}",
                STORES[event.store].code,
                c.first,
                c.last,
                c.email,
                c.phone,
                c.postcode,
                c.card,
                attendee,
            ]
        )
        w.rows["attendance"] += 1
        ids.add(
            "import_row",
            f"attendance:{slug(event.name)}:{attendee}",
            ch.people.person_id(i),
            "attendance",
        )


def calls(w: Writer, ch: Chunk, ids: Identifiers) -> None:
    """Write the call-centre contacts about orders."""
    o, pp = ch.orders, ch.people
    rnd = random.Random(f"{w.world.seed}-calls-{ch.number}")
    rows = np.flatnonzero(ch.loaded(o.call_t) & (o.t >= 0))
    rows = rows[np.argsort(o.call_t[rows], kind="stable")]
    serials = _serials(ch, len(rows), 31)
    for k, i in enumerate(rows.tolist()):
        person, t = int(o.person[i]), float(o.call_t[i])
        c = contact(rnd, pp, person, ch.card_t[person] <= t, CALL, "calls", ids)
        contact_id = f"APL-{serials[k]:010d}"
        w.calls.writerow(
            [
                contact_id,
                f"{w.when(t):%Y-%m-%dT%H:%M:%S}",
                c.first,
                c.last,
                c.phone,
                c.email,
                c.card,
                c.postcode,
                CALL_REASONS[int(o.call_reason[i])],
                CALL_OUTCOMES[int(o.call_outcome[i])],
                o.number[i] if rnd.random() < 0.75 else "",
                str(int(o.call_seconds[i])),
            ]
        )
        w.rows["calls"] += 1
        ids.add("import_row", f"calls:{contact_id}", pp.person_id(person), "calls")


def _experience(o: Orders, i: int) -> str:
    channel = int(o.channel[i])
    if channel == IN_STORE:
        return f"store:{STORES[int(o.store[i])].code}"
    return "app" if channel == APP_ORDER else "web"


def survey(w: Writer, ch: Chunk, ids: Identifiers) -> None:
    """Write NPS answers after orders and CSAT answers after calls."""
    o, pp, dem = ch.orders, ch.people, ch.demand
    rnd = random.Random(f"{w.world.seed}-survey-{ch.number}")
    nps = np.flatnonzero(ch.loaded(o.survey_t) & (o.t >= 0))
    csat = np.flatnonzero(ch.loaded(o.call_t) & (o.t >= 0) & (o.csat >= 0))
    answers = [(float(o.survey_t[i]), int(i), "nps") for i in nps] + [
        (float(o.call_t[i]) + 0.01, int(i), "csat") for i in csat
    ]
    answers.sort()
    serials = _serials(ch, len(answers), 41)
    offsets = w.world.calendar.utc_offset_min
    for k, (t, i, kind) in enumerate(answers):
        person = int(o.person[i])
        who = pp.person_id(person)
        score = int(o.survey_score[i]) if kind == "nps" else int(o.csat[i])
        bucket = (
            0
            if (score <= 6 if kind == "nps" else score <= 2)
            else (1 if (score <= 8 if kind == "nps" else score <= 3) else 2)
        )
        known = dem.crm[person] <= t
        email = pp.email[person] if known and rnd.random() < 0.85 else ""
        customer = pp.customer_id[person] if known and rnd.random() < 0.6 else ""
        card = (
            pp.card[person]
            if ch.card_t[person] <= t and o.channel[i] == IN_STORE and rnd.random() < 0.3
            else ""
        )
        minutes = int(offsets[w.world.calendar.index(int(t // 1))])
        stamp = f"{w.when(t):%Y-%m-%dT%H:%M:%S}+{minutes // 60:02d}:00"
        response = f"R-{serials[k]:010d}"
        w.survey.writerow(
            [
                response,
                stamp,
                kind,
                str(score),
                rnd.choice(_COMMENTS[bucket]) if rnd.random() < 0.4 else "",
                "call_centre" if kind == "csat" else _experience(o, i),
                email,
                "",
                card,
                customer,
            ]
        )
        w.rows["survey"] += 1
        ids.add("email", email, who, "survey")
        ids.add("card", card, who, "survey")
        ids.add("user_id", customer, who, "survey")
        ids.add("import_row", f"survey:{response}", who, "survey")
