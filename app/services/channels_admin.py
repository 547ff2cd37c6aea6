"""Managing notification channels, for the panel's page and `flask channels` alike:
admins (and the command line) only, each change audited in its transaction, the
target and secret never shown back (the trail keeps the masked target).

Each write takes the session of a unit of work and the actor; run it through
`app.services.management.write("channel", verb, actor, change)`, which audits a
refusal as `channel.<verb>_refused`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.domain.channels import (
    ChannelKind,
    check_events,
    check_kind,
    check_name,
    check_secret,
    check_target,
    mask,
)
from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid
from app.domain.rbac import ADMIN, Principal
from app.models import ChannelMessage, CloudAccount, NotificationChannel
from app.services import audit, channels
from app.services.management import CLI_ACTOR


@dataclass(frozen=True)
class ChannelFields:
    """A channel as a form or a command gives it. On an edit, a `target` or `secret` of
    None keeps the stored one (they are never shown, so never filled in again)."""

    name: object
    kind: object
    target: object | None
    cloud_account_id: object | None = None
    events: list[object] | None = None
    secret: object | None = None
    enabled: bool = True


def require_admin(actor: Principal) -> None:
    if not (actor.is_admin or actor == CLI_ACTOR):
        raise DomainError(403, f"not allowed to manage notification channels: {ADMIN} is required")


def describe(channel: NotificationChannel, account_name: str | None = None) -> dict[str, Any]:
    """A channel as the panel and the CLI show it: the target masked, no secret."""
    return {
        "id": str(channel.id),
        "name": channel.name,
        "kind": channel.kind,
        "target": mask(channel.target),
        "account": account_name,
        "cloud_account_id": str(channel.cloud_account_id) if channel.cloud_account_id else None,
        "events": list(channel.events or []),
        "signed": channel.secret is not None,
        "enabled": channel.enabled,
    }


def list_channels(session: Session) -> list[dict[str, Any]]:
    """Every channel by name, described, with its messages by state: two statements."""
    rows = session.execute(
        select(NotificationChannel, CloudAccount.name)
        .outerjoin(CloudAccount, CloudAccount.id == NotificationChannel.cloud_account_id)
        .order_by(NotificationChannel.name)
    ).all()
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for channel_id, state, count in session.execute(
        select(ChannelMessage.channel_id, ChannelMessage.state, func.count()).group_by(
            ChannelMessage.channel_id, ChannelMessage.state
        )
    ):
        counts.setdefault(channel_id, {})[state] = int(count)
    return [
        {**describe(channel, account_name), "messages": counts.get(channel.id, {})}
        for channel, account_name in rows
    ]


def find_channel(session: Session, raw: str | uuid.UUID) -> NotificationChannel:
    """The channel `raw` names: its id, else its name. 400 malformed, 404 unknown."""
    text = str(raw).strip()
    try:
        channel_id: uuid.UUID | None = uuid.UUID(text)
    except ValueError:
        channel_id = None
    found = (
        session.get(NotificationChannel, channel_id)
        if channel_id is not None
        else session.scalars(
            select(NotificationChannel).where(NotificationChannel.name == check_name(text))
        ).one_or_none()
    )
    if found is None:
        raise DomainError(404, f"no notification channel {text[:80]!r}")
    return found


def create_channel(
    session: Session, actor: Principal, fields: ChannelFields
) -> NotificationChannel:
    """Add a channel (audited `channel.created`). 400 bad field, 409 name taken."""
    require_admin(actor)
    values = _checked(session, fields, None)
    channel = NotificationChannel(**values)
    session.add(channel)
    session.flush()
    audit.record(session, "channel.created", actor=actor, details=_trail(channel))
    return channel


def update_channel(
    session: Session, actor: Principal, raw_id: str | uuid.UUID, fields: ChannelFields
) -> NotificationChannel:
    """Change a channel (audited `channel.changed` with what changed, masked)."""
    require_admin(actor)
    channel = find_channel(session, raw_id)
    before = _trail(channel)
    values = _checked(session, fields, channel)
    # Secrets: the trail says they were replaced, never what they are.
    replaced = [key for key in ("target", "secret") if values[key] != getattr(channel, key)]
    for key, value in values.items():
        setattr(channel, key, value)
    session.flush()
    after = _trail(channel)
    changed = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
    audit.record(
        session,
        "channel.changed",
        actor=actor,
        details={"name": channel.name, **changed, "replaced": replaced},
    )
    return channel


def set_enabled(
    session: Session, actor: Principal, raw_id: str | uuid.UUID, enabled: bool
) -> NotificationChannel:
    """Enable or disable a channel (audited `channel.enabled` / `channel.disabled`); a
    disabled channel is owed nothing and its queued messages fail when claimed."""
    require_admin(actor)
    channel = find_channel(session, raw_id)
    channel.enabled = enabled
    session.flush()
    action = "channel.enabled" if enabled else "channel.disabled"
    audit.record(session, action, actor=actor, details=_trail(channel))
    return channel


def delete_channel(session: Session, actor: Principal, raw_id: str | uuid.UUID) -> str:
    """Remove a channel and its messages (audited `channel.deleted`); its name."""
    require_admin(actor)
    channel = find_channel(session, raw_id)
    details = _trail(channel)
    session.delete(channel)
    session.flush()
    audit.record(session, "channel.deleted", actor=actor, details=details)
    return channel.name


def send_test(session: Session, actor: Principal, raw_id: str | uuid.UUID) -> NotificationChannel:
    """Owe a test message to the channel through the outbox (audited
    `channel.test_owed`); the worker sends it once this commits."""
    require_admin(actor)
    channel = find_channel(session, raw_id)
    message_id = channels.owe_test(session, channel.id, actor_email=actor.email, now=utcnow())
    audit.record(
        session,
        "channel.test_owed",
        actor=actor,
        details={**_trail(channel), "message_id": str(message_id)},
    )
    return channel


def _checked(
    session: Session, fields: ChannelFields, current: NotificationChannel | None
) -> dict[str, Any]:
    kind = check_kind(fields.kind)
    if current is not None and kind.value != current.kind and fields.target is None:
        raise DomainError(400, "a channel that changes kind needs its new target", field="target")
    target = (
        check_target(kind, fields.target)
        if fields.target is not None or current is None
        else current.target
    )
    secret = (
        check_secret(kind, fields.secret)
        if fields.secret is not None or current is None or kind.value != current.kind
        else current.secret
    )
    values: dict[str, Any] = {
        "name": check_name(fields.name),
        "kind": kind.value,
        "target": target,
        "secret": secret if kind is ChannelKind.WEBHOOK else None,
        "cloud_account_id": _account(session, fields.cloud_account_id),
        "events": check_events(fields.events),
        "enabled": bool(fields.enabled),
    }
    taken = session.scalars(
        select(NotificationChannel.id).where(NotificationChannel.name == values["name"])
    ).first()
    if taken is not None and (current is None or taken != current.id):
        raise DomainError(409, f"a channel named {values['name']!r} exists already", field="name")
    return values


def _account(session: Session, raw: object | None) -> uuid.UUID | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    account_id = raw if isinstance(raw, uuid.UUID) else parse_uuid(str(raw), what="account id")
    if session.get(CloudAccount, account_id) is None:
        raise DomainError(404, f"no cloud account with id {account_id}", field="account")
    return account_id


def _trail(channel: NotificationChannel) -> dict[str, Any]:
    """What the trail keeps of a channel: never its target in full, nor its secret."""
    return {
        "name": channel.name,
        "kind": channel.kind,
        "target": mask(channel.target),
        "cloud_account_id": str(channel.cloud_account_id) if channel.cloud_account_id else None,
        "events": list(channel.events or []),
        "enabled": channel.enabled,
    }
