"""What a run borrows, and gives back: a throwaway PostgreSQL database (the test suite's
`tests.support.databases`, on its server: TEST_DATABASE_ADMIN_URL), a Redis database of
its own, a directory for the logs; and `run`, which a benchmark's `main` hands its body
to: it checks that all is there, borrows, runs the body, gives back, and exits.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import Engine, create_engine

from bench import BenchError, log
from tests.support.commands import BIN
from tests.support.databases import (
    DatabaseUnavailable,
    check_postgres,
    create_database,
    drop_database,
)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The test suite's Redis databases (TEST_REDIS_URL is one of them).
TEST_REDIS_DBS = {13, 14, 15}
# Redis databases a run may take when --redis-url is not given: never 0 (the product's
# default) nor 13-15 (the test suite's). Concurrent runs must not share one: each
# worker would consume the other's tasks, and either run's flush would empty the other's
# queues. So a run claims an empty database with a lock key and gives it back at the end.
REDIS_CANDIDATE_DBS = tuple(range(12, 0, -1))
REDIS_LOCK_KEY = "ccp-bench:lock"


def add_arguments(
    parser: argparse.ArgumentParser, *, redis_dbs: Sequence[int] = REDIS_CANDIDATE_DBS
) -> None:
    """The options `run` reads; `redis_dbs`, the Redis databases a run may claim when
    --redis-url is not given (in order), is the default of --redis-dbs."""
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    parser.add_argument(
        "--redis-url",
        type=_redis_url,
        default=os.environ.get("BENCH_REDIS_URL"),
        help="Redis database for broker and backend (default: the first empty one of "
        "--redis-dbs, locked for the run; never 0 or 13-15)",
    )
    parser.add_argument(
        "--redis-dbs",
        type=_redis_dbs,
        default=tuple(redis_dbs),
        metavar="N,N,...",
        help="Redis databases to claim an empty one of, in order, when --redis-url is not "
        f"given ({','.join(map(str, redis_dbs))}); never 0 or 13-15",
    )
    parser.add_argument("--timeout", type=float, default=600, help="give up after (600 s)")


def _redis_dbs(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("--redis-dbs takes numbers: 7,6,5") from None
    if not numbers or any(n == 0 or n in TEST_REDIS_DBS or n < 0 for n in numbers):
        raise argparse.ArgumentTypeError("--redis-dbs: never 0 nor 13-15")
    return numbers


def _redis_url(url: str) -> str:
    try:
        number = redis_db_number(url)
    except BenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if number in TEST_REDIS_DBS:
        raise argparse.ArgumentTypeError(
            "Redis databases 13-15 belong to the test suite; pick another (default 12)"
        )
    return url


@dataclass(frozen=True)
class Borrowed:
    """What a run has to itself: a tag for the names of what it starts, a directory for
    their logs, a Redis database and the throwaway database (an engine on it)."""

    tag: str
    work_dir: Path
    redis_url: str
    engine: Engine


def run(body: Callable[[Borrowed], None], args: argparse.Namespace) -> int:
    """Check, borrow, run `body`, give back; the exit status: 0, 1 when the run failed,
    2 when something it needs is missing, 130 when interrupted. Messages go to stderr;
    the logs stay (and are named) unless the run succeeded without `--keep`."""
    # `timeout`, `kill`: stop like Ctrl-C does, through the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        preflight(args.redis_url)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tag = secrets.token_hex(4)
    work_dir = Path(tempfile.mkdtemp(prefix=f"ccp_bench_{tag}_"))
    ok = False
    try:
        with ExitStack() as stack:
            ttl = int(args.timeout) * 3 + 1800
            candidates = getattr(args, "redis_dbs", REDIS_CANDIDATE_DBS)
            redis_url = stack.enter_context(
                claimed_redis(args.redis_url, ttl_seconds=ttl, candidates=candidates)
            )
            db_url = stack.enter_context(throwaway_database("ccp_bench", keep=args.keep))
            engine = create_engine(db_url)
            stack.callback(engine.dispose)
            log(f"database {engine.url.database}, Redis {redis_url}, logs in {work_dir}")
            body(Borrowed(tag, work_dir, redis_url, engine))
        ok = True
        return 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything unexpected: a traceback and a non-zero exit
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if ok and not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"logs: {work_dir}")


def preflight(redis_url: str | None) -> None:
    """Say clearly what is missing before creating anything."""
    if shutil.which("pgbench") is None:
        raise BenchError(
            "pgbench is not on PATH (Debian: apt-get install postgresql-client); "
            "it runs the bare-three-writes baseline"
        )
    for tool in ("flask", "gunicorn", "celery"):
        if not (BIN / tool).exists():
            raise BenchError(
                f"{BIN / tool} is missing: run with .venv/bin/python, the project installed"
            )
    try:
        check_postgres()
    except DatabaseUnavailable as exc:
        raise BenchError(f"{exc} (or set TEST_DATABASE_ADMIN_URL)") from exc
    url = redis_url or DEFAULT_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise BenchError(f"Redis is not reachable at {url} ({exc}); start redis-server") from exc


@contextmanager
def throwaway_database(prefix: str, *, keep: bool) -> Iterator[str]:
    """A new, empty PostgreSQL database for the block (its URL), dropped afterwards
    unless `keep`."""
    url = create_database("postgresql", prefix, Path())  # the directory is SQLite's
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {url}")
        else:
            try:
                drop_database(url)
            except Exception as exc:  # the run's outcome matters more
                print(f"warning: dropping {url}: {exc}", file=sys.stderr)


def redis_db_number(redis_url: str) -> int:
    path = redis_url.rsplit("/", 1)[-1] if redis_url.count("/") >= 3 else "0"
    try:
        return int(path or 0)
    except ValueError as exc:
        raise BenchError(f"cannot read the database number of --redis-url {redis_url}") from exc


def with_redis_db(redis_url: str, number: int) -> str:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") >= 3 else redis_url.rstrip("/")
    return f"{base}/{number}"


@contextmanager
def claimed_redis(
    redis_url: str | None,
    *,
    ttl_seconds: int,
    candidates: Sequence[int] = REDIS_CANDIDATE_DBS,
) -> Iterator[str]:
    """An empty Redis database of our own (its URL), locked for the block and emptied
    after it, if the lock is still ours.

    With an explicit `redis_url` that database is used (emptied first) unless another
    run holds its lock; otherwise the first empty, unlocked one of `candidates`."""
    token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    url = _claim(redis_url, token, ttl_seconds, candidates)
    try:
        yield url
    finally:
        try:
            client = redis.Redis.from_url(url)
            if client.get(REDIS_LOCK_KEY) == token.encode():
                client.flushdb()  # which drops the lock too
        except redis.RedisError as exc:
            print(f"warning: emptying {url}: {exc}", file=sys.stderr)


def _claim(redis_url: str | None, token: str, ttl_seconds: int, candidates: Sequence[int]) -> str:
    explicit = redis_url is not None
    base = redis_url or DEFAULT_REDIS_URL
    numbers = (redis_db_number(base),) if explicit else tuple(candidates)
    for number in numbers:
        url = with_redis_db(base, number)
        client = redis.Redis.from_url(url)
        if not explicit and client.dbsize() != 0:
            continue
        if not client.set(REDIS_LOCK_KEY, token, nx=True, ex=ttl_seconds):
            if explicit:
                holder = client.get(REDIS_LOCK_KEY)
                raise BenchError(f"{url} is in use by another bench run ({holder!r})")
            continue
        if explicit:
            for key in client.scan_iter(count=1000):
                if key != REDIS_LOCK_KEY.encode():
                    client.delete(key)
        elif client.dbsize() != 1:  # someone else wrote there meanwhile: not ours
            client.delete(REDIS_LOCK_KEY)
            continue
        return url
    raise BenchError(
        f"no empty Redis database among {', '.join(map(str, numbers))}; "
        "pass --redis-url with a free one"
    )
