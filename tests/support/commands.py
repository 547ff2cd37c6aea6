"""Running the product's own commands as separate processes, as an operator does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from app.config import Settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
T = TypeVar("T")


def product_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a process of the product gets: these settings, plus `extra`."""
    env = os.environ.copy()
    env.pop("FLASK_APP", None)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        REDIS_SENTINEL_MASTER=settings.redis_sentinel_master or "",
        SECRET_KEY=settings.secret_key or "",
    )
    env.update(extra)
    return env


def flask_cli(
    settings: Settings, *args: str, stdin: str | None = None, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """`flask --app app ARGS...` with these settings; never raises on a non-zero exit."""
    return subprocess.run(
        [str(BIN / "flask"), "--app", "app", *args],
        cwd=REPO,
        env=product_env(settings, **extra_env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_celery(settings: Settings, *args: str, **extra_env: str) -> subprocess.Popen[str]:
    """`celery -A tasks ARGS...` with these settings; its output merged into stdout."""
    return subprocess.Popen(
        [str(BIN / "celery"), "-A", "tasks", *args],
        cwd=REPO,
        env=product_env(settings, **extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def start_worker(settings: Settings, name: str, **extra_env: str) -> subprocess.Popen[str]:
    """`celery -A tasks worker` as the Procfile starts it, one process, solo pool."""
    return start_celery(
        settings,
        "worker",
        "--loglevel=WARNING",
        "--concurrency=1",
        "--pool=solo",
        "-n",
        f"{name}-{os.getpid()}@%h",
        **extra_env,
    )


def start_flower(settings: Settings, port: int, **extra_env: str) -> subprocess.Popen[str]:
    """`celery -A tasks flower` as the Procfile starts it, on 127.0.0.1:`port`.

    Flower asks for the credentials `flowerconfig.py` gives it (`FLOWER_BASIC_AUTH`, or
    the pair generated into the instance folder); Flower options (`FLOWER_*`) go in
    `extra_env`. Stop it with `stop_worker`.
    """
    return start_celery(settings, "flower", "--address=127.0.0.1", f"--port={port}", **extra_env)


def stop_worker(process: subprocess.Popen[str]) -> str:
    """Stop a worker started by `start_worker` (warm shutdown, then kill); its output."""
    process.terminate()
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output or ""


def wait_until(predicate: Callable[[], T | None], *, timeout: float = 30, what: str = "") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


def product_python(
    settings: Settings, script: str, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run a Python `script` with these settings in a process of its own."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=product_env(settings, **extra_env),
        capture_output=True,
        text=True,
        timeout=120,
    )
