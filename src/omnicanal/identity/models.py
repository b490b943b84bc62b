"""The identity graph: profiles as nodes, identifiers pointing at them, merges as edges.

A profile is created for each new person seen. When an event shows that two
profiles are one person, the younger is *merged into* the older: it keeps its rows
(identifiers, events, orders stay attached to it) and points at the survivor, so a
merge is a pointer change that can be undone. `merged_into` always names the root
of the cluster, never an intermediate profile; `identity_merge` keeps the history
(who, why, on what evidence), from which an undo rebuilds the tree.
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
)
from sqlalchemy.orm import Mapped, mapped_column

from omnicanal.store.base import Base, BigId


class Profile(Base):
    """One person (or, once merged, a member of another profile's cluster)."""

    __tablename__ = "profile"
    __table_args__ = (
        Index("ix_profile_merged_into", "merged_into"),
        Index("ix_profile_email", "email"),
        Index("ix_profile_phone", "phone"),
        Index("ix_profile_card", "card"),
        Index("ix_profile_last_name", "last_name"),
        Index("ix_profile_updated_ms", "updated_ms"),  # the warehouse reads changes since
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merged_into: Mapped[int | None] = mapped_column(BigInteger)  # root of the cluster
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    # Searchable copies of the latest traits (lower-cased, normalised); the traits
    # with their source and time are in `traits`.
    email: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(32))
    card: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    postcode: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None] = mapped_column(String(120))
    # JSON object: trait name -> {"value", "source_id", "at" (ms), "event_id"}
    traits: Mapped[str] = mapped_column(Text, default="{}")


class Identity(Base):
    """One identifier value and the profile it belongs to.

    kind: user_id, anonymous_id, email, phone, card, or `external:<type>`. An
    identifier found on several people (a shared family email, a shop's generic
    till address) is marked `shared`: it stays recorded on the profile that first
    had it but never joins profiles again.
    """

    __tablename__ = "identity"
    __table_args__ = (
        UniqueConstraint("kind", "value"),
        Index("ix_identity_profile_id", "profile_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(255))
    profile_id: Mapped[int] = mapped_column(BigInteger)
    source_id: Mapped[int | None] = mapped_column(Integer)
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class IdentityMerge(Base):
    """A merge of `merged_id` into `survivor_id`, with its reason and evidence."""

    __tablename__ = "identity_merge"
    __table_args__ = (
        Index("ix_identity_merge_survivor_id", "survivor_id"),
        Index("ix_identity_merge_merged_id", "merged_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survivor_id: Mapped[int] = mapped_column(BigInteger)
    merged_id: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(64))  # shared_identifier, alias, match, manual
    evidence: Mapped[str] = mapped_column(Text)  # JSON: identifier, event id, score, ...
    created_ms: Mapped[int] = mapped_column(BigInteger)
    undone_ms: Mapped[int | None] = mapped_column(BigInteger)
    undone_reason: Mapped[str | None] = mapped_column(String(255))


class IdentityConflict(Base):
    """A join the guard rails refused, kept so an analyst can see and override it."""

    __tablename__ = "identity_conflict"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(255))
    profile_ids: Mapped[str] = mapped_column(Text)  # JSON list
    reason: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class MatchReview(Base):
    """A probabilistic match scored in the review band, waiting for a person's decision."""

    __tablename__ = "identity_match_review"
    __table_args__ = (
        UniqueConstraint("left_id", "right_id"),
        Index("ix_identity_match_review_status", "status"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    left_id: Mapped[int] = mapped_column(BigInteger)
    right_id: Mapped[int] = mapped_column(BigInteger)
    probability: Mapped[float]
    evidence: Mapped[str] = mapped_column(Text)  # JSON: per-field comparison levels
    status: Mapped[str] = mapped_column(String(16), default="pending")  # merged, rejected
    created_ms: Mapped[int] = mapped_column(BigInteger)
    decided_ms: Mapped[int | None] = mapped_column(BigInteger)


class Household(Base):
    """People linked by a shared address or family email; never merged into one."""

    __tablename__ = "household"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)  # e.g. address:<normalised>
    created_ms: Mapped[int] = mapped_column(BigInteger)


class HouseholdMember(Base):
    """A profile's membership of a household, with the evidence for it."""

    __tablename__ = "household_member"
    household_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("household.id"), primary_key=True
    )
    profile_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    evidence: Mapped[str] = mapped_column(Text)  # JSON: {"kind": "email"|"address", "value"}
    since: Mapped[date] = mapped_column(Date)
