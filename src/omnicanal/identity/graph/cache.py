"""The graph's memory: what one processor knows of identifiers, roots and names.

The caches survive between batches, so a busy identifier is read from the database once;
what a batch changes waits in `Pending` until `flush()` writes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, text

from omnicanal.identity.graph.rules import CHUNK, NO_NAME, IdentityRules, Key, Name, kind_class


@dataclass(slots=True)
class Ident:
    """A known identifier: the profile it names, and whether it is shared."""

    profile_id: int
    shared: bool
    last_seen_ms: int


@dataclass(slots=True)
class Pending:
    """What the batch changed, waiting to be written by `flush()`."""

    profiles: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[Key, int] = field(default_factory=dict)
    merges: list[dict[str, Any]] = field(default_factory=list)
    shared: list[Key] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    households: list[tuple[str, int, str]] = field(default_factory=list)
    household_seen: set[tuple[str, int]] = field(default_factory=set)


class GraphCache:
    """The graph's state and the batch lifecycle: begin, prefetch, look up roots and names."""

    def __init__(self, rules: IdentityRules, *, cache_limit: int = 1_000_000) -> None:
        self.rules = rules
        self.cache_limit = cache_limit
        self._ident: dict[Key, Ident | None] = {}
        self._root: dict[int, int] = {}
        self._forward: dict[int, int] = {}
        self._kinds: dict[int, dict[str, set[str]]] = {}
        self._names: dict[int, Name] = {}
        self._next_id = 0
        self._spare_ids: list[int] = []
        self._pending = Pending()
        self._conn: Connection | None = None
        self._none_undone = False  # known for this batch only (`prepare_merges`)
        self.now_ms = 0

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
        self._pending = Pending()
        self._none_undone = False
        if conn.dialect.name == "sqlite":
            self._next_id = (
                int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM profile")).scalar_one()) + 1
            )
            self._spare_ids.clear()

    @property
    def conn(self) -> Connection:
        """Return the connection of the batch under way."""
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
            for start in range(0, len(values), CHUNK):
                rows = self.conn.execute(
                    query, {"kind": kind, "values": values[start : start + CHUNK]}
                )
                for value, profile_id, shared, last_seen in rows:
                    self._ident[(kind, value)] = Ident(int(profile_id), bool(shared), last_seen)
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
        for start in range(0, len(wanted), CHUNK):
            for pid, merged_into in self.conn.execute(
                query, {"ids": wanted[start : start + CHUNK]}
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

    def _name_of(self, profile_id: int) -> Name:
        found = self._names.get(profile_id)
        if found is None:
            self._load_names([profile_id])
            found = self._names.get(profile_id, NO_NAME)
        return found

    def _load_names(self, ids: Iterable[int]) -> None:
        wanted = [i for i in set(ids) if i not in self._names]
        query = text("SELECT id, first_name, last_name FROM profile WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            for pid in chunk:
                self._names[pid] = NO_NAME  # new in this batch, or never named
            for pid, first, last in self.conn.execute(query, {"ids": chunk}):
                self._names[int(pid)] = (first, last)
