"""The Celery app, bound to Flask: every task runs inside an app context.

The Celery instance is created here unconfigured; `celeryconfig` is read lazily. The
Flask app is bound by `create_app` (web, tests) or built on worker start.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task, signals
from flask import Flask


class FlaskTask(Task):
    """Runs the task body inside the bound Flask app's context (its own DB session)."""

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with flask_app().app_context():
            return self.run(*args, **kwargs)


celery = Celery("commitments", task_cls=FlaskTask)
celery.config_from_object("celeryconfig")

_bound: dict[str, Flask] = {}


def celery_init_app(app: Flask) -> Celery:
    """Bind the Celery app to `app` and point it at that app's Redis."""
    settings = app.extensions["settings"]
    celery.conf.update(broker_url=settings.redis_url, result_backend=settings.redis_url)
    _bound["app"] = app
    app.extensions["celery"] = celery
    return celery


def flask_app() -> Flask:
    """The bound Flask app, built from the environment the first time if none is."""
    if "app" not in _bound:
        from app import create_app

        create_app()  # binds itself through celery_init_app
    return _bound["app"]


@signals.worker_init.connect
def _bind_on_worker_start(**_kwargs: Any) -> None:
    # Build the app when the worker starts, so a bad setting stops it with a message
    # instead of failing its first task.
    flask_app()
