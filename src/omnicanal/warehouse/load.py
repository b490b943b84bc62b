"""Writing store rows into the warehouse tables, inside the sync's DuckDB transaction.

Chunks arrive as Arrow tables in the store's shape (`source.py`); each is registered
with DuckDB and turned into warehouse rows by one INSERT ... SELECT: instants in ms
become naive UTC `ts` and the local `day`, flags become booleans, and `person_id` is
read from the warehouse's own `profiles`, which the sync brings up to date first.

Four ways in:

* `append`: events past the event watermark, never seen before;
* `stage` + `insert_staged`: rows derived from those events (refunds, consents,
  answers), replacing any row that has the same key;
* `stage` + `upsert`: rows the store changed since the last sync, read again with an
  overlap; only rows that differ from what the warehouse holds replace it, so reading
  a row twice writes nothing;
* `stage` + `replace`: small reference tables read whole; replaced when they differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import duckdb
import pyarrow as pa

from omnicanal.core.channels import KINDS
from omnicanal.warehouse import ddl

#: Called as work goes: (step, rows done, rows expected or None).
Progress = Callable[[str, int, int | None], None]

FACTS: Final = ("events", "orders", "refunds", "consents", "feedback")


def _day(ms: str) -> str:
    """SQL for the local calendar day of an instant in ms ($tz: the retailer's zone)."""
    return f"CAST(timezone($tz, timezone('UTC', epoch_ms({ms}))) AS DATE)"


def _person(alias: str = "c") -> str:
    return f"coalesce(p.person_id, {alias}.profile_id) AS person_id"


_WITH_PERSON = "FROM chunk c LEFT JOIN profiles p ON p.profile_id = c.profile_id"

SELECTS: Final[dict[str, str]] = {
    "events": (
        f"SELECT c.event_id, c.profile_id, {_person()}, CAST(c.source_id AS INTEGER) AS source_id, "
        f"epoch_ms(c.timestamp_ms) AS ts, {_day('c.timestamp_ms')} AS day, c.type, c.event, "
        "c.channel, c.media_class, CAST(c.online AS BOOLEAN) AS online, c.campaign, c.order_id, "
        f"c.revenue_cents {_WITH_PERSON} ORDER BY c.event_id"
    ),
    "profiles": (
        "SELECT profile_id, coalesce(merged_into, profile_id) AS person_id, "
        "epoch_ms(created_ms) AS created, epoch_ms(first_seen_ms) AS first_seen, "
        "epoch_ms(last_seen_ms) AS last_seen, event_count, CAST(has_email AS BOOLEAN) AS "
        "has_email, CAST(has_phone AS BOOLEAN) AS has_phone, CAST(has_card AS BOOLEAN) AS "
        "has_card, postcode, city FROM chunk"
    ),
    "orders": (
        f"SELECT c.order_id, c.profile_id, {_person()}, CAST(c.source_id AS INTEGER) AS "
        f"source_id, c.event_id, c.order_key, epoch_ms(c.placed_ms) AS ts, {_day('c.placed_ms')} "
        "AS day, c.channel, k.online, c.store, c.fulfilment, c.status, c.currency, "
        "c.total_cents, c.discount_cents, c.shipping_cents, c.tax_cents, c.refunded_cents, "
        f"c.coupon, c.campaign {_WITH_PERSON} "
        "LEFT JOIN _channel_kinds k ON k.kind = lower(split_part(c.channel, ':', 1))"
    ),
    "order_lines": (
        "SELECT line_id, order_id, sku, product_id, name, category, brand, "
        "CAST(quantity AS INTEGER) AS quantity, unit_price_cents, "
        "CAST(returned_quantity AS INTEGER) AS returned_quantity FROM chunk"
    ),
    "refunds": (
        f"SELECT c.refund_id, c.order_id, c.profile_id, {_person()}, "
        f"epoch_ms(c.refunded_ms) AS ts, {_day('c.refunded_ms')} AS day, c.channel, "
        f"c.amount_cents {_WITH_PERSON}"
    ),
    "consents": (
        f"SELECT c.consent_id, c.profile_id, {_person()}, c.purpose, c.channel, "
        f"CAST(c.granted AS BOOLEAN) AS granted, epoch_ms(c.recorded_ms) AS ts, "
        f"{_day('c.recorded_ms')} AS day {_WITH_PERSON}"
    ),
    "feedback": (
        f"SELECT c.event_id, c.profile_id, {_person()}, c.kind, CAST(c.score AS INTEGER) AS "
        f"score, c.channel, epoch_ms(c.answered_ms) AS ts, {_day('c.answered_ms')} AS day "
        f"{_WITH_PERSON}"
    ),
    "costs": (
        "SELECT cost_id, CAST(day AS DATE) AS day, channel, media_class, campaign, kind, "
        "amount_cents, impressions, clicks FROM chunk"
    ),
    "products": (
        "SELECT sku, name, category, brand, price_cents, currency, "
        "CAST(active AS BOOLEAN) AS active FROM chunk"
    ),
    "stock": "SELECT sku, location, quantity, epoch_ms(updated_ms) AS updated FROM chunk",
    "sources": "SELECT CAST(source_id AS INTEGER) AS source_id, name, channel FROM chunk",
}
_NEEDS_TZ: Final = frozenset({"events", "orders", "refunds", "consents", "feedback"})

# Store tables whose single-row tombstones the warehouse repeats: (table, key column).
ROW_TOMBSTONES: Final = {
    "profile_event": ("events", "event_id"),
    "orders": ("orders", "order_id"),
    "order_line": ("order_lines", "line_id"),
    "order_refund": ("refunds", "refund_id"),
    "consent": ("consents", "consent_id"),
    "feedback": ("feedback", "event_id"),
}


def _stage_name(table: str) -> str:
    return f"_stage_{table}"


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> int:
    row = con.execute(sql, params).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


class Loader:
    """The DuckDB side of one sync (its connection is inside the sync's transaction)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, timezone: str, progress: Progress) -> None:
        self.con = con
        self.timezone = timezone
        self.progress = progress
        con.execute("CREATE OR REPLACE TEMP TABLE _moved (profile_id BIGINT)")
        con.execute("CREATE OR REPLACE TEMP TABLE _channel_kinds (kind VARCHAR, online BOOLEAN)")
        con.executemany(
            "INSERT INTO _channel_kinds VALUES (?, ?)", [(k.name, k.online) for k in KINDS.values()]
        )

    def _insert(self, target: str, table: str, chunk: pa.Table) -> int:
        """Insert one chunk's rows, transformed for `table`, into `target`."""
        self.con.register("chunk", chunk)
        try:
            params = {"tz": self.timezone} if table in _NEEDS_TZ else None
            return _count(self.con, f"INSERT INTO {target} BY NAME {SELECTS[table]}", params)
        finally:
            self.con.unregister("chunk")

    def append(self, table: str, chunks: Iterable[pa.Table], total: int | None = None) -> int:
        """Insert new rows into a table; return how many."""
        done = 0
        self.progress(table, 0, total)
        for chunk in chunks:
            done += self._insert(table, table, chunk)
            self.progress(table, done, total)
        return done

    def stage(self, table: str, chunks: Iterable[pa.Table]) -> int:
        """Collect rows for `table` in a temporary table of the same shape."""
        stage = _stage_name(table)
        self.con.execute(ddl.create_table(table, stage, temporary=True))
        done = 0
        self.progress(table, 0, None)
        for chunk in chunks:
            done += self._insert(stage, table, chunk)
            self.progress(table, done, None)
        return done

    def _changed_keys(self, table: str, into: str) -> int:
        """Put the keys of staged rows that are new or differ into temp table `into`."""
        stage, keys = _stage_name(table), ", ".join(ddl.KEYS[table])
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {into} AS SELECT {keys} FROM (SELECT * FROM {stage} "
            f"EXCEPT SELECT t.* FROM {table} t SEMI JOIN {stage} s USING ({keys}))"
        )
        return _count(self.con, f"SELECT count(*) FROM {into}")

    def upsert(self, table: str) -> int:
        """Replace rows by the staged ones that differ; return how many were written."""
        keys = ", ".join(ddl.KEYS[table])
        changed = self._changed_keys(table, "_changed")
        if not changed:
            return 0
        if table == "profiles":  # rows whose person changed must follow on every table
            self.con.execute(
                "INSERT INTO _moved SELECT t.profile_id FROM profiles t "
                "JOIN _stage_profiles s USING (profile_id) "
                "WHERE t.person_id IS DISTINCT FROM s.person_id"
            )
        self._replace_keys(table, table, "_changed", keys)
        return changed

    def insert_staged(self, table: str) -> int:
        """Insert the staged rows, replacing any row with the same key; return how many."""
        keys = ", ".join(ddl.KEYS[table])
        return self._replace_keys(table, table, _stage_name(table), keys)

    def _replace_keys(self, table: str, staged_as: str, keyset: str, keys: str) -> int:
        stage = _stage_name(staged_as)
        match = f"({keys}) IN (SELECT {keys} FROM {keyset})"
        self.con.execute(f"DELETE FROM {table} WHERE {match}")
        return _count(self.con, f"INSERT INTO {table} SELECT * FROM {stage} WHERE {match}")

    def upsert_orders(self) -> tuple[int, int]:
        """Replace changed orders and all lines of changed orders; return both counts."""
        orders, lines = _stage_name("orders"), _stage_name("order_lines")
        existing = f"SELECT l.* FROM order_lines l SEMI JOIN {orders} s USING (order_id)"
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _changed_orders AS "
            f"SELECT order_id FROM (SELECT * FROM {orders} EXCEPT "
            f"SELECT t.* FROM orders t SEMI JOIN {orders} s USING (order_id)) "
            f"UNION SELECT order_id FROM (SELECT * FROM {lines} EXCEPT {existing}) "
            f"UNION SELECT order_id FROM ({existing} EXCEPT SELECT * FROM {lines})"
        )
        if not _count(self.con, "SELECT count(*) FROM _changed_orders"):
            return 0, 0
        written = self._replace_keys("orders", "orders", "_changed_orders", "order_id")
        lines_written = self._replace_keys(
            "order_lines", "order_lines", "_changed_orders", "order_id"
        )
        return written, lines_written

    def replace(self, table: str) -> tuple[int, int]:
        """Make a table equal to its staged copy; return (rows written, rows removed)."""
        stage, keys = _stage_name(table), ", ".join(ddl.KEYS[table])
        written = _count(
            self.con, f"SELECT count(*) FROM (SELECT * FROM {stage} EXCEPT SELECT * FROM {table})"
        )
        removed = _count(self.con, f"SELECT count(*) FROM {table} ANTI JOIN {stage} USING ({keys})")
        if written or removed:
            self.con.execute(f"DELETE FROM {table}")
            self.con.execute(f"INSERT INTO {table} SELECT * FROM {stage}")
        return written, removed

    def missing_profiles(self, after_event: int) -> list[int]:
        """Profiles named by rows loaded in this sync that the warehouse does not hold."""
        staged = " ".join(
            f"UNION ALL SELECT profile_id FROM {_stage_name(t)}"
            for t in ("orders", "refunds", "consents", "feedback")
        )
        rows = self.con.execute(
            f"SELECT DISTINCT profile_id FROM (SELECT profile_id FROM events WHERE event_id > $e "
            f"{staged}) WHERE profile_id IS NOT NULL "
            "AND profile_id NOT IN (SELECT profile_id FROM profiles) ORDER BY profile_id",
            {"e": after_event},
        ).fetchall()
        return [int(r[0]) for r in rows]

    def also_moved(self, profile_ids: Sequence[int]) -> None:
        """Mark profiles whose rows must take their person_id again."""
        if profile_ids:
            self.con.executemany("INSERT INTO _moved VALUES (?)", [(p,) for p in profile_ids])

    def rewrite_persons(self) -> dict[str, int]:
        """Give every row of the moved profiles its profile's person_id; return counts."""
        counts: dict[str, int] = {}
        if not _count(self.con, "SELECT count(*) FROM _moved"):
            return counts
        for table in FACTS:
            counts[table] = _count(
                self.con,
                f"UPDATE {table} SET person_id = p.person_id FROM profiles p "
                f"WHERE {table}.profile_id = p.profile_id "
                "AND p.profile_id IN (SELECT profile_id FROM _moved) "
                f"AND {table}.person_id IS DISTINCT FROM p.person_id",
            )
        return counts

    def erase_profiles(self, profile_ids: Sequence[int]) -> dict[str, int]:
        """Delete profiles and every row about them; return rows deleted per table."""
        self.con.execute("CREATE OR REPLACE TEMP TABLE _erased (profile_id BIGINT)")
        self.con.executemany("INSERT INTO _erased VALUES (?)", [(p,) for p in profile_ids])
        erased = "profile_id IN (SELECT profile_id FROM _erased)"
        counts = {
            "order_lines": _count(
                self.con,
                f"DELETE FROM order_lines WHERE order_id IN (SELECT order_id FROM orders "
                f"WHERE {erased})",
            )
        }
        for table in (*FACTS, "profiles"):
            counts[table] = _count(self.con, f"DELETE FROM {table} WHERE {erased}")
        return counts

    def erase_rows(self, store_table: str, keys: Sequence[int]) -> dict[str, int]:
        """Delete single rows the store deleted; return rows deleted per table."""
        table, column = ROW_TOMBSTONES[store_table]
        self.con.execute("CREATE OR REPLACE TEMP TABLE _erased_rows (key BIGINT)")
        self.con.executemany("INSERT INTO _erased_rows VALUES (?)", [(k,) for k in keys])
        match = f"{column} IN (SELECT key FROM _erased_rows)"
        counts = {}
        if table == "orders":
            counts["order_lines"] = _count(self.con, f"DELETE FROM order_lines WHERE {match}")
        counts[table] = _count(self.con, f"DELETE FROM {table} WHERE {match}")
        return counts
