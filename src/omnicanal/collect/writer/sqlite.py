"""The SQLite batch: INSERT OR IGNORE of many rows per statement."""

from __future__ import annotations

from itertools import chain

from omnicanal.collect.segment import Row
from omnicanal.collect.writer.batch import Batch
from omnicanal.collect.writer.rows import EVENT_COLUMNS, values
from omnicanal.store.engine import begin_immediate

# Rows per INSERT: one statement binds its values in C and runs with the GIL released.
CHUNK_ROWS = 500
_ONE_ROW = "(" + ", ".join("?" * 11) + ")"


def _insert_sql(rows: int) -> str:
    return f"INSERT OR IGNORE INTO collect_event ({EVENT_COLUMNS}) VALUES " + ", ".join(
        [_ONE_ROW] * rows
    )


_FULL_INSERT = _insert_sql(CHUNK_ROWS)


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

        One statement per `CHUNK_ROWS` rows: sqlite3 binds its values in C and steps it
        with the GIL released, so the writer hands the interpreter back to the event loop
        a few times per group. `executemany` waits for the GIL again after every row, and
        a JSON array read by `json_each` made SQLite parse every row eleven times: twice
        the CPU of this (docs/benchmarks.md).
        """
        missing: set[tuple[int, int]] | None = None
        for start in range(0, len(pairs), CHUNK_ROWS):
            chunk = pairs[start : start + CHUNK_ROWS]
            sql = _FULL_INSERT if len(chunk) == CHUNK_ROWS else _insert_sql(len(chunk))
            self.cur.execute(sql, list(chain.from_iterable(values(s, r) for s, r in chunk)))
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
