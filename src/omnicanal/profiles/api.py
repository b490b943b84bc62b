"""Profiles through the management API: search, the 360 view, undoing a merge."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from omnicanal.auth.api import AdminDep
from omnicanal.identity import service as identity
from omnicanal.profiles import service
from omnicanal.store.session import SessionDep

router = APIRouter(prefix="/api/v1", tags=["profiles"])


@router.get("/profiles")
def search_profiles(
    _admin: AdminDep,
    session: SessionDep,
    q: Annotated[str, Query(min_length=2, description="Email, phone, card or name.")],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """Find people by email, phone (any format), loyalty card or name."""
    return service.search(session.connection(), q, limit)


@router.get("/profiles/{reference}")
def get_profile(
    _admin: AdminDep,
    session: SessionDep,
    reference: str,
    timeline: Annotated[int, Query(ge=0, le=5000)] = service.TIMELINE_LIMIT,
) -> dict[str, Any]:
    """The 360 view of one person: traits with their source, identities, why records were
    joined, consents, channels used, orders by channel, households and the timeline.

    `reference` is a profile id, an email, a phone number, a loyalty card or a userId.
    """
    return service.profile_360(session.connection(), reference, timeline=timeline)


@router.post("/profiles/{profile_id}/unmerge")
def unmerge_profile(_admin: AdminDep, session: SessionDep, profile_id: int) -> dict[str, Any]:
    """Undo the merge that joined this profile to another; it is never redone by itself."""
    done = identity.unmerge(session.connection(), profile_id)
    return {
        "merge_id": done.merge_id,
        "survivor_id": done.survivor_id,
        "merged_id": done.merged_id,
        "roots": {str(k): v for k, v in done.roots.items()},
    }
