"""The guard rails: attach, merge or refuse, and record why.

Every change to who is whom goes through here, so the limits per person, the merges
undone by hand and the shared identifiers hold for events, matching and review alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import bindparam, text

from omnicanal.identity.graph.cache import GraphCache, Ident
from omnicanal.identity.graph.rules import CHUNK, Key, kind_class
from omnicanal.identity.service import members, separated


class GuardRails(GraphCache):
    """The graph's joins, each checked against the rules; refusals become conflicts."""

    def _cluster_kinds(self, root: int) -> dict[str, set[str]]:
        """Return the limited-kind values a cluster holds (loaded once, then kept current).

        Only the store needs reading: an identity attached in this batch went into its
        cluster's entry as it was attached (`_attach`), and a merge folds the merged
        cluster's entry into the survivor's. The entries are only forgotten between
        batches. Looking through the batch's pending identities on each miss, as this
        once did, cost a batch of 2,000 customer-file identifies seconds when the
        cache had just been cleared (a store of a million people).
        """
        found = self._kinds.get(root)
        if found is None:
            self._load_kinds([root])
            found = self._kinds[root]
        return found

    def _load_kinds(self, roots: list[int]) -> None:
        """Read the limited-kind values each of these clusters holds into the cache."""
        limited = list(self.rules.limits)
        query = text(
            "SELECT p.id, p.merged_into, i.kind, i.value FROM identity i "
            "JOIN profile p ON p.id = i.profile_id "
            "WHERE (p.id IN :roots OR p.merged_into IN :roots) AND i.shared = :no"
        ).bindparams(bindparam("roots", expanding=True))
        for start in range(0, len(roots), CHUNK):
            chunk = roots[start : start + CHUNK]
            found: dict[int, dict[str, set[str]]] = {root: {} for root in chunk}
            for pid, merged_into, kind, value in self.conn.execute(
                query, {"roots": chunk, "no": False}
            ):
                if kind in limited or kind_class(kind) in limited:
                    owner = int(pid) if int(pid) in found else int(merged_into)
                    found[owner].setdefault(kind, set()).add(value)
            self._kinds.update(found)

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
        if self._none_undone:
            return True
        return not separated(self.conn, self._members(a), self._members(b))

    def prepare_merges(self, profile_ids: Iterable[int]) -> None:
        """Read at once what merging these profiles' clusters will look up.

        Their roots and the limited identifiers each cluster holds, in a few queries
        instead of several per merge; and whether any merge was ever undone: while
        none was, no two clusters can have been separated by hand. For matching, which
        merges thousands of pairs in one batch (at a million people, row by row, this
        took most of its merging time).
        """
        ids = set(profile_ids)
        self._load_roots(ids - self._root.keys())
        self._load_kinds(sorted({self.root(i) for i in ids} - self._kinds.keys()))
        undone = text("SELECT 1 FROM identity_merge WHERE undone_ms IS NOT NULL LIMIT 1")
        self._none_undone = self.conn.execute(undone).first() is None

    def _members(self, root: int) -> list[int]:
        found = set(members(self.conn, root)) | {root}
        found |= {m for m, s in self._forward.items() if self.root(s) == root}
        return sorted(found)

    def _attach(self, key: Key, profile_id: int, root: int, source_id: int, at_ms: int) -> None:
        self._ident[key] = Ident(profile_id, False, at_ms)
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
