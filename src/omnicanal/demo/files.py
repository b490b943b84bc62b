"""The retailer's offline files, in the formats the importers read.

- `till.csv`: the stores' till export, as French tills write it: cp1252, `;`, decimal
  commas, `23/11/2026 14:05:00` dates, one row per receipt line (sales, returns as
  negative quantities, click & collect pick-ups with the e-shop order number).
- `customers.xlsx`: the CRM export, one row per customer record.
- `attendance.csv`: workshop and street-marketing sign-up sheets (UTF-8 with BOM, `;`).
- `calls.csv`: call-centre contacts; `survey.csv`: NPS and CSAT answers.

The world-level files (catalogue, stock, costs) are in `shop_files`.

Hand-typed identifiers carry the damage of `noise`. Every identifier written, and every
row's import key, is handed back with its true person for the ground truth.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from omnicanal.collect.importers.messages import slug
from omnicanal.demo import noise
from omnicanal.demo.activity import APP_ORDER, COLLECT, IN_STORE
from omnicanal.demo.chunk import Chunk
from omnicanal.demo.orders import CALL_OUTCOMES, CALL_REASONS, Orders
from omnicanal.demo.people import PROSPECT, scramble
from omnicanal.demo.records import (
    CALL,
    PICKUP,
    RETURN,
    SALE,
    SIGN_UP,
    Contact,
    Identifiers,
    contact,
)
from omnicanal.demo.shop import STORES
from omnicanal.demo.world import World
from omnicanal.demo.xlsx import SheetWriter

TILL_HEADER = (
    "Ticket",
    "Magasin",
    "Date",
    "line",
    "Référence",
    "Libellé",
    "Rayon",
    "Marque",
    "Qté",
    "Prix unitaire",
    "currency",
    "Carte fidélité",
    "Email",
    "Téléphone",
    "Prénom",
    "Nom",
    "Code postal",
    "fulfilment",
    "Commande",
    "Remise",
)
CUSTOMERS_HEADER = (
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "street",
    "postcode",
    "city",
    "country",
    "card",
    "optin_email",
    "optin_sms",
    "optin_post",
    "consent_date",
    "consent_wording",
    "signup_source",
    "created_at",
)
ATTENDANCE_HEADER = (
    "event_name",
    "event_type",
    "date",
    "location",
    "first_name",
    "last_name",
    "email",
    "phone",
    "postcode",
    "card",
    "attendee_id",
)
CALLS_HEADER = (
    "contact_id",
    "datetime",
    "first_name",
    "last_name",
    "phone",
    "email",
    "card",
    "postcode",
    "reason",
    "outcome",
    "order_ref",
    "duration_s",
)
SURVEY_HEADER = (
    "response_id",
    "datetime",
    "kind",
    "score",
    "comment",
    "channel",
    "email",
    "phone",
    "card",
    "customer_id",
)
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


def decimal_fr(value: float) -> str:
    """Format an amount with a decimal comma, as French spreadsheets and tills do."""
    return f"{value:.2f}".replace(".", ",")


class Writer:
    """Writes the offline files chunk by chunk, then the world-level files."""

    def __init__(self, world: World, folder: Path, customers_format: str = "xlsx") -> None:
        self.world, self.folder = world, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.start = datetime(
            world.calendar.start.year, world.calendar.start.month, world.calendar.start.day
        )
        self.paths = {
            "till": folder / "till.csv",
            "customers": folder / f"customers.{customers_format}",
            "attendance": folder / "attendance.csv",
            "calls": folder / "calls.csv",
            "survey": folder / "survey.csv",
            "catalogue": folder / "catalogue.csv",
            "stock": folder / "stock.parquet",
            "costs": folder / "costs.csv",
        }
        self._handles: list[TextIO] = []
        self.till = self._csv("till", "cp1252", ";", TILL_HEADER)
        self.attendance = self._csv("attendance", "utf-8-sig", ";", ATTENDANCE_HEADER)
        self.calls = self._csv("calls", "utf-8", ",", CALLS_HEADER)
        self.survey = self._csv("survey", "utf-8", ",", SURVEY_HEADER)
        self.customers = _CustomerSheet(self.paths["customers"], customers_format)
        self.rows = dict.fromkeys(("till", "customers", "attendance", "calls", "survey"), 0)

    def _csv(self, kind: str, encoding: str, delimiter: str, header: tuple[str, ...]) -> Any:
        handle = self.paths[kind].open("w", encoding=encoding, errors="replace", newline="")
        self._handles.append(handle)
        out = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
        out.writerow(header)
        return out

    def when(self, t: float) -> datetime:
        """Return the Paris wall-clock time of a time in days, to the second."""
        return (self.start + timedelta(days=t)).replace(microsecond=0)

    def close(self) -> None:
        """Close the files written chunk by chunk."""
        for handle in self._handles:
            handle.close()
        self.customers.close()


class _CustomerSheet:
    """The CRM export: an XLSX sheet written row by row (or CSV beyond a sheet's size)."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.sheet: SheetWriter | None = None
        if fmt == "xlsx":
            self.sheet = SheetWriter(path, "Clients", CUSTOMERS_HEADER)
        else:
            self.handle = path.open("w", encoding="utf-8", newline="")
            self.out = csv.writer(self.handle, delimiter=",", lineterminator="\r\n")
            self.out.writerow(CUSTOMERS_HEADER)

    def append(self, row: list[str]) -> None:
        """Add one customer record."""
        if self.sheet is not None:
            self.sheet.append(row)
        else:
            self.out.writerow(row)

    def close(self) -> None:
        """Finish the file."""
        if self.sheet is not None:
            self.sheet.close()
        else:
            self.handle.close()


def _till_rows(
    w: Writer,
    o: Orders,
    i: int,
    receipt: str,
    store: int,
    when: float,
    c: Contact,
    lines: list[tuple[int, int]],
    fulfilment: str,
    order_ref: str,
    discount: float,
) -> Iterator[list[str]]:
    cat = w.world.catalogue
    stamp = f"{w.when(when):%d/%m/%Y %H:%M:%S}"
    for n, (line, sign) in enumerate(lines, start=1):
        p = int(o.line_product[line])
        yield [
            receipt,
            STORES[store].code,
            stamp,
            str(n),
            cat.sku[p],
            cat.name[p],
            cat.category[p],
            cat.brand[p],
            str(sign * int(o.line_quantity[line])),
            decimal_fr(float(o.line_price[line])),
            "EUR",
            c.card,
            c.email,
            c.phone,
            c.first,
            c.last,
            c.postcode,
            fulfilment,
            order_ref,
            decimal_fr(discount) if discount else "",
        ]


def till(w: Writer, ch: Chunk, ids: Identifiers) -> None:
    """Write the chunk's receipts: store sales, click & collect pick-ups, returns at the till."""
    rnd = random.Random(f"{w.world.seed}-till-{ch.number}")
    o, pp = ch.orders, ch.people
    rows: list[tuple[float, list[list[str]]]] = []
    for i in np.flatnonzero((o.channel == IN_STORE) & ch.loaded(o.t)).tolist():
        person, t = int(o.person[i]), float(o.t[i])
        c = contact(rnd, pp, person, ch.card_t[person] <= t, SALE, "till", ids)
        lines = [(li, 1) for li in o.lines(i)]
        rows.append(
            (
                t,
                list(
                    _till_rows(
                        w,
                        o,
                        i,
                        o.number[i],
                        int(o.store[i]),
                        t,
                        c,
                        lines,
                        "in_store",
                        "",
                        float(o.discount[i]),
                    )
                ),
            )
        )
        ids.add(
            "import_row",
            f"till:{STORES[int(o.store[i])].code}:{o.number[i]}",
            pp.person_id(person),
            "till",
        )
    for i in np.flatnonzero((o.channel == COLLECT) & ch.loaded(o.pickup_t) & (o.t >= 0)).tolist():
        person, t = int(o.person[i]), float(o.pickup_t[i])
        c = contact(rnd, pp, person, ch.card_t[person] <= t, PICKUP, "till", ids)
        lines = [(li, 1) for li in o.lines(i)]
        rows.append(
            (
                t,
                list(
                    _till_rows(
                        w,
                        o,
                        i,
                        o.pickup_number[i],
                        int(o.store[i]),
                        t,
                        c,
                        lines,
                        "click_and_collect",
                        o.number[i],
                        0.0,
                    )
                ),
            )
        )
        ids.add(
            "import_row",
            f"till:{STORES[int(o.store[i])].code}:{o.pickup_number[i]}",
            pp.person_id(person),
            "till",
        )
    for i in np.flatnonzero(o.return_in_store & ch.loaded(o.return_t) & (o.t >= 0)).tolist():
        person, t = int(o.person[i]), float(o.return_t[i])
        c = contact(rnd, pp, person, ch.card_t[person] <= t, RETURN, "till", ids)
        ref = o.number[i] if o.channel[i] != IN_STORE else ""
        store = int(o.return_store[i])
        rows.append(
            (
                t,
                list(
                    _till_rows(
                        w,
                        o,
                        i,
                        o.return_number[i],
                        store,
                        t,
                        c,
                        [(int(o.returned_line[i]), -1)],
                        "in_store",
                        ref,
                        0.0,
                    )
                ),
            )
        )
        ids.add(
            "import_row",
            f"till:{STORES[store].code}:{o.return_number[i]}",
            pp.person_id(person),
            "till",
        )
    rows.sort(key=lambda r: r[0])
    for _, receipt in rows:
        w.till.writerows(receipt)
        w.rows["till"] += len(receipt)


def _signup_source(ch: Chunk, first_order: np.ndarray, i: int) -> str:
    pp, o = ch.people, ch.orders
    if pp.persona[i] == PROSPECT:
        return "newsletter"
    j = int(first_order[i])
    if j < 0:
        return "web"
    if o.channel[j] == IN_STORE:
        return f"store:{STORES[int(o.store[j])].code}"
    return "app" if o.channel[j] == APP_ORDER else "web"


def customers(w: Writer, ch: Chunk, ids: Identifiers) -> None:
    """Write the chunk's CRM records: everyone with an account, a card or a subscription."""
    rnd = random.Random(f"{w.world.seed}-customers-{ch.number}")
    pp, dem, days = ch.people, ch.demand, ch.days
    optin = ch.draws.optin
    first_order = np.full(len(pp), -1, dtype=np.int64)
    firsts = np.flatnonzero(ch.orders.first)
    first_order[ch.orders.person[firsts]] = firsts
    for i in np.flatnonzero(dem.crm < days).tolist():
        who, customer = pp.person_id(i), bool(pp.customer[i])
        crm = float(dem.crm[i])
        subscribed = bool(optin[i, 0]) and dem.unsubscribed[i] >= days
        changed = float(dem.unsubscribed[i]) if dem.unsubscribed[i] < days else crm
        phone = noise.phone(pp.phone[i], rnd) if customer and rnd.random() < 0.75 else ""
        card = pp.card[i] if ch.card_t[i] < days else ""
        address = customer and rnd.random() < 0.85
        row = [
            pp.customer_id[i],
            pp.email[i],
            phone,
            pp.first[i] if customer or rnd.random() < 0.5 else "",
            pp.last[i] if customer else "",
            pp.birth[i] if customer and rnd.random() < 0.55 else "",
            pp.street[i] if address else "",
            pp.postcode[i] if address else "",
            pp.city[i] if address else "",
            "FR",
            card,
            "oui" if subscribed else "non",
            "oui" if optin[i, 1] else "non",
            "oui" if optin[i, 3] else "non",
            f"{w.when(changed):%Y-%m-%d}",
            "v1",
            _signup_source(ch, first_order, i),
            f"{w.when(crm):%Y-%m-%dT%H:%M:%S}",
        ]
        w.customers.append(row)
        w.rows["customers"] += 1
        ids.add("user_id", pp.customer_id[i], who, "customers")
        ids.add("email", pp.email[i], who, "customers")
        ids.add("phone", phone, who, "customers")
        ids.add("card", card, who, "customers")
        ids.add("import_row", f"customers:customer_id:{pp.customer_id[i]}", who, "customers")


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


def write_chunk(w: Writer, ch: Chunk, ids: Identifiers) -> None:
    """Write one chunk's rows in every person file."""
    till(w, ch, ids)
    customers(w, ch, ids)
    attendance(w, ch, ids)
    calls(w, ch, ids)
    survey(w, ch, ids)
