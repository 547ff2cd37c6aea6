"""Task durations in `/metrics`: observed in the worker (Celery's task_prerun and
task_postrun signals), read by the web app.

- In one process (the `celery_worker` fixture's worker thread): prometheus-client's
  own registry.
- Across processes (`celery -A tasks worker` as the Procfile starts it, prefork pool):
  multiprocess mode, the worker's children writing into `PROMETHEUS_MULTIPROC_DIR`
  and the web's `/metrics` adding up the files.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import task_names
from app.observability.metrics import MULTIPROC_DIR
from tests.support.commands import start_celery, stop_worker, wait_until

COUNT = "ccp_task_duration_seconds_count"
SUM = "ccp_task_duration_seconds_sum"


def durations(app, task: str) -> tuple[float, float]:
    """(how many runs, seconds in all) of `task` that succeeded, as /metrics says."""
    response = app.test_client().get("/metrics")
    assert response.status_code == 200, response.text
    found = {COUNT: 0.0, SUM: 0.0}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name in found and sample.labels == {"task": task, "state": "SUCCESS"}:
                found[sample.name] = sample.value
    return found[COUNT], found[SUM]


@pytest.mark.worker
def test_a_task_run_by_the_worker_shows_its_duration(app, celery_worker):
    before, _ = durations(app, task_names.EXPIRE_PENDING)
    result = app.extensions["celery"].send_task(task_names.EXPIRE_PENDING)
    result.get(timeout=30)
    # task_postrun follows the stored result: wait for it.
    count = wait_until(
        lambda: (durations(app, task_names.EXPIRE_PENDING)[0] > before) or None,
        timeout=10,
        what="the task's duration in /metrics",
    )
    assert count
    assert durations(app, task_names.EXPIRE_PENDING)[0] == before + 1


@pytest.fixture
def multiprocess_worker(app, settings, committed_db, redis_db, tmp_path) -> Iterator[Path]:
    """A prefork worker process writing its metrics into a folder of its own."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    process = start_celery(
        settings,
        "worker",
        "--loglevel=WARNING",
        "--concurrency=2",
        "-n",
        f"metrics-{time.monotonic_ns()}@%h",
        **{MULTIPROC_DIR: str(folder)},
    )
    celery_app = app.extensions["celery"]
    deadline = time.monotonic() + 30
    while not celery_app.control.ping(timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"worker did not start:\n{stop_worker(process)}")
    yield folder
    stop_worker(process)


@pytest.mark.worker
def test_the_worker_process_durations_reach_the_web_through_the_folder(
    app, multiprocess_worker, monkeypatch
):
    celery_app = app.extensions["celery"]
    runs_asked = 3  # more than this process's own registry may hold (one per backend)
    for _ in range(runs_asked):
        celery_app.send_task(task_names.EXPIRE_PENDING).get(timeout=30)

    monkeypatch.setenv(MULTIPROC_DIR, str(multiprocess_worker))
    count = wait_until(
        lambda: durations(app, task_names.EXPIRE_PENDING)[0] >= runs_asked or None,
        timeout=10,
        what="the runs in /metrics",
    )
    assert count
    runs, seconds = durations(app, task_names.EXPIRE_PENDING)
    assert runs == runs_asked  # the worker's runs, none of this process's own
    assert seconds > 0
    assert list(multiprocess_worker.glob("histogram_*.db"))
