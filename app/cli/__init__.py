"""Flask CLI commands: `flask --app app users|groups|executions|accounts|demo ...`, a module per
command group.

Thin: each command parses its input, calls a service inside a unit of work, and turns
a `DomainError` into a message on stderr and a non-zero exit code (`app.cli.common`).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from app.cli.accounts import accounts_cli
    from app.cli.channels import channels_cli
    from app.cli.controls import freeze_cli, plans_cli
    from app.cli.demo import demo_cli
    from app.cli.executions import executions_cli
    from app.cli.groups import groups_cli
    from app.cli.recommendations import recommendations_cli
    from app.cli.users import users_cli

    for group in (users_cli, groups_cli, executions_cli, accounts_cli, demo_cli):
        app.cli.add_command(group)
    for group in (freeze_cli, plans_cli):
        app.cli.add_command(group)
    app.cli.add_command(recommendations_cli)
    app.cli.add_command(channels_cli)
