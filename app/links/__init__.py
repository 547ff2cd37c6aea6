"""The approval email's link pages (docs/operations.md, "The email links"):
`/purchases/{approve|cancel}/<id>?token=...`. They need no session: the token opens
the action, and the click acts as the email's recipient (checked at the click: an
active user allowed to do it now, or an address that is no user's, on the token's
authority alone). With four-eyes on, an approve link sent to a user asks them to sign
in first.

GET shows what the link would do (the account, the totals, one line per
recommendation) and a confirm button, and changes nothing: mail scanners open links.
POST acts, once. A bulk retry's digest links `/purchases/digest?token=...`: the rows it
listed for its recipient, with a box to tick on each pending one; its POST approves the
ticked ones, each as its own approve link would. Every refusal (unknown, tampered,
expired or used link, another row's or action's, a row no longer pending) is a page
saying so, with nothing changed. All are rate limited per client address
(`LINK_RATE_LIMIT`), and keep the token out of caches and Referer headers.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from flask import Blueprint, Flask, render_template, request, url_for
from flask_limiter import RouteLimit
from flask_login import current_user
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from app.auth.session import safe_next_url
from app.config import get_settings
from app.db import db, utcnow
from app.domain.errors import DomainError
from app.domain.rbac import Action, Principal
from app.domain.statuses import Status
from app.extensions import csrf, limiter
from app.http import render_domain_error
from app.services import approvals, digests
from app.services.identity import principal_for
from app.services.purchase_summary import money, summarize

blueprint = Blueprint("links", __name__)
TOO_MANY = "too many attempts from your address: wait, then try again"


def link_rate_limit(exempt_when: Callable[[], bool] | None = None) -> RouteLimit:
    """One budget per client address for every way a link's token is tried (these pages
    and the API's token path), so guessing cannot spread over endpoints."""
    return limiter.shared_limit(
        lambda: get_settings().link_rate_limit,
        scope="approval-links",
        exempt_when=exempt_when,
        error_message=TOO_MANY,
    )


def init_app(app: Flask) -> None:
    csrf.exempt(blueprint)  # the token in the form is the secret a forged form lacks
    app.register_blueprint(blueprint)
    app.jinja_env.globals["summarize"] = summarize


@blueprint.get("/purchases/<any(approve, cancel):action>/<path:execution_id>")
@link_rate_limit()
def confirm(action: str, execution_id: str) -> str:
    """What the link would do, and a button to do it; changes nothing."""
    decision = Action(action)
    token = request.args.get("token")
    check = approvals.check_link(
        db.session(), execution_id, decision, token, now=utcnow(), signed_in=signed_in()
    )
    here = request.full_path if request.query_string else request.path
    return render_template(
        "links/confirm.html",
        action=action,
        execution=check.execution,
        recipient=check.recipient,
        token=token,
        sign_in_as=check.sign_in_as,
        sign_in_url=url_for("auth.login", next=safe_next_url(here)),
    )


@blueprint.post("/purchases/<any(approve, cancel):action>/<path:execution_id>")
@link_rate_limit()
def act(action: str, execution_id: str) -> str:
    """Approve or cancel, consuming the link."""
    decision = Action(action)
    token = request.form.get("token") or request.args.get("token")
    execution = approvals.decide_by_link(execution_id, decision, token, signed_in=signed_in())
    return render_template("links/done.html", action=action, execution=execution)


def signed_in() -> Principal | None:
    """The session's user, when the link's page is opened signed in (the API's token
    path asks too)."""
    if not current_user.is_authenticated:
        return None
    return principal_for(current_user)


@blueprint.get("/purchases/digest")
@link_rate_limit()
def digest() -> str:
    """The rows a bulk retry's digest listed for its recipient; changes nothing."""
    return _digest_page(request.args.get("token"), decided=[])


@blueprint.post("/purchases/digest")
@link_rate_limit()
def digest_approve() -> str:
    """Approve the ticked rows, each through its own approve link's checks."""
    token = request.form.get("token")
    decided = digests.approve_selected(
        token, request.form.getlist("execution_id"), signed_in=signed_in()
    )
    return _digest_page(token, decided=decided)


def _digest_page(token: str | None, *, decided: list[digests.Decided]) -> str:
    session = db.session()
    link = digests.open_digest(session, token, now=utcnow())
    rows = digests.digest_rows(session, link)
    pending = [execution for execution in rows if execution.status == Status.PENDING]
    return render_template(
        "links/digest.html",
        token=token,
        recipient=link.recipient,
        rows=rows,
        pending=pending,
        pending_upfront=sum((execution.total_upfront_cost for execution in pending), Decimal(0)),
        pending_savings=sum((execution.estimated_savings for execution in pending), Decimal(0)),
        money=money,
        decided=decided,
    )


@blueprint.after_request
def _keep_token_private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@blueprint.errorhandler(TooManyRequests)
def _too_many(error: TooManyRequests) -> Response:
    return render_domain_error(DomainError(429, TOO_MANY))
