"""Benchmarks: standalone scripts that drive the product as separate processes.

`python -m bench.retry_throughput --help`. Nothing here is imported by the product.
The machinery is shared by every benchmark, and built on the test suite's helpers
(`tests.support`, `tests.factories`) where the two need the same thing:

- `bench.services`: what a run borrows (a throwaway PostgreSQL database, a Redis
  database of its own) and the check that it is all there;
- `bench.processes`: the web app and the Celery worker as process groups, and the CPU
  each group spends;
- `bench.mail`: the SMTP server's handler that counts approval emails;
- `bench.http_client`: signed-in API clients;
- `bench.pgbench`: the bare three writes of a retry, as a baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tests.support.commands import wait_until

T = TypeVar("T")


class BenchError(RuntimeError):
    """The run cannot go on; the message says what is wrong."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    context: Callable[[], str] | None = None,
) -> T:
    """`tests.support.commands.wait_until`, failing the run rather than a test; the
    message ends with `context()` (a process's log, the counts so far) if given."""
    try:
        return wait_until(predicate, timeout=timeout, what=what)
    except AssertionError as exc:
        detail = context() if context is not None else ""
        raise BenchError(f"{exc}\n{detail}".rstrip()) from None
