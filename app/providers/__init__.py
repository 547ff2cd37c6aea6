"""The provider interface the executor buys through, and the registry of providers.

A provider is one cloud's client (or the simulator standing in for every cloud). For an
item of a service it can:

- `quote(item, account)`: find the offering the item describes and its price;
- `rehearse(item, account)`: what a dry run answers: the quote, plus whatever check the
  cloud offers without buying (EC2's `DryRun`);
- `purchase(key, item, account, quote)`: buy the quoted offering, carrying the ledger's
  idempotency key as the API allows (a client token, a caller-chosen id, a request id,
  or a tag on what was bought), and answer the provider's purchase id;
- `find(key, item, account)`: look the key up at the provider: the purchase id of what
  was bought under it, or None when nothing was;
- `check(account)`: the cheapest read that proves the credentials work;
- `recommendations(account)`: the cloud's own purchase recommendations for the account,
  as recommendation items ready to create (see `recommended_item`), each with its
  `source` and the provider's estimated `monthly_savings`. A read: nothing is bought.

Each raises `PurchaseFailed` when it bought nothing (the message says why, in words an
operator can act on), `purchase` raises `OutcomeUnknown` when it cannot tell whether it
bought, and `find` raises `LookupFailed` when it cannot answer. A provider
retries throttling itself, with backoff, before anything surfaces.

Redrive safety (a retry's check after "already retried") asks `can_find(service)`: a
claim in the ledger whose outcome was lost (a worker killed between the provider's
answer and the commit) is resolved by asking the provider, so only a provider that can
look the key up for that service may re-drive it. A provider the registry does not know
is unsafe.

The registry holds the simulator (accounts in `simulate` mode, and executions without an
account) and the clouds' real clients (accounts in `dry_run` and `live`). The embedded
default registry has both; a test hands `create_app` its own.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from flask import current_app

from app.domain.providers import PROVIDERS, PurchaseMode

# Names a caller-chosen id at a cloud is derived in, so that one key always names one id.
_KEY_NAMESPACE = uuid.UUID("5d3c8f0e-6a4b-4f51-9c7e-2b1d0a9e8f43")


def key_uuid(key: str) -> uuid.UUID:
    """The UUID one idempotency key always maps to (a GCP request id, an Azure order id)."""
    return uuid.uuid5(_KEY_NAMESPACE, key)


def key_name(key: str, prefix: str = "ccp-", length: int = 40) -> str:
    """An id one key always maps to, in the alphabet clouds accept for names they let the
    caller choose: lower-case letters, digits and hyphens, starting with a letter."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{prefix}{digest}"[:length]


class ProviderError(Exception):
    """A provider's answer that is not a purchase; the message is for an operator."""


class PurchaseFailed(ProviderError):
    """The provider bought nothing; the message says why."""


class LookupFailed(ProviderError):
    """The provider could not say whether a key was bought: so nothing may be bought."""


class OutcomeUnknown(Exception):
    """A purchase request went out and the provider did not say what became of it (an
    operation still running at the deadline, a connection broken after the request).
    Deliberately not a `ProviderError`: the ledger's claim stays, so that a retry asks
    the provider (`find`) instead of assuming nothing was bought."""


@dataclass(frozen=True)
class AccountTarget:
    """The account a provider call acts in: the cloud's own coordinates, never a secret.
    Credentials come from each SDK's standard chain."""

    name: str
    provider: str
    external_id: str = ""
    aws_role_arn: str | None = None
    azure_subscription_id: str | None = None
    azure_billing_scope: str | None = None
    gcp_project: str | None = None


@dataclass(frozen=True)
class Quote:
    """The offering an item describes, and what it costs for the item's whole count.

    `upfront` is paid once, `recurring_monthly` every month of the term; `term_total` is
    both over the term. A provider whose API quotes no price leaves them None.
    """

    offering_id: str
    currency: str = "USD"
    upfront: Decimal | None = None
    recurring_monthly: Decimal | None = None
    term_total: Decimal | None = None
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON for an item's `quote` field: money as decimal strings."""
        money = {
            "upfront": self.upfront,
            "recurring_monthly": self.recurring_monthly,
            "term_total": self.term_total,
        }
        return {
            "offering_id": self.offering_id,
            "currency": self.currency,
            **{name: (str(value) if value is not None else None) for name, value in money.items()},
            "description": self.description,
        }


_CENT = Decimal("0.01")


def _money_text(amount: Decimal | float | int | str | None) -> str:
    """An amount as a two-place decimal string; missing, unreadable or negative is 0.00."""
    try:
        value = Decimal(str(amount if amount is not None else 0))
    except ArithmeticError:
        return "0.00"
    if not value.is_finite() or value < 0:
        return "0.00"
    return str(value.quantize(_CENT))


def recommended_item(
    provider: str,
    service: str,
    *,
    source: str,
    account_id: str,
    region: str,
    resource_type: str,
    count: int,
    term_years: int,
    payment_option: str,
    upfront_cost: Any,
    monthly_cost: Any,
    monthly_savings: Any,
    currency: str = "USD",
    engine: str = "",
    **service_fields: Any,
) -> dict[str, Any]:
    """One recommendation from a cloud (or the simulator) as an item a purchase can be
    created from: SPEC's item fields, money as two-place decimal strings (what the item
    commits to: `upfront_cost` once and `monthly_cost` every month of the term, for the
    whole `count`; `monthly_savings` is the provider's estimate), selected, and where it
    came from (`source`). `service_fields` are the service's own (`platform`, `sku`,
    `resources` ...); those given as None are left out."""
    return {
        "provider": provider,
        "service": service,
        "region": region,
        "resource_type": resource_type,
        "engine": engine,
        "account_id": account_id,
        "count": count,
        "term_years": term_years,
        "payment_option": payment_option,
        "upfront_cost": _money_text(upfront_cost),
        "monthly_cost": _money_text(monthly_cost),
        "monthly_savings": _money_text(monthly_savings),
        "currency": currency or "USD",
        **{name: value for name, value in service_fields.items() if value is not None},
        "selected": True,
        "source": source,
    }


@dataclass(frozen=True)
class ConnectionReport:
    """What `check` found: whether the account can be reached, and if not, what to fix
    (for AWS, the IAM actions the purchasing role needs)."""

    ok: bool
    message: str
    missing: tuple[str, ...] = ()


class PurchaseProvider(Protocol):
    # Read-only: a provider is asked what it is, never reconfigured through the registry.
    @property
    def name(self) -> str: ...

    def can_find(self, service: str) -> bool:
        """Whether `find` can look a key up for `service` (so a lost outcome is safe)."""
        ...

    def quote(self, item: Mapping[str, Any], account: AccountTarget) -> Quote: ...

    def rehearse(self, item: Mapping[str, Any], account: AccountTarget) -> Quote: ...

    def purchase(
        self, key: str, item: Mapping[str, Any], account: AccountTarget, quote: Quote
    ) -> str: ...

    def find(
        self,
        key: str,
        item: Mapping[str, Any],
        account: AccountTarget,
        *,
        since: datetime | None = None,
    ) -> str | None:
        """What was bought under `key`, or None; `since` is when the key was claimed (no
        purchase under it is older), for a provider that must recognise a purchase it
        could not label."""
        ...

    def check(self, account: AccountTarget) -> ConnectionReport: ...

    def recommendations(self, account: AccountTarget) -> list[dict[str, Any]]:
        """The cloud's purchase recommendations for `account`, as items; `ProviderError`
        (in an operator's words) when they cannot be read."""
        ...


@dataclass(frozen=True)
class ProviderRegistry:
    """The simulator for each provider, and the real client for each cloud."""

    simulated: Mapping[str, PurchaseProvider] = field(default_factory=dict)
    clouds: Mapping[str, PurchaseProvider] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        simulated: Iterable[PurchaseProvider],
        clouds: Iterable[PurchaseProvider] = (),
    ) -> ProviderRegistry:
        return cls(
            {provider.name: provider for provider in simulated},
            {provider.name: provider for provider in clouds},
        )

    def get(self, name: str, mode: PurchaseMode = PurchaseMode.SIMULATE) -> PurchaseProvider | None:
        """The provider that serves `name` for an account in `mode`."""
        providers = self.simulated if mode is PurchaseMode.SIMULATE else self.clouds
        return providers.get(name)

    def redrivable(self, mode: PurchaseMode, provider: str, service: str) -> bool:
        """Whether a lost outcome of `provider`/`service` in `mode` can be resolved by
        asking the provider. Unknown providers are not. An empty `service` asks about
        the provider itself (an execution's account): whether this registry knows it."""
        client = self.get(provider, mode)
        if client is None:
            return False
        return not service or client.can_find(service)


def default_registry() -> ProviderRegistry:
    from app.providers.aws import AwsProvider
    from app.providers.azure import AzureProvider
    from app.providers.gcp import GcpProvider
    from app.providers.simulator import SimulatedProvider

    return ProviderRegistry.of(
        (SimulatedProvider(name) for name in PROVIDERS),
        (AwsProvider(), AzureProvider(), GcpProvider()),
    )


def current_registry() -> ProviderRegistry:
    """The registry of the app in the current context."""
    return current_app.extensions["providers"]
