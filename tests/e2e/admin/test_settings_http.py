"""Your settings over HTTP: any signed-in user picks their own time zone (a POST with the
CSRF token, audited); a name the zone database does not know is refused with 400 and
a flash message, and nothing is saved; the panel then shows times in that zone."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from sqlalchemy import select

from app.domain.statuses import Status
from app.models import AuditEvent, User
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, make_execution

SETTINGS = "/admin/settings/"


def signed_in(client, user) -> str:
    assert page_login(client, user.email, PASSWORD).status_code == 302
    return csrf_from(client.get(SETTINGS).text)


def zone_of(db_session, user) -> str | None:
    db_session.expire_all()
    return db_session.scalar(select(User.time_zone).where(User.id == user.id))


def events(db_session, action: str) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_any_signed_in_user_sets_their_own_time_zone(client, db_session, viewer):
    token = signed_in(client, viewer)
    page = client.get(SETTINGS).text
    assert 'data-current-time-zone=""' in page  # none yet: UTC
    assert '<option value="Europe/Paris">' in page

    response = client.post(SETTINGS, data={"csrf_token": token, "time_zone": "Europe/Paris"})
    assert response.status_code == 302
    assert zone_of(db_session, viewer) == "Europe/Paris"
    after = client.get(SETTINGS).text
    assert "Times now show in Europe/Paris." in html.unescape(after)
    assert 'data-current-time-zone="Europe/Paris"' in after
    assert '<option value="Europe/Paris" selected>' in after
    (event,) = events(db_session, "user.updated")
    assert event.actor_email == viewer.email
    assert event.details["changes"] == {"time_zone": [None, "Europe/Paris"]}

    # Blank goes back to UTC; the same zone again records nothing more.
    client.post(SETTINGS, data={"csrf_token": token, "time_zone": ""})
    client.post(SETTINGS, data={"csrf_token": token, "time_zone": ""})
    assert zone_of(db_session, viewer) is None
    assert [e.details["changes"] for e in events(db_session, "user.updated")] == [
        {"time_zone": [None, "Europe/Paris"]},
        {"time_zone": ["Europe/Paris", None]},
    ]


def test_the_navbar_email_leads_to_the_settings(client, db_session, alice):
    signed_in(client, alice)
    home = client.get("/admin/").text
    assert re.search(r'<a class="navbar-text[^"]*" href="/admin/settings/"', home)


def test_an_unknown_zone_is_refused_with_400_and_nothing_is_saved(client, db_session, alice):
    token = signed_in(client, alice)
    client.post(SETTINGS, data={"csrf_token": token, "time_zone": "Asia/Tokyo"})
    for bad in ("Mars/Olympus_Mons", "asia/tokyo", "<script>alert(1)</script>", "x" * 5000):
        response = client.post(SETTINGS, data={"csrf_token": token, "time_zone": bad})
        assert response.status_code == 400, bad
        text = html.unescape(response.text)
        assert 'data-flash="error"' in response.text
        assert "Time zone not saved: unknown time zone" in text
        assert "<script>alert(1)</script>" not in response.text
        assert zone_of(db_session, alice) == "Asia/Tokyo"
    refusals = events(db_session, "user.update_refused")
    assert len(refusals) == 4
    assert refusals[0].details["status"] == 400
    assert refusals[0].details["time_zone"] == "Mars/Olympus_Mons"


def test_a_post_without_the_csrf_token_is_refused(client, db_session, alice):
    signed_in(client, alice)
    response = client.post(SETTINGS, data={"time_zone": "Europe/Paris"})
    assert response.status_code == 400
    response = client.post(SETTINGS, data={"csrf_token": "forged", "time_zone": "Europe/Paris"})
    assert response.status_code == 400
    assert zone_of(db_session, alice) is None
    assert events(db_session, "user.updated") == []


def test_the_page_changes_only_the_signed_in_users_zone(client, db_session, alice, bob):
    token = signed_in(client, alice)
    # Whatever names another user, the change is the reader's own.
    response = client.post(
        f"{SETTINGS}?user_id={bob.id}",
        data={
            "csrf_token": token,
            "time_zone": "Europe/Paris",
            "user_id": str(bob.id),
            "email": bob.email,
        },
    )
    assert response.status_code == 302
    assert zone_of(db_session, alice) == "Europe/Paris"
    assert zone_of(db_session, bob) is None


def test_signed_out_visitors_go_to_the_login_page(client, db_session):
    for response in (
        client.get(SETTINGS),
        client.post(SETTINGS, data={"time_zone": "Europe/Paris"}),
    ):
        assert response.status_code in (302, 400)
    assert client.get(SETTINGS).headers["Location"].startswith("/login")


def test_history_and_details_show_times_in_the_readers_zone(client, db_session, alice):
    # 8 March 2026, 07:30 UTC: just after New York moved to daylight saving time.
    moment = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    row = make_execution(db_session, Status.FAILED, created_by=alice, created_at=moment)
    token = signed_in(client, alice)
    before = client.get("/admin/purchases/").text
    assert ">2026-03-08 07:30 UTC</time>" in before

    client.post(SETTINGS, data={"csrf_token": token, "time_zone": "America/New_York"})
    listed = client.get("/admin/purchases/").text
    assert '<time class="moment" datetime="2026-03-08T07:30:00+00:00"' in listed
    assert 'title="2026-03-08 07:30:00 UTC">2026-03-08 03:30 EDT</time>' in listed
    details = client.get(f"/admin/purchases/details/?id={row.execution_id}").text
    assert ">2026-03-08 03:30 EDT</time>" in details
