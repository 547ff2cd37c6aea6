"""An approval email's links: each copy's approve and cancel tokens (32 random bytes),
of which only the SHA-256 is stored (`approval_tokens`), with the recipient the click
acts as and an expiry (APPROVAL_TOKEN_TTL_HOURS)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import ApprovalToken, PurchaseExecution
from app.services import approval_email


def new_token() -> tuple[str, str]:
    """A fresh link token (32 random bytes) and the hash that is all we store."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedLinks:
    links: approval_email.Links
    token_hashes: tuple[str, str]  # approve, cancel
    expires_at: datetime


def issue_links(
    session: Session,
    execution: PurchaseExecution,
    recipient: str,
    *,
    settings: Settings,
    now: datetime,
) -> IssuedLinks:
    """A fresh approve and a fresh cancel link for `execution`, valid for
    APPROVAL_TOKEN_TTL_HOURS; only their hashes are stored, each with the recipient,
    whom acting by the link names as the approver or canceller."""
    return issue_links_for_many(session, [execution], recipient, settings=settings, now=now)[0]


def issue_links_for_many(
    session: Session,
    executions: Sequence[PurchaseExecution],
    recipient: str,
    *,
    settings: Settings,
    now: datetime,
) -> list[IssuedLinks]:
    """`issue_links` for each of `executions` (a digest's rows), in one statement."""
    expires_at = now + timedelta(hours=settings.approval_token_ttl_hours)
    issued, rows = [], []
    for execution in executions:
        (approve, approve_hash), (cancel, cancel_hash) = new_token(), new_token()
        rows += [
            {
                "token_hash": token_hash,
                "execution_id": execution.execution_id,
                "action": action,
                "recipient": recipient,
                "expires_at": expires_at,
            }
            for action, token_hash in (("approve", approve_hash), ("cancel", cancel_hash))
        ]
        issued.append(
            IssuedLinks(
                links=approval_email.links_for(execution, approve, cancel, settings),
                token_hashes=(approve_hash, cancel_hash),
                expires_at=expires_at,
            )
        )
    if rows:
        session.execute(insert(ApprovalToken), rows)
    return issued
