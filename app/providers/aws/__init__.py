"""The AWS provider: reserved capacity and Savings Plans bought through boto3.

Clients come from `boto3.Session()`'s default credential chain (botocore honours
`AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` itself), with botocore's standard retry
mode retrying throttling with backoff; an account with `aws_role_arn` acts
through that role (STS AssumeRole, session `commitment-control-plane`, the account's
`external_id` as ExternalId when it has one). A call runs in the item's `region`; Savings
Plans in us-east-1 (a global API). Constructing the provider touches nothing.

How each service carries the ledger's idempotency key, and how `find` looks it up:

- `ec2`: the purchase takes no token and no tags: the reservation is tagged
  `ccp:idempotency-key=<key>` (CreateTags) right after; `find` is DescribeReservedInstances
  filtered by that tag. When no reservation carries it and `find` is given `since` (when
  the ledger claimed the key), a purchase whose answer or tag was lost is recognised by
  what it is: an untagged, bought (payment-pending or active) reservation of the item's
  instance type, platform, tenancy, scope, offering class, payment option, term and count,
  started since the claim less a clock skew of a few minutes; it is tagged with the key
  then. Dry run: the purchase with `DryRun=True`.
- `rds`, `elasticache`, `memorydb`: the caller chooses the reservation id
  (`ReservedDBInstanceId`, `ReservedCacheNodeId`, `ReservationId`) = `key_name(key)`, and the
  purchase is tagged; `find` describes that id.
- `opensearch`: the caller chooses `ReservationName` = `key_name(key)` (the purchase takes
  no tags); `find` walks DescribeReservedInstances (capped pages) for that name.
- `redshift`: the purchase takes no token, no chosen id and no tags, and reserved nodes
  cannot be tagged. `find` needs `since`: it walks DescribeReservedNodes (capped pages)
  for a node of the item's offering and count, started since the claim less the clock
  skew, not payment-failed; without `since` it fails (`LookupFailed`).
- `savingsplans`: `clientToken` = `key_uuid(key)` and the tag; `find` walks
  DescribeSavingsPlans (capped pages) for the tag.

The EC2 and Redshift recognition is a heuristic: an identical purchase made by someone
else (or under another key of ours) in the same minutes, still untagged, is taken for
this key's. That errs the safe way: the item is recorded as bought and one reservation
too few may be bought; nothing is ever bought twice.

A purchase that may have bought but whose answer was lost (a connection broken or timed
out after the request left, a 5xx that is not throttling) raises `OutcomeUnknown`: the
ledger keeps its claim and a retry looks the key up before buying. EC2 and Redshift
purchases carry no token, so botocore may re-send them only when AWS answered that it did
nothing (throttling) or the request never left (a refused connection); the other services'
purchases carry the key, so botocore's own retries are safe for them.

`check` proves the credentials with STS GetCallerIdentity and one cheap EC2 read; when IAM
denies it, `missing` is `REQUIRED_ACTIONS`, the IAM actions the purchasing role needs:
`sts:GetCallerIdentity`; `ec2:DescribeReservedInstancesOfferings`,
`ec2:PurchaseReservedInstancesOffering`, `ec2:DescribeReservedInstances`, `ec2:CreateTags`;
`rds:DescribeReservedDBInstancesOfferings`, `rds:PurchaseReservedDBInstancesOffering`,
`rds:DescribeReservedDBInstances`, `rds:AddTagsToResource`;
`elasticache:DescribeReservedCacheNodesOfferings`,
`elasticache:PurchaseReservedCacheNodesOffering`, `elasticache:DescribeReservedCacheNodes`,
`elasticache:AddTagsToResource`; `memorydb:DescribeReservedNodesOfferings`,
`memorydb:PurchaseReservedNodesOffering`, `memorydb:DescribeReservedNodes`,
`memorydb:TagResource`; `es:DescribeReservedInstanceOfferings`,
`es:PurchaseReservedInstanceOffering`, `es:DescribeReservedInstances`;
`redshift:DescribeReservedNodeOfferings`, `redshift:PurchaseReservedNodeOffering`,
`redshift:DescribeReservedNodes`;
`savingsplans:DescribeSavingsPlansOfferings`, `savingsplans:CreateSavingsPlan`,
`savingsplans:DescribeSavingsPlans`, `savingsplans:TagResource`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.domain.providers import normalize_service
from app.providers import (
    AccountTarget,
    ConnectionReport,
    LookupFailed,
    ProviderError,
    PurchaseFailed,
    Quote,
)
from app.providers.aws import recommendations as cost_explorer
from app.providers.aws import savings_plans
from app.providers.aws.clients import Boto3Clients, ClientFactory
from app.providers.aws.common import Service
from app.providers.aws.databases import ElastiCache, MemoryDb, Rds
from app.providers.aws.ec2 import Ec2
from app.providers.aws.errors import call, explain
from app.providers.aws.paged import OpenSearch, Redshift
from app.providers.aws.savings_plans import SavingsPlans

__all__ = ["REQUIRED_ACTIONS", "AwsProvider"]

REQUIRED_ACTIONS: tuple[str, ...] = (
    "sts:GetCallerIdentity",
    "ec2:DescribeReservedInstancesOfferings",
    "ec2:PurchaseReservedInstancesOffering",
    "ec2:DescribeReservedInstances",
    "ec2:CreateTags",
    "rds:DescribeReservedDBInstancesOfferings",
    "rds:PurchaseReservedDBInstancesOffering",
    "rds:DescribeReservedDBInstances",
    "rds:AddTagsToResource",
    "elasticache:DescribeReservedCacheNodesOfferings",
    "elasticache:PurchaseReservedCacheNodesOffering",
    "elasticache:DescribeReservedCacheNodes",
    "elasticache:AddTagsToResource",
    "memorydb:DescribeReservedNodesOfferings",
    "memorydb:PurchaseReservedNodesOffering",
    "memorydb:DescribeReservedNodes",
    "memorydb:TagResource",
    "es:DescribeReservedInstanceOfferings",
    "es:PurchaseReservedInstanceOffering",
    "es:DescribeReservedInstances",
    "redshift:DescribeReservedNodeOfferings",
    "redshift:PurchaseReservedNodeOffering",
    "redshift:DescribeReservedNodes",
    "savingsplans:DescribeSavingsPlansOfferings",
    "savingsplans:CreateSavingsPlan",
    "savingsplans:DescribeSavingsPlans",
    "savingsplans:TagResource",
)

SERVICES: dict[str, Service] = {
    "ec2": Ec2(),
    "rds": Rds(),
    "elasticache": ElastiCache(),
    "memorydb": MemoryDb(),
    "opensearch": OpenSearch(),
    "redshift": Redshift(),
    "savingsplans": SavingsPlans(),
}
# Where `check` reads when the account names no region of its own.
CHECK_REGION = "us-east-1"


@dataclass(frozen=True)
class AwsProvider:
    """Buys from AWS. `client_factory(account, service_name, region)` makes each botocore
    client (tests hand in one that answers through botocore's Stubber)."""

    client_factory: ClientFactory = field(default_factory=Boto3Clients)
    name: str = field(default="aws", init=False)

    def can_find(self, service: str) -> bool:
        known = SERVICES.get(normalize_service(service))
        return known is not None and known.findable

    def quote(self, item: Mapping[str, Any], account: AccountTarget) -> Quote:
        service, client = self._open(item, account)
        return service.quote(client, item)

    def rehearse(self, item: Mapping[str, Any], account: AccountTarget) -> Quote:
        service, client = self._open(item, account)
        quote = service.quote(client, item)
        service.rehearse(client, item, quote)
        return quote

    def purchase(
        self, key: str, item: Mapping[str, Any], account: AccountTarget, quote: Quote
    ) -> str:
        service, client = self._open(item, account)
        return service.purchase(client, key, item, quote)

    def find(
        self,
        key: str,
        item: Mapping[str, Any],
        account: AccountTarget,
        *,
        since: datetime | None = None,
    ) -> str | None:
        try:
            service, client = self._open(item, account)
            return service.find(client, key, item, since)
        except LookupFailed:
            raise
        except ProviderError as failure:
            raise LookupFailed(str(failure)) from None

    def check(self, account: AccountTarget) -> ConnectionReport:
        try:
            sts = self._client(account, "sts", CHECK_REGION, "sts:GetCallerIdentity")
            identity = call("sts:GetCallerIdentity", lambda: sts.get_caller_identity())
            probe = "ec2:DescribeReservedInstancesOfferings"
            ec2 = self._client(account, "ec2", CHECK_REGION, probe)
            call(
                probe,
                lambda: ec2.describe_reserved_instances_offerings(MaxResults=5),
            )
        except ProviderError as failure:
            message = str(failure)
            if "IAM denied" not in message:
                return ConnectionReport(ok=False, message=message)
            return ConnectionReport(
                ok=False,
                message=f"{message}; the purchasing role needs: {', '.join(REQUIRED_ACTIONS)}",
                missing=REQUIRED_ACTIONS,
            )
        return ConnectionReport(ok=True, message=f"connected as {identity.get('Arn', '?')}")

    def recommendations(self, account: AccountTarget) -> list[dict[str, Any]]:
        """Cost Explorer's reservation and Savings Plans recommendations for the account
        (`app.providers.aws.recommendations`)."""
        client = self._client(account, "ce", cost_explorer.REGION, "ce (recommendations)")
        return cost_explorer.recommendations(client, account, cost_explorer.Query())

    def _open(self, item: Mapping[str, Any], account: AccountTarget) -> tuple[Service, Any]:
        """The item's service and a client for it in the item's region."""
        name = normalize_service(item.get("service"))
        service = SERVICES.get(name)
        if service is None:
            raise PurchaseFailed(
                f"AWS purchasing has no service {name!r}: it buys {', '.join(SERVICES)}"
            )
        region = savings_plans.REGION if name == "savingsplans" else str(item.get("region") or "")
        if not region:
            raise PurchaseFailed("the item has no region: AWS reservations are bought per region")
        return service, self._client(account, service.client_name, region, name)

    def _client(self, account: AccountTarget, service: str, region: str, action: str) -> Any:
        try:
            return self.client_factory(account, service, region)
        except (BotoCoreError, ClientError) as error:  # e.g. an unknown region
            raise explain(f"{action} (client setup)", error) from None
