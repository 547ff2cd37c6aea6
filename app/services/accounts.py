"""Cloud accounts: create, edit, delete, each audited in its own transaction (run them
through `app.services.management.write`, as the panel's account pages do).

Deleting an account that purchase executions reference is refused, with the count,
and nothing changes. The foreign key alone would not refuse it: it is ON DELETE SET
NULL, so those executions would silently lose the account their purchases ran
against and where their approval emails go. The count is taken with the account row
locked (FOR UPDATE on PostgreSQL, where an execution being inserted for it holds a
key-share lock; the write lock SQLite's unit of work begins with), so an execution
cannot be added between the count and the delete.

Where the cloud's SDK acts is part of the account (`target_of`): the AWS role it assumes
(`aws_role_arn`, with `external_id` as the STS external id) and the Azure billing scope.
Neither is a secret: credentials come from each SDK's standard chain on the server.

How an account buys (`purchase_mode`) is not an ordinary field: a new account starts in
`NEW_ACCOUNT_MODE` (a dry run: the cloud is asked, nothing is bought), `update_account`
never changes it, and only `set_mode` does, for an admin or the command line, audited as
`account.mode_changed`. `check_connection` asks the provider that serves the account's
mode whether the account can be reached.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.inputs import text_problem
from app.domain.providers import NEW_ACCOUNT_MODE, PROVIDERS, PurchaseMode
from app.domain.rbac import ADMIN, Principal
from app.models import CloudAccount, PurchaseExecution, normalize_email
from app.providers import AccountTarget, ConnectionReport, ProviderRegistry
from app.services import audit
from app.services.identity import _EMAIL_SHAPE as EMAIL_SHAPE  # the one email rule
from app.services.management import CLI_ACTOR, changes

log = logging.getLogger(__name__)

# An IAM role's ARN: any AWS partition (aws, aws-cn, aws-us-gov), no region, a 12-digit
# account, then `role/`, an optional path and the role's name (IAM's characters).
ROLE_ARN_SHAPE = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:role/(?:[\x21-\x7e]*/)?[A-Za-z0-9+=,.@_-]{1,64}"
)
ROLE_ARN_EXAMPLE = "arn:aws:iam::123456789012:role/commitment-purchaser"
MAX_ROLE_ARN = 2048
MAX_BILLING_SCOPE = 500
MODES = ", ".join(mode.value for mode in PurchaseMode)


@dataclass(frozen=True)
class AccountFields:
    """What an account is made of, checked and normalized by `account_fields`. Its mode
    is not among them: see `set_mode`."""

    name: str
    provider: str
    external_id: str
    contact_email: str | None
    aws_role_arn: str | None = None
    azure_billing_scope: str | None = None


def account_fields(
    name: str,
    provider: str,
    external_id: str,
    contact_email: str | None,
    *,
    aws_role_arn: str | None = None,
    azure_billing_scope: str | None = None,
) -> AccountFields:
    """The fields stripped (the contact email normalized; empty optional fields are
    None), or a 400 naming the first one that is unusable. A role ARN belongs to an AWS
    account and a billing scope to an Azure one."""
    clean_name, clean_id = name.strip(), external_id.strip()
    if not clean_name:
        raise DomainError(400, "account name must not be empty")
    if provider not in PROVIDERS:
        raise DomainError(400, f"provider must be one of {', '.join(PROVIDERS)}")
    if not clean_id:
        raise DomainError(400, "external id must not be empty")
    contact = normalize_email(contact_email or "") or None
    if contact is not None and not EMAIL_SHAPE.match(contact):
        raise DomainError(400, f"contact email is not an email address: {contact_email!r}")
    role = _role_arn(provider, aws_role_arn)
    scope = _billing_scope(provider, azure_billing_scope)
    return AccountFields(clean_name, provider, clean_id, contact, role, scope)


def _role_arn(provider: str, raw: str | None) -> str | None:
    role = (raw or "").strip() or None
    if role is None:
        return None
    if provider != "aws":
        raise DomainError(400, "aws role arn applies to AWS accounts only: leave it empty")
    if len(role) > MAX_ROLE_ARN or not ROLE_ARN_SHAPE.fullmatch(role):
        shown = role if len(role) <= 100 else role[:100] + "…"
        raise DomainError(
            400,
            f"aws role arn is not an IAM role's ARN: {shown!r} "
            f"(expected arn:aws:iam::<12-digit account>:role/<name>, e.g. {ROLE_ARN_EXAMPLE})",
        )
    return role


def _billing_scope(provider: str, raw: str | None) -> str | None:
    scope = (raw or "").strip() or None
    if scope is None:
        return None
    if provider != "azure":
        raise DomainError(400, "azure billing scope applies to Azure accounts only: leave it empty")
    problem = text_problem(scope)
    if problem is not None:
        raise DomainError(400, f"azure billing scope {problem}")
    if len(scope) > MAX_BILLING_SCOPE:
        raise DomainError(400, f"azure billing scope is longer than {MAX_BILLING_SCOPE} characters")
    return scope


def _snapshot(account: CloudAccount) -> dict[str, Any]:
    return {
        "name": account.name,
        "provider": account.provider,
        "external_id": account.external_id,
        "contact_email": account.contact_email,
        "aws_role_arn": account.aws_role_arn,
        "azure_billing_scope": account.azure_billing_scope,
        "purchase_mode": account.purchase_mode,
    }


def create_account(session: Session, actor: Principal, fields: AccountFields) -> CloudAccount:
    """Add an account in `NEW_ACCOUNT_MODE` (whatever asks for it: no mode is taken
    here), audited as `account.created` with its mode."""
    account = CloudAccount(**asdict(fields), purchase_mode=NEW_ACCOUNT_MODE.value)
    session.add(account)
    session.flush()
    audit.record(
        session,
        "account.created",
        actor=actor,
        details={"account_id": str(account.id), **_snapshot(account)},
    )
    return account


def _locked(session: Session, account_id: uuid.UUID) -> CloudAccount:
    account = session.get(CloudAccount, account_id, with_for_update=True, populate_existing=True)
    if account is None:
        raise DomainError(404, f"no account with id {account_id}")
    return account


def update_account(
    session: Session, actor: Principal, account_id: uuid.UUID, fields: AccountFields
) -> CloudAccount:
    """Edit an account's fields (never its mode), audited as `account.updated` with what
    changed (if anything)."""
    account = _locked(session, account_id)
    before = _snapshot(account)
    for key, value in asdict(fields).items():
        setattr(account, key, value)
    after = _snapshot(account)
    if before != after:
        audit.record(
            session,
            "account.updated",
            actor=actor,
            details={
                "account_id": str(account.id),
                "name": account.name,
                "changes": changes(before, after),
            },
        )
    return account


def parse_mode(raw: str | PurchaseMode) -> PurchaseMode:
    """The mode `raw` names, or a 400 listing the modes."""
    try:
        return PurchaseMode(str(raw).strip())
    except ValueError:
        shown = str(raw)[:40]
        raise DomainError(400, f"purchase mode must be one of {MODES}; got {shown!r}") from None


def may_set_mode(actor: Principal) -> bool:
    """Whether `actor` may change how an account buys: an admin, or the command line
    (whoever runs commands on the server owns the deployment)."""
    return actor.is_admin or actor == CLI_ACTOR


def set_mode(
    session: Session, actor: Principal, account_id: uuid.UUID, mode: str | PurchaseMode
) -> CloudAccount:
    """Switch how the account buys (`live` buys for real), audited as
    `account.mode_changed` with `from` and `to`. Only an admin or the command line may
    (403 otherwise); an unknown mode is a 400; the mode it already has changes and
    records nothing."""
    if not may_set_mode(actor):
        raise DomainError(
            403, f"not allowed to change an account's purchase mode: {ADMIN} is required"
        )
    wanted = parse_mode(mode)
    account = _locked(session, account_id)
    before = account.purchase_mode
    if before == wanted.value:
        return account
    account.purchase_mode = wanted.value
    audit.record(
        session,
        "account.mode_changed",
        actor=actor,
        details={
            "account_id": str(account.id),
            "name": account.name,
            "provider": account.provider,
            "from": before,
            "to": wanted.value,
        },
    )
    return account


def delete_account(session: Session, actor: Principal, account_id: uuid.UUID) -> CloudAccount:
    """Delete an account no execution references, audited as `account.deleted`;
    otherwise refuse with the count (409)."""
    account = _locked(session, account_id)
    referenced = session.scalar(
        select(func.count())
        .select_from(PurchaseExecution)
        .where(PurchaseExecution.cloud_account_id == account.id)
    )
    if referenced:
        noun = "execution" if referenced == 1 else "executions"
        raise DomainError(
            409,
            f"account {account.name} is referenced by {referenced} {noun}; it cannot be "
            "deleted while purchase history points at it (edit it instead)",
            account_id=str(account.id),
            executions=referenced,
        )
    snapshot = _snapshot(account)
    session.delete(account)
    audit.record(
        session,
        "account.deleted",
        actor=actor,
        details={"account_id": str(account_id), **snapshot},
    )
    return account


def target_of(account: CloudAccount) -> AccountTarget:
    """Where the cloud's SDK acts for `account`: the Azure subscription and the GCP
    project are its `external_id`; for AWS, `external_id` is the STS external id of the
    role it names, if any."""
    return AccountTarget(
        name=account.name,
        provider=account.provider,
        external_id=account.external_id,
        aws_role_arn=account.aws_role_arn or None,
        azure_subscription_id=account.external_id if account.provider == "azure" else None,
        azure_billing_scope=account.azure_billing_scope or None,
        gcp_project=account.external_id if account.provider == "gcp" else None,
    )


def find_account(session: Session, name_or_id: str) -> CloudAccount:
    """The account `name_or_id` names: a UUID is its id, anything else its name. A 404
    when none matches; a 409 listing the candidates' ids when several share the name."""
    text = name_or_id.strip()
    try:
        account_id = uuid.UUID(text)
    except ValueError:
        account_id = None
    if account_id is not None:
        account = session.get(CloudAccount, account_id)
        if account is None:
            raise DomainError(404, f"no account with id {account_id}")
        return account
    named = list(
        session.scalars(
            select(CloudAccount).where(CloudAccount.name == text).order_by(CloudAccount.id)
        )
    )
    if not named:
        raise DomainError(404, f"no account named {text[:200]!r}")
    if len(named) > 1:
        listed = ", ".join(f"{row.id} ({row.provider} {row.external_id})" for row in named)
        raise DomainError(
            409,
            f"{len(named)} accounts are named {text[:200]!r}: name the one you mean by its id "
            f"({listed})",
        )
    return named[0]


def list_accounts(session: Session) -> list[CloudAccount]:
    """Every account, by name (then id)."""
    return list(session.scalars(select(CloudAccount).order_by(CloudAccount.name, CloudAccount.id)))


def check_connection(registry: ProviderRegistry, account: CloudAccount) -> ConnectionReport:
    """Ask the provider that serves the account in its mode (the simulator for
    `simulate`, the cloud's client otherwise) whether the account can be reached. A
    provider the registry lacks, or one whose check raises, is a failed report saying
    so, never an exception."""
    mode = account.mode
    provider = registry.get(account.provider, mode)
    if provider is None:
        return ConnectionReport(
            ok=False,
            message=(
                f"no {account.provider} client serves accounts in {mode.value} mode in this "
                "deployment: switch the account to simulate, or install the provider's client"
            ),
        )
    try:
        return provider.check(target_of(account))
    except Exception as exc:  # a provider's bug or an SDK error it let through
        log.warning(
            "connection check of account %s (%s, %s) raised",
            account.id,
            account.provider,
            mode.value,
            exc_info=True,
        )
        detail = str(exc)[:300]
        return ConnectionReport(
            ok=False,
            message=f"the {account.provider} check failed: {type(exc).__name__}: {detail}",
        )
