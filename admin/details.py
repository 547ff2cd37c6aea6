"""Purchase History's details page (issue 9): the row, its retry chain from the first
attempt to the latest, each recommendation with its outcome, the row's audit events,
and the same action cell as the list.

Flask-Admin's own `details_view` still loads and renders the row (`get_one` answers a
malformed id with 400 and an unknown one with 404); the override only adds what the
page needs to the per-request `_template_args` first, never to `self` (one view
instance serves every request thread).
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_admin import expose
from flask_login import current_user

from admin.row_actions import cells_for_page
from app.domain.errors import DomainError
from app.services import approvals, execution_details, execution_reads, retry
from app.services.identity import principal_for


class ExecutionDetailsMixin:
    """For PurchaseHistoryView: its details page."""

    details_template = "panel/purchase_details.html"

    @expose("/details/")
    def details_view(self) -> Any:
        ids = request.args.getlist("id")
        if len(ids) > 1:
            raise DomainError(400, "pass one execution id")
        if ids:
            session = self.session  # type: ignore[attr-defined]
            execution = execution_reads.find_execution(session, ids[0])
            cells = cells_for_page(
                session,
                principal_for(current_user),
                [execution],
                retry.current_policy(),
                approvals.current_policy(),
            )
            self._template_args.update(  # type: ignore[attr-defined]
                details=execution_details.details_of(session, execution),
                action_cell=cells[execution.execution_id],
                # Where the action buttons come back to: this page, as a plain link (the
                # list's `url` is not carried along, so links never nest in each other).
                details_url=self.get_url(  # type: ignore[attr-defined]
                    ".details_view", id=execution.execution_id
                ),
            )
        return super().details_view()  # type: ignore[misc]
