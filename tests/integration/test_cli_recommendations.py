"""`flask recommendations import`, invoked as an operator would, on the test database: the
items on standard output (or in a file) as the JSON list `flask executions create` takes,
the summary on standard error, the exit status, and the trail (as `cli`)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.cli.executions import executions_cli
from app.models import AuditEvent, PurchaseExecution
from app.providers import AccountTarget, ProviderRegistry, PurchaseFailed
from app.providers.simulator import SimulatedProvider
from tests.factories import make_account, make_user


@pytest.fixture
def cli(app, db_session):
    return app.test_cli_runner()


def events(session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def simulated_items(account) -> list[dict]:
    target = AccountTarget(
        name=account.name, provider=account.provider, external_id=account.external_id
    )
    return SimulatedProvider(account.provider).recommendations(target)


def test_import_prints_the_items_and_a_summary_and_is_audited(cli, db_session):
    account = make_account(db_session, provider="aws")

    result = cli.invoke(args=["recommendations", "import", "--account", account.name])

    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert items == simulated_items(account)
    assert result.stderr.startswith(f"{len(items)} recommendations for aws account from simulator")
    assert "estimated savings" in result.stderr and "over the term" in result.stderr
    [event] = events(db_session, "recommendations.imported")
    assert (event.actor_email, event.details["count"]) == ("cli", len(items))


def test_the_account_may_be_named_by_id_and_the_items_written_to_a_file(cli, db_session, tmp_path):
    account = make_account(db_session, provider="gcp")
    written = tmp_path / "items.json"

    result = cli.invoke(
        args=["recommendations", "import", "--account", str(account.id), "--output", str(written)]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads(written.read_text()) == simulated_items(account)
    assert "recommendations for gcp account" in result.stderr


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        ("nobody", "no account named 'nobody'"),
        ("bad\udcffname", "account "),
        ("", "no account named ''"),
    ],
)
def test_an_account_that_cannot_be_found_exits_1_with_its_reason(cli, db_session, named, expected):
    result = cli.invoke(args=["recommendations", "import", "--account", named])
    assert result.exit_code == 1
    assert expected in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""
    assert events(db_session, "recommendations.imported") == []


def test_an_unknown_account_is_a_refusal_in_the_trail(cli, db_session):
    result = cli.invoke(args=["recommendations", "import", "--account", "nobody"])
    assert result.exit_code == 1
    [event] = events(db_session, "recommendations.import_refused")
    assert (event.actor_email, event.details["status"], event.details["account"]) == (
        "cli",
        404,
        "nobody",
    )


class Refusing:
    name = "aws"

    def recommendations(self, account):
        raise PurchaseFailed("IAM denied: ce:GetReservationPurchaseRecommendation is not allowed")


def test_a_cloud_that_refuses_exits_1_saying_why(app, cli, db_session, monkeypatch):
    account = make_account(db_session, mode="live")
    registry = ProviderRegistry.of([], [Refusing()])  # type: ignore[list-item]
    monkeypatch.setitem(app.extensions, "providers", registry)

    result = cli.invoke(args=["recommendations", "import", "--account", account.name])

    assert result.exit_code == 1
    assert "aws recommendations could not be read: IAM denied: ce:" in result.stderr
    assert result.stdout == ""
    [event] = events(db_session, "recommendations.import_refused")
    assert event.details["status"] == 502


def test_an_unwritable_output_exits_1(cli, db_session, tmp_path):
    account = make_account(db_session)
    result = cli.invoke(
        args=["recommendations", "import", "--account", account.name, "--output", str(tmp_path)]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_what_import_prints_creates_a_purchase(cli, db_session, redis_db):
    """The round trip: `import` then `executions create --account NAME -`."""
    create = executions_cli.commands.get("create")
    if create is None:
        pytest.skip("`flask executions create` is not in this tree yet")
    account = make_account(db_session, provider="aws")
    imported = cli.invoke(args=["recommendations", "import", "--account", account.name])
    assert imported.exit_code == 0, imported.output
    arguments = ["executions", "create", "--account", account.name, "-"]
    if any("--as" in getattr(option, "opts", ()) for option in create.params):
        admin = make_user(db_session, "root@example.com", groups=("Administrators",))
        arguments += ["--as", admin.email]

    created = cli.invoke(args=arguments, input=imported.stdout)

    assert created.exit_code == 0, created.output
    [row] = db_session.scalars(
        select(PurchaseExecution).execution_options(populate_existing=True)
    ).all()
    assert row.status == "pending" and row.cloud_account_id == account.id
    assert len(row.recommendations) == len(json.loads(imported.stdout))
