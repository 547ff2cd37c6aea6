"""What a recommendation item must say before a real provider can quote or buy it.

An item bought by the simulator needs only to be an object (the simulator reads what it
finds). An item a cloud quotes or buys (its account in `dry_run` or `live`) must name,
by provider and service:

- every item: `service` (one the provider sells here), `count` (a whole number, 1 to
  10,000), `term_years` (1 or 3), `payment_option` (`no-upfront`, `partial-upfront` or
  `all-upfront`; Azure has no partial upfront, a GCP commitment is billed monthly), and
  optionally `offering_id` (skips the lookup) and `max_price` (the most the item may cost
  over its term, upfront and recurring, in the offering's currency);
- `aws`/`ec2`: `region`, `resource_type` (instance type), `platform`, `tenancy`
  (`default`|`dedicated`), `scope` (`Region`, or `Availability Zone` with
  `availability_zone`), `offering_class` (`standard`|`convertible`);
- `aws`/`rds`, `elasticache`: `region`, `resource_type`, `engine`; RDS's `multi_az` is a
  boolean when given; `aws`/`memorydb`, `opensearch`, `redshift`: `region`,
  `resource_type`;
- `aws`/`savingsplans`: `plan_type` (`Compute`|`EC2Instance`|`SageMaker`),
  `hourly_commitment` (USD per hour, above zero); `instance_family` and `region` for
  `EC2Instance`;
- `azure`/any service: `sku`, `location` (or `region`), `scope` (`Single`|`Shared`) when
  given;
- `gcp`/`compute`: `region`, `resources` (a list of `{"type": "VCPU"|"MEMORY",
  "amount": whole number above zero}`, memory in MB).

A problem is reported for the first item and field that has one, naming both, so the
operator knows what to fix. Items with `selected: false` are not bought and not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from app.domain.money import money_of
from app.domain.providers import SERVICES, PurchaseMode, normalize_provider, normalize_service
from app.domain.purchasing import is_selected, item_provider
from app.domain.recommendations import malformed_reason

MAX_COUNT = 10_000
MAX_TEXT = 200
TERMS = (1, 3)
PAYMENT_OPTIONS = ("no-upfront", "partial-upfront", "all-upfront")
_PAYMENT_BY_PROVIDER = {
    "aws": PAYMENT_OPTIONS,
    "azure": ("no-upfront", "all-upfront"),
    "gcp": ("no-upfront",),
}


class ItemProblem(Exception):
    """One field of one item is unusable; the message names the field."""


def recommendations_problem(
    recommendations: Any, mode: PurchaseMode, account_provider: str | None
) -> str | None:
    """Why an execution's items cannot be bought in `mode`, or None if they can."""
    reason = malformed_reason(recommendations)
    if reason is not None or mode is PurchaseMode.SIMULATE:
        return reason
    for index, item in enumerate(recommendations):
        if not is_selected(item):
            continue
        try:
            check_item(item, account_provider)
        except ItemProblem as problem:
            return f"malformed recommendations: item {index}: {problem}"
    return None


def check_item(item: Mapping[str, Any], account_provider: str | None) -> None:
    """Raise `ItemProblem` for the first field a real provider could not use."""
    provider = item_provider(item, account_provider)
    account = normalize_provider(account_provider)
    if account and provider != account:
        raise ItemProblem(
            f"field 'provider': {provider!r} is not the account's provider {account!r}"
        )
    if provider not in SERVICES:
        raise ItemProblem(f"field 'provider': {provider or '(none)'!r} is not aws, azure or gcp")
    service = normalize_service(item.get("service"))
    if service not in SERVICES[provider]:
        sold = ", ".join(SERVICES[provider])
        raise ItemProblem(f"field 'service': {item.get('service')!r} is not one of {sold}")
    _whole(item, "count", low=1, high=MAX_COUNT)
    _one_of(item, "term_years", TERMS)
    _one_of(item, "payment_option", _PAYMENT_BY_PROVIDER[provider])
    _text(item, "offering_id", required=False)
    _money(item, "max_price", required=False)
    _SERVICE_RULES.get((provider, service), _PROVIDER_RULES[provider])(item)


def _ec2(item: Mapping[str, Any]) -> None:
    for name in ("region", "resource_type", "platform"):
        _text(item, name)
    _one_of(item, "tenancy", ("default", "dedicated"))
    _one_of(item, "offering_class", ("standard", "convertible"))
    if _one_of(item, "scope", ("Region", "Availability Zone")) == "Availability Zone":
        _text(item, "availability_zone")


def _engine_service(item: Mapping[str, Any]) -> None:
    for name in ("region", "resource_type", "engine"):
        _text(item, name)
    if "multi_az" in item and not isinstance(item["multi_az"], bool):
        raise ItemProblem(f"field 'multi_az': expected true or false, got {item['multi_az']!r}")


def _node_service(item: Mapping[str, Any]) -> None:
    for name in ("region", "resource_type"):
        _text(item, name)


def _savings_plan(item: Mapping[str, Any]) -> None:
    plan = _one_of(item, "plan_type", ("Compute", "EC2Instance", "SageMaker"))
    _money(item, "hourly_commitment")
    if plan == "EC2Instance":
        _text(item, "instance_family")
        _text(item, "region")


def _azure(item: Mapping[str, Any]) -> None:
    _text(item, "sku")
    if not item.get("location"):
        _text(item, "region", shown="location")
    else:
        _text(item, "location")
    if "scope" in item:
        _one_of(item, "scope", ("Single", "Shared"))


def _gcp(item: Mapping[str, Any]) -> None:
    _text(item, "region")
    resources = item.get("resources")
    if not isinstance(resources, list) or not resources:
        raise ItemProblem("field 'resources': expected a list of {type, amount}")
    for position, resource in enumerate(resources):
        if not isinstance(resource, dict):
            raise ItemProblem(f"field 'resources[{position}]': expected an object")
        _one_of(resource, "type", ("VCPU", "MEMORY"), shown=f"resources[{position}].type")
        _whole(resource, "amount", low=1, high=10**9, shown=f"resources[{position}].amount")


_Rule = Callable[[Mapping[str, Any]], None]
_SERVICE_RULES: dict[tuple[str, str], _Rule] = {
    ("aws", "ec2"): _ec2,
    ("aws", "rds"): _engine_service,
    ("aws", "elasticache"): _engine_service,
    ("aws", "savingsplans"): _savings_plan,
}
_PROVIDER_RULES: dict[str, _Rule] = {"aws": _node_service, "azure": _azure, "gcp": _gcp}


def _text(
    item: Mapping[str, Any], name: str, *, required: bool = True, shown: str | None = None
) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise ItemProblem(
            f"field '{shown or name}': expected text of 1 to {MAX_TEXT} characters, got {value!r}"
        )
    return value


def _one_of(
    item: Mapping[str, Any], name: str, allowed: tuple[Any, ...], *, shown: str | None = None
) -> Any:
    value = item.get(name)
    if isinstance(value, bool) or value not in allowed:
        choices = ", ".join(repr(choice) for choice in allowed)
        raise ItemProblem(f"field '{shown or name}': expected one of {choices}, got {value!r}")
    return value


def _whole(
    item: Mapping[str, Any], name: str, *, low: int, high: int, shown: str | None = None
) -> int:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ItemProblem(
            f"field '{shown or name}': expected a whole number from {low} to {high}, got {value!r}"
        )
    return value


def _money(item: Mapping[str, Any], name: str, *, required: bool = True) -> Decimal | None:
    value = item.get(name)
    if value is None and not required:
        return None
    amount = money_of(value)
    if amount is None or amount <= 0:
        raise ItemProblem(f"field '{name}': expected an amount above zero, got {value!r}")
    return amount
