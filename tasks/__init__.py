"""The worker's entry point: `celery -A tasks worker|beat|flower`.

Importing this package registers the product's tasks (`shared_task`s) and does nothing
else. Celery then asks for `tasks.celery`, and only then is the Flask app built from
the environment (a bad setting stops the command with a message naming it), with the
Celery app it makes (`app.background.celery_init_app`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import Celery, signals

from app.observability.task_metrics import observe_task_durations
from tasks import channels, maintenance, notifications, purchases  # noqa: F401  (registers the tasks)

observe_task_durations()  # the worker's task durations, for /metrics


def __getattr__(name: str) -> Any:
    if name == "celery":
        return worker_celery()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def worker_celery() -> Celery:
    """The Celery app of a Flask app built from the environment (once per process)."""
    from app import create_app

    return create_app().extensions["celery"]


@signals.worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs: Any) -> None:
    # A prefork child must not share its parent's pooled database connections.
    from app.db import db

    if db.engine is not None:
        db.engine.dispose(close=False)
