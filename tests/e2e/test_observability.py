"""`/healthz`, `/readyz` and `/metrics` over HTTP (Flask's test client), on both
databases: the metrics parsed with prometheus-client's own parser and checked against
the rows seeded; readiness failing for a database behind the migrations' head and for
an unreachable Redis; the access rule of /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app import task_names
from app.db import db, utcnow
from app.domain.statuses import Status
from app.models import AuditEvent, Notification, PurchaseFreeze, RetryBatch, RetryBatchItem
from tests.factories import make_execution
from tests.support.smtp import free_port
from tests.support.statements import recorded_statements

TOKEN = "metrics-token-" + "x" * 20
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def with_settings(app, settings, monkeypatch) -> Iterator:
    """`with_settings(**changes)`: the app's settings changed for this test only."""

    def change(**changes) -> None:
        monkeypatch.setitem(app.extensions, "settings", settings.with_overrides(**changes))

    yield change


# --- /healthz and /readyz ---------------------------------------------------------------


def test_healthz_says_the_process_lives(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"  # through the app's own hooks


def test_healthz_touches_no_database(client, with_settings):
    with_settings(redis_url=f"redis://127.0.0.1:{free_port()}/5")  # nor Redis
    with recorded_statements(db.engine) as statements:
        assert client.get("/healthz").status_code == 200
    assert statements == []


def test_readyz_is_200_when_everything_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }


def test_readyz_is_503_naming_redis_when_it_does_not_answer(client, with_settings):
    closed = f"redis://127.0.0.1:{free_port()}/5"
    with_settings(redis_url=closed)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["failed"] == ["redis"]
    assert response.json["checks"]["redis"] == "not reachable"
    assert "127.0.0.1" not in response.text and "redis://" not in response.text


def test_readyz_is_503_naming_migrations_when_the_database_is_behind(client, db_session):
    db_session.execute(text("UPDATE alembic_version SET version_num = '0010'"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["failed"] == ["migrations"]
    assert response.json["checks"]["database"] == "ok"
    assert "the database is at 0010" in response.json["checks"]["migrations"]


def test_the_door_stands_before_the_probes(client):
    response = client.get("/readyz?x=%00")
    assert response.status_code == 400
    assert "control character" in response.text


# --- /metrics: the numbers ----------------------------------------------------------------


def test_metrics_match_the_rows_seeded(client, db_session):
    now = utcnow()
    money = {"upfront": Decimal("1000.50"), "savings": Decimal("250.25")}

    def row(status: Status, **fields):
        return make_execution(db_session, status, **fields)

    oldest_pending = row(Status.PENDING, created_at=now - timedelta(hours=2))
    row(Status.PENDING, total_upfront_cost=money["upfront"], estimated_savings=money["savings"])
    failed = row(Status.FAILED, total_upfront_cost=Decimal("10.25"), estimated_savings=Decimal(3))
    successor = row(
        Status.FAILED,
        total_upfront_cost=Decimal("10.25"),
        estimated_savings=Decimal(3),
        retry_attempt_n=1,
    )
    row(Status.COMPLETED, total_upfront_cost=Decimal(4200), estimated_savings=Decimal("310.25"))
    # Approved: one startable since 30 minutes, one whose time came 10 minutes ago (its
    # clock starts then, not at its approval a day ago), one scheduled for tomorrow.
    row(Status.APPROVED, updated_at=now - timedelta(minutes=30))
    row(
        Status.APPROVED,
        updated_at=now - timedelta(days=1),
        scheduled_for=now - timedelta(minutes=10),
    )
    row(Status.APPROVED, updated_at=now - timedelta(days=2), scheduled_for=now + timedelta(days=1))

    for execution, kind, state in [
        (oldest_pending, "approval", "sent"),
        (failed, "approval", "sent"),
        (successor, "approval", "failed"),
        (failed, "outcome", "failed"),
        (successor, "outcome", "queued"),
    ]:
        db_session.add(Notification(execution_id=execution.execution_id, kind=kind, state=state))
    batch = RetryBatch(requested_by_email="ops@example.com", total=3)
    db_session.add(batch)
    db_session.flush()
    for position, state in enumerate(["succeeded", "succeeded", "rejected"]):
        db_session.add(
            RetryBatchItem(
                batch_id=batch.id,
                position=position,
                chunk=0,
                execution_id=str(failed.execution_id),
                state=state,
            )
        )
    for action, details, at in [
        ("retry.refused", {"status": 409, "error": "not failed"}, now),
        ("retry.refused", {"status": 409, "error": "again"}, now - timedelta(minutes=5)),
        ("execution.approve_refused", {"status": 403, "error": "no"}, now),
        ("retry.refused", {"status": 409}, now - timedelta(hours=2)),  # before the window
        ("execution.approved", {}, now),  # not a refusal
    ]:
        db_session.add(AuditEvent(action=action, details=details, at=at, actor_email="a@b.c"))
    db_session.flush()

    samples = scrape(client)

    expected_counts = {"pending": 2, "failed": 2, "completed": 1, "approved": 3, "running": 0}
    for status, count in expected_counts.items():
        assert value(samples, "ccp_executions", status=status) == count, status
    assert value(samples, "ccp_execution_upfront_cost_usd", status="pending") == 1000.5
    assert value(samples, "ccp_execution_upfront_cost_usd", status="failed") == 20.5
    assert value(samples, "ccp_execution_upfront_cost_usd", status="completed") == 4200
    assert value(samples, "ccp_execution_estimated_savings_usd", status="failed") == 6
    assert value(samples, "ccp_execution_estimated_savings_usd", status="pending") == 250.25
    assert value(samples, "ccp_execution_retries", status="failed") == 1
    assert value(samples, "ccp_execution_retries", status="pending") == 0

    assert 7200 <= value(samples, "ccp_oldest_pending_age_seconds") < 7260
    assert 1800 <= value(samples, "ccp_oldest_approved_not_started_age_seconds") < 1860

    assert value(samples, "ccp_emails", kind="approval", state="sent") == 2
    assert value(samples, "ccp_emails", kind="approval", state="failed") == 1
    assert value(samples, "ccp_emails", kind="outcome", state="failed") == 1
    assert value(samples, "ccp_emails", kind="outcome", state="queued") == 1
    assert value(samples, "ccp_emails", kind="outcome", state="sent") == 0  # listed at 0

    assert value(samples, "ccp_retry_batch_items", state="succeeded") == 2
    assert value(samples, "ccp_retry_batch_items", state="rejected") == 1
    assert value(samples, "ccp_retry_batch_items", state="queued") == 0

    refusals = {
        dict(labels)["action"]: (dict(labels)["code"], number)
        for (name, labels), number in samples.items()
        if name == "ccp_refusals_last_hour"
    }
    assert refusals == {"retry.refused": ("409", 2), "execution.approve_refused": ("403", 1)}

    assert value(samples, "ccp_purchases_frozen") == 0
    assert value(samples, "ccp_metrics_source_up", source="database") == 1
    assert value(samples, "ccp_metrics_source_up", source="redis") == 1


def test_a_scrape_costs_the_same_statements_whatever_the_rows(client, db_session):
    def statements_of_a_scrape() -> int:
        with recorded_statements(db.engine) as statements:
            scrape(client)
        return len(statements)

    make_execution(db_session, Status.FAILED)
    few = statements_of_a_scrape()
    for status in [Status.PENDING, Status.FAILED, Status.COMPLETED] * 10:
        make_execution(db_session, status)
    assert statements_of_a_scrape() == few
    assert few <= 10


def test_metrics_with_nothing_seeded_say_zero(client, db_session):
    samples = scrape(client)
    assert value(samples, "ccp_executions", status="pending") == 0
    assert value(samples, "ccp_oldest_pending_age_seconds") == 0
    assert value(samples, "ccp_oldest_approved_not_started_age_seconds") == 0


def test_a_freeze_shows_and_its_waiting_rows_are_not_late(client, db_session):
    make_execution(db_session, Status.APPROVED, updated_at=utcnow() - timedelta(hours=3))
    db_session.add(PurchaseFreeze(reason="quarter close", frozen_by="ops@example.com"))
    db_session.flush()
    samples = scrape(client)
    assert value(samples, "ccp_purchases_frozen") == 1
    assert value(samples, "ccp_oldest_approved_not_started_age_seconds") == 0


def test_queue_depth_is_read_from_redis(app, client, redis_db):
    celery = app.extensions["celery"]
    for _ in range(3):
        celery.send_task(task_names.EXPIRE_PENDING, queue="maintenance")
    samples = scrape(client)
    assert value(samples, "ccp_queue_depth", queue="maintenance") == 3
    assert value(samples, "ccp_queue_depth", queue="purchases") == 0
    assert value(samples, "ccp_queue_depth", queue="notifications") == 0


def test_without_redis_the_scrape_still_answers_and_says_so(client, with_settings):
    with_settings(redis_url=f"redis://127.0.0.1:{free_port()}/5")
    samples = scrape(client)
    assert value(samples, "ccp_metrics_source_up", source="redis") == 0
    assert value(samples, "ccp_metrics_source_up", source="database") == 1
    assert not any(name == "ccp_queue_depth" for name, _ in samples)


def test_no_label_names_a_person_or_an_account(client, db_session):
    from tests.factories import make_account, make_user

    user = make_user(db_session, "secret.person@example.com")
    account = make_account(db_session)
    make_execution(db_session, Status.FAILED, created_by=user, cloud_account_id=account.id)
    response = client.get("/metrics")
    assert response.status_code == 200
    for secret in ("secret.person", str(user.id), str(account.id), account.name):
        assert secret not in response.text


# --- /metrics: who may read it -----------------------------------------------------------


def test_from_another_machine_without_a_token_is_401(client):
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "only this machine" in response.json["error"]


def test_through_a_proxy_without_a_token_is_401(client):
    response = client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
    assert response.status_code == 401


def test_production_without_a_token_is_401(client, with_settings):
    with_settings(app_env="production")
    response = client.get("/metrics")
    assert response.status_code == 401
    assert "set METRICS_TOKEN" in response.json["error"]


def test_the_token_is_asked_for_and_opens(client, with_settings):
    with_settings(metrics_token=TOKEN)
    assert client.get("/metrics").status_code == 401  # loopback is not enough any more
    wrong = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}-not"})
    assert wrong.status_code == 401
    assert TOKEN not in wrong.text
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    right = client.get(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, environ_base=remote
    )
    assert right.status_code == 200
    assert "ccp_executions" in right.text


def test_openmetrics_is_answered_when_asked_for(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.mimetype == "application/openmetrics-text"
    assert response.text.rstrip().endswith("# EOF")
