"""The embedded default provider: buys nothing, answers like a cloud API would.

Its purchase id is derived from the idempotency key, so it is idempotent as a real
provider's client token makes a purchase idempotent: asked twice under one key, it
answers the same purchase. That is also why `find` can say "not bought" for every key
without risk: buying again under the key answers the first purchase. Its quote is the
item's own `upfront_cost` and `monthly_cost` (0 when left out) over its term, in USD.

Its `recommendations` are a fixed set per provider (a few services, the fields a real
cloud would need to buy them), with the account's external id as `account_id`: the same
account always gets the same items, so the demo and the tests can rely on them.

Two knobs on an item drive it for demos and tests: `simulate_error` (the purchase fails
with that text) and `simulate_delay_seconds` (the purchase takes that long, at most a
minute: time to stop a worker mid-purchase).
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.domain.spending import MONTHS_PER_YEAR, term_years
from app.providers import (
    AccountTarget,
    ConnectionReport,
    PurchaseFailed,
    Quote,
    recommended_item,
)

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
        monthly = _money(item.get("monthly_cost"))
        months = MONTHS_PER_YEAR * term_years(item)
        described = "/".join(str(item.get(field) or "-") for field in _OFFERING_FIELDS)
        digest = hashlib.sha256(f"{self.name}:{described}".encode()).hexdigest()[:12]
        return Quote(
            offering_id=f"sim-offering-{digest}",
            currency="USD",
            upfront=upfront,
            recurring_monthly=monthly,
            term_total=upfront + monthly * months,
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

    def recommendations(self, account: AccountTarget) -> list[dict[str, Any]]:
        return [
            recommended_item(
                self.name,
                str(fields["service"]),
                source=SIMULATED_SOURCE,
                account_id=account.external_id,
                **{
                    name: copy.deepcopy(value)
                    for name, value in fields.items()
                    if name != "service"
                },
            )
            for fields in _RECOMMENDED.get(self.name, ())
        ]


SIMULATED_SOURCE = "simulator"
_COMMON: dict[str, Any] = {"count": 1, "term_years": 1, "payment_option": "no-upfront"}
# What the simulator recommends, by provider: complete enough for a cloud to buy.
_RECOMMENDED: dict[str, tuple[dict[str, Any], ...]] = {
    "aws": (
        {
            **_COMMON,
            "service": "ec2",
            "region": "us-east-1",
            "resource_type": "m5.large",
            "count": 4,
            "upfront_cost": "0",
            "monthly_cost": "178.85",
            "monthly_savings": "101.47",
            "platform": "Linux/UNIX",
            "tenancy": "default",
            "scope": "Region",
            "offering_class": "standard",
        },
        {
            **_COMMON,
            "service": "ec2",
            "region": "eu-west-1",
            "resource_type": "c5.xlarge",
            "count": 2,
            "payment_option": "all-upfront",
            "upfront_cost": "2162.00",
            "monthly_cost": "0",
            "monthly_savings": "66.58",
            "platform": "Linux/UNIX",
            "tenancy": "default",
            "scope": "Region",
            "offering_class": "standard",
        },
        {
            **_COMMON,
            "service": "rds",
            "region": "us-east-1",
            "resource_type": "db.r6g.large",
            "engine": "postgresql",
            "payment_option": "partial-upfront",
            "upfront_cost": "1011.00",
            "monthly_cost": "84.32",
            "monthly_savings": "56.21",
            "multi_az": False,
        },
        {
            **_COMMON,
            "service": "elasticache",
            "region": "us-west-2",
            "resource_type": "cache.r6g.large",
            "engine": "redis",
            "count": 3,
            "upfront_cost": "0",
            "monthly_cost": "341.64",
            "monthly_savings": "118.26",
        },
        {
            **_COMMON,
            "service": "savingsplans",
            "region": "",
            "resource_type": "Compute",
            "term_years": 3,
            "upfront_cost": "0",
            "monthly_cost": "1825.00",
            "monthly_savings": "912.50",
            "plan_type": "Compute",
            "hourly_commitment": "2.5",
        },
    ),
    "azure": (
        {
            **_COMMON,
            "service": "vm",
            "region": "eastus",
            "resource_type": "Standard_D2s_v3",
            "count": 3,
            "upfront_cost": "0",
            "monthly_cost": "156.95",
            "monthly_savings": "97.09",
            "sku": "Standard_D2s_v3",
            "location": "eastus",
            "scope": "Single",
        },
        {
            **_COMMON,
            "service": "sql",
            "region": "westeurope",
            "resource_type": "SQLDB_GP_Compute_Gen5",
            "term_years": 3,
            "payment_option": "all-upfront",
            "count": 8,
            "upfront_cost": "9870.00",
            "monthly_cost": "0",
            "monthly_savings": "402.33",
            "sku": "SQLDB_GP_Compute_Gen5",
            "location": "westeurope",
            "scope": "Shared",
        },
    ),
    "gcp": (
        {
            **_COMMON,
            "service": "compute",
            "region": "us-central1",
            "resource_type": "general-purpose",
            "count": 1,
            "upfront_cost": "0",
            "monthly_cost": "412.30",
            "monthly_savings": "155.12",
            "resources": [{"type": "VCPU", "amount": 16}, {"type": "MEMORY", "amount": 65536}],
        },
        {
            **_COMMON,
            "service": "compute",
            "region": "europe-west1",
            "resource_type": "general-purpose",
            "term_years": 3,
            "upfront_cost": "0",
            "monthly_cost": "201.75",
            "monthly_savings": "121.40",
            "resources": [{"type": "VCPU", "amount": 8}, {"type": "MEMORY", "amount": 32768}],
        },
    ),
}

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
