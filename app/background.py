"""The Celery app, made in the app factory as Flask's `examples/celery` does it, and the
one way the product hands work to it.

`celery_init_app` builds a Celery app whose tasks run inside this Flask app's context
(`FlaskTask`), configured from `celeryconfig` (Celery settings only) and pointed at
the Redis of the app's validated `Settings`. The tasks themselves live in `tasks/`
(`shared_task`s, bound to whichever app is current); nothing here imports them: the
web app queues work by task name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import Celery, Task
from flask import Flask, current_app
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from app import task_names
from app.config import Settings

log = logging.getLogger(__name__)


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app: Celery = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object("celeryconfig")
    sentinel = settings.redis.celery_transport_options()
    celery_app.conf.update(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        broker_transport_options={**celery_app.conf.broker_transport_options, **sentinel},
        result_backend_transport_options={
            **celery_app.conf.result_backend_transport_options,
            **sentinel,
        },
    )
    celery_app.conf.beat_schedule = _with_schedule_check(
        celery_app.conf.beat_schedule, float(settings.schedule_check_seconds)
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def _with_schedule_check(schedule: dict[str, Any], every: float) -> dict[str, Any]:
    """Beat's schedule with the release of scheduled purchases every `every` seconds
    (SCHEDULE_CHECK_SECONDS); a run still waiting after that is dropped for the next."""
    changed = {}
    for name, entry in schedule.items():
        if entry["task"] == task_names.RELEASE_DUE:
            options = {**entry.get("options", {}), "expires": every}
            entry = {**entry, "schedule": every, "options": options}
        changed[name] = entry
    return changed


def enqueue(
    task_name: str,
    args: Sequence[str | int],
    *,
    task_id: str | None = None,
    countdown: float | None = None,
) -> bool:
    """Queue `task_name(*args)` (ids only) after the caller's transaction has committed,
    to run at once or `countdown` seconds from now.

    The committed row is the record of the work. If the broker cannot be reached, this
    logs and returns False instead of failing the caller: beat finds the row and queues
    it once the broker is back.
    """
    try:
        current_app.extensions["celery"].send_task(
            task_name, args=list(args), task_id=task_id, countdown=countdown, ignore_result=True
        )
    except (KombuOperationalError, RedisError) as exc:
        log.warning("%s%s not queued yet (%s); beat will queue it", task_name, tuple(args), exc)
        return False
    return True
