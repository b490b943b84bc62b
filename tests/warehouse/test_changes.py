"""What incremental reading could miss: late commits, erasures, a reprocessed store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from omnicanal.core.settings import Settings
from omnicanal.store.engine import Database
from omnicanal.store.tombstones import record_deletions
from omnicanal.warehouse.connect import Warehouse, WarehouseOutdatedError
from omnicanal.warehouse.sync import sync
from tests.warehouse.shop import Shop, erase, mirrors, persons


def _without_overlap(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"warehouse": settings.warehouse.model_copy(update={"overlap_seconds": 0})}
    )


def test_a_row_stamped_before_a_sync_and_committed_after_is_read_by_the_next(
    shop: Shop, db: Database, settings: Settings, tmp_path: Path
) -> None:
    shop.opening_day()
    windowed, blind = Warehouse(tmp_path / "windowed.duckdb"), Warehouse(tmp_path / "blind.duckdb")
    blind_settings = _without_overlap(settings)
    sync(db, settings, warehouse=windowed)
    sync(db, blind_settings, warehouse=blind)
    # A writer stamps its rows, then is slow to commit: a sync runs in between.
    stamp = int(time.time() * 1000) - 1_000
    with db.engine.connect() as writer:
        with writer.begin():
            writer.execute(
                text("UPDATE profile SET city = 'Paris', updated_ms = :t WHERE email = :e"),
                {"t": stamp, "e": "marie@exemple.fr"},
            )
            writer.execute(
                text(
                    "UPDATE orders SET status = 'refunded', updated_ms = :t WHERE order_key = 'W1'"
                ),
                {"t": stamp},
            )
            sync(db, settings, warehouse=windowed)
            sync(db, blind_settings, warehouse=blind)
        picked = sync(db, settings, warehouse=windowed)
        missed = sync(db, blind_settings, warehouse=blind)
    mirrors(db, windowed)
    assert (picked.table("profiles").written, picked.table("orders").written) == (1, 1)
    # Without the window the late commit is lost: the window is what reads it.
    assert (missed.table("profiles").written, missed.table("orders").written) == (0, 0)
    with blind.connection() as con:
        assert con.execute("SELECT status FROM orders WHERE order_key = 'W1'").fetchall() == [
            ("completed",)
        ]


def test_an_erasure_reaches_every_table(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse
) -> None:
    shop.opening_day()
    sync(db, settings)
    erased = erase(db, "marie@exemple.fr")
    result = sync(db, settings)
    mirrors(db, warehouse)
    assert persons(warehouse) == 3
    with warehouse.connection() as con:
        for table in ("events", "orders", "refunds", "consents", "feedback", "profiles"):
            left = con.execute(
                f"SELECT count(*) FROM {table} WHERE profile_id IN ({', '.join(map(str, erased))})"
            ).fetchone()
            assert left == (0,), table
        lines = con.execute("SELECT DISTINCT sku FROM order_lines ORDER BY sku").fetchall()
    assert lines == [("SKU-3",)]  # Jean's line; Marie's two went with her order
    deleted = {t.table: t.deleted for t in result.tables if t.deleted}
    assert deleted == {
        "events": 6,
        "orders": 1,
        "order_lines": 2,
        "consents": 2,
        "feedback": 1,
        "profiles": len(erased),
    }
    assert sync(db, settings).deleted == 0  # a tombstone is replayed once


def test_a_deleted_order_leaves_with_its_lines(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse
) -> None:
    shop.opening_day()
    sync(db, settings)
    with db.engine.begin() as conn:
        order_id = conn.execute(text("SELECT id FROM orders WHERE order_key = 'W1'")).scalar_one()
        conn.execute(text("DELETE FROM order_line WHERE order_id = :o"), {"o": order_id})
        conn.execute(text("DELETE FROM orders WHERE id = :o"), {"o": order_id})
        record_deletions(conn, "orders", [order_id], int(time.time() * 1000))
    result = sync(db, settings)
    assert (result.table("orders").deleted, result.table("order_lines").deleted) == (1, 2)
    with warehouse.connection() as con:
        assert con.execute("SELECT order_key FROM orders ORDER BY 1").fetchall() == [
            ("W2",),
            ("paris:T1",),
        ]


def test_a_store_processed_again_from_the_start_is_rebuilt(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse
) -> None:
    shop.opening_day()
    sync(db, settings)
    with db.engine.begin() as conn:  # the store's derived tables are thrown away
        for table in ("order_line", "order_refund", "orders", "consent", "feedback"):
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text("DELETE FROM profile_event"))
        conn.execute(text("UPDATE processor_checkpoint SET last_event_id = 0"))
    rebuilt = sync(db, settings)
    assert rebuilt.full
    mirrors(db, warehouse)
    assert rebuilt.table("events").rows == 0


def test_a_file_built_for_other_tables_is_rebuilt(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse
) -> None:
    shop.opening_day()
    sync(db, settings)
    with warehouse.writer() as con:
        con.execute("UPDATE _sync_state SET schema_fingerprint = 'an older version'")
    with (
        pytest.raises(WarehouseOutdatedError, match="omnicanal warehouse sync --full"),
        warehouse.reader(),
    ):
        pass
    assert sync(db, settings).full
    with warehouse.reader() as tables:
        assert tables["events"].count().to_pyarrow().as_py() == 10
    mirrors(db, warehouse)


def test_a_full_rebuild_swaps_in_a_new_file(
    shop: Shop, db: Database, settings: Settings, warehouse: Warehouse
) -> None:
    shop.opening_day()
    sync(db, settings)
    before = warehouse.path.stat().st_ino
    with warehouse.connection() as reading:  # a reader in before the swap keeps its file
        rebuilt = sync(db, settings, full=True)
        assert reading.execute("SELECT count(*) FROM events").fetchone() == (10,)
    assert rebuilt.full
    assert rebuilt.written == sum(t.rows for t in rebuilt.tables)
    assert warehouse.path.stat().st_ino != before
    mirrors(db, warehouse)
    leftovers = sorted(p.name for p in warehouse.path.parent.iterdir() if "warehouse" in p.name)
    assert leftovers == ["warehouse.duckdb", "warehouse.duckdb.lock"]
