"""warehouse feeds: order update times, profile change index, tombstones

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 08:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: SQLite's batch mode would copy `orders`, and dropping the old
    # copy breaks the foreign keys of order lines and refunds.
    op.add_column(
        "orders", sa.Column("updated_ms", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.execute("UPDATE orders SET updated_ms = placed_ms")
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column("orders", "updated_ms", server_default=None)
    op.create_index("ix_orders_updated_ms", "orders", ["updated_ms"], unique=False)
    op.create_index("ix_profile_updated_ms", "profile", ["updated_ms"], unique=False)
    op.create_table(
        "store_tombstone",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.BigInteger(), nullable=False),
        sa.Column("deleted_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_tombstone")),
    )
    op.create_index("ix_store_tombstone_kind", "store_tombstone", ["kind", "key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_store_tombstone_kind", table_name="store_tombstone")
    op.drop_table("store_tombstone")
    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_updated_ms")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_updated_ms")
        batch_op.drop_column("updated_ms")
