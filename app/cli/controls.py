"""`flask freeze on|off|status` and `flask plans list|pause|resume|run-now`: the global
freeze and the plans' switches (`app.services.controls`), as the user `--as EMAIL`,
with the checks of the panel and the API, each refusal audited.

A PLAN is named by its id, or by its name when one plan alone has it. Rows a switch
releases are queued for the worker once the switch has committed.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli.common import principal_of, refusals_exit_nonzero
from app.db import fresh_read
from app.services import controls

freeze_cli = AppGroup("freeze", help="Stop every purchase from starting, or let them start again.")
plans_cli = AppGroup("plans", help="List purchase plans; pause, resume or run one now.")


@freeze_cli.command("on")
@click.option("--reason", required=True, help="Why purchases stop (shown on every panel page).")
@click.option("--as", "email", required=True, help="The admin who freezes purchases.")
@refusals_exit_nonzero
def freeze_on_command(reason: str, email: str) -> None:
    """Freeze purchases: from now on none starts; approved rows wait, nothing fails.
    Exit status: 0 frozen, 1 refused (not an admin, no reason, frozen already)."""
    state = controls.freeze(principal_of(email), reason)
    click.echo(f"purchases frozen by {state['frozen_by']} at {state['frozen_at']}: {reason}")


@freeze_cli.command("off")
@click.option("--as", "email", required=True, help="The admin who lifts the freeze.")
@refusals_exit_nonzero
def freeze_off_command(email: str) -> None:
    """Lift the freeze: the approved rows that waited are queued for the worker.
    Exit status: 0 lifted, 1 refused (not an admin, not frozen)."""
    released = controls.lift(principal_of(email))
    click.echo(f"freeze lifted by {email}: {released} approved executions queued")


@freeze_cli.command("status")
def freeze_status_command() -> None:
    """Whether purchases are frozen; exit status 0 when they are not, 2 when they are
    (for scripts)."""
    with fresh_read() as session:
        state = controls.freeze_state(session)
    if not state["frozen"]:
        click.echo("purchases are not frozen")
        return
    click.echo(
        f"purchases are FROZEN since {state['frozen_at']} by {state['frozen_by']}: "
        f"{state['reason']}"
    )
    raise click.exceptions.Exit(2)


@plans_cli.command("list")
def list_command() -> None:
    """Every plan: id, name, paused or active, step, next scheduled time, waiting rows."""
    with fresh_read() as session:
        items = controls.list_plans(session)
    if not items:
        click.echo("no plans")
    for item in items:
        state = "paused" if item["paused"] else "active"
        click.echo(
            f"{item['id']}  {item['name']}  {state}  "
            f"step {item['current_step']}/{item['total_steps']}  "
            f"next={item['next_scheduled_for'] or '-'}  waiting={item['waiting']}"
        )


@plans_cli.command("pause")
@click.argument("plan")
@click.option("--as", "email", required=True, help="The user who pauses it.")
@refusals_exit_nonzero
def pause_command(plan: str, email: str) -> None:
    """Pause PLAN (its id or name): its approved rows wait until it is resumed."""
    outcome = controls.pause(principal_of(email), plan, by_name=True)
    click.echo(f"plan {outcome.plan['name']} ({outcome.plan['id']}) paused by {email}")


@plans_cli.command("resume")
@click.argument("plan")
@click.option("--as", "email", required=True, help="The user who resumes it.")
@refusals_exit_nonzero
def resume_command(plan: str, email: str) -> None:
    """Resume PLAN: its approved rows that no longer wait are queued for the worker."""
    outcome = controls.resume(principal_of(email), plan, by_name=True)
    click.echo(
        f"plan {outcome.plan['name']} ({outcome.plan['id']}) resumed by {email}: "
        f"{outcome.released} approved executions queued"
    )


@plans_cli.command("run-now")
@click.argument("plan")
@click.option("--as", "email", required=True, help="The user who brings it forward.")
@refusals_exit_nonzero
def run_now_command(plan: str, email: str) -> None:
    """Bring PLAN's next scheduled step forward to now: its approved rows are queued,
    its pending ones still need their approval."""
    outcome = controls.run_now(principal_of(email), plan, by_name=True)
    click.echo(
        f"plan {outcome.plan['name']}: step {outcome.step_number} brought forward by "
        f"{email}: {outcome.released} approved executions queued"
    )
