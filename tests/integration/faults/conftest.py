"""Fixtures of the fault tests: things that break on purpose, each the test's own.

- `processes`: starts the product's own processes (`celery -A tasks worker|beat`,
  gunicorn as the Procfile starts it), each logging to a file the test can read (a
  worker logs at INFO, so a retry shows as `Retry in …`); stops what is left after.
- `private_postgres`: a PostgreSQL cluster of the test's own (initdb into a temporary
  folder, pg_ctl on a free port), to restart while a task runs.
- `private_redis`: a redis-server of the test's own on a free port, without
  persistence, to restart with messages queued (they are lost).

Plain helpers: `failed_rows` (rows worth retrying), `lineage` (successors counted),
`lock_out_writers` (hold the database's write lock in the test's own connection).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.statuses import Status
from app.models import PurchaseExecution
from tests.factories import PASSWORD, make_account, make_execution, make_user, recommendation
from tests.support.commands import BIN, REPO, product_env, wait_until
from tests.support.smtp import free_port

# Redis databases of the fault tests (the shared server); private servers use db 0.
FAULTS_REDIS_DB = 6
SCALE_OUT_REDIS_DB = 8


# --- Processes ---------------------------------------------------------------------


@dataclass
class Process:
    """A process of the product started by a test, its output in `log`."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, nothing acknowledged or cleaned up."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if not self.alive():
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


def node_name(name: str) -> str:
    return f"{name}-{os.getpid()}@{socket.gethostname()}"


@dataclass
class Processes:
    directory: Path
    started: list[Process] = field(default_factory=list)

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def worker(
        self, settings: Settings, name: str, *, queues: str | None = None, **env: str
    ) -> Process:
        """`celery -A tasks worker`, one process (solo pool), node `name-<pid>@host`;
        returns once it is ready."""
        argv = [str(BIN / "celery"), "-A", "tasks", "worker", "--loglevel=INFO"]
        argv += ["--pool=solo", "--concurrency=1", "-n", f"{name}-{os.getpid()}@%h"]
        if queues:
            argv += ["-Q", queues]
        process = self._start(name, argv, product_env(settings, **env))
        # Its log says so (a solo worker busy with a task at once cannot answer a ping).
        deadline = time.monotonic() + 30
        while f"{node_name(name)} ready." not in process.output():
            if not process.alive() or time.monotonic() > deadline:
                pytest.fail(f"worker {name} did not start:\n{process.output()}")
            time.sleep(0.1)
        return process

    def beat(self, settings: Settings, **env: str) -> Process:
        schedule = self.directory / "celerybeat-schedule"
        argv = [str(BIN / "celery"), "-A", "tasks", "beat", "--loglevel=INFO"]
        argv += ["--schedule", str(schedule)]
        return self._start("beat", argv, product_env(settings, **env))

    def web(self, settings: Settings, name: str, **env: str) -> tuple[Process, str]:
        """The web panel as the Procfile starts it (gunicorn, two workers) on a free
        port; returns once it answers, with its base URL."""
        port = free_port()
        argv = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2"]
        argv += ["app:create_app()"]
        process = self._start(name, argv, product_env(settings, **env))
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            if not process.alive():
                pytest.fail(f"web {name} did not start:\n{process.output()}")
            try:
                return requests.get(f"{base}/api/auth/me", timeout=10).status_code == 401
            except requests.RequestException:
                return False

        wait_until(answers, timeout=30, what=f"web {name} to answer")
        return process, base

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


# --- Private servers ---------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class PrivatePostgres:
    bin: Path
    data: Path
    port: int
    run_as: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args: str) -> None:
        # The server's output goes to its log: pg_ctl's own pipes would stay open.
        subprocess.run(
            [*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def restart(self) -> None:
        """A fast restart: every connection is cut, the server is back in a moment."""
        self.pg_ctl("-m", "fast", "-l", str(self.data.parent / "server.log"), "restart")

    def create_database(self, name: str) -> str:
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of the test's own, on a free port; removed afterwards."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    root = Path(tempfile.mkdtemp(prefix="ccp-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to `postgres`
        shutil.chown(root, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = PrivatePostgres(bin_dir, data, port, run_as)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    server.pg_ctl("-o", options, "-l", str(root / "server.log"), "start")
    try:
        yield server
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class PrivateRedis:
    port: int
    directory: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.popen = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), timeout=10, what="the private redis-server")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(timeout=10)

    def restart(self) -> None:
        """Stopped and started again: without persistence, every queued message is gone."""
        self.stop()
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH")
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- Data and the API --------------------------------------------------------------


def failed_rows(session: Session, creator, count: int) -> list[uuid.UUID]:
    """`count` failed rows of `creator`, each worth retrying (a transient failure, an
    idempotent provider, an approver: the account's contact)."""
    account = make_account(session, contact_email="finops@example.com")
    rows = [
        make_execution(
            session,
            Status.FAILED,
            created_by=creator,
            cloud_account_id=account.id,
            error="InsufficientInstanceCapacity",
            recommendations=[recommendation(count=1 + n)],
        )
        for n in range(count)
    ]
    session.flush()
    return [row.execution_id for row in rows]


def seed(engine: Engine, count: int) -> tuple[str, list[uuid.UUID]]:
    """A user and `count` failed rows of theirs, committed through `engine`."""
    with Session(engine) as session, session.begin():
        user = make_user(session)
        ids = failed_rows(session, user, count)
        email = user.email
    return email, ids


def lineage(engine: Engine, ids: list[uuid.UUID]) -> tuple[int, int]:
    """How many executions there are in all, and how many of `ids` have a successor:
    each retried once, once each, is `(2 * len(ids), len(ids))`."""
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(PurchaseExecution)).scalar_one()
        linked = conn.execute(
            select(func.count())
            .select_from(PurchaseExecution)
            .where(
                PurchaseExecution.execution_id.in_(ids),
                PurchaseExecution.retry_execution_id.is_not(None),
            )
        ).scalar_one()
    return total, linked


class Api:
    """The JSON API of one web process, signed in as one user."""

    def __init__(self, base: str, session: requests.Session | None = None) -> None:
        self.base = base
        self.http = session or requests.Session()
        self.csrf = ""

    def sign_in(self, email: str) -> Api:
        answer = self.http.post(
            f"{self.base}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        self.csrf = answer.json()["csrf_token"]
        return self

    def retry(self, execution_id: uuid.UUID) -> str:
        """Ask for a retry; the status URL of the request."""
        answer = self.http.post(
            f"{self.base}/api/purchases/retry/{execution_id}",
            headers={"X-CSRFToken": self.csrf},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        return answer.json()["status_url"]

    def bulk_retry(self, ids: list[uuid.UUID]) -> str:
        answer = self.http.post(
            f"{self.base}/api/purchases/retry",
            json={"execution_ids": [str(id_) for id_ in ids], "force": False},
            headers={"X-CSRFToken": self.csrf},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        return answer.json()["status_url"]

    def get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.base}{path}", timeout=10)

    def settled(self, status_url: str, *, timeout: float = 45) -> dict:
        """Poll a retry request (or batch) until nothing in it is queued any more."""

        def state() -> dict | None:
            answer = self.get(status_url)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            return body if body["state"] not in ("queued", "running") else None

        return wait_until(state, timeout=timeout, what=f"{status_url} to settle")


# --- Holding the database's write lock ---------------------------------------------


@contextmanager
def lock_out_writers(database_url: str, table: str = "purchase_executions") -> Iterator[Callable]:
    """Hold a lock no other writer gets past, in the test's own connection, until the
    block ends. PostgreSQL: `table` locked EXCLUSIVE (reads go on; writers wait, with no
    timeout). SQLite: the whole file, `BEGIN EXCLUSIVE` (writers wait for the busy
    timeout, 10 s, then fail with "database is locked").

    Yields `waiting()`: the pids of other PostgreSQL backends of the database waiting
    on a lock (always empty on SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # Not `build_engine`: it opens and closes the file itself, and closing any
        # descriptor of the file drops this process's SQLite locks on it (POSIX).
        conn = sqlite3.connect(str(url.database), isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            try:
                yield list
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            holder = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            conn.exec_driver_sql(f"LOCK TABLE {table} IN EXCLUSIVE MODE")

            def waiting() -> list[int]:
                with engine.connect() as probe:
                    return list(
                        probe.execute(
                            text(
                                "SELECT pid FROM pg_stat_activity WHERE datname = :db"
                                " AND wait_event_type = 'Lock' AND pid <> :holder"
                            ),
                            {"db": url.database, "holder": holder},
                        ).scalars()
                    )

            try:
                yield waiting
            finally:
                with suppress(Exception):  # the server may have been restarted under it
                    conn.rollback()
    finally:
        engine.dispose()


def terminate(database_url: str, pids: list[int]) -> None:
    """Cut these PostgreSQL backends' connections, as a failover or a restart does."""
    engine = create_engine(make_url(database_url))
    try:
        with engine.connect() as conn:
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        engine.dispose()


def redis_url(db: int) -> str:
    """The shared test Redis server, database `db` (one of the fault tests' own)."""
    base = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    return f"{base.rsplit('/', 1)[0]}/{db}"
