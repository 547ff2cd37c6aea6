"""Flower, started as the Procfile starts it, asks for HTTP basic authentication
(flowerconfig.py), DNS rebinding included, sees the product's tasks under their stable
names with their final states, through the task events the worker sends on its own
(celeryconfig), and every task's arguments are ids only (nothing secret or personal in
a broker message or on Flower's pages).
"""

from __future__ import annotations

import ast
import base64
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from celery import Celery
from flask import Flask
from sqlalchemy.orm import Session

from app import background
from app.config import INSTANCE_DIR, Settings
from app.db import unit_of_work
from app.domain.statuses import Status
from app.instance import flower_credentials
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.integration.tasks.flows import execution, failed_row, queue_retry, settled
from tests.support.commands import start_flower, start_worker, stop_worker, wait_until
from tests.support.smtp import SmtpServer, free_port

pytestmark = pytest.mark.worker

RETRY_TASK = "purchases.retry_execution"
EXECUTE_TASK = "purchases.execute"
FINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED", "REJECTED"}
CREDENTIALS = "ops:a-flower-test-password"
Task = dict[str, Any]


@contextmanager
def running(process: subprocess.Popen[str], name: str) -> Iterator[subprocess.Popen[str]]:
    """Stops `process` when the block ends; a failure inside the block carries its output."""
    try:
        yield process
    except Exception as exc:
        output = stop_worker(process)
        raise AssertionError(f"{exc}\n----- {name} output -----\n{output}") from exc
    finally:
        if process.poll() is None:
            stop_worker(process)


def alive(process: subprocess.Popen[str], name: str) -> None:
    if process.poll() is not None:
        raise AssertionError(f"{name} exited early with status {process.returncode}")


def answers_ping(celery_app: Celery, worker: subprocess.Popen[str], node: str) -> bool:
    alive(worker, "the worker")
    return bool(celery_app.control.ping(destination=[node], timeout=0.5))


def flower_request(
    port: int, path: str, credentials: str | None = CREDENTIALS, host: str | None = None
) -> urllib.request.Request:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if credentials is not None:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if host is not None:
        request.add_unredirected_header("Host", host)
    return request


def flower_status(port: int, path: str, **kwargs: Any) -> tuple[int, bytes]:
    """The status and body of GET `path`, errors included."""
    try:
        with urllib.request.urlopen(flower_request(port, path, **kwargs), timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def flower_get(port: int, path: str) -> Any:
    """GET `path` from Flower's HTTP server, signed in, and decode its JSON answer."""
    with urllib.request.urlopen(flower_request(port, path), timeout=5) as response:  # noqa: S310
        return json.load(response)


def flower_heard_from(flower: subprocess.Popen[str], port: int, node: str) -> bool:
    """Whether Flower's event receiver has had events (heartbeats) from `node`."""
    alive(flower, "Flower")
    try:
        workers = flower_get(port, "/workers?json=1")["data"]
    except (urllib.error.URLError, ConnectionError):
        return False  # not listening yet
    return any(worker["hostname"] == node and worker["status"] for worker in workers)


def final(task: Task | None) -> bool:
    return task is not None and task["state"] in FINAL_STATES


def purchase_tasks(
    flower: subprocess.Popen[str], port: int, request_id: str, execution_id: str
) -> tuple[Task, list[Task]] | None:
    """The retry task of `request_id` and the execute tasks of `execution_id`, as
    Flower's API shows them, once all are in a final state. Tasks of other test runs
    sharing the broker may be there too: only these ones count."""
    alive(flower, "Flower")
    retries: dict[str, Task] = flower_get(port, f"/api/tasks?taskname={RETRY_TASK}")
    mine = [task for task in retries.values() if request_id in task["args"]]
    if not mine:
        return None
    retry_task = mine[0]
    listed: dict[str, Task] = flower_get(port, f"/api/tasks?taskname={EXECUTE_TASK}")
    executes = [task for task in listed.values() if execution_id in task["args"]]
    if final(retry_task) and executes and all(final(task) for task in executes):
        return retry_task, executes
    return None


def succeeded(task: Task, node: str) -> Task:
    """`task`, checked to have succeeded on `node`."""
    assert task["state"] == "SUCCESS", (
        f"{task['name']} ended {task['state']}: {task['exception']}\n{task['traceback']}"
    )
    assert task["worker"] == node, task
    return task


def arguments(task: Task) -> list[str]:
    """The task's arguments, checked to be ids (UUID strings) and chunk numbers, and
    nothing else."""
    args = ast.literal_eval(task["args"])  # Flower shows the repr the task events carry
    assert isinstance(args, list), task
    assert all(
        isinstance(arg, int) or (isinstance(arg, str) and str(uuid.UUID(arg)) == arg)
        for arg in args
    ), task
    assert ast.literal_eval(task["kwargs"]) == {}, task
    return args


def test_flower_shows_the_purchase_tasks_their_final_states_and_id_only_arguments(
    app: Flask,
    settings: Settings,
    smtp_server: SmtpServer,
    committed_db: Session,
    redis_db: redis.Redis,
) -> None:
    celery_app = app.extensions["celery"]
    node = f"flower-{os.getpid()}@{socket.gethostname()}"  # as start_worker names it
    worker_env = {
        "SMTP_HOST": smtp_server.host,
        "SMTP_PORT": str(smtp_server.port),
        "FROM_EMAIL": settings.from_email,
    }
    # Flower must not turn task events on itself: the worker (no -E) sends them
    # because celeryconfig says so.
    flower_env = {"FLOWER_BASIC_AUTH": CREDENTIALS, "FLOWER_ENABLE_EVENTS": "false"}
    port = free_port()

    with running(start_worker(settings, "flower", **worker_env), "worker") as worker:
        wait_until(lambda: answers_ping(celery_app, worker, node), what=f"worker {node}")
        with running(start_flower(settings, port, **flower_env), "Flower") as flower:
            wait_until(
                lambda: flower_heard_from(flower, port, node),
                what=f"Flower on port {port} to hear from worker {node}",
            )

            with unit_of_work() as session:
                alice = make_user(session)
                root = failed_row(session, alice)
                approved = make_execution(
                    session,
                    Status.APPROVED,
                    created_by=alice,
                    cloud_account_id=make_account(session).id,
                    recommendations=[recommendation()],
                    total_upfront_cost="1200.00",
                    estimated_savings="45.50",
                )
            request = settled(queue_retry(alice, root.execution_id))
            assert request.state == "succeeded", request.error
            assert background.enqueue(EXECUTE_TASK, [str(approved.execution_id)])

            retry_task, executes = wait_until(
                lambda: purchase_tasks(flower, port, str(request.id), str(approved.execution_id)),
                what=f"Flower to show {RETRY_TASK} and {EXECUTE_TASK} finished",
            )

            assert succeeded(retry_task, node)["name"] == RETRY_TASK
            assert arguments(retry_task) == [str(request.id), 0]

            assert len(executes) == 1, executes
            execute_task = succeeded(executes[0], node)
            assert arguments(execute_task) == [str(approved.execution_id)]
            assert ast.literal_eval(execute_task["result"]) == Status.COMPLETED.value
            assert execution(approved.execution_id).status == Status.COMPLETED

            # And the tasks these queued (emails): every task this worker ran or is
            # running carries ids only.
            ran = flower_get(port, f"/api/tasks?workername={node}")
            assert {RETRY_TASK, EXECUTE_TASK} <= {task["name"] for task in ran.values()}
            for task in ran.values():
                arguments(task)


@pytest.mark.parametrize("source", ["FLOWER_BASIC_AUTH", "generated"])
def test_flower_asks_for_credentials_whatever_the_host_header(
    settings: Settings, redis_db: redis.Redis, source: str
) -> None:
    """Before: every page and the task list answered anyone on the machine, and a web
    page reached Flower by DNS rebinding (a foreign Host header, no credentials).
    Without FLOWER_BASIC_AUTH the credentials are generated into the checkout's
    instance folder, as `scripts/run` prints them. FLOWER_UNAUTHENTICATED_API opens
    nothing once authentication is on."""
    env = {"FLOWER_UNAUTHENTICATED_API": "true"}
    if source == "FLOWER_BASIC_AUTH":
        env["FLOWER_BASIC_AUTH"] = credentials = CREDENTIALS
    else:
        [credentials] = flower_credentials(Settings.from_env({}))
        assert (INSTANCE_DIR / "flower_credentials").stat().st_mode & 0o777 == 0o600
    port = free_port()
    with running(start_flower(settings, port, **env), "Flower") as flower:

        def answers() -> bool:
            alive(flower, "Flower")
            try:
                return flower_status(port, "/healthcheck")[0] == 200
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_until(answers, what=f"Flower on port {port}")
        rebinding = f"attacker.example:{port}"
        user = credentials.partition(":")[0]
        for path in ("/", "/tasks", "/api/tasks", "/workers?json=1", "/api/workers"):
            assert flower_status(port, path, credentials=None)[0] == 401, path
            assert flower_status(port, path, credentials=f"{user}:wrong")[0] == 401, path
            assert flower_status(port, path, credentials=f"{user}:")[0] == 401, path
            status, body = flower_status(port, path, credentials=None, host=rebinding)
            assert status == 401 and b"task" not in body.lower(), path
            assert flower_status(port, path, credentials=credentials)[0] == 200, path
