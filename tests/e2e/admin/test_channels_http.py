"""The Notification channels page over HTTP: admins only, targets masked, every write a
POST with the CSRF token, and "Send test message" owing a message through the outbox."""

from __future__ import annotations

import html

from sqlalchemy import select

from app.models import AuditEvent, ChannelMessage, NotificationChannel
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD

HOOK = "https://hooks.example.com/in?token=very-secret-token"


def signed_in(client, user):
    assert page_login(client, user.email, PASSWORD).status_code == 302
    return csrf_from(client.get("/admin/").text)


def test_admins_add_a_channel_see_it_masked_and_send_a_test(client, db_session, admin, redis_db):
    token = signed_in(client, admin)
    form = {
        "csrf_token": token, "name": "ops hook", "kind": "webhook", "target": HOOK,
        "account": "", "secret": "a-very-long-signing-secret", "enabled": "y",
        "events": ["purchase_failed"],
    }  # fmt: skip
    added = client.post("/admin/channels/edit/", data=form, follow_redirects=True)
    assert 'saved the channel "ops hook"' in html.unescape(added.text)
    page = client.get("/admin/channels/").text
    assert "https://hooks.example.com/***" in page
    assert "very-secret-token" not in page and "signing-secret" not in page
    channel = db_session.scalars(select(NotificationChannel)).one()
    edit = client.get(f"/admin/channels/edit/?id={channel.id}").text
    assert "very-secret-token" not in edit and "signing-secret" not in edit

    without_csrf = client.post("/admin/channels/test/", data={"id": str(channel.id)})
    assert without_csrf.status_code == 400
    assert db_session.scalars(select(ChannelMessage)).all() == []

    tested = client.post(
        "/admin/channels/test/",
        data={"csrf_token": token, "id": str(channel.id)},
        follow_redirects=True,
    )
    assert 'test message queued for "ops hook"' in html.unescape(tested.text)
    (message,) = db_session.scalars(select(ChannelMessage)).all()
    assert (message.event, message.state, message.channel_id) == ("test", "queued", channel.id)
    assert redis_db.llen("notifications") == 1
    actions = set(db_session.scalars(select(AuditEvent.action)))
    assert {"channel.created", "channel.test_owed"} <= actions


def test_bad_input_is_refused_with_a_message_and_an_audit_event(client, db_session, admin):
    token = signed_in(client, admin)
    refused = client.post(
        "/admin/channels/edit/",
        data={
            "csrf_token": token,
            "name": "x",
            "kind": "webhook",
            "target": HOOK,
            "secret": "s",
            "account": "",
        },
        follow_redirects=True,
    )
    assert "signing secret" in html.unescape(refused.text)
    assert db_session.scalars(select(NotificationChannel)).all() == []
    assert "channel.create_refused" in set(db_session.scalars(select(AuditEvent.action)))
    for path in ("/admin/channels/test/", "/admin/channels/delete/"):
        malformed = client.post(path, data={"csrf_token": token, "id": "nope"})
        assert malformed.status_code == 400
        unknown = client.post(
            path, data={"csrf_token": token, "id": "00000000-0000-0000-0000-000000000000"}
        )
        assert unknown.status_code == 404


def test_the_page_is_for_admins_only(client, db_session, viewer):
    signed_in(client, viewer)
    assert client.get("/admin/channels/").status_code == 403
    assert "Notification channels" not in client.get("/admin/").text
