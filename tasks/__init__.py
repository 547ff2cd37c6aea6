"""Celery entry point: `celery -A tasks worker|beat|flower`.

Importing this package registers every task; nothing connects until a command runs.
"""

from tasks import maintenance, notifications, purchases  # noqa: F401  (registers the tasks)
from tasks.worker import celery, celery_init_app

__all__ = ["celery", "celery_init_app"]
