"""Bulk retry in the panel: "Retry selected", "Retry all N matching this filter", the
confirmation page between the click and the batch, and the batch page that follows the
worker.

Each button first shows what would happen (`retry.preview_bulk_retry`, the API's
`?preview=true`): the rows grouped by outcome (would be queued; refused, and why) with
the money of each group, and nothing written. Its Confirm button posts the same
request again, which calls `retry.ask_for_bulk_retry`, the path the API and the CLI
take, with the body the API takes: the selected ids, or the list's filter and search as
the history filter they add up to (the rows matching it when Confirm is pressed). Every
row is checked on its own again, refusals are known at once and reported in one flash,
the rest are settled by the worker while the batch page shows their progress.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import flash, make_response, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_admin.actions import action
from flask_login import current_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from admin.history_filters import active_history_filter
from admin.row_actions import refusal_text
from admin.security import PermissionRequiredMixin
from app.auth.session import safe_next_url
from app.db import db
from app.domain.bulk_retry import MAX_BATCH_ROWS, bulk_refusal
from app.domain.errors import DomainError
from app.domain.retry import RequestState
from app.models import RetryBatch
from app.services import retry, retry_batches
from app.services.identity import principal_for

RETRY_SELECTED_CONFIRM = (
    "Retry the selected executions? Each row is checked on its own; refused rows are "
    "reported and left as they are."
)
# The confirmation page's answer: the request is sent for real.
CONFIRMED = "confirmed"


class BulkRetryMixin:
    """For PurchaseHistoryView: the "Retry selected" action and "Retry all matching"."""

    @action("retry", "Retry selected")
    def action_retry(self, ids: list[str]) -> Response:
        """Flask-Admin's bulk action (a POST with its CSRF-checked action form): the
        confirmation page first, the batch once it is confirmed."""
        body = {"execution_ids": ids}
        if request.form.get(CONFIRMED) != "yes":
            return _preview(self, body, retry_selected=ids)
        return _ask(body)

    def is_action_allowed(self, name: str) -> bool:
        """Offer "Retry selected" only to users who may retry something."""
        if name == "retry":
            return (
                current_user.is_authenticated and bulk_refusal(principal_for(current_user)) is None
            )
        return super().is_action_allowed(name)  # type: ignore[misc]

    def matching_failed(self) -> tuple[int, bool] | None:
        """How many retryable rows the list's current filter or search matches (counted up
        to the most a batch holds: `(n, more)`), or None when the list is unfiltered
        (retrying every failed row ever is not a button) or names a status no retry starts
        from."""
        retry_body = self._retry_filter()
        if retry_body is None:
            return None
        try:
            filters = retry.retry_filter(retry_body)
        except DomainError:
            return None
        found = retry.matching_count(db.session(), filters)
        return min(found, MAX_BATCH_ROWS), found > MAX_BATCH_ROWS

    def _retry_filter(self) -> dict[str, str] | None:
        """The list's filters and search as the history filter the API takes, or None
        when the list is unfiltered."""
        view_args = self._get_list_extra_args()  # type: ignore[attr-defined]
        if not (view_args.filters or view_args.search):
            return None
        filters = view_args.filters or ()
        return active_history_filter(
            filters,
            self._filters or (),  # type: ignore[attr-defined]
            view_args.search,
        ).as_args()

    @expose("/retry-matching", methods=("POST",))
    def retry_matching_view(self) -> Response:
        """ "Retry all N matching this filter": the rows matching the filter now."""
        from flask_wtf.csrf import validate_csrf

        try:
            validate_csrf(request.form.get("csrf_token"))
        except Exception:
            raise DomainError(400, "the form has expired: reload the page and try again") from None
        # A filter the list cannot honour refuses the whole request: dropping it would
        # retry more rows than the user chose.
        refusal = self.list_args_refusal()  # type: ignore[attr-defined]
        if refusal is not None:
            return self.refused_list(refusal)  # type: ignore[attr-defined]
        retry_body = self._retry_filter()
        if retry_body is None:
            raise DomainError(400, "filter or search the list first")
        if request.form.get(CONFIRMED) != "yes":
            return _preview(self, {"filter": retry_body}, retry_selected=None)
        return _ask({"filter": retry_body})


def _preview(view: Any, body: dict[str, Any], *, retry_selected: list[str] | None) -> Response:
    """The confirmation page: what the request would do, row group by row group, with
    the money, written nowhere; its Confirm button posts the same request with
    `confirmed=yes` (to Flask-Admin's action for selected rows, to "retry matching"
    for a filter). A request refused as a whole is a flash on the list, as for real."""
    try:
        preview = retry.preview_bulk_retry(principal_for(current_user), body)
    except DomainError as refusal:
        flash(refusal_text(refusal), "error")
        return redirect(back_to_list())
    if retry_selected is not None:
        confirm_url = view.get_url(".action_view")
    else:
        confirm_url = view.get_url(".retry_matching_view", **request.args)
    page = view.render(
        "panel/retry_preview.html",
        preview=preview,
        queued=preview["groups"][0],
        selection=body,
        retry_selected=retry_selected,
        confirm_url=confirm_url,
        back_url=back_to_list(),
        intro=RETRY_SELECTED_CONFIRM,
    )
    return make_response(page)


def _ask(body: dict[str, Any]) -> Response:
    """Record the batch (the API's body: ids or a filter) and report it in one flash: a
    line per refused row, the count queued, and a link to the batch page."""
    try:
        batch = retry.ask_for_bulk_retry(principal_for(current_user), body)
    except DomainError as refusal:
        flash(refusal_text(refusal), "error")
        return redirect(back_to_list())
    body = retry_batches.batch_as_dict(db.session(), batch)
    flash(batch_summary(body), "success" if not body["rejected"] else "warning")
    return redirect(url_for("retry_batches.details", batch_id=batch.id))


def back_to_list() -> str:
    """Where a refused bulk retry returns: the list page it came from (its filters and
    page kept): the confirmation page's `next` (the list it was opened from), else the
    Referer when it names a page of this site; else the list. Never another site: both
    are whatever the client says."""
    chosen = safe_next_url(request.form.get("next"))
    if chosen is not None and urlsplit(chosen).path.startswith(url_for("purchases.index_view")):
        return chosen
    referrer = urlsplit(request.referrer or "")
    here = urlsplit(request.host_url)
    target = None
    if (referrer.scheme, referrer.netloc) == (here.scheme, here.netloc):
        target = safe_next_url(urlunsplit(("", "", referrer.path, referrer.query, "")))
    return target or url_for("purchases.index_view")


def batch_summary(body: dict[str, Any]) -> Markup:
    """One flash for a whole batch: what happened to each row, as far as is known."""
    url = url_for("retry_batches.details", batch_id=body["batch_id"])
    lines = [
        Markup(
            "Retry of {total} executions: {queued} queued, {rejected} refused — "
            '<a href="{url}" data-batch-link>follow the batch</a>'
        ).format(total=body["total"], queued=body["queued"], rejected=body["rejected"], url=url)
    ]
    for item in body.get("items", []):
        if item["state"] == RequestState.REJECTED:
            refusal = DomainError(item["status_code"], item["error"], **_details(item))
            lines.append(
                Markup("<br><code>{id}</code>: {why}").format(
                    id=item["execution_id"][:36], why=refusal_text(refusal)
                )
            )
        elif item["state"] == RequestState.QUEUED:
            lines.append(Markup("<br><code>{id}</code>: queued").format(id=item["execution_id"]))
    return Markup("").join(lines)


def _details(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in retry_batches.ITEM_FIELDS}


class RetryBatchView(PermissionRequiredMixin, BaseView):
    """A batch's page: its counts and each row's outcome, kept up to date by polling
    the batch's JSON (a few lines of plain JavaScript). Not in the menu: a batch is
    reached from the flash that created it."""

    def is_visible(self) -> bool:
        return False

    @expose("/")
    def index(self) -> Response:
        return redirect(url_for("purchases.index_view"))

    @expose("/<path:batch_id>")
    def details(self, batch_id: str) -> str:
        session = db.session()
        batch: RetryBatch = retry_batches.find_batch(session, principal_for(current_user), batch_id)
        return self.render(
            "panel/retry_batch.html",
            batch=retry_batches.batch_as_dict(session, batch),
            status_url=url_for("api.retry_batch_state", batch_id=batch.id),
        )
