"""Flask CLI commands: `flask --app app users|groups|executions|demo ...`.

Thin: each command parses its input, calls a service inside a unit of work, and turns
a `DomainError` into a message on stderr and a non-zero exit code.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from app import get_settings
from app.db import fresh_read, unit_of_work, utcnow
from app.domain.bulk_retry import BatchState
from app.domain.errors import DomainError
from app.domain.inputs import clean_text
from app.domain.rbac import Action, Principal
from app.domain.retry import RequestState
from app.domain.statuses import Status
from app.models import RetryRequest
from app.services import approvals, bulk_retry, demo, executions, identity, retry

users_cli = AppGroup("users", help="Manage users.")
groups_cli = AppGroup("groups", help="Manage groups and their permissions.")
executions_cli = AppGroup("executions", help="List, approve, cancel and retry purchase executions.")
demo_cli = AppGroup("demo", help="Demo data for trying the product.")


def init_app(app: Flask) -> None:
    for group in (users_cli, groups_cli, executions_cli, demo_cli):
        app.cli.add_command(group)


class StillQueued(click.ClickException):
    """The worker did not settle the request in time (exit status 3)."""

    exit_code = 3


def describe_refusal(message: str, details: dict[str, Any]) -> str:
    """A refusal's message, then one `key: value` line per detail (hint, threshold ...)."""
    lines = [message, *(f"  {key}: {value}" for key, value in details.items())]
    return "\n".join(lines)


def refusals_exit_nonzero(command: Callable[..., Any]) -> Callable[..., Any]:
    """Render a `DomainError` as `Error: <message>` (and its details) and exit with 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DomainError as exc:
            raise click.ClickException(describe_refusal(exc.message, exc.details)) from None

    return wrapper


ADMIN_GROUP = "Administrators"
PASSWORD_VARIABLE = "NEW_USER_PASSWORD"  # noqa: S105  (a variable's name)


@users_cli.command("create")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help=f"Read the password from the first line of standard input; else {PASSWORD_VARIABLE}"
    ", else a prompt (terminal only).",
)
@click.option("--group", "group_names", multiple=True, help="Add the user to this group.")
@click.option("--admin", is_flag=True, help=f"Add the user to {ADMIN_GROUP} (the first admin).")
@refusals_exit_nonzero
def create_user_command(
    email: str, password_stdin: bool, group_names: tuple[str, ...], admin: bool
) -> None:
    """Create a user who can sign in with EMAIL."""
    email = clean_text(email, "email")
    groups = [clean_text(name, "group name") for name in group_names]
    if admin and ADMIN_GROUP not in groups:
        groups.append(ADMIN_GROUP)
    password = _read_password(password_stdin)
    with unit_of_work() as session:
        user = identity.create_user(session, email, password, groups)
        summary = f"created user {user.email} ({user.id})"
        if user.groups:
            summary += " in " + ", ".join(group.name for group in user.groups)
    click.echo(summary)


def _read_password(password_stdin: bool) -> str:
    """The password from standard input's first line (--password-stdin), else from
    NEW_USER_PASSWORD, else typed twice, hidden, at a terminal. Never from the command
    line (other users see it in `ps`), never printed: a refusal names only the problem."""
    if password_stdin:
        password = _stdin_text(first_line=True)
    elif os.environ.get(PASSWORD_VARIABLE):
        password = os.environ[PASSWORD_VARIABLE]
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.UsageError(
            f"no password: pass --password-stdin, set {PASSWORD_VARIABLE}, or run in a terminal"
            " to be asked (passwords are never taken from the command line)"
        )
    return clean_text(password, "password")


def _stdin_text(*, first_line: bool = False) -> str:
    """Standard input as text. Bytes that are not UTF-8 become lone surrogates, which
    `clean_text` and `parse_uuid` refuse as they refuse them anywhere, rather than a
    traceback from the decoder."""
    stream = sys.stdin.buffer
    data = stream.readline() if first_line else stream.read()
    text = data.decode("utf-8", errors="surrogateescape")
    return text.rstrip("\r\n") if first_line else text


@users_cli.command("set-password")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help=f"Read the new password from the first line of standard input; else {PASSWORD_VARIABLE}"
    ", else a prompt (terminal only).",
)
@refusals_exit_nonzero
def set_password_command(email: str, password_stdin: bool) -> None:
    """Give EMAIL a new password; every session they had ends."""
    email = clean_text(email, "email")
    password = _read_password(password_stdin)
    with unit_of_work() as session:
        user = identity.set_password(session, email, password)
        summary = f"new password for {user.email}; their sessions have ended"
    click.echo(summary)


@users_cli.command("deactivate")
@click.argument("email")
@refusals_exit_nonzero
def deactivate_command(email: str) -> None:
    """Stop EMAIL from signing in; every session they had ends."""
    with unit_of_work() as session:
        user = identity.deactivate(session, clean_text(email, "email"))
        summary = f"deactivated {user.email}; their sessions have ended"
    click.echo(summary)


@groups_cli.command("create")
@click.argument("name")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    help="A 'verb:resource' permission, e.g. retry-any:purchases. Repeatable.",
)
@click.option(
    "--restrict-defaults",
    is_flag=True,
    help="Members lose the default permissions every signed-in user has.",
)
@refusals_exit_nonzero
def create_group_command(name: str, permissions: tuple[str, ...], restrict_defaults: bool) -> None:
    """Create a group NAME granting the given permissions."""
    with unit_of_work() as session:
        group = identity.create_group(
            session, name, permissions, restricts_defaults=restrict_defaults
        )
        summary = f"created group {group.name}: {', '.join(group.permissions) or '(none)'}"
    click.echo(summary)


@executions_cli.command("list")
@click.option("--status", type=click.Choice([status.value for status in Status]))
@click.option("--limit", type=click.IntRange(1, executions.MAX_PAGE_SIZE), default=50)
def list_command(status: str | None, limit: int) -> None:
    """The newest executions: when, id, status, attempt, lineage, error and ops hint."""
    policy = retry.current_policy()
    with fresh_read() as session:
        page = executions.history_page(
            session, executions.HistoryFilter(status=status), limit=limit
        )
        items = [
            executions.as_item(
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
        ids += _stdin_text().split() if argument == "-" else [argument]
    _retry_many(principal, ids, force=force, wait=wait)


def _retry_one(principal: Principal, execution_id: str, *, force: bool, wait: float) -> None:
    request = retry.ask_for_retry(principal, execution_id, force=force)
    click.echo(f"retry request {request.id} queued")
    outcome = _wait_for_outcome(request.id, wait)
    if outcome.state == RequestState.SUCCEEDED:
        click.echo(
            f"succeeded: new execution {outcome.successor_execution_id} "
            f"(attempt {outcome.retry_attempt_n}), pending approval"
        )
        return
    if outcome.state == RequestState.QUEUED:
        raise StillQueued(
            f"retry request {request.id} is still queued after {wait:g}s: "
            "is a worker running (celery -A tasks worker)?"
        )
    verb = "rejected" if outcome.state == RequestState.REJECTED else "failed"
    raise click.ClickException(describe_refusal(f"{verb}: {outcome.error}", outcome.details))


def _retry_many(principal: Principal, ids: list[str], *, force: bool, wait: float) -> None:
    """A bulk retry: one line per row once the worker has settled them all."""
    batch = bulk_retry.ask_for_bulk_retry(principal, {"execution_ids": ids, "force": force})
    click.echo(f"retry batch {batch.id} queued: {batch.total} executions")
    deadline = time.monotonic() + wait
    while True:
        with fresh_read() as session:
            body = bulk_retry.batch_as_dict(session, batch)
        if body["state"] == BatchState.DONE or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
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
            details = {k: v for k, v in item.items() if k not in bulk_retry.ITEM_FIELDS}
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


def _wait_for_outcome(request_id: Any, wait: float) -> RetryRequest:
    deadline = time.monotonic() + wait
    while True:
        with fresh_read() as session:
            request = session.get(RetryRequest, request_id, populate_existing=True)
            assert request is not None
        if request.state != RequestState.QUEUED or time.monotonic() >= deadline:
            return request
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


@demo_cli.command("seed")
@refusals_exit_nonzero
def seed_command() -> None:
    """Add demo users, accounts, a plan and executions in every state (once).

    Refused under APP_ENV=production: the demo's admin has a published password.
    """
    _seed()


@demo_cli.command("start")
@click.option(
    "--demo",
    "asked",
    is_flag=True,
    help="Seed the demo on any database (never under APP_ENV=production).",
)
@refusals_exit_nonzero
def start_command(asked: bool) -> None:
    """What scripts/run does once the schema is current: seed the demo on the embedded
    default database (or with --demo); anywhere else, say how to make the first admin."""
    plan = demo.start_plan(get_settings(), asked=asked)
    click.echo(f"demo: {'yes' if plan.demo else 'no'} ({plan.reason})")
    if plan.demo:
        _seed()
        return
    with fresh_read() as session:
        if demo.has_active_admin(session):
            return
    click.echo(
        f"no active admin yet; create the first one with\n  {demo.FIRST_ADMIN_HINT}\n"
        f"(the password is asked for twice, or read from {PASSWORD_VARIABLE} or with "
        "--password-stdin)"
    )


def _seed() -> None:
    """Seed the demo and print its logins and the live links of its pending rows:
    the only command that prints an approval token."""
    with unit_of_work() as session:
        result = demo.seed(session, now=utcnow(), settings=get_settings())
    if result is None:
        click.echo("demo data already present; nothing added")
        return
    click.echo(f"seeded {result.executions} executions in {len(result.accounts)} accounts")
    for email, group in result.logins:
        click.echo(f"  login: {email} / {demo.DEMO_PASSWORD}  ({group})")
    click.echo("approval links of the pending rows (the demo sends no email; each works once):")
    for link in result.links:
        click.echo(f"  {link}")
