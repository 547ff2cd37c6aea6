"""Failures by cause: the same failure, whatever ids and numbers it names.

An error's *signature* is its text with what differs from one occurrence to the next
taken out: quoted values, ARNs, email addresses, URLs, UUIDs, IP addresses, dates and
times, hex, cloud regions and zones, identifiers that carry digits (`r-123abc`,
`i-0abc12`), and numbers. "no capacity for r-123abc in us-east-1a after 3 tries" and
"no capacity for r-9f in eu-west-2b after 12 tries" are one failure, one signature.

A row's *cause* is what the operator fixes once: the ops hint when one applies to its
error (`app.domain.retry.RetryPolicy.ops_hint`), else its signature. Rows are grouped
by signature, which is stored on the row when it fails (it does not depend on the
deployment's configuration, so a row keeps its group); the hint is read from the
configuration when the group is shown.

Pure functions, no database.
"""

from __future__ import annotations

import re

from app.domain.errors import DomainError
from app.domain.inputs import is_text
from app.domain.retry import RETRYABLE, RetryPolicy

# The column's width; a longer signature is cut here, which keeps its beginning (the
# error code and message) and drops the tail, where the details are.
MAX_SIGNATURE_LENGTH = 200
# What a failed row without an error message groups under.
NO_ERROR = "(no error message)"
MAX_NOTE_LENGTH = 500

# Applied in order: a quoted value may hold anything (ids, spaces, colons), so it goes
# first; an ARN or URL holds ids and numbers that must not be replaced piecemeal.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, flags), placeholder)
    for pattern, flags, placeholder in (
        (r"'[^']*'|\"[^\"]*\"|`[^`]*`|\u2018[^\u2019]*\u2019|\u201c[^\u201d]*\u201d", 0, "<value>"),
        (r"\barn:[^\s,;)\]}>]+", re.IGNORECASE, "<arn>"),
        (r"\b[a-z][a-z0-9+.-]*://[^\s,;)\]}>]+", re.IGNORECASE, "<url>"),
        (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", 0, "<email>"),
        (
            r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b",
            re.IGNORECASE,
            "<uuid>",
        ),
        (
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2})?)?\b",
            re.IGNORECASE,
            "<date>",
        ),
        (r"\b\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\b", 0, "<date>"),
        (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", 0, "<ip>"),
        (r"(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])", re.IGNORECASE, "<ip>"),
        (r"\b0x[0-9a-f]+\b", re.IGNORECASE, "<hex>"),
        (r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.IGNORECASE, "<hex>"),
        # AWS (us-east-1, us-east-1a), GCP (europe-west4, europe-west4-b), Azure has no digit.
        (r"\b[a-z]{2,}(?:-[a-z]+)+-?\d+(?:-?[a-z])?\b", 0, "<region>"),
        # Identifiers: a word with a digit and a letter in it, joined by - or _ or at
        # least five characters long (r-123abc, i-0abc12, order42); short names that
        # carry a digit (ec2, s3, v2) are a service or a version, not an id.
        (
            r"\b(?=[\w-]*\d)(?=[\w-]*[a-zA-Z])(?:\w+(?:-\w+)+|\w*[_]\w*|\w{5,})\b",
            0,
            "<id>",
        ),
        # Numbers, with a unit after them or not (3, 2.5, 1,000, 12ms); not the digits
        # of a name (ec2).
        (r"(?<![\w.])\d+(?:[.,]\d+)*(?=[a-zA-Z]{0,3}\b|[^\w]|$)", 0, "<n>"),
    )
)
# "<id>, <id> and <id>" and "<id>" are one failure: a list of placeholders is one.
_LIST = re.compile(r"(<(\w+)>)(?:(?:\s*,\s*|\s+and\s+|\s+)<\2>)+")
_SPACE = re.compile(r"\s+")


def signature(error: str | None) -> str:
    """The error's text without what varies between occurrences (the module's rules),
    whitespace collapsed, at most `MAX_SIGNATURE_LENGTH` characters. Deterministic:
    a signature's signature is itself."""
    if error is None or not error.strip():
        return NO_ERROR
    text = _SPACE.sub(" ", error).strip()
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    text = _LIST.sub(r"\1", text)
    return text[:MAX_SIGNATURE_LENGTH]


def failure_signature(status: str, error: str | None) -> str | None:
    """What a row's `failure_signature` column holds: the signature of its error while
    it is a failure a retry may start from (failed, partially completed), else None."""
    return signature(error) if status in RETRYABLE else None


def cause_label(error: str | None, policy: RetryPolicy) -> tuple[str, str | None]:
    """What a group of failures with this (example) error is called: its ops hint when
    one applies, else its signature; and the hint alone (None when there is none)."""
    hint = policy.ops_hint(error)
    return (hint or signature(error)), hint


def parse_signature(raw: object, name: str = "cause") -> str:
    """A signature as a client sends it (a filter, an address): text, no NUL, not
    empty, at most `MAX_SIGNATURE_LENGTH` characters; else a 400 naming `name`."""
    if not isinstance(raw, str) or not is_text(raw) or "\x00" in raw:
        raise DomainError(400, f"{name} must be text without NUL characters")
    text = raw.strip()
    if not text:
        raise DomainError(400, f"{name} must not be empty")
    if len(text) > MAX_SIGNATURE_LENGTH:
        raise DomainError(400, f"{name} is longer than {MAX_SIGNATURE_LENGTH} characters")
    return text


def parse_note(raw: object) -> str | None:
    """A "mark fixed" note: optional text, at most `MAX_NOTE_LENGTH` characters."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not is_text(raw) or "\x00" in raw:
        raise DomainError(400, "note must be text without NUL characters")
    text = raw.strip()
    if len(text) > MAX_NOTE_LENGTH:
        raise DomainError(400, f"note is longer than {MAX_NOTE_LENGTH} characters")
    return text or None
