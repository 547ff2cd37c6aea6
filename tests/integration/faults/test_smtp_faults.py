"""The SMTP server refuses, then times out, then recovers: in the end each row has
exactly one email, each attempt counted on its notification."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from app.db import fresh_read, unit_of_work, utcnow
from app.domain.statuses import Status
from app.models import Notification
from app.services import notifications
from tasks.notifications import SEND_APPROVAL_EMAIL
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.support.commands import wait_until
from tests.support.smtp import ScriptedSmtp, free_port

pytestmark = pytest.mark.worker

# Longer than the product's SMTP timeout (30 s): the client gives up first.
HANG_SECONDS = 32


class Flaky(ScriptedSmtp):
    """Refuses with `reply` while set; with `hang`, says nothing until the client has
    given up; else takes the message."""

    def __init__(self, reply: str | None) -> None:
        super().__init__(reply)
        self.hang = False
        self.hung = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.hang:
            self.hung += 1
            await asyncio.sleep(HANG_SECONDS)
            return "451 4.4.2 too late"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def states(ids) -> list[Notification]:
    with fresh_read() as session:
        return list(
            session.scalars(
                select(Notification)
                .where(Notification.execution_id.in_(ids))
                .execution_options(populate_existing=True)
            )
        )


@pytest.mark.timeout(150)
def test_smtp_refusing_then_timing_out_then_recovering_sends_one_email_per_row(
    app, settings, committed_db, celery_worker, request, monkeypatch
):
    handler = Flaky("451 4.3.0 try again later")
    server = Controller(handler, hostname="127.0.0.1", port=free_port())
    server.start()
    request.addfinalizer(server.stop)
    # The worker runs in this process (threads): it reads the app's settings.
    changed = settings.with_overrides(smtp_port=server.port, email_retry_base_seconds=0.5)
    monkeypatch.setitem(app.extensions, "settings", changed)
    with unit_of_work() as session:
        account = make_account(session)
        creator = make_user(session)
        rows = [
            make_execution(
                session,
                Status.PENDING,
                created_by=creator,
                cloud_account_id=account.id,
                recommendations=[recommendation(count=1 + n)],
            )
            for n in range(2)
        ]
        ids = [row.execution_id for row in rows]
        for execution_id in ids:
            notifications.owe_approval_email(session, execution_id, now=utcnow())
    for execution_id in ids:
        app.extensions["celery"].send_task(SEND_APPROVAL_EMAIL, args=[str(execution_id)])

    wait_until(
        lambda: all(n.attempts >= 1 and n.error for n in states(ids)),
        what="every email refused once",
    )
    handler.hang = True
    wait_until(lambda: handler.hung >= len(ids), timeout=30, what="both attempts hanging")
    handler.reply, handler.hang = None, False  # recovered, for the attempts after the timeout

    sent = wait_until(
        lambda: (found := states(ids)) and all(n.state == "sent" for n in found) and found,
        timeout=90,
        what="every email sent",
    )
    time.sleep(1)  # give a stray second copy every chance to arrive
    assert all(n.attempts >= 3 for n in sent), [(n.attempts, n.error) for n in sent]
    assert len(handler.messages) == len(ids)
    assert all(n.error is None for n in sent)
