"""The product as an operator runs it: its settings as environment, `flask db upgrade`,
then `gunicorn` (the web app), `celery -A tasks worker` and, when asked, `celery -A
tasks beat`, each in a session of its own and logging to a file, stopped (with whatever
they forked) at the end.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from celery import Celery

from app.config import Settings
from bench import BenchError, log, wait_for
from bench.cpu import ProcessGroups
from tests.support.commands import BIN, REPO, flask_cli, product_env
from tests.support.smtp import SmtpServer, free_port

START_TIMEOUT_SECONDS = 60
FROM_EMAIL = "purchases@bench.example"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """How to run the web app and the worker; the defaults are the Procfile's."""
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
        type=_name_value,
        metavar="NAME=VALUE",
        help="extra environment for the web app and the worker (product settings)",
    )


def _name_value(pair: str) -> str:
    if "=" not in pair:
        raise argparse.ArgumentTypeError("--env takes NAME=VALUE")
    return pair


def describe(args: argparse.Namespace) -> str:
    """The configuration `add_arguments` chose, in one line."""
    extra = f" {' '.join(args.worker_arg)}" if args.worker_arg else ""
    env = f"; env {' '.join(args.env)}" if args.env else ""
    return (
        f"gunicorn -w {args.web_workers} -k {args.web_worker_class}"
        f" --threads {args.web_threads}; celery --pool={args.worker_pool}"
        f" --concurrency={args.worker_concurrency} --loglevel={args.worker_loglevel}{extra}"
        f" (x{args.worker_processes} processes){env}"
    )


@dataclass(frozen=True)
class Deployment:
    """The product's settings for a run: `product_env` exports the database, Redis and
    the secret key of `settings`; `extra` is the rest of the environment."""

    settings: Settings
    extra: dict[str, str]
    web_port: int

    def env(self) -> dict[str, str]:
        return product_env(self.settings, **self.extra)

    def migrate(self) -> None:
        upgrade = flask_cli(self.settings, "db", "upgrade", **self.extra)
        if upgrade.returncode != 0:
            raise BenchError(f"flask db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")


def loopback_deployment(
    args: argparse.Namespace, *, database_url: str, redis_url: str, smtp: SmtpServer
) -> Deployment:
    """On loopback: the web app on a free port, mail to `smtp`, plus `--env`."""
    web_port = free_port()
    settings = Settings(
        database_url=database_url, redis_url=redis_url, secret_key=secrets.token_urlsafe(32)
    )
    extra = {
        "FROM_EMAIL": FROM_EMAIL,
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": str(smtp.port),
        "APP_BASE_URL": f"http://127.0.0.1:{web_port}",
        "PYTHONUNBUFFERED": "1",
        **dict(pair.split("=", 1) for pair in args.env),
    }
    return Deployment(settings, extra, web_port)


@dataclass
class Proc:
    """A process this run started, in a session of its own, logging to `log_path`."""

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

    def tree(self) -> set[int]:
        return {self.popen.pid, *descendants(self.popen.pid)}

    def check_alive(self, during: str) -> None:
        if not self.alive():
            raise BenchError(f"{self.name} exited during {during}:\n{self.tail()}")


def start_process(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as handle:  # the child keeps its own descriptor
        popen = subprocess.Popen(  # noqa: S603 - our own argv
            argv, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
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


@dataclass
class Product:
    """The running web app and workers (and beat, when asked for), once they answer."""

    web: Proc
    workers: list[Proc]
    beat: Proc | None = None

    @property
    def procs(self) -> list[Proc]:
        return [self.web, *self.workers, *([self.beat] if self.beat is not None else [])]

    def check_alive(self, during: str) -> None:
        for proc in self.procs:
            proc.check_alive(during)

    def groups(self, db_name: str) -> ProcessGroups:
        workers = set().union(*(worker.tree() for worker in self.workers))
        groups = {"gunicorn (web)": self.web.tree(), "celery worker": workers}
        if self.beat is not None:
            groups["celery beat"] = self.beat.tree()
        return ProcessGroups(groups, db_name)

    def stop(self) -> None:
        """Beat first, then the workers (warm shutdown), then the web app; goes on past a
        failure."""
        for proc in reversed(self.procs):
            try:
                stop_process(proc)
            except Exception as exc:
                print(f"warning: stopping {proc.name}: {exc}", file=sys.stderr)


@contextmanager
def running_product(
    args: argparse.Namespace,
    deployment: Deployment,
    *,
    tag: str,
    log_dir: Path,
    beat: bool = False,
) -> Iterator[Product]:
    """The web app and the workers as `add_arguments` chose, for the block: yielded once
    the web app answers HTTP and every worker a ping, stopped afterwards. With `beat`,
    `celery -A tasks beat` too (the Procfile's, its schedule file in `log_dir`)."""
    env = deployment.env()
    web_argv = [
        str(BIN / "gunicorn"),
        *f"-w {args.web_workers} -k {args.web_worker_class} --threads".split(),
        *f"{args.web_threads} -b 127.0.0.1:{deployment.web_port} --log-level warning".split(),
        "app:create_app()",
    ]
    product = Product(start_process("web", web_argv, env, log_dir), [])
    try:
        nodes = []
        for index in range(args.worker_processes):
            node = f"bench-{tag}-{index}@%h"
            worker_argv = [
                str(BIN / "celery"),
                *f"-A tasks worker --loglevel={args.worker_loglevel}".split(),
                f"--pool={args.worker_pool}",
                f"--concurrency={args.worker_concurrency}",
                *["-n", node, *args.worker_arg],
            ]
            product.workers.append(start_process(f"worker-{index}", worker_argv, env, log_dir))
            nodes.append(node.replace("%h", socket.gethostname()))
        if beat:
            beat_argv = [
                str(BIN / "celery"),
                *["-A", "tasks", "beat", "--loglevel=INFO", "--schedule"],
                str(log_dir / "celerybeat-schedule"),
            ]
            product.beat = start_process("beat", beat_argv, env, log_dir)
        wait_for_http(deployment.web_port, product.web)
        for worker, node in zip(product.workers, nodes, strict=True):
            wait_for_worker(deployment.settings.redis_url, node, worker)
        yield product
    finally:
        product.stop()


def wait_for_http(port: int, proc: Proc) -> None:
    def answers() -> bool:
        proc.check_alive("start-up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/auth/me")
            conn.getresponse().read()
            conn.close()
        except OSError:
            return False
        return True

    wait_for(
        answers,
        timeout=START_TIMEOUT_SECONDS,
        what=f"{proc.name} to answer HTTP on port {port}",
        context=proc.tail,
    )


def wait_for_worker(redis_url: str, node: str, proc: Proc) -> None:
    """A bare Celery app (not the product's) pings the worker through the broker."""
    probe_app = Celery("bench-probe", broker=redis_url)

    def answers() -> bool:
        proc.check_alive("start-up")
        return bool(probe_app.control.ping(destination=[node], timeout=0.5))

    try:
        wait_for(
            answers,
            timeout=START_TIMEOUT_SECONDS,
            what=f"{proc.name} to answer a ping",
            context=proc.tail,
        )
    finally:
        probe_app.close()
