"""A small sample of a fashion retailer's events, sent through the real collection API.

It stands in for the full demo retailer (with ground truth) that comes with the customer
360 work: a few hundred customers browse the e-shop and the app, sign up, buy online and
in the stores, open newsletters. Deterministic for a given seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SOURCES = (
    ("demo-eshop", "web"),
    ("demo-app", "app"),
    ("demo-store-paris", "store:paris-01"),
    ("demo-store-lyon", "store:lyon-01"),
    ("demo-newsletter", "email"),
)
PRODUCTS = (
    ("TSH-001", "T-shirt coton bio", "T-shirts", 29.95),
    ("JEA-014", "Jean droit brut", "Jeans", 89.00),
    ("PUL-203", "Pull laine mérinos", "Pulls", 119.00),
    ("VES-077", "Veste en lin", "Vestes", 149.00),
    ("ROB-122", "Robe fluide imprimée", "Robes", 79.90),
    ("BAS-009", "Baskets cuir blanc", "Chaussures", 109.00),
)
FIRST = ("Camille", "Léa", "Hugo", "Lucas", "Chloé", "Manon", "Louis", "Emma", "Jules", "Inès")
LAST = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand")
CAMPAIGNS = (
    {"source": "instagram", "medium": "paid_social", "name": "printemps"},
    {"source": "google", "medium": "cpc", "name": "marque"},
    {"source": "newsletter", "medium": "email", "name": "soldes"},
)


@dataclass(frozen=True)
class Message:
    """One message and the source that sends it."""

    source: str
    body: dict[str, Any]


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _product(rng: random.Random) -> dict[str, Any]:
    sku, name, category, price = rng.choice(PRODUCTS)
    return {
        "product_id": sku,
        "sku": sku,
        "name": name,
        "category": category,
        "price": price,
        "currency": "EUR",
        "brand": "Maison Lumière",
    }


class _Customer:
    def __init__(self, rng: random.Random, index: int, start: datetime) -> None:
        self.rng = rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        self.user_id = f"cust-{index:05d}"
        self.anonymous_id = str(uuid.UUID(int=rng.getrandbits(128)))
        self.traits = {
            "email": f"{first}.{last}{index}@example.fr".lower(),
            "firstName": first,
            "lastName": last,
            "phone": f"+3361234{index:04d}"[:12],
            "loyaltyCard": f"LUM{index:08d}",
        }
        self.when = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 20))

    def _msg(self, source: str, kind: str, **fields: Any) -> Message:
        self.when += timedelta(minutes=self.rng.randrange(1, 20))
        body = {
            "type": kind,
            "messageId": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "timestamp": _stamp(self.when),
            **fields,
        }
        return Message(source, body)

    def journey(self, until: datetime) -> Iterator[Message]:
        """Yield this customer's messages in time order until the end date."""
        rng, anon = self.rng, {"anonymousId": self.anonymous_id}
        campaign = rng.choice(CAMPAIGNS)
        yield self._msg(
            "demo-eshop",
            "page",
            **anon,
            name="Accueil",
            properties={"path": "/"},
            context={"campaign": campaign},
        )
        identified = False
        while True:
            self.when += timedelta(days=rng.expovariate(1 / 15))
            if self.when >= until:
                return
            product = _product(rng)
            channel = rng.choices(("demo-eshop", "demo-app", "store"), (5, 3, 2))[0]
            who = {"userId": self.user_id} if identified else anon
            if channel == "store":
                store = rng.choice(("demo-store-paris", "demo-store-lyon"))
                yield self._msg(
                    store,
                    "track",
                    userId=self.user_id,
                    event="Order Completed",
                    properties=self._order(product, "in_store"),
                )
                identified = True
                continue
            yield self._msg(channel, "track", **who, event="Product Viewed", properties=product)
            if rng.random() < 0.35:
                yield self._msg(
                    channel,
                    "track",
                    **who,
                    event="Product Added",
                    properties={**product, "quantity": 1},
                )
                if not identified:
                    yield self._msg(
                        channel, "identify", userId=self.user_id, **anon, traits=self.traits
                    )
                    identified, who = True, {"userId": self.user_id}
                if rng.random() < 0.55:
                    yield self._msg(
                        channel,
                        "track",
                        **who,
                        event="Order Completed",
                        properties=self._order(product, "delivery"),
                    )
            if identified and rng.random() < 0.3:
                yield self._msg(
                    "demo-newsletter",
                    "track",
                    userId=self.user_id,
                    event="Email Opened",
                    properties={"campaign": "nouveautés"},
                )

    def _order(self, product: dict[str, Any], fulfilment: str) -> dict[str, Any]:
        quantity = self.rng.randint(1, 3)
        return {
            "order_id": f"O-{self.rng.getrandbits(40):010x}",
            "revenue": round(product["price"] * quantity, 2),
            "currency": "EUR",
            "fulfilment": fulfilment,
            "products": [{**product, "quantity": quantity}],
        }


def generate(*, customers: int, months: int, seed: int, end: datetime) -> list[Message]:
    """Return every message of the sample, in time order."""
    rng = random.Random(seed)
    start = end - timedelta(days=30 * months)
    messages: list[Message] = []
    for index in range(customers):
        messages.extend(_Customer(rng, index, start).journey(end))
    messages.sort(key=lambda m: m.body["timestamp"])
    return messages
