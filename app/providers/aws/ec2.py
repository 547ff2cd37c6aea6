"""EC2 Reserved Instances.

`PurchaseReservedInstancesOffering` takes no client token and no tags, so the bought
reservation is tagged `ccp:idempotency-key=<key>` with `CreateTags` right after. botocore
may not re-send the purchase after an ambiguous failure (see `guard_unsafe_retries`): the
purchase raises `OutcomeUnknown` instead. The dry run is the purchase with `DryRun=True`:
`DryRunOperation` means it would have succeeded.

`find` is `DescribeReservedInstances` filtered by the tag. When no reservation carries it
and the ledger says when the key was claimed (`since`), a purchase whose answer or tag was
lost is recognised by what it is: a reservation in state `payment-pending` or `active`,
with the item's instance type, product description, duration, scope (and zone), offering
class and offering type (EC2's own filters), the item's tenancy and instance count, a
start no earlier than `since` less `CLOCK_SKEW`, and no `ccp:idempotency-key` tag at all
(a tagged one is another key's). The earliest such reservation is taken as ours and
tagged with the key (a tagging failure is logged; the id is still answered). An
identical purchase someone else made in the same minutes is indistinguishable from ours:
taking it buys one reservation too few, never one too many.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.providers import PurchaseFailed, Quote
from app.providers.aws.common import (
    TAG_KEY,
    buy,
    count,
    decimal,
    guard_unsafe_retries,
    hourly,
    pages,
    payment_option,
    priced,
    started_since,
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
# A reservation in these states was bought (payment-failed was not; retired is long past).
BOUGHT_STATES = ("payment-pending", "active")


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
        guard_unsafe_retries(client, "ec2.PurchaseReservedInstancesOffering", PURCHASE)
        answer = buy(
            PURCHASE,
            lambda: client.purchase_reserved_instances_offering(
                ReservedInstancesOfferingId=quote.offering_id, InstanceCount=count(item)
            ),
        )
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

    def find(
        self, client: Any, key: str, item: Mapping[str, Any], since: datetime | None = None
    ) -> str | None:
        answer = call(
            "ec2:DescribeReservedInstances",
            lambda: client.describe_reserved_instances(
                Filters=[{"Name": f"tag:{TAG_KEY}", "Values": [key]}]
            ),
        )
        for reservation in answer.get("ReservedInstances", []):
            return str(reservation["ReservedInstancesId"])
        if since is None:
            return None
        found = self._untagged_since(client, item, since)
        if found is not None:
            self._tag(client, found, key)
        return found

    def _untagged_since(self, client: Any, item: Mapping[str, Any], since: datetime) -> str | None:
        """The earliest untagged reservation matching the item that started since the
        claim (see the module)."""
        wanted = self._described(client, item)
        filters = [
            {"Name": "instance-type", "Values": [wanted["InstanceType"]]},
            {"Name": "product-description", "Values": [wanted["ProductDescription"]]},
            {"Name": "duration", "Values": [str(wanted["Duration"])]},
            {"Name": "scope", "Values": [wanted["Scope"]]},
            {"Name": "state", "Values": list(BOUGHT_STATES)},
        ]
        if wanted["Scope"] == "Availability Zone" and wanted["AvailabilityZone"]:
            filters.append({"Name": "availability-zone", "Values": [wanted["AvailabilityZone"]]})
        answer = call(
            "ec2:DescribeReservedInstances",
            lambda: client.describe_reserved_instances(
                Filters=filters,
                OfferingClass=wanted["OfferingClass"],
                OfferingType=wanted["OfferingType"],
            ),
        )
        units = count(item)
        candidates = [
            reservation
            for reservation in answer.get("ReservedInstances", [])
            if reservation.get("InstanceCount") == units
            and reservation.get("InstanceTenancy", wanted["InstanceTenancy"])
            == wanted["InstanceTenancy"]
            and started_since(reservation.get("Start"), since)
            and not any(tag.get("Key") == TAG_KEY for tag in reservation.get("Tags", []))
        ]
        if not candidates:
            return None
        earliest = min(candidates, key=lambda reservation: reservation["Start"])
        log.warning(
            "EC2 reservation %s carries no idempotency key but matches the item and started "
            "since the key was claimed: taken as the purchase whose answer was lost",
            earliest["ReservedInstancesId"],
        )
        return str(earliest["ReservedInstancesId"])

    def _described(self, client: Any, item: Mapping[str, Any]) -> dict[str, Any]:
        """What a reservation bought for the item looks like: the named offering's own
        fields when the item names one, else the fields the quote searches by."""
        offering_id = str(item.get("offering_id") or "")
        if not offering_id:
            filters = self.filters(item)
            return {
                "InstanceType": filters["InstanceType"],
                "ProductDescription": filters["ProductDescription"],
                "InstanceTenancy": filters["InstanceTenancy"],
                "OfferingClass": filters["OfferingClass"],
                "OfferingType": filters["OfferingType"],
                "Duration": filters["MinDuration"],
                "Scope": filters["Filters"][0]["Values"][0],
                "AvailabilityZone": filters.get("AvailabilityZone"),
            }
        answer = call(
            DESCRIBE_OFFERINGS,
            lambda: client.describe_reserved_instances_offerings(
                ReservedInstancesOfferingIds=[offering_id]
            ),
        )
        for offering in answer.get("ReservedInstancesOfferings", []):
            return {
                "InstanceType": offering.get("InstanceType"),
                "ProductDescription": offering.get("ProductDescription"),
                "InstanceTenancy": offering.get("InstanceTenancy") or "default",
                "OfferingClass": offering.get("OfferingClass") or "standard",
                "OfferingType": offering.get("OfferingType"),
                "Duration": offering.get("Duration"),
                "Scope": offering.get("Scope") or "Region",
                "AvailabilityZone": offering.get("AvailabilityZone"),
            }
        raise PurchaseFailed(
            f"offering not found: EC2 offering {offering_id}, so a reservation bought from "
            "it cannot be recognised"
        )


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
