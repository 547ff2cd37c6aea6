"""Retrying a failed or partially completed execution: may it be retried now, and if
not, why.

Pure rules, no database: the service (`app.services.retry`) loads the rows, asks
`retry_refusal`, and performs the writes this module describes (the successor's
recommendations and its suppressions). The panel's action cell asks the same function.

A partially completed row is retried like a failed one, to finish what it did not buy:
its successor keeps every item at its index (the ledger's key is the lineage root and
the item's index), and an item the lineage has already bought is carried over as bought
and not selected (`successor_recommendations`), so it is shown with its purchase id and
never bought, counted or suppressed again.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from app.domain.approvals import NO_APPROVER
from app.domain.errors import DomainError
from app.domain.items import recommendations_problem
from app.domain.providers import PROVIDERS, PurchaseMode, normalize_provider, normalize_service
from app.domain.purchasing import item_provider
from app.domain.rbac import Action, Principal, refusal
from app.domain.recommendations import OUTCOME_FIELDS, RECORDED_FIELDS, items_of
from app.domain.statuses import Status

# Failures that will recur until an operator fixes their cause: retrying is pointless.
OPS_HINTS: tuple[tuple[str, str], ...] = (
    ("FROM_EMAIL not configured", "Set FROM_EMAIL, then retry"),
    ("SES sandbox", "Move SES out of the sandbox or verify the recipient, then retry"),
    ("SES domain not verified", "Verify the sending domain, then retry"),
    ("IAM denied", "Grant the purchasing role the missing IAM permission, then retry"),
    (NO_APPROVER, "Set the account's contact email (or give someone approve-any), then retry"),
)
MALFORMED_HINT = "Fix the row's recommendations as the failure reason says, then retry"

# The statuses a retry may start from: a failure, or a purchase that bought only part of
# what it was asked to. Either stays as it is, as history; the successor does the rest.
RETRYABLE = frozenset({Status.FAILED, Status.PARTIALLY_COMPLETED})


class RequestState(StrEnum):
    """The life of a retry request: queued by the web layer, settled by the worker."""

    QUEUED = "queued"
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"
    FAILED = "failed"


class RetryableRow(Protocol):
    """What the rules read from an execution (a `PurchaseExecution` satisfies it)."""

    status: str
    created_by_user_id: uuid.UUID | None
    retry_execution_id: uuid.UUID | None
    retry_attempt_n: int
    error: str | None
    recommendations: Any  # a list of objects, unless the row was inserted malformed

    @property
    def account_provider(self) -> str | None: ...

    @property
    def account_mode(self) -> PurchaseMode: ...


# Whether a lost outcome of (mode, provider, service) can be resolved by asking the
# provider: the provider registry's answer.
Redrivable = Callable[[PurchaseMode, str, str], bool]


def _known_provider(mode: PurchaseMode, provider: str, service: str) -> bool:
    return provider in PROVIDERS


@dataclass(frozen=True)
class RetryPolicy:
    """The configurable part of the rules: threshold, extra hints, and which purchases
    can be re-driven: those whose provider can look the idempotency key up for the
    item's service in the account's mode (`redrivable`, the provider registry's answer),
    less the providers the deployment names unsafe."""

    threshold: int = 5
    extra_hints: tuple[tuple[str, str], ...] = ()
    redrivable: Redrivable = _known_provider
    redrive_unsafe_providers: frozenset[str] = field(default_factory=frozenset)

    def ops_hint(self, error: str | None) -> str | None:
        """The hint for a persistent failure: a case-insensitive substring match."""
        if not error:
            return None
        lowered = error.lower()
        for substring, hint in (*OPS_HINTS, *self.extra_hints):
            if substring.lower() in lowered:
                return hint
        return None

    def unsafe_provider(self, row: RetryableRow) -> str | None:
        """The first provider of the row (its account's, or any item's) that cannot
        re-drive a purchase safely, for some item's service in the account's mode. Fail
        closed: a provider nobody declared (unknown, misspelt, or missing: "") is unsafe."""
        mode = row.account_mode
        for provider, service in sorted(purchases_of(row)):
            if provider in self.redrive_unsafe_providers or not self.redrivable(
                mode, provider, service
            ):
                return provider
        return None


def purchases_of(row: RetryableRow) -> set[tuple[str, str]]:
    """Every (provider, service) a re-drive would buy from: each item's provider (its
    own, else the account's) and service, and the account's provider (for any service)."""
    purchases = {
        (item_provider(item, row.account_provider), normalize_service(item.get("service")))
        for item in items_of(row.recommendations)
    }
    if normalize_provider(row.account_provider):
        purchases.add((normalize_provider(row.account_provider), ""))
    return purchases


def redrive_hint(provider: str) -> str:
    if not provider:
        return (
            "an item names no provider and its execution has no account: fix the "
            "recommendations, then start a new purchase"
        )
    return (
        f"{provider} purchases are not known to be idempotent in this deployment: check in the "
        f"{provider} console what was bought, then start a new purchase for the rest"
    )


def retry_refusal(
    principal: Principal, row: RetryableRow, policy: RetryPolicy, *, force: bool
) -> DomainError | None:
    """Why `principal` may not retry `row` now, or None if they may.

    The checks run in the documented order (docs/api.md), which is part of the
    contract: authorization comes before anything that reveals the row's state or
    lineage. `force` overrides
    the threshold and nothing else.
    """
    denied = refusal(principal, Action.RETRY, row.created_by_user_id)
    if denied is not None:
        return denied
    if row.status not in RETRYABLE:
        return DomainError(
            409,
            "only failed or partially completed executions can be retried; "
            f"this one is {row.status}",
        )
    if row.retry_execution_id is not None:
        return DomainError(
            409,
            "this execution has already been retried",
            retry_execution_id=str(row.retry_execution_id),
        )
    provider = policy.unsafe_provider(row)
    if provider is not None:
        return DomainError(
            409,
            f"{provider or 'an item without a provider'} cannot re-drive a purchase safely; "
            "force does not override this",
            ops_hint=redrive_hint(provider),
            redrive_unsafe=True,
        )
    malformed = recommendations_problem(row.recommendations, row.account_mode, row.account_provider)
    if malformed is not None:
        return DomainError(
            409,
            "this execution cannot be retried until an operator fixes it",
            ops_hint=MALFORMED_HINT,
            failure_reason=malformed,
        )
    hint = policy.ops_hint(row.error)
    if hint is not None:
        return DomainError(
            409,
            "this failure will recur until an operator fixes its cause",
            ops_hint=hint,
            failure_reason=row.error,
        )
    if row.retry_attempt_n >= policy.threshold and not force:
        return DomainError(
            409,
            f"retried {row.retry_attempt_n} times already (threshold {policy.threshold}): "
            "confirm the override to retry again",
            retry_attempt_n=row.retry_attempt_n,
            threshold=policy.threshold,
        )
    return None


def persistent_hint(row: RetryableRow, policy: RetryPolicy) -> str | None:
    """The ops hint a retryable row (failed or partially completed) shows in place of
    Retry, whoever looks at it."""
    if row.status not in RETRYABLE:
        return None
    provider = policy.unsafe_provider(row)
    if provider is not None:
        return redrive_hint(provider)
    if (
        recommendations_problem(row.recommendations, row.account_mode, row.account_provider)
        is not None
    ):
        return MALFORMED_HINT
    return policy.ops_hint(row.error)


def preview_reason(refusal: DomainError) -> str:
    """What a refusal says once for all the rows it refuses alike (a bulk retry's
    preview groups them by it): the refusal's own message without what differs from one
    row to the next (the id, the amount, the attempt count)."""
    details = refusal.details
    if refusal.status == 400:
        return "not an execution id (a UUID)"
    if refusal.status == 404:
        return "no such execution"
    if "limit" in details:
        return f'over the spend limit of group "{details.get("group")}": {details["limit"]}'
    if "threshold" in details:
        return (
            f"retried {details['threshold']} times or more (the threshold): "
            "confirm the override to retry again"
        )
    if "failure_reason" in details and "ops_hint" in details:
        return f"{refusal.message}: {details['ops_hint']}"
    return refusal.message


def shows_the_row(refusal: DomainError) -> bool:
    """Whether a refusal came after the requester's authorization passed, so that what
    the row holds (its money, in a preview) may be shown: not for a malformed or unknown
    id, nor a row they may not retry (403), except the 403 of their own spend limits,
    which is checked last."""
    if refusal.status in (400, 404):
        return False
    return refusal.status != 403 or "limit" in refusal.details


def fresh_recommendations(recommendations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A deep copy with the per-item outcome cleared: nothing the executor later writes
    into the successor can reach the predecessor's history."""
    fresh = copy.deepcopy(recommendations)
    for item in fresh:
        item.update(OUTCOME_FIELDS)
        for name in RECORDED_FIELDS:
            item.pop(name, None)
    return fresh


def successor_recommendations(
    recommendations: list[dict[str, Any]], bought: Mapping[int, str]
) -> list[dict[str, Any]]:
    """A successor's items: every item at its own index (the ledger's key is the lineage
    root and the index), fresh (`fresh_recommendations`), except those the lineage has
    already bought (`bought`: index → the ledger's purchase id), which are carried as
    bought and not selected, so the executor skips them and the money counts only what
    the successor will buy."""
    items = fresh_recommendations(recommendations)
    for index, purchase_id in bought.items():
        if 0 <= index < len(items):
            items[index].update(selected=False, purchased=True, purchase_id=purchase_id, error=None)
    return items


def to_buy(recommendations: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The items a successor will buy: those not already bought by its lineage."""
    return [item for item in items_of(recommendations) if item.get("purchased") is not True]


@dataclass(frozen=True, order=True)
class SuppressionScope:
    """What one suppression row hides: one kind of commitment in one place."""

    account_id: str
    provider: str
    service: str
    region: str
    resource_type: str
    engine: str


def suppression_counts(recommendations: Iterable[Mapping[str, Any]]) -> dict[SuppressionScope, int]:
    """One entry per scope with the counts summed; items with `count <= 0` are skipped."""
    counts: dict[SuppressionScope, int] = {}
    for item in items_of(recommendations):
        count = _whole_number(item.get("count"))
        if count <= 0:
            continue
        scope = scope_of(item)
        counts[scope] = counts.get(scope, 0) + count
    return counts


def scope_of(item: Mapping[str, Any]) -> SuppressionScope:
    """What a suppression of `item` covers (and what one must cover to hide it)."""
    return SuppressionScope(
        account_id=str(item.get("account_id") or ""),
        provider=normalize_provider(item.get("provider")),
        service=str(item.get("service") or ""),
        region=str(item.get("region") or ""),
        resource_type=str(item.get("resource_type") or ""),
        engine=str(item.get("engine") or ""),
    )


def _whole_number(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
