"""Creating a purchase: from the JSON API, the command line and the panel's New purchase
page, each through `create_purchase`, and previewing one (`preview_purchase`) with the
same checks and nothing written.

The checks, in order, each refusal audited (`execution.create_refused`):

1. 400: the request's shape (an account id, a list of 1 to `MAX_CREATE_ITEMS` items, an
   optional plan, step and `scheduled_for`);
2. 403: may this user create purchases at all (`create-any`, `create-own`);
3. 404: the account, the plan;
4. 403: `create-own` covers only the accounts the user's spend limits name;
5. 400: each item, naming the item and the field (`app.domain.items.creation_problem`);
6. 409: an item a suppression hides (an execution is buying the same thing), with why;
7. 403: the creator's spend limits (`app.services.spending`).

A created row is `pending`, created by the user, with its suppressions and its approval
email owed in the same transaction, exactly as a retry's successor: one nobody may
approve fails at once (`no approver for this account`). Every check reads a constant
number of queries, whatever the number of items.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import fresh_read, new_uuid, unit_of_work, utcnow
from app.domain.approvals import NO_APPROVER
from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid, text_problem
from app.domain.items import MAX_CREATE_ITEMS, creation_problem
from app.domain.purchasing import is_selected, item_provider
from app.domain.rbac import Principal, create_refusal
from app.domain.retry import fresh_recommendations, scope_of
from app.domain.spending import Spend, item_commitment, names_account, totals_of
from app.models import CloudAccount, PurchaseExecution, PurchasePlan
from app.providers import ProviderError, current_registry
from app.services import audit, notifications, spending, transitions
from app.services.accounts import target_of
from app.services.approvals import current_policy as approvals_policy
from app.services.approvers import Approvers
from app.services.recommendations_import import active_suppressions
from app.services.successors import insert_suppressions

MAX_STEP = 10_000
# What the row's cost columns hold (12 digits, 2 after the point).
MAX_TOTAL = Decimal("9999999999.99")
# How far ahead a purchase may be scheduled, and how late a time may still be taken
# (a clock a little behind).
MAX_AHEAD = timedelta(days=366)
LATE_BY = timedelta(minutes=5)
FIELDS = frozenset(
    {"cloud_account_id", "recommendations", "plan_id", "step_number", "scheduled_for"}
)
# The item fields a file's CSV columns are read as: numbers, booleans, JSON.
_NUMBERS = ("count", "term_years")
_AMOUNTS = ("upfront_cost", "monthly_cost", "monthly_savings", "max_price", "hourly_commitment")
_FLAGS = ("selected", "multi_az")
_JSON_COLUMNS = ("resources",)


@dataclass(frozen=True)
class NewPurchase:
    """A create request, checked."""

    account: CloudAccount
    recommendations: list[dict[str, Any]]
    plan: PurchasePlan | None
    step_number: int
    scheduled_for: datetime | None


def create_purchase(
    principal: Principal | None, body: Any, *, via: str = "api"
) -> PurchaseExecution:
    """Check and create a pending purchase; `principal` None is the operator at the
    shell (the CLI without `--as`), whom no permission or limit binds and who owns no
    row. A refusal is audited and raised, having written nothing."""
    actor = principal or _SHELL
    try:
        with unit_of_work() as session:
            now = utcnow()
            new = check(session, principal, body, now=now)
            execution = _insert(session, principal, new, now=now, via=via)
    except DomainError as refusal:
        audit.record_refusal(
            "execution.create_refused", refusal, actor=actor, execution_id=None, via=via
        )
        raise
    return execution


def preview_purchase(principal: Principal | None, body: Any) -> dict[str, Any]:
    """What `create_purchase` would create, with each item's quote from the provider
    that would buy it and the totals; writes nothing. Refused as a create would be."""
    with fresh_read() as session:
        new = check(session, principal, body, now=utcnow())
        account = new.account
        provider_items = [
            (item_provider(item, account.provider), item) for item in new.recommendations
        ]
    registry = current_registry()
    target = target_of(account)
    items = []
    for index, (name, item) in enumerate(provider_items):
        quote: dict[str, Any] | None = None
        quote_error: str | None = None
        if is_selected(item):
            provider = registry.get(name, account.mode)
            try:
                if provider is None:
                    raise ProviderError(f"no purchasing provider for {name or '(none)'!r}")
                quote = provider.quote(item, target).as_dict()
            except ProviderError as failure:
                quote_error = str(failure) or type(failure).__name__
        items.append(
            {
                "index": index,
                "selected": is_selected(item),
                "commitment": f"{item_commitment(item):.2f}",
                "quote": quote,
                "quote_error": quote_error,
                "item": item,
            }
        )
    return {
        "preview": True,
        "account": {
            "id": str(account.id),
            "name": account.name,
            "provider": account.provider,
            "mode": account.purchase_mode,
        },
        "plan_id": str(new.plan.id) if new.plan else None,
        "step_number": new.step_number,
        "scheduled_for": new.scheduled_for.isoformat() if new.scheduled_for else None,
        "items": items,
        "totals": totals_of(new.recommendations).as_dict(),
    }


_SHELL = Principal(None, "cli", frozenset())


def check(
    session: Session, principal: Principal | None, body: Any, *, now: datetime
) -> NewPurchase:
    """Every check of the module's docstring, in order; raises the first refusal."""
    if not isinstance(body, Mapping):
        raise DomainError(400, "expected a JSON object")
    unknown = sorted(str(key) for key in body if key not in FIELDS)
    if unknown:
        raise DomainError(400, f"unknown field {unknown[0][:100]!r}", field=unknown[0][:100])
    account_id = _uuid(body.get("cloud_account_id"), "cloud_account_id", required=True)
    items = _items(body.get("recommendations"))
    plan_id = _uuid(body.get("plan_id"), "plan_id", required=False)
    step = _step(body.get("step_number"))
    scheduled_for = _moment(body.get("scheduled_for"), now=now)
    if principal is not None:
        denied = create_refusal(principal, account_is_theirs=True)
        if denied is not None:
            raise denied
    assert account_id is not None
    account = session.get(CloudAccount, account_id)
    if account is None:
        raise DomainError(404, f"no cloud account {account_id}")
    plan = session.get(PurchasePlan, plan_id) if plan_id is not None else None
    if plan_id is not None and plan is None:
        raise DomainError(404, f"no plan {plan_id}")
    limits = spending.binding(session, (principal.user_id if principal else None,), now=now)
    if principal is not None:
        denied = create_refusal(
            principal, account_is_theirs=names_account(limits.limits, str(account.id))
        )
        if denied is not None:
            raise denied
    problem = creation_problem(items, account.mode, account.provider)
    if problem is not None:
        index, message = problem
        raise DomainError(400, f"item {index}: {message}", item=index)
    _not_suppressed(session, items, now=now)
    totals = totals_of(items)
    if max(totals.upfront, totals.yearly_savings, totals.term_total) > MAX_TOTAL:
        raise DomainError(
            400,
            f"the purchase's totals exceed {MAX_TOTAL:,}: split it into smaller purchases",
            field="recommendations",
        )
    over = limits.refusal(Spend(str(account.id), account.provider, items))
    if over is not None:
        raise over
    return NewPurchase(account, fresh_recommendations(items), plan, step, scheduled_for)


def _uuid(raw: Any, field: str, *, required: bool) -> uuid.UUID | None:
    if raw is None and not required:
        return None
    if not isinstance(raw, str):
        raise DomainError(400, f'"{field}" must be an id (a UUID)', field=field)
    return parse_uuid(raw, field.replace("_", " "))


def _items(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise DomainError(
            400, '"recommendations" must be a list of 1 or more items', field="recommendations"
        )
    if len(raw) > MAX_CREATE_ITEMS:
        raise DomainError(
            400,
            f'"recommendations" holds {len(raw):,} items: at most {MAX_CREATE_ITEMS:,} in one '
            "purchase",
            field="recommendations",
        )
    return raw


def _step(raw: Any) -> int:
    if raw is None:
        return 1
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_STEP:
        raise DomainError(
            400, f'"step_number" must be a whole number from 1 to {MAX_STEP}', field="step_number"
        )
    return raw


def _moment(raw: Any, *, now: datetime) -> datetime | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > 64 or text_problem(raw) is not None:
        raise DomainError(400, '"scheduled_for" must be a time in ISO 8601', field="scheduled_for")
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise DomainError(
            400,
            f'"scheduled_for" is not a time in ISO 8601 (e.g. 2027-01-31T09:00:00Z): {raw!r}',
            field="scheduled_for",
        ) from None
    if moment.tzinfo is None:
        raise DomainError(
            400,
            '"scheduled_for" must name its time zone (e.g. a trailing Z for UTC)',
            field="scheduled_for",
        )
    if moment < now - LATE_BY:
        raise DomainError(400, '"scheduled_for" is in the past', field="scheduled_for")
    if moment > now + MAX_AHEAD:
        raise DomainError(400, '"scheduled_for" is more than a year ahead', field="scheduled_for")
    return moment


def _not_suppressed(session: Session, items: list[dict[str, Any]], *, now: datetime) -> None:
    """409 for the first selected item an unexpired suppression covers."""
    scopes = [(index, scope_of(item)) for index, item in enumerate(items) if is_selected(item)]
    active = active_suppressions(session, (scope.account_id for _, scope in scopes), now)
    for index, scope in scopes:
        found = active.get(scope)
        if found is not None:
            raise DomainError(
                409,
                f"item {index} is suppressed: execution {found.execution_id} is buying "
                f"{found.suppressed_count} of {scope.service} {scope.resource_type} in "
                f"{scope.region or 'its region'} for account {scope.account_id or '(none)'}, "
                f"until {found.expires_at:%Y-%m-%d %H:%M} UTC; nobody buys the same thing twice "
                "while a purchase is in flight",
                item=index,
                suppressed_by=str(found.execution_id),
                suppressed_until=found.expires_at.isoformat(),
            )


def _insert(
    session: Session, principal: Principal | None, new: NewPurchase, *, now: datetime, via: str
) -> PurchaseExecution:
    totals = totals_of(new.recommendations)
    execution = PurchaseExecution(
        execution_id=new_uuid(),
        status="pending",
        created_by_user_id=principal.user_id if principal else None,
        plan_id=new.plan.id if new.plan else None,
        step_number=new.step_number,
        cloud_account_id=new.account.id,
        recommendations=new.recommendations,
        total_upfront_cost=totals.upfront,
        estimated_savings=totals.yearly_savings,
        scheduled_for=new.scheduled_for,
        created_at=now,
        updated_at=now,
    )
    session.add(execution)
    session.flush()
    insert_suppressions(
        session,
        [{"execution_id": execution.execution_id, "recommendations": new.recommendations}],
        expires_at=now + timedelta(days=get_settings().grace_period_days),
    )
    audit.record(
        session,
        "execution.created",
        actor=principal or _SHELL,
        execution_id=execution.execution_id,
        details={
            "via": via,
            "items": len(new.recommendations),
            "commitment": f"{totals.term_total:.2f}",
            "scheduled_for": new.scheduled_for.isoformat() if new.scheduled_for else None,
        },
    )
    if Approvers(session).recipients(execution, approvals_policy()):
        notifications.owe_approval_email(session, execution.execution_id, now=now)
    else:
        transitions.fail_pending(session, [execution.execution_id], NO_APPROVER, now=now)
    session.refresh(execution)
    return execution


# Files -------------------------------------------------------------------------------


def parse_items_text(text: str, *, filename: str | None = None) -> list[dict[str, Any]]:
    """Items from a file's text: JSON (a list of items, or an object with
    `recommendations`) when it starts with `[` or `{` or the name ends in `.json`, else
    CSV with a header row (numbers, amounts and flags read as such, `resources` as
    JSON). A 400 naming the line or the problem."""
    problem = text_problem(text.replace("\n", "").replace("\r", "").replace("\t", ""))
    if problem is not None:
        raise DomainError(400, f"the items file {problem}")
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")) or (filename or "").lower().endswith(".json"):
        try:
            data = json.loads(stripped)
        except ValueError as error:
            raise DomainError(400, f"the items file is not valid JSON: {error}") from None
        if isinstance(data, dict) and "recommendations" in data:
            data = data["recommendations"]
        if not isinstance(data, list):
            raise DomainError(400, "the items file must hold a JSON list of items")
        return data
    return _csv_items(text)


def _csv_items(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise DomainError(400, "the items file is empty: expected JSON, or CSV with a header row")
    items = []
    for line, row in enumerate(reader, start=2):
        if None in row:
            raise DomainError(400, f"line {line}: more values than the header has columns")
        items.append(
            {
                name.strip(): _csv_value(name.strip(), value, line)
                for name, value in row.items()
                if name and value not in (None, "")
            }
        )
    return items


def _csv_value(name: str, value: str, line: int) -> Any:
    value = value.strip()
    try:
        if name in _NUMBERS:
            return int(value)
        if name in _AMOUNTS:
            return value
        if name in _FLAGS:
            lowered = value.lower()
            if lowered not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(value)
            return lowered in ("true", "yes", "1")
        if name in _JSON_COLUMNS:
            return json.loads(value)
    except ValueError:
        raise DomainError(
            400, f"line {line}: column {name!r} cannot be read from {value[:100]!r}"
        ) from None
    return value
