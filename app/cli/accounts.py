"""`flask accounts list|create|mode|test`: `app.services.accounts`, with the CLI as the
actor (`cli`), every write audited, refusals too.

An account is named by its name, or by its id when several share the name (the command
refuses and lists their ids). A new account starts in dry_run; `mode` switches it, and
switching to live says, on its own line, that purchases are real from then on.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from app.cli.common import refusals_exit_nonzero
from app.db import fresh_read
from app.domain.inputs import clean_text
from app.domain.providers import PROVIDERS, PurchaseMode
from app.domain.rbac import Principal
from app.providers import current_registry
from app.services import management
from app.services.accounts import (
    account_fields,
    check_connection,
    create_account,
    find_account,
    list_accounts,
    set_mode,
)
from app.services.management import CLI_ACTOR

accounts_cli = AppGroup("accounts", help="List, create and check cloud accounts; set their mode.")

LIVE_WARNING = (
    "WARNING: {name} is live: its purchases now buy for real, and are billed by {provider}"
)


@accounts_cli.command("list")
def list_command() -> None:
    """Every account: name, provider, purchase mode, external id, id."""
    with fresh_read() as session:
        rows = [
            (account.name, account.provider, account.purchase_mode, account.external_id, account.id)
            for account in list_accounts(session)
        ]
    if not rows:
        click.echo("no accounts")
    for name, provider, mode, external_id, account_id in rows:
        click.echo(f"{name}  {provider}  {mode}  {external_id}  {account_id}")


@accounts_cli.command("create")
@click.argument("name")
@click.option("--provider", required=True, type=click.Choice(PROVIDERS))
@click.option(
    "--external-id",
    required=True,
    help="The AWS account id (the STS external id when a role is given), the Azure "
    "subscription or the GCP project.",
)
@click.option("--contact-email", help="Where approval emails for this account go.")
@click.option(
    "--aws-role-arn",
    help="AWS: the role the purchasing client assumes (arn:aws:iam::<account>:role/<name>).",
)
@click.option("--azure-billing-scope", help="Azure: the billing scope purchases are charged to.")
@refusals_exit_nonzero
def create_command(
    name: str,
    provider: str,
    external_id: str,
    contact_email: str | None,
    aws_role_arn: str | None,
    azure_billing_scope: str | None,
) -> None:
    """Add the account NAME. It starts in dry_run: the cloud is asked, nothing is bought.
    No secret is stored: credentials come from each SDK's standard chain on this server."""
    fields = account_fields(
        clean_text(name, "account name"),
        provider,
        clean_text(external_id, "external id"),
        clean_text(contact_email or "", "contact email"),
        aws_role_arn=clean_text(aws_role_arn or "", "aws role arn"),
        azure_billing_scope=clean_text(azure_billing_scope or "", "azure billing scope"),
    )

    def create(session: Session, actor: Principal) -> str:
        account = create_account(session, actor, fields)
        return (
            f"created account {account.name} ({account.id}), {account.provider} "
            f"{account.external_id}, in {account.purchase_mode} mode: nothing is bought "
            f"until it is switched to live (flask accounts mode {account.name} live)"
        )

    click.echo(management.write("account", "create", CLI_ACTOR, create, name=fields.name[:200]))


@accounts_cli.command("mode")
@click.argument("account")
@click.argument("mode", metavar="MODE")
@refusals_exit_nonzero
def mode_command(account: str, mode: str) -> None:
    """Switch ACCOUNT (its name, or its id) to MODE: simulate (nothing reaches the
    cloud), dry_run (the cloud quotes, nothing is bought) or live (buys for real)."""
    wanted = clean_text(mode, "purchase mode")
    named = clean_text(account, "account")

    def switch(session: Session, actor: Principal) -> tuple[str, str, str, bool]:
        found = find_account(session, named)
        session.refresh(found, with_for_update=True)  # the mode it has, not a stale read
        before = found.purchase_mode
        changed = set_mode(session, actor, found.id, wanted)
        return (
            changed.name,
            changed.provider,
            changed.purchase_mode,
            before != changed.purchase_mode,
        )

    name, provider, now, changed = management.write(
        "account", "mode_change", CLI_ACTOR, switch, account=named[:200], mode=wanted[:40]
    )
    click.echo(f"{name} is {'now' if changed else 'already'} in {now} mode")
    if changed and now == PurchaseMode.LIVE.value:
        click.echo(LIVE_WARNING.format(name=name, provider=provider), err=True)


@accounts_cli.command("test")
@click.argument("account")
@refusals_exit_nonzero
def test_command(account: str) -> None:
    """Check that ACCOUNT (its name, or its id) can be reached in its mode: exit 0 when
    it can, 1 with what is missing when it cannot."""
    named = clean_text(account, "account")
    with fresh_read() as session:
        found = find_account(session, named)
        label = f"{found.name} ({found.provider}, {found.purchase_mode})"
        report = check_connection(current_registry(), found)
    if report.ok:
        click.echo(f"{label}: ok: {report.message}")
        return
    lines = [f"{label}: connection failed: {report.message}"]
    if report.missing:
        lines.append("missing permissions: " + ", ".join(report.missing))
    raise click.ClickException("\n".join(lines))
