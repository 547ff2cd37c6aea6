"""An SMTP server on loopback that records what it accepts (aiosmtpd).

Shared by the test suite and the benchmarks.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default as default_policy

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScriptedSmtp:
    """An aiosmtpd handler that keeps what it accepts and counts sessions (EHLO).

    With `reply` set (a 4xx or 5xx line), every recipient is refused with it; `refused`
    maps single addresses to the line that refuses them.
    """

    def __init__(self, reply: str | None = None) -> None:
        self.reply = reply
        self.refused: dict[str, str] = {}
        self.sessions = 0
        self.messages: list = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reply or address in self.refused:
            return self.reply or self.refused[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted"


@dataclass(frozen=True)
class Received:
    """One message as its reader sees it: whom it went to, its subject and its parts."""

    to: str
    subject: str
    text: str
    html: str | None


def read(envelope) -> Received:
    """The message an SMTP envelope carries, decoded."""
    message = message_from_bytes(envelope.original_content, policy=default_policy)
    html = message.get_body(("html",))
    return Received(
        to=str(message["To"]),
        subject=str(message["Subject"]),
        text=message.get_body(("plain",)).get_content(),
        html=html.get_content() if html is not None else None,
    )


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: ScriptedSmtp

    @property
    def messages(self) -> list:
        return self.handler.messages

    def received(self) -> list[Received]:
        """Every message accepted so far, decoded, in the order it came."""
        return [read(envelope) for envelope in self.messages]


@contextmanager
def smtp_server(
    handler: ScriptedSmtp | None = None, port: int | None = None
) -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 (a free port unless given) for the block's duration."""
    handler = handler or ScriptedSmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    try:
        yield SmtpServer(controller.hostname, controller.port, handler)
    finally:
        controller.stop()
