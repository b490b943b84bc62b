"""The SQLite batch: one JSON-fed INSERT OR IGNORE per group."""

from __future__ import annotations

from typing import Any

import orjson

from omnicanal.collect.segment import Row
from omnicanal.collect.writer.batch import Batch
from omnicanal.collect.writer.rows import EVENT_COLUMNS, values
from omnicanal.store.engine import begin_immediate

_JSON_INSERT = (
    f"INSERT OR IGNORE INTO collect_event ({EVENT_COLUMNS}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(11))
    + " FROM json_each(?)"
)


def _json_row(source_id: int, r: Row) -> tuple[Any, ...]:
    """A row for the JSON array; the payload goes in as the JSON object it already is.

    Sent as a string it would be decoded, escaped by orjson and unescaped by SQLite;
    as an `orjson.Fragment` orjson copies its bytes and SQLite's `json_extract` returns
    the object's text as written (tests/collect/test_writer.py checks it byte for byte).
    """
    return values(source_id, r, orjson.Fragment(r.payload))


class SqliteBatch(Batch):
    """SQLite: one INSERT OR IGNORE fed by a JSON array; its new rows have consecutive ids."""

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

    def _insert_many(self, pairs: list[tuple[int, Row]]) -> int:
        """Insert rows in one statement fed by one JSON array; return how many were new.

        orjson builds the array in C and SQLite reads it in C with the GIL released, so
        the writer thread barely competes with the event loop for the interpreter.
        """
        if not pairs:
            return 0
        rows = orjson.dumps([_json_row(source_id, row) for source_id, row in pairs])
        self.cur.execute(_JSON_INSERT, (rows,))
        return int(self.cur.rowcount)

    def _insert(self, pairs: list[tuple[int, Row]]) -> set[tuple[int, int]]:
        """Insert the rows; return the keys really stored."""
        new = self._insert_many(pairs)
        if new == len(pairs):
            return {row.key for _, row in pairs}
        inserted: set[tuple[int, int]] = set()
        if new:
            # Under the write lock one statement's new rows take consecutive ids ending
            # at the last one inserted: no `max(id)` read (one GIL round trip) beforehand.
            before = self.cur.lastrowid - new
            self.cur.execute(
                "SELECT dedup_time, dedup_key FROM collect_event WHERE id > ?", (before,)
            )
            inserted = {(t, k) for t, k in self.cur.fetchall()}
        return self._resolve(inserted, pairs)

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
