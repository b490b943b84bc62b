"""The graph's vocabulary and guard rails: identifier keys, names, and the compiled rules.

Kept apart from the graph itself so the rules can be read (and tested) without its
caches, and so every part of the graph shares one definition of a key and a name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from omnicanal.core.settings import IdentitySettings

Key = tuple[str, str]
#: A first and a last name, normalised (`normalise_name`); None where not given.
Name = tuple[str | None, str | None]
NO_NAME: Name = (None, None)

# An identifier's last_seen_ms moves in steps of at least this much, which spares the
# processor an update per event for identifiers seen again and again within a visit.
SEEN_GRANULARITY_MS = 3_600_000
PRIORITY = ("user_id", "card", "email", "phone", "external", "anonymous_id")
#: How many ids or values go into one `IN` list.
CHUNK = 500


def kind_class(kind: str) -> str:
    """Return the class of an identifier kind: `external:crm` -> `external`."""
    return kind.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """The compiled guard rails."""

    limits: Mapping[str, int]
    shareable: frozenset[str]
    blocked: re.Pattern[str] | None
    household_limit: int | None = None

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> IdentityRules:
        """Compile the settings once."""
        pattern = "|".join(f"(?:{p})" for p in settings.blocked)
        return cls(
            limits=dict(settings.limits),
            shareable=frozenset(settings.shareable),
            blocked=re.compile(pattern, re.IGNORECASE) if pattern else None,
            household_limit=settings.household_limit,
        )

    def is_blocked(self, key: Key) -> bool:
        """Tell whether a value is on the block list."""
        return self.blocked is not None and self.blocked.search(f"{key[0]}:{key[1]}") is not None

    def limit(self, kind: str) -> int | None:
        """Return how many values of a kind a person may have, None for no limit."""
        return self.limits.get(kind, self.limits.get(kind_class(kind)))
