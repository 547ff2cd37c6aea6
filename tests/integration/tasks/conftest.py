"""Fixtures of the worker tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.support.commands import start_celery, start_worker, stop_worker
from tests.support.smtp import ScriptedSmtp, free_port


@pytest.fixture
def scripted_smtp(app, settings, monkeypatch):
    """Start SMTP servers on demand; the app's settings point at the latest one."""
    controllers: list[Controller] = []

    def start(reply: str | None = None, port: int | None = None, **overrides) -> ScriptedSmtp:
        handler = ScriptedSmtp(reply)
        port = port or free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        point_settings_at(port, **overrides)
        return handler

    def point_settings_at(port: int, **overrides) -> None:
        changed = settings.with_overrides(smtp_port=port, **overrides)
        monkeypatch.setitem(app.extensions, "settings", changed)

    start.point_settings_at = point_settings_at
    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def worker_processes(app, settings, smtp_server, committed_db, redis_db) -> Iterator[list]:
    """Starts `celery -A tasks worker` processes on demand; stops what is left after."""
    started: list[subprocess.Popen] = []
    celery_app = app.extensions["celery"]

    def start(name: str, *, wait: bool = True) -> subprocess.Popen:
        """Start worker `name`; with `wait`, return once it answers a ping (a solo
        worker busy with a task cannot answer one)."""
        process = start_worker(
            settings,
            name,
            SMTP_HOST=smtp_server.host,
            SMTP_PORT=str(smtp_server.port),
            FROM_EMAIL=settings.from_email,
        )
        started.append(process)
        deadline = time.monotonic() + 30
        while wait and not celery_app.control.ping(destination=[_node(name)], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker {name} did not start:\n{stop_worker(process)}")
        return process

    yield start
    for process in started:
        if process.poll() is None:
            stop_worker(process)


def _node(name: str) -> str:
    """The node name `start_worker` gives a worker."""
    return f"{name}-{os.getpid()}@{socket.gethostname()}"


@pytest.fixture
def beat(settings, committed_db, redis_db, tmp_path) -> Iterator[None]:
    """`celery -A tasks beat` for the whole test (the sweep every 5 s)."""
    process = start_celery(
        settings, "beat", "--loglevel=WARNING", "-s", str(tmp_path / "beat-schedule")
    )
    yield
    stop_worker(process)


@pytest.fixture
def workers(settings, smtp_server) -> Iterator:
    """Start solo workers on demand, with extra environment; stop what is left after.
    Unlike `worker_processes`, it does not wait for a ping (`flows.ready` does)."""
    started = []

    def start(name: str, **env: str):
        env = {
            "SMTP_HOST": smtp_server.host,
            "SMTP_PORT": str(smtp_server.port),
            "FROM_EMAIL": settings.from_email or "purchases@example.com",
            **env,
        }
        process = start_worker(settings, name, **env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            stop_worker(process)
