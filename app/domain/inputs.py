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


# C0 controls but tab, LF and CR, DEL, and the C1 controls: no person types them, and
# PostgreSQL refuses NUL in text outright (a 500 where a 400 belongs).
_CONTROL_CHARACTERS = frozenset(
    chr(code) for code in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if chr(code) not in "\t\n\r"
)


def text_problem(value: str) -> str | None:
    """Why `value` cannot be taken as text, or None: a lone surrogate (JSON's
    `"\\ud800"` decodes to one, and no database, hash or email can take it) or a
    control character. The one rule for every entry point: the request door, the API's
    schemas, the panel's forms and filters, and the command line."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    for char in value:
        if char in _CONTROL_CHARACTERS:
            return f"holds a control character (U+{ord(char):04X})"
    return None


def is_text(value: object) -> bool:
    """A `str` that `text_problem` finds nothing wrong with."""
    return isinstance(value, str) and text_problem(value) is None


def clean_text(value: str, what: str) -> str:
    """`value`, or a 400 `DomainError` naming `what` and the problem."""
    problem = text_problem(value)
    if problem is not None:
        raise DomainError(400, f"{what} {problem}")
    return value
