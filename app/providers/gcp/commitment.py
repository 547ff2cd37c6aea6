"""The commitment a GCP item describes: region, plan, resources times the item's count."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.cloud import compute_v1

from app.providers import PurchaseFailed

SERVICE = "compute"
PLANS = {1: "TWELVE_MONTH", 3: "THIRTY_SIX_MONTH"}
RESOURCE_TYPES = ("VCPU", "MEMORY")
MONTHLY_ONLY = ("all-upfront", "partial-upfront")
KEY_MARK = "ccp:idempotency-key"


@dataclass(frozen=True)
class Commitment:
    """A regional MACHINE commitment: `resources` are totals for the item's whole count
    (VCPU as a count, MEMORY in MB), in the order VCPU, MEMORY."""

    region: str
    plan: str
    resources: tuple[tuple[str, int], ...]
    commitment_type: str | None = None

    @property
    def offering_id(self) -> str:
        """`compute:<region>:<plan>:VCPU=n,MEMORY=mb[:<type>]`: what is bought, as text."""
        described = ",".join(f"{kind}={amount}" for kind, amount in self.resources)
        kind = f":{self.commitment_type}" if self.commitment_type else ""
        return f"{SERVICE}:{self.region}:{self.plan}:{described}{kind}"

    def resource(self, name: str, key: str) -> compute_v1.Commitment:
        """The body of the insert: named `name`, the key in its description (commitments
        take no labels)."""
        body = compute_v1.Commitment(
            name=name,
            plan=self.plan,
            category="MACHINE",
            description=f"{KEY_MARK}={key}",
            resources=[
                compute_v1.ResourceCommitment(type_=kind, amount=amount)
                for kind, amount in self.resources
            ],
        )
        if self.commitment_type:
            body.type_ = self.commitment_type
        return body


def describe(item: Mapping[str, Any]) -> Commitment:
    """The commitment an item describes; `PurchaseFailed` naming the field it cannot use."""
    if str(item.get("payment_option") or "").strip().lower() in MONTHLY_ONLY:
        raise PurchaseFailed(
            f"payment_option {item.get('payment_option')!r} is not available for GCP "
            "commitments, which are billed monthly: use no-upfront"
        )
    region = str(item.get("region") or "").strip()
    if not region:
        raise PurchaseFailed("region: the item names no GCP region")
    plan = PLANS.get(_whole(item.get("term_years")) or 0)
    if plan is None:
        raise PurchaseFailed(f"term_years must be 1 or 3; got {item.get('term_years')!r}")
    count = _whole(item.get("count", 1))
    if count is None or count < 1:
        raise PurchaseFailed(
            f"count must be a whole number of at least 1; got {item.get('count')!r}"
        )
    entries = item.get("resources")
    if not isinstance(entries, list) or not entries:
        raise PurchaseFailed('resources: give a list of {"type": "VCPU"|"MEMORY", "amount": n}')
    totals: dict[str, int] = {}
    for entry in entries:
        kind, amount = _resource(entry)
        totals[kind] = totals.get(kind, 0) + amount * count
    commitment_type = str(item.get("commitment_type") or "").strip().upper() or None
    return Commitment(
        region=region,
        plan=plan,
        resources=tuple((kind, totals[kind]) for kind in RESOURCE_TYPES if kind in totals),
        commitment_type=commitment_type,
    )


def _resource(entry: object) -> tuple[str, int]:
    if isinstance(entry, Mapping):
        kind = str(entry.get("type") or "").strip().upper()
        amount = _whole(entry.get("amount"))
        if kind in RESOURCE_TYPES and amount is not None and amount >= 1:
            return kind, amount
    raise PurchaseFailed(
        f"resources: {entry!r} is not a VCPU count or a MEMORY amount in MB (a whole number "
        "of at least 1)"
    )


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None
