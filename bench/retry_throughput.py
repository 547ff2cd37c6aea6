"""End-to-end retry throughput against the bare three writes, on one throwaway database.

    .venv/bin/python -m bench.retry_throughput [--rows 300] [--clients 8] [--keep]

1. Creates and migrates (`flask db upgrade`) a database `ccp_bench_<random>`; claims an
   empty Redis database of 12..1, locked for the run and emptied at the end (never 0, the
   product's, nor 13-15, the test suite's).
2. Starts on loopback: an aiosmtpd server in this process that counts accepted messages,
   `gunicorn -w 2` (sync) and `celery -A tasks worker --pool=prefork --concurrency=2`
   (as the Procfile; see `--web-*` and `--worker-*` for other choices).
3. Seeds an admin, a cloud account, `--rows` failed executions and a pgbench pool.
4. After an untimed warm-up, `--clients` threads sign in once and POST
   `/api/purchases/retry/<id>`; the clock runs from the first POST to the N-th accepted
   approval email. Then it checks N succeeded requests, N successors with
   `notification_sent_at` and exactly N messages; any mismatch fails.
5. Stops the app and runs pgbench on the three writes of SPEC section 3 in one
   transaction (successor INSERT, predecessor UPDATE, suppression INSERT).
6. Prints retries/s, pgbench tps, their ratio against the 0.15 target, a per-stage
   timeline and the CPU time (from /proc) each process group spent per retry.

Exits non-zero, with a message on stderr, on any failure. Needs PostgreSQL
(127.0.0.1:5432, user postgres, trust), Redis (127.0.0.1:6379) and `pgbench` on PATH.
"""

from __future__ import annotations

import argparse
import email
import glob
import http.client
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
BIN = VENV_BIN if (VENV_BIN / "python").exists() else Path(sys.executable).parent
TARGET_RATIO = 0.15
TEST_REDIS_DBS = {13, 14, 15}
ADMIN_EMAIL = "admin@bench.example"
CONTACT_EMAIL = "finops@bench.example"
FROM_EMAIL = "purchases@bench.example"
ACCOUNT_ID = "123456789012"
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
INSTANCE_TYPES = ("m5.large", "m5.xlarge", "c5.2xlarge", "r5.large", "t3.medium")
UUID_IN_LINK = re.compile(r"/purchases/approve/([0-9a-f-]{36})")


class BenchError(RuntimeError):
    """The run cannot go on; the message says what is wrong."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- services


def preflight(admin_url: str, redis_url: str) -> None:
    """Say clearly what is missing before creating anything."""
    if shutil.which("pgbench") is None:
        raise BenchError(
            "pgbench is not on PATH (Debian: apt-get install postgresql-client); "
            "it runs the bare-three-writes baseline"
        )
    for tool in ("flask", "gunicorn", "celery"):
        if not (BIN / tool).exists():
            raise BenchError(f"{BIN / tool} is missing: install the project into .venv first")
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover
        raise BenchError("psycopg is not importable: run with .venv/bin/python") from exc
    try:
        with psycopg.connect(admin_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise BenchError(
            f"PostgreSQL is not reachable at {admin_url} ({exc}); "
            "start it (scripts/test does) or pass --admin-url"
        ) from exc
    try:
        import redis
    except ImportError as exc:  # pragma: no cover
        raise BenchError("redis-py is not importable: run with .venv/bin/python") from exc
    try:
        redis.Redis.from_url(redis_url, socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise BenchError(
            f"Redis is not reachable at {redis_url} ({exc}); start redis-server"
        ) from exc


def redis_db_number(redis_url: str) -> int:
    path = redis_url.rsplit("/", 1)[-1] if redis_url.count("/") >= 3 else "0"
    try:
        return int(path or 0)
    except ValueError as exc:
        raise BenchError(f"cannot read the database number of --redis-url {redis_url}") from exc


def with_redis_db(redis_url: str, number: int) -> str:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") >= 3 else redis_url.rstrip("/")
    return f"{base}/{number}"


# Redis databases a run may take when --redis-url is not given: never 0 (the product's
# default) nor 13-15 (the test suite's). Concurrent runs must not share one: each
# worker would consume the other's tasks, and either run's flush would empty the other's
# queues. So a run claims an empty database with a lock key and gives it back at the end.
REDIS_CANDIDATE_DBS = tuple(range(12, 0, -1))
REDIS_LOCK_KEY = "ccp-bench:lock"


@dataclass
class RedisClaim:
    url: str
    token: str


def claim_redis(redis_url: str | None, ttl_seconds: int) -> RedisClaim:
    """An empty Redis database of our own, locked for this run.

    With an explicit `--redis-url` that database is used (emptied first) unless another
    run holds its lock; otherwise the first empty, unlocked candidate is taken."""
    import redis

    token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    explicit = redis_url is not None
    base = redis_url or "redis://127.0.0.1:6379/0"
    numbers = (redis_db_number(base),) if explicit else REDIS_CANDIDATE_DBS
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
        return RedisClaim(url, token)
    raise BenchError(
        f"no empty Redis database among {', '.join(map(str, numbers))}; "
        "pass --redis-url with a free one"
    )


def release_redis(claim: RedisClaim) -> None:
    """Empty our database (which drops the lock), if the lock is still ours."""
    import redis

    client = redis.Redis.from_url(claim.url)
    if client.get(REDIS_LOCK_KEY) == claim.token.encode():
        client.flushdb()


def database_url(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def create_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- SMTP


@dataclass
class CountingHandler:
    """Accepts every message; keeps its arrival time and raw bytes (parsed after the run)."""

    expected: int = 0
    times: list[float] = field(default_factory=list)
    contents: list[bytes] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def reset(self, expected: int) -> None:
        self.expected = expected
        self.times.clear()
        self.contents.clear()
        self.done.clear()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.times.append(time.time())
        self.contents.append(envelope.original_content or envelope.content)
        if self.expected and len(self.times) >= self.expected:
            self.done.set()
        return "250 Message accepted"


def successor_ids_in(contents: Sequence[bytes]) -> list[str | None]:
    """The execution id in each message's approve link (None if there is none)."""
    found: list[str | None] = []
    for raw in contents:
        message = email.message_from_bytes(raw)
        text = ""
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
                break
        match = UUID_IN_LINK.search(text)
        found.append(match.group(1) if match else None)
    return found


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_process(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    handle = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    popen = subprocess.Popen(  # noqa: S603 - our own argv
        argv, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    handle.close()
    log(f"started {name} (pid {popen.pid}): {' '.join(argv)}")
    return Proc(name, popen, log_path)


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children[int(fields[1])].append(int(stat.split("/")[2]))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def stop_process(proc: Proc, timeout: float = 30.0) -> None:
    """SIGTERM (graceful), then SIGKILL the process and whatever it left, by pid."""
    if not proc.alive():
        return
    family = descendants(proc.popen.pid)
    proc.popen.send_signal(signal.SIGTERM)
    try:
        proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"{proc.name} did not stop within {timeout:.0f}s; killing it")
        proc.popen.kill()
        proc.popen.wait(timeout=10)
    for pid in family:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_checked(argv: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - our own argv
        argv, cwd=REPO, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result.stdout


# --------------------------------------------------------------------------- HTTP client


class Client:
    """One API client: its own connection and cookie jar, signed in once."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.csrf:
            headers["X-CSRFToken"] = self.csrf
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for key, morsel in jar.items():
                if morsel.value:
                    self.cookies[key] = morsel.value
                else:
                    self.cookies.pop(key, None)
        if response.will_close:
            self.conn.close()
        return response.status, payload

    def login(self, email_address: str, password: str) -> None:
        status, payload = self.call(
            "POST", "/api/auth/login", {"email": email_address, "password": password}
        )
        if status != 200:
            raise BenchError(f"login answered {status}: {payload[:300]!r}")
        self.csrf = json.loads(payload)["csrf_token"]

    def close(self) -> None:
        self.conn.close()


def wait_for_http(port: int, proc: Proc, deadline: float) -> None:
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited during start-up:\n{proc.tail()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/auth/me")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"{proc.name} did not answer HTTP on port {port}:\n{proc.tail()}")


def wait_for_worker(redis_url: str, node: str, proc: Proc, deadline: float) -> None:
    """A bare Celery app (not the product's) pings the worker through the broker."""
    from celery import Celery

    probe_app = Celery("bench-probe", broker=redis_url)
    try:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise BenchError(f"{proc.name} exited during start-up:\n{proc.tail()}")
            replies = probe_app.control.ping(destination=[node], timeout=0.5)
            if replies:
                return
        raise BenchError(f"{proc.name} did not answer a ping:\n{proc.tail()}")
    finally:
        probe_app.close()


# --------------------------------------------------------------------------- seeding


def recommendations(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for _ in range(rng.randint(1, 3)):
        count = rng.randint(1, 8)
        upfront = Decimal(rng.randint(100, 5000))
        items.append(
            {
                "provider": "aws",
                "service": "ec2",
                "region": rng.choice(REGIONS),
                "resource_type": rng.choice(INSTANCE_TYPES),
                "engine": "",
                "account_id": ACCOUNT_ID,
                "count": count,
                "term_years": rng.choice((1, 3)),
                "payment_option": rng.choice(("no_upfront", "partial_upfront", "all_upfront")),
                "upfront_cost": str(upfront),
                "monthly_savings": str((upfront / 30).quantize(Decimal("0.01"))),
                "selected": True,
                "error": "InsufficientInstanceCapacity",
                "purchased": False,
                "purchase_id": None,
            }
        )
    return items


@dataclass
class Seeded:
    admin_password: str
    admin_id: uuid.UUID
    account_id: uuid.UUID
    warmup: list[uuid.UUID]
    timed: list[uuid.UUID]
    pool_size: int


INSERT_FAILED = (
    "INSERT INTO purchase_executions (execution_id, status, recommendations, error, "
    "created_by_user_id, retry_attempt_n, cloud_account_id, plan_id, step_number, "
    "total_upfront_cost, estimated_savings) "
    "VALUES (%s, 'failed', %s::jsonb, %s, %s, 0, %s, NULL, 1, %s, %s)"
)


def seed(db_url: str, env: dict[str, str], *, rows: int, warmup: int, pool_size: int) -> Seeded:
    import psycopg

    password = secrets.token_urlsafe(16)
    create = ["users", "create", ADMIN_EMAIL, "--password-stdin", "--group", "Administrators"]
    run_checked([str(BIN / "flask"), "--app", "app", *create], env, stdin=password + "\n")
    rng = random.Random(20240601)  # noqa: S311 - reproducible data, not security
    account_id = uuid.uuid4()
    with psycopg.connect(db_url) as conn:
        admin_id = conn.execute("SELECT id FROM users WHERE email = %s", (ADMIN_EMAIL,)).fetchone()
        if admin_id is None:
            raise BenchError("the admin user was not created")
        conn.execute(
            "INSERT INTO cloud_accounts (id, name, provider, external_id, contact_email) "
            "VALUES (%s, 'bench production', 'aws', %s, %s)",
            (account_id, ACCOUNT_ID, CONTACT_EMAIL),
        )

        def make(n: int) -> list[uuid.UUID]:
            ids = [uuid.uuid4() for _ in range(n)]
            params = []
            for execution_id in ids:
                items = recommendations(rng)
                upfront = sum(Decimal(item["upfront_cost"]) for item in items)
                savings = sum(Decimal(item["monthly_savings"]) for item in items) * 12
                params.append(
                    (
                        execution_id,
                        json.dumps(items),
                        "purchase failed: InsufficientInstanceCapacity in us-east-1a",
                        admin_id[0],
                        account_id,
                        upfront,
                        savings,
                    )
                )
            with conn.cursor() as cur:
                cur.executemany(INSERT_FAILED, params)
            return ids

        warm_ids = make(warmup)
        timed_ids = make(rows)
        # The pgbench pool: failed rows like the others, numbered for a sequence to hand out.
        template = json.dumps(recommendations(rng))
        conn.execute(
            "CREATE TABLE bench_pgbench_pool (n integer PRIMARY KEY, execution_id uuid NOT NULL)"
        )
        conn.execute("CREATE SEQUENCE bench_pgbench_seq")
        conn.execute(
            "WITH made AS ("
            " INSERT INTO purchase_executions (execution_id, status, recommendations, error,"
            " created_by_user_id, retry_attempt_n, cloud_account_id, plan_id, step_number,"
            " total_upfront_cost, estimated_savings)"
            " SELECT gen_random_uuid(), 'failed', %s::jsonb,"
            " 'purchase failed: InsufficientInstanceCapacity in us-east-1a', %s, 0, %s, NULL, 1,"
            " 1234.00, 456.00 FROM generate_series(1, %s) RETURNING execution_id)"
            " INSERT INTO bench_pgbench_pool (n, execution_id)"
            " SELECT row_number() OVER (), execution_id FROM made",
            (template, admin_id[0], account_id, pool_size),
        )
    vacuum(db_url)
    return Seeded(password, admin_id[0], account_id, warm_ids, timed_ids, pool_size)


def vacuum(db_url: str) -> None:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# --------------------------------------------------------------------------- CPU accounting


def _ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _machine_ticks() -> tuple[int, int, int]:
    """(total, idle + iowait, steal) ticks of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values[:8]), values[3] + values[4], values[7]


@dataclass
class CpuSnapshot:
    per_pid: dict[int, tuple[str, int]]
    machine: tuple[int, int, int]
    at: float


def cpu_snapshot(classify: Callable[[int, str], str]) -> CpuSnapshot:
    per_pid: dict[int, tuple[str, int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        pid = int(stat.split("/")[2])
        ticks = _ticks(pid)
        if ticks is None:
            continue
        per_pid[pid] = (classify(pid, _cmdline(pid)), ticks)
    return CpuSnapshot(per_pid, _machine_ticks(), time.time())


def cpu_report(
    before: CpuSnapshot, after: CpuSnapshot, retries: int
) -> tuple[list[str], dict[str, float]]:
    """Lines to print, and {group: CPU ms per retry} (plus `busy %` of the machine)."""
    hz = os.sysconf("SC_CLK_TCK")
    groups: dict[str, float] = defaultdict(float)
    for pid, (group, ticks) in after.per_pid.items():
        start = before.per_pid.get(pid, (group, 0))[1]
        groups[group] += (ticks - start) / hz
    total, idle, steal = (a - b for a, b in zip(after.machine, before.machine, strict=True))
    wall = after.at - before.at
    cores = os.cpu_count() or 1
    busy = 100 * (total - idle) / max(total, 1)
    stolen = 100 * steal / max(total, 1)
    lines = [
        f"  machine busy {busy:.0f}% of {cores} cores over {wall:.1f}s "
        f"(stolen by the hypervisor: {stolen:.0f}%)"
    ]
    per_retry = {group: 1000 * seconds / max(retries, 1) for group, seconds in groups.items()}
    per_retry["busy %"] = busy
    per_retry["steal %"] = stolen
    for group, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        if seconds < 0.05:
            continue
        lines.append(f"  {group:<34} {seconds:7.2f} CPU-s  {per_retry[group]:6.2f} ms/retry")
    return lines, per_retry


# --------------------------------------------------------------------------- the e2e run


@dataclass
class E2EResult:
    retries: int
    seconds: float
    rate: float
    post_latencies: list[float]
    stage_lines: list[str]
    cpu_lines: list[str]
    cpu_per_retry: dict[str, float]


def signed_in_clients(port: int, password: str, clients: int) -> list[Client]:
    sessions = [Client(port) for _ in range(clients)]
    for client in sessions:
        client.login(ADMIN_EMAIL, password)
    return sessions


def drive(
    sessions: list[Client], rows: Sequence[uuid.UUID]
) -> tuple[float, dict[uuid.UUID, float], dict[uuid.UUID, float]]:
    """Every signed-in client POSTs its share of the retries; returns (t0, sent, answered).

    t0 is when the clients are released together, just before their first POSTs."""
    clients = len(sessions)
    start: dict[str, float] = {}
    barrier = threading.Barrier(clients, action=lambda: start.setdefault("t0", time.time()))
    sent: dict[uuid.UUID, float] = {}
    answered: dict[uuid.UUID, float] = {}
    errors: list[str] = []

    def work(index: int) -> None:
        client = sessions[index]
        try:
            barrier.wait()
            for execution_id in rows[index::clients]:
                sent[execution_id] = time.time()
                status, payload = client.call("POST", f"/api/purchases/retry/{execution_id}")
                answered[execution_id] = time.time()
                if status != 202:
                    errors.append(f"{execution_id}: {status} {payload[:200]!r}")
                    return
        except Exception as exc:  # report every client's failure, not just the first
            errors.append(f"client {index}: {type(exc).__name__}: {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError("retry requests failed:\n  " + "\n  ".join(errors[:10]))
    return start["t0"], sent, answered


def wait_for_mail(
    handler: CountingHandler,
    expected: int,
    timeout: float,
    procs: list[Proc],
    db_url: str,
    rows: Sequence[uuid.UUID],
) -> None:
    deadline = time.monotonic() + timeout
    while not handler.done.wait(1.0):
        for proc in procs:
            if not proc.alive():
                raise BenchError(f"{proc.name} died during the run:\n{proc.tail()}")
        failures = failures_among(db_url, rows)
        if failures:
            raise BenchError("retries went wrong during the run:\n  " + "\n  ".join(failures))
        if time.monotonic() > deadline:
            raise BenchError(
                f"only {len(handler.times)} of {expected} approval emails arrived "
                f"within {timeout:.0f}s; see the logs"
            )


def failures_among(db_url: str, rows: Sequence[uuid.UUID]) -> list[str]:
    """Settled-but-wrong outcomes so far: a refused or failed retry request, or a successor
    that failed (its approval email could not be sent). Empty while all is well."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 'retry request ' || r.state || ': ' || coalesce(r.error, ''), count(*)"
            " FROM retry_requests r"
            " WHERE r.execution_id = ANY(%(ids)s) AND r.state IN ('rejected', 'failed')"
            " GROUP BY 1"
            " UNION ALL"
            " SELECT 'successor failed: ' || coalesce(s.error, ''), count(*)"
            " FROM purchase_executions p"
            " JOIN purchase_executions s ON s.execution_id = p.retry_execution_id"
            " WHERE p.execution_id = ANY(%(ids)s) AND s.status = 'failed'"
            " GROUP BY 1",
            {"ids": list(rows)},
        ).fetchall()
    return [f"{count} x {what}" for what, count in found]


def verify(db_url: str, rows: Sequence[uuid.UUID], timeout: float = 30.0) -> dict[str, Any]:
    """N succeeded requests, N successors, N sent flags; waits a little for the commits
    that follow the SMTP accept. Raises BenchError on any mismatch."""
    import psycopg

    ids = list(rows)
    deadline = time.monotonic() + timeout
    with psycopg.connect(db_url, autocommit=True) as conn:
        while True:
            counts = conn.execute(
                "SELECT"
                " (SELECT count(*) FROM retry_requests"
                "   WHERE execution_id = ANY(%(ids)s) AND state = 'succeeded'),"
                " (SELECT count(*) FROM retry_requests WHERE execution_id = ANY(%(ids)s)),"
                " (SELECT count(*) FROM purchase_executions p"
                "   JOIN purchase_executions s ON s.execution_id = p.retry_execution_id"
                "   WHERE p.execution_id = ANY(%(ids)s) AND s.status = 'pending'),"
                " (SELECT count(*) FROM purchase_executions p"
                "   JOIN purchase_executions s ON s.execution_id = p.retry_execution_id"
                "   WHERE p.execution_id = ANY(%(ids)s) AND s.notification_sent_at IS NOT NULL)",
                {"ids": ids},
            ).fetchone()
            assert counts is not None
            succeeded, requests, successors, notified = counts
            if (succeeded, requests, successors, notified) == (len(ids),) * 4:
                break
            if time.monotonic() > deadline:
                states = conn.execute(
                    "SELECT state, count(*), min(error) FROM retry_requests"
                    " WHERE execution_id = ANY(%s) GROUP BY state",
                    (ids,),
                ).fetchall()
                raise BenchError(
                    f"expected {len(ids)} of each; got {succeeded} succeeded of {requests} "
                    f"retry requests, {successors} pending successors, {notified} with "
                    f"notification_sent_at; request states: {states}"
                )
            time.sleep(0.2)
        timeline = conn.execute(
            "SELECT r.execution_id, s.execution_id,"
            " extract(epoch FROM r.created_at), extract(epoch FROM r.finished_at),"
            " extract(epoch FROM s.notification_sent_at)"
            " FROM retry_requests r JOIN purchase_executions s"
            "   ON s.execution_id = r.successor_execution_id"
            " WHERE r.execution_id = ANY(%s)",
            (ids,),
        ).fetchall()
    return {
        "by_successor": {str(row[1]): row[0] for row in timeline},
        "request_created": [float(row[2]) for row in timeline],
        "task_settled": [float(row[3]) for row in timeline],
        "email_started": [float(row[4]) for row in timeline],
    }


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_e2e(
    *,
    port: int,
    seeded: Seeded,
    db_url: str,
    handler: CountingHandler,
    clients: int,
    timeout: float,
    procs: list[Proc],
    classify: Callable[[int, str], str],
) -> E2EResult:
    if seeded.warmup:
        log(f"warm-up: {len(seeded.warmup)} retries through the whole pipeline (untimed)")
        handler.reset(len(seeded.warmup))
        warm_clients = signed_in_clients(
            port, seeded.admin_password, min(clients, len(seeded.warmup))
        )
        drive(warm_clients, seeded.warmup)
        wait_for_mail(handler, len(seeded.warmup), timeout, procs, db_url, seeded.warmup)
        verify(db_url, seeded.warmup)
    rows = seeded.timed
    n = len(rows)
    handler.reset(n)
    sessions = signed_in_clients(port, seeded.admin_password, clients)
    time.sleep(0.5)  # let the warm-up's last commits and acks settle
    cpu_before = cpu_snapshot(classify)
    log(f"timed run: {n} retries from {clients} clients")
    t0, sent, answered = drive(sessions, rows)
    posts_done = max(answered.values())
    wait_for_mail(handler, n, timeout, procs, db_url, rows)
    t_end = handler.times[n - 1]
    cpu_after = cpu_snapshot(classify)
    time.sleep(1.0)  # a duplicate email would arrive about now
    if len(handler.times) != n:
        raise BenchError(f"{len(handler.times)} emails arrived for {n} retries (duplicates)")
    timeline = verify(db_url, rows)
    mail_ids = successor_ids_in(handler.contents)
    if None in mail_ids or len(set(mail_ids)) != n:
        raise BenchError("the emails do not name N distinct successors")
    unknown = [m for m in mail_ids if m not in timeline["by_successor"]]
    if unknown:
        raise BenchError(f"{len(unknown)} emails name executions that are not successors")
    latencies = [
        accepted - sent[timeline["by_successor"][successor]]
        for accepted, successor in zip(handler.times[:n], mail_ids, strict=True)
        if successor is not None
    ]
    seconds = t_end - t0
    cpu_lines, cpu_per_retry = cpu_report(cpu_before, cpu_after, n)
    post_latencies = [answered[r] - sent[r] for r in rows]

    def stage(label: str, times: Sequence[float]) -> str:
        done = max(times) - t0
        return f"  {label:<44} last at {done:6.2f}s  ({n / max(done, 1e-9):7.1f}/s over the run)"

    stage_lines = [
        stage("HTTP 202 answered (client)", [posts_done]),
        stage("retry request committed (web, txn start)", timeline["request_created"]),
        stage("retry task settled (worker, task start)", timeline["task_settled"]),
        stage("email task started (worker)", timeline["email_started"]),
        stage("email accepted (SMTP)", [t_end]),
        f"  POST latency ms: p50 {1000 * statistics.median(post_latencies):.1f}  "
        f"p95 {1000 * pct(post_latencies, 0.95):.1f}  max {1000 * max(post_latencies):.1f}",
        f"  POST -> email accepted, s: p50 {statistics.median(latencies):.2f}  "
        f"p95 {pct(latencies, 0.95):.2f}  max {max(latencies):.2f}",
    ]
    return E2EResult(
        retries=n,
        seconds=seconds,
        rate=n / seconds,
        post_latencies=post_latencies,
        stage_lines=stage_lines,
        cpu_lines=cpu_lines,
        cpu_per_retry=cpu_per_retry,
    )


# --------------------------------------------------------------------------- pgbench

PGBENCH_SCRIPT = """\
-- The bare three writes of SPEC section 3, one transaction per retry, each on a
-- distinct failed predecessor from the pre-seeded pool.
SELECT p.execution_id AS pred, gen_random_uuid() AS succ
  FROM bench_pgbench_pool p WHERE p.n = (SELECT nextval('bench_pgbench_seq')) \\gset
BEGIN;
INSERT INTO purchase_executions (execution_id, status, recommendations, error,
    created_by_user_id, retry_attempt_n, cloud_account_id, plan_id, step_number,
    total_upfront_cost, estimated_savings)
  SELECT :succ, 'pending', recommendations, NULL, created_by_user_id, retry_attempt_n + 1,
    cloud_account_id, plan_id, step_number, total_upfront_cost, estimated_savings
  FROM purchase_executions WHERE execution_id = :pred;
UPDATE purchase_executions SET retry_execution_id = :succ, updated_at = now()
  WHERE execution_id = :pred AND status = 'failed' AND retry_execution_id IS NULL;
INSERT INTO purchase_suppressions (execution_id, account_id, provider, service, region,
    resource_type, engine, suppressed_count, expires_at)
  VALUES (:succ, '123456789012', 'aws', 'ec2', 'us-east-1', 'm5.large', '', 2,
    now() + interval '7 days');
END;
"""


@dataclass
class PgbenchResult:
    tps: float
    transactions: int
    output: str


def run_pgbench(
    db_url: str, db_name: str, *, clients: int, seconds: int, pool: int, work_dir: Path
) -> PgbenchResult:
    import psycopg

    script = work_dir / "three_writes.sql"
    script.write_text(PGBENCH_SCRIPT)
    vacuum(db_url)
    host, port, user = "127.0.0.1", "5432", "postgres"
    match = re.match(r"[^:]+://(?:([^@:/]+)(?::[^@/]*)?@)?([^:/]+)(?::(\d+))?/", db_url)
    if match:
        user, host, port = match.group(1) or user, match.group(2), match.group(3) or port
    argv = f"pgbench -n -M prepared -f {script} -c {clients} -j 2 -T {seconds}".split()
    argv += ["-h", host, "-p", port, "-U", user, db_name]
    log(f"pgbench: {' '.join(argv)}")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)  # noqa: S603
    output = result.stdout + result.stderr
    tps_match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    done_match = re.search(r"number of transactions actually processed: (\d+)", output)
    if result.returncode != 0 or not tps_match or not done_match:
        raise BenchError(f"pgbench failed (exit {result.returncode}):\n{output}")
    done = int(done_match.group(1))
    if "aborted" in output and re.search(r"number of failed transactions: [1-9]", output):
        raise BenchError(f"pgbench had failed transactions:\n{output}")
    with psycopg.connect(db_url, autocommit=True) as conn:
        linked = conn.execute(
            "SELECT count(*) FROM bench_pgbench_pool p JOIN purchase_executions e"
            " USING (execution_id) WHERE e.retry_execution_id IS NOT NULL"
        ).fetchone()
    if linked is None or linked[0] != done:
        raise BenchError(
            f"pgbench reported {done} transactions but {linked and linked[0]} pool rows are "
            f"linked (pool of {pool}: raise --pgbench-pool if it ran out)"
        )
    return PgbenchResult(float(tps_match.group(1)), done, output)


# --------------------------------------------------------------------------- main


def product_env(
    args: argparse.Namespace, db_url: str, redis_url: str, smtp_port: int, web_port: int
) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"FLASK_APP", "PYTHONPATH"}}
    env.update(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(32),
        FROM_EMAIL=FROM_EMAIL,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_port),
        APP_BASE_URL=f"http://127.0.0.1:{web_port}",
        PYTHONUNBUFFERED="1",
    )
    env.update(dict(pair.split("=", 1) for pair in args.env))
    return env


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Retries/s end to end (HTTP -> worker -> SMTP accept) against pgbench's "
        "rate for the bare three writes, on one throwaway database.",
    )
    parser.add_argument("--rows", type=int, default=300, help="failed rows to retry (300)")
    parser.add_argument("--clients", type=int, default=8, help="HTTP and pgbench clients (8)")
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    parser.add_argument("--warmup", type=int, default=16, help="untimed warm-up retries (16)")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "BENCH_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL"),
        help="Redis database for broker and backend (default: the first empty one of 12..1, "
        "locked for the run; never 0 or 13-15)",
    )
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument(
        "--web-worker-class", default="sync", help="gunicorn worker class: sync (default), gthread"
    )
    parser.add_argument("--web-threads", type=int, default=1, help="threads per gthread worker")
    parser.add_argument(
        "--worker-pool",
        default="prefork",
        choices=("prefork", "threads", "solo"),
        help="Celery pool (prefork: one process per core, the tasks are Python-CPU bound)",
    )
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery concurrency (2)")
    parser.add_argument(
        "--worker-processes", type=int, default=1, help="separate `celery worker` processes (1)"
    )
    parser.add_argument(
        "--worker-loglevel", default="INFO", help="Celery log level (INFO, as the Procfile)"
    )
    parser.add_argument(
        "--worker-arg", action="append", default=[], help="extra argument for celery worker"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the web app and the worker (product settings)",
    )
    parser.add_argument("--pgbench-seconds", type=int, default=10, help="pgbench duration (10)")
    parser.add_argument(
        "--pgbench-pool", type=int, default=60000, help="failed rows seeded for pgbench (60000)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="give up after (600 s)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.clients < 1:
        parser.error("--rows and --clients must be at least 1")
    if args.redis_url and redis_db_number(args.redis_url) in TEST_REDIS_DBS:
        parser.error("Redis databases 13-15 belong to the test suite; pick another (default 12)")
    if any("=" not in pair for pair in args.env):
        parser.error("--env takes NAME=VALUE")
    return args


@contextmanager
def smtp_server(handler: CountingHandler) -> Iterator[int]:
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield int(controller.port)
    finally:
        controller.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # `timeout`, `kill`: stop like Ctrl-C does, through the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        preflight(args.admin_url, args.redis_url or "redis://127.0.0.1:6379/0")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tag = secrets.token_hex(4)
    db_name = f"ccp_bench_{tag}"
    db_url = database_url(args.admin_url, db_name)
    work_dir = Path(tempfile.mkdtemp(prefix=f"ccp_bench_{tag}_"))
    procs: list[Proc] = []
    created = False
    ok = False
    handler = CountingHandler()
    claim: RedisClaim | None = None
    try:
        claim = claim_redis(args.redis_url, ttl_seconds=int(args.timeout) * 3 + 1800)
        redis_url = claim.url
        create_database(args.admin_url, db_name)
        created = True
        log(f"database {db_name}, Redis {redis_url}, logs in {work_dir}")
        with smtp_server(handler) as smtp_port:
            web_port = free_port()
            env = product_env(args, db_url, redis_url, smtp_port, web_port)
            run_checked([str(BIN / "flask"), "--app", "app", "db", "upgrade"], env)
            seeded = seed(
                db_url, env, rows=args.rows, warmup=args.warmup, pool_size=args.pgbench_pool
            )
            log(f"seeded {args.rows} + {args.warmup} failed rows, {args.pgbench_pool} pool rows")

            web_argv = [
                str(BIN / "gunicorn"),
                *f"-w {args.web_workers} -k {args.web_worker_class} --threads".split(),
                *f"{args.web_threads} -b 127.0.0.1:{web_port} --log-level warning".split(),
                "app:create_app()",
            ]
            web = start_process("web", web_argv, env, work_dir)
            procs.append(web)
            workers: list[tuple[Proc, str]] = []
            for index in range(args.worker_processes):
                node = f"bench-{tag}-{index}@%h"
                worker = start_process(
                    f"worker-{index}",
                    [
                        str(BIN / "celery"),
                        *f"-A tasks worker --loglevel={args.worker_loglevel}".split(),
                        f"--pool={args.worker_pool}",
                        f"--concurrency={args.worker_concurrency}",
                        *["-n", node, *args.worker_arg],
                    ],
                    env,
                    work_dir,
                )
                procs.append(worker)
                workers.append((worker, node.replace("%h", socket.gethostname())))
            deadline = time.monotonic() + 60
            wait_for_http(web_port, web, deadline)
            for worker, node_name in workers:
                wait_for_worker(redis_url, node_name, worker, deadline)

            groups = {
                "web": {web.popen.pid, *descendants(web.popen.pid)},
                "worker": {
                    pid
                    for worker, _ in workers
                    for pid in (worker.popen.pid, *descendants(worker.popen.pid))
                },
            }

            def classify(pid: int, cmdline: str) -> str:
                if pid in groups["web"]:
                    return "gunicorn (web)"
                if pid in groups["worker"]:
                    return "celery worker"
                if pid == os.getpid():
                    return "bench: clients + SMTP server"
                if cmdline.startswith("postgres:"):
                    if f" {db_name} " in cmdline:
                        return "postgres backends (bench db)"
                    return "postgres (other: wal, other dbs)"
                if "redis-server" in cmdline:
                    return "redis"
                return "other processes"

            e2e = run_e2e(
                port=web_port,
                seeded=seeded,
                db_url=db_url,
                handler=handler,
                clients=args.clients,
                timeout=args.timeout,
                procs=procs,
                classify=classify,
            )
            for proc in reversed(procs):
                stop_process(proc)
        pg = run_pgbench(
            db_url,
            db_name,
            clients=args.clients,
            seconds=args.pgbench_seconds,
            pool=args.pgbench_pool,
            work_dir=work_dir,
        )
        ratio = e2e.rate / pg.tps
        print()
        configuration = (
            f"gunicorn -w {args.web_workers} -k {args.web_worker_class}"
            f" --threads {args.web_threads}; celery --pool={args.worker_pool}"
            f" --concurrency={args.worker_concurrency} --loglevel={args.worker_loglevel}"
            f"{' ' + ' '.join(args.worker_arg) if args.worker_arg else ''}"
            f" (x{args.worker_processes} processes); clients {args.clients}"
            f"{'; env ' + ' '.join(args.env) if args.env else ''}"
        )
        print(f"configuration: {configuration}")
        print(
            f"end to end : {e2e.retries} retries in {e2e.seconds:.2f}s = {e2e.rate:.1f} retries/s"
        )
        print(
            f"pgbench    : {pg.tps:.1f} tps (bare three writes, {args.clients} clients, "
            f"{pg.transactions} transactions)"
        )
        verdict = "meets" if ratio >= TARGET_RATIO else "below"
        print(f"ratio      : {ratio:.3f} ({verdict} the {TARGET_RATIO} target)")
        print("stages (from the first POST):")
        print("\n".join(e2e.stage_lines))
        print("CPU during the timed run:")
        print("\n".join(e2e.cpu_lines))
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "rows": e2e.retries,
                        "clients": args.clients,
                        "e2e_seconds": e2e.seconds,
                        "e2e_rate": e2e.rate,
                        "pgbench_tps": pg.tps,
                        "ratio": ratio,
                        "cpu_ms_per_retry": e2e.cpu_per_retry,
                        "configuration": configuration,
                        "argv": sys.argv[1:],
                    },
                    indent=2,
                )
            )
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
        for proc in reversed(procs):
            try:
                stop_process(proc)
            except Exception as exc:  # keep cleaning up
                print(f"warning: stopping {proc.name}: {exc}", file=sys.stderr)
        if claim is not None:
            try:
                release_redis(claim)
            except Exception as exc:
                print(f"warning: emptying {claim.url}: {exc}", file=sys.stderr)
        if created and not args.keep:
            try:
                drop_database(args.admin_url, db_name)
            except Exception as exc:
                print(f"warning: dropping {db_name}: {exc}", file=sys.stderr)
        elif created:
            print(f"kept database {db_name} ({db_url})")
        if ok and not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"logs: {work_dir}")


if __name__ == "__main__":
    sys.exit(main())
