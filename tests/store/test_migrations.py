"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import omnicanal.auth.models
import omnicanal.collect.models
import omnicanal.identity.models
import omnicanal.profiles.models
import omnicanal.store.tombstones  # noqa: F401  (registers the tables)
from omnicanal.store.base import Base
from omnicanal.store.engine import Database


def test_models_and_migrations_agree(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
