"""Every task name the product queues by is a task the worker has registered."""

from __future__ import annotations

import pytest

from app import task_names


@pytest.mark.parametrize("name", task_names.ALL)
def test_each_task_name_is_registered_with_the_worker(app, name):
    import tasks  # noqa: F401  (registers the product's tasks, as the worker does)

    assert name in app.extensions["celery"].tasks


def test_every_registered_product_task_has_its_name_in_the_one_module(app):
    import tasks  # noqa: F401

    product = {
        name
        for name in app.extensions["celery"].tasks
        if name.split(".")[0] in {"purchases", "notifications", "maintenance", "channels"}
    }
    assert product == set(task_names.ALL)


def test_beat_schedules_only_registered_tasks(app):
    import tasks  # noqa: F401

    scheduled = {entry["task"] for entry in app.extensions["celery"].conf.beat_schedule.values()}
    assert scheduled <= set(task_names.ALL)
    assert task_names.RECOVER_LAPSED in scheduled
