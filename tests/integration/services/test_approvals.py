"""Approve and cancel racing on one row, on each database.

"Of an approve and a cancel (or two approves) on one row, exactly one wins; the loser
gets 409 with the current status." Proved the way it happens in production: two OS
processes of the product (two web workers, say), each with many threads calling
`approvals.decide` on the same committed pending rows at once, released together.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest
from sqlalchemy import select

from app.db import fresh_read, unit_of_work
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, PurchaseSuppression
from app.task_names import EXECUTE as EXECUTE_TASK
from tests.factories import make_execution, make_suppression, make_user, recommendation
from tests.support.commands import REPO, product_env

ROWS = 10
THREADS_PER_PROCESS = 8
OUTCOME = {"approve": Status.APPROVED, "cancel": Status.CANCELLED}

# One racing process: builds the app from the environment, loads its actor, starts its
# threads, says "ready", and releases them all when the test writes "go". Every thread
# decides every row, in the same order, so each row is contended by every thread of
# both processes. Prints one JSON list of outcomes.
RACER = textwrap.dedent(
    """
    import json, os, sys, threading

    from app import create_app
    from app.db import db
    from app.domain.errors import DomainError
    from app.domain.rbac import Action
    from app.services import approvals
    from app.services.identity import find_user_by_email, principal_for

    plan = json.loads(os.environ["RACE_PLAN"])
    app = create_app()
    action = Action(plan["action"])
    with app.app_context():
        principal = principal_for(find_user_by_email(db.session(), plan["email"]))
    go = threading.Event()
    outcomes = []

    def decide_every_row():
        go.wait()
        for execution_id in plan["rows"]:
            outcome = {"row": execution_id, "action": action.value, "actor": principal.email}
            with app.app_context():
                try:
                    decided = approvals.decide(principal, execution_id, action)
                    outcome.update(won=True, status=decided.status)
                except DomainError as refusal:
                    outcome.update(won=False, code=refusal.status, details=refusal.details)
                except Exception as exc:
                    outcome.update(won=False, crash=repr(exc))
            outcomes.append(outcome)

    threads = [threading.Thread(target=decide_every_row) for _ in range(plan["threads"])]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    sys.stdin.readline()
    go.set()
    for thread in threads:
        thread.join()
    print(json.dumps(outcomes), flush=True)
    """
)


def start_racer(settings, action: str, email: str, rows: list[str]) -> subprocess.Popen[str]:
    plan = {"action": action, "email": email, "rows": rows, "threads": THREADS_PER_PROCESS}
    return subprocess.Popen(
        [sys.executable, "-c", RACER],
        cwd=REPO,
        env=product_env(settings, RACE_PLAN=json.dumps(plan)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def race(settings, contenders: list[tuple[str, str]], rows: list[str]) -> list[dict[str, Any]]:
    """Run one racing process per (action, email), released together; every outcome."""
    racers = [start_racer(settings, action, email, rows) for action, email in contenders]
    try:
        for racer in racers:
            assert racer.stdout is not None
            ready = racer.stdout.readline()
            assert ready.strip() == "ready", ready + racer.communicate(timeout=30)[1]
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outcomes: list[dict[str, Any]] = []
        for racer in racers:
            out, err = racer.communicate(timeout=60)
            assert racer.returncode == 0, err
            outcomes += json.loads(out)
        return outcomes
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.communicate()


def pending_rows(creator_email: str) -> list[str]:
    """ROWS committed pending rows, each with a suppression; their ids."""
    with unit_of_work() as session:
        creator = make_user(session, creator_email)
        rows = [
            make_execution(
                session, Status.PENDING, created_by=creator, recommendations=[recommendation()]
            )
            for _ in range(ROWS)
        ]
        for row in rows:
            make_suppression(session, row)
        return [str(row.execution_id) for row in rows]


def queued_executions(redis_db) -> list[str]:
    """The execution ids of the `purchases.execute` messages waiting in Redis."""
    messages = [json.loads(raw) for raw in redis_db.lrange("purchases", 0, -1)]
    assert {message["headers"]["task"] for message in messages} <= {EXECUTE_TASK}
    return [message["headers"]["argsrepr"][2:-2] for message in messages]


RACES = {
    "approve-vs-cancel": ["approve", "cancel"],
    "approve-vs-approve": ["approve", "approve"],
}


@pytest.mark.processes
@pytest.mark.parametrize("actions", RACES.values(), ids=RACES)
def test_of_decisions_racing_on_one_row_exactly_one_wins(settings, committed_db, redis_db, actions):
    ids = pending_rows("creator@example.com")
    contenders = []
    with unit_of_work() as session:
        for number, action in enumerate(actions):
            email = f"{action}-{number}@example.com"
            make_user(session, email, groups=("Purchasers",))
            contenders.append((action, email))

    outcomes = race(settings, contenders, ids)

    assert [outcome for outcome in outcomes if "crash" in outcome] == []
    assert len(outcomes) == ROWS * THREADS_PER_PROCESS * len(contenders)
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for outcome in outcomes:
        by_row[outcome["row"]].append(outcome)
    assert sorted(by_row) == sorted(ids)
    final: dict[str, str] = {}
    with fresh_read() as session:
        for execution_id, tries in by_row.items():
            [winner] = [outcome for outcome in tries if outcome["won"]]
            won = final[execution_id] = OUTCOME[winner["action"]].value
            assert winner["status"] == won
            for loser in (outcome for outcome in tries if not outcome["won"]):
                # The loser learns where the row went: the winner's status, nothing else.
                assert (loser["code"], loser["details"]) == (409, {"status": won}), loser
            row = session.get(PurchaseExecution, uuid.UUID(execution_id), populate_existing=True)
            assert row.status == won
            decided_by = row.approved_by if won == Status.APPROVED else row.cancelled_by
            assert decided_by == winner["actor"]
            assert (row.approved_by is None) != (row.cancelled_by is None)
            suppressions = session.scalars(
                select(PurchaseSuppression).where(
                    PurchaseSuppression.execution_id == row.execution_id
                )
            ).all()
            assert len(suppressions) == (1 if won == Status.APPROVED else 0)

        # Only this test's rows: a worker of an earlier test may still be settling an
        # email of its own, and the trail has room for both.
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.execution_id.in_([uuid.UUID(str(i)) for i in ids]))
            .order_by(AuditEvent.id)
        ).all()
    decided = Counter(
        (str(event.execution_id), event.action, event.actor_email)
        for event in events
        if not event.action.endswith("_refused")
    )
    winners = Counter(
        (execution_id, f"execution.{OUTCOME[outcome['action']].value}", outcome["actor"])
        for execution_id, tries in by_row.items()
        for outcome in tries
        if outcome["won"]
    )
    assert decided == winners  # one success event per row, by the one who won it
    refused = Counter(
        str(event.execution_id) for event in events if event.action.endswith("_refused")
    )
    losers_per_row = THREADS_PER_PROCESS * len(contenders) - 1
    assert refused == {execution_id: losers_per_row for execution_id in ids}
    for event in events:
        if event.action.endswith("_refused"):
            assert event.details["status"] == 409
            assert event.details["execution_status"] == final[str(event.execution_id)]
    # Only winners queued the executor: one message per approved row, none for losers.
    approved = sorted(
        execution_id
        for execution_id, tries in by_row.items()
        if any(outcome["won"] and outcome["action"] == "approve" for outcome in tries)
    )
    assert sorted(queued_executions(redis_db)) == approved
