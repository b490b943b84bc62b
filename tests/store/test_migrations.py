"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

import omnicanal.auth.models
import omnicanal.collect.models
import omnicanal.identity.models
import omnicanal.profiles.models
import omnicanal.store.tombstones  # noqa: F401  (registers the tables)
from omnicanal.store.base import Base
from omnicanal.store.engine import Database, make_engine
from omnicanal.store.migrate import alembic_config, current_revision, upgrade


def test_models_and_migrations_agree(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrades_a_store_holding_orders_with_lines_and_refunds(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A retailer's existing store upgrades in place: foreign keys survive, times are filled."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("database_url")  # already at head: go back first
    engine = make_engine(url)
    if backend != "sqlite":
        command.downgrade(alembic_config(engine), "0002")
    else:
        upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO orders (id, source_id, order_key, profile_id, event_id, placed_ms, "
                "channel, fulfilment, status, currency, total_cents, total_eur_cents, "
                "discount_eur_cents, shipping_eur_cents, tax_eur_cents, refunded_eur_cents) "
                "VALUES (1, 1, 'A1', 1, 1, 1700000000000, 'web', 'delivery', 'completed', "
                "'EUR', 1000, 1000, 0, 0, 0, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO order_line (order_id, quantity, unit_price_eur_cents, "
                "returned_quantity) VALUES (1, 1, 1000, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO order_refund (order_id, profile_id, event_id, refunded_ms, channel, "
                "amount_eur_cents, lines) VALUES (1, 1, 2, 1700000001000, 'web', 1000, '[]')"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert current_revision(engine) is not None
        assert conn.execute(text("SELECT updated_ms FROM orders")).scalar_one() == 1700000000000
        assert conn.execute(text("SELECT count(*) FROM order_line")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM order_refund")).scalar_one() == 1
    engine.dispose()
