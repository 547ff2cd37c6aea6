"""Observability: the probes (`/healthz`, `/readyz`) and the Prometheus metrics
(`/metrics`) of the web app, and the task durations the worker observes.

- `views`: the three routes; `access`: who may read `/metrics` (METRICS_TOKEN).
- `health`: the readiness checks (database, Redis, migrations at head).
- `metrics`: what a scrape answers; `figures`: the database's aggregates it reads.
- `task_metrics`: the worker's histogram of task durations (Celery signals), connected
  by the worker's entry point (`tasks`).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from app.observability.views import blueprint

    app.register_blueprint(blueprint)
