"""What the processor derives from the event log, and the retailer's catalogue and costs.

Money is kept in integer cents (exact on every database), in the order's own
currency and converted to euros. Times are milliseconds since the epoch, as in
the event log.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from omnicanal.store.base import Base, BigId

# An event at a store that did not come from its till (see ProfileEvent.store).
STORE_VISIT = "store IS NOT NULL AND channel NOT LIKE 'store:%'"


class ProcessorCheckpoint(Base):
    """How far a processor has read the event log, written in the same transaction as
    what it derived, so a crash resumes exactly where the last commit stopped."""

    __tablename__ = "processor_checkpoint"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ProfileEvent(Base):
    """One processed event: who it belongs to and through which channel it came."""

    __tablename__ = "profile_event"
    __table_args__ = (
        Index("ix_profile_event_profile_id", "profile_id", "timestamp_ms"),
        Index("ix_profile_event_timestamp_ms", "timestamp_ms"),
        # The few events held at a store outside its tills (a workshop, a fair): with
        # the till's orders they tell which store a person comes to (identity
        # matching), without reading every event.
        Index(
            "ix_profile_event_store_visit",
            "profile_id",
            "store",
            sqlite_where=text(STORE_VISIT),
            postgresql_where=text(STORE_VISIT),
        ),
    )
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # collect_event.id
    profile_id: Mapped[int] = mapped_column(BigInteger)  # profile first attached to
    source_id: Mapped[int] = mapped_column(Integer)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(16))
    event: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(80))
    media_class: Mapped[str] = mapped_column(String(16))
    online: Mapped[bool] = mapped_column(Boolean)
    campaign: Mapped[str | None] = mapped_column(String(255))
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    revenue_cents: Mapped[int | None] = mapped_column(BigInteger)  # in euros
    # Where an offline interaction took place: the store of a till receipt, of a
    # workshop or a fair held in one (`properties.store` or `properties.location`).
    store: Mapped[str | None] = mapped_column(String(80))


class Consent(Base):
    """One consent statement: granted or withdrawn, for a purpose on a channel."""

    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_profile_id", "profile_id", "purpose", "channel"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    profile_id: Mapped[int] = mapped_column(BigInteger)
    purpose: Mapped[str] = mapped_column(String(32))  # marketing, ads_personalisation, analytics
    channel: Mapped[str] = mapped_column(String(32))  # email, sms, push, post, phone, all
    granted: Mapped[bool] = mapped_column(Boolean)
    source_id: Mapped[int | None] = mapped_column(Integer)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    recorded_ms: Mapped[int] = mapped_column(BigInteger)
    wording_version: Mapped[str | None] = mapped_column(String(64))
    proof: Mapped[str] = mapped_column(Text, default="{}")  # JSON: what was received


class Order(Base):
    """One order from any channel: e-shop, app, till, call centre, marketplace."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("source_id", "order_key"),
        Index("ix_orders_profile_id", "profile_id", "placed_ms"),
        Index("ix_orders_placed_ms", "placed_ms"),
        Index("ix_orders_order_key", "order_key"),  # refunds and pick-ups name the order
        Index("ix_orders_updated_ms", "updated_ms"),  # the warehouse reads changes since
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(Integer)
    order_key: Mapped[str] = mapped_column(String(255))  # the source's orderId or receipt
    profile_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(BigInteger)
    placed_ms: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(80))  # where the order was placed
    store: Mapped[str | None] = mapped_column(String(80))  # store of pick-up or purchase
    fulfilment: Mapped[str] = mapped_column(String(24))  # delivery, click_and_collect, in_store
    status: Mapped[str] = mapped_column(String(24))  # completed, partially_refunded, refunded
    currency: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int] = mapped_column(BigInteger)  # in `currency`
    total_eur_cents: Mapped[int] = mapped_column(BigInteger)
    discount_eur_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_eur_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_eur_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_eur_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon: Mapped[str | None] = mapped_column(String(120))
    campaign: Mapped[str | None] = mapped_column(String(255))
    # Last change (placement, pick-up, refund, new owner), for incremental readers.
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class OrderLine(Base):
    """One product line of an order."""

    __tablename__ = "order_line"
    __table_args__ = (Index("ix_order_line_order_id", "order_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("orders.id"))
    sku: Mapped[str | None] = mapped_column(String(120))
    product_id: Mapped[str | None] = mapped_column(String(120))
    name: Mapped[str | None] = mapped_column(String(255))
    category: Mapped[str | None] = mapped_column(String(255))
    brand: Mapped[str | None] = mapped_column(String(120))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_eur_cents: Mapped[int] = mapped_column(BigInteger)
    returned_quantity: Mapped[int] = mapped_column(Integer, default=0)


class OrderRefund(Base):
    """A return or refund against an order (whole or some lines).

    A till return that names no order is matched to the person's latest order holding
    the returned products; `order_id` stays empty when none does."""

    __tablename__ = "order_refund"
    __table_args__ = (Index("ix_order_refund_order_id", "order_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("orders.id"))
    profile_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    order_key: Mapped[str | None] = mapped_column(String(255))  # as the refund named it
    refunded_ms: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(80))
    amount_eur_cents: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[str] = mapped_column(Text, default="[]")  # JSON: [{sku, quantity}]


class Feedback(Base):
    """A survey answer: NPS (0-10) or CSAT (1-5), with where and when it was given."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_profile_id", "profile_id"),)
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    profile_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))  # nps, csat
    score: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(80))
    answered_ms: Mapped[int] = mapped_column(BigInteger)
    comment: Mapped[str | None] = mapped_column(Text)


class Product(Base):
    """A catalogue product, kept current by imports and the catalogue API."""

    __tablename__ = "product"
    sku: Mapped[str] = mapped_column(String(120), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    category: Mapped[str | None] = mapped_column(String(255))
    brand: Mapped[str | None] = mapped_column(String(120))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    image_url: Mapped[str | None] = mapped_column(String(1024))
    url: Mapped[str | None] = mapped_column(String(1024))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class StockLevel(Base):
    """Units in stock for a product at one location (`online` or `store:<id>`)."""

    __tablename__ = "stock_level"
    sku: Mapped[str] = mapped_column(String(120), primary_key=True)
    location: Mapped[str] = mapped_column(String(80), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class PriceChange(Base):
    """Each price a product had, from when."""

    __tablename__ = "product_price_history"
    __table_args__ = (Index("ix_product_price_history_sku", "sku", "changed_ms"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(120))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    previous_cents: Mapped[int | None] = mapped_column(BigInteger)
    changed_ms: Mapped[int] = mapped_column(BigInteger)


class StockChange(Base):
    """Each stock level a product had at a location, from when."""

    __tablename__ = "stock_history"
    __table_args__ = (Index("ix_stock_history_sku", "sku", "location", "changed_ms"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(120))
    location: Mapped[str] = mapped_column(String(80))
    quantity: Mapped[int] = mapped_column(Integer)
    previous: Mapped[int | None] = mapped_column(Integer)
    changed_ms: Mapped[int] = mapped_column(BigInteger)


class Cost(Base):
    """Money spent on a channel on one day: ad spend, an event, a mail drop, a press ad."""

    __tablename__ = "cost"
    __table_args__ = (
        UniqueConstraint("day", "channel", "campaign", "kind"),
        Index("ix_cost_channel", "channel", "day"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(80))
    media_class: Mapped[str] = mapped_column(String(16))
    campaign: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(32))  # ad_spend, event, direct_mail, press, ...
    currency: Mapped[str] = mapped_column(String(3))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    amount_eur_cents: Mapped[int] = mapped_column(BigInteger)
    impressions: Mapped[int | None] = mapped_column(BigInteger)
    clicks: Mapped[int | None] = mapped_column(BigInteger)
    import_id: Mapped[int | None] = mapped_column(BigInteger)
