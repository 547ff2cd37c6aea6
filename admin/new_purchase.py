"""The panel's New purchase page: pick an account, paste or upload the recommendation
items (JSON or CSV), optionally a plan, a step and a time to buy at, see the preview with
the money, then create the purchase.

"Preview" asks `creating.preview_purchase` (the API's `?preview=true`): per item the
offering and price the provider quotes and the commitment, and the totals, with nothing
written. Its "Create purchase" button posts the same form again with `confirmed=yes`,
which calls `creating.create_purchase`, the path the API and the CLI take: a `pending`
row with its approval email, checked once more (RBAC, suppressions, spend limits). A
refusal is a flash message over the form, the input kept, with the refusal's status.

Opened as `?account=<id>&import=1` (the account page's "Import recommendations"), the
page first fetches the provider's own recommendations for the account and puts them in
the items box as JSON. Who may open the page: admins and users with `create-own` or
`create-any`; a `create-own` user is offered only the accounts their spend limits name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import flash, make_response, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from admin.row_actions import refusal_text
from admin.security import PermissionRequiredMixin
from app.db import db
from app.domain.errors import DomainError
from app.domain.rbac import Principal, create_refusal
from app.domain.spending import names_account
from app.models import CloudAccount, PurchasePlan
from app.providers import ProviderError, current_registry
from app.services import creating
from app.services.accounts import find_account, list_accounts
from app.services.identity import principal_for
from app.services.recommendations_import import import_recommendations
from app.services.spending import limits_of

# The most an uploaded items file may hold.
# The request door refuses any body over 1 MiB (413) before this page reads it.
MAX_UPLOAD_BYTES = 1024 * 1024
# The most the items box may hold (the same as a file).
MAX_ITEMS_CHARS = MAX_UPLOAD_BYTES
# The form's fields, kept as typed when the page is shown again.
FIELDS = ("cloud_account_id", "items_text", "plan_id", "step_number", "scheduled_for")


@dataclass
class PurchaseForm:
    """What the operator typed, as text, and the body it adds up to."""

    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(cls) -> PurchaseForm:
        return cls({name: (request.form.get(name) or "")[:MAX_ITEMS_CHARS] for name in FIELDS})

    def body(self) -> dict[str, Any]:
        """The API's body (`cloud_account_id`, `recommendations`, and the optional plan,
        step and time). The items come from the uploaded file when there is one (which
        then replaces the box's text, so the page shows what was read), else the box."""
        upload = request.files.get("items_file")
        filename = None
        if upload is not None and upload.filename:
            raw = upload.stream.read(MAX_UPLOAD_BYTES + 1)
            if len(raw) > MAX_UPLOAD_BYTES:
                raise DomainError(400, "the items file is larger than 1 MB", field="items_file")
            try:
                self.values["items_text"] = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise DomainError(
                    400, "the items file is not UTF-8 text", field="items_file"
                ) from None
            filename = upload.filename[:200]
        text = self.values["items_text"]
        if not text.strip():
            raise DomainError(
                400, "paste the items (JSON or CSV) or upload a file", field="recommendations"
            )
        body: dict[str, Any] = {
            "cloud_account_id": self.values["cloud_account_id"].strip(),
            "recommendations": creating.parse_items_text(text, filename=filename),
        }
        if self.values["plan_id"].strip():
            body["plan_id"] = self.values["plan_id"].strip()
        step = self.values["step_number"].strip()
        if step:
            # A whole number as the API's int; anything else as typed, for the create
            # rules to refuse naming the field.
            body["step_number"] = (
                int(step) if step.isascii() and step.isdigit() and len(step) < 10 else step
            )
        moment = self.values["scheduled_for"].strip()
        if moment:
            # The page's datetime-local field has no time zone: it is read as UTC.
            has_zone = moment.endswith(("Z", "z")) or "+" in moment[10:] or "-" in moment[10:]
            body["scheduled_for"] = moment if has_zone else f"{moment}Z"
        return body


class NewPurchaseView(PermissionRequiredMixin, BaseView):
    """The New purchase page (see the module)."""

    def _refusal(self) -> DomainError | None:
        # Anyone who may create on some account: the account itself is checked on submit.
        return create_refusal(principal_for(current_user), account_is_theirs=True)

    @expose("/", methods=("GET",))
    def index(self) -> Response:
        form = PurchaseForm({name: "" for name in FIELDS})
        wanted = (request.args.get("account") or "")[:100]
        form.values["cloud_account_id"] = wanted
        if wanted and request.args.get("import") == "1":
            self._import_into(form, wanted)
        return self._page(form)

    @expose("/", methods=("POST",))
    def submit(self) -> Response:
        from flask_wtf.csrf import validate_csrf

        try:
            validate_csrf(request.form.get("csrf_token"))
        except Exception:
            raise DomainError(400, "the form has expired: reload the page and try again") from None
        form = PurchaseForm.from_request()
        principal = principal_for(current_user)
        try:
            body = form.body()
            if request.form.get("confirmed") != "yes":
                preview = creating.preview_purchase(principal, body)
                return self._page(form, preview=preview)
            execution = creating.create_purchase(principal, body, via="panel")
        except DomainError as refusal:
            flash(_refusal_line(refusal), "error")
            return self._page(form, status=refusal.status)
        flash(f"Created {execution.execution_id}: pending approval", "success")
        return redirect(url_for("purchases.details_view", id=execution.execution_id))

    def _import_into(self, form: PurchaseForm, wanted: str) -> None:
        """Fill the items box with the account's imported recommendations, or flash why
        not (the form stays empty)."""
        principal = principal_for(current_user)
        session = db.session()
        try:
            account = find_account(session, wanted)
            if not _may_create_on(principal, account):
                raise DomainError(404, f"no account with id {wanted[:100]}")
            imported = import_recommendations(session, account, current_registry(), actor=principal)
        except DomainError as refusal:
            flash(_refusal_line(refusal), "error")
            return
        except ProviderError as error:
            flash(f"the provider refused the import: {error}", "error")
            return
        form.values["cloud_account_id"] = str(imported.account_id)
        form.values["items_text"] = json.dumps(imported.items, indent=2, ensure_ascii=False)
        flash(imported.summary(), "info")

    def _page(
        self, form: PurchaseForm, *, preview: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        principal = principal_for(current_user)
        session = db.session()
        accounts = [
            account for account in list_accounts(session) if _may_create_on(principal, account)
        ]
        plans = list(session.scalars(select(PurchasePlan).order_by(PurchasePlan.name)))
        page = self.render(
            "panel/new_purchase.html",
            form=form.values,
            accounts=accounts,
            plans=plans,
            preview=preview,
        )
        return make_response(page, status if status in (400, 403, 404, 409) else 200)


def _may_create_on(principal: Principal, account: CloudAccount) -> bool:
    """Whether `principal` may create a purchase on `account` (the page offers only
    those accounts, so a `create-own` user never sees another account's name)."""
    if create_refusal(principal, account_is_theirs=False) is None:
        return True
    theirs = names_account(limits_of(db.session(), principal.user_id), str(account.id))
    return create_refusal(principal, account_is_theirs=theirs) is None


def _refusal_line(refusal: DomainError) -> str:
    """The flash for a refusal: `refusal_text`, then the field or item it names."""
    line = refusal_text(refusal)
    named = [
        f"{key} {refusal.details[key]}"
        for key in ("field", "index", "reason")
        if key in refusal.details and str(refusal.details[key]) not in line
    ]
    return f"{line} ({', '.join(named)})" if named else line
