"""The embedded default provider: buys nothing, answers like a cloud API would.

Its purchase id is derived from the idempotency key, so it is idempotent as a real
provider's client token makes a purchase idempotent: asked twice under one key, it
answers the same purchase. That is also why `find` can say "not bought" for every key
without risk: buying again under the key answers the first purchase. Its quote is the
item's own `upfront_cost`, in USD.

Two knobs on an item drive it for demos and tests: `simulate_error` (the purchase fails
with that text) and `simulate_delay_seconds` (the purchase takes that long, at most a
minute: time to stop a worker mid-purchase).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.providers import AccountTarget, ConnectionReport, PurchaseFailed, Quote

MAX_DELAY_SECONDS = 60.0


@dataclass(frozen=True)
class SimulatedProvider:
    name: str
    # Whether a lost outcome may be re-driven: a test can make one provider unsafe.
    findable: bool = True

    def can_find(self, service: str) -> bool:
        return self.findable

    def quote(self, item: Mapping[str, Any], account: AccountTarget | None = None) -> Quote:
        upfront = _money(item.get("upfront_cost"))
        described = "/".join(str(item.get(field) or "-") for field in _OFFERING_FIELDS)
        digest = hashlib.sha256(f"{self.name}:{described}".encode()).hexdigest()[:12]
        return Quote(
            offering_id=f"sim-offering-{digest}",
            currency="USD",
            upfront=upfront,
            recurring_monthly=Decimal("0.00"),
            term_total=upfront,
            description=f"simulated {described}",
        )

    def rehearse(self, item: Mapping[str, Any], account: AccountTarget | None = None) -> Quote:
        if item.get("simulate_error"):
            raise PurchaseFailed(str(item["simulate_error"]))
        return self.quote(item, account)

    def purchase(
        self,
        key: str,
        item: Mapping[str, Any],
        account: AccountTarget | None = None,
        quote: Quote | None = None,
    ) -> str:
        delay = _seconds(item.get("simulate_delay_seconds"))
        if delay:
            time.sleep(delay)
        if item.get("simulate_error"):
            raise PurchaseFailed(str(item["simulate_error"]))
        digest = hashlib.sha256(f"{self.name}:{key}".encode()).hexdigest()[:20]
        return f"sim-{self.name}-{digest}"

    def find(
        self,
        key: str,
        item: Mapping[str, Any],
        account: AccountTarget | None = None,
        *,
        since: datetime | None = None,
    ) -> str | None:
        return None

    def check(self, account: AccountTarget) -> ConnectionReport:
        return ConnectionReport(ok=True, message="simulated: nothing to connect to")


_OFFERING_FIELDS = ("service", "region", "resource_type", "engine", "term_years", "payment_option")


def _money(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal("0.00")
    return (
        amount.quantize(Decimal("0.01")) if amount.is_finite() and amount >= 0 else Decimal("0.00")
    )


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    try:
        return max(0.0, min(float(value), MAX_DELAY_SECONDS))
    except (TypeError, ValueError):
        return 0.0
