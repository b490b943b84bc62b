"""Create, list, revoke and check admin API tokens."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnicanal.auth.models import ApiToken
from omnicanal.auth.schemas import TokenCreate, TokenCreated, TokenRead
from omnicanal.core.clock import utcnow
from omnicanal.core.errors import NotFoundError, UnauthorizedError
from omnicanal.core.ids import hash_secret, new_secret

TOKEN_PREFIX = "oc_admin_"


def create(*, session: Session, data: TokenCreate) -> TokenCreated:
    """Issue a token; its secret is returned now and never again."""
    secret = new_secret(TOKEN_PREFIX)
    token = ApiToken(
        name=data.name,
        token_hash=hash_secret(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 4],
        created_at=utcnow(),
        revoked_at=None,
    )
    session.add(token)
    session.flush()
    return TokenCreated(**TokenRead.model_validate(token).model_dump(), token=secret)


def list_(*, session: Session) -> list[TokenRead]:
    """Return every token, newest first, without secrets."""
    rows = session.scalars(select(ApiToken).order_by(ApiToken.id.desc()))
    return [TokenRead.model_validate(row) for row in rows]


def revoke(*, session: Session, token_id: int) -> TokenRead:
    """Revoke a token so it no longer opens the API."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"No API token with id {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return TokenRead.model_validate(token)


def authenticate(*, session: Session, secret: str) -> TokenRead:
    """Return the live token behind a secret, or raise UnauthorizedError."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
    if token is None or token.revoked_at is not None:
        raise UnauthorizedError("The admin API token is unknown or revoked.")
    return TokenRead.model_validate(token)
