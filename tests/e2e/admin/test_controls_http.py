"""The panel's freeze and plans pages over HTTP: the banner every viewer sees while
purchases are frozen, the admins-only Freeze page, and the Plans page's buttons, each
a POST with the CSRF token whose refusal is a flash message and an audit event."""

from __future__ import annotations

import html

from sqlalchemy import select

from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseFreeze, PurchasePlan
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, make_execution, make_plan


def signed_in(client, user):
    assert page_login(client, user.email, PASSWORD).status_code == 302
    return csrf_from(client.get("/admin/").text)


def flashes(client) -> str:
    return html.unescape(client.get("/admin/plans/").text)


def test_every_panel_page_shows_the_freeze_to_every_viewer(client, db_session, admin, viewer):
    token = signed_in(client, admin)
    assert "data-freeze-banner" not in client.get("/admin/").text
    response = client.post("/admin/freeze/on", data={"csrf_token": token, "reason": "FY close"})
    assert response.status_code == 302
    assert db_session.scalars(select(PurchaseFreeze.reason)).one() == "FY close"

    client.post("/logout", data={"csrf_token": token})
    signed_in(client, viewer)
    for page in ("/admin/", "/admin/purchases/", "/admin/plans/", "/admin/suppressions/"):
        text = client.get(page).text
        assert "data-freeze-banner" in text, page
        assert "FY close" in text and admin.email in text
    assert client.get("/admin/freeze/").status_code == 403


def test_the_freeze_page_switches_on_and_lifts_with_flash_outcomes(client, db_session, admin):
    token = signed_in(client, admin)
    page = client.get("/admin/freeze/").text
    assert 'data-action="freeze"' in page and "data-confirm" in page

    blank = client.post(
        "/admin/freeze/on", data={"csrf_token": token, "reason": "  "}, follow_redirects=True
    )
    assert "a reason is required" in html.unescape(blank.text)
    on = client.post(
        "/admin/freeze/on", data={"csrf_token": token, "reason": "audit"}, follow_redirects=True
    )
    assert "Purchases frozen: audit" in html.unescape(on.text)
    assert 'data-action="lift-freeze"' in on.text
    again = client.post(
        "/admin/freeze/on", data={"csrf_token": token, "reason": "x"}, follow_redirects=True
    )
    assert "already frozen" in html.unescape(again.text)

    lifted = client.post("/admin/freeze/lift", data={"csrf_token": token}, follow_redirects=True)
    assert "Freeze lifted: 0 approved executions start now" in html.unescape(lifted.text)
    assert "data-freeze-banner" not in lifted.text
    actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["freeze.on_refused", "freeze.on", "freeze.on_refused", "freeze.lifted"]


def test_a_freeze_post_without_its_csrf_token_is_refused(client, db_session, admin):
    signed_in(client, admin)
    response = client.post("/admin/freeze/on", data={"reason": "forged"})
    assert response.status_code == 400
    assert db_session.scalars(select(PurchaseFreeze)).all() == []


def test_the_plans_page_offers_its_buttons_to_those_who_may_use_them(
    client, db_session, purchaser, viewer
):
    plan = make_plan(db_session)
    make_execution(db_session, Status.APPROVED, plan_id=plan.id)
    token = signed_in(client, purchaser)
    page = client.get("/admin/plans/").text
    assert f'data-action="pause-plan" data-plan-id="{plan.id}"' in page
    assert 'data-action="run-plan-now"' not in page  # nothing of it is scheduled later

    paused = client.post(
        f"/admin/plans/{plan.id}/pause", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Plan ramp paused" in html.unescape(paused.text)
    assert f'data-action="resume-plan" data-plan-id="{plan.id}"' in paused.text
    resumed = client.post(
        f"/admin/plans/{plan.id}/resume", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Plan ramp resumed: 1 approved executions start now" in html.unescape(resumed.text)

    client.post("/logout", data={"csrf_token": token})
    token = signed_in(client, viewer)
    page = client.get("/admin/plans/").text
    assert str(plan.id) in page and 'data-action="pause-plan"' not in page
    refused = client.post(
        f"/admin/plans/{plan.id}/pause", data={"csrf_token": token}, follow_redirects=True
    )
    assert "approve-any:purchases is required" in html.unescape(refused.text)
    for bad in ("not-a-uuid", "6f1c0000-0000-4000-8000-000000000000"):
        answer = client.post(
            f"/admin/plans/{bad}/pause", data={"csrf_token": token}, follow_redirects=True
        )
        assert answer.status_code == 200 and 'data-flash="error"' in answer.text
    db_session.expire_all()
    assert db_session.get(PurchasePlan, plan.id).enabled is True
    refusals = db_session.scalars(
        select(AuditEvent.details).where(AuditEvent.action == "plan.pause_refused")
    ).all()
    assert [details["status"] for details in refusals] == [403, 400, 403]
