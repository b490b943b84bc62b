"""Errors that every layer raises and the API renders as RFC 9457 problem details.

OmnicanalError                 500  base: status, code, title, extensions()
├── InvalidError               422  a value breaks a rule (field + reason)
│   └── BadRequestError        400  the request itself cannot be read
├── UnauthorizedError          401  no or unknown credentials
├── ForbiddenError             403  credentials without the right
├── NotFoundError              404
├── ConflictError              409
├── PayloadTooLargeError       413  a size limit is named
└── UnsupportedMediaTypeError  415
"""

from __future__ import annotations

from typing import Any, ClassVar


class OmnicanalError(Exception):
    """Base of every error the product reports to a user."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extensions(self) -> dict[str, Any]:
        """Return extra members for the problem document."""
        return {}


class InvalidError(OmnicanalError):
    """A value breaks a rule; `errors` lists each field and reason."""

    status = 422
    code = "invalid"
    title = "Invalid input"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []

    def extensions(self) -> dict[str, Any]:
        return {"errors": self.errors} if self.errors else {}


class BadRequestError(InvalidError):
    """The request cannot be read (bad JSON, bad encoding, bad compression)."""

    status = 400
    code = "bad-request"
    title = "Bad request"


class UnauthorizedError(OmnicanalError):
    """No credentials, or credentials nobody issued."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class ForbiddenError(OmnicanalError):
    """Known credentials that do not grant this action."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFoundError(OmnicanalError):
    """The named resource does not exist."""

    status = 404
    code = "not-found"
    title = "Not found"


class ConflictError(OmnicanalError):
    """The action conflicts with the current state."""

    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLargeError(OmnicanalError):
    """A body or an item is above a documented size limit."""

    status = 413
    code = "payload-too-large"
    title = "Payload too large"

    def __init__(self, detail: str, *, limit: int, field: str = "(body)", **extra: Any) -> None:
        super().__init__(detail)
        self.limit = limit
        self.field = field
        self.extra = extra

    def extensions(self) -> dict[str, Any]:
        errors = [{"field": self.field, "reason": self.detail, "limit": self.limit}]
        return {"limit": self.limit, "errors": errors, **self.extra}


class UnsupportedMediaTypeError(OmnicanalError):
    """The body's content type or encoding is not one we read."""

    status = 415
    code = "unsupported-media-type"
    title = "Unsupported media type"


class ServiceUnavailableError(OmnicanalError):
    """Nothing is wrong with the request; the service cannot take it now (retry later)."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"
    retry_after = 5
