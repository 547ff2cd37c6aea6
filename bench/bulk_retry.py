"""Bulk retry throughput: N failed rows retried through one bulk API call, end to end,
against the bare three writes, on one throwaway database.

    .venv/bin/python -m bench.bulk_retry [--rows 5000] [--accounts 20] [--keep]

1. Borrows a throwaway database `ccp_bench_<random>` (migrated with `flask db upgrade`)
   and an empty Redis database, as `bench.retry_throughput` does (`bench.services`).
2. Seeds an admin, `--accounts` cloud accounts with a contact email each, `--warmup` +
   `--rows` failed executions spread over them, and a pgbench pool.
3. Starts on loopback: an aiosmtpd server in this process that counts accepted messages,
   `gunicorn -w 2` (sync) and `celery -A tasks worker --pool=prefork --concurrency=2`
   (as the Procfile; see `--web-*` and `--worker-*`).
4. Signs in once; an untimed warm-up batch goes through the whole pipeline. Then the
   timed run: ONE `POST /api/purchases/retry` with all N ids; the clock runs from just
   before the POST until the SMTP server has accepted the N-th approval email. Then it
   checks the batch (`GET /api/purchases/retry-batches/<id>`: done, N succeeded), N
   pending successors with `notification_sent_at`, N approval notifications sent at
   their first attempt, and exactly N messages naming the N successors, each to its
   account's contact; any mismatch fails.
5. Stops the app and runs pgbench on the three writes of a retry in one
   transaction (`bench.pgbench`), with `--clients` clients.
6. Prints rows/s, pgbench tps, their ratio against the 0.2 target, a per-stage timeline
   (from the database's timestamps and the worker's task log lines), each task kind's
   time per row, and the CPU time (from /proc) each process group spent per row.

Exits non-zero, with a message on stderr, on any failure. Needs PostgreSQL
(127.0.0.1:5432, user postgres, trust), Redis (127.0.0.1:6379) and `pgbench` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from app import task_names
from app.domain.bulk_retry import CHUNK_SIZE, MAX_BATCH_ROWS
from app.services.digests import DIGEST_MAX_ROWS
from bench import BenchError, log, processes, services
from bench.cpu import ProcessGroups, cpu_report, cpu_snapshot
from bench.http_client import Client, signed_in_clients
from bench.mail import CountingSmtp
from bench.pgbench import PgbenchResult, run_pgbench, seed_pool, vacuum
from bench.processes import Deployment, Product, loopback_deployment, running_product
from bench.retries import ADMIN_EMAIL, BULK, Timeline, seed, verify, wait_for_mail
from bench.services import Borrowed
from tests.factories import PASSWORD
from tests.support.smtp import smtp_server

TARGET_RATIO = 0.3
# Redis databases 8 and 10-13 are other test runs' on this machine: claim one of 7..1.
REDIS_DBS = tuple(range(7, 0, -1))
CHUNK_TASK = task_names.RETRY
EMAILS_TASK = task_names.SEND_APPROVAL_DIGEST
# `[2026-11-28 10:00:00,123: INFO/ForkPoolWorker-1] Task name[id] succeeded in 0.84s: ...`
TASK_DONE = re.compile(
    r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/(?P<proc>[^\]]+)\] "
    r"Task (?P<name>[\w.]+)\[(?P<id>[0-9a-f-]+)\] succeeded in (?P<secs>[0-9.e-]+)s"
)


@dataclass
class TaskRun:
    name: str
    process: str
    started: float  # epoch seconds: `finished` less the runtime Celery logged
    finished: float
    seconds: float


@dataclass
class BulkResult:
    rows: int
    seconds: float
    rate: float
    stage_lines: list[str]
    task_lines: list[str]
    cpu_lines: list[str]
    cpu_per_row: dict[str, float]
    stages: dict[str, float] = field(default_factory=dict)
    task_ms_per_row: dict[str, float] = field(default_factory=dict)
    pgbench_cpu_lines: list[str] = field(default_factory=list)
    pgbench_other_share: float = 0.0


def post_batch(client: Client, rows: Sequence[uuid.UUID]) -> dict[str, Any]:
    """The bulk request for `rows`; its 202 body."""
    body = {"execution_ids": [str(row) for row in rows], "force": False}
    status, payload = client.call("POST", "/api/purchases/retry", body)
    if status != 202:
        raise BenchError(f"POST /api/purchases/retry answered {status}: {payload[:300]!r}")
    answer = json.loads(payload)
    if answer.get("total") != len(rows):
        raise BenchError(f"the batch counts {answer.get('total')} rows, not {len(rows)}")
    return answer


def check_batch(client: Client, answer: dict[str, Any], rows: int, timeout: float) -> None:
    """The batch, as its requester reads it, is done with every row succeeded."""
    url = f"{answer['status_url']}?items=false"
    state: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while True:
        status, payload = client.call("GET", url)
        if status != 200:
            raise BenchError(f"GET {url} answered {status}: {payload[:300]!r}")
        state = json.loads(payload)
        if state.get("state") == "done" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    got = {key: state.get(key) for key in ("state", "total", "succeeded", "rejected", "failed")}
    want = {"state": "done", "total": rows, "succeeded": rows, "rejected": 0, "failed": 0}
    if got != want:
        raise BenchError(f"batch {answer['batch_id']}: expected {want}, got {got}")


RECIPIENTS = text(
    "SELECT s.execution_id, a.contact_email FROM purchase_executions p"
    " JOIN purchase_executions s ON s.execution_id = p.retry_execution_id"
    " JOIN cloud_accounts a ON a.id = s.cloud_account_id"
    " WHERE p.execution_id = ANY(:ids)"
)


def expected_digests(engine: Engine, rows: Sequence[uuid.UUID]) -> int:
    """How many messages the batch's digests make: one per account contact, a further
    one per `DIGEST_MAX_ROWS` rows of one contact."""
    with engine.connect() as conn:
        per_contact = conn.execute(ROWS_PER_CONTACT, {"ids": list(rows)}).all()
    return sum(-(-count // DIGEST_MAX_ROWS) for _contact, count in per_contact)


ROWS_PER_CONTACT = text(
    "SELECT a.contact_email, count(*) FROM purchase_executions p"
    " JOIN cloud_accounts a ON a.id = p.cloud_account_id"
    " WHERE p.execution_id = ANY(:ids) GROUP BY a.contact_email"
)


def check_digests(engine: Engine, handler: CountingSmtp, timeline: Timeline) -> int:
    """Every successor is named (its approve link) in exactly one message, which went
    to its account's contact; returns how many distinct recipients there were."""
    rows = list(timeline.predecessor_of.values())
    with engine.connect() as conn:
        contact = {str(s): email for s, email in conn.execute(RECIPIENTS, {"ids": rows})}
    named: list[str] = []
    recipients = set()
    wrong = 0
    for envelope, successors in zip(handler.messages, handler.approved_id_lists(), strict=True):
        message = message_from_bytes(envelope.original_content, policy=default_policy)
        to = str(message["To"])
        recipients.add(to)
        named += successors
        wrong += sum(1 for successor in successors if contact.get(successor) != to)
        wrong += envelope.rcpt_tos != [to]
    if wrong:
        raise BenchError(f"{wrong} rows were sent to someone other than their account's contact")
    if sorted(named) != sorted(timeline.predecessor_of):
        raise BenchError(
            f"the digests name {len(named)} rows ({len(set(named))} distinct) for "
            f"{len(timeline.predecessor_of)} successors"
        )
    return len(recipients)


def worker_tasks(product: Product, since: float) -> list[TaskRun]:
    """The tasks the workers logged as finished since `since` (epoch), from their logs
    (`--loglevel=INFO` logs each task's runtime)."""
    runs = []
    for worker in product.workers:
        try:
            lines = worker.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            match = TASK_DONE.match(line)
            if not match:
                continue
            finished = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if finished < since:
                continue
            seconds = float(match["secs"])
            runs.append(
                TaskRun(match["name"], match["proc"], finished - seconds, finished, seconds)
            )
    return runs


STAGES = text(
    "SELECT"
    " (SELECT extract(epoch FROM created_at) FROM retry_batches WHERE id = :batch),"
    " (SELECT extract(epoch FROM min(settled_at)) FROM retry_batch_items WHERE batch_id = :batch),"
    " (SELECT extract(epoch FROM max(settled_at)) FROM retry_batch_items WHERE batch_id = :batch),"
    " (SELECT extract(epoch FROM min(n.claimed_at)) FROM retry_batch_items i"
    "   JOIN notifications n ON n.execution_id = i.successor_execution_id"
    "   AND n.kind = 'approval' WHERE i.batch_id = :batch),"
    " (SELECT extract(epoch FROM max(n.claimed_at)) FROM retry_batch_items i"
    "   JOIN notifications n ON n.execution_id = i.successor_execution_id"
    "   AND n.kind = 'approval' WHERE i.batch_id = :batch),"
    " (SELECT extract(epoch FROM max(n.sent_at)) FROM retry_batch_items i"
    "   JOIN notifications n ON n.execution_id = i.successor_execution_id"
    "   AND n.kind = 'approval' WHERE i.batch_id = :batch)"
)


def stage_timeline(
    engine: Engine,
    batch_id: str,
    t0: float,
    posted: float,
    handler: CountingSmtp,
    tasks: list[TaskRun],
    n: int,
) -> tuple[list[str], dict[str, float]]:
    with engine.connect() as conn:
        found = conn.execute(STAGES, {"batch": batch_id}).one()
    recorded, settle_first, settle_last, claim_first, claim_last, sent_last = (
        float(value) if value is not None else float("nan") for value in found
    )
    chunks = [task for task in tasks if task.name == CHUNK_TASK]
    emails = [task for task in tasks if task.name == EMAILS_TASK]
    stages = {
        "POST answered (202, batch committed, chunks queued)": posted,
        "batch recorded (web, txn start: retry_batches.created_at)": recorded,
        "first chunk settle started (min retry_batch_items.settled_at)": settle_first,
        "last chunk settle started (max retry_batch_items.settled_at)": settle_last,
    }
    if chunks:
        stages["last chunk task finished (worker log)"] = max(t.finished for t in chunks)
    stages["first email claimed (min notifications.claimed_at)"] = claim_first
    stages["first email accepted (SMTP)"] = handler.times[0]
    stages["last email claimed (max notifications.claimed_at)"] = claim_last
    stages["last email accepted (SMTP): the clock stops"] = handler.times[n - 1]
    stages["last sent recorded (max notifications.sent_at)"] = sent_last
    if emails:
        stages["last email task finished (worker log)"] = max(t.finished for t in emails)
    lines = [
        f"  {label:<62} {at - t0:7.2f}s"
        for label, at in sorted(stages.items(), key=lambda kv: kv[1])
    ]
    return lines, {label: at - t0 for label, at in stages.items()}


def task_breakdown(tasks: list[TaskRun], n: int, wall: float) -> tuple[list[str], dict[str, float]]:
    """Per task kind: how many ran, their total runtime and what it makes per row."""
    by_name: dict[str, list[TaskRun]] = defaultdict(list)
    for task in tasks:
        by_name[task.name].append(task)
    lines = []
    per_row: dict[str, float] = {}
    for name, runs in sorted(by_name.items(), key=lambda kv: -sum(t.seconds for t in kv[1])):
        total = sum(t.seconds for t in runs)
        per_row[name] = 1000 * total / n
        runtimes = sorted(t.seconds for t in runs)
        lines.append(
            f"  {name:<38} {len(runs):4d} tasks  {total:7.2f} s  "
            f"{1000 * total / n:6.2f} ms/row  (per task: min {runtimes[0]:.2f} "
            f"median {runtimes[len(runtimes) // 2]:.2f} max {runtimes[-1]:.2f} s)"
        )
    busy = sum(t.seconds for t in tasks)
    lines.append(
        f"  worker pool busy {busy:.2f} task-seconds over {wall:.2f} s of wall "
        f"({busy / max(wall, 1e-9):.2f} of the pool's processes on average)"
    )
    return lines, per_row


def run_bulk(
    args: argparse.Namespace,
    borrowed: Borrowed,
    deployed: Deployment,
    handler: CountingSmtp,
    warmup: list[uuid.UUID],
    rows: list[uuid.UUID],
) -> BulkResult:
    """Start the product, warm it up with one batch, then time one batch of `rows`."""
    engine = borrowed.engine
    with running_product(args, deployed, tag=borrowed.tag, log_dir=borrowed.work_dir) as product:
        groups = product.groups(str(engine.url.database))
        (client,) = signed_in_clients(deployed.web_port, ADMIN_EMAIL, PASSWORD, 1)
        if warmup:
            log(f"warm-up: one batch of {len(warmup)} rows through the whole pipeline (untimed)")
            handler.expect(expected_digests(engine, warmup))
            answer = post_batch(client, warmup)
            wait_for_mail(handler, args.timeout, product, engine, warmup, BULK)
            check_batch(client, answer, len(warmup), timeout=30)
            verify(engine, warmup, retries=BULK)
        if args.analyze_items:
            with engine.connect() as conn:
                conn.execute(text("ANALYZE retry_batch_items"))
                conn.commit()
            log("analyzed retry_batch_items after the warm-up (--analyze-items)")
        n = len(rows)
        messages = expected_digests(engine, rows)
        handler.expect(messages)
        time.sleep(0.5)  # let the warm-up's last commits and acks settle
        cpu_before = cpu_snapshot(groups)
        log(f"timed run: one POST of {n} ids")
        t0 = time.time()
        answer = post_batch(client, rows)
        posted = time.time()
        log(f"POST answered after {posted - t0:.2f}s: batch {answer['batch_id']}")
        wait_for_mail(handler, args.timeout, product, engine, rows, BULK)
        t_end = handler.times[messages - 1]
        cpu_after = cpu_snapshot(groups)
        time.sleep(1.0)  # a duplicate email would arrive about now
        if len(handler.times) != messages:
            raise BenchError(
                f"{len(handler.times)} emails arrived for {messages} digests (duplicates)"
            )
        check_batch(client, answer, n, timeout=30)
        timeline = verify(engine, rows, retries=BULK)
        client.close()
        tasks = worker_tasks(product, since=t0)
    recipients = check_digests(engine, handler, timeline)
    log(
        f"checked: {n} succeeded, {messages} digests to {recipients} account contacts, "
        "each row in one, none twice"
    )
    seconds = t_end - t0
    stage_lines, stages = stage_timeline(
        engine, answer["batch_id"], t0, posted, handler, tasks, messages
    )
    task_lines, task_ms = task_breakdown(tasks, n, seconds)
    cpu_lines, cpu_per_row = cpu_report(cpu_before, cpu_after, n, unit="row")
    return BulkResult(
        n, seconds, n / seconds, stage_lines, task_lines, cpu_lines, cpu_per_row, stages, task_ms
    )


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
        started = time.monotonic()
        warmup, rows = seed(engine, args.warmup, args.rows, accounts=args.accounts)
        seeded = time.monotonic() - started
        seed_pool(engine, size=args.pgbench_pool, like=rows[0])
        vacuum(engine)
        log(
            f"seeded {args.rows} + {args.warmup} failed rows over {args.accounts} accounts "
            f"in {seeded:.2f}s, {args.pgbench_pool} pool rows"
        )
        result = run_bulk(args, borrowed, deployed, handler, warmup, rows)
    # The machine during pgbench too: a busy neighbour lowers the baseline, not the run.
    groups = ProcessGroups({}, str(engine.url.database))
    before = cpu_snapshot(groups)
    pg = run_pgbench(
        engine,
        clients=args.clients,
        seconds=args.pgbench_seconds,
        pool=args.pgbench_pool,
        work_dir=borrowed.work_dir,
    )
    after = cpu_snapshot(groups)
    result.pgbench_cpu_lines, per_txn = cpu_report(before, after, pg.transactions, unit="txn")
    # pgbench and its backends come and go within the window (`unattributed`); processes
    # alive throughout are a neighbour's.
    result.pgbench_other_share = (
        per_txn.get("other processes", 0.0)
        * pg.transactions
        / 1000
        / max((after.at - before.at) * (os.cpu_count() or 1), 1e-9)
    )
    report(args, result, pg)


def report(args: argparse.Namespace, result: BulkResult, pg: PgbenchResult) -> None:
    ratio = result.rate / pg.tps
    configuration = (
        f"{processes.describe(args)}; {args.accounts} accounts; chunks of {CHUNK_SIZE}; "
        f"pgbench clients {args.clients}"
    )
    print()
    print(f"configuration: {configuration}")
    print(
        f"bulk retry : {result.rows} rows in one POST, {result.seconds:.2f}s to the last "
        f"accepted email = {result.rate:.1f} rows/s"
    )
    print(
        f"pgbench    : {pg.tps:.1f} tps (bare three writes, {args.clients} clients, "
        f"{pg.transactions} transactions)"
    )
    verdict = "meets" if ratio >= TARGET_RATIO else "below"
    print(
        f"ratio      : {ratio:.3f} ({verdict} the {TARGET_RATIO} target: "
        f"{TARGET_RATIO * pg.tps:.0f} rows/s)"
    )
    print("stages (from just before the POST):")
    print("\n".join(result.stage_lines))
    print("worker tasks of the timed batch (runtimes from the worker's log):")
    print("\n".join(result.task_lines))
    print("CPU during the timed run:")
    print("\n".join(result.cpu_lines))
    print("CPU during pgbench (vacuum included):")
    print("\n".join(result.pgbench_cpu_lines))
    other = result.cpu_per_row.get("other processes", 0.0) * result.rows / 1000
    capacity = result.seconds * (os.cpu_count() or 1)
    if other > 0.05 * capacity:
        print(
            f"warning: processes outside the run took {100 * other / capacity:.0f}% of the "
            "machine during it: the numbers are not comparable (run it on a quiet machine)"
        )
    if result.pgbench_other_share > 0.05:
        print(
            f"warning: processes outside the run took {100 * result.pgbench_other_share:.0f}% "
            "of the machine during pgbench: its tps, and so the ratio, are not comparable"
        )
    if args.json:
        numbers = {
            "rows": result.rows,
            "accounts": args.accounts,
            "clients": args.clients,
            "seconds": result.seconds,
            "rows_per_second": result.rate,
            "pgbench_tps": pg.tps,
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
            "stages_seconds": result.stages,
            "task_ms_per_row": result.task_ms_per_row,
            "cpu_ms_per_row": result.cpu_per_row,
            "analyze_items": args.analyze_items,
            "configuration": configuration,
            "argv": sys.argv[1:],
        }
        args.json.write_text(json.dumps(numbers, indent=2))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Bulk retry rows/s end to end (one POST -> worker chunks -> SMTP accept "
        "of the last email) against pgbench's rate for the bare three writes, on one "
        "throwaway database.",
        epilog="The database server is the test suite's: TEST_DATABASE_ADMIN_URL "
        "(default postgresql+psycopg://postgres@127.0.0.1:5432/postgres).",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=5000,
        help=f"failed rows in the timed batch (5000; at most {MAX_BATCH_ROWS})",
    )
    parser.add_argument(
        "--accounts", type=int, default=20, help="cloud accounts the rows belong to (20)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=CHUNK_SIZE,
        help=f"rows of the untimed warm-up batch ({CHUNK_SIZE})",
    )
    parser.add_argument("--clients", type=int, default=8, help="pgbench clients (8)")
    parser.add_argument(
        "--analyze-items",
        action="store_true",
        help="ANALYZE retry_batch_items after the warm-up, as autovacuum would in a "
        "running deployment (an experiment: without statistics the planner may settle "
        "each item by scanning its whole batch; see bench/README.md)",
    )
    services.add_arguments(parser, redis_dbs=REDIS_DBS)
    processes.add_arguments(parser)
    parser.add_argument("--pgbench-seconds", type=int, default=10, help="pgbench duration (10)")
    parser.add_argument(
        "--pgbench-pool", type=int, default=60000, help="failed rows seeded for pgbench (60000)"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.rows <= MAX_BATCH_ROWS:
        parser.error(f"--rows must be between 1 and {MAX_BATCH_ROWS} (one bulk request)")
    if not 0 <= args.warmup <= MAX_BATCH_ROWS:
        parser.error(f"--warmup must be between 0 and {MAX_BATCH_ROWS}")
    if args.accounts < 1 or args.clients < 1:
        parser.error("--accounts and --clients must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return services.run(lambda borrowed: measure(args, borrowed), args)


if __name__ == "__main__":
    sys.exit(main())
