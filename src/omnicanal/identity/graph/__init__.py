"""Deterministic identity resolution: which profile an event's identifiers belong to.

The graph is worked on in memory inside the processor's transaction and written
back at `flush()`. Rules, in the order they apply to an event's identifiers
(sorted by priority: user_id, card, email, phone, external ids, anonymous_id):

1. Blocked values (a shop's generic till address, placeholder phone numbers) are
   not identifiers at all.
2. Every known, unshared identifier names a profile. If they name several, the
   profiles are one person and are merged (the oldest survives) — unless the
   merge would give the person more values of a limited kind than allowed
   (`limits`: by default one userId, two loyalty cards, five emails, five phones).
   Then the join is refused and recorded as a conflict; a shareable identifier
   (email, phone) that bridged two people is marked *shared*: it never joins
   profiles again, and the people it linked become a household.
3. A shareable identifier given with a first name that cannot be the first name of the
   profile it names (`omnicanal.identity.names`: slips, initials, compound names and
   swapped fields allowed) is someone else's: a family member giving the household's
   e-mail at the till. It does not join them: it is marked shared, the two people become
   a household, and the record goes to the profile its other identifiers name, or to a
   new one.
4. New identifiers are attached to the profile; if the event's top identifier is
   new and the profile already holds its limit of that kind (a second userId on
   one browser), the event belongs to a new person.
5. No known identifier: a new profile.

Each event is attached to the profile that owns the identifier which recognised
it (a member of the cluster, not the root), so undoing a merge moves back exactly
the events, identifiers and orders that came with the merged profile.

The package follows the graph's parts: `rules` (keys, names, the compiled guard rails),
`cache` (what a processor remembers between batches), `rails` (joins checked against
the rules), `resolve` (the rules above, event by event), `write` (`flush()`) and
`household` (linking people who share an identifier).
"""

from __future__ import annotations

from omnicanal.identity.graph.household import link_household
from omnicanal.identity.graph.resolve import Resolver
from omnicanal.identity.graph.rules import (
    PRIORITY,
    SEEN_GRANULARITY_MS,
    IdentityRules,
    Key,
    Name,
    kind_class,
)
from omnicanal.identity.graph.write import Writer

__all__ = [
    "PRIORITY",
    "SEEN_GRANULARITY_MS",
    "Graph",
    "IdentityRules",
    "Key",
    "Name",
    "kind_class",
    "link_household",
]


class Graph(Resolver, Writer):
    """The identity graph as one processor sees it; caches survive between batches."""
