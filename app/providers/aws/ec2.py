"""EC2 Reserved Instances.

`PurchaseReservedInstancesOffering` takes no client token and no tags, so the bought
reservation is tagged `ccp:idempotency-key=<key>` with `CreateTags` right after, and
`find` is `DescribeReservedInstances` filtered by that tag. botocore may not re-send the
purchase after an ambiguous failure (see `guard_unsafe_retries`). The dry run is the
purchase with `DryRun=True`: `DryRunOperation` means it would have succeeded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.providers import PurchaseFailed, Quote
from app.providers.aws.common import (
    TAG_KEY,
    OutcomeUnknown,
    count,
    decimal,
    guard_unsafe_retries,
    hourly,
    outcome_unknown,
    pages,
    payment_option,
    priced,
    term_seconds,
    text,
)
from app.providers.aws.errors import call, error_code, explain

log = logging.getLogger(__name__)

PURCHASE = "ec2:PurchaseReservedInstancesOffering"
DESCRIBE_OFFERINGS = "ec2:DescribeReservedInstancesOfferings"
# A reservation just bought may not be visible to CreateTags at once (EC2 is eventually
# consistent): tagging is tried again after these pauses, in seconds.
TAG_PAUSES = (0.5, 1.0, 2.0)
_NOT_YET_VISIBLE = frozenset({"InvalidReservedInstancesId", "InvalidID"})


@dataclass(frozen=True)
class Ec2:
    client_name: str = "ec2"
    findable: bool = True

    def quote(self, client: Any, item: Mapping[str, Any]) -> Quote:
        offering_id = str(item.get("offering_id") or "")
        if offering_id:
            answer = call(
                DESCRIBE_OFFERINGS,
                lambda: client.describe_reserved_instances_offerings(
                    ReservedInstancesOfferingIds=[offering_id]
                ),
            )
            found = answer.get("ReservedInstancesOfferings", [])
            if not found:
                raise PurchaseFailed(f"offering not found: EC2 offering {offering_id}")
            return _priced(found[0], item)
        filters = self.filters(item)
        wanted = ", ".join(f"{k}={v}" for k, v in filters.items() if k != "Filters")

        def fetch(token: str | None) -> tuple[list[dict[str, Any]], str | None]:
            extra = {"NextToken": token} if token else {}
            answer = call(
                DESCRIBE_OFFERINGS,
                lambda: client.describe_reserved_instances_offerings(
                    **filters, MaxResults=100, **extra
                ),
            )
            return answer.get("ReservedInstancesOfferings", []), answer.get("NextToken")

        for offering in pages(fetch, f"EC2 offerings for {wanted}"):
            if not offering.get("Marketplace"):
                return _priced(offering, item)
        raise PurchaseFailed(f"offering not found: EC2 reserved instances with {wanted}")

    @staticmethod
    def filters(item: Mapping[str, Any]) -> dict[str, Any]:
        """The typed filters `DescribeReservedInstancesOfferings` gets for the item."""
        seconds = term_seconds(item)
        scope = text(item, "scope", "Region")
        filters: dict[str, Any] = {
            "InstanceType": text(item, "resource_type"),
            "ProductDescription": text(item, "platform", "Linux/UNIX"),
            "InstanceTenancy": text(item, "tenancy", "default"),
            "OfferingClass": text(item, "offering_class", "standard"),
            "OfferingType": payment_option(item),
            "MinDuration": seconds,
            "MaxDuration": seconds,
            "IncludeMarketplace": False,
            "Filters": [{"Name": "scope", "Values": [scope]}],
        }
        if scope == "Availability Zone":
            filters["AvailabilityZone"] = text(item, "availability_zone")
        return filters

    def rehearse(self, client: Any, item: Mapping[str, Any], quote: Quote) -> None:
        try:
            client.purchase_reserved_instances_offering(
                ReservedInstancesOfferingId=quote.offering_id,
                InstanceCount=count(item),
                DryRun=True,
            )
        except ClientError as error:
            if error_code(error) == "DryRunOperation":
                return
            raise explain(PURCHASE, error) from None
        except BotoCoreError as error:
            raise explain(PURCHASE, error) from None

    def purchase(self, client: Any, key: str, item: Mapping[str, Any], quote: Quote) -> str:
        guard_unsafe_retries(client, "ec2.PurchaseReservedInstancesOffering")
        try:
            answer = call(
                PURCHASE,
                lambda: client.purchase_reserved_instances_offering(
                    ReservedInstancesOfferingId=quote.offering_id, InstanceCount=count(item)
                ),
            )
        except OutcomeUnknown as why:
            raise outcome_unknown(PURCHASE, why) from None
        reservation = str(answer["ReservedInstancesId"])
        self._tag(client, reservation, key)
        return reservation

    def _tag(self, client: Any, reservation: str, key: str) -> None:
        """Tag what was bought; a failure is logged, never raised: the purchase stands
        and the executor records it (only a lost outcome needs the tag)."""
        for pause in (*TAG_PAUSES, None):
            try:
                client.create_tags(Resources=[reservation], Tags=[{"Key": TAG_KEY, "Value": key}])
                return
            except ClientError as error:
                if error_code(error) in _NOT_YET_VISIBLE and pause is not None:
                    time.sleep(pause)
                    continue
                reason = str(explain("ec2:CreateTags", error))
            except BotoCoreError as error:
                reason = str(explain("ec2:CreateTags", error))
            log.warning(
                "EC2 reservation %s was bought under key %s but not tagged: %s",
                reservation,
                key,
                reason,
            )
            return

    def find(self, client: Any, key: str, item: Mapping[str, Any]) -> str | None:
        answer = call(
            "ec2:DescribeReservedInstances",
            lambda: client.describe_reserved_instances(
                Filters=[{"Name": f"tag:{TAG_KEY}", "Values": [key]}]
            ),
        )
        for reservation in answer.get("ReservedInstances", []):
            return str(reservation["ReservedInstancesId"])
        return None


def _priced(offering: Mapping[str, Any], item: Mapping[str, Any]) -> Quote:
    rate = decimal(offering.get("UsagePrice")) + hourly(
        offering.get("RecurringCharges", []), "Amount", "Frequency"
    )
    return priced(
        str(offering["ReservedInstancesOfferingId"]),
        item,
        fixed=offering.get("FixedPrice"),
        hourly_rate=rate,
        currency=offering.get("CurrencyCode"),
        description=(
            f"EC2 {offering.get('InstanceType')} {offering.get('ProductDescription')} "
            f"{offering.get('OfferingClass')} {offering.get('OfferingType')} "
            f"({offering.get('Scope') or 'Region'})"
        ),
    )
