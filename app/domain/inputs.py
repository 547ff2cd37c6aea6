"""Identifiers as they arrive from URLs, forms and the command line."""

from __future__ import annotations

import uuid

from app.domain.errors import DomainError

# A UUID in any spelling `uuid.UUID` accepts is at most 45 characters ("urn:uuid:…").
_MAX_ID_LENGTH = 64


def parse_uuid(raw: str, what: str = "execution id") -> uuid.UUID:
    """The UUID in `raw`, or a 400 `DomainError` naming `what` (never echoing huge input)."""
    text = raw.strip()
    if len(text) <= _MAX_ID_LENGTH:
        try:
            return uuid.UUID(text)
        except ValueError:
            pass
    shown = text if len(text) <= _MAX_ID_LENGTH else text[:_MAX_ID_LENGTH] + "…"
    raise DomainError(400, f"malformed {what}: {shown!r} is not a UUID")
