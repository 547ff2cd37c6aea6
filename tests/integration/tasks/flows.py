"""Steps the worker tests share: a failed row, a queued retry, waiting for outcomes."""

from __future__ import annotations

from app.db import unit_of_work
from app.domain.statuses import Status
from app.models import PurchaseExecution
from app.services import retry
from app.services.identity import principal_for
from tests.factories import make_account, make_execution, recommendation
from tests.support.commands import wait_until
from tests.support.retries import request_retry, request_state


def failed_row(session, creator, **fields):
    account = make_account(session, contact_email="finops@example.com")
    items = [
        recommendation(count=2, upfront_cost="1000.00", monthly_savings="40.00"),
        recommendation(resource_type="c5.xlarge", count=1, upfront_cost="500.00"),
        recommendation(resource_type="r5.large", region="eu-west-1", count=3),
    ]
    values = {
        "error": "InsufficientInstanceCapacity",
        "recommendations": items,
        "cloud_account_id": account.id,
        "total_upfront_cost": "4200.00",
        "estimated_savings": "310.25",
    }
    return make_execution(session, Status.FAILED, created_by=creator, **(values | fields))


def queue_retry(user, execution_id, *, force=False):
    with unit_of_work() as session:
        request = request_retry(
            session, principal_for(session.merge(user)), execution_id, force=force
        )
    retry.enqueue_chunks(request)
    return request.id


def settled(request_id, timeout=30):
    """The request once the worker settled it (as `tests.support.retries.request_state`)."""

    def load():
        with unit_of_work() as session:
            found = request_state(session, request_id)
            return found if found.state != "queued" else None

    return wait_until(load, timeout=timeout, what=f"retry request {request_id} to settle")


def execution(execution_id) -> PurchaseExecution:
    with unit_of_work() as session:
        return session.get(PurchaseExecution, execution_id, populate_existing=True)


def email_settled(execution_id, timeout=30) -> PurchaseExecution:
    def load():
        row = execution(execution_id)
        return row if row.notification_sent_at or row.status != Status.PENDING else None

    return wait_until(load, timeout=timeout, what="the approval email to be sent or fail")


def ready(app, process, name: str) -> None:
    """Wait for the worker to answer a ping."""
    control = app.extensions["celery"].control
    wait_until(
        lambda: (
            process.poll() is None
            and any(name in node for reply in control.ping(timeout=0.5) for node in reply)
        ),
        timeout=60,
        what=f"worker {name}",
    )


def kill(process) -> None:
    process.kill()  # SIGKILL: no warm shutdown, no ack, nothing restored to the queue
    process.wait(timeout=10)
