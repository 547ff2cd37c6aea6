"""The channels' outbox on a real database: owed once per channel that hears the event
(one SELECT when there is none), claimed by one task at a time, settled once, handed
back by the sweep when lost; and the channels' management, never showing a secret."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.db import db, unit_of_work, utcnow
from app.domain.channels import ChannelEvent, MessageState
from app.domain.errors import DomainError
from app.domain.staleness import LEASE_TTL, UNSTARTED_AFTER
from app.domain.statuses import Status
from app.models import AuditEvent, ChannelMessage, NotificationChannel
from app.services import channels, channels_admin, channels_delivery, schedules
from app.services.channels_admin import ChannelFields
from app.services.channels_delivery import Failure
from app.services.identity import principal_for
from app.services.management import CLI_ACTOR
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.support.statements import recorded_statements

SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
HOOK = "https://hooks.example.com/in?token=very-secret-token"
OWNER = "test-run"


@pytest.fixture
def outbox(app, db_session):
    """An app context on the test's rolled-back transaction."""
    with app.app_context():
        yield db_session


def add_channel(session, name, *, kind="slack", target=SLACK, **fields):
    return channels_admin.create_channel(
        session,
        CLI_ACTOR,
        ChannelFields(
            name=name,
            kind=kind,
            target=target,
            secret=fields.pop("secret", "s" * 16 if kind == "webhook" else None),
            **fields,
        ),
    )


def messages(session, **where):
    query = select(ChannelMessage).execution_options(populate_existing=True)
    for key, value in where.items():
        query = query.where(getattr(ChannelMessage, key) == value)
    return list(session.scalars(query))


def test_owing_with_no_channel_costs_one_select_however_many_rows(outbox):
    rows = [make_execution(outbox, Status.PENDING) for _ in range(3)]
    ended = make_execution(outbox, Status.FAILED)
    now = utcnow()
    with recorded_statements(db.engine) as seen:
        assert channels.owe(
            outbox, ChannelEvent.FREEZE_SWITCHED, account_id=None, key="k", subject="s",
            body="b", now=now,
        ) == []  # fmt: skip
        channels.owe_approval_needed(outbox, [row.execution_id for row in rows], now=now)
        channels.owe_outcome(outbox, ended.execution_id, now=now)
        channels.owe_schedule_reminder(outbox, [rows[0].execution_id], now=now)
    assert len(seen) == 4
    assert all("FROM notification_channels" in statement for statement in seen)
    assert messages(outbox) == []


def test_a_message_is_owed_once_to_each_enabled_channel_that_hears_it(outbox):
    mine, other = make_account(outbox), make_account(outbox, provider="gcp")
    global_all = add_channel(outbox, "everything")
    add_channel(outbox, "mine", cloud_account_id=str(mine.id))
    add_channel(outbox, "other account", cloud_account_id=str(other.id))
    add_channel(outbox, "approvals only", events=["approval_needed"])
    add_channel(outbox, "switched off", enabled=False)
    row = make_execution(
        outbox, Status.FAILED, cloud_account_id=mine.id, recommendations=[recommendation()],
        total_upfront_cost=Decimal("1200.00"), error="InsufficientCapacity",
    )  # fmt: skip
    now = utcnow()

    first = channels.owe_outcome(outbox, row.execution_id, now=now)
    again = channels.owe_outcome(outbox, row.execution_id, now=now)

    assert len(first) == 2 and again == []
    owed = messages(outbox)
    by_channel = {
        outbox.get(NotificationChannel, message.channel_id).name: message for message in owed
    }
    assert set(by_channel) == {"everything", "mine"}
    message = by_channel["everything"]
    assert message.channel_id == global_all.id
    assert (message.event, message.state, message.attempts) == ("purchase_failed", "queued", 0)
    assert message.dedupe_key == f"purchase_failed:{row.execution_id}"
    assert "Purchase failed" in message.subject and "aws account" in message.subject
    assert "$1,200.00" in message.body and "InsufficientCapacity" in message.body
    assert f"/admin/purchases/details/?id={row.execution_id}" in message.body
    # In the broker: the sweep leaves it alone until its broker lease lapses.
    assert message.lease_owner is None
    assert message.lease_expires_at == now + UNSTARTED_AFTER


def test_a_bulk_retrys_approvals_are_one_message_per_channel(outbox):
    add_channel(outbox, "ops")
    account = make_account(outbox)
    add_channel(outbox, "account's own", cloud_account_id=str(account.id))
    batch = make_execution(outbox).execution_id  # any id: the key is what matters
    now = utcnow()
    for _ in range(2):
        channels.owe_batch_approval_needed(
            outbox, batch, 1500, Decimal("90000"), Decimal("2500.5"), now
        )
    (message,) = messages(outbox)
    assert message.dedupe_key == f"approval_needed:batch:{batch}"
    assert message.subject == "Approval needed: 1500 purchases of a bulk retry"
    assert "$90,000.00" in message.body and "$2,500.50" in message.body
    assert f"/admin/retry_batches/{batch}" in message.body


def test_single_rows_waiting_for_approval_each_get_a_message(outbox):
    add_channel(outbox, "ops", events=["approval_needed"])
    rows = [make_execution(outbox) for _ in range(3)]
    owed = channels.owe_approval_needed(outbox, [row.execution_id for row in rows], now=utcnow())
    assert len(owed) == 3
    assert {m.dedupe_key for m in messages(outbox)} == {
        f"approval_needed:{row.execution_id}" for row in rows
    }


def test_the_failure_digest_is_owed_once_a_day_per_threshold_when_crossed(outbox):
    add_channel(outbox, "ops", events=["failure_digest"])
    make_execution(outbox, Status.FAILED, total_upfront_cost=Decimal("600"))
    retried = make_execution(outbox, Status.FAILED, total_upfront_cost=Decimal("9000"))
    retried.retry_execution_id = make_execution(outbox).execution_id
    outbox.flush()
    now = utcnow()
    assert channels.owe_failure_digest(outbox, threshold=Decimal("1000"), now=now) == []

    make_execution(outbox, Status.FAILED, total_upfront_cost=Decimal("500"))
    assert len(channels.owe_failure_digest(outbox, threshold=Decimal("1000"), now=now)) == 1
    later = now + timedelta(hours=1)
    assert channels.owe_failure_digest(outbox, threshold=Decimal("1000"), now=later) == []
    tomorrow = now + timedelta(days=1)
    assert len(channels.owe_failure_digest(outbox, threshold=Decimal("1000"), now=tomorrow)) == 1
    (message, _) = sorted(messages(outbox), key=lambda m: m.dedupe_key)
    assert message.subject == "$1,100.00 stuck in 2 failed purchases"


def test_switching_the_freeze_owes_who_and_why(outbox):
    add_channel(outbox, "ops", events=["freeze_switched"])
    admin = principal_for(make_user(outbox, groups=("Administrators",)))
    now = utcnow()
    schedules.freeze(outbox, admin, "FY close", now=now)
    schedules.lift(outbox, admin, now=now + timedelta(minutes=1))
    on, off = sorted(messages(outbox), key=lambda m: m.created_at)
    assert on.subject == "Purchases frozen"
    assert on.body == f"Purchases frozen by {admin.email}: FY close."
    assert off.subject.startswith("Freeze lifted") and admin.email in off.body


def test_messages_are_queued_for_the_worker_only_once_the_owing_commits(app, outbox, redis_db):
    add_channel(outbox, "ops")
    with unit_of_work() as session:
        owed = channels.owe(
            session, ChannelEvent.TEST, account_id=None, key="a", subject="s", body="b",
            now=utcnow(),
        )  # fmt: skip
        assert redis_db.llen("notifications") == 0
    (queued,) = redis_db.lrange("notifications", 0, -1)
    assert json.loads(queued)["headers"]["task"] == "channels.send"
    assert json.loads(queued)["headers"]["argsrepr"] == repr([str(owed[0])])

    with pytest.raises(RuntimeError), unit_of_work() as session:
        channels.owe(
            session, ChannelEvent.TEST, account_id=None, key="b", subject="s", body="b",
            now=utcnow(),
        )  # fmt: skip
        raise RuntimeError("rolled back")
    with unit_of_work() as session:
        pass
    assert redis_db.llen("notifications") == 1


def test_a_message_is_claimed_by_one_task_and_settled_once(outbox, settings):
    channel = add_channel(outbox, "ops")
    message_id = channels.owe_test(outbox, channel.id, actor_email="a@example.com", now=utcnow())
    now = utcnow()
    claimed = channels_delivery.claim(outbox, message_id, owner=OWNER, now=now)
    assert claimed is not None and claimed.target == SLACK and claimed.attempt == 1
    assert channels_delivery.claim(outbox, message_id, owner="another", now=now) is None
    assert channels_delivery.record_sent(outbox, claimed, now=now)
    assert not channels_delivery.record_sent(outbox, claimed, now=now)
    (sent,) = messages(outbox)
    assert (sent.state, sent.sent_at) == ("sent", now)
    assert channels_delivery.claim(outbox, message_id, owner="another", now=now) is None
    event = outbox.scalars(
        select(AuditEvent).where(AuditEvent.action == "channel_message.sent")
    ).one()
    assert event.details["target"] == "slack://t1jj3t3l2/***"


def test_a_failure_waits_its_backoff_then_fails_for_good_with_the_error(outbox, settings):
    quick = settings.with_overrides(email_max_retries=1, email_retry_base_seconds=2.0)
    channel = add_channel(outbox, "hook", kind="webhook", target=HOOK)
    message_id = channels.owe_test(outbox, channel.id, actor_email="a@example.com", now=utcnow())
    now = utcnow()
    first = channels_delivery.claim(outbox, message_id, owner=OWNER, now=now)
    wait = channels_delivery.record_failure(
        outbox, first, Failure("webhook answered 503"), settings=quick, now=now
    )
    assert wait == 2.0
    (queued,) = messages(outbox)
    assert (queued.state, queued.error) == ("queued", "webhook answered 503")
    assert queued.due_at == now + timedelta(seconds=2)
    assert channels_delivery.claim(outbox, message_id, owner=OWNER, now=now) is None

    later = now + timedelta(seconds=2)
    second = channels_delivery.claim(outbox, message_id, owner=OWNER, now=later)
    assert second.attempt == 2
    assert (
        channels_delivery.record_failure(
            outbox, second, Failure("webhook answered 503"), settings=quick, now=later
        )
        is None
    )
    (failed,) = messages(outbox)
    assert (failed.state, failed.error) == ("failed", "send failed: webhook answered 503")
    audit = outbox.scalars(
        select(AuditEvent).where(AuditEvent.action == "channel_message.failed")
    ).one()
    assert audit.details["target"] == "https://hooks.example.com/***"
    assert "very-secret-token" not in json.dumps(audit.details)


def test_a_disabled_channels_queued_message_fails_when_claimed(outbox):
    channel = add_channel(outbox, "ops")
    message_id = channels.owe_test(outbox, channel.id, actor_email="a@example.com", now=utcnow())
    channels_admin.set_enabled(outbox, CLI_ACTOR, channel.id, False)
    assert channels_delivery.claim(outbox, message_id, owner=OWNER, now=utcnow()) is None
    assert messages(outbox)[0].state == MessageState.FAILED
    with pytest.raises(DomainError, match="disabled") as refused:
        channels.owe_test(outbox, channel.id, actor_email="a@example.com", now=utcnow())
    assert refused.value.status == 409


def test_the_sweep_hands_back_a_dead_senders_message_and_a_lost_one_once(outbox):
    channel = add_channel(outbox, "ops")
    now = utcnow()
    dead = channels.owe_test(outbox, channel.id, actor_email="a@example.com", now=now)
    lost = channels.owe_test(outbox, channel.id, actor_email="a@example.com", now=now)
    assert channels_delivery.claim(outbox, dead, owner=OWNER, now=now) is not None
    assert channels_delivery.lapsed_messages(outbox, now=now + timedelta(seconds=1)) == []

    past_both = now + max(LEASE_TTL, UNSTARTED_AFTER) + timedelta(seconds=1)
    assert set(channels_delivery.lapsed_messages(outbox, now=past_both)) == {dead, lost}
    assert channels_delivery.lapsed_messages(outbox, now=past_both) == []
    assert {m.state for m in messages(outbox)} == {"queued"}
    again = channels_delivery.claim(outbox, dead, owner="new-run", now=past_both)
    assert again.attempt == 2


def test_managing_channels_never_shows_or_records_a_target_or_secret(outbox):
    account = make_account(outbox)
    channel = add_channel(
        outbox, "hook", kind="webhook", target=HOOK, secret="a-very-long-signing-secret",
        cloud_account_id=str(account.id), events=["purchase_failed"],
    )  # fmt: skip
    channels_admin.update_channel(
        outbox, CLI_ACTOR, channel.id,
        ChannelFields(name="hook 2", kind="webhook", target=None, secret=None, events=[]),
    )  # fmt: skip
    changed = outbox.get(NotificationChannel, channel.id)
    assert (changed.name, changed.target, changed.secret) == (
        "hook 2",
        HOOK,
        "a-very-long-signing-secret",
    )
    assert changed.cloud_account_id is None and changed.events == []
    (listed,) = channels_admin.list_channels(outbox)
    assert listed["target"] == "https://hooks.example.com/***" and "secret" not in listed
    trail = json.dumps([e.details for e in outbox.scalars(select(AuditEvent))])
    assert "very-secret-token" not in trail and "signing-secret" not in trail
    assert "channel.created" in {e.action for e in outbox.scalars(select(AuditEvent))}


def test_channel_rules_refuse_with_4xx(outbox):
    add_channel(outbox, "ops")
    viewer = principal_for(make_user(outbox))
    with pytest.raises(DomainError) as refused:
        add_channel(outbox, "ops")
    assert refused.value.status == 409
    with pytest.raises(DomainError) as refused:
        channels_admin.create_channel(
            outbox, viewer, ChannelFields(name="x", kind="slack", target=SLACK)
        )
    assert refused.value.status == 403
    for bad, status in (
        ({"kind": "sms"}, 400),
        ({"target": "http://x/"}, 400),
        ({"cloud_account_id": "not-a-uuid"}, 400),
        ({"cloud_account_id": "00000000-0000-0000-0000-000000000000"}, 404),
        ({"events": ["nope"]}, 400),
    ):
        fields = {"name": "new", "kind": "slack", "target": SLACK, **bad}
        with pytest.raises(DomainError) as refused:
            channels_admin.create_channel(outbox, CLI_ACTOR, ChannelFields(**fields))
        assert refused.value.status == status, bad
    with pytest.raises(DomainError) as refused:
        channels_admin.find_channel(outbox, "missing")
    assert refused.value.status == 404


def test_message_counts_by_event_and_state(outbox):
    channel = add_channel(outbox, "ops")
    for _ in range(2):
        channels.owe_test(outbox, channel.id, actor_email="a@example.com", now=utcnow())
    channels.owe_freeze_switched(
        outbox, on=True, actor_email="a@example.com", reason="x", now=utcnow()
    )
    assert channels.message_counts(outbox) == {
        ("test", "queued"): 2,
        ("freeze_switched", "queued"): 1,
    }
