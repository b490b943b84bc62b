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
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, text

from omnicanal.core.settings import IdentitySettings
from omnicanal.identity.names import other_person
from omnicanal.identity.service import members, separated
from omnicanal.store.bulk import insert_rows

Key = tuple[str, str]
#: A first and a last name, normalised (`normalise_name`); None where not given.
Name = tuple[str | None, str | None]
_NO_NAME: Name = (None, None)

# An identifier's last_seen_ms moves in steps of at least this much, which spares the
# processor an update per event for identifiers seen again and again within a visit.
SEEN_GRANULARITY_MS = 3_600_000
PRIORITY = ("user_id", "card", "email", "phone", "external", "anonymous_id")
_CHUNK = 500


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


@dataclass(slots=True)
class _Ident:
    profile_id: int
    shared: bool
    last_seen_ms: int
    new: bool = False


@dataclass(slots=True)
class _Pending:
    profiles: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[Key, int] = field(default_factory=dict)
    merges: list[dict[str, Any]] = field(default_factory=list)
    shared: list[Key] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    households: list[tuple[str, int, str]] = field(default_factory=list)
    household_seen: set[tuple[str, int]] = field(default_factory=set)


class Graph:
    """The identity graph as one processor sees it; caches survive between batches."""

    def __init__(self, rules: IdentityRules, *, cache_limit: int = 1_000_000) -> None:
        self.rules = rules
        self.cache_limit = cache_limit
        self._ident: dict[Key, _Ident | None] = {}
        self._root: dict[int, int] = {}
        self._forward: dict[int, int] = {}
        self._kinds: dict[int, dict[str, set[str]]] = {}
        self._names: dict[int, Name] = {}
        self._next_id = 0
        self._spare_ids: list[int] = []
        self._pending = _Pending()
        self._conn: Connection | None = None
        self.now_ms = 0

    # -- batch lifecycle -------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget every cached fact (another writer changed the graph)."""
        self._ident.clear()
        self._root.clear()
        self._forward.clear()
        self._kinds.clear()
        self._names.clear()
        self._spare_ids.clear()

    def begin(self, conn: Connection, now_ms: int) -> None:
        """Start work inside the caller's transaction."""
        if max(len(self._ident), len(self._root), len(self._names)) > self.cache_limit:
            self.invalidate()
        self._conn = conn
        self.now_ms = now_ms
        self._pending = _Pending()
        if conn.dialect.name == "sqlite":
            self._next_id = (
                int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM profile")).scalar_one()) + 1
            )
            self._spare_ids.clear()

    @property
    def conn(self) -> Connection:
        assert self._conn is not None, "begin() first"
        return self._conn

    def prefetch(self, keys: Iterable[Key]) -> None:
        """Load the identifiers not in the cache, and the roots of their profiles."""
        missing = [k for k in set(keys) if k not in self._ident]
        by_kind: dict[str, list[str]] = {}
        for kind, value in missing:
            by_kind.setdefault(kind, []).append(value)
            self._ident[(kind, value)] = None
        query = text(
            "SELECT value, profile_id, shared, last_seen_ms FROM identity "
            "WHERE kind = :kind AND value IN :values"
        ).bindparams(bindparam("values", expanding=True))
        for kind, values in by_kind.items():
            for start in range(0, len(values), _CHUNK):
                rows = self.conn.execute(
                    query, {"kind": kind, "values": values[start : start + _CHUNK]}
                )
                for value, profile_id, shared, last_seen in rows:
                    self._ident[(kind, value)] = _Ident(int(profile_id), bool(shared), last_seen)
        self._load_roots(
            {e.profile_id for k in missing if (e := self._ident[k]) is not None} - self._root.keys()
        )
        shareable = self.rules.shareable
        self._load_names(
            e.profile_id
            for k in missing
            if kind_class(k[0]) in shareable and (e := self._ident[k]) is not None
        )

    def _load_roots(self, ids: Iterable[int]) -> None:
        wanted = list(ids)
        query = text("SELECT id, merged_into FROM profile WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        for start in range(0, len(wanted), _CHUNK):
            for pid, merged_into in self.conn.execute(
                query, {"ids": wanted[start : start + _CHUNK]}
            ):
                self._root[int(pid)] = int(merged_into) if merged_into is not None else int(pid)

    def root(self, profile_id: int) -> int:
        """Return the root of a profile's cluster."""
        found = self._root.get(profile_id)
        if found is None:
            self._load_roots([profile_id])
            found = self._root.get(profile_id, profile_id)
        while found in self._forward:
            found = self._forward[found]
        return found

    # -- resolution ------------------------------------------------------------------

    def resolve(
        self,
        event_id: int,
        keys: list[Key],
        at_ms: int,
        source_id: int,
        *,
        alias: bool = False,
        name: Name = _NO_NAME,
    ) -> int:
        """Return the profile an event belongs to, joining and creating as the rules say.

        `keys` are normalised identifiers sorted by priority; call `prefetch` first.
        `name` is the first and last name the event gives, if any.
        """
        keys = [k for k in keys if not self.rules.is_blocked(k)]
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

    def _name_of(self, profile_id: int) -> Name:
        found = self._names.get(profile_id)
        if found is None:
            self._load_names([profile_id])
            found = self._names.get(profile_id, _NO_NAME)
        return found

    def _load_names(self, ids: Iterable[int]) -> None:
        wanted = [i for i in set(ids) if i not in self._names]
        query = text("SELECT id, first_name, last_name FROM profile WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            for pid in chunk:
                self._names[pid] = _NO_NAME  # new in this batch, or never named
            for pid, first, last in self.conn.execute(query, {"ids": chunk}):
                self._names[int(pid)] = (first, last)

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
        self._names[pid] = _NO_NAME
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

    def _cluster_kinds(self, root: int) -> dict[str, set[str]]:
        """Return the limited-kind values a cluster holds (loaded once, then kept current)."""
        found = self._kinds.get(root)
        if found is not None:
            return found
        limited = list(self.rules.limits)
        kinds: dict[str, set[str]] = {}
        rows = self.conn.execute(
            text(
                "SELECT i.kind, i.value FROM identity i JOIN profile p ON p.id = i.profile_id "
                "WHERE (p.id = :root OR p.merged_into = :root) AND i.shared = :no"
            ),
            {"root": root, "no": False},
        )
        for kind, value in rows:
            if kind in limited or kind_class(kind) in limited:
                kinds.setdefault(kind, set()).add(value)
        for ident in self._pending.identities:  # attached in this batch, not yet written
            if (
                self.root(ident["profile_id"]) == root
                and self.rules.limit(ident["kind"]) is not None
            ):
                kinds.setdefault(ident["kind"], set()).add(ident["value"])
        self._kinds[root] = kinds
        return kinds

    def _can_attach(self, root: int, key: Key) -> bool:
        limit = self.rules.limit(key[0])
        if limit is None:
            return True
        values = self._cluster_kinds(root).get(key[0], set())
        return key[1] in values or len(values) < limit

    def _compatible(self, a: int, b: int) -> bool:
        kinds_a, kinds_b = self._cluster_kinds(a), self._cluster_kinds(b)
        for kind in kinds_a.keys() | kinds_b.keys():
            limit = self.rules.limit(kind)
            if (
                limit is not None
                and len(kinds_a.get(kind, set()) | kinds_b.get(kind, set())) > limit
            ):
                return False
        # A merge someone undid by hand is never redone automatically.
        return not separated(self.conn, self._members(a), self._members(b))

    def _members(self, root: int) -> list[int]:
        found = set(members(self.conn, root)) | {root}
        found |= {m for m, s in self._forward.items() if self.root(s) == root}
        return sorted(found)

    def _attach(self, key: Key, profile_id: int, root: int, source_id: int, at_ms: int) -> None:
        self._ident[key] = _Ident(profile_id, False, at_ms, new=True)
        self._pending.identities.append(
            {
                "kind": key[0],
                "value": key[1],
                "profile_id": profile_id,
                "source_id": source_id,
                "first_seen_ms": at_ms,
                "last_seen_ms": at_ms,
                "shared": False,
            }
        )
        if self.rules.limit(key[0]) is not None:
            self._cluster_kinds(root).setdefault(key[0], set()).add(key[1])

    def _merge(self, a: int, b: int, rule: str, evidence: dict[str, Any]) -> int:
        survivor, merged = (a, b) if a < b else (b, a)
        kinds_s, kinds_m = self._cluster_kinds(survivor), self._cluster_kinds(merged)
        for kind, values in kinds_m.items():
            kinds_s.setdefault(kind, set()).update(values)
        self._kinds.pop(merged, None)
        self._forward[merged] = survivor
        self._pending.merges.append(
            {
                "survivor_id": survivor,
                "merged_id": merged,
                "rule": rule,
                "evidence": orjson.dumps(evidence).decode(),
                "created_ms": self.now_ms,
            }
        )
        return survivor

    def _refuse(
        self, key: Key, root: int, other: int, event_id: int, reason: str | None = None
    ) -> None:
        if kind_class(key[0]) not in self.rules.shareable:
            reason = reason or "joining would exceed an identifier limit"
        else:
            entry = self._ident[key]
            assert entry is not None
            entry.shared = True
            self._pending.shared.append(key)
            reason = reason or f"{key[0]} shared by several people; it no longer joins profiles"
            for pid in (entry.profile_id, root, other):
                self._household(key, pid)
        self._conflict(key, [root, other], event_id, reason)

    def _household(self, key: Key, profile_id: int) -> None:
        """Link a profile's person to the household a shared identifier names."""
        member = (f"{key[0]}:{key[1]}", self.root(profile_id))
        if member not in self._pending.household_seen:
            self._pending.household_seen.add(member)
            evidence = orjson.dumps({"kind": key[0], "value": key[1]}).decode()
            self._pending.households.append((*member, evidence))

    def _conflict(self, key: Key, profiles: list[int], event_id: int, reason: str) -> None:
        self._pending.conflicts.append(
            {
                "kind": key[0],
                "value": key[1],
                "profile_ids": orjson.dumps(sorted(set(profiles))).decode(),
                "reason": reason,
                "event_id": event_id,
                "created_ms": self.now_ms,
            }
        )

    def merge_profiles(self, a: int, b: int, rule: str, evidence: dict[str, Any]) -> str:
        """Merge two profiles' clusters under the guard rails (used by matching and review).

        Returns `merged`, `same` (already one person) or `refused` (a limit, or a merge
        someone undid by hand, stands in the way; the refusal is recorded).
        """
        root_a, root_b = self.root(a), self.root(b)
        if root_a == root_b:
            return "same"
        if not self._compatible(root_a, root_b):
            self._pending.conflicts.append(
                {
                    "kind": rule,
                    "value": f"{a}~{b}",
                    "profile_ids": orjson.dumps(sorted({root_a, root_b})).decode(),
                    "reason": "a match would join people the guard rails keep apart",
                    "event_id": None,
                    "created_ms": self.now_ms,
                }
            )
            return "refused"
        self._merge(root_a, root_b, rule, evidence)
        return "merged"

    # -- writing ---------------------------------------------------------------------

    def flush(self) -> list[int]:
        """Write what this batch changed; return the ids of the profiles created."""
        pending, conn = self._pending, self.conn
        profile = ("id", "created_ms", "updated_ms", "first_seen_ms", "last_seen_ms")
        insert_rows(
            conn,
            "profile",
            (*profile, "event_count", "traits"),
            [(*(p[c] for c in profile), 0, "{}") for p in pending.profiles],
        )
        identity = ("kind", "value", "profile_id", "source_id", "first_seen_ms", "last_seen_ms")
        insert_rows(
            conn,
            "identity",
            (*identity, "shared"),
            [(*(i[c] for c in identity), i["shared"]) for i in pending.identities],
        )
        for ident in self._ident.values():
            if ident is not None:
                ident.new = False
        if pending.seen:
            conn.execute(
                text(
                    "UPDATE identity SET last_seen_ms = :at WHERE kind = :kind AND value = :value "
                    "AND last_seen_ms < :at"
                ),
                [{"kind": k, "value": v, "at": at} for (k, v), at in pending.seen.items()],
            )
        for merge in pending.merges:
            conn.execute(
                text(
                    "UPDATE profile SET merged_into = :s, updated_ms = :now "
                    "WHERE id = :m OR merged_into = :m"
                ),
                {"s": merge["survivor_id"], "m": merge["merged_id"], "now": self.now_ms},
            )
        if pending.merges:
            conn.execute(
                text(
                    "INSERT INTO identity_merge (survivor_id, merged_id, rule, evidence, "
                    "created_ms) VALUES (:survivor_id, :merged_id, :rule, :evidence, :created_ms)"
                ),
                pending.merges,
            )
        if pending.shared:
            conn.execute(
                text("UPDATE identity SET shared = :yes WHERE kind = :kind AND value = :value"),
                [{"yes": True, "kind": k, "value": v} for k, v in pending.shared],
            )
        if pending.conflicts:
            conn.execute(
                text(
                    "INSERT INTO identity_conflict (kind, value, profile_ids, reason, event_id, "
                    "created_ms) VALUES (:kind, :value, :profile_ids, :reason, :event_id, "
                    ":created_ms)"
                ),
                pending.conflicts,
            )
        for key, profile_id, evidence in pending.households:
            link_household(
                conn, key, profile_id, evidence, self.now_ms, limit=self.rules.household_limit
            )
        # Roots moved by merges are now in the database; keep the cache flat and forget
        # the batch's forwarding (the database answers for profiles not cached).
        for pid in list(self._root):
            self._root[pid] = self.root(pid)
        self._forward.clear()
        created = [p["id"] for p in pending.profiles]
        self._pending = _Pending()
        return created


def link_household(
    conn: Connection,
    key: str,
    profile_id: int,
    evidence: str,
    now_ms: int,
    *,
    limit: int | None = None,
) -> None:
    """Add a profile to the household named by `key` (created when new); idempotent.

    A household already holding `limit` people takes no more: an address or e-mail shared
    by that many is a building or a shop's, not a family's.
    """
    row = conn.execute(text("SELECT id FROM household WHERE key = :key"), {"key": key}).first()
    if row is None:
        household_id = conn.execute(
            text("INSERT INTO household (key, created_ms) VALUES (:key, :now) RETURNING id"),
            {"key": key, "now": now_ms},
        ).scalar_one()
    else:
        household_id = row[0]
        if limit is not None:
            size = conn.execute(
                text("SELECT COUNT(*) FROM household_member WHERE household_id = :h"),
                {"h": household_id},
            ).scalar_one()
            if size >= limit:
                return
    exists = conn.execute(
        text("SELECT 1 FROM household_member WHERE household_id = :h AND profile_id = :p"),
        {"h": household_id, "p": profile_id},
    ).first()
    if exists is None:
        conn.execute(
            text(
                "INSERT INTO household_member (household_id, profile_id, evidence, since) "
                "VALUES (:h, :p, :e, :since)"
            ),
            {
                "h": household_id,
                "p": profile_id,
                "e": evidence,
                "since": datetime.fromtimestamp(now_ms / 1000, UTC).date(),
            },
        )
