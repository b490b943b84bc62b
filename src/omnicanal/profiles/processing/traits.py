"""What a message says about its person: identifiers, name, traits and their precedence."""

from __future__ import annotations

from typing import Any, Final

from omnicanal.identity.graph import Name
from omnicanal.identity.normalise import (
    identifiers_from_message,
    normalise_card,
    normalise_email,
    normalise_name,
    normalise_phone,
    normalise_postcode,
)
from omnicanal.profiles.processing.common import first_value, raw_id

SEARCHABLE = ("email", "phone", "card", "first_name", "last_name", "postcode", "city")


def identifier_key(msg: dict[str, Any]) -> tuple[Any, ...]:
    """Everything identifiers_from_message reads, as a hashable key."""
    context = msg.get("context")
    context = context if isinstance(context, dict) else {}
    return (
        msg.get("type"),
        raw_id(msg.get("userId")),
        raw_id(msg.get("anonymousId")),
        raw_id(msg.get("previousId")),
        raw_id(msg.get("traits")) if msg.get("type") == "identify" else None,
        raw_id(context.get("traits")),
        raw_id(context.get("externalIds")),
    )


def message_traits(msg: dict[str, Any]) -> dict[str, Any]:
    """The user traits of a message: `context.traits` (RudderStack puts identify traits
    there), overridden on identify calls by `traits`."""
    context = msg.get("context")
    found = context.get("traits") if isinstance(context, dict) else None
    traits = dict(found) if isinstance(found, dict) else {}
    own = msg.get("traits")
    if msg.get("type") == "identify" and isinstance(own, dict):
        traits.update(own)
    return traits


#: Where a trait value came from: an identify call (a sign-in, a sign-up, a CRM record: the
#: person's details as they or the brand hold them) or the `context.traits` of another
#: event (a till receipt, a sign-up sheet, a call: details as someone typed them in passing).
IDENTIFY: Final = "identify"
EVENT: Final = "event"
_RANK = {IDENTIFY: 1, EVENT: 0}


def outranks(new: dict[str, Any], known: dict[str, Any]) -> bool:
    """True when a trait value replaces the one known: an identify call's value wins over
    one typed at a till or on a form, and among equals the later one wins. Values stored
    before the origin was kept count as an identify call's."""
    new_rank, known_rank = _RANK[new.get("from", IDENTIFY)], _RANK[known.get("from", IDENTIFY)]
    if new_rank != known_rank:
        return new_rank > known_rank
    return bool(known.get("at", 0) <= new["at"])


def message_identity(msg: dict[str, Any]) -> tuple[list[tuple[str, str]], Name]:
    """The message's identifiers (see `identifiers_from_message`) and the name it gives."""
    traits = message_traits(msg)
    name = (
        normalise_name(first_value(traits, "firstName", "first_name", "firstname")),
        normalise_name(first_value(traits, "lastName", "last_name", "lastname")),
    )
    return identifiers_from_message(msg), name


def searchable(traits: dict[str, Any]) -> dict[str, str | None]:
    """The profile's searchable columns from one message's traits (None: not given)."""
    address = traits.get("address") if isinstance(traits.get("address"), dict) else {}
    assert isinstance(address, dict)
    city = first_value(address, "city") or first_value(traits, "city")
    return {
        "email": normalise_email(first_value(traits, "email")),
        "phone": normalise_phone(first_value(traits, "phone", "mobile", "phoneNumber")),
        "card": normalise_card(
            first_value(traits, "card", "loyaltyCard", "loyalty_card", "cardNumber", "card_number")
        ),
        "first_name": normalise_name(first_value(traits, "firstName", "first_name", "firstname")),
        "last_name": normalise_name(first_value(traits, "lastName", "last_name", "lastname")),
        "postcode": normalise_postcode(
            first_value(address, "postalCode", "postal_code", "postcode")
            or first_value(traits, "postalCode", "postal_code", "postcode")
        ),
        "city": normalise_name(city),
    }
