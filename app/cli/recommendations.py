"""`flask recommendations import --account NAME [--output FILE]`: the cloud's own purchase
recommendations for an account (`app.services.recommendations_import`), printed as the
JSON list of items `flask executions create --account NAME -` takes, with a one-line
summary and the totals on standard error. Nothing is created; the import is audited, as
`cli`. The account is named by its name, or by its id when several share the name.
"""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.cli.common import refusals_exit_nonzero
from app.db import fresh_read
from app.domain.errors import DomainError
from app.domain.inputs import clean_text
from app.providers import current_registry
from app.services import audit
from app.services.accounts import find_account
from app.services.management import CLI_ACTOR
from app.services.recommendations_import import REFUSED, import_recommendations

recommendations_cli = AppGroup(
    "recommendations", help="Import a cloud's own purchase recommendations as items."
)


@recommendations_cli.command("import")
@click.option("--account", "account", required=True, help="The account's name, or its id.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the items to this file instead of standard output.",
)
@refusals_exit_nonzero
def import_command(account: str, output: str | None) -> None:
    """Fetch the purchase recommendations ACCOUNT's provider makes (the simulator for a
    simulate account, the cloud otherwise: reading them buys nothing) and print them as a
    JSON list of items, ready for `flask executions create --account NAME -`. Items an
    active suppression covers are marked `suppressed` and not selected."""
    named = clean_text(account, "account")
    with fresh_read() as session:
        try:
            found = find_account(session, named)
        except DomainError as refusal:
            audit.record_refusal(
                REFUSED, refusal, actor=CLI_ACTOR, execution_id=None, account=named[:200]
            )
            raise
        imported = import_recommendations(session, found, current_registry(), actor=CLI_ACTOR)
    text = json.dumps(imported.items, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            with open(output, "w", encoding="utf-8") as written:
                written.write(text)
        except OSError as error:
            raise click.ClickException(f"cannot write {output}: {error.strerror}") from None
    click.echo(imported.summary(), err=True)
