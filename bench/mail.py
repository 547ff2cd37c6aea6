"""The benchmark's SMTP handler: the test suite's `ScriptedSmtp`, which also notes when
each message arrived and says when the expected number has, so the clock can stop at
the last accepted approval email. Serve it with `tests.support.smtp.smtp_server`.
"""

from __future__ import annotations

import re
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

from tests.support.smtp import ScriptedSmtp

APPROVE_LINK = re.compile(r"/purchases/approve/([0-9a-f-]{36})")


class CountingSmtp(ScriptedSmtp):
    """Accepts every message; keeps it (parsed after the run) and its arrival time."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.expected = 0
        self.done = threading.Event()

    def expect(self, count: int) -> None:
        """Forget what came so far; `done` is set once `count` messages have come."""
        self.expected = count
        self.messages.clear()
        self.times.clear()
        self.done.clear()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.time()
        reply = await super().handle_DATA(server, session, envelope)
        self.times.append(arrived)
        if self.expected and len(self.times) >= self.expected:
            self.done.set()
        return reply

    def approved_ids(self) -> list[str | None]:
        """The execution id in each message's approve link (None if it has none)."""
        found: list[str | None] = []
        for _subject, text in self.texts():
            match = APPROVE_LINK.search(text)
            found.append(match.group(1) if match else None)
        return found

    def approved_id_lists(self) -> list[list[str]]:
        """The execution ids of every approve link in each message (a digest has many)."""
        return [APPROVE_LINK.findall(text) for _subject, text in self.texts()]

    def texts(self) -> list[tuple[str, str]]:
        """Each message's subject and plain-text body, in arrival order."""
        found = []
        for envelope in self.messages:
            message = message_from_bytes(envelope.original_content, policy=default_policy)
            body = message.get_body(("plain",))
            found.append((str(message["Subject"]), body.get_content() if body is not None else ""))
        return found
