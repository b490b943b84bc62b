"""Identifiers: secrets for keys and tokens, time-ordered ids for records."""

from __future__ import annotations

import hashlib
import os
import secrets
import time


def new_secret(prefix: str, nbytes: int = 24) -> str:
    """Return a new random credential such as `oc_wk_...`."""
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def hash_secret(secret: str) -> str:
    """Return the SHA-256 hex digest under which a credential is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def uuid7() -> str:
    """Return a time-ordered UUID (RFC 9562 version 7) as text."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
