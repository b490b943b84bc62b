"""The CRM export: one record per person with an account, a loyalty card or a subscription.

Written as `customers.xlsx` (or CSV beyond a sheet's size) by `Writer.customers`.
"""

from __future__ import annotations

import random

import numpy as np

from omnicanal.demo import noise
from omnicanal.demo.activity import APP_ORDER, IN_STORE
from omnicanal.demo.chunk import Chunk
from omnicanal.demo.files.writer import Writer
from omnicanal.demo.people import PROSPECT
from omnicanal.demo.records import Identifiers
from omnicanal.demo.shop import STORES


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
