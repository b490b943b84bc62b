"""processed events: the store an offline interaction took place at

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 06:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites no row on either database.
    op.add_column("profile_event", sa.Column("store", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("profile_event", schema=None) as batch_op:
        batch_op.drop_column("store")
