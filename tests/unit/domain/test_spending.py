"""The money of a purchase and the spend limits that cap it, without a database:
commitment math, totals, every refusal's message and details, strictest-wins across
groups, `names_account`, and `commitment_refusal` (a quote dearer than declared)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.domain.spending import (
    Spend,
    SpendLimit,
    Totals,
    commitment_of,
    commitment_refusal,
    item_commitment,
    limit_refusal,
    names_account,
    term_years,
    totals_of,
)

ACCOUNT = "6f1c0c7e-0000-4000-8000-000000000001"
OTHER_ACCOUNT = "6f1c0c7e-0000-4000-8000-000000000002"


def item(**fields: Any) -> dict[str, Any]:
    """An EC2 item committing 1,200.00 upfront + 10.00 a month for one year: 1,320.00."""
    return {
        "provider": "aws",
        "service": "ec2",
        "term_years": 1,
        "upfront_cost": "1200.00",
        "monthly_cost": "10.00",
        "monthly_savings": "45.50",
        **fields,
    }


def spend(*items: dict[str, Any], account: str | None = ACCOUNT, provider: str = "aws") -> Spend:
    return Spend(account_id=account, account_provider=provider, recommendations=list(items))


def limit(name: str = "Finance", group_id: int = 1, **fields: Any) -> SpendLimit:
    return SpendLimit(group_id=group_id, group=name, **fields)


# --- Commitment and totals -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "1320.00"),
        ({"term_years": 3}, "1560.00"),  # 1,200 + 10 x 36
        ({"term_years": "3"}, "1560.00"),
        ({"monthly_cost": None}, "1200.00"),  # no recurring charge
        ({"upfront_cost": 0, "monthly_cost": 99.99}, "1199.88"),
        ({"term_years": None}, "1320.00"),  # no term a rule could read: one year
        ({"term_years": True}, "1320.00"),
        ({"term_years": 0}, "1320.00"),
        ({"term_years": "x"}, "1320.00"),
        ({"upfront_cost": "-5", "monthly_cost": "NaN"}, "0.00"),  # nothing negative or NaN
        ({"upfront_cost": "0.005"}, "120.00"),  # rounded to the cent: 0.005 + 120
    ],
)
def test_an_items_commitment_is_upfront_plus_recurring_over_its_term(fields, expected):
    assert item_commitment(item(**fields)) == Decimal(expected)


def test_term_years_reads_whole_years_and_falls_back_to_one():
    assert [term_years({"term_years": value}) for value in (1, 3, "3", 0, -2, 2.5, "x")] == [
        1,
        3,
        3,
        1,
        1,
        1,
        1,
    ]


def test_totals_count_only_selected_items():
    items = [item(), item(term_years=3, monthly_savings="10"), item(selected=False)]
    totals = totals_of(items)
    assert totals == Totals(
        upfront=Decimal("2400.00"),
        monthly=Decimal("20.00"),
        term_total=Decimal("2880.00"),
        monthly_savings=Decimal("55.50"),
        term_savings=Decimal("906.00"),  # 45.50 x 12 + 10 x 36
        items=2,
    )
    assert totals.yearly_savings == Decimal("666.00")
    assert totals.as_dict() == {
        "items": 2,
        "upfront": "2400.00",
        "monthly": "20.00",
        "term_total": "2880.00",
        "monthly_savings": "55.50",
        "yearly_savings": "666.00",
        "term_savings": "906.00",
    }
    assert commitment_of(items) == Decimal("2880.00")


@pytest.mark.parametrize("malformed", [None, "[]", {"a": 1}, [1, 2], 7])
def test_malformed_recommendations_commit_nothing(malformed):
    assert totals_of(malformed) == Totals()
    assert commitment_of(malformed) == Decimal("0.00")


# --- Each rule's refusal ----------------------------------------------------------------------


def test_no_limits_refuse_nothing():
    assert limit_refusal([], spend(item()), {}) is None
    assert limit_refusal([limit()], spend(item()), {}) is None  # a limit of nothing


def test_allowed_accounts():
    rule = limit(account_ids=frozenset({OTHER_ACCOUNT}))
    refused = limit_refusal([rule], spend(item()), {})
    assert refused is not None
    assert refused.status == 403
    assert refused.message == (
        'spend limit of group "Finance": this account is not one its members may buy for'
    )
    assert refused.details == {"limit": "allowed_accounts", "group": "Finance", "amount": "1320.00"}
    # Nothing about the accounts it does allow.
    assert OTHER_ACCOUNT not in repr(refused)
    assert limit_refusal([rule], spend(item(), account=OTHER_ACCOUNT), {}) is None
    assert limit_refusal([rule], spend(item(), account=None), {}) is not None


def test_allowed_providers_by_each_items_provider_or_the_accounts():
    rule = limit(providers=frozenset({"azure"}))
    refused = limit_refusal([rule], spend(item()), {})
    assert refused is not None
    assert refused.message == (
        "spend limit of group \"Finance\": provider 'aws' is not allowed (allowed: azure)"
    )
    assert refused.details["limit"] == "allowed_providers"
    assert refused.details["amount"] == "1320.00"
    # An item without a provider is the account's.
    assert limit_refusal([rule], spend(item(provider=None), provider="azure"), {}) is None
    # Nothing selected: the account's provider is what it would buy from.
    unselected = spend(item(selected=False), provider="aws")
    assert limit_refusal([rule], unselected, {}) is not None
    assert limit_refusal([limit(providers=frozenset())], spend(item()), {}).message.endswith(
        "(allowed: none)"
    )


def test_allowed_services_compare_normalized_names():
    rule = limit(services=frozenset({"savingsplans"}))
    refused = limit_refusal([rule], spend(item()), {})
    assert refused is not None
    assert refused.message == (
        "spend limit of group \"Finance\": service 'ec2' is not allowed (allowed: savingsplans)"
    )
    assert refused.details["limit"] == "allowed_services"
    assert limit_refusal([rule], spend(item(service="Savings-Plans")), {}) is None
    # An unselected item is not bought: its service does not matter.
    assert limit_refusal([rule], spend(item(service="sp"), item(selected=False)), {}) is None


def test_max_per_purchase_names_the_amount_and_the_maximum():
    rule = limit(max_per_purchase=Decimal("1319.99"))
    refused = limit_refusal([rule], spend(item()), {})
    assert refused is not None
    assert refused.message == (
        'spend limit of group "Finance": this purchase commits 1,320.00, over its maximum '
        "per purchase of 1,319.99"
    )
    assert refused.details == {
        "limit": "max_per_purchase",
        "group": "Finance",
        "amount": "1320.00",
        "maximum": "1319.99",
    }
    assert limit_refusal([limit(max_per_purchase=Decimal("1320.00"))], spend(item()), {}) is None


def test_max_per_day_counts_what_the_group_had_approved_today():
    rule = limit(group_id=7, max_per_day=Decimal("2000.00"))
    assert limit_refusal([rule], spend(item()), {}) is None
    assert limit_refusal([rule], spend(item()), {7: Decimal("680.00")}) is None  # exactly
    refused = limit_refusal([rule], spend(item()), {7: Decimal("680.01")})
    assert refused is not None
    assert refused.message == (
        'spend limit of group "Finance": this purchase commits 1,320.00, which would bring '
        "today's approved commitments to 2,000.01, over its maximum per day of 2,000.00"
    )
    assert refused.details == {
        "limit": "max_per_day",
        "group": "Finance",
        "amount": "1320.00",
        "maximum": "2000.00",
        "spent_today": "680.01",
    }
    # Another group's spend is not this group's.
    assert limit_refusal([rule], spend(item()), {8: Decimal("9999")}) is None


def test_a_zero_maximum_refuses_any_commitment_but_not_an_empty_one():
    rule = limit(max_per_purchase=Decimal("0"))
    assert limit_refusal([rule], spend(item()), {}) is not None
    assert limit_refusal([rule], spend(item(selected=False)), {}) is None


def test_rules_apply_in_order_accounts_first():
    rule = limit(
        account_ids=frozenset({OTHER_ACCOUNT}),
        providers=frozenset({"gcp"}),
        max_per_purchase=Decimal("1"),
    )
    refused = limit_refusal([rule], spend(item()), {})
    assert refused is not None and refused.details["limit"] == "allowed_accounts"


# --- Across groups: the strictest wins -----------------------------------------------------


def test_every_groups_limit_binds_and_the_first_broken_is_named():
    generous = limit("Generous", 1, max_per_purchase=Decimal("1000000"))
    strict = limit("Strict", 2, max_per_purchase=Decimal("100"))
    refused = limit_refusal([generous, strict], spend(item()), {})
    assert refused is not None
    assert refused.details["group"] == "Strict"
    assert refused.message.startswith('spend limit of group "Strict":')
    assert limit_refusal([generous], spend(item()), {}) is None


def test_a_limit_that_allows_is_no_exemption_from_another_that_refuses():
    allows_aws = limit("Cloud", 1, providers=frozenset({"aws"}))
    azure_only = limit("Azure desk", 2, providers=frozenset({"azure"}))
    refused = limit_refusal([allows_aws, azure_only], spend(item()), {})
    assert refused is not None and refused.details["group"] == "Azure desk"


def test_caps_money():
    assert not limit(providers=frozenset({"aws"})).caps_money
    assert limit(max_per_day=Decimal("1")).caps_money
    assert limit(max_per_purchase=Decimal("0")).caps_money


# --- names_account: what create-own needs --------------------------------------------------


def test_names_account_needs_some_list_naming_it_and_none_leaving_it_out():
    naming = limit("A", 1, account_ids=frozenset({ACCOUNT}))
    both = limit("B", 2, account_ids=frozenset({ACCOUNT, OTHER_ACCOUNT}))
    other = limit("C", 3, account_ids=frozenset({OTHER_ACCOUNT}))
    unlisted = limit("D", 4, max_per_day=Decimal("5"))
    assert names_account([naming], ACCOUNT)
    assert names_account([naming, both, unlisted], ACCOUNT)
    assert not names_account([naming, other], ACCOUNT)
    assert not names_account([unlisted], ACCOUNT)  # no list: names nothing
    assert not names_account([], ACCOUNT)
    assert not names_account([naming], None)


# --- commitment_refusal: a quote dearer than declared --------------------------------------


def test_a_quote_within_the_declared_commitment_may_be_bought():
    assert commitment_refusal(item(), {"term_total": "1320.00", "currency": "USD"}) is None
    assert commitment_refusal(item(), {"term_total": "1000"}) is None
    assert commitment_refusal(item(), {}) is None  # no price: the declared amount stands
    assert commitment_refusal(item(), {"term_total": "NaN"}) is None


def test_a_quote_dearer_than_declared_is_refused_with_both_amounts():
    refused = commitment_refusal(item(), {"term_total": "1320.01", "currency": "USD"})
    assert refused == (
        "quoted 1,320.01 USD over the term, more than the 1,320.00 the item declares, which "
        "its spend limits were checked against"
    )
    without_currency = commitment_refusal(item(), {"term_total": 2000})
    assert without_currency is not None
    assert without_currency.startswith("quoted 2,000.00 over the term")
