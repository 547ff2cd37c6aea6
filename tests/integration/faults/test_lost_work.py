"""Work the broker lost, or a worker took with it when it died, is found again from
the database and settled once.

- Redis restarted (no persistence) with a bulk retry's chunks queued: the messages
  are gone; a worker and beat started afterwards settle every row once.
- Two workers, one killed with SIGKILL in the middle of a chunk: the other settles it.
  Redis would hand the unacknowledged message back only after its visibility timeout
  (over an hour); the chunk's lease, expired, is what brings it back.

Both rest on the lease sweep beat runs every 5 seconds (work whose lease lapsed is
queued again within about 25 s); without it they fail by timing out.
"""

from __future__ import annotations

import re
import time
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from app import task_names
from app.db import db
from tests.integration.faults.conftest import lineage, lock_out_writers, seed
from tests.support.commands import flask_cli, wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.processes,
]

# How long recovery may take: the sweep's period and the lease's expiry, with margin.
RECOVERY_SECONDS = 75


def mail_env(server) -> dict[str, str]:
    return {
        "SMTP_HOST": server.host,
        "SMTP_PORT": str(server.port),
        "FROM_EMAIL": "purchases@example.com",
    }


def ask_bulk_retry(settings, email: str, ids) -> None:
    """`flask executions retry ID... --wait 0`: queued, nobody waits for it (exit 3)."""
    asked = flask_cli(settings, "executions", "retry", *map(str, ids), "--as", email, "--wait", "0")
    assert asked.returncode == 3, asked.stdout + asked.stderr


def once_settled(engine, ids, mailbox) -> tuple[tuple[int, int], int]:
    """The lineage (executions in all, rows retried) and the rows the emails named (a
    bulk retry's digest names each of its rows), once every row has a successor and
    its email, and a moment after: a doubled one would show by then."""
    wait_until(
        lambda: (
            lineage(engine, ids) == (2 * len(ids), len(ids)) and rows_named(mailbox) >= len(ids)
        ),
        timeout=RECOVERY_SECONDS,
        what="every row retried once and its email sent",
    )
    time.sleep(2)
    return lineage(engine, ids), rows_named(mailbox)


def rows_named(mailbox) -> int:
    """How many approve links the received emails carry, in all."""
    named = 0
    for envelope in mailbox.messages:
        message = message_from_bytes(envelope.original_content, policy=default_policy)
        text = message.get_body(("plain",)).get_content()
        named += len(re.findall(r"/purchases/approve/[0-9a-f-]{36}", text))
    return named


@pytest.mark.timeout(180)
def test_redis_restarted_with_chunks_queued_loses_nothing(
    settings, committed_db, private_redis, processes, mailbox
):
    target = settings.with_overrides(redis_url=private_redis.url)
    email, ids = seed(db.engine, 3)
    ask_bulk_retry(target, email, ids)
    private_redis.restart()  # every queued message is gone

    processes.worker(target, "after-restart", **mail_env(mailbox))
    processes.beat(target, **mail_env(mailbox))
    assert once_settled(db.engine, ids, mailbox) == ((2 * len(ids), len(ids)), len(ids))


@pytest.mark.timeout(180)
def test_a_worker_killed_mid_chunk_leaves_its_work_to_the_other(
    settings, committed_db, redis_db, processes, mailbox
):
    email, ids = seed(db.engine, 2)
    ask_bulk_retry(settings, email, ids)
    with lock_out_writers(settings.database_url):
        workers = [processes.worker(settings, name, **mail_env(mailbox)) for name in ("w1", "w2")]
        busy = wait_until(
            lambda: next((w for w in workers if task_names.RETRY in w.output()), None),
            timeout=30,
            what="a worker to take the chunk",
        )
        time.sleep(0.5)  # inside the chunk, waiting for the write lock
        busy.kill()
    processes.beat(settings, **mail_env(mailbox))
    assert once_settled(db.engine, ids, mailbox) == ((2 * len(ids), len(ids)), len(ids))
