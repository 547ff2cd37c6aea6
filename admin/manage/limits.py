"""Spend limits: every group's limit, set, edited and cleared here. Admins only.

A group's limit caps what its members may commit to (`app.domain.spending`): the
accounts (shown by name), providers and services they may buy, the most one purchase
may commit to and the most the group may have approved in one UTC day. Every write is
`app.services.spend_limits`'s (`set_limit`, `clear_limit`: the functions `flask groups
limit` calls), run through `management.write`: the same validation and the same audit
events (`spend_limit.changed`, `spend_limit.cleared`, a refusal as
`spend_limit.change_refused` / `spend_limit.clear_refused`). A refusal is flashed and
the form shown again as it was filled in.

The URLs: the list (`/admin/limits/`), a group's form (`/admin/limits/edit/?group=<id>`,
GET and POST) and "Clear" (`/admin/limits/clear/`, a POST naming the group, confirmed
first). Each POST carries the CSRF token.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # (stubs: 3.2)
from wtforms.validators import Length
from wtforms.widgets import CheckboxInput, ListWidget

from admin.security import AdminRequiredMixin
from app.db import db
from app.domain.errors import DomainError
from app.domain.providers import PROVIDERS
from app.domain.rbac import Principal
from app.models import CloudAccount, Group
from app.services import management, spend_limits
from app.services.identity import principal_for

# The longest group id a URL may carry (an INTEGER's largest has 10 digits).
_MAX_ID_DIGITS = 10


class _CheckboxList(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SpendLimitForm(FlaskForm):
    """A group's limit. A list left empty allows everything of its kind; an amount left
    empty has no cap. The rules are `spend_limits.limit_fields`'s, applied on save."""

    accounts = _CheckboxList(
        "Allowed accounts",
        coerce=str,
        description="None ticked: every account.",
    )
    providers = _CheckboxList(
        "Allowed providers",
        coerce=str,
        choices=[SelectChoice(name, name) for name in PROVIDERS],
        description="None ticked: every provider.",
    )
    services = TextAreaField(
        "Allowed services",
        validators=[Length(max=10_000)],
        description="One per line (or comma-separated), e.g. ec2, rds, savingsplans, vm, "
        "compute. Empty: every service.",
        render_kw={"rows": 4},
    )
    max_per_purchase = StringField(
        "Max per purchase",
        validators=[Length(max=40)],
        description="The most one purchase may commit to: upfront plus recurring over the "
        "term, e.g. 25000.00. Empty: no cap.",
    )
    max_per_day = StringField(
        "Max per day",
        validators=[Length(max=40)],
        description="The most the group's members may have approved in one UTC day. Empty: no cap.",
    )

    def fields_for_service(self) -> dict[str, Any]:
        """What `spend_limits.set_limit` takes: every field, so the form states the whole
        limit."""
        services = (self.services.data or "").replace(",", "\n").splitlines()
        return {
            "allowed_accounts": list(self.accounts.data or []) or None,
            "allowed_providers": list(self.providers.data or []) or None,
            "allowed_services": [name for name in services if name.strip()] or None,
            "max_per_purchase": self.max_per_purchase.data or None,
            "max_per_day": self.max_per_day.data or None,
        }


def _account_choices(session: Session) -> list[SelectChoice]:
    accounts = session.execute(
        select(CloudAccount.id, CloudAccount.name, CloudAccount.provider).order_by(
            CloudAccount.name, CloudAccount.id
        )
    ).all()
    return [SelectChoice(str(key), f"{name} ({provider})") for key, name, provider in accounts]


class SpendLimitsView(AdminRequiredMixin, BaseView):
    """Every group's spend limit; a form per group; "Clear"."""

    @expose("/")
    def index(self) -> str:
        return self.render(
            "panel/limits_list.html", limits=spend_limits.limits_by_group(db.session())
        )

    @expose("/edit/", methods=("GET", "POST"))
    def edit(self) -> Response | str:
        """The limit of the group `?group=<id>`: shown filled in, saved on POST."""
        group = self._group(request.args.get("group", ""))
        form = SpendLimitForm()
        form.accounts.choices = _account_choices(db.session())
        if request.method == "POST":
            if form.validate():
                group_id = group.id
                fields = form.fields_for_service()
                changed = self._write(
                    "change",
                    lambda session, actor: spend_limits.set_limit(session, actor, group_id, fields),
                    group_id=group_id,
                )
                if changed is not None:
                    flash(f'saved the spend limit of group "{group.name}"', "success")
                    return redirect(self.get_url(".index"))
        else:
            _fill(form, group)
        return self.render("panel/limit_edit.html", form=form, group=group)

    @expose("/clear/", methods=("POST",))
    def clear(self) -> Response:
        """Remove the limit of the group named by the form's `group` field."""
        group_id = self._group(request.form.get("group", "")).id
        cleared = self._write(
            "clear",
            lambda session, actor: spend_limits.clear_limit(session, actor, group_id).name,
            group_id=group_id,
        )
        if cleared is not None:
            flash(f'cleared the spend limit of group "{cleared}": its members are not limited')
        return redirect(self.get_url(".index"))

    def _group(self, raw: str) -> Group:
        """The group a URL or form names by id: 400 for a malformed id, 404 unknown."""
        text = raw.strip()
        if not (text.isdigit() and len(text) <= _MAX_ID_DIGITS):
            raise DomainError(400, f"malformed group id: {text[:64]!r} is not a whole number")
        return spend_limits.find_group(db.session(), int(text))

    def _write(self, verb: str, change: Any, **details: Any) -> Any:
        """`change(session, actor)` through `management.write` (one unit of work, a
        refusal audited as `spend_limit.<verb>_refused`); None after a refusal, which is
        flashed."""
        actor: Principal = principal_for(current_user)
        try:
            return management.write("spend_limit", verb, actor, change, **details)
        except DomainError as refusal:
            flash(refusal.message, "error")
            return None


def _fill(form: SpendLimitForm, group: Group) -> None:
    """The form as the group's limit is now (empty fields for a group without one)."""
    found = next(
        entry for entry in spend_limits.limits_by_group(db.session()) if entry.group_id == group.id
    )
    limit = found.limit or {}
    form.accounts.data = list(limit.get("allowed_account_ids") or [])
    form.providers.data = list(limit.get("allowed_providers") or [])
    form.services.data = "\n".join(limit.get("allowed_services") or [])
    form.max_per_purchase.data = limit.get("max_per_purchase") or ""
    form.max_per_day.data = limit.get("max_per_day") or ""
