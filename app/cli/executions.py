"""`flask executions list|retry|approve|cancel`."""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from app.cli.common import describe_refusal, refusals_exit_nonzero, stdin_text
from app.db import fresh_read
from app.domain.bulk_retry import BatchState
from app.domain.errors import DomainError
from app.domain.inputs import clean_text
from app.domain.rbac import Action, Principal
from app.domain.retry import RequestState
from app.domain.statuses import Status
from app.models import RetryBatch
from app.services import approvals, execution_reads, identity, retry, retry_batches

executions_cli = AppGroup("executions", help="List, approve, cancel and retry purchase executions.")


class StillQueued(click.ClickException):
    """The worker did not settle the request in time (exit status 3)."""

    exit_code = 3


@executions_cli.command("list")
@click.option("--status", type=click.Choice([status.value for status in Status]))
@click.option("--limit", type=click.IntRange(1, execution_reads.MAX_PAGE_SIZE), default=50)
def list_command(status: str | None, limit: int) -> None:
    """The newest executions: when, id, status, attempt, lineage, error and ops hint."""
    policy = retry.current_policy()
    with fresh_read() as session:
        page = execution_reads.history_page(
            session, execution_reads.HistoryFilter(status=status), limit=limit
        )
        items = [
            execution_reads.as_item(
                row, policy, retry_of=page.predecessors.get(row.execution_id), creator_email=None
            )
            for row in page.rows
        ]
    if not items:
        click.echo("no executions")
    for item in items:
        lineage = "".join(
            (
                f" retry-of={item['retry_of']}" if item["retry_of"] else "",
                f" retried-by={item['retry_execution_id']}" if item["retry_execution_id"] else "",
            )
        )
        line = (
            f"{item['created_at'][:19]}  {item['execution_id']}  {item['status']:<19}  "
            f"attempt={item['retry_attempt_n']}{lineage}"
        )
        if item["error"]:
            line += f"  error={item['error']!r}"
        if item["ops_hint"]:
            line += f"  hint={item['ops_hint']!r}"
        click.echo(line)


@executions_cli.command("retry")
@click.argument("execution_ids", metavar="ID [ID ...]", nargs=-1, required=True)
@click.option("--as", "email", required=True, help="The user the retry is made for.")
@click.option("--force", is_flag=True, help="Override the retry threshold (nothing else).")
@click.option(
    "--wait",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the worker's outcome.",
)
@refusals_exit_nonzero
def retry_command(execution_ids: tuple[str, ...], email: str, force: bool, wait: float) -> None:
    """Retry failed executions as the user EMAIL, and wait for the outcome.

    One ID is one retry request; several (or `-`, which reads ids from standard input,
    separated by whitespace) are one bulk retry, each row with its own outcome. The
    same checks as the panel and the API; the worker re-checks and does the work.
    Exit status: 0 all succeeded, 1 any refused, rejected or failed, 3 still queued
    after --wait.
    """
    principal = _principal_of(email)
    if len(execution_ids) == 1 and execution_ids[0] != "-":
        _retry_one(principal, execution_ids[0], force=force, wait=wait)
        return
    ids: list[str] = []
    for argument in execution_ids:
        ids += stdin_text().split() if argument == "-" else [argument]
    _retry_many(principal, ids, force=force, wait=wait)


def _retry_one(principal: Principal, execution_id: str, *, force: bool, wait: float) -> None:
    request = retry.ask_for_retry(principal, execution_id, force=force)
    click.echo(f"retry request {request.id} queued")
    _wait_for(request, wait)
    with fresh_read() as session:
        outcome = retry_batches.request_as_dict(session, request)
    if outcome["state"] == RequestState.SUCCEEDED:
        click.echo(
            f"succeeded: new execution {outcome['execution_id']} "
            f"(attempt {outcome['retry_attempt_n']}), pending approval"
        )
        return
    if outcome["state"] == RequestState.QUEUED:
        raise StillQueued(
            f"retry request {request.id} is still queued after {wait:g}s: "
            "is a worker running (celery -A tasks worker)?"
        )
    verb = "rejected" if outcome["state"] == RequestState.REJECTED else "failed"
    details = {k: v for k, v in outcome.items() if k not in retry_batches.REQUEST_FIELDS}
    raise click.ClickException(describe_refusal(f"{verb}: {outcome['error']}", details))


def _retry_many(principal: Principal, ids: list[str], *, force: bool, wait: float) -> None:
    """A bulk retry: one line per row once the worker has settled them all."""
    batch = retry.ask_for_bulk_retry(principal, {"execution_ids": ids, "force": force})
    click.echo(f"retry batch {batch.id} queued: {batch.total} executions")
    _wait_for(batch, wait)
    with fresh_read() as session:
        body = retry_batches.batch_as_dict(session, batch)
    for item in body["items"]:
        if item["state"] == RequestState.SUCCEEDED:
            click.echo(
                f"{item['execution_id']}: succeeded: new execution "
                f"{item['successor_execution_id']}, pending approval"
            )
        elif item["state"] != RequestState.QUEUED:
            line = (
                f"{item['execution_id']}: {item['state']} ({item['status_code']}): {item['error']}"
            )
            details = {k: v for k, v in item.items() if k not in retry_batches.ITEM_FIELDS}
            click.echo(describe_refusal(line, details))
    click.echo(
        f"{body['succeeded']} succeeded, {body['rejected']} rejected, {body['failed']} failed"
        f", {body['queued']} still queued"
    )
    if body["state"] != BatchState.DONE:
        raise StillQueued(
            f"retry batch {batch.id} is not done after {wait:g}s: "
            "is a worker running (celery -A tasks worker)?"
        )
    if body["rejected"] or body["failed"]:
        raise click.exceptions.Exit(1)


def _wait_for(batch: RetryBatch, wait: float) -> None:
    """Until the worker has settled every row of the retry, or `wait` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with fresh_read() as session:
            body = retry_batches.batch_as_dict(session, batch, with_items=False)
        if body["state"] == BatchState.DONE:
            return
        time.sleep(0.2)


@executions_cli.command("approve")
@click.argument("execution_id")
@click.option("--as", "email", required=True, help="The user who approves.")
@refusals_exit_nonzero
def approve_command(execution_id: str, email: str) -> None:
    """Approve the pending execution EXECUTION_ID as the user EMAIL; a worker then buys it.

    The same checks as the panel and the API. Exit status: 0 approved, 1 refused.
    """
    _decide(execution_id, email, Action.APPROVE)


@executions_cli.command("cancel")
@click.argument("execution_id")
@click.option("--as", "email", required=True, help="The user who cancels.")
@refusals_exit_nonzero
def cancel_command(execution_id: str, email: str) -> None:
    """Cancel the pending execution EXECUTION_ID as the user EMAIL.

    The same checks as the panel and the API. Exit status: 0 cancelled, 1 refused.
    """
    _decide(execution_id, email, Action.CANCEL)


def _decide(execution_id: str, email: str, action: Action) -> None:
    execution = approvals.decide(_principal_of(email), execution_id, action)
    click.echo(f"{execution.execution_id} is now {execution.status} (by {email})")
    if execution.status == Status.APPROVED:
        click.echo("queued for purchase: a worker (celery -A tasks worker) runs it")


def _principal_of(email: str) -> Principal:
    """The active user EMAIL as the rules see them (404 if there is none)."""
    email = clean_text(email, "email")
    with fresh_read() as session:
        user = identity.find_user_by_email(session, email)
        if user is None or not user.is_active:
            raise DomainError(404, f"no active user with email {email}")
        return identity.principal_for(user)
