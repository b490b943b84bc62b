"""Request-scoped sessions: the request owns the transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from omnicanal.store.engine import Database


def get_database(request: Request) -> Database:
    """Return the database the application was started with."""
    db: Database = request.app.state.db
    return db


def get_session(request: Request) -> Iterator[Session]:
    """Yield a session that commits when the request succeeds and rolls back otherwise."""
    with get_database(request).sessions.begin() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
DatabaseDep = Annotated[Database, Depends(get_database)]
