"""The PostgreSQL batch: COPY into a staging table, then one INSERT ... ON CONFLICT."""

from __future__ import annotations

from typing import Any

from omnicanal.collect.segment import Row
from omnicanal.collect.writer.batch import Batch
from omnicanal.collect.writer.rows import EVENT_COLUMNS, values

# PostgreSQL advisory lock key held by whoever appends to the event log.
LOG_APPEND_LOCK = 0x6F6D6E69_6C6F67  # "omnilog"
# A group of at most this many rows is inserted with its values in the statement, in one
# round trip with the lock; a larger one is copied into the staging table first.
SMALL_GROUP = 64
_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_ONE_ROW = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS.split(","))) + ")"


class PostgresBatch(Batch):
    """PostgreSQL: COPY into a temporary table, then INSERT ... ON CONFLICT ... RETURNING.

    COPY streams the rows in psycopg's C code; passing them as arrays instead spent most
    of the writer's time adapting text arrays in Python. A small group (a `/v1/track` call
    alone in its commit) skips the staging table: its lock and insert go in one round
    trip, its counters and commit in another (psycopg's pipeline mode), where the staged
    way took six. A lone event's commit went from 0.95 to 0.54 ms (docs/benchmarks.md).
    """

    param = "%s"
    _STAGE = (
        "CREATE TEMP TABLE IF NOT EXISTS collect_event_in (source_id int, dedup_time bigint, "
        "dedup_key bigint, message_id text, type text, event text, user_id text, "
        "anonymous_id text, timestamp_ms bigint, received_ms bigint, payload text) "
        "ON COMMIT DELETE ROWS"
    )
    _COPY = f"COPY collect_event_in ({EVENT_COLUMNS}) FROM STDIN"
    _staged = False
    _INSERT = (
        f"INSERT INTO collect_event ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} "
        "FROM collect_event_in ON CONFLICT (dedup_time, dedup_key) DO NOTHING "
        "RETURNING dedup_time, dedup_key"
    )
    _INSERT_VALUES = (
        f"INSERT INTO collect_event ({EVENT_COLUMNS}) VALUES {{rows}} "
        "ON CONFLICT (dedup_time, dedup_key) DO NOTHING RETURNING dedup_time, dedup_key"
    )

    def _pipeline(self) -> Any:
        """psycopg's pipeline mode on this batch's connection: statements sent together."""
        return getattr(self.conn, "dbapi_connection", self.conn).pipeline()

    def write(self) -> None:
        try:
            pairs = self._pairs()
            stored = self._insert(pairs)
            for source_id, row in pairs:
                collided = row.key not in stored and self._collided(source_id, row)
                if collided and self._salted(source_id, row):
                    stored |= self._insert([(source_id, row)])
            with self._pipeline():
                self._finish(stored)
                self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        self._remember(pairs, stored)

    def _insert(self, pairs: list[tuple[int, Row]]) -> set[tuple[int, int]]:
        if not pairs:
            return set()
        if len(pairs) <= SMALL_GROUP:
            sql = self._INSERT_VALUES.format(rows=", ".join([_ONE_ROW] * len(pairs)))
            params = [v for source_id, row in pairs for v in values(source_id, row)]
            with self._pipeline():
                self.cur.execute(_LOCK, (LOG_APPEND_LOCK,))  # see below
                self.cur.execute(sql, params)
            return {(t, k) for t, k in self.cur.fetchall()}
        if self._staged:  # a second insert in this transaction
            self.cur.execute("DELETE FROM collect_event_in")
        else:
            self.cur.execute(self._STAGE)
            self._staged = True
        with self.cur.copy(self._COPY) as copy:
            for source_id, row in pairs:
                copy.write_row(values(source_id, row))
        # Writers in several processes take turns from id allocation to commit, so ids
        # become visible in order and a reader that checkpoints by id never skips one.
        self.cur.execute(_LOCK, (LOG_APPEND_LOCK,))
        self.cur.execute(self._INSERT)
        return {(t, k) for t, k in self.cur.fetchall()}

    def append(self) -> list[Row]:
        """Insert the rows inside the caller's open transaction, no commit; return the new."""
        self.cur.execute(self._STAGE)
        self._staged = True  # the staging table may hold an earlier call's rows: emptied first
        pairs = self._pairs()
        stored = self._insert(pairs)
        for sid, row in pairs:
            if row.key not in stored and self._collided(sid, row) and self._salted(sid, row):
                stored |= self._insert([(sid, row)])
        self._finish(stored)
        return [row for _, row in pairs if row.key in stored]
