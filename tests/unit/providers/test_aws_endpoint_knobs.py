"""The local EC2 endpoint's `hold` knob, which end-to-end tests use to kill a worker
mid-purchase: the held request is applied to the store first, other requests are served
while it waits, and its answer goes out on release (by method, by `POST /_knobs`, or when
`hold_seconds` pass); `hold_nth` picks which request of the action is held."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.providers.aws import AwsProvider
from tests.support.aws_endpoint import Ec2Endpoint
from tests.unit.providers.test_aws_endpoint import ITEM, _point_boto3_at
from tests.unit.providers.test_aws_stubs import ACCOUNT, KEY

WAIT = 10.0


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Ec2Endpoint]:
    with Ec2Endpoint() as running:
        _point_boto3_at(running.url, monkeypatch, tmp_path)
        yield running


class Background:
    """`work()` run in a thread; `answer` is what it returned, `done` when it has."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.answer: Any = None
        self.done = threading.Event()

        def run() -> None:
            self.answer = work()
            self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()


def _post_knobs(url: str, knobs: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{url}/_knobs", data=json.dumps(knobs).encode(), method="POST"
    )
    with urllib.request.urlopen(request) as answer:  # noqa: S310 (loopback)
        return dict(json.load(answer))


def _state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_state") as answer:  # noqa: S310 (loopback)
        return dict(json.load(answer))


def test_a_held_purchase_is_bought_and_others_are_served_until_it_is_released(
    endpoint: Ec2Endpoint,
) -> None:
    provider = AwsProvider()
    quote = provider.quote(ITEM, ACCOUNT)
    endpoint.set_knobs({"hold": "PurchaseReservedInstancesOffering"})

    buying = Background(lambda: provider.purchase(KEY, ITEM, ACCOUNT, quote))

    assert endpoint.held.wait(WAIT)
    assert endpoint.purchases == 1  # applied to the store before the answer is held
    assert provider.quote(ITEM, ACCOUNT).offering_id == quote.offering_id  # served meanwhile
    assert _state(endpoint.url)["held"] is True
    assert not buying.done.is_set()

    endpoint.release()

    assert buying.done.wait(WAIT)
    assert buying.answer in endpoint.reservations
    assert endpoint.reservations[buying.answer]["tags"] == {"ccp:idempotency-key": KEY}
    assert not endpoint.held.is_set() and _state(endpoint.url)["held"] is False


def test_hold_nth_holds_that_request_of_the_action_and_knobs_release_it(
    endpoint: Ec2Endpoint,
) -> None:
    provider = AwsProvider()
    quote = provider.quote(ITEM, ACCOUNT)
    _post_knobs(endpoint.url, {"hold": "CreateTags", "hold_nth": 2})

    first = provider.purchase(f"{KEY}-first", ITEM, ACCOUNT, quote)  # its CreateTags is the 1st
    assert not endpoint.held.is_set()
    second = Background(lambda: provider.purchase(KEY, ITEM, ACCOUNT, quote))

    assert endpoint.held.wait(WAIT)
    tagged = {rid: r["tags"] for rid, r in endpoint.reservations.items()}
    assert len(tagged) == 2 and all(tagged.values())  # the held tag is already applied
    assert not second.done.is_set()
    _post_knobs(endpoint.url, {"release": True})

    assert second.done.wait(WAIT)
    assert {first, second.answer} == set(endpoint.reservations)
    assert endpoint.state()["hold"] is None  # one hold per setting
    provider.purchase(f"{KEY}-third", ITEM, ACCOUNT, quote)  # not held
    assert endpoint.purchases == 3


def test_a_hold_nobody_releases_ends_after_hold_seconds(endpoint: Ec2Endpoint) -> None:
    endpoint.set_knobs({"hold": "DescribeReservedInstancesOfferings", "hold_seconds": 1.0})

    quoting = Background(lambda: AwsProvider().quote(ITEM, ACCOUNT).offering_id)

    assert endpoint.held.wait(WAIT)
    assert not quoting.done.is_set()
    assert quoting.done.wait(WAIT)
    assert quoting.answer == "ri-offer-m5large-1y-no"
    assert not endpoint.held.is_set()
