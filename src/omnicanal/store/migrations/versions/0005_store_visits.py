"""processed events: an index of the events held at a store outside its tills

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 00:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Partial: a few rows among millions of events. Identity matching reads them with the
# till's orders to know which store each person comes to.
STORE_VISIT = "store IS NOT NULL AND channel NOT LIKE 'store:%'"


def upgrade() -> None:
    op.create_index(
        "ix_profile_event_store_visit",
        "profile_event",
        ["profile_id", "store"],
        sqlite_where=sa.text(STORE_VISIT),
        postgresql_where=sa.text(STORE_VISIT),
    )


def downgrade() -> None:
    op.drop_index("ix_profile_event_store_visit", table_name="profile_event")
