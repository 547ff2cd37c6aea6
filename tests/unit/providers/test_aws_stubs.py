"""The seam every AWS unit test buys through: real botocore clients answered by botocore's
`Stubber`, which checks each request against the service model and the parameters the
test expects. No tests here."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import Stubber

from app.providers import AccountTarget
from app.providers.aws import AwsProvider

ACCOUNT = AccountTarget(name="prod", provider="aws")
KEY = "7b0c7e0e-5f7e-4c1a-9a53-2f4d1a6c9e10:0"


class StubbedClients:
    """A `client_factory`: one stubbed client per (service, region), made on first ask;
    `asked` lists every (service, region) the provider asked for."""

    def __init__(self) -> None:
        self.session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        self.clients: dict[tuple[str, str], Any] = {}
        self.stubbers: dict[tuple[str, str], Stubber] = {}
        self.asked: list[tuple[str, str]] = []

    def __call__(self, account: AccountTarget, service_name: str, region: str) -> Any:
        self.asked.append((service_name, region))
        self.stub(service_name, region)
        return self.clients[(service_name, region)]

    def stub(self, service_name: str, region: str = "us-east-1") -> Stubber:
        if (service_name, region) not in self.stubbers:
            client = self.session.client(service_name, region_name=region)  # type: ignore[call-overload]
            stubber = Stubber(client)
            stubber.activate()
            self.clients[(service_name, region)] = client
            self.stubbers[(service_name, region)] = stubber
        return self.stubbers[(service_name, region)]

    def done(self) -> None:
        """Every expected request was made."""
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


def provider_with() -> tuple[AwsProvider, StubbedClients]:
    clients = StubbedClients()
    return AwsProvider(client_factory=clients), clients
