"""Sending mail over SMTP, and telling a permanent refusal from a transient failure.

`SMTP_HOST`/`SMTP_PORT`, optional `SMTP_USERNAME`/`SMTP_PASSWORD` and `SMTP_STARTTLS`.
A 5xx reply is permanent; a 4xx reply, a refused or dropped connection or a timeout is
transient and worth retrying later.

Each thread keeps its SMTP connection open between messages (connect, EHLO and QUIT
cost more than the message itself): it is reused while it was used in the last
`REUSE_SECONDS`, and dropped after any failure, so a failure is never retried on it.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import Message

from app.config import Settings

SMTP_TIMEOUT_SECONDS = 30
# Shorter than any SMTP server's idle timeout (RFC 5321 asks servers for 5 minutes).
REUSE_SECONDS = 30.0


class SendFailure(Exception):
    """The message was not accepted. `reply` is what the server (or the network) said."""

    def __init__(self, reply: str, *, permanent: bool) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


@dataclass
class _Kept:
    key: tuple[object, ...]
    pid: int
    smtp: smtplib.SMTP
    last_used: float


_kept = threading.local()


def send_message(settings: Settings, message: Message) -> None:
    """Deliver `message` (From and To set) to the configured server, or raise `SendFailure`."""
    try:
        smtp = _connection(settings)
        wire = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        smtp.sendmail(message["From"], [message["To"]], wire)
    except smtplib.SMTPRecipientsRefused as exc:
        _drop()
        raise _from_recipients(exc.recipients) from exc
    except smtplib.SMTPResponseException as exc:
        _drop()
        permanent = exc.smtp_code >= 500
        raise SendFailure(_reply(exc.smtp_code, exc.smtp_error), permanent=permanent) from exc
    except (smtplib.SMTPException, OSError) as exc:
        _drop()
        raise SendFailure(str(exc) or type(exc).__name__, permanent=False) from exc
    _kept.current.last_used = time.monotonic()


def _connection(settings: Settings) -> smtplib.SMTP:
    key = (settings.smtp_host, settings.smtp_port, settings.smtp_username, settings.smtp_starttls)
    kept: _Kept | None = getattr(_kept, "current", None)
    fresh = (
        kept is not None
        and kept.key == key
        and kept.pid == os.getpid()  # never a connection inherited from a forked parent
        and time.monotonic() - kept.last_used < REUSE_SECONDS
    )
    if kept is not None and fresh:
        return kept.smtp
    _drop()
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
    try:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
    except BaseException:
        smtp.close()
        raise
    _kept.current = _Kept(key, os.getpid(), smtp, time.monotonic())
    return smtp


def _drop() -> None:
    kept: _Kept | None = getattr(_kept, "current", None)
    _kept.current = None
    if kept is None or kept.pid != os.getpid():
        return
    try:
        kept.smtp.quit()
    except (smtplib.SMTPException, OSError):
        kept.smtp.close()


def _from_recipients(recipients: dict[str, tuple[int, bytes]]) -> SendFailure:
    replies = [_reply(code, text) for code, text in recipients.values()]
    permanent = all(code >= 500 for code, _ in recipients.values())
    return SendFailure("; ".join(replies), permanent=permanent)


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {message}".strip()
