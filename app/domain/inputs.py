"""Values as they arrive from URLs, forms, JSON bodies, the command line and the
environment: parsed once, here, the same way everywhere."""

from __future__ import annotations

import uuid

from app.domain.errors import DomainError

# A UUID in any spelling `uuid.UUID` accepts is at most 45 characters ("urn:uuid:…").
_MAX_ID_LENGTH = 64

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


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


def parse_bool(raw: str | None) -> bool | None:
    """True or False for the usual spellings (absent or empty is False); None when the
    text is neither, for the caller to refuse in its own terms."""
    word = (raw or "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def is_text(value: object) -> bool:
    """A `str` that is valid Unicode all through: JSON's `"\\ud800"` decodes to a lone
    surrogate, which no database, hash or email can take."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
