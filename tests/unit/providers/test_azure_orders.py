"""The Azure provider's purchase and find, through azure-core's HTTP transport: the
reservation order's id comes from the key, the body says what is bought, and Azure's
answers become the provider's."""

from __future__ import annotations

import pytest

from app.providers import LookupFailed, PurchaseFailed, Quote, key_name, key_uuid
from tests.unit.providers.test_azure_fakes import (
    ACCOUNT,
    ARM,
    BILLED,
    SUBSCRIPTION,
    TOKEN,
    Answer,
    FakeArm,
    arm_error,
    azure,
    network_down,
    order,
)

KEY = "exec-41:item-3"
ORDER_ID = str(key_uuid(KEY))
ORDER_URL = f"{ARM}/providers/Microsoft.Capacity/reservationOrders/{ORDER_ID}"
ORDER = f"/providers/microsoft.capacity/reservationOrders/{ORDER_ID}"
ITEM = {
    "provider": "azure",
    "service": "vm",
    "region": "eastus",
    "sku": "Standard_D2s_v3",
    "count": 3,
    "term_years": 3,
    "payment_option": "all-upfront",
    "scope": "Single",
}
QUOTE = Quote(offering_id="VirtualMachines/eastus/P3Y/Standard_D2s_v3", currency="EUR")
DENIED = "The client 'ops' with object id '42' does not have authorization to perform action"


def test_purchase_puts_the_order_named_by_the_key_and_polls_it_to_the_end():
    status_url = f"{ARM}/providers/Microsoft.Capacity/operationResults/{ORDER_ID}?api-version=1"
    arm = FakeArm(
        Answer(202, {}, {"Location": status_url, "Retry-After": "0"}),
        order(ORDER_ID),
    )

    bought = azure(arm).purchase(KEY, ITEM, BILLED, QUOTE)

    assert bought == ORDER
    put, poll = arm.seen
    assert (put.method, put.url.split("?")[0]) == ("PUT", ORDER_URL)
    assert put.body == {
        "sku": {"name": "Standard_D2s_v3"},
        "location": "eastus",
        "properties": {
            "reservedResourceType": "VirtualMachines",
            "billingScopeId": BILLED.azure_billing_scope,
            "term": "P3Y",
            "billingPlan": "Upfront",
            "quantity": 3,
            "displayName": key_name(KEY),
            "appliedScopeType": "Single",
            "appliedScopes": [f"/subscriptions/{SUBSCRIPTION}"],
        },
    }
    assert put.authorization == f"Bearer {TOKEN}"
    assert (poll.method, poll.url) == ("GET", status_url)


def test_buying_again_under_one_key_puts_the_same_order_and_another_key_another():
    other = str(key_uuid("exec-41:item-4"))
    arm = FakeArm(order(ORDER_ID), order(ORDER_ID), order(other))
    provider = azure(arm)
    shared = {**ITEM, "scope": "Shared", "payment_option": "no-upfront"}

    first = provider.purchase(KEY, shared, ACCOUNT, QUOTE)
    again = provider.purchase(KEY, shared, ACCOUNT, QUOTE)
    provider.purchase("exec-41:item-4", shared, ACCOUNT, QUOTE)

    assert first == again == ORDER
    assert [seen.url.split("?")[0] for seen in arm.seen] == [
        ORDER_URL,
        ORDER_URL,
        ORDER_URL.replace(ORDER_ID, other),
    ]
    properties = arm.seen[0].body["properties"]
    assert properties["billingPlan"] == "Monthly" and properties["appliedScopeType"] == "Shared"
    assert "appliedScopes" not in properties
    assert properties["billingScopeId"] == f"/subscriptions/{SUBSCRIPTION}"


def test_an_order_id_already_taken_answers_the_order_bought_under_the_key():
    arm = FakeArm(
        arm_error(409, "ReservationOrderIdAlreadyExists", "reservation order exists"),
        order(ORDER_ID, "Creating"),
    )

    assert azure(arm).purchase(KEY, ITEM, ACCOUNT, QUOTE) == ORDER
    assert arm.methods() == ["PUT", "GET"]
    assert arm.seen[1].url.split("?")[0] == ORDER_URL


@pytest.mark.parametrize("state", ["BillingFailed", "Cancelled"])
def test_an_order_azure_ends_unbought_fails_the_purchase_without_polling_on(state):
    arm = FakeArm(order(ORDER_ID, "Creating"), order(ORDER_ID, state))

    with pytest.raises(PurchaseFailed, match=f"{ORDER_ID} ended {state}: nothing was bought"):
        azure(arm).purchase(KEY, ITEM, ACCOUNT, QUOTE)

    assert arm.methods() == ["PUT", "GET"]


def test_an_order_that_fails_after_it_was_accepted_says_so():
    arm = FakeArm(order(ORDER_ID, "Creating"), order(ORDER_ID, "Failed"))

    with pytest.raises(PurchaseFailed, match=f"{ORDER_ID} was accepted, then failed"):
        azure(arm).purchase(KEY, ITEM, ACCOUNT, QUOTE)


def test_partial_upfront_is_refused_before_any_request():
    arm = FakeArm()

    with pytest.raises(PurchaseFailed, match="not 'partial-upfront'"):
        azure(arm).purchase(KEY, {**ITEM, "payment_option": "partial-upfront"}, ACCOUNT, QUOTE)

    assert arm.seen == []


def test_a_denied_purchase_names_the_permission_and_never_the_token():
    arm = FakeArm(arm_error(403, "AuthorizationFailed", "Access denied."))

    with pytest.raises(PurchaseFailed) as failure:
        azure(arm).purchase(KEY, ITEM, ACCOUNT, QUOTE)

    assert str(failure.value) == (
        "IAM denied: Microsoft.Capacity/reservationOrders/action is not allowed "
        "(AuthorizationFailed)"
    )
    assert TOKEN not in str(failure.value)
    assert arm.methods() == ["PUT"]


def test_a_denied_purchase_names_the_permission_azure_reports():
    arm = FakeArm(
        arm_error(403, "AuthorizationFailed", f"{DENIED} 'Microsoft.Capacity/register/action'")
    )

    with pytest.raises(PurchaseFailed, match=r"^IAM denied: Microsoft\.Capacity/register/action "):
        azure(arm).purchase(KEY, ITEM, ACCOUNT, QUOTE)


def test_out_of_stock_is_insufficient_capacity():
    arm = FakeArm(
        arm_error(400, "FulfillmentOutOfStockError", "No capacity for Standard_D2s_v3 in eastus")
    )

    with pytest.raises(PurchaseFailed, match=r"^insufficient capacity: No capacity for"):
        azure(arm).purchase(KEY, ITEM, ACCOUNT, QUOTE)


def test_a_throttled_purchase_is_put_again_under_the_same_order_id():
    arm = FakeArm(
        arm_error(429, "TooManyRequests", "slow down", **{"Retry-After": "0"}),
        order(ORDER_ID),
    )

    assert azure(arm).purchase(KEY, ITEM, ACCOUNT, QUOTE) == ORDER
    assert arm.methods() == ["PUT", "PUT"]
    assert arm.seen[0].url == arm.seen[1].url and arm.seen[0].body == arm.seen[1].body


def test_a_quote_that_names_no_azure_offering_buys_nothing():
    arm = FakeArm()

    with pytest.raises(PurchaseFailed, match=r"^offering not found: 'sim-offering-1'"):
        azure(arm).purchase(KEY, ITEM, ACCOUNT, Quote(offering_id="sim-offering-1"))

    assert arm.seen == []


def test_find_answers_the_order_bought_under_the_key():
    arm = FakeArm(order(ORDER_ID, "PendingBilling"))

    assert azure(arm).find(KEY, ITEM, ACCOUNT) == ORDER
    (get,) = arm.seen
    assert (get.method, get.url.split("?")[0]) == ("GET", ORDER_URL)


def test_find_answers_none_when_azure_has_no_such_order():
    arm = FakeArm(arm_error(404, "ReservationOrderNotFound", "not found"))

    assert azure(arm).find(KEY, ITEM, ACCOUNT) is None
    assert arm.methods() == ["GET"]


def test_find_denied_is_a_lookup_failure_naming_the_permission():
    arm = FakeArm(
        arm_error(
            403, "AuthorizationFailed", f"{DENIED} 'Microsoft.Capacity/reservationOrders/read'"
        )
    )

    with pytest.raises(LookupFailed) as failure:
        azure(arm).find(KEY, ITEM, ACCOUNT)

    assert str(failure.value) == (
        "IAM denied: Microsoft.Capacity/reservationOrders/read is not allowed (AuthorizationFailed)"
    )


def test_find_with_azure_unreachable_is_a_lookup_failure_after_retries():
    arm = FakeArm(network_down(), network_down(), network_down())

    with pytest.raises(LookupFailed, match=r"^Azure unreachable: connection refused"):
        azure(arm).find(KEY, ITEM, ACCOUNT)

    assert arm.methods() == ["GET"] * 3


def test_find_of_an_order_azure_ended_unbought_cannot_answer():
    arm = FakeArm(order(ORDER_ID, "BillingFailed"))

    with pytest.raises(LookupFailed, match="ended BillingFailed: nothing was bought"):
        azure(arm).find(KEY, ITEM, ACCOUNT)
