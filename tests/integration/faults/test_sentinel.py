"""Redis Sentinel in `REDIS_URL`: the web process (its sign-in throttle included) and a
worker find the master through a real Sentinel on loopback, and a retry asked over the
API is settled once."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.db import db
from tests.integration.faults.conftest import Api, PrivateRedis, lineage, seed
from tests.support.commands import wait_until
from tests.support.smtp import free_port

pytestmark = [pytest.mark.worker, pytest.mark.processes]

MASTER = "ccp-main"


@pytest.fixture
def sentinel(private_redis: PrivateRedis, tmp_path: Path) -> Iterator[int]:
    """A Sentinel watching the private Redis as `MASTER`; its port."""
    port = free_port()
    config = tmp_path / "sentinel.conf"  # Sentinel rewrites its own config file
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {private_redis.port} 1\n"
    )
    process = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)

    def knows_the_master() -> bool:
        try:
            return client.sentinel_get_master_addr_by_name(MASTER) is not None
        except redis.RedisError:
            return False

    try:
        wait_until(knows_the_master, timeout=15, what="the Sentinel to know its master")
        yield port
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def test_web_and_worker_reach_redis_through_sentinel(
    settings, committed_db, processes, mailbox, private_redis, sentinel
):
    through_sentinel = settings.with_overrides(
        redis_url=f"sentinel://127.0.0.1:{sentinel}/0", redis_sentinel_master=MASTER
    )
    env = {
        "SMTP_HOST": mailbox.host,
        "SMTP_PORT": str(mailbox.port),
        "FROM_EMAIL": "purchases@example.com",
    }
    email, (failed,) = seed(db.engine, 1)
    _, web = processes.web(through_sentinel, "web", **env)
    processes.worker(through_sentinel, "sentinel-worker", **env)

    api = Api(web).sign_in(email)  # the sign-in throttle counts in Redis
    outcome = api.settled(api.retry(failed))

    assert outcome["state"] == "succeeded", outcome
    assert lineage(db.engine, [failed]) == (2, 1)
    # The work went through the private Redis the Sentinel named, and nowhere else.
    assert redis.Redis(port=private_redis.port).dbsize() > 0
    wait_until(lambda: mailbox.messages, what="the approval email")
