"""The provider interface the executor buys through, and the registry of providers.

A provider buys one recommendation item under an idempotency key and answers the
provider's purchase id, or raises `PurchaseFailed` when it bought nothing. It declares
whether its purchases are idempotent under that key: asked twice with one key, it buys
once and answers the same id. Only such providers can re-drive a purchase whose outcome
was lost (a worker died mid-purchase); redrive safety (a retry's check after "already
retried", docs/api.md) asks the registry, and a provider the registry does not know is
unsafe.

The embedded default registry is the simulator for every provider. A deployment with
real cloud clients builds its own `ProviderRegistry` and hands it to `create_app`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import current_app

from app.domain.providers import PROVIDERS


class PurchaseFailed(Exception):
    """The provider refused the purchase and bought nothing; the message says why."""


class PurchaseProvider(Protocol):
    # Read-only: a provider is asked what it is, never reconfigured through the registry
    # (and a frozen dataclass, like the simulator, satisfies only a read-only member).
    @property
    def name(self) -> str: ...
    @property
    def idempotent(self) -> bool: ...

    def purchase(self, key: str, item: Mapping[str, Any]) -> str:
        """Buy `item` under `key`; the provider's purchase id, or `PurchaseFailed`."""
        ...


@dataclass(frozen=True)
class ProviderRegistry:
    providers: Mapping[str, PurchaseProvider] = field(default_factory=dict)

    @classmethod
    def of(cls, providers: Iterable[PurchaseProvider]) -> ProviderRegistry:
        return cls({provider.name: provider for provider in providers})

    def get(self, name: str) -> PurchaseProvider | None:
        return self.providers.get(name)

    def redrivable(self) -> frozenset[str]:
        """The providers whose purchases are idempotent under the ledger key."""
        return frozenset(name for name, p in self.providers.items() if p.idempotent)


def default_registry() -> ProviderRegistry:
    from app.providers.simulator import SimulatedProvider

    return ProviderRegistry.of(SimulatedProvider(name) for name in PROVIDERS)


def current_registry() -> ProviderRegistry:
    """The registry of the app in the current context."""
    return current_app.extensions["providers"]
