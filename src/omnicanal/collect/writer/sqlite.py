"""The SQLite batch: INSERT OR IGNORE of many rows per statement."""

from __future__ import annotations

from functools import cache
from itertools import chain

from omnicanal.collect.segment import Row
from omnicanal.collect.writer.batch import Batch
from omnicanal.collect.writer.rows import EVENT_COLUMNS, values
from omnicanal.store.engine import begin_immediate

# The most rows one INSERT takes. A group is cut into statements of 1024, 512, ... rows,
# as the binary digits of its size: eleven statement texts, each compiled once and kept
# in sqlite3's statement cache. Compiling a statement costs about 2 us per row; a
# statement per group size compiled anew cost 40 % more CPU than these (measured).
CHUNK_ROWS = 1024
_ONE_ROW = "(" + ", ".join("?" * 11) + ")"


@cache
def _insert_sql(rows: int) -> str:
    return f"INSERT OR IGNORE INTO collect_event ({EVENT_COLUMNS}) VALUES " + ", ".join(
        [_ONE_ROW] * rows
    )


def chunks(total: int, largest: int) -> list[tuple[int, int]]:
    """Cut `total` rows into (start, size) runs of powers of two no larger than `largest`."""
    runs: list[tuple[int, int]] = []
    start, size = 0, largest
    while start < total:
        while size > total - start:
            size //= 2
        runs.append((start, size))
        start += size
    return runs


class SqliteBatch(Batch):
    """SQLite: multi-row INSERT OR IGNORE; one statement's new rows have consecutive ids."""

    _INSERT = (
        f"INSERT OR IGNORE INTO collect_event ({EVENT_COLUMNS}) VALUES ({', '.join('?' * 11)})"
    )

    def write(self) -> None:
        cur = self.cur
        begin_immediate(cur)
        try:
            pairs = self._pairs()
            stored = self._insert(pairs)
            self._finish(stored)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._remember(pairs, stored)

    def _insert_many(self, pairs: list[tuple[int, Row]]) -> set[tuple[int, int]] | None:
        """Insert rows, many per statement; return the keys stored, or None when all were.

        A few statements per group (`chunks`): sqlite3 binds each one's values in C and
        steps it with the GIL released, so the writer waits for the interpreter a few
        times per group. `executemany` waits for it again after every row, and a JSON
        array read by `json_each` made SQLite parse every row eleven times: twice the CPU
        of this (docs/benchmarks.md).
        """
        missing: set[tuple[int, int]] | None = None
        for start, size in chunks(len(pairs), CHUNK_ROWS):
            chunk = pairs[start : start + size]
            params = list(chain.from_iterable(values(s, r) for s, r in chunk))
            self.cur.execute(_insert_sql(size), params)
            new = int(self.cur.rowcount)
            if new == len(chunk):
                continue
            # Under the write lock one statement's new rows take consecutive ids ending
            # at the last one inserted: no `max(id)` read (one GIL round trip) beforehand.
            inserted: set[tuple[int, int]] = set()
            if new:
                self.cur.execute(
                    "SELECT dedup_time, dedup_key FROM collect_event WHERE id > ?",
                    (self.cur.lastrowid - new,),
                )
                inserted = {(t, k) for t, k in self.cur.fetchall()}
            missing = missing or set()
            missing.update(row.key for _, row in chunk if row.key not in inserted)
        return missing

    def _insert(self, pairs: list[tuple[int, Row]]) -> set[tuple[int, int]]:
        """Insert the rows; return the keys really stored."""
        missing = self._insert_many(pairs)
        stored = {row.key for _, row in pairs}
        if missing is None:
            return stored
        return self._resolve(stored - missing, pairs)

    def _resolve(
        self, inserted: set[tuple[int, int]], pairs: list[tuple[int, Row]]
    ) -> set[tuple[int, int]]:
        """Tell retries from digest collisions; store each collision under a salted key."""
        for source_id, row in pairs:
            if row.key in inserted or not self._collided(source_id, row):
                continue
            if self._salted(source_id, row):
                self.cur.execute(self._INSERT, values(source_id, row))
                inserted.add(row.key)
        return inserted

    def append(self) -> list[Row]:
        """Insert the rows inside the caller's open transaction, no commit; return the new."""
        pairs = self._pairs()
        stored = self._insert(pairs)
        self._finish(stored)
        return [row for _, row in pairs if row.key in stored]
