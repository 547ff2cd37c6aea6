"""`channels.send`: one notification-channel message, settled once; and
`channels.check_failed_money`, beat's check of the money stuck in failed rows. Thin:
the outbox lives in `app.services.channels` and `app.services.channels_delivery`."""

from __future__ import annotations

import uuid
from decimal import Decimal

from celery import Task

from app import background
from app.config import get_settings
from app.db import unit_of_work, utcnow
from app.services import channels, channels_delivery, leases
from app.task_names import CHECK_FAILED_MONEY, SEND_CHANNEL_MESSAGE
from tasks.transient import ProductTask, database_task


class ChannelSendFailed(Exception):
    """A channel did not take a message (what Flower shows of a retry)."""


@database_task(SEND_CHANNEL_MESSAGE, ignore_result=True)
def send_channel_message(task: ProductTask, message_id: str) -> str:
    """Claim the message, send it through Apprise with no transaction open, record what
    happened. A failure is retried after EMAIL_RETRY_BASE_SECONDS, doubling,
    EMAIL_MAX_RETRIES times (counted on the message, each a fresh task message), then
    the message fails for good with the error."""
    settings = get_settings()
    owner = task.run_id
    with leases.holding(owner):
        with unit_of_work() as session:
            message = channels_delivery.claim(
                session, uuid.UUID(message_id), owner=owner, now=utcnow()
            )
        if message is None:
            return "nothing to send"
        failure = channels_delivery.deliver(settings, message)
        with unit_of_work() as session:
            if failure is None:
                channels_delivery.record_sent(session, message, now=utcnow())
                return "sent"
            wait = channels_delivery.record_failure(
                session, message, failure, settings=settings, now=utcnow()
            )
    if wait is None:
        return "failed"
    task.send_again([message_id], countdown=wait, exc=ChannelSendFailed(failure.reason))


def recover_lapsed_messages() -> int:
    """The sweep's part (`maintenance.recover_lapsed_work`): messages whose sender died
    or whose task the broker lost, handed back and queued again. How many."""
    with unit_of_work() as session:
        lapsed = channels_delivery.lapsed_messages(session, now=utcnow())
    for message_id in lapsed:
        background.enqueue(SEND_CHANNEL_MESSAGE, [str(message_id)])
    return len(lapsed)


@database_task(CHECK_FAILED_MONEY)
def check_failed_money(_task: Task) -> int:
    """Owe the failure digest when failed rows hold CHANNEL_FAILED_MONEY_THRESHOLD or
    more (0: never): at most one a day per threshold. How many messages it owed."""
    threshold = Decimal(str(get_settings().channel_failed_money_threshold))
    if threshold <= 0:
        return 0
    with unit_of_work() as session:
        return len(channels.owe_failure_digest(session, threshold=threshold, now=utcnow()))
