"""The world-level files: the catalogue, the stock levels and what each channel cost.

- `catalogue.csv`: the products (UTF-8, `,`).
- `stock.parquet`: stock online and in each store at the end of the loaded period.
- `costs.csv`: each day's spend per ad network and campaign, with impressions and clicks
  (at least the clicks seen in the data), press insertions, the street operation,
  workshops, newsletter production, SMS sends and the platforms' fees.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from omnicanal.demo.chunk import Chunk
from omnicanal.demo.files import Writer
from omnicanal.demo.sessions import AD, BRAND
from omnicanal.demo.shop import SITE, STORES
from omnicanal.demo.world import NETWORKS, World

CATALOGUE_HEADER = (
    "sku",
    "name",
    "category",
    "brand",
    "price",
    "currency",
    "image_url",
    "url",
    "active",
)
COSTS_HEADER = (
    "date",
    "channel",
    "campaign",
    "amount",
    "currency",
    "kind",
    "impressions",
    "clicks",
)

# A row of costs.csv: day, channel, campaign, amount, kind, impressions and clicks.
_CostRow = tuple[int, str, str, float, str, int | None, int | None]


@dataclass(slots=True)
class Tally:
    """Counts across chunks that the world-level files need."""

    ad_clicks: np.ndarray  # [network, loaded day]; the last row is Google's brand campaign
    sms_sent: np.ndarray  # [campaign]

    @classmethod
    def empty(cls, world: World) -> Tally:
        """Return zero counts for a world."""
        return cls(
            np.zeros((len(NETWORKS) + 1, world.calendar.days), dtype=np.int64),
            np.zeros(len(world.campaigns), dtype=np.int64),
        )

    def add(self, ch: Chunk) -> None:
        """Count a chunk's ad clicks and SMS sent."""
        se = ch.sessions
        day = np.floor(se.t).astype(np.int64)
        ads = se.entry == AD
        np.add.at(self.ad_clicks, (se.ref[ads], day[ads]), 1)
        brand = se.entry == BRAND
        np.add.at(self.ad_clicks, (np.full(int(brand.sum()), len(NETWORKS)), day[brand]), 1)
        reach = ch.demand.reach
        assert reach is not None
        sent = reach.t < ch.days
        np.add.at(self.sms_sent, reach.campaign[sent], 1)


def catalogue(w: Writer) -> None:
    """Write the product catalogue."""
    cat = w.world.catalogue
    with w.paths["catalogue"].open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle, lineterminator="\r\n")
        out.writerow(CATALOGUE_HEADER)
        for i in range(len(cat)):
            sku = cat.sku[i]
            out.writerow(
                [
                    sku,
                    cat.name[i],
                    cat.category[i],
                    cat.brand[i],
                    f"{cat.price[i]:.2f}",
                    "EUR",
                    f"https://cdn.maison-lumiere.fr/p/{sku.lower()}.jpg",
                    f"{SITE}/p/{cat.slug[i]}-{sku.lower()}",
                    "true" if cat.active[i] else "false",
                ]
            )


def stock(w: Writer) -> None:
    """Write the stock levels online and in each store at the end of the loaded period."""
    cat = w.world.catalogue
    rng = np.random.default_rng([w.world.seed, 8])
    locations = ["online", *(f"store:{s.code}" for s in STORES)]
    depth = np.array([12.0, 3.0, 2.0, 2.0]) * max(w.world.scale, 0.05)
    sku, where, qty = [], [], []
    for k, location in enumerate(locations):
        counts = rng.poisson(depth[k] * cat.popularity * len(cat) * np.where(cat.active, 1.0, 0.2))
        sku += list(cat.sku)
        where += [location] * len(cat)
        qty += counts.tolist()
    stamp = (w.start + timedelta(days=w.world.calendar.days - 1, hours=22)).isoformat()
    table = pa.table(
        {
            "sku": sku,
            "location": where,
            "quantity": pa.array(qty, pa.int64()),
            "datetime": [stamp] * len(sku),
        }
    )
    pq.write_table(table, w.paths["stock"])


def _cost_rows(w: Writer, tally: Tally) -> Iterator[_CostRow]:
    world = w.world
    cal, first = world.calendar, world.calendar.index(0)
    cpc = (0.9, 0.6, 0.5, 0.35)
    ctr = (0.04, 0.009, 0.011, 0.007)
    rng = np.random.default_rng([world.seed, 9])
    for n, net in enumerate(NETWORKS):
        for day in range(cal.days):
            spend = float(world.spend[n, first + day])
            if spend > 0:
                clicks = max(
                    int(tally.ad_clicks[n, day]), int(spend / cpc[n] * rng.lognormal(0, 0.1))
                )
                yield (
                    day,
                    net.channel,
                    net.campaign,
                    spend,
                    "ad_spend",
                    int(clicks / ctr[n]),
                    clicks,
                )
    for day in range(cal.days):
        spend = float(world.brand_spend[first + day])
        clicks = max(int(tally.ad_clicks[len(NETWORKS), day]), int(spend / 0.35))
        yield day, "ads:google", "marque", spend, "ad_spend", int(clicks / 0.12), clicks
    yield from _offline_costs(world, tally)


def _offline_costs(world: World, tally: Tally) -> Iterator[_CostRow]:
    """Yield the costs of the loaded period that are not ad spend."""
    yield from _press_costs(world)
    yield from _event_costs(world)
    yield from _campaign_costs(world, tally)
    yield from _platform_costs(world)


def _press_costs(world: World) -> Iterator[_CostRow]:
    """Yield each press insertion, on the day it ran."""
    for ins in world.insertions:
        if ins.day < world.calendar.days:
            title = f"{ins.title} {world.calendar.date_of(ins.day):%d/%m/%Y}"
            yield ins.day, ins.channel, title, ins.cost_eur, "press", None, None


def _event_costs(world: World) -> Iterator[_CostRow]:
    """Yield the street operation, spread over its days, then each store workshop."""
    days, op = world.calendar.days, world.street
    for k in range(op.days):
        if op.day + k < days:
            share = round(op.cost_eur / op.days, 2)
            yield op.day + k, op.channel, op.name, share, "event", None, None
    for shop in world.workshops:
        if shop.day < days:
            yield shop.day, shop.channel, shop.name, shop.cost_eur, "event", None, None


def _campaign_costs(world: World, tally: Tally) -> Iterator[_CostRow]:
    """Yield each newsletter's production and each SMS campaign's sends."""
    for c, camp in enumerate(world.campaigns):
        if camp.day >= world.calendar.days:
            continue
        if camp.channel == "email":
            amount = round(350.0 * world.scale, 2)
            yield camp.day, "email", camp.campaign_id, amount, "production", None, None
        elif camp.channel == "sms":
            amount = round(0.045 * int(tally.sms_sent[c]), 2)
            yield camp.day, "sms", camp.campaign_id, amount, "other", None, None


def _platform_costs(world: World) -> Iterator[_CostRow]:
    """Yield the e-mailing and push platforms' fees, on the first day of each month."""
    for day in range(world.calendar.days):
        if world.calendar.date_of(day).day == 1:
            emailing = round(250.0 * world.scale, 2)
            yield day, "email", "plateforme e-mailing", emailing, "other", None, None
            yield day, "push", "plateforme push", round(90.0 * world.scale, 2), "other", None, None


def costs(w: Writer, tally: Tally) -> dict[str, float]:
    """Write what every channel cost each day; return the total per channel."""
    totals: dict[str, float] = {}
    w.rows["costs"] = 0
    with w.paths["costs"].open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle, lineterminator="\r\n")
        out.writerow(COSTS_HEADER)
        for day, channel, campaign, amount, kind, impressions, clicks in _cost_rows(w, tally):
            out.writerow(
                [
                    f"{w.world.calendar.date_of(day):%Y-%m-%d}",
                    channel,
                    campaign,
                    f"{amount:.2f}",
                    "EUR",
                    kind,
                    "" if impressions is None else str(impressions),
                    "" if clicks is None else str(clicks),
                ]
            )
            totals[channel] = totals.get(channel, 0.0) + amount
            w.rows["costs"] += 1
    return totals
