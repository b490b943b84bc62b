"""The demo's ground truth: who is really behind each record, and what each channel did.

Written beside the data in `ground-truth/`, chunk by chunk, as Parquet:

- `persons.parquet`: every simulated person (customers and prospects), with their true
  name, household, persona, acquisition, channels used, spend and churn;
- `identifiers.parquet`: every identifier sent to the API or written in a file, as it was
  sent (typos included), with its true person; import rows by the anonymousId the
  importer gives them;
- `orders.parquet`: every order of the loaded and holdout periods, with why it happened;
- `holdout.parquet`: each customer's purchases in the holdout period (never loaded);
- `channel_effects.parquet`: each channel's spend and true incremental customers, orders
  and revenue, from rerunning the world with that channel switched off;
- `README.md`: what the files and their columns mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from omnicanal.core.channels import parse_channel
from omnicanal.demo import activity
from omnicanal.demo.activity import APP_ORDER, BASE, CAMPAIGN, COLLECT, DELIVERY, IN_STORE
from omnicanal.demo.chunk import Chunk
from omnicanal.demo.messages import phone_as_typed, refunds
from omnicanal.demo.people import person_id
from omnicanal.demo.records import Identifiers
from omnicanal.demo.sessions import RESEARCH, SIGNUP
from omnicanal.demo.shop import STORES
from omnicanal.demo.truth_schemas import EFFECTS, HOLDOUT, IDENTIFIERS, ORDERS, PERSONS
from omnicanal.demo.world import NETWORKS, PERSONAS, World

_STORE_CODES = np.array([s.code for s in STORES] + [None], dtype=object)
_FULFILMENT = np.array(["delivery", "click_and_collect", "delivery", "in_store"], dtype=object)
_CHANNEL = np.array(["web", "web", "app", "store"], dtype=object)

__all__ = [
    "EFFECTS",
    "HOLDOUT",
    "IDENTIFIERS",
    "ORDERS",
    "PERSONS",
    "Effects",
    "TruthWriter",
    "api_identifiers",
    "effects",
    "effects_table",
    "holdout_table",
    "identifiers_table",
    "orders_table",
    "persons_table",
    "readme",
    "switchable",
]


def switchable(world: World) -> tuple[str, ...]:
    """Return the channels whose effect the simulation can switch off."""
    return (*world.causes[1:], "email", "sms", "push", "event:workshop")


@dataclass(slots=True)
class Effects:
    """Incremental outcomes per channel, summed over chunks."""

    customers: dict[str, int] = field(default_factory=dict)
    orders: dict[str, int] = field(default_factory=dict)
    revenue: dict[str, float] = field(default_factory=dict)

    def add(self, channel: str, customers: int, orders: int, revenue: float) -> None:
        """Add one chunk's incremental outcomes of a channel."""
        self.customers[channel] = self.customers.get(channel, 0) + customers
        self.orders[channel] = self.orders.get(channel, 0) + orders
        self.revenue[channel] = self.revenue.get(channel, 0.0) + revenue


def effects(world: World, ch: Chunk, acc: Effects) -> None:
    """Rerun the chunk with each channel switched off; add what disappears to `acc`."""
    o = ch.orders
    loaded = ch.loaded(o.t)
    keys, revenue, buyer = o.key[loaded], o.revenue[loaded], o.person[loaded]
    buyers = len(np.unique(buyer))
    for channel in switchable(world):
        other = activity.demand(world, ch.people, ch.draws, off=channel)
        kept = np.isin(keys, activity.slot_keys(other))
        acc.add(
            channel,
            buyers - len(np.unique(buyer[kept])),
            int((~kept).sum()),
            float(revenue[~kept].sum()),
        )


def api_identifiers(world: World, ch: Chunk, ids: Identifiers) -> None:
    """Record the identifiers the chunk's messages carry (see `messages`)."""
    se, pp, days = ch.sessions, ch.people, ch.days
    reach = ch.demand.reach
    assert reach is not None
    for pair in np.unique(se.person * 3 + se.device).tolist():
        person, device = divmod(pair, 3)
        anon = (pp.anon_desktop, pp.anon_mobile, pp.anon_app)[device][person]
        ids.add("anonymous_id", anon, pp.person_id(person), "api")
    login = se.known | (se.identify & (se.kind != SIGNUP))
    sent = reach.t < days
    channel = np.array([c.channel for c in world.campaigns], dtype=object)[reach.campaign]
    users = np.unique(
        np.concatenate([se.person[login], reach.person[sent], ch.orders.person[refunds(ch)]])
    )
    emails = np.unique(
        np.concatenate([se.person[se.identify], reach.person[sent & (channel == "email")]])
    )
    full = se.identify & (se.kind != SIGNUP)
    typed = np.unique(se.person[full])
    e164 = np.unique(reach.person[sent & (channel == "sms")])
    carded = np.unique(se.person[full & (se.t >= ch.card_t[se.person])])
    for i in users.tolist():
        ids.add("user_id", pp.customer_id[i], pp.person_id(i), "api")
    for i in emails.tolist():
        ids.add("email", pp.email[i], pp.person_id(i), "api")
    for i in typed.tolist():
        if pp.gives_phone(i):
            ids.add(
                "phone", phone_as_typed(pp.phone[i], int(pp.phone_style[i])), pp.person_id(i), "api"
            )
    for i in e164.tolist():
        ids.add("phone", pp.phone[i], pp.person_id(i), "api")
    for i in carded.tolist():
        ids.add("card", pp.card[i], pp.person_id(i), "api")


def _dates(world: World, t: np.ndarray) -> pa.Array:
    finite = np.isfinite(t)
    days = world.calendar.epoch_day(np.where(finite, t, 0.0))
    return pa.array(days.astype(np.int32), pa.int32(), mask=~finite).cast(pa.date32())


def _channels_used(ch: Chunk) -> tuple[list[list[str]], np.ndarray]:
    o, n = ch.orders, len(ch.people)
    loaded = ch.loaded(o.t)
    flags = np.zeros((n, 3), dtype=bool)  # web, app, store
    for column, channels in ((0, (DELIVERY, COLLECT)), (1, (APP_ORDER,)), (2, (IN_STORE, COLLECT))):
        hit = loaded & np.isin(o.channel, channels)
        flags[o.person[hit], column] = True
    names = ("web", "app", "store")
    used = [[names[k] for k in range(3) if row[k]] for row in flags.tolist()]
    return used, flags.sum(axis=1) >= 2


def persons_table(world: World, ch: Chunk) -> pa.Table:
    """Return the truth about each person of the chunk."""
    pp, o, dem, days = ch.people, ch.orders, ch.demand, ch.days
    n = len(pp)
    loaded = ch.loaded(o.t)
    count = np.bincount(o.person[loaded], minlength=n)
    spend = np.bincount(o.person[loaded], weights=o.revenue[loaded], minlength=n)
    refunded = np.bincount(o.person[loaded], weights=o.refund[loaded], minlength=n)
    used, omni = _channels_used(ch)
    causes = np.array(["before_period", *world.causes], dtype=object)[pp.cause + 1]
    record = dem.crm < days
    optin = ch.draws.optin
    churn = np.where(dem.churn < days, dem.churn, np.nan)
    alive = pp.customer & (pp.t0 < days) & (dem.churn >= days)
    return pa.table(
        {
            "person_id": [person_id(int(g)) for g in pp.gidx],
            "household_id": [f"H{int(h):08d}" for h in pp.household],
            "persona": np.array(PERSONAS, dtype=object)[pp.persona].tolist(),
            "is_customer": pp.customer,
            "gender": np.where(pp.female, "F", "M").tolist(),
            "first_name": pp.first,
            "last_name": pp.last,
            "birth_date": pa.array(pp.birth).cast(pa.date32()),
            "street": pp.street,
            "postcode": pp.postcode,
            "city": pp.city,
            "home_store": _STORE_CODES[pp.region].tolist(),
            "email": pp.email,
            "email2": pp.email2,
            "family_email": pp.family_email,
            "phone": pp.phone,
            "customer_id": [c if r else None for c, r in zip(pp.customer_id, record, strict=True)],
            "card": [c if t < days else None for c, t in zip(pp.card, ch.card_t, strict=True)],
            "optin_email": record & optin[:, 0] & (dem.unsubscribed >= days),
            "optin_sms": record & optin[:, 1],
            "optin_push": record & optin[:, 2],
            "acquisition_channel": [
                c if cust else None for c, cust in zip(causes, pp.customer, strict=True)
            ],
            "acquisition_date": _dates(world, pp.t0),
            "channels_used": used,
            "omnichannel": omni,
            "orders": count.astype(np.int32),
            "spend_eur": np.round(spend - refunded, 2),
            "refunds_eur": np.round(refunded, 2),
            "churn_date": _dates(world, churn),
            "alive_at_end": alive,
            "purchase_rate_per_year": np.round(pp.rate * 365.0, 4),
            "dropout_probability": np.round(pp.dropout, 4),
        },
        schema=PERSONS,
    )


def _causes(world: World, ch: Chunk) -> list[str]:
    o = ch.orders
    out = []
    for kind, ref in zip(o.kind.tolist(), o.ref.tolist(), strict=True):
        if kind == BASE:
            out.append("base")
        elif kind == CAMPAIGN:
            camp = world.campaigns[ref]
            out.append(f"{camp.channel}:{camp.campaign_id}")
        else:
            out.append(f"event:workshop:{world.workshops[ref].name}")
    return out


def orders_table(world: World, ch: Chunk) -> pa.Table:
    """Return the truth about each order of the loaded and holdout periods."""
    o, days = ch.orders, ch.days
    keep = o.t >= 0
    se = ch.sessions
    researched = np.zeros(len(o), dtype=bool)
    researched[se.order[(se.kind == RESEARCH) & (se.order >= 0)]] = True
    pickup = [
        p if c == COLLECT else None
        for p, c in zip(o.pickup_number, o.channel.tolist(), strict=True)
    ]
    back = [r or None for r in o.return_number]
    table = pa.table(
        {
            "order_ref": o.number,
            "person_id": [person_id(int(g)) for g in ch.people.gidx[o.person]],
            "at": pa.array(world.calendar.epoch_ms(o.t), pa.int64()).cast(
                pa.timestamp("ms", tz="Europe/Paris")
            ),
            "period": np.where(o.t < days, "loaded", "holdout").tolist(),
            "channel": _CHANNEL[o.channel].tolist(),
            "fulfilment": _FULFILMENT[o.channel].tolist(),
            "store": _STORE_CODES[o.store].tolist(),
            "items": o.line_count.astype(np.int32),
            "revenue_eur": o.revenue,
            "shipping_eur": o.shipping,
            "refunded_eur": o.refund,
            "cause": _causes(world, ch),
            "first_purchase": o.first,
            "researched_online": researched,
            "pickup_ref": pickup,
            "return_ref": back,
        },
        schema=ORDERS,
    )
    return table.filter(pa.array(keep))


def holdout_table(ch: Chunk) -> pa.Table:
    """Return each customer's purchases in the holdout period."""
    pp, o, days = ch.people, ch.orders, ch.days
    n = len(pp)
    later = o.t >= days
    count = np.bincount(o.person[later], minlength=n)
    spend = np.bincount(o.person[later], weights=o.revenue[later] - o.refund[later], minlength=n)
    alive = pp.customer & (pp.t0 < days) & (ch.demand.churn >= days)
    who = np.flatnonzero(pp.customer & (pp.t0 < days))
    return pa.table(
        {
            "person_id": [person_id(int(g)) for g in pp.gidx[who]],
            "alive_at_start": alive[who],
            "purchases": count[who].astype(np.int32),
            "spend_eur": np.round(spend[who], 2),
        },
        schema=HOLDOUT,
    )


def identifiers_table(ids: Identifiers) -> pa.Table:
    """Return the identifiers, each (kind, value, person, file kind) once."""
    table = pa.table(
        {
            "kind": ids.kind,
            "value": ids.value,
            "person_id": ids.person,
            "kind_file": ids.kind_file,
            "exact": ids.exact,
        },
        schema=IDENTIFIERS,
    )
    return (
        table.group_by(["kind", "value", "person_id", "kind_file"], use_threads=False)
        .aggregate([("exact", "min")])
        .rename_columns(["kind", "value", "person_id", "kind_file", "exact"])
        .select(IDENTIFIERS.names)
    )


def effects_table(world: World, acc: Effects, spend: dict[str, float]) -> pa.Table:
    """Return each switchable channel's spend and true incremental outcomes."""
    rows: dict[str, list[Any]] = {name: [] for name in EFFECTS.names}
    networks = {net.channel: i for i, net in enumerate(NETWORKS)}
    for channel in switchable(world):
        n = networks.get(channel)
        rows["channel"].append(channel)
        rows["media_class"].append(str(parse_channel(channel)[0].media_class))
        rows["spend_eur"].append(round(spend.get(channel, 0.0), 2))
        rows["true_incremental_customers"].append(acc.customers.get(channel, 0))
        rows["true_incremental_orders"].append(acc.orders.get(channel, 0))
        rows["true_incremental_revenue_eur"].append(round(acc.revenue.get(channel, 0.0), 2))
        rows["hill_half_saturation_eur_per_day"].append(
            None if n is None else float(world.half_saturation[n])
        )
        rows["hill_shape"].append(None if n is None else NETWORKS[n].shape)
        cause = world.causes.index(channel) if channel in world.causes else -1
        peak = None if n is None else round(float(world.max_new_per_day[cause]), 4)
        rows["hill_max_new_customers_per_day"].append(peak)
    return pa.table(rows, schema=EFFECTS)


class TruthWriter:
    """Writes the ground-truth files chunk by chunk."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.writers = {
            name: pq.ParquetWriter(folder / f"{name}.parquet", schema)
            for name, schema in (
                ("persons", PERSONS),
                ("identifiers", IDENTIFIERS),
                ("orders", ORDERS),
                ("holdout", HOLDOUT),
            )
        }
        self.rows = dict.fromkeys(self.writers, 0)

    def add(self, world: World, ch: Chunk, ids: Identifiers) -> None:
        """Write one chunk's persons, identifiers, orders and holdout purchases."""
        api_identifiers(world, ch, ids)
        for name, table in (
            ("persons", persons_table(world, ch)),
            ("identifiers", identifiers_table(ids)),
            ("orders", orders_table(world, ch)),
            ("holdout", holdout_table(ch)),
        ):
            self.writers[name].write_table(table)
            self.rows[name] += table.num_rows

    def close(self, world: World, acc: Effects, spend: dict[str, float]) -> None:
        """Finish the chunked files; write the channel effects and the README."""
        for writer in self.writers.values():
            writer.close()
        pq.write_table(effects_table(world, acc, spend), self.folder / "channel_effects.parquet")
        (self.folder / "README.md").write_text(readme(world), encoding="utf-8")


def readme(world: World) -> str:
    """Return the README of the ground-truth folder."""
    cal = world.calendar
    end = cal.date_of(cal.days)
    holdout_end = cal.date_of(cal.days + cal.holdout)
    template = resources.files("omnicanal.demo").joinpath("ground_truth_readme.md")
    return template.read_text(encoding="utf-8").format(
        seed=world.seed,
        customers=world.customers,
        start=cal.start,
        end=end,
        holdout_end=holdout_end,
    )
