"""Load: `--operators` (50) people using the product at once for `--seconds` (60), on
`--rows` (10,000) executions, then a check that everything they asked for settled
exactly once.

    .venv/bin/python -m bench.load [--db postgresql|sqlite] [--quick]

1. Borrows a throwaway PostgreSQL database (or, with `--db sqlite`, a SQLite file in
   the run's directory) and an empty Redis database (9 by default), as every benchmark
   here does (`bench.services`); migrates it with `flask db upgrade`.
2. Seeds, with one multi-row INSERT: `--accounts` (20) cloud accounts, each with a
   contact address (no user's: the approval email of a row goes to it alone), one user
   per operator (a tenth administrators, three tenths approvers with `approve-any` and
   `cancel-any`, the rest retriers with `retry-any`), and `--rows` executions of theirs
   (40% failed, 20% pending, the rest completed, cancelled or expired), 31 seconds
   apart; the pending ones with their approval email on record as sent.
3. Starts on loopback as the Procfile does: an SMTP server in this process that keeps
   every message, `gunicorn -w 2`, two `celery -A tasks worker` processes (node names
   of their own, prefork, concurrency 2 each) and `celery -A tasks beat`.
4. Every operator signs in (`POST /api/auth/login`) and, until the time is up, picks an
   action at random (weighted by its role) and waits for its answer: list (`GET
   /api/history`), filter (`GET /api/history?status=failed|pending&cloud_account_id=`),
   retry (`POST /api/purchases/retry/<id>`), bulk retry (`POST /api/purchases/retry`
   with two to five ids, or a filter of one account's failed rows within two hours),
   approve and cancel (`POST /api/purchases/approve|cancel/<id>`, with the CSRF token).
   The ids come from what its own pages showed it, else from the seeded rows: operators
   collide on rows, as people do. Any answer below 500 is an outcome (a 409 for a row
   already retried is normal); a 5xx or a broken connection is an error. Before that,
   one administrator alone runs the same mix for `--baseline-seconds`: the baseline.
5. Prints per action: requests, throughput, p50 and p99 latency, the answers by status;
   the total; and the ratios of the load to the baseline.
6. Waits (at most `--settle-seconds`) for the workers to settle everything, then checks,
   failing the run on any violation: no predecessor with two successors, no retry
   request or batch item still queued, no approved or running execution left, exactly
   one approval email received by the SMTP server for every pending successor (at most
   one for any successor, none for a row that is not one), at most one outcome email
   per execution, and no 5xx.

Exit status 0, 1 on a violation or a failed run, 2 when a prerequisite is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, create_engine, insert, inspect, text
from sqlalchemy.orm import Session

from app.db import new_uuid, utcnow
from app.models import Group, Notification, PurchaseExecution
from bench import BenchError, log, processes, services
from bench.cpu import cpu_report, cpu_snapshot
from bench.http_client import Client
from bench.mail import APPROVE_LINK, CountingSmtp
from bench.processes import Deployment, Product, loopback_deployment, running_product
from bench.retries import FAILURE, contact_email, failed_recommendations
from bench.retry_throughput import pct
from bench.services import Borrowed
from tests.factories import PASSWORD, make_account, make_user, recommendation
from tests.support.smtp import smtp_server

# Redis databases 1-8 and 10-15 are other runs' on this machine.
REDIS_DBS = (9,)
ACTIONS = ("list", "filter", "retry", "bulk retry", "approve", "cancel")
# How often each role picks each action (weights, in ACTIONS' order).
MIX = {
    "admin": (3, 2, 2, 1, 1.5, 0.5),
    "approver": (3, 3, 0.5, 0.2, 3, 1),
    "retrier": (3, 3, 3, 1, 0.3, 0.3),
}
GROUPS = {
    "admin": ("Administrators", None),
    "approver": ("Approvers", ["approve-any:purchases", "cancel-any:purchases"]),
    "retrier": ("Retriers", ["retry-any:purchases"]),
}
# Of every 20 seeded rows: 8 failed, 4 pending, 5 completed, 2 cancelled, 1 expired.
STATUS_CYCLE = (
    ["failed"] * 8 + ["pending"] * 4 + ["completed"] * 5 + ["cancelled"] * 2 + ["expired"]
)
SPACING = timedelta(seconds=31)
FINAL_REQUEST_STATES = ("succeeded", "rejected", "failed")


# --- The world --------------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    email: str
    role: str


@dataclass
class World:
    """What the seed made: the operators, the accounts, and the seeded rows' ids by
    status (with the account and creation time of each failed one, for filters)."""

    operators: list[Operator]
    accounts: list[str]
    failed: list[tuple[str, str, datetime]]  # (id, account, created_at)
    pending: list[str]


def roles(count: int) -> list[str]:
    """A tenth administrators (at least one), three tenths approvers, the rest retriers;
    the first is an administrator (the baseline's operator)."""
    admins = max(1, count // 10)
    approvers = min(count - admins, max(1, count * 3 // 10)) if count > 1 else 0
    retriers = count - admins - approvers
    return ["admin"] * admins + ["approver"] * approvers + ["retrier"] * retriers


def seed_world(engine: Engine, rows: int, operators: int, accounts: int) -> World:
    """Groups, users, accounts and `rows` executions (one ORM multi-row INSERT: the
    model's column types apply on either database)."""
    rng = random.Random(20240601)  # noqa: S311 - reproducible data, not security
    with Session(engine) as session, session.begin():
        for name, permissions in GROUPS.values():
            if permissions is not None:
                session.add(Group(name=name, permissions=permissions, restricts_defaults=False))
        session.flush()
        people = [
            Operator(f"{role}-{index:02d}@load.example", role)
            for index, role in enumerate(roles(operators))
        ]
        users = [make_user(session, person.email, (GROUPS[person.role][0],)) for person in people]
        account_ids = [
            make_account(session, contact_email=contact_email(index, accounts)).id
            for index in range(accounts)
        ]
        now = utcnow()
        values = []
        for serial in range(rows):
            status = STATUS_CYCLE[serial % len(STATUS_CYCLE)]
            items = (
                failed_recommendations(rng)
                if status == "failed"
                else [recommendation(count=rng.randint(1, 8))]
            )
            created = now - SPACING * (serial + 1)
            values.append(
                {
                    "execution_id": new_uuid(),
                    "status": status,
                    "created_by_user_id": users[serial % len(users)].id,
                    "cloud_account_id": account_ids[serial % accounts],
                    "recommendations": items,
                    "error": FAILURE if status == "failed" else None,
                    "total_upfront_cost": sum(Decimal(item["upfront_cost"]) for item in items),
                    "estimated_savings": 12
                    * sum(Decimal(item["monthly_savings"]) for item in items),
                    "completed_at": created if status in ("completed", "failed") else None,
                    "notification_sent_at": created if status == "pending" else None,
                    "created_at": created,
                    "updated_at": created,
                }
            )
        if values:
            session.execute(insert(PurchaseExecution), values)
            emailed = [v for v in values if v["status"] == "pending"]
            if emailed:
                session.execute(insert(Notification), [already_sent(v) for v in emailed])
    return World(
        operators=people,
        accounts=[str(account) for account in account_ids],
        failed=[
            (str(v["execution_id"]), str(v["cloud_account_id"]), v["created_at"])
            for v in values
            if v["status"] == "failed"
        ],
        pending=[str(v["execution_id"]) for v in values if v["status"] == "pending"],
    )


def already_sent(execution: dict[str, Any]) -> dict[str, Any]:
    """The approval email of a seeded pending row, sent when the row was made: without
    it, beat would owe the row its email (as for a row inserted by hand) and the run
    would send thousands of emails nobody asked for."""
    at = execution["created_at"]
    return {
        "execution_id": execution["execution_id"],
        "kind": "approval",
        "state": "sent",
        "attempts": 1,
        "due_at": at,
        "claimed_at": at,
        "sent_at": at,
        "created_at": at,
        "updated_at": at,
    }


# --- The operators ----------------------------------------------------------------------


@dataclass
class Sample:
    action: str
    status: int  # 0: no answer (the connection broke)
    seconds: float


@dataclass
class Desk:
    """One signed-in operator: its client, its dice, and the ids its pages showed it."""

    operator: Operator
    client: Client
    rng: random.Random
    failed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def sign_in(world: World, port: int) -> list[Desk]:
    desks = []
    for index, operator in enumerate(world.operators):
        client = Client(port)
        client.login(operator.email, PASSWORD)
        rng = random.Random(index)  # noqa: S311 - reproducible choices, not security
        desks.append(Desk(operator, client, rng))
    return desks


def remember(desk: Desk, payload: bytes) -> None:
    """Note the failed and pending rows a page showed (newest first: a fresh successor
    is on the first page of the history)."""
    try:
        items = json.loads(payload)["items"]
    except (ValueError, KeyError, TypeError):
        return
    for item in items:
        if item.get("status") == "failed" and not item.get("retry_execution_id"):
            desk.failed.append(item["execution_id"])
        elif item.get("status") == "pending":
            desk.pending.append(item["execution_id"])
    del desk.failed[:-100]
    del desk.pending[:-100]


def pick(rng: random.Random, seen: list[str], pool: Sequence[str]) -> str:
    """Mostly a row this operator saw (taken off its list), else any seeded one."""
    if seen and rng.random() < 0.7:
        return seen.pop(rng.randrange(len(seen)))
    return rng.choice(pool)


def request_for(desk: Desk, action: str, world: World) -> tuple[str, str, dict | None]:
    """The method, path and JSON body of one `action`."""
    rng = desk.rng
    if action == "list":
        return "GET", "/api/history", None
    if action == "filter":
        status = "failed" if rng.random() < 0.7 else "pending"
        query = urlencode({"status": status, "cloud_account_id": rng.choice(world.accounts)})
        return "GET", f"/api/history?{query}", None
    if action == "retry":
        failed = [row[0] for row in world.failed]
        return "POST", f"/api/purchases/retry/{pick(rng, desk.failed, failed)}", None
    if action == "bulk retry":
        if rng.random() < 0.5:
            ids = [row[0] for row in rng.sample(world.failed, rng.randint(2, 5))]
            return "POST", "/api/purchases/retry", {"execution_ids": ids}
        _, account, created = rng.choice(world.failed)
        window = {
            "status": "failed",
            "cloud_account_id": account,
            "created_after": (created - timedelta(hours=1)).isoformat(),
            "created_before": (created + timedelta(hours=1)).isoformat(),
        }
        return "POST", "/api/purchases/retry", {"filter": window}
    verb = "approve" if action == "approve" else "cancel"
    return "POST", f"/api/purchases/{verb}/{pick(rng, desk.pending, world.pending)}", None


def work(desk: Desk, world: World, start: threading.Barrier, deadline: list[float]) -> None:
    """Until the deadline: pick an action, send it, note the answer and its latency."""
    weights = MIX[desk.operator.role]
    start.wait()
    while time.monotonic() < deadline[0]:
        action = desk.rng.choices(ACTIONS, weights)[0]
        method, path, body = request_for(desk, action, world)
        began = time.perf_counter()
        try:
            status, payload = desk.client.call(method, path, body)
        except Exception as exc:  # a broken connection is an error, not the end
            desk.samples.append(Sample(action, 0, time.perf_counter() - began))
            desk.failures.append(f"{action} {path}: {type(exc).__name__}: {exc}")
            desk.client.conn.close()
            continue
        desk.samples.append(Sample(action, status, time.perf_counter() - began))
        if status >= 500:
            desk.failures.append(f"{action} {path}: {status} {payload[:200]!r}")
        elif status == 200 and action in ("list", "filter"):
            remember(desk, payload)


@dataclass
class Phase:
    """What the operators of one phase did, and for how long."""

    operators: int
    seconds: float
    samples: list[Sample]
    failures: list[str]


def drive(desks: list[Desk], world: World, seconds: float) -> Phase:
    """Every desk works at once for `seconds`; the phase lasts until the last answer."""
    deadline = [0.0]
    began: list[float] = []

    def release() -> None:
        began.append(time.monotonic())
        deadline[0] = began[0] + seconds

    barrier = threading.Barrier(len(desks), action=release)
    for desk in desks:
        desk.samples, desk.failures = [], []
    threads = [
        threading.Thread(target=work, args=(desk, world, barrier, deadline), daemon=True)
        for desk in desks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began[0]
    samples = [sample for desk in desks for sample in desk.samples]
    failures = [failure for desk in desks for failure in desk.failures]
    return Phase(len(desks), elapsed, samples, failures)


# --- The report -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    action: str
    count: int
    rate: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]


def summarize(phase: Phase) -> list[Row]:
    """One row per action that ran, then the total."""
    by_action: dict[str, list[Sample]] = defaultdict(list)
    for sample in phase.samples:
        by_action[sample.action].append(sample)
    groups = [(action, by_action[action]) for action in ACTIONS if by_action[action]]
    groups.append(("total", phase.samples))
    rows = []
    for action, samples in groups:
        latencies = [sample.seconds * 1000 for sample in samples]
        rows.append(
            Row(
                action,
                len(samples),
                len(samples) / phase.seconds,
                statistics.median(latencies) if latencies else float("nan"),
                pct(latencies, 0.99),
                dict(sorted(Counter(sample.status for sample in samples).items())),
            )
        )
    return rows


def table(title: str, phase: Phase, rows: list[Row]) -> list[str]:
    lines = [
        f"{title}: {phase.operators} operator(s), {phase.seconds:.1f} s",
        f"  {'action':<11}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  answers",
    ]
    for row in rows:
        answers = " ".join(f"{status or 'broken'}:{n}" for status, n in row.statuses.items())
        lines.append(
            f"  {row.action:<11}{row.count:>9}{row.rate:>9.1f}{row.p50_ms:>9.1f}"
            f"{row.p99_ms:>9.1f}  {answers}"
        )
    return lines


def ratios(baseline: list[Row], load: list[Row], operators: int) -> list[str]:
    """The load against the baseline, action by action where both ran."""
    base = {row.action: row for row in baseline}
    lines = [f"load ({operators} operators) against the baseline (1 operator):"]
    for row in load:
        one = base.get(row.action)
        if one is None or not one.count:
            continue
        lines.append(
            f"  {row.action:<11} throughput x{row.rate / one.rate:6.2f}   "
            f"p50 latency x{row.p50_ms / one.p50_ms:6.2f}"
        )
    return lines


# --- Settling and the checks ------------------------------------------------------------


def request_tables(engine: Engine) -> list[str]:
    """Where retries are recorded: the batch items, and the single retry requests where
    that table still exists (a single retry may be a batch of one)."""
    present = set(inspect(engine).get_table_names())
    return [name for name in ("retry_batch_items", "retry_requests") if name in present]


def unsettled(engine: Engine, tables: list[str]) -> dict[str, int]:
    """What the workers still owe: queued retries, approved or running executions,
    pending successors whose approval email is not sent yet."""
    finals = ", ".join(f"'{state}'" for state in FINAL_REQUEST_STATES)
    owed: dict[str, int] = {}
    with engine.connect() as conn:
        for name in tables:
            owed[f"{name} not settled"] = conn.execute(
                text(f"SELECT count(*) FROM {name} WHERE state NOT IN ({finals})")  # noqa: S608
            ).scalar_one()
        owed["approved or running executions"] = conn.execute(
            text("SELECT count(*) FROM purchase_executions WHERE status IN ('approved', 'running')")
        ).scalar_one()
        owed["pending successors not yet emailed"] = conn.execute(
            text(
                "SELECT count(*) FROM purchase_executions WHERE retry_attempt_n > 0"
                " AND status = 'pending' AND notification_sent_at IS NULL"
            )
        ).scalar_one()
    return owed


def settle(engine: Engine, product: Product, tables: list[str], timeout: float) -> float:
    """Wait until nothing is owed, or `timeout`; the seconds it took (the checks say
    what is left, if anything)."""
    began = time.monotonic()
    owed = unsettled(engine, tables)
    while any(owed.values()) and time.monotonic() - began < timeout:
        product.check_alive("settling")
        time.sleep(1.0)
        owed = unsettled(engine, tables)
    if any(owed.values()):
        log(f"still owed after {timeout:.0f} s: {owed}")
    return time.monotonic() - began


def check(
    engine: Engine, tables: list[str], handler: CountingSmtp, load: Phase, baseline: Phase
) -> tuple[list[str], list[str]]:
    """(violations, facts): every rule of the run's end, and the counts behind them."""
    violations: list[str] = []
    with engine.connect() as conn:
        executions = conn.execute(
            text(
                "SELECT execution_id, status, retry_execution_id, retry_attempt_n"
                " FROM purchase_executions"
            )
        ).all()
        retries = {
            name: conn.execute(
                text(f"SELECT execution_id, state, successor_execution_id FROM {name}")  # noqa: S608
            ).all()
            for name in tables
        }
    status_of = {str(row[0]): row[1] for row in executions}
    predecessor_of: dict[str, str] = {}
    for row in executions:
        if row[2] is not None:
            predecessor_of[str(row[2])] = str(row[0])
    successors = {str(row[0]) for row in executions if row[3] > 0}

    # One successor per predecessor: a second one is a successor no predecessor points
    # at (the predecessor keeps one `retry_execution_id`), or a second successor id
    # recorded for one row.
    orphans = sorted(successors - set(predecessor_of))
    if orphans:
        violations.append(f"{len(orphans)} successors no predecessor points at: {orphans[:5]}")
    for name, found in retries.items():
        recorded: dict[str, set[str]] = defaultdict(set)
        for execution_id, state, successor in found:
            if state == "succeeded" and successor is not None:
                recorded[str(execution_id)].add(str(successor))
        doubled = {row: ids for row, ids in recorded.items() if len(ids) > 1}
        if doubled:
            violations.append(f"{len(doubled)} rows with two successors in {name}: {doubled}")
        strays = [
            (row, successor)
            for row, ids in recorded.items()
            for successor in ids
            if predecessor_of.get(successor) != row
        ]
        if strays:
            violations.append(
                f"{len(strays)} successors in {name} that are not their row's: {strays[:5]}"
            )
        queued = Counter(state for _, state, _ in found if state not in FINAL_REQUEST_STATES)
        if queued:
            violations.append(f"{name} not settled: {dict(queued)}")

    in_flight = Counter(s for s in status_of.values() if s in ("approved", "running"))
    if in_flight:
        violations.append(f"executions left unsettled: {dict(in_flight)}")

    approvals, outcomes, others = sort_mail(handler)
    emails = Counter(approvals)
    if others:
        violations.append(f"{others} messages neither an approval nor an outcome email")
    if emails[None]:
        violations.append(f"{emails[None]} approval emails without an approve link")
    strangers = [row for row in emails if row is not None and row not in successors]
    if strangers:
        violations.append(f"{len(strangers)} approval emails for rows that are no successor")
    doubled_mail = {row: n for row, n in emails.items() if row is not None and n > 1}
    if doubled_mail:
        violations.append(f"{len(doubled_mail)} successors emailed for approval more than once")
    told = Counter(outcomes)
    told_twice = {row: n for row, n in told.items() if n > 1}
    if told_twice:
        violations.append(f"{len(told_twice)} executions with two outcome emails: {told_twice}")
    pending = [row for row in successors if status_of[row] == "pending"]
    missing = [row for row in pending if emails[row] == 0]
    if missing:
        violations.append(f"{len(missing)} pending successors never emailed: {missing[:5]}")

    errors = [s for phase in (baseline, load) for s in phase.samples if s.status >= 500]
    broken = [s for phase in (baseline, load) for s in phase.samples if s.status == 0]
    if errors or broken:
        detail = "\n    ".join((baseline.failures + load.failures)[:10])
        violations.append(
            f"{len(errors)} answers 5xx, {len(broken)} broken connections:\n    {detail}"
        )

    facts = [
        f"executions now: {len(status_of)} ({counted(status_of.values())})",
        f"successors: {len(successors)} ({len(pending)} pending); emails received: "
        f"{len(approvals)} approval, {len(outcomes)} outcome, {others} other",
        *(
            f"{name}: {len(found)} ({counted(row[1] for row in found)})"
            for name, found in retries.items()
        ),
    ]
    return violations, facts


APPROVAL_SUBJECT = "Approval needed:"
OUTCOME_EXECUTION = re.compile(r"^Execution: ([0-9a-f-]{36})", re.MULTILINE)
OUTCOME_DIGEST_SUBJECT = "Outcome of a retry:"
OUTCOME_DIGEST_ROW = re.compile(r"^- ([0-9a-f-]{36}),", re.MULTILINE)


def sort_mail(handler: CountingSmtp) -> tuple[list[str | None], list[str], int]:
    """The messages the SMTP server accepted: the executions each approval email's
    approve links name (None for one without any), the execution each outcome email is about,
    and how many were neither."""
    approvals: list[str | None] = []
    outcomes: list[str] = []
    others = 0
    for subject, body in handler.texts():
        if subject.startswith(APPROVAL_SUBJECT):
            # A bulk retry's digest names each of its rows by its approve link.
            approvals.extend(APPROVE_LINK.findall(body) or [None])
        elif subject.startswith(OUTCOME_DIGEST_SUBJECT):
            # A bulk retry's outcome digest names each row that ended in its window.
            outcomes.extend(OUTCOME_DIGEST_ROW.findall(body))
        elif (about := OUTCOME_EXECUTION.search(body)) is not None:
            outcomes.append(about.group(1))
        else:
            others += 1
    return approvals, outcomes, others


def counted(values: Iterable[str]) -> str:
    return ", ".join(f"{value} {n}" for value, n in sorted(Counter(values).items()))


# --- The run ----------------------------------------------------------------------------


def database_for(args: argparse.Namespace, borrowed: Borrowed) -> tuple[str, Engine]:
    if args.db == "sqlite":
        url = f"sqlite:///{borrowed.work_dir / 'load.db'}"
        return url, create_engine(url)
    return borrowed.engine.url.render_as_string(hide_password=False), borrowed.engine


def measure(args: argparse.Namespace, borrowed: Borrowed) -> None:
    handler = CountingSmtp()
    database_url, engine = database_for(args, borrowed)
    with smtp_server(handler) as smtp:
        deployed: Deployment = loopback_deployment(
            args, database_url=database_url, redis_url=borrowed.redis_url, smtp=smtp
        )
        deployed.migrate()
        started = time.monotonic()
        world = seed_world(engine, args.rows, args.operators, args.accounts)
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("VACUUM ANALYZE" if args.db == "postgresql" else "ANALYZE"))
        log(
            f"seeded {args.rows:,} executions ({len(world.failed):,} failed, "
            f"{len(world.pending):,} pending), {len(world.operators)} operators, "
            f"{args.accounts} accounts in {time.monotonic() - started:.1f}s"
        )
        tables = request_tables(engine)
        with running_product(
            args, deployed, tag=borrowed.tag, log_dir=borrowed.work_dir, beat=True
        ) as product:
            desks = sign_in(world, deployed.web_port)
            log(f"baseline: 1 operator ({desks[0].operator.role}) for {args.baseline_seconds}s")
            baseline = drive(desks[:1], world, args.baseline_seconds)
            groups = product.groups(str(engine.url.database))
            before = cpu_snapshot(groups)
            log(f"load: {len(desks)} operators for {args.seconds}s")
            load = drive(desks, world, args.seconds)
            after = cpu_snapshot(groups)
            for desk in desks:
                desk.client.close()
            log("waiting for the workers to settle everything")
            settled_in = settle(engine, product, tables, args.settle_seconds)
            time.sleep(2.0)  # a duplicate email would arrive about now
            product.check_alive("the run")
            violations, facts = check(engine, tables, handler, load, baseline)
    base_rows, load_rows = summarize(baseline), summarize(load)
    requests = max(len(load.samples), 1)
    cpu_lines, per_request = cpu_report(before, after, requests, unit="request")
    # Processes outside the run: alive throughout ("other"), or come and gone.
    outside = (per_request.get("other processes", 0.0) + per_request["unattributed"]) * requests
    neighbours = outside / 1000 / max((after.at - before.at) * (os.cpu_count() or 1), 1e-9)
    print()
    print(f"configuration: {processes.describe(args)}; celery beat; {args.db}")
    print("\n".join(table("baseline", baseline, base_rows)))
    print("\n".join(table("load", load, load_rows)))
    print("\n".join(ratios(base_rows, load_rows, load.operators)))
    print("CPU during the load:")
    print("\n".join(cpu_lines))
    if neighbours > 0.05:
        print(
            f"warning: processes outside the run took {100 * neighbours:.0f}% of the machine "
            "during the load: its numbers are not comparable (run it on a quiet machine)"
        )
    print(f"settled {settled_in:.1f}s after the load stopped")
    print("\n".join(facts))
    if args.json:
        numbers = {
            "argv": sys.argv[1:],
            "db": args.db,
            "rows": args.rows,
            "operators": args.operators,
            "baseline": [row.__dict__ for row in base_rows],
            "load": [row.__dict__ for row in load_rows],
            "settle_seconds": settled_in,
            "cpu_ms_per_request": per_request,
            "outside_share": neighbours,
            "violations": violations,
        }
        args.json.write_text(json.dumps(numbers, indent=2, default=str))
    if violations:
        raise BenchError("the run broke its rules:\n  " + "\n  ".join(violations))
    print("checks: all passed")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Many operators at once against the whole product, then a check that "
        "every retry, approval and email settled exactly once."
    )
    parser.add_argument("--operators", type=int, default=50, help="operators at once (50)")
    parser.add_argument("--seconds", type=float, default=60, help="how long they work (60)")
    parser.add_argument("--rows", type=int, default=10_000, help="seeded executions (10000)")
    parser.add_argument("--accounts", type=int, default=20, help="cloud accounts (20)")
    parser.add_argument(
        "--db", choices=("postgresql", "sqlite"), default="postgresql", help="(postgresql)"
    )
    parser.add_argument(
        "--baseline-seconds", type=float, default=10, help="one operator alone, first (10)"
    )
    parser.add_argument(
        "--settle-seconds", type=float, default=300, help="wait at most this to settle (300)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 4 operators, 10 s, 2,000 rows"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    services.add_arguments(parser, redis_dbs=REDIS_DBS)
    processes.add_arguments(parser)
    parser.set_defaults(worker_processes=2)
    args = parser.parse_args(argv)
    if args.quick:
        args.operators, args.seconds, args.baseline_seconds = 4, 10.0, 3.0
        args.rows = min(args.rows, 2_000)
    if args.operators < 1 or args.rows < 100 or args.accounts < 1 or args.seconds <= 0:
        parser.error("at least 1 operator, 100 rows, 1 account and a positive --seconds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return services.run(lambda borrowed: measure(args, borrowed), args)


if __name__ == "__main__":
    sys.exit(main())
