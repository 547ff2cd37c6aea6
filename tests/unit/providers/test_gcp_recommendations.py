"""GCP's committed-use recommendations through the SDKs' own endpoint setting and REST
transport, against the stand-in API of `test_gcp` on 127.0.0.1: the project's regions
listed, each region's active recommendations read (pages followed and capped), the items
made of them, and the failures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.domain.items import check_item, creation_problem
from app.domain.providers import PurchaseMode
from app.providers import PurchaseFailed
from app.providers.gcp.recommendations import MAX_PAGES, RECOMMENDER, SOURCE
from tests.unit.providers import test_gcp as stand_in
from tests.unit.providers.test_gcp import ACCOUNT, BASE, PROJECT, ComputeApi, error

# The stand-in compute API and the provider on it, as `test_gcp` serves them.
api = stand_in.api
gcp = stand_in.gcp

REGIONS = f"{BASE}/regions"


def listing(region: str) -> str:
    return f"/v1/projects/{PROJECT}/locations/{region}/recommenders/{RECOMMENDER}/recommendations"


def recommended(
    region: str = "us-central1",
    *,
    plan: str = "TWELVE_MONTH",
    vcpus: int = 8,
    saved: tuple[str, int] = ("-150", -500_000_000),
    group: str = "",
    **value: Any,
) -> dict[str, Any]:
    units, nanos = saved
    return {
        "name": f"{listing(region).removeprefix('/v1/')}/r",
        "primaryImpact": {
            "category": "COST",
            "costProjection": {
                "cost": {"currencyCode": "USD", "units": units, "nanos": nanos},
                "duration": "2592000s",
            },
        },
        "content": {
            "operationGroups": [
                {
                    "operations": [
                        {
                            "action": "add",
                            "resourceType": "compute.googleapis.com/Commitment",
                            "resource": f"//compute.googleapis.com/projects/{PROJECT}/regions/"
                            f"{region}/commitments/c1",
                            "path": "/",
                            "value": {
                                "plan": plan,
                                "resources": [
                                    {"type": "VCPU", "amount": str(vcpus)},
                                    {"type": "MEMORY", "amount": "32768"},
                                ],
                                **value,
                            },
                        }
                    ]
                }
            ]
        },
        "stateInfo": {"state": "ACTIVE"},
        **({"xorGroupId": group} if group else {}),
    }


def regions(api: ComputeApi, *names: str) -> None:
    api.answer("GET", REGIONS, 200, {"items": [{"name": name} for name in names]})


def test_each_region_is_asked_for_its_active_recommendations_and_pages_are_followed(api, gcp):
    regions(api, "us-central1", "europe-west1")
    first = recommended(type="GENERAL_PURPOSE_N2")
    api.answer(
        "GET", listing("us-central1"), 200, {"recommendations": [first], "nextPageToken": "p2"}
    )
    api.answer("GET", listing("us-central1"), 200, {"recommendations": [recommended(vcpus=4)]})
    api.answer("GET", listing("europe-west1"), 200, {})

    items = gcp.recommendations(ACCOUNT)

    asked = [(request.method, request.path) for request in api.requests]
    assert asked == [
        ("GET", REGIONS),
        ("GET", listing("us-central1")),
        ("GET", listing("us-central1")),
        ("GET", listing("europe-west1")),
    ]
    assert api.requests[1].query["filter"] == ["stateInfo.state = ACTIVE"]
    assert api.requests[2].query["pageToken"] == ["p2"]
    n2, general = items
    assert n2 == {
        "provider": "gcp",
        "service": "compute",
        "region": "us-central1",
        "resource_type": "general_purpose_n2",
        "engine": "",
        "account_id": PROJECT,
        "count": 1,
        "term_years": 1,
        "payment_option": "no-upfront",
        "upfront_cost": "0.00",
        "monthly_cost": "0.00",
        # 150.50 saved over 30 days (720 hours), for a 730-hour month.
        "monthly_savings": str((Decimal("150.5") / 720 * 730).quantize(Decimal("0.01"))),
        "currency": "USD",
        "resources": [{"type": "VCPU", "amount": 8}, {"type": "MEMORY", "amount": 32768}],
        "commitment_type": "GENERAL_PURPOSE_N2",
        "selected": True,
        "source": SOURCE,
    }
    assert general["resource_type"] == "general-purpose" and "commitment_type" not in general
    for item in items:
        check_item(item, "gcp")
        assert creation_problem([item], PurchaseMode.LIVE, "gcp") is None


def test_alternatives_of_one_group_select_only_the_first(api, gcp):
    regions(api, "us-central1")
    pair = [recommended(group="g1"), recommended(plan="THIRTY_SIX_MONTH", group="g1")]
    api.answer("GET", listing("us-central1"), 200, {"recommendations": pair})
    one, three = gcp.recommendations(ACCOUNT)
    assert (one["term_years"], one["selected"]) == (1, True)
    assert (three["term_years"], three["selected"]) == (3, False)


def test_a_region_stops_at_the_page_cap(api, gcp):
    regions(api, "us-central1")
    for number in range(MAX_PAGES + 1):
        body = {"recommendations": [recommended()], "nextPageToken": f"p{number + 1}"}
        api.answer("GET", listing("us-central1"), 200, body)
    assert len(gcp.recommendations(ACCOUNT)) == MAX_PAGES
    assert len(api.requests) == 1 + MAX_PAGES


def test_no_regions_or_no_recommendations_is_no_items_and_an_unserved_region_is_skipped(api, gcp):
    regions(api, "us-central1", "mars-1")
    api.answer("GET", listing("us-central1"), 200, {"recommendations": []})
    api.answer("GET", listing("mars-1"), 404, error(404, "location not found", "notFound"))
    assert gcp.recommendations(ACCOUNT) == []


def test_recommendations_without_a_commitment_to_insert_are_left_out(api, gcp):
    regions(api, "us-central1")
    odd = recommended(plan="FOREVER")
    api.answer("GET", listing("us-central1"), 200, {"recommendations": [odd]})
    assert gcp.recommendations(ACCOUNT) == []


@pytest.mark.parametrize(
    ("message", "reason", "expected"),
    [
        (
            "Recommender API has not been used in project proj-1 before or it is disabled. "
            "Enable it by visiting recommender.googleapis.com",
            "SERVICE_DISABLED",
            r"^the Recommender API is not enabled in project proj-1",
        ),
        (
            "Permission denied",
            "forbidden",
            r"^IAM denied: recommender.computeCommitmentRecommendations.list is not allowed",
        ),
    ],
)
def test_refusals_are_in_an_operators_words(api, gcp, message, reason, expected):
    regions(api, "us-central1")
    api.answer("GET", listing("us-central1"), 403, error(403, message, reason))
    with pytest.raises(PurchaseFailed, match=expected):
        gcp.recommendations(ACCOUNT)


def test_listing_the_regions_refused_names_its_permission(api, gcp):
    api.answer("GET", REGIONS, 403, error(403, "Permission denied", "forbidden"))
    with pytest.raises(PurchaseFailed, match=r"^IAM denied: compute.regions.list"):
        gcp.recommendations(ACCOUNT)
