"""Importing recommendations against the real database: the account's mode picks who is
asked, active suppressions mark their items, the totals are the selected items' money,
and every import (and every failed one) is in the trail while nothing else is written."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.db import utcnow
from app.domain.errors import DomainError
from app.domain.spending import totals_of
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, PurchaseSuppression
from app.providers import AccountTarget, ProviderRegistry, PurchaseFailed
from app.providers.simulator import SimulatedProvider
from app.services.management import CLI_ACTOR
from app.services.recommendations_import import import_recommendations
from tests.factories import make_account, make_execution, make_suppression
from tests.unit.providers.test_aws_recommendations import (
    EC2_DETAIL,
    expect_plan,
    expect_reservation,
    reservations,
    savings_plans,
)
from tests.unit.providers.test_aws_stubs import provider_with


def events(session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def simulated() -> ProviderRegistry:
    return ProviderRegistry.of([SimulatedProvider(name) for name in ("aws", "azure", "gcp")])


def test_a_simulated_account_gets_the_simulators_set_and_the_import_is_audited(app, db_session):
    account = make_account(db_session, provider="azure")

    with app.app_context():
        imported = import_recommendations(db_session, account, simulated(), actor=CLI_ACTOR)

    expected = SimulatedProvider("azure").recommendations(
        AccountTarget(name=account.name, provider="azure", external_id=account.external_id)
    )
    assert imported.items == expected and imported.items
    assert imported.source == "simulator" and imported.mode.value == "simulate"
    assert imported.totals == totals_of(expected)
    assert db_session.scalar(select(func.count()).select_from(PurchaseExecution)) == 0
    [event] = events(db_session, "recommendations.imported")
    assert (event.actor_email, event.actor_user_id) == ("cli", None)
    assert event.details["account_id"] == str(account.id)
    assert event.details["count"] == len(expected)
    assert event.details["totals"] == imported.totals.as_dict()


def test_an_item_an_active_suppression_covers_is_marked_and_not_selected(app, db_session):
    account = make_account(db_session)  # aws, external id 123456789012
    buying = make_execution(db_session, Status.APPROVED, cloud_account_id=account.id)
    make_suppression(db_session, buying)  # ec2 m5.large in us-east-1
    expired = make_suppression(db_session, make_execution(db_session, Status.APPROVED))
    expired.resource_type, expired.expires_at = "c5.xlarge", utcnow() - timedelta(minutes=1)
    expired.region = "eu-west-1"
    db_session.flush()

    with app.app_context():
        imported = import_recommendations(db_session, account, simulated())

    marked = [item for item in imported.items if item.get("suppressed")]
    [item] = marked
    assert (item["service"], item["region"], item["resource_type"]) == (
        "ec2",
        "us-east-1",
        "m5.large",
    )
    assert item["selected"] is False
    assert str(buying.execution_id) in item["suppressed"]
    assert imported.suppressed == 1
    assert imported.totals == totals_of(imported.items)
    assert imported.totals.items == len(imported.items) - 1
    [event] = events(db_session, "recommendations.imported")
    assert event.actor_email == "system" and event.details["suppressed"] == 1
    assert db_session.scalar(select(func.count()).select_from(PurchaseSuppression)) == 2


def test_a_dry_run_account_asks_the_cloud(app, db_session):
    account = make_account(db_session, mode="dry_run")
    aws, clients = provider_with()
    ce = clients.stub("ce")
    expect_reservation(ce, "ec2", reservations(EC2_DETAIL))
    for service in ("rds", "elasticache", "opensearch", "redshift", "memorydb"):
        expect_reservation(ce, service, reservations())
    expect_plan(ce, "COMPUTE_SP", savings_plans("COMPUTE_SP"))
    expect_plan(ce, "EC2_INSTANCE_SP", savings_plans("EC2_INSTANCE_SP"))
    registry = ProviderRegistry.of([SimulatedProvider("aws")], [aws])

    with app.app_context():
        imported = import_recommendations(db_session, account, registry, actor=CLI_ACTOR)

    clients.done()
    [item] = imported.items
    assert (item["source"], item["count"], item["monthly_cost"]) == (
        "aws-cost-explorer",
        3,
        "134.03",
    )
    assert imported.source == "aws-cost-explorer"
    assert imported.totals.monthly == Decimal("134.03")
    assert imported.totals.term_total == Decimal("134.03") * 12


class Refusing:
    name = "gcp"

    def recommendations(self, account):
        raise PurchaseFailed("IAM denied: compute.regions.list is not allowed on project p")


@pytest.mark.parametrize(
    ("registry", "status", "message"),
    [
        (
            ProviderRegistry.of([], [Refusing()]),  # type: ignore[list-item]
            502,
            "gcp recommendations could not be read: IAM denied: compute.regions.list",
        ),
        (ProviderRegistry.of([SimulatedProvider("gcp")]), 503, "no gcp client serves accounts"),
    ],
)
def test_a_failed_import_is_a_refusal_in_the_trail(app, db_session, registry, status, message):
    account = make_account(db_session, provider="gcp", mode="live")

    with app.app_context(), pytest.raises(DomainError) as refused:
        import_recommendations(db_session, account, registry, actor=CLI_ACTOR)

    assert refused.value.status == status and message in refused.value.message
    [event] = events(db_session, "recommendations.import_refused")
    assert event.details["status"] == status and message in event.details["error"]
    assert event.details["account_id"] == str(account.id)
    assert events(db_session, "recommendations.imported") == []
