"""What `GET /metrics` answers, in the Prometheus text format (or OpenMetrics, when the
scraper asks for it), through the official `prometheus-client`.

Two kinds of numbers:

- Read at each scrape, by `ProductCollector`: the database's aggregates
  (`app.observability.figures`) and the depth of each Celery queue (Redis `LLEN`).
  When the database or Redis does not answer, its numbers are left out and
  `ccp_metrics_source_up{source}` says 0, so the scrape itself still succeeds.
- Observed in the worker: task durations (`app.observability.task_metrics`). The web
  and the worker are separate processes, so with `PROMETHEUS_MULTIPROC_DIR` set
  (scripts/run and the Procfile set it) every process writes prometheus-client's
  multiprocess files there and `/metrics` adds them up; without it, `/metrics` shows
  what its own process registered (prometheus-client's default registry).

Labels are statuses, kinds, states, audit actions, HTTP statuses, task names and queue
names: nothing names a user, an account or a single purchase.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime

from flask import current_app
from kombu.exceptions import OperationalError as KombuOperationalError
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.config import get_settings
from app.db import fresh_read, utcnow
from app.domain.outbox import NotificationKind, NotificationState
from app.domain.retry import RequestState
from app.domain.statuses import Status
from app.observability import figures
from app.observability.broker import redis_client

PREFIX = "ccp"
# prometheus-client's own variable: it picks its multiprocess storage from it when it is
# first imported, so this module reads the same variable rather than a setting of its own.
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)


class Exposition:
    """Everything one scrape answers (`prometheus_client.generate_latest` takes it)."""

    def __init__(self, sources: Iterable[Collector]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def exposition() -> Exposition:
    """This scrape's sources: the product's numbers, and the observed ones (the
    multiprocess files when `PROMETHEUS_MULTIPROC_DIR` is set, else this process's)."""
    folder = os.environ.get(MULTIPROC_DIR)
    observed: Collector = MultiProcessCollector(None, path=folder) if folder else REGISTRY
    return Exposition([ProductCollector(now=utcnow()), observed])


class ProductCollector:
    """The product's numbers, read now (in the app's context)."""

    def __init__(self, *, now: datetime) -> None:
        self.now = now

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_metrics_source_up",
            "1 when this scrape could read the source (database, redis), else 0",
            labels=["source"],
        )
        database = self._database_families()
        up.add_metric(["database"], 0 if database is None else 1)
        yield from database or ()
        queues = self._queue_families()
        up.add_metric(["redis"], 0 if queues is None else 1)
        yield from queues or ()
        yield up

    def _database_families(self) -> list[Metric] | None:
        try:
            with fresh_read() as session:
                executions = figures.execution_figures(session, now=self.now)
                retry_items = figures.retry_item_figures(session)
                emails = figures.email_figures(session)
                refusals = figures.refusal_figures(session, now=self.now)
                frozen = figures.freeze_on(session)
                channels = figures.channel_message_families(session)
        except SQLAlchemyError as error:
            log.warning("metrics: the database did not answer (%s)", type(error).__name__)
            return None
        return [
            *execution_families(executions, self.now),
            by_labels(
                "retry_batch_items",
                "Retry batch items by state (one per row a retry asked for)",
                ["state"],
                [((state,), count) for state, count in retry_items.items()],
                [(state.value,) for state in RequestState],
            ),
            by_labels(
                "emails",
                "Emails of the outbox (the notifications table) by kind and state",
                ["kind", "state"],
                emails.items(),
                [(kind.value, state.value) for kind in NotificationKind for state in _EMAIL_ENDS],
            ),
            by_labels(
                "refusals_last_hour",
                "Refused requests recorded in the audit trail in the last hour, by audit "
                "action and HTTP status",
                ["action", "code"],
                refusals.items(),
                [],
            ),
            _gauge(
                "purchases_frozen",
                "1 while a freeze keeps every purchase from starting",
                1 if frozen else 0,
            ),
            *channels,
        ]

    def _queue_families(self) -> list[Metric] | None:
        queues = [queue.name for queue in current_app.extensions["celery"].conf.task_queues]
        try:
            with redis_client(get_settings()) as client:
                depths = [int(client.llen(name)) for name in queues]
        except (KombuOperationalError, RedisError, OSError) as error:
            log.warning("metrics: Redis did not answer (%s)", type(error).__name__)
            return None
        depth = GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Messages waiting in each Celery queue", labels=["queue"]
        )
        for name, count in zip(queues, depths, strict=True):
            depth.add_metric([name], count)
        return [depth]


# Every kind's settled ends are listed even when 0, so `rate()` and alerts see them.
_EMAIL_ENDS = (NotificationState.SENT, NotificationState.FAILED)


def execution_families(found: figures.ExecutionFigures, now: datetime) -> list[Metric]:
    """Per status (every status listed, 0 when none), and the two ages."""
    statuses = [status.value for status in Status]
    rows = {status: found.by_status.get(status, figures.StatusFigures()) for status in statuses}
    families = [
        ("executions", "Purchase executions by status", lambda row: row.count),
        (
            "execution_upfront_cost_usd",
            "Sum of total_upfront_cost of the executions in each status (USD)",
            lambda row: float(row.upfront),
        ),
        (
            "execution_estimated_savings_usd",
            "Sum of estimated_savings (yearly) of the executions in each status (USD)",
            lambda row: float(row.savings),
        ),
        (
            "execution_retries",
            "Executions that are retries (successors) by status",
            lambda row: row.retries,
        ),
    ]
    metrics: list[Metric] = []
    for name, documentation, value in families:
        family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=["status"])
        for status, row in rows.items():
            family.add_metric([status], value(row))
        metrics.append(family)
    metrics.append(
        _gauge(
            "oldest_pending_age_seconds",
            "Age of the oldest pending execution (0 when none)",
            _age(found.oldest_pending, now),
        )
    )
    metrics.append(
        _gauge(
            "oldest_approved_not_started_age_seconds",
            "How long the longest-waiting approved execution that may start has not "
            "started (0 when none; rows waiting for their time, a paused plan or a "
            "freeze are not counted)",
            _age(found.oldest_startable, now),
        )
    )
    return metrics


def by_labels(
    name: str,
    documentation: str,
    labels: list[str],
    found: Iterable[tuple[tuple[str, ...], int]],
    always: list[tuple[str, ...]],
) -> GaugeMetricFamily:
    """A gauge per label set found, plus the label sets `always` listed (0 when none)."""
    family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)
    counts = dict(found)
    for key in dict.fromkeys([*always, *counts]):
        family.add_metric(list(key), counts.get(key, 0))
    return family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


def _age(since: datetime | None, now: datetime) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())
