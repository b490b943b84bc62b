"""One transaction for a group of jobs: dedup, digest collisions, rejections, counters."""

from __future__ import annotations

from collections import Counter
from typing import Any

from omnicanal.collect.segment import Row, dedup_key
from omnicanal.collect.writer.dedup import RecentMessages
from omnicanal.collect.writer.job import Job
from omnicanal.collect.writer.rows import REJECT_COLUMNS, rejection_values

_COUNTER_UPSERT = (
    "INSERT INTO collect_counter (source_id, name, count) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (source_id, name) DO UPDATE SET count = collect_counter.count + excluded.count"
)
_OWNER = (
    "SELECT source_id, message_id FROM collect_event WHERE dedup_time = {p} AND dedup_key = {p}"
)


def _counts(jobs: list[Job], stored: set[tuple[int, int]]) -> Counter[tuple[int, str]]:
    """Count what was really stored per source and type, and set each job's count."""
    if len(stored) == sum(len(job.rows) for job in jobs):  # every row is new
        counts = Counter((job.source_id, row.type) for job in jobs for row in job.rows)
        for job in jobs:
            job.stored = len(job.rows)
            if job.rejections:
                counts[(job.source_id, "rejected")] += len(job.rejections)
        return counts
    counts = Counter()
    seen: set[tuple[int, int]] = set()
    for job in jobs:
        job.stored = 0
        for row in job.rows:
            key = row.key
            if key in seen or key not in stored:
                continue
            seen.add(key)
            counts[(job.source_id, row.type)] += 1
            job.stored += 1
        if job.rejections:
            counts[(job.source_id, "rejected")] += len(job.rejections)
    return counts


class Batch:
    """One transaction for a group of jobs; subclasses speak each database's dialect."""

    param = "?"

    def __init__(self, conn: Any, jobs: list[Job], recent: RecentMessages) -> None:
        self.conn = conn
        self.cur = conn.cursor()
        self.jobs = jobs
        self.recent = recent

    def _pairs(self) -> list[tuple[int, Row]]:
        """Return the rows to insert, less messages resent under a known messageId."""
        pairs = [(job.source_id, row) for job in self.jobs for row in job.rows]
        keys = {row.dedup_key for _, row in pairs}
        if len(keys) == len(pairs) and not self.recent.known(keys):
            return pairs  # the usual case: nothing seen before, nothing twice
        return self._pairs_checked()

    def _pairs_checked(self) -> list[tuple[int, Row]]:
        pairs: list[tuple[int, Row]] = []
        in_group: dict[int, tuple[int, str]] = {}
        for job in self.jobs:
            for row in job.rows:
                if self._resent(job.source_id, row):
                    continue
                earlier = in_group.setdefault(row.dedup_key, (row.dedup_time, row.message_id))
                if earlier[0] != row.dedup_time and earlier[1] == row.message_id:
                    continue
                pairs.append((job.source_id, row))
        return pairs

    def _resent(self, source_id: int, row: Row) -> bool:
        """Tell if the window holds this messageId under another client time."""
        known = self.recent.time_of(row.dedup_key)
        if known is None or known == row.dedup_time:
            return False
        return self._owner_at(known, row.dedup_key) == (source_id, row.message_id)

    def _remember(self, pairs: list[tuple[int, Row]], stored: set[tuple[int, int]]) -> None:
        if len(stored) == len(pairs):  # every row new: no lookup per row
            rows = [row for _, row in pairs]
        else:
            rows = [row for _, row in pairs if (row.dedup_time, row.dedup_key) in stored]
        self.recent.add_many([r.dedup_key for r in rows], [r.dedup_time for r in rows])

    def _owner_at(self, dedup_time: int, key: int) -> tuple[int, str] | None:
        self.cur.execute(_OWNER.format(p=self.param), (dedup_time, key))
        found = self.cur.fetchone()
        return None if found is None else (found[0], found[1])

    def _owner(self, row: Row) -> tuple[int, str] | None:
        return self._owner_at(row.dedup_time, row.dedup_key)

    def _salted(self, source_id: int, row: Row) -> bool:
        """Give a message whose 64-bit digest another one holds a free key; False on a retry."""
        salt = 1
        while True:
            row.dedup_key = dedup_key(source_id, row.message_id, salt)
            owner = self._owner(row)
            if owner == (source_id, row.message_id):
                return False
            if owner is None:
                return True
            salt += 1

    def _collided(self, source_id: int, row: Row) -> bool:
        owner = self._owner(row)
        return owner is not None and owner != (source_id, row.message_id)

    def _finish(self, stored: set[tuple[int, int]]) -> None:
        sqlite = self.param == "?"
        rejections = [rejection_values(r, sqlite) for job in self.jobs for r in job.rejections]
        if rejections:
            marks = ", ".join([self.param] * 9)
            self.cur.executemany(
                f"INSERT INTO collect_rejected_event ({REJECT_COLUMNS}) VALUES ({marks})",
                rejections,
            )
        counts = sorted(_counts(self.jobs, stored).items())
        if counts:
            self.cur.executemany(
                _COUNTER_UPSERT.format(p=self.param), [(s, n, c) for (s, n), c in counts]
            )
