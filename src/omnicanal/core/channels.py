"""The channel taxonomy: every event, order and cost names one channel.

A channel is a kind, optionally qualified (`store:paris-01`, `ads:google`,
`social:instagram`). Each kind has a media class, after the table of media
types the product is built from (paid, owned, earned media, and hors-média:
events, direct mail, street marketing, in-store) and is online or offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class MediaClass(StrEnum):
    """How a channel reaches people, as the plan and ROI reports group them."""

    PAID = "paid"
    OWNED = "owned"
    EARNED = "earned"
    HORS_MEDIA = "hors_media"


@dataclass(frozen=True, slots=True)
class ChannelKind:
    """One kind of channel with its media class and whether it is online."""

    name: str
    media_class: MediaClass
    online: bool
    label_fr: str
    label_en: str
    qualified: bool = False  # takes a `:<id>` such as a store or a network


KINDS: dict[str, ChannelKind] = {
    k.name: k
    for k in (
        ChannelKind("web", MediaClass.OWNED, True, "Site web", "Website"),
        ChannelKind("app", MediaClass.OWNED, True, "Application", "App"),
        ChannelKind("email", MediaClass.OWNED, True, "E-mail", "Email"),
        ChannelKind("sms", MediaClass.OWNED, True, "SMS", "SMS"),
        ChannelKind("push", MediaClass.OWNED, True, "Notification push", "Push"),
        ChannelKind("store", MediaClass.HORS_MEDIA, False, "Magasin", "Store", True),
        ChannelKind("call_centre", MediaClass.OWNED, False, "Service client", "Call centre"),
        ChannelKind("social", MediaClass.EARNED, True, "Réseau social", "Social network", True),
        ChannelKind("ads", MediaClass.PAID, True, "Publicité en ligne", "Online ads", True),
        ChannelKind("marketplace", MediaClass.PAID, True, "Marketplace", "Marketplace", True),
        ChannelKind("affiliate", MediaClass.PAID, True, "Affiliation", "Affiliate", True),
        ChannelKind("tv", MediaClass.PAID, False, "Télévision", "Television"),
        ChannelKind("radio", MediaClass.PAID, False, "Radio", "Radio"),
        ChannelKind("outdoor", MediaClass.PAID, False, "Affichage", "Outdoor"),
        ChannelKind("press", MediaClass.EARNED, False, "Presse", "Press", True),
        ChannelKind("influencer", MediaClass.HORS_MEDIA, True, "Influence", "Influencer", True),
        ChannelKind("event", MediaClass.HORS_MEDIA, False, "Événement", "Event", True),
        ChannelKind("direct_mail", MediaClass.HORS_MEDIA, False, "Courrier", "Direct mail"),
        ChannelKind("street", MediaClass.HORS_MEDIA, False, "Street marketing", "Street"),
        ChannelKind("referral", MediaClass.EARNED, True, "Recommandation", "Referral"),
        ChannelKind(
            "search", MediaClass.EARNED, True, "Référencement naturel", "Organic search", True
        ),
        ChannelKind("server", MediaClass.OWNED, True, "Serveur", "Server"),
        ChannelKind("import", MediaClass.OWNED, False, "Import", "Import"),
    )
}

_CHANNEL = re.compile(r"^(?P<kind>[a-z_]+)(?::(?P<qualifier>[a-z0-9][a-z0-9_.\-]{0,62}))?$")


def parse_channel(value: str) -> tuple[ChannelKind, str | None]:
    """Split `kind[:qualifier]` and check it against the taxonomy.

    Raises ValueError naming the accepted kinds when the value is not one.
    """
    match = _CHANNEL.match(value.strip().lower())
    kind = KINDS.get(match["kind"]) if match else None
    if match is None or kind is None:
        accepted = ", ".join(sorted(KINDS))
        raise ValueError(f"unknown channel {value!r}; use one of: {accepted} (e.g. store:paris)")
    return kind, match["qualifier"]


def normalise_channel(value: str) -> str:
    """Return the canonical spelling of a channel, or raise ValueError."""
    kind, qualifier = parse_channel(value)
    return f"{kind.name}:{qualifier}" if qualifier else kind.name
