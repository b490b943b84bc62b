"""The warehouse's tables: what analytics may rely on, whatever engine holds them.

The store is shaped for writing (the event log, the identity graph, one row per
change); the warehouse is shaped for reading: one row per fact, the person it belongs
to already resolved, money in integer euro cents (sums are exact and every engine
gives the same answer), instants as naive UTC timestamps (`ts`) beside the retailer's
local calendar day (`day`, in `Settings.timezone`), which every period filter uses.

`person_id` is the root of the profile's identity cluster at the last sync: when
profiles merge or a merge is undone, the sync rewrites it on every table. A profile
that was never merged is its own person.

The same tables, with these names and types, are what the analytics code receives
on DuckDB (the default file), on PostgreSQL or on a Spark session.
"""

from __future__ import annotations

from typing import Final

import ibis
import ibis.expr.schema as sch

EVENTS: Final = "events"
ORDERS: Final = "orders"
ORDER_LINES: Final = "order_lines"
REFUNDS: Final = "refunds"
PROFILES: Final = "profiles"
CONSENTS: Final = "consents"
FEEDBACK: Final = "feedback"
COSTS: Final = "costs"
PRODUCTS: Final = "products"
STOCK: Final = "stock"
SOURCES: Final = "sources"

SCHEMAS: Final[dict[str, sch.Schema]] = {
    # Every processed event (page, screen, track, identify...), one row each.
    EVENTS: ibis.schema(
        {
            "event_id": "int64",  # the event log's sequence number
            "profile_id": "int64",  # profile the event was attached to
            "person_id": "int64",  # root of that profile's cluster
            "source_id": "int32",
            "ts": "timestamp",  # UTC, naive
            "day": "date",  # local calendar day
            "type": "string",  # page, screen, track, identify, group, alias
            "event": "string",  # track event name (Order Completed, Email Opened...)
            "channel": "string",  # taxonomy channel: web, app, store:paris-01, ads:google...
            "media_class": "string",  # paid, owned, earned, hors_media
            "online": "boolean",
            "campaign": "string",  # UTM campaign or the message's campaign
            "order_id": "int64",  # orders.order_id for order events
            "revenue_cents": "int64",  # order events: order total in euro cents
        }
    ),
    # Orders from every channel (e-shop, app, till, call centre...).
    ORDERS: ibis.schema(
        {
            "order_id": "int64",
            "profile_id": "int64",
            "person_id": "int64",
            "source_id": "int32",
            "event_id": "int64",  # the event that placed it
            "order_key": "string",  # the source's order id or till receipt
            "ts": "timestamp",
            "day": "date",
            "channel": "string",  # where it was placed: web, app, store:<id>, call_centre...
            "online": "boolean",  # placed online (click & collect included)
            "store": "string",  # store of purchase or pick-up, null for deliveries
            "fulfilment": "string",  # delivery, click_and_collect, in_store
            "status": "string",  # completed, partially_refunded, refunded
            "currency": "string",  # the currency it was paid in
            "total_cents": "int64",  # euro cents, VAT included, after discounts
            "discount_cents": "int64",
            "shipping_cents": "int64",
            "tax_cents": "int64",
            "refunded_cents": "int64",
            "coupon": "string",
            "campaign": "string",
        }
    ),
    ORDER_LINES: ibis.schema(
        {
            "line_id": "int64",
            "order_id": "int64",
            "sku": "string",
            "product_id": "string",
            "name": "string",
            "category": "string",
            "brand": "string",
            "quantity": "int32",
            "unit_price_cents": "int64",
            "returned_quantity": "int32",
        }
    ),
    REFUNDS: ibis.schema(
        {
            "refund_id": "int64",
            "order_id": "int64",  # null when the refunded order is unknown
            "profile_id": "int64",
            "person_id": "int64",
            "ts": "timestamp",
            "day": "date",
            "channel": "string",
            "amount_cents": "int64",
        }
    ),
    # Every profile, merged or not; a person is the set of profiles sharing person_id.
    PROFILES: ibis.schema(
        {
            "profile_id": "int64",
            "person_id": "int64",
            "created": "timestamp",
            "first_seen": "timestamp",
            "last_seen": "timestamp",
            "event_count": "int64",
            "has_email": "boolean",
            "has_phone": "boolean",
            "has_card": "boolean",
            "postcode": "string",
            "city": "string",
        }
    ),
    # Consent records in the order they were given or withdrawn.
    CONSENTS: ibis.schema(
        {
            "consent_id": "int64",
            "profile_id": "int64",
            "person_id": "int64",
            "purpose": "string",  # marketing, ads_personalisation, analytics
            "channel": "string",  # email, sms, push, post, phone, all
            "granted": "boolean",
            "ts": "timestamp",
            "day": "date",
        }
    ),
    # NPS and CSAT answers.
    FEEDBACK: ibis.schema(
        {
            "event_id": "int64",
            "profile_id": "int64",
            "person_id": "int64",
            "kind": "string",  # nps (0-10), csat (1-5)
            "score": "int32",
            "channel": "string",
            "ts": "timestamp",
            "day": "date",
        }
    ),
    # Spend per day, channel and campaign: media and hors-média alike.
    COSTS: ibis.schema(
        {
            "cost_id": "int64",
            "day": "date",
            "channel": "string",
            "media_class": "string",
            "campaign": "string",  # empty when the cost is for the whole channel
            "kind": "string",  # ad_spend, event, direct_mail, press, sending, fee...
            "amount_cents": "int64",  # euro cents
            "impressions": "int64",
            "clicks": "int64",
        }
    ),
    PRODUCTS: ibis.schema(
        {
            "sku": "string",
            "name": "string",
            "category": "string",
            "brand": "string",
            "price_cents": "int64",
            "currency": "string",
            "active": "boolean",
        }
    ),
    STOCK: ibis.schema(
        {
            "sku": "string",
            "location": "string",  # online or store:<id>
            "quantity": "int64",
            "updated": "timestamp",
        }
    ),
    SOURCES: ibis.schema(
        {
            "source_id": "int32",
            "name": "string",
            "channel": "string",
        }
    ),
}
