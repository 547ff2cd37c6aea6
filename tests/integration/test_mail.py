"""`app.mail` against a real SMTP server on loopback: kept connections, failures."""

from __future__ import annotations

from email.mime.text import MIMEText

import pytest
from aiosmtpd.controller import Controller

from app import mail
from app.config import Settings
from tests.support.smtp import ScriptedSmtp, free_port


@pytest.fixture
def server():
    handler = ScriptedSmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, Settings(database_url="sqlite://", smtp_port=controller.port)
    mail._drop()
    controller.stop()


def message(to: str, body: str = "hello") -> MIMEText:
    built = MIMEText(body + "\n" + "x" * 300, "plain", "utf-8")
    built["From"], built["To"], built["Subject"] = "purchases@example.com", to, "test"
    return built


def test_messages_share_one_connection(server):
    handler, settings = server
    for n in range(3):
        mail.send_message(settings, message("ops@example.com", f"message {n}"))
    assert handler.sessions == 1
    assert len(handler.messages) == 3
    assert all(b"\r\n" in envelope.original_content for envelope in handler.messages)


def test_a_refusal_is_permanent_and_the_connection_is_not_reused(server):
    handler, settings = server
    handler.reply = "550 5.1.1 no such mailbox"
    with pytest.raises(mail.SendFailure) as refused:
        mail.send_message(settings, message("nobody@example.com"))
    assert refused.value.permanent
    assert refused.value.reply == "550 5.1.1 no such mailbox"
    handler.reply = None
    mail.send_message(settings, message("ops@example.com"))
    assert handler.sessions == 2 and len(handler.messages) == 1


def test_an_idle_connection_is_replaced(server, monkeypatch):
    handler, settings = server
    monkeypatch.setattr(mail, "REUSE_SECONDS", 0.0)
    mail.send_message(settings, message("ops@example.com"))
    mail.send_message(settings, message("ops@example.com"))
    assert handler.sessions == 2 and len(handler.messages) == 2


def test_nothing_listening_is_transient():
    settings = Settings(database_url="sqlite://", smtp_port=free_port())
    with pytest.raises(mail.SendFailure) as failed:
        mail.send_message(settings, message("ops@example.com"))
    assert not failed.value.permanent
