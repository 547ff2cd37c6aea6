"""The benchmarks' own tests: their checks against planted faults, and short runs of a
benchmark against the whole product (marked `processes`: they start the web app, the
workers and beat as separate processes)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "processes: starts the product's processes (gunicorn, celery worker, beat)"
    )
