"""Notification channels, as pure rules: the kinds, the events they subscribe to, what
a target may be, how a target is shown (masked: it is a secret), and how a webhook's
body is signed.

A channel is Slack, Microsoft Teams, a generic webhook (signed with HMAC-SHA256) or an
email address; every message goes through Apprise (`app.services.channel_delivery`).
A channel belongs to one cloud account or, with none, is global; it hears the events
it subscribes to (none listed: all of them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from app.domain.errors import DomainError
from app.domain.inputs import text_problem


class ChannelKind(StrEnum):
    SLACK = "slack"
    TEAMS = "teams"
    WEBHOOK = "webhook"
    EMAIL = "email"


class ChannelEvent(StrEnum):
    APPROVAL_NEEDED = "approval_needed"  # a row (or a bulk retry's batch) waits for approval
    PURCHASE_COMPLETED = "purchase_completed"
    PURCHASE_PARTIALLY_COMPLETED = "purchase_partially_completed"
    PURCHASE_FAILED = "purchase_failed"
    # Money stuck in failed rows crossed CHANNEL_FAILED_MONEY_THRESHOLD.
    FAILURE_DIGEST = "failure_digest"
    SCHEDULE_REMINDER = "schedule_reminder"  # a scheduled purchase is about to start
    FREEZE_SWITCHED = "freeze_switched"  # the freeze went on or off
    # "Send test message": always delivered, whatever the channel subscribes to.
    TEST = "test"


SUBSCRIBABLE = tuple(event for event in ChannelEvent if event is not ChannelEvent.TEST)


class MessageState(StrEnum):
    QUEUED = "queued"  # waiting for a task (from `due_at` on)
    SENDING = "sending"  # claimed by a task, which is talking to the service
    SENT = "sent"
    FAILED = "failed"  # will not be sent; `error` says why


# The Apprise schemes each kind accepts (Slack and Teams also as their webhook URLs).
APPRISE_SCHEMES: Mapping[ChannelKind, tuple[str, ...]] = {
    ChannelKind.SLACK: ("slack", "https"),
    # Teams' incoming webhooks are Power Automate workflows (Apprise's workflows://);
    # msteams:// is the retired connectors' scheme older Apprise releases still take.
    ChannelKind.TEAMS: ("workflows", "workflow", "msteams", "https"),
}
MAX_TARGET = 2000
MAX_NAME = 200
MAX_SECRET = 500
MIN_SECRET = 16
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# The headers a signed webhook carries.
SIGNATURE_HEADER = "X-Signature-256"
TIMESTAMP_HEADER = "X-Signature-Timestamp"


def check_name(raw: object) -> str:
    """A channel's name: 1 to `MAX_NAME` characters of text."""
    name = _text(raw, "name").strip()
    if not name:
        raise DomainError(400, "a channel needs a name", field="name")
    if len(name) > MAX_NAME:
        raise DomainError(400, f'"name" is longer than {MAX_NAME} characters', field="name")
    return name


def check_kind(raw: object) -> ChannelKind:
    try:
        return ChannelKind(str(raw).strip().lower())
    except ValueError:
        known = ", ".join(kind.value for kind in ChannelKind)
        raise DomainError(400, f'"kind" must be one of {known}', field="kind") from None


def check_target(kind: ChannelKind, raw: object) -> str:
    """The target of a channel of `kind`: an Apprise URL of the kind's service (or the
    service's webhook URL) for Slack and Teams, an http(s) URL for a webhook, an email
    address for email. The message never repeats the target: it is a secret."""
    target = _text(raw, "target").strip()
    if not target:
        raise DomainError(400, "a channel needs a target", field="target")
    if len(target) > MAX_TARGET:
        raise DomainError(400, f'"target" is longer than {MAX_TARGET} characters', field="target")
    if kind is ChannelKind.EMAIL:
        if not _EMAIL.match(target):
            raise DomainError(400, "an email channel's target is an email address", field="target")
        return target
    parts = urlsplit(target)
    schemes = APPRISE_SCHEMES.get(kind, ("http", "https"))
    if parts.scheme.lower() not in schemes or not parts.netloc:
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise DomainError(
            400, f"a {kind.value} channel's target must be a {wanted} URL", field="target"
        )
    if kind is ChannelKind.WEBHOOK and (parts.username or parts.password):
        raise DomainError(
            400, "a webhook URL cannot carry credentials: the body is signed", field="target"
        )
    return target


def check_events(raw: Iterable[object] | None) -> list[str]:
    """The events a channel hears, each one of `SUBSCRIBABLE` (empty: all of them)."""
    events: list[str] = []
    for item in raw or ():
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in {event.value for event in SUBSCRIBABLE}:
            known = ", ".join(event.value for event in SUBSCRIBABLE)
            raise DomainError(400, f"unknown event {name[:64]!r} (known: {known})", field="events")
        if name not in events:
            events.append(name)
    return events


def check_secret(kind: ChannelKind, raw: object) -> str | None:
    """A webhook's signing secret (at least `MIN_SECRET` characters); other kinds have
    none."""
    if kind is not ChannelKind.WEBHOOK:
        return None
    secret = _text(raw or "", "secret").strip()
    if len(secret) < MIN_SECRET or len(secret) > MAX_SECRET:
        raise DomainError(
            400,
            f"a webhook channel needs a signing secret of {MIN_SECRET} to {MAX_SECRET} characters",
            field="secret",
        )
    return secret


def hears(events: list[str] | None, event: ChannelEvent) -> bool:
    """Whether a channel subscribed to `events` gets `event` (a test message always)."""
    return event is ChannelEvent.TEST or not events or event.value in events


def mask(target: str) -> str:
    """A target as the panel, the API, the CLI and the trail show it: the service and
    little else. A URL keeps its scheme and host; an email address its first letter
    and domain."""
    if "@" in target and "://" not in target:
        local, _, domain = target.partition("@")
        return f"{local[:1]}***@{domain}"
    parts = urlsplit(target)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}/***" if parts.scheme else "***"


@dataclass(frozen=True)
class Signed:
    """A webhook's body and the headers that prove who sent it and when."""

    body: bytes
    headers: dict[str, str]


def webhook_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes a webhook carries (and that are signed): compact, sorted JSON."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, secret: str, timestamp: int) -> Signed:
    """`X-Signature-256: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` and the
    timestamp it covers, so a receiver can refuse a replayed old message."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return Signed(
        body=body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: f"sha256={digest}",
            TIMESTAMP_HEADER: str(timestamp),
        },
    )


def verify(body: bytes, secret: str, timestamp: str, signature: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    expected = sign(body, secret, int(timestamp)).headers[SIGNATURE_HEADER]
    return hmac.compare_digest(expected, signature)


def _text(raw: object, what: str) -> str:
    if not isinstance(raw, str):
        raise DomainError(400, f'"{what}" must be text', field=what)
    problem = text_problem(raw)
    if problem is not None:
        raise DomainError(400, f'"{what}" {problem}', field=what)
    return raw
