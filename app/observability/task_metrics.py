"""Task durations, observed in the worker through Celery's signals: `task_prerun` notes
when a task starts, `task_postrun` observes how long it ran in a histogram labelled by
task name and final state (SUCCESS, FAILURE, RETRY).

The histogram is made on first use in the process that runs tasks. With
`PROMETHEUS_MULTIPROC_DIR` set, prometheus-client keeps its values in files there (one
per process, so the prefork pool's children add up), which the web's `/metrics` reads.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from celery import signals
from prometheus_client import Histogram

# From a quick maintenance sweep to a provider call near the tasks' time limit (5 min).
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_DISPATCH = "ccp-task-duration"

_started: dict[str, float] = {}


@cache
def task_duration() -> Histogram:
    return Histogram(
        "ccp_task_duration_seconds",
        "How long each Celery task ran, by task name and final state",
        ["task", "state"],
        buckets=BUCKETS,
    )


def observe_task_durations() -> None:
    """Connect the signal handlers (once per process, whatever the number of calls)."""
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid=f"{_DISPATCH}-start")
    signals.task_postrun.connect(_task_ended, weak=False, dispatch_uid=f"{_DISPATCH}-end")


def _task_started(task_id: str | None = None, **_kwargs: Any) -> None:
    if task_id is not None:
        _started[task_id] = time.monotonic()


def _task_ended(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_kwargs: Any
) -> None:
    started = _started.pop(task_id, None) if task_id is not None else None
    if started is None or task is None:
        return
    name = str(getattr(task, "name", None) or "unknown")
    task_duration().labels(task=name, state=state or "UNKNOWN").observe(time.monotonic() - started)
