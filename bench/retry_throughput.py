"""End-to-end retry throughput against the bare three writes, on one throwaway database.

    .venv/bin/python -m bench.retry_throughput [--rows 300] [--clients 8] [--keep]

1. Creates a throwaway database `ccp_bench_<random>` on the test suite's server
   (TEST_DATABASE_ADMIN_URL) and migrates it (`flask db upgrade`); claims an empty Redis
   database of 12..1, locked for the run and emptied at the end (never 0, the
   product's, nor 13-15, the test suite's).
2. Seeds an admin, a cloud account, `--warmup` + `--rows` failed executions and a
   pgbench pool.
3. Starts on loopback: an aiosmtpd server in this process that counts accepted messages,
   `gunicorn -w 2` (sync) and `celery -A tasks worker --pool=prefork --concurrency=2`
   (as the Procfile; see `--web-*` and `--worker-*` for other choices).
4. After an untimed warm-up, `--clients` threads sign in once and POST
   `/api/purchases/retry/<id>`; the clock runs from the first POST to the N-th accepted
   approval email. Then it checks N succeeded requests, N successors with
   `notification_sent_at`, N approval notifications sent at their first attempt and
   exactly N messages naming the N successors; any mismatch fails.
5. Stops the app and runs pgbench on the three writes of a retry in one
   transaction (`bench.pgbench`).
6. Prints retries/s, pgbench tps, their ratio against the 0.15 target, a per-stage
   timeline and the CPU time (from /proc) each process group spent per retry.

Exits non-zero, with a message on stderr, on any failure. Needs PostgreSQL
(127.0.0.1:5432, user postgres, trust), Redis (127.0.0.1:6379) and `pgbench` on PATH.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError, log, processes, services
from bench.cpu import cpu_report, cpu_snapshot
from bench.http_client import Client, signed_in_clients
from bench.mail import CountingSmtp
from bench.pgbench import PgbenchResult, run_pgbench, seed_pool, vacuum
from bench.processes import Deployment, loopback_deployment, running_product
from bench.retries import ADMIN_EMAIL, check_emails, seed, verify, wait_for_mail
from bench.services import Borrowed
from tests.factories import PASSWORD
from tests.support.smtp import smtp_server

TARGET_RATIO = 0.15


@dataclass
class E2EResult:
    retries: int
    seconds: float
    rate: float
    stage_lines: list[str]
    cpu_lines: list[str]
    cpu_per_retry: dict[str, float]


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


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_e2e(
    args: argparse.Namespace,
    borrowed: Borrowed,
    deployed: Deployment,
    handler: CountingSmtp,
    warmup: list[uuid.UUID],
    rows: list[uuid.UUID],
) -> E2EResult:
    """Start the product, warm it up, then time the retries of `rows`."""
    engine, port, clients = borrowed.engine, deployed.web_port, args.clients
    with running_product(args, deployed, tag=borrowed.tag, log_dir=borrowed.work_dir) as product:
        groups = product.groups(str(engine.url.database))
        if warmup:
            log(f"warm-up: {len(warmup)} retries through the whole pipeline (untimed)")
            handler.expect(len(warmup))
            drive(signed_in_clients(port, ADMIN_EMAIL, PASSWORD, min(clients, len(warmup))), warmup)
            wait_for_mail(handler, args.timeout, product, engine, warmup)
            verify(engine, warmup)
        n = len(rows)
        handler.expect(n)
        sessions = signed_in_clients(port, ADMIN_EMAIL, PASSWORD, clients)
        time.sleep(0.5)  # let the warm-up's last commits and acks settle
        cpu_before = cpu_snapshot(groups)
        log(f"timed run: {n} retries from {clients} clients")
        t0, sent, answered = drive(sessions, rows)
        posts_done = max(answered.values())
        wait_for_mail(handler, args.timeout, product, engine, rows)
        t_end = handler.times[n - 1]
        cpu_after = cpu_snapshot(groups)
        time.sleep(1.0)  # a duplicate email would arrive about now
        if len(handler.times) != n:
            raise BenchError(f"{len(handler.times)} emails arrived for {n} retries (duplicates)")
        timeline = verify(engine, rows)
    successors = check_emails(handler, timeline)
    latencies = [
        accepted - sent[timeline.predecessor_of[successor]]
        for accepted, successor in zip(handler.times, successors, strict=True)
    ]
    post_latencies = [answered[r] - sent[r] for r in rows]

    def stage(label: str, times: Sequence[float]) -> str:
        done = max(times) - t0
        return f"  {label:<44} last at {done:6.2f}s  ({n / max(done, 1e-9):7.1f}/s over the run)"

    stage_lines = [
        stage("HTTP 202 answered (client)", [posts_done]),
        stage("retry request committed (web, txn start)", timeline.request_created),
        stage("retry task settled (worker, task start)", timeline.task_settled),
        stage("email task started (worker, claim)", timeline.email_claimed),
        stage("email accepted (SMTP)", [t_end]),
        f"  POST latency ms: p50 {1000 * statistics.median(post_latencies):.1f}  "
        f"p95 {1000 * pct(post_latencies, 0.95):.1f}  max {1000 * max(post_latencies):.1f}",
        f"  POST -> email accepted, s: p50 {statistics.median(latencies):.2f}  "
        f"p95 {pct(latencies, 0.95):.2f}  max {max(latencies):.2f}",
    ]
    cpu_lines, cpu_per_retry = cpu_report(cpu_before, cpu_after, n, unit="retry")
    seconds = t_end - t0
    return E2EResult(n, seconds, n / seconds, stage_lines, cpu_lines, cpu_per_retry)


def measure(args: argparse.Namespace, borrowed: Borrowed) -> None:
    """The whole run on what `services.run` borrowed: the product end to end, then
    pgbench once the product has stopped; then the report."""
    engine = borrowed.engine
    handler = CountingSmtp()
    with smtp_server(handler) as smtp:
        deployed = loopback_deployment(
            args,
            database_url=engine.url.render_as_string(hide_password=False),
            redis_url=borrowed.redis_url,
            smtp=smtp,
        )
        deployed.migrate()
        warmup, rows = seed(engine, args.warmup, args.rows)
        seed_pool(engine, size=args.pgbench_pool, like=rows[0])
        vacuum(engine)
        log(f"seeded {args.rows} + {args.warmup} failed rows, {args.pgbench_pool} pool rows")
        e2e = run_e2e(args, borrowed, deployed, handler, warmup, rows)
    pg = run_pgbench(
        engine,
        clients=args.clients,
        seconds=args.pgbench_seconds,
        pool=args.pgbench_pool,
        work_dir=borrowed.work_dir,
    )
    report(args, e2e, pg)


def report(args: argparse.Namespace, e2e: E2EResult, pg: PgbenchResult) -> None:
    ratio = e2e.rate / pg.tps
    configuration = f"{processes.describe(args)}; clients {args.clients}"
    print()
    print(f"configuration: {configuration}")
    print(f"end to end : {e2e.retries} retries in {e2e.seconds:.2f}s = {e2e.rate:.1f} retries/s")
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
        numbers = {
            "rows": e2e.retries,
            "clients": args.clients,
            "e2e_seconds": e2e.seconds,
            "e2e_rate": e2e.rate,
            "pgbench_tps": pg.tps,
            "ratio": ratio,
            "cpu_ms_per_retry": e2e.cpu_per_retry,
            "configuration": configuration,
            "argv": sys.argv[1:],
        }
        args.json.write_text(json.dumps(numbers, indent=2))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Retries/s end to end (HTTP -> worker -> SMTP accept) against pgbench's "
        "rate for the bare three writes, on one throwaway database.",
        epilog="The database server is the test suite's: TEST_DATABASE_ADMIN_URL "
        "(default postgresql+psycopg://postgres@127.0.0.1:5432/postgres).",
    )
    parser.add_argument("--rows", type=int, default=300, help="failed rows to retry (300)")
    parser.add_argument("--clients", type=int, default=8, help="HTTP and pgbench clients (8)")
    parser.add_argument("--warmup", type=int, default=16, help="untimed warm-up retries (16)")
    services.add_arguments(parser)
    processes.add_arguments(parser)
    parser.add_argument("--pgbench-seconds", type=int, default=10, help="pgbench duration (10)")
    parser.add_argument(
        "--pgbench-pool", type=int, default=60000, help="failed rows seeded for pgbench (60000)"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.clients < 1:
        parser.error("--rows and --clients must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return services.run(lambda borrowed: measure(args, borrowed), args)


if __name__ == "__main__":
    sys.exit(main())
