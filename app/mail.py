"""Sending mail over SMTP, and telling a permanent refusal from a transient failure.

`SMTP_HOST`/`SMTP_PORT`, optional `SMTP_USERNAME`/`SMTP_PASSWORD` and `SMTP_STARTTLS`.
A 5xx reply is permanent; a 4xx reply, a refused or dropped connection or a timeout is
transient and worth retrying later.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from app.config import Settings

SMTP_TIMEOUT_SECONDS = 30


class SendFailure(Exception):
    """The message was not accepted. `reply` is what the server (or the network) said."""

    def __init__(self, reply: str, *, permanent: bool) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


def send_message(settings: Settings, message: EmailMessage) -> None:
    """Deliver `message` to the configured SMTP server, or raise `SendFailure`."""
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise _from_recipients(exc.recipients) from exc
    except smtplib.SMTPResponseException as exc:
        raise SendFailure(
            _reply(exc.smtp_code, exc.smtp_error), permanent=exc.smtp_code >= 500
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SendFailure(str(exc) or type(exc).__name__, permanent=False) from exc


def _from_recipients(recipients: dict[str, tuple[int, bytes]]) -> SendFailure:
    replies = [_reply(code, text) for code, text in recipients.values()]
    permanent = all(code >= 500 for code, _ in recipients.values())
    return SendFailure("; ".join(replies), permanent=permanent)


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {message}".strip()
