"""`flask executions list|create|retry|approve|cancel`."""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from app.cli.common import describe_refusal, principal_of, refusals_exit_nonzero, stdin_text
from app.db import fresh_read
from app.domain.bulk_retry import BatchState
from app.domain.errors import DomainError
from app.domain.inputs import clean_text
from app.domain.purchasing import quote_text
from app.domain.rbac import Action, Principal
from app.domain.retry import RequestState
from app.domain.spending import totals_of
from app.domain.statuses import Status
from app.models import RetryBatch
from app.services import (
    accounts,
    approvals,
    creating,
    execution_reads,
    retry,
    retry_batches,
)

MAX_FILE_BYTES = 8 * 1024 * 1024

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
    principal = principal_of(email)
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
    execution = approvals.decide(principal_of(email), execution_id, action)
    click.echo(f"{execution.execution_id} is now {execution.status} (by {email})")
    if execution.status == Status.APPROVED:
        click.echo("queued for purchase: a worker (celery -A tasks worker) runs it")


@executions_cli.command("create")
@click.option("--account", "account_name", required=True, help="The account, by name or id.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--as",
    "email",
    default=None,
    help="The user the purchase is created for (their permissions and limits apply); "
    "without it, the operator at the shell creates it and owns nothing.",
)
@click.option("--plan", "plan_id", default=None, help="The plan's id.")
@click.option("--step", "step_number", type=click.IntRange(1, 10_000), default=None)
@click.option("--scheduled-for", default=None, help="ISO 8601 with a zone, e.g. 2027-01-31T09:00Z")
@click.option("--preview", is_flag=True, help="Print the quotes and totals; create nothing.")
@refusals_exit_nonzero
def create_command(
    account_name: str,
    file: str,
    email: str | None,
    plan_id: str | None,
    step_number: int | None,
    scheduled_for: str | None,
    preview: bool,
) -> None:
    """Create a pending purchase on an account from FILE (JSON or CSV; - reads standard
    input), with its approval email, as a retry's successor is."""
    text = stdin_text() if file == "-" else _read_file(file)
    items = creating.parse_items_text(text, filename=None if file == "-" else file)
    with fresh_read() as session:
        account = accounts.find_account(session, clean_text(account_name, "account"))
        account_id = str(account.id)
    body = {
        "cloud_account_id": account_id,
        "recommendations": items,
        **({"plan_id": plan_id} if plan_id else {}),
        **({"step_number": step_number} if step_number else {}),
        **({"scheduled_for": scheduled_for} if scheduled_for else {}),
    }
    principal = principal_of(email) if email else None
    if preview:
        answer = creating.preview_purchase(principal, body)
        for item in answer["items"]:
            quote = item["quote"]
            priced = quote_text(quote) if quote else f"no quote: {item['quote_error']}"
            shown = "" if item["selected"] else " (not selected)"
            click.echo(f"item {item['index']}: commitment {item['commitment']}  {priced}{shown}")
        click.echo(_totals_line(answer["totals"]))
        return
    execution = creating.create_purchase(principal, body, via="cli")
    click.echo(f"created {execution.execution_id} {execution.status}")
    click.echo(_totals_line(totals_of(execution.recommendations).as_dict()))


def _read_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1).decode("utf-8", errors="surrogateescape")
    except OSError as error:
        raise DomainError(400, f"cannot read {path}: {error.strerror}") from None


def _totals_line(totals: dict[str, str]) -> str:
    return (
        f"{totals['items']} items: upfront {totals['upfront']}, monthly {totals['monthly']}, "
        f"over the term {totals['term_total']}, estimated savings {totals['yearly_savings']} "
        "a year"
    )
