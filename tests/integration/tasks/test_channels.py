"""`channels.send` through a real Celery worker: a webhook that is down then up gets each
message exactly once, signed; the sweep redelivers a lapsed message once; Slack and
Teams messages leave through Apprise, seen at the HTTP seam (an HTTPS proxy on
loopback)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import background, task_names
from app.db import fresh_read, unit_of_work, utcnow
from app.domain.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, ChannelEvent, verify
from app.models import AuditEvent, ChannelMessage
from app.services import channels, channels_admin
from app.services.channels_admin import ChannelFields
from app.services.management import CLI_ACTOR
from tests.support.commands import wait_until
from tests.support.webhooks import InterceptingProxy, WebhookReceiver, free_port

pytestmark = pytest.mark.worker

SECRET = "a-webhook-signing-secret"


@pytest.fixture
def quick_retries(app, settings, monkeypatch):
    """Retries after 0.2 s, 0.4 s ... (the worker reads the app's settings)."""
    quick = settings.with_overrides(email_retry_base_seconds=0.2, email_max_retries=10)
    monkeypatch.setitem(app.extensions, "settings", quick)


def add_channel(name, kind, target, **fields):
    with unit_of_work() as session:
        return channels_admin.create_channel(
            session,
            CLI_ACTOR,
            ChannelFields(name=name, kind=kind, target=target, **fields),
        ).id


def owe_messages(count):
    with unit_of_work() as session:
        return [
            channels.owe(
                session,
                ChannelEvent.PURCHASE_FAILED,
                account_id=None,
                key=f"failed:{n}",
                subject=f"Purchase failed #{n}",
                body=f"row {n} failed",
                now=utcnow(),
            )[0]
            for n in range(count)
        ]


def states():
    with fresh_read() as session:
        query = select(ChannelMessage).execution_options(populate_existing=True)
        return {row.id: row for row in session.scalars(query)}


def all_settled(ids):
    def check():
        rows = states()
        return rows if all(rows[id_].state in ("sent", "failed") for id_ in ids) else None

    return check


def signed_ids(received):
    """The message ids of the requests, each checked against its HMAC signature."""
    ids = []
    for request in received:
        assert verify(
            request.body,
            SECRET,
            request.headers[TIMESTAMP_HEADER],
            request.headers[SIGNATURE_HEADER],
        ), request
        ids.append(json.loads(request.body)["id"])
    return ids


def test_a_webhook_down_then_up_gets_each_message_once_signed(
    committed_db, celery_worker, quick_retries
):
    with WebhookReceiver() as receiver:
        receiver.status = 503
        add_channel("hook", "webhook", f"{receiver.url}/in?team=ops", secret=SECRET)
        owed = owe_messages(3)
        wait_until(lambda: len(receiver.received) >= 6, what="retries while the hook is down")
        assert {row.state for row in states().values()} <= {"queued", "sending"}

        receiver.status = 200
        rows = wait_until(all_settled(owed), timeout=30, what="the messages to be sent")
        time.sleep(1.0)  # anything sent twice would arrive by now

    assert {rows[id_].state for id_ in owed} == {"sent"}
    assert all(rows[id_].attempts >= 2 for id_ in owed)
    assert sorted(signed_ids(receiver.accepted())) == sorted(str(id_) for id_ in owed)
    refused = [r for r in receiver.received if r.answered == 503]
    assert set(signed_ids(refused)) <= {str(id_) for id_ in owed}
    assert {r.path for r in receiver.received} == {"/in?team=ops"}
    body = json.loads(receiver.accepted()[0].body)
    assert body["event"] == "purchase_failed" and body["subject"].startswith("Purchase failed")
    with fresh_read() as session:
        sent = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "channel_message.sent")
        ).all()
    assert len(sent) == 3


def test_a_webhook_whose_port_is_closed_gets_it_once_it_listens(
    committed_db, celery_worker, quick_retries
):
    port = free_port()
    add_channel("hook", "webhook", f"http://127.0.0.1:{port}/in", secret=SECRET)
    (owed,) = owe_messages(1)
    wait_until(lambda: states()[owed].attempts >= 3, what="attempts on a closed port")
    assert "unreachable" in (states()[owed].error or "")

    with WebhookReceiver(port) as receiver:
        wait_until(all_settled([owed]), what="the message to be sent")
        time.sleep(0.5)
    assert signed_ids(receiver.accepted()) == [str(owed)]
    assert states()[owed].state == "sent"


def test_the_sweep_redelivers_a_lapsed_message_once(committed_db, celery_worker):
    with WebhookReceiver() as receiver:
        channel_id = add_channel("hook", "webhook", f"{receiver.url}/in", secret=SECRET)
        past = utcnow() - timedelta(minutes=5)
        with unit_of_work() as session:
            # A worker claimed it, then died mid-send: its lease lapsed long ago.
            lapsed = ChannelMessage(
                channel_id=channel_id,
                event="purchase_failed",
                dedupe_key="lapsed",
                subject="Purchase failed",
                body="it failed",
                state="sending",
                attempts=1,
                due_at=past,
                lease_owner="dead-worker-task",
                lease_expires_at=past + timedelta(seconds=15),
            )
            session.add(lapsed)
        message_id = lapsed.id
        time.sleep(0.5)
        assert receiver.received == []  # nothing queued it: only the sweep will

        for _ in range(3):
            background.enqueue(task_names.RECOVER_LAPSED, [])
        rows = wait_until(all_settled([message_id]), what="the sweep's redelivery")
        time.sleep(1.0)
        background.enqueue(task_names.RECOVER_LAPSED, [])
        time.sleep(1.0)

    assert signed_ids(receiver.received) == [str(message_id)]
    assert (rows[message_id].state, rows[message_id].attempts) == ("sent", 2)


@pytest.mark.parametrize(
    ("kind", "target", "host", "path"),
    [
        (
            "slack",
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/?verify=no",
            "hooks.slack.com:443",
            "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
        ),
        (
            "teams",
            "workflows://teams.example.test/f3b8c0a0d1e24b5f/SiGnAtUrE0123456789?verify=no",
            "teams.example.test:443",
            "/workflows/f3b8c0a0d1e24b5f/",
        ),
    ],
)
def test_slack_and_teams_messages_leave_through_apprise(
    committed_db, celery_worker, monkeypatch, tmp_path, kind, target, host, path
):
    with InterceptingProxy(tmp_path) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("https_proxy", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        add_channel(kind, kind, target)
        (owed,) = owe_messages(1)
        rows = wait_until(all_settled([owed]), what=f"the {kind} message")

    assert rows[owed].state == "sent", rows[owed].error
    (request,) = proxy.received
    assert request.host == host
    assert request.path.startswith(path)
    sent = json.loads(request.body)
    text = json.dumps(sent)
    assert "Purchase failed #0" in text and "row 0 failed" in text
    if kind == "slack":
        assert sent["attachments"][0]["title"] == "Purchase failed #0"
    else:
        assert sent["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    with fresh_read() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "channel_message.sent")
        ).one()
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in json.dumps(event.details)
