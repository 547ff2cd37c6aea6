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

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from app.domain.inputs import is_text, text_problem
from app.domain.money import money_of
from app.domain.providers import SERVICES, PurchaseMode, normalize_provider, normalize_service
from app.domain.purchasing import is_selected, item_provider
from app.domain.recommendations import malformed_reason

MAX_COUNT = 10_000
# The most items one purchase may hold.
MAX_CREATE_ITEMS = 1_000
# The most one item may state as an amount (the columns hold 12 digits before the point).
MAX_AMOUNT = Decimal("999999999.99")
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


# What a new purchase's items may hold at all: JSON of bounded size, text that is text.
MAX_DEPTH = 4
MAX_STRING = 2_000
MAX_FIELDS = 100
_AMOUNTS = ("upfront_cost", "monthly_cost", "monthly_savings")
_TEXTS = ("service", "region", "resource_type", "engine", "account_id")


def creation_problem(
    recommendations: list[Any], mode: PurchaseMode, account_provider: str | None
) -> tuple[int, str] | None:
    """Why a new purchase's items cannot be taken, as (item index, message naming the
    field), or None. Every item, in every mode: an object of plain JSON (finite numbers,
    text without control or unpaired characters, bounded size), a `provider` that is
    the account's when given, a `service`, a `count` of 1 to 10,000, a `term_years` of
    1 or 3, amounts (`upfront_cost`, `monthly_cost`, `monthly_savings`) that are zero or
    more, and `selected` true or false. An account that buys from a cloud (`dry_run`,
    `live`) also needs everything `check_item` asks of a selected item."""
    for index, item in enumerate(recommendations):
        try:
            if not isinstance(item, dict):
                raise ItemProblem(f"expected an object, got {type(item).__name__}")
            _plain_json(item, "", 0)
            if len(item) > MAX_FIELDS:
                raise ItemProblem(f"more than {MAX_FIELDS} fields")
            _basic(item, account_provider)
            if mode is not PurchaseMode.SIMULATE and is_selected(item):
                check_item(item, account_provider)
        except ItemProblem as problem:
            return index, str(problem)
    return None


def _plain_json(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ItemProblem(f"field '{path}': nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is None and len(value) > MAX_STRING:
            problem = f"longer than {MAX_STRING} characters"
        if problem is not None:
            raise ItemProblem(f"field '{path}': {problem}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ItemProblem(f"field '{path}': not a finite number")
    elif isinstance(value, dict):
        for key, inner in value.items():
            shown = key if is_text(key) and len(key) <= MAX_TEXT else repr(key)[:MAX_TEXT]
            name = f"{path}.{shown}" if path else shown
            _plain_json(key, name, depth + 1)
            _plain_json(inner, name, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_FIELDS:
            raise ItemProblem(f"field '{path}': more than {MAX_FIELDS} entries")
        for position, inner in enumerate(value):
            _plain_json(inner, f"{path}[{position}]", depth + 1)


def _basic(item: Mapping[str, Any], account_provider: str | None) -> None:
    account = normalize_provider(account_provider)
    given = normalize_provider(item.get("provider"))
    if item.get("provider") is not None and given not in SERVICES:
        raise ItemProblem(f"field 'provider': {item.get('provider')!r} is not aws, azure or gcp")
    if given and account and given != account:
        raise ItemProblem(f"field 'provider': {given!r} is not the account's provider {account!r}")
    _text(item, "service")
    for name in _TEXTS[1:]:
        if item.get(name) not in (None, ""):
            _text(item, name)
    _whole(item, "count", low=1, high=MAX_COUNT)
    _one_of(item, "term_years", TERMS)
    for name in _AMOUNTS:
        amount = money_of(item.get(name)) if item.get(name) is not None else Decimal(0)
        if amount is None or amount < 0 or amount > MAX_AMOUNT:
            raise ItemProblem(
                f"field '{name}': expected an amount from 0 to {MAX_AMOUNT:,}, got "
                f"{item.get(name)!r}"
            )
    if "selected" in item and not isinstance(item["selected"], bool):
        raise ItemProblem(f"field 'selected': expected true or false, got {item['selected']!r}")


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
