"""Scaled out: two web processes (gunicorn, as the production start runs it) and two
workers on one database and one Redis. A session made on one web process works on the
other (one SECRET_KEY), a retry asked on the first is read on the second, and one of
the workers settles it, once."""

from __future__ import annotations

import time

import pytest
import redis

from app.db import db
from tests.integration.faults.conftest import (
    SCALE_OUT_REDIS_DB,
    Api,
    lineage,
    redis_url,
    seed,
)
from tests.support.commands import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.processes]


@pytest.fixture
def scale_out_settings(settings):
    target = settings.with_overrides(redis_url=redis_url(SCALE_OUT_REDIS_DB))
    client = redis.Redis.from_url(target.redis_url)
    client.flushdb()
    yield target
    client.flushdb()
    client.close()


def test_two_web_processes_and_two_workers_share_sessions_and_settle_once(
    scale_out_settings, committed_db, processes, mailbox
):
    settings = scale_out_settings
    env = {
        "SMTP_HOST": mailbox.host,
        "SMTP_PORT": str(mailbox.port),
        "FROM_EMAIL": "purchases@example.com",
    }
    email, (failed,) = seed(db.engine, 1)
    _, web1 = processes.web(settings, "web1", **env)
    _, web2 = processes.web(settings, "web2", **env)
    workers = [processes.worker(settings, name, **env) for name in ("scale1", "scale2")]

    on_web1 = Api(web1).sign_in(email)
    on_web2 = Api(web2, on_web1.http)  # the same cookie jar, the other process
    on_web2.csrf = on_web1.csrf
    me = on_web2.get("/api/auth/me")
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email

    status_url = on_web1.retry(failed)
    outcome = on_web2.settled(status_url)
    assert outcome["state"] == "succeeded", outcome

    wait_until(lambda: mailbox.messages, what="the approval email")
    time.sleep(1)
    assert lineage(db.engine, [failed]) == (2, 1)
    assert len(mailbox.messages) == 1
    ran = [w.name for w in workers if "purchases." in w.output().split("ready.", 1)[-1]]
    assert ran, "no worker ran the retry"
