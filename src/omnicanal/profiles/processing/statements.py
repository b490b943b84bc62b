"""What people state in events: survey answers and consent statements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from omnicanal.profiles.processing.common import text_value

if TYPE_CHECKING:
    from omnicanal.profiles.processing.batch import Batch
    from omnicanal.profiles.processing.parse import Event

_CONSENT_CATEGORIES = {
    "advertising": ("ads_personalisation", "all"),
    "ads": ("ads_personalisation", "all"),
    "targeting": ("ads_personalisation", "all"),
    "marketing": ("ads_personalisation", "all"),
    "analytics": ("analytics", "all"),
    "performance": ("analytics", "all"),
}


def record_survey(batch: Batch, row: Any, props: dict[str, Any], pid: int, channel: str) -> None:
    """Keep an NPS or CSAT answer in range for the feedback table."""
    kind = str(props.get("kind") or props.get("survey_type") or "").lower()
    score = props.get("score")
    if kind not in {"nps", "csat"} or isinstance(score, bool) or not isinstance(score, int | float):
        return
    low, high = (0, 10) if kind == "nps" else (1, 5)
    if not low <= score <= high:
        return
    where = props.get("channel")
    batch.feedback.append(
        {
            "event_id": row.id,
            "profile_id": pid,
            "kind": kind,
            "score": int(score),
            "channel": str(where)[:80] if where else channel,
            "answered_ms": row.timestamp_ms,
            "comment": text_value(props.get("comment"), 2000),
        }
    )


def record_consents(batch: Batch, row: Event, pid: int) -> None:
    """Keep the consent statements an event makes (its consent context, an unsubscribe)."""
    consent = row.consent
    statements: list[tuple[str, str, bool]] = []
    wording = None
    if isinstance(consent, dict):
        wording = text_value(consent.get("wording") or consent.get("version"), 64)
        purposes = consent.get("purposes")
        if isinstance(purposes, dict):
            for purpose, value in purposes.items():
                if isinstance(value, bool):
                    statements.append((str(purpose)[:32], "all", value))
                elif isinstance(value, dict):
                    statements.extend(
                        (str(purpose)[:32], str(ch)[:32], v)
                        for ch, v in value.items()
                        if isinstance(v, bool)
                    )
        categories = consent.get("categoryPreferences")
        if isinstance(categories, dict):
            for category, value in categories.items():
                mapped = _CONSENT_CATEGORIES.get(str(category).lower())
                if mapped and isinstance(value, bool):
                    statements.append((mapped[0], mapped[1], value))
    if row.type == "track" and row.event == "Unsubscribed":
        channel = row.properties.get("channel")
        statements.append(("marketing", str(channel or "email")[:32], False))
    for purpose, channel, granted in statements:
        batch.consents.append(
            {
                "profile_id": pid,
                "purpose": purpose,
                "channel": channel,
                "granted": granted,
                "source_id": row.source_id,
                "event_id": row.id,
                "recorded_ms": row.timestamp_ms,
                "wording_version": wording,
                "proof": orjson.dumps({"messageId": row.message_id, "consent": consent}).decode(),
            }
        )
