"""Resolution: which profile an event belongs to, by the rules of the package docstring.

The steps here decide; the guard rails (`rails`) carry each join out or refuse it.
"""

from __future__ import annotations

from sqlalchemy import text

from omnicanal.identity.graph.rails import GuardRails
from omnicanal.identity.graph.rules import NO_NAME, SEEN_GRANULARITY_MS, Key, Name, kind_class
from omnicanal.identity.names import other_person


class Resolver(GuardRails):
    """The graph's event resolution and profile creation."""

    def resolve(
        self,
        event_id: int,
        keys: list[Key],
        at_ms: int,
        source_id: int,
        *,
        alias: bool = False,
        name: Name = NO_NAME,
    ) -> int:
        """Return the profile an event belongs to, joining and creating as the rules say.

        `keys` are normalised identifiers sorted by priority; call `prefetch` first.
        `name` is the first and last name the event gives, if any.
        """
        keys = [k for k in keys if not self.rules.is_blocked(k)]
        known, unknown, holders = self._classify(keys, at_ms)
        disputed = [(k, pid) for k, pid in known if self._someone_else(k, pid, name)]
        known = [pair for pair in known if pair not in disputed]
        anchor = None
        if unknown and known and unknown[0] == keys[0]:
            anchor = self._another_person(event_id, unknown[0], known, at_ms)
        if anchor is None and known:
            anchor = self._join(event_id, known, "alias" if alias else "shared_identifier")
        if anchor is None:
            anchor = self._new_profile(at_ms)
        self._keep_apart(disputed, holders, anchor, event_id, name)
        for key in unknown:
            root = self.root(anchor)
            if self._can_attach(root, key):
                self._attach(key, anchor, root, source_id, at_ms)
            else:
                reason = f"{key[0]} limit of {self.rules.limit(key[0])} per person reached"
                self._conflict(key, [root], event_id, reason)
        return anchor

    def _classify(
        self, keys: list[Key], at_ms: int
    ) -> tuple[list[tuple[Key, int]], list[Key], list[Key]]:
        """Split an event's identifiers into known ones (with their profile), unknown ones
        and shared ones, moving the last sighting of the known ones forward."""
        known: list[tuple[Key, int]] = []
        unknown: list[Key] = []
        holders: list[Key] = []  # shared identifiers: the event's person joins their household
        for key in keys:
            entry = self._ident.get(key)
            if entry is None:
                unknown.append(key)
            elif entry.shared:
                holders.append(key)
            else:
                known.append((key, entry.profile_id))
                if at_ms > entry.last_seen_ms + SEEN_GRANULARITY_MS:
                    entry.last_seen_ms = at_ms
                    self._pending.seen[key] = at_ms
        return known, unknown, holders

    def _keep_apart(
        self,
        disputed: list[tuple[Key, int]],
        holders: list[Key],
        anchor: int,
        event_id: int,
        name: Name,
    ) -> None:
        """Refuse the identifiers given under another name, link the person to the
        households of the shared identifiers they gave, remember the anchor's name."""
        for key in holders:
            if kind_class(key[0]) in self.rules.shareable:
                self._household(key, anchor)
        for key, pid in disputed:
            if self.root(pid) != self.root(anchor):
                reason = f"{key[0]} given under another first name; it no longer joins profiles"
                self._refuse(key, self.root(pid), self.root(anchor), event_id, reason)
        if name[0] and (cached := self._names.get(anchor)) is not None and not cached[0]:
            self._names[anchor] = name  # a profile of this batch, or named for the first time

    def _someone_else(self, key: Key, profile_id: int, name: Name) -> bool:
        """True when a shareable identifier is given under a first name its profile (or,
        without a name, its person) cannot have: someone else's, used for them."""
        if not name[0] or kind_class(key[0]) not in self.rules.shareable:
            return False
        known = self._name_of(profile_id)
        if not known[0]:
            known = self._name_of(self.root(profile_id))
        return other_person(name[0], name[1], known[0], known[1])

    def _another_person(
        self, event_id: int, top: Key, known: list[tuple[Key, int]], at_ms: int
    ) -> int | None:
        """A new top identifier of a kind the known profile already has its fill of (a second
        userId on one browser) belongs to another person: return their new profile."""
        first_root = self.root(known[0][1])
        if self._can_attach(first_root, top):
            return None
        created = self._new_profile(at_ms)
        for key, pid in known:
            other = self.root(pid)
            if kind_class(key[0]) in self.rules.shareable:
                self._refuse(key, other, created, event_id)
            else:
                self._conflict(
                    key, [other, created], event_id, f"{key[0]} seen with another {top[0]}"
                )
        return created

    def _join(self, event_id: int, known: list[tuple[Key, int]], rule: str) -> int:
        """Merge the profiles the known identifiers name; return the anchor profile."""
        anchor = known[0][1]
        for key, pid in known[1:]:
            root, other = self.root(anchor), self.root(pid)
            if other == root:
                continue
            if self._compatible(root, other):
                evidence = {"kind": key[0], "value": key[1], "event_id": event_id}
                self._merge(root, other, rule, evidence)
            else:
                self._refuse(key, root, other, event_id)
        return anchor

    def _new_profile(self, at_ms: int) -> int:
        pid = self._allocate()
        self._root[pid] = pid
        self._kinds[pid] = {}
        self._names[pid] = NO_NAME
        self._pending.profiles.append(
            {
                "id": pid,
                "created_ms": self.now_ms,
                "updated_ms": self.now_ms,
                "first_seen_ms": at_ms,
                "last_seen_ms": at_ms,
            }
        )
        return pid

    def _allocate(self) -> int:
        if self.conn.dialect.name == "sqlite":
            pid = self._next_id
            self._next_id += 1
            return pid
        if not self._spare_ids:
            rows = self.conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('profile', 'id')) "
                    "FROM generate_series(1, 256)"
                )
            )
            self._spare_ids = sorted((int(r[0]) for r in rows), reverse=True)
        return self._spare_ids.pop()
