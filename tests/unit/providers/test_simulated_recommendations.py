"""The simulator's recommendations: the same account always gets the same items, each
provider its own services, and every item is one a real cloud could buy."""

from __future__ import annotations

import pytest

from app.domain.items import check_item, creation_problem
from app.domain.providers import PROVIDERS, PurchaseMode
from app.domain.spending import totals_of
from app.providers import AccountTarget
from app.providers.simulator import SimulatedProvider


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_set_is_deterministic_per_provider_and_buyable(provider):
    account = AccountTarget(name="demo", provider=provider, external_id="ext-7")
    items = SimulatedProvider(provider).recommendations(account)

    assert items == SimulatedProvider(provider).recommendations(account)
    assert len(items) >= 2
    assert {item["provider"] for item in items} == {provider}
    assert {item["account_id"] for item in items} == {"ext-7"}
    assert all(item["selected"] is True and item["source"] == "simulator" for item in items)
    for item in items:
        check_item(item, provider)
    assert creation_problem(items, PurchaseMode.LIVE, provider) is None
    assert totals_of(items).monthly_savings > 0


def test_the_items_are_fresh_copies():
    account = AccountTarget(name="demo", provider="gcp", external_id="p")
    first = SimulatedProvider("gcp").recommendations(account)
    first[0]["resources"].append({"type": "VCPU", "amount": 1})
    first[0]["count"] = 99
    again = SimulatedProvider("gcp").recommendations(account)
    assert again[0]["count"] == 1 and len(again[0]["resources"]) == 2
