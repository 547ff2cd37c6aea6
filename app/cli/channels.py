"""`flask channels add|list|remove|test`: notification channels
(`app.services.channels_admin`), with the CLI as the actor (`cli`), every write
audited, refusals too. A CHANNEL is named by its name or its id.

The target (and a webhook's secret) are secrets: `list` shows them masked, and `add`
reads the secret from standard input when `--secret -` is given, so it stays out of
the shell's history.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli.common import refusals_exit_nonzero, stdin_text
from app.db import fresh_read
from app.domain.channels import SUBSCRIBABLE, ChannelKind
from app.services import channels_admin, management
from app.services.channels_admin import ChannelFields
from app.services.management import CLI_ACTOR

# `--secret -`: read the secret from standard input.
FROM_STDIN = "-"

channels_cli = AppGroup(
    "channels", help="Notification channels: Slack, Teams, signed webhooks, email."
)


@channels_cli.command("list")
def list_command() -> None:
    """Every channel: name, kind, masked target, account (or global), events, state."""
    with fresh_read() as session:
        rows = channels_admin.list_channels(session)
    if not rows:
        click.echo("no channels")
    for row in rows:
        events = ",".join(row["events"]) or "all events"
        state = "enabled" if row["enabled"] else "disabled"
        click.echo(
            f"{row['name']}  {row['kind']}  {row['target']}  {row['account'] or 'global'}  "
            f"{events}  {state}  {row['id']}"
        )


@channels_cli.command("add")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice([kind.value for kind in ChannelKind]))
@click.option(
    "--target",
    required=True,
    help="slack:// or workflows:// (Teams) Apprise URL (or the service's webhook URL), the "
    "webhook's http(s) URL, or an email address.",
)
@click.option("--account", "account_id", help="The cloud account's id (default: global).")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice([event.value for event in SUBSCRIBABLE]),
    help="An event it hears (repeat; none: all).",
)
@click.option("--secret", help="A webhook's signing secret; '-' reads it from standard input.")
@refusals_exit_nonzero
def add_command(
    name: str,
    kind: str,
    target: str,
    account_id: str | None,
    events: tuple[str, ...],
    secret: str | None,
) -> None:
    """Add the channel NAME (enabled)."""
    if secret == FROM_STDIN:
        secret = stdin_text(first_line=True)
    fields = ChannelFields(
        name=name,
        kind=kind,
        target=target,
        cloud_account_id=account_id,
        events=list(events),
        secret=secret,
    )
    channel = management.write(
        "channel",
        "create",
        CLI_ACTOR,
        lambda session, actor: channels_admin.describe(
            channels_admin.create_channel(session, actor, fields)
        ),
        name=name[:200],
    )
    click.echo(f"added channel {channel['name']} ({channel['kind']}, {channel['target']})")


@channels_cli.command("remove")
@click.argument("channel")
@refusals_exit_nonzero
def remove_command(channel: str) -> None:
    """Remove CHANNEL and its messages."""
    name = management.write(
        "channel",
        "delete",
        CLI_ACTOR,
        lambda session, actor: channels_admin.delete_channel(session, actor, channel),
        channel=channel[:200],
    )
    click.echo(f"removed channel {name}")


@channels_cli.command("test")
@click.argument("channel")
@refusals_exit_nonzero
def test_command(channel: str) -> None:
    """Owe CHANNEL a test message; the worker sends it through the outbox."""
    name = management.write(
        "channel",
        "test",
        CLI_ACTOR,
        lambda session, actor: channels_admin.send_test(session, actor, channel).name,
        channel=channel[:200],
    )
    click.echo(f"test message queued for channel {name}: the worker sends it")
