"""The one policy for failures in tasks: transient database errors are retried with
backoff by Celery's own retry machinery; anything else (or the last transient one)
fails the task, visibly.

Every task of the product is a `ProductTask`, declared with `database_task`: a
`shared_task` (bound to whichever Celery app is current: the worker's, or a test's).

Budgets are separate. The database's is Celery's retry counter (`max_retries`,
`DATABASE_MAX_RETRIES`), spent only on database errors. Work retried for another
reason keeps its own count where its users look (an email's attempts are counted on
its notification) and comes back as a fresh message through `ProductTask.send_again`,
with the database's budget whole again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from celery import Task, shared_task
from celery.exceptions import Ignore, Reject, Retry
from sqlalchemy.exc import DBAPIError, OperationalError

from app import background

# Database hiccups retried before a task gives up, after 1, 2, 4, 8, 16 seconds at most
# (Celery's full jitter: a random wait up to that, so workers that lost the database
# together do not come back together).
DATABASE_MAX_RETRIES = 5
DATABASE_BACKOFF_SECONDS = 1
DATABASE_BACKOFF_MAX_SECONDS = 60

log = logging.getLogger(__name__)

# Exceptions Celery uses to steer a task (retry, drop, reject): never a failure.
CONTROL_FLOW = (Retry, Ignore, Reject)


def is_transient_database_error(exc: BaseException) -> bool:
    """A lost connection, a deadlock, a serialization failure or a busy SQLite: the
    same work may succeed if run again. Anything else (a constraint, a bug) will not."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class TransientDatabaseError(Exception):
    """A transient database error (its `__cause__`), as Celery's autoretry sees it:
    `autoretry_for` goes by type, and whether a `DBAPIError` is transient is not."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def failure_reason(exc: BaseException) -> str:
    """What a failure says where users look: the error's type and message."""
    if isinstance(exc, TransientDatabaseError):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"[:2000]


class ProductTask(Task):
    """A task of the product: a transient database error is retried by Celery
    (`autoretry_for`) after an exponential, jittered backoff, `DATABASE_MAX_RETRIES`
    times; then, or on any other error, `give_up(*args, reason=...)` (when the task has
    one) records the failure where its users will look, and the error propagates: the
    task fails, in the logs and in Flower.

    `give_up` runs in the Flask app's context, like the task's body: it is called from
    inside the run (for an error that is not transient) or from `retry` (when Celery
    finds the database's budget spent).
    """

    autoretry_for = (TransientDatabaseError,)
    max_retries = DATABASE_MAX_RETRIES
    retry_backoff = DATABASE_BACKOFF_SECONDS
    retry_backoff_max = DATABASE_BACKOFF_MAX_SECONDS
    retry_jitter = True
    give_up: Callable[..., None] | None = None

    @property
    def run_id(self) -> str:
        """This run's task id, under which it holds its leases (a running task has one)."""
        run_id = self.request.id
        if not run_id:
            raise RuntimeError(f"{self.name} has no task id: it is not running")
        return run_id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The app's own task class (app.background's) runs a task inside its Flask
        # app's context; a product task runs the same way, whichever app is current.
        app_task = self.app.Task
        if issubclass(app_task, ProductTask):
            return super().__call__(*args, **kwargs)
        return app_task.__call__(self, *args, **kwargs)

    def retry(self, *args: Any, **kwargs: Any) -> Retry:
        """Celery's `retry`; past the budget Celery raises the error itself, and the
        task gives up on it first."""
        try:
            return super().retry(*args, **kwargs)
        except CONTROL_FLOW:
            raise
        except Exception as exc:
            self.record_failure(exc)
            raise

    def record_failure(self, exc: BaseException) -> None:
        """The task failed for good: log it, and let `give_up` record it."""
        reason = failure_reason(exc)
        log.error("%s%s failed: %s", self.name, tuple(self.request.args or ()), reason)
        if self.give_up is not None:
            self.give_up(*(self.request.args or ()), reason=reason)

    def send_again(
        self, args: Sequence[str | int], *, countdown: float, exc: Exception
    ) -> NoReturn:
        """Retry later for a reason other than the database, whose count is kept
        elsewhere: a fresh message under the same task id, `countdown` seconds from
        now, with the database's budget whole. Raises `Retry` (Flower shows the task
        retrying, with `exc`). Should the broker be down, beat finds the work by its
        row and queues it again."""
        background.enqueue(self.name, args, task_id=self.request.id, countdown=countdown)
        # celery-types declare `when` as numbers.Real, which mypy never matches with float.
        raise Retry(exc=exc, when=countdown)  # type: ignore[arg-type]


def database_task(
    name: str,
    *,
    give_up: Callable[..., None] | None = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], Task]:
    """Declare a `ProductTask` `name` whose body is `fn(task, *args)`.

    A transient database error is retried by Celery with backoff, `DATABASE_MAX_RETRIES`
    times (`max_retries` in `options` sets another budget). After that, or on any other
    error, `give_up(*args, reason=...)` records the failure (if given), and the error
    propagates: the task fails, in the logs and in Flower.
    """

    def decorate(fn: Callable[..., Any]) -> Task:
        @functools.wraps(fn)
        def run(task: ProductTask, *args: Any) -> Any:
            try:
                return fn(task, *args)
            except CONTROL_FLOW:
                raise
            except Exception as exc:
                if is_transient_database_error(exc):
                    # Celery retries it (autoretry_for), or gives up past the budget.
                    raise TransientDatabaseError(failure_reason(exc)) from exc
                task.record_failure(exc)
                raise

        hook = staticmethod(give_up) if give_up is not None else None
        return shared_task(name=name, bind=True, base=ProductTask, give_up=hook, **options)(run)

    return decorate
