"""A product email as the SMTP server receives it: a text and an HTML part, From, To,
a Message-ID and a subject, assembled one way for every kind of email."""

from __future__ import annotations

from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid

from app.config import Settings


def compose(
    subject: str, *, recipient: str, settings: Settings, text: str, html: str
) -> MIMEMultipart:
    """The message. Text, then HTML: a client shows the last alternative it can, so
    every client shows one of them. The Message-ID carries the sender's domain, as
    spam filters expect; a non-ASCII subject is encoded, as headers require."""
    sender = settings.from_email
    if not sender:
        # The callers give the email up (FROM_EMAIL_MISSING) before they render it.
        raise ValueError("an email needs a sender: FROM_EMAIL is not set")
    # email.mime with the compat32 policy: EmailMessage's default policy parses and
    # refolds every header, which cost more CPU than the rest of the task.
    message = MIMEMultipart("alternative")
    # compat32 serializes a Header value itself; typeshed declares only str.
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")  # type: ignore[assignment]
    message["From"] = sender
    message["To"] = recipient
    domain = sender.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(domain=domain)
    message.attach(MIMEText(text, "plain", "utf-8"))
    message.attach(MIMEText(html, "html", "utf-8"))
    return message


def details_url(settings: Settings, execution_id: object) -> str:
    """The panel's details page of an execution, as an email links to it."""
    return f"{settings.app_base_url}/admin/purchases/details/?id={execution_id}"
