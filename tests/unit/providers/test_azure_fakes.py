"""Azure's seam for the provider's tests: an azure-core HTTP transport that records every
request the SDK sends and answers from a script, and a TokenCredential that hands out a
fake token. No test lives here."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.credentials import AccessToken
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict

from app.providers import AccountTarget
from app.providers.azure import AzureProvider

SUBSCRIPTION = "7c1e0a52-8f1d-4b8e-9a3e-0d2b5f6c7a81"
ACCOUNT = AccountTarget(name="prod", provider="azure", azure_subscription_id=SUBSCRIPTION)
BILLED = AccountTarget(
    name="billed",
    provider="azure",
    azure_subscription_id=SUBSCRIPTION,
    azure_billing_scope="/providers/Microsoft.Billing/billingAccounts/1234",
)
TOKEN = "fake-token-never-shown"
ARM = "https://management.azure.com"


class FakeCredential:
    """A TokenCredential: every call gets the same fake bearer token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, 4_102_444_800)


@dataclass
class Seen:
    method: str
    url: str
    body: Any
    authorization: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return {name: values[0] for name, values in parse_qs(urlsplit(self.url).query).items()}


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class _Response(HttpResponseImpl):
    def __init__(self, request: HttpRequest, answer: Answer) -> None:
        super().__init__(
            request=request,
            internal_response=io.BytesIO(),
            status_code=answer.status,
            reason="",
            content_type="application/json",
            headers=case_insensitive_dict(answer.headers),
            stream_download_generator=None,
        )
        self._content = json.dumps(answer.body if answer.body is not None else {}).encode()


class FakeArm(HttpTransport):
    """Answers each request with the next scripted answer (an `Answer`, or an exception to
    raise as a network failure) and records it in `seen`."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[Seen] = []

    def send(self, request: Any, **kwargs: Any) -> _Response:
        content = request.content
        body = json.loads(content) if content else None
        self.seen.append(
            Seen(request.method, request.url, body, request.headers.get("Authorization", ""))
        )
        assert self.answers, f"unexpected request {request.method} {request.url}"
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return _Response(request, answer)

    def methods(self) -> list[str]:
        return [seen.method for seen in self.seen]

    def __enter__(self) -> FakeArm:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


def azure(transport: FakeArm) -> AzureProvider:
    """The provider on `transport`, with retries and polling that never wait."""
    return AzureProvider(
        credential=FakeCredential(),
        transport=transport,
        client_options={"retry_total": 2, "retry_backoff_factor": 0, "polling_interval": 0},
    )


def catalog(*entries: dict[str, Any], next_link: str | None = None) -> Answer:
    return Answer(200, {"value": list(entries), **({"nextLink": next_link} if next_link else {})})


def sku(name: str, terms: tuple[str, ...] = ("P1Y", "P3Y"), **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "virtualMachines",
        "name": name,
        "terms": list(terms),
        "locations": ["eastus"],
        "billingPlans": {term: ["Upfront", "Monthly"] for term in terms},
        **extra,
    }


def priced(amount: float, currency: str = "EUR") -> Answer:
    return Answer(
        200,
        {
            "properties": {
                "billingCurrencyTotal": {"currencyCode": currency, "amount": amount},
                "pricingCurrencyTotal": {"currencyCode": "USD", "amount": amount * 1.1},
                "skuTitle": "Reserved VM Instance, Standard_D2s_v3, US East, 1 Year",
            }
        },
    )


def order(order_id: str, state: str = "Succeeded") -> Answer:
    return Answer(
        200,
        {
            "id": f"/providers/microsoft.capacity/reservationOrders/{order_id}",
            "name": order_id,
            "properties": {"provisioningState": state, "originalQuantity": 2},
        },
    )


def arm_error(status: int, code: str, message: str, **headers: str) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}}, dict(headers))


def network_down() -> ServiceRequestError:
    return ServiceRequestError("connection refused by management.azure.com")
