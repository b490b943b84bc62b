"""The admin-token guard used by every management route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from omnicanal.auth import service
from omnicanal.auth.schemas import TokenRead
from omnicanal.core.errors import UnauthorizedError
from omnicanal.store.session import get_database

_bearer = HTTPBearer(auto_error=False, description="Admin API token (`omnicanal tokens create`)")


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenRead:
    """Check the `Authorization: Bearer` admin token."""
    if credentials is None:
        raise UnauthorizedError("Send an admin API token as `Authorization: Bearer <token>`.")
    with get_database(request).sessions.begin() as session:
        return service.authenticate(session=session, secret=credentials.credentials)


AdminDep = Annotated[TokenRead, Depends(require_admin)]
