"""A short-lived connection to the product's Redis (`REDIS_URL`, one endpoint or a
Sentinel group), for the probes and the queue depths.

It goes through kombu, as Celery does, so a `sentinel://` URL reaches the current
master and a `rediss://` one speaks TLS exactly as the worker's broker connection does.
Timeouts are short: a probe must answer, not wait for a Redis that does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Connection

from app.config import Settings

TIMEOUT_SECONDS = 2


@contextmanager
def redis_client(settings: Settings) -> Iterator[Any]:
    """The redis-py client of a fresh connection to the broker; raises kombu's
    `OperationalError` (or a `RedisError`) when Redis does not answer."""
    options = {
        **settings.redis.celery_transport_options(),
        "socket_timeout": TIMEOUT_SECONDS,
        "socket_connect_timeout": TIMEOUT_SECONDS,
    }
    with Connection(settings.redis_url, transport_options=options) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=TIMEOUT_SECONDS)
        channel: Any = connection.default_channel  # kombu's Redis channel
        yield channel.client
