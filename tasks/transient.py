"""The one policy for failures in tasks: transient database errors are retried with
backoff; anything else (or the last transient one) fails the task, visibly.

Every task of the product is declared with `database_task`, a `shared_task` (bound to
whichever Celery app is current: the worker's, or a test's) that applies it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Retry
from sqlalchemy.exc import DBAPIError, OperationalError

from app.domain.outbox import backoff_seconds

# Database hiccups retried with backoff before a task gives up.
DATABASE_MAX_RETRIES = 5

log = logging.getLogger(__name__)


def is_transient_database_error(exc: BaseException) -> bool:
    """A lost connection, a deadlock, a serialization failure or a busy SQLite: the
    same work may succeed if run again. Anything else (a constraint, a bug) will not."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def database_task(
    name: str,
    *,
    give_up: Callable[..., None] | None = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], Task]:
    """Declare a task `name` whose body is `fn(task, *args)`.

    A transient database error is retried after 1, 2, 4 ... seconds, up to
    `DATABASE_MAX_RETRIES` times. After that, or on any other error, `give_up(*args,
    reason=...)` records the failure where its users will look (if given), and the
    error propagates: the task fails, in the logs and in Flower.
    """

    # Celery's own limit (3 by default) must not cut the policy short; a task that also
    # retries for other reasons (SMTP backoff) passes its own, or None.
    options.setdefault("max_retries", DATABASE_MAX_RETRIES)

    def decorate(fn: Callable[..., Any]) -> Task:
        @shared_task(name=name, bind=True, **options)
        @functools.wraps(fn)
        def run(task: Task, *args: Any) -> Any:
            try:
                return fn(task, *args)
            except Retry:
                raise
            except Exception as exc:
                retries = task.request.retries
                if is_transient_database_error(exc) and retries < DATABASE_MAX_RETRIES:
                    raise task.retry(exc=exc, countdown=backoff_seconds(retries)) from exc
                reason = f"{type(exc).__name__}: {exc}"[:2000]
                log.error("%s%s failed: %s", name, args, reason)
                if give_up is not None:
                    give_up(*args, reason=reason)
                raise

        return run

    return decorate
