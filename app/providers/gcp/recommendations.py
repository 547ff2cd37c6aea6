"""Google Cloud's own committed-use recommendations, read through google-cloud-recommender
(`google.compute.commitment.UsageCommitmentRecommender`), as recommendation items ready
to create.

The recommender answers per location, so the project's regions are listed first
(`compute.regions.list`), then each region's active recommendations (at most
`MAX_PAGES` pages per region; past the cap the rest is left out, logged). Each
recommendation's operations name the commitment to insert: its `plan` (12 or 36 months)
and `resources` (vCPUs and memory in MB), and its `type` when it has one. The
recommendation's cost projection is its estimated saving over a period (a negative cost);
the item's `monthly_savings` is that per hour over a month (730 hours).

The recommender does not price the commitment itself, and neither does the compute API
(see the provider's quote): the items' `monthly_cost` is 0.00, so a spend limit sees no
commitment from them. Commitments are billed monthly (`no-upfront`).

Recommendations of one `xor_group_id` are alternatives (buying more than one is not
advised): all are kept, and only the first stays selected.

Permissions: `compute.regions.list` and `recommender.computeCommitmentRecommendations.list`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from app.providers import recommended_item

log = logging.getLogger(__name__)

SOURCE = "gcp-recommender"
RECOMMENDER = "google.compute.commitment.UsageCommitmentRecommender"
LIST_REGIONS = "compute.regions.list"
LIST_RECOMMENDATIONS = "recommender.computeCommitmentRecommendations.list"
ACTIVE = "stateInfo.state = ACTIVE"
MAX_PAGES = 10
HOURS_PER_MONTH = Decimal(730)
COMMITMENT = "compute.googleapis.com/Commitment"
_TERMS = {"TWELVE_MONTH": 1, "THIRTY_SIX_MONTH": 3}
_REGION = re.compile(r"/regions/([^/]+)/")


def parent(project: str, region: str) -> str:
    return f"projects/{project}/locations/{region}/recommenders/{RECOMMENDER}"


def items_of(recommendations: list[Any], project: str, region: str) -> list[dict[str, Any]]:
    """The items a region's recommendations describe (see the module)."""
    items: list[dict[str, Any]] = []
    groups: set[str] = set()
    for recommendation in recommendations:
        savings = _monthly_savings(recommendation)
        group = str(getattr(recommendation, "xor_group_id", "") or "")
        for value, where in _commitments(recommendation):
            item = _item(value, where or region, project, savings)
            if item is None:
                continue
            if group:
                item["selected"] = group not in groups
                groups.add(group)
            items.append(item)
    return items


def _commitments(recommendation: Any) -> list[tuple[Mapping[str, Any], str]]:
    """(the commitment's fields, its region) for each commitment the recommendation would
    insert."""
    found = []
    for group in recommendation.content.operation_groups:
        for operation in group.operations:
            if operation.resource_type != COMMITMENT or operation.action not in ("add", "insert"):
                continue
            value = operation.value
            if isinstance(value, Mapping):
                region = _REGION.search(f"{operation.resource}/")
                found.append((value, region.group(1) if region else ""))
    return found


def _item(
    value: Mapping[str, Any], region: str, project: str, savings: tuple[str, Decimal]
) -> dict[str, Any] | None:
    term = _TERMS.get(str(value.get("plan") or ""))
    resources = []
    for entry in value.get("resources") or []:
        if not isinstance(entry, Mapping):
            continue
        kind, amount = str(entry.get("type") or "").upper(), _whole(entry.get("amount"))
        if kind in ("VCPU", "MEMORY") and amount >= 1:
            resources.append({"type": kind, "amount": amount})
    if term is None or not resources or not region:
        return None
    commitment_type = str(value.get("type") or "").strip().upper() or None
    currency, monthly = savings
    return recommended_item(
        "gcp",
        "compute",
        source=SOURCE,
        account_id=project,
        region=region,
        resource_type=(commitment_type or "general-purpose").lower(),
        count=1,
        term_years=term,
        payment_option="no-upfront",
        upfront_cost=0,
        monthly_cost=0,
        monthly_savings=monthly,
        currency=currency,
        resources=resources,
        commitment_type=commitment_type,
    )


def _monthly_savings(recommendation: Any) -> tuple[str, Decimal]:
    projection = recommendation.primary_impact.cost_projection
    cost = projection.cost
    amount = Decimal(int(cost.units or 0)) + Decimal(int(cost.nanos or 0)) / Decimal(10**9)
    duration = projection.duration
    hours = (
        Decimal(str(duration.total_seconds())) / 3600
        if isinstance(duration, timedelta) and duration.total_seconds() > 0
        else Decimal(30 * 24)
    )
    saved = -amount if amount < 0 else Decimal(0)
    return str(cost.currency_code or "USD"), saved / hours * HOURS_PER_MONTH


def _whole(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    try:
        return int(str(value).strip())
    except ValueError:
        return 0
