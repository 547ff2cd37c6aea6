"""What the management views share: one CSRF mechanism, ids parsed before they reach
the database, list arguments read strictly (`admin.list_args`), and one way to write.

How a view writes. Flask-Admin's `create_model` / `update_model` / `delete_model`
commit through the view's session themselves; here they are overridden to call the
management services (`app.services.management`, `app.services.accounts`, which the
CLI calls too) through `management.write`: the change runs inside
`app.db.unit_of_work()` (the product's only committer), with its audit event in the
same transaction. A refusal (a `DomainError`: a duplicate name, your own account, a
referenced account) rolls back everything, is recorded in the trail in a transaction
of its own, and is shown as a flash message; the form is shown again. Nothing is
ever half-written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import flash
from flask_admin import expose
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session

from admin.formatting import time_column
from admin.list_args import StrictListArgsMixin
from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid
from app.domain.rbac import Principal
from app.services import management
from app.services.identity import principal_for

T = TypeVar("T")

# The longest integer id a URL may carry (a BIGINT's largest has 19 digits).
_MAX_INT_ID_DIGITS = 19
INTEGER_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1


class ManagedModelView(StrictListArgsMixin, ModelView):
    """A Flask-Admin model view with the product's conventions (see the module doc)."""

    form_base_class = FlaskForm  # one CSRF mechanism: Flask-WTF's
    page_size = 50
    can_set_page_size = False
    # Bulk actions would write outside `write` below: none are offered (or shown).
    action_disallowed_list = ["delete"]
    column_type_formatters = {**ModelView.column_type_formatters, datetime: time_column}
    # How the URL's `id` reads: "uuid" or "int" (up to `id_max`, the column's largest).
    id_kind = "uuid"
    id_max = INTEGER_MAX
    # What a refusal is recorded as in the trail: f"{audit_subject}.{verb}_refused".
    audit_subject = "record"

    def get_one(self, id: str) -> Any:
        """The row an edit or delete names: a malformed id answers 400, an unknown 404."""
        key: Any
        if self.id_kind == "int":
            text = id.strip()
            if not (text.isdigit() and len(text) <= _MAX_INT_ID_DIGITS):
                raise DomainError(400, f"malformed id: {text[:64]!r} is not a whole number")
            key = int(text)
        else:
            key = parse_uuid(id, what="id")
        # PostgreSQL refuses to compare a column with a number past its type's range.
        in_range = self.id_kind != "int" or key <= self.id_max
        found = self.session.get(self.model, key) if in_range else None
        if found is None:
            raise DomainError(404, f"no {self.audit_subject} with id {key}")
        return found

    @expose("/action/", methods=("POST",))
    def action_view(self) -> Any:
        """No bulk actions: each write goes through `write`, one row at a time."""
        return _not_offered(self, "there are no bulk actions")

    def write(
        self, verb: str, change: Callable[[Session, Principal], T], **details: Any
    ) -> T | None:
        """Run `change(session, actor)` through `management.write` (one unit of work, a
        refusal audited as `<subject>.<verb>_refused`): its result, or None after a
        refusal, which is flashed."""
        actor = principal_for(current_user)
        try:
            return management.write(self.audit_subject, verb, actor, change, **details)
        except DomainError as refusal:
            flash(refusal.message, "error")
            return None


def _not_offered(view: Any, what: str) -> Any:
    name = getattr(view, "name", None) or "this view"
    raise DomainError(404, f"{name}: {what}")


class NoDeleteMixin:
    """No delete: the URL answers 404 and changes nothing (Flask-Admin's own answer to a
    disabled operation is a redirect, which looks like success to a script)."""

    can_delete = False

    @expose("/delete/", methods=("POST",))
    def delete_view(self) -> Any:
        return _not_offered(self, "nothing here can be deleted")


class ReadOnlyMixin(NoDeleteMixin):
    """No create, edit or delete: those URLs answer 404 and change nothing."""

    can_create = False
    can_edit = False

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self) -> Any:
        return _not_offered(self, "read-only: nothing here can be created")

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self) -> Any:
        return _not_offered(self, "read-only: nothing here can be edited")
