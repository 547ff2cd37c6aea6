"""The panel's controls of what may start: the global freeze (admins: switch it on with
a reason, lift it) and the plans (every viewer sees them; admins and `approve-any`
holders pause, resume and run them now), plus the banner every panel page shows while
purchases are frozen.

Every switch is a POST form with the CSRF token, asks for confirmation
(`data-confirm`, panel/bindings.js) and reports its outcome as a flash message; the
rules and their audit are `app.services.controls`'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, request
from flask_admin import BaseView, expose
from flask_login import current_user
from werkzeug.wrappers import Response

from admin.row_actions import refusal_text
from admin.security import AdminRequiredMixin, PermissionRequiredMixin
from app.db import db
from app.domain.errors import DomainError
from app.models import PurchaseFreeze
from app.services import controls
from app.services.identity import principal_for

FREEZE_CONFIRM = (
    "Freeze every purchase? Nothing starts until the freeze is lifted: approved "
    "executions wait, nothing fails."
)
LIFT_CONFIRM = "Lift the freeze? Every approved execution that waited for it starts now."
# What each plan button does: its label, its confirmation, its style.
PLAN_BUTTONS = {
    "pause-plan": ("Pause", "Pause {name}? Its approved executions wait until it is resumed."),
    "resume-plan": ("Resume", "Resume {name}? Its approved executions that waited start now."),
    "run-plan-now": (
        "Run now",
        "Run the next scheduled step of {name} now? Its approved executions start at "
        "once; pending ones still need their approval.",
    ),
}


def freeze_banner() -> dict[str, Callable[[], PurchaseFreeze | None]]:
    """The panel templates' `purchase_freeze()`: the freeze on now, asked only by the
    pages that show the banner (a context processor of the app)."""
    return {"purchase_freeze": lambda: controls.current_freeze(db.session())}


class FreezeView(AdminRequiredMixin, BaseView):
    """Freeze purchases (with a reason) or lift the freeze. Admins only."""

    @expose("/")
    def index(self) -> str:
        return self.render(
            "panel/freeze.html",
            state=controls.freeze_state(db.session()),
            freeze_confirm=FREEZE_CONFIRM,
            lift_confirm=LIFT_CONFIRM,
        )

    @expose("/on", methods=("POST",))
    def freeze_view(self) -> Response:
        """Switch the freeze on with the form's `reason`."""

        def switch_on() -> str:
            state = controls.freeze(principal_for(current_user), request.form.get("reason"))
            return f"Purchases frozen: {state['reason']}"

        return self._report(switch_on)

    @expose("/lift", methods=("POST",))
    def lift_view(self) -> Response:
        """Lift the freeze; the approved rows that waited are queued."""

        def lift() -> str:
            released = controls.lift(principal_for(current_user))
            return f"Freeze lifted: {released} approved executions start now"

        return self._report(lift)

    def _report(self, act: Callable[[], str]) -> Response:
        _flash_outcome(act)
        return redirect(self.get_url(".index"))


class PlansView(PermissionRequiredMixin, BaseView):
    """The plans: paused or active, their ramp, next scheduled time and waiting rows,
    with Pause / Resume / Run now for those who may use them."""

    @expose("/")
    def index(self) -> str:
        principal = principal_for(current_user)
        return self.render(
            "panel/plans.html",
            plans=controls.list_plans(db.session()),
            may_control=controls.may_control_plans(principal),
            buttons=PLAN_BUTTONS,
        )

    @expose("/<path:plan_id>/pause", methods=("POST",))
    def pause_view(self, plan_id: str) -> Response:
        def pause() -> str:
            outcome = controls.pause(principal_for(current_user), plan_id)
            return f"Plan {outcome.plan['name']} paused: its approved executions wait"

        return self._report(pause)

    @expose("/<path:plan_id>/resume", methods=("POST",))
    def resume_view(self, plan_id: str) -> Response:
        def resume() -> str:
            outcome = controls.resume(principal_for(current_user), plan_id)
            return (
                f"Plan {outcome.plan['name']} resumed: {outcome.released} approved "
                "executions start now"
            )

        return self._report(resume)

    @expose("/<path:plan_id>/run-now", methods=("POST",))
    def run_now_view(self, plan_id: str) -> Response:
        def run_now() -> str:
            outcome = controls.run_now(principal_for(current_user), plan_id)
            return (
                f"Plan {outcome.plan['name']}: step {outcome.step_number} brought forward; "
                f"{outcome.released} approved executions start now"
            )

        return self._report(run_now)

    def _report(self, act: Callable[[], str]) -> Response:
        _flash_outcome(act)
        return redirect(self.get_url(".index"))


def _flash_outcome(act: Callable[[], str]) -> None:
    try:
        message = act()
    except DomainError as refusal:
        flash(refusal_text(refusal), "error")
    else:
        flash(message, "success")


def add_views(panel: Any, category: str) -> None:
    """Mount the Plans page (every viewer) and the Freeze page (admins, under
    `category`)."""
    panel.add_view(PlansView(name="Plans", endpoint="plans"))
    panel.add_view(FreezeView(name="Freeze", endpoint="freeze", category=category))
