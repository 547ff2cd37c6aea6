"""OpenSearch reserved instances and Redshift reserved nodes: their offering listings
take no filters, so the quote walks the pages (at most `MAX_PAGES`) for the first
offering that matches the item.

OpenSearch: the caller names the reservation (`ReservationName`, 5 to 64 characters):
`key_name(key)`. The purchase takes no tags, and `DescribeReservedInstances` cannot
filter by name, so `find` walks its pages (capped) for that name. A purchase re-sent
under a name AWS already holds answers the reservation bought first.

Redshift: `PurchaseReservedNodeOffering` takes no token, no caller-chosen id and no tags,
and reserved nodes are not among the resources Redshift's `CreateTags`/`DescribeTags`
accept, so nothing at AWS ties a reserved node to the key. botocore may not re-send the
purchase after an ambiguous failure (the purchase raises `OutcomeUnknown` instead). `find`
recognises a purchase by what it is, given when the ledger claimed the key (`since`): a
reserved node (`DescribeReservedNodes`, capped pages) of the item's offering (its
`offering_id`, else the offering the quote picks now), of the item's count, started no
earlier than `since` less `CLOCK_SKEW`, and not `payment-failed` or `retired`; the
earliest such node is taken. Without `since` it cannot tell, and says so (`LookupFailed`).
This is a heuristic, and an honest one only in the safe direction: an identical purchase
made by someone else in the same minutes, or by another key of ours for an identical
item, is taken for this key's, so the item is recorded as bought and one node too few
may be bought; a purchase of ours is never bought twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.providers import LookupFailed, PurchaseFailed, Quote, key_name
from app.providers.aws.common import (
    buy,
    count,
    decimal,
    guard_unsafe_retries,
    hourly,
    pages,
    payment_option,
    priced,
    refused,
    started_since,
    term_seconds,
    text,
)
from app.providers.aws.errors import call, error_code, explain

Page = tuple[list[dict[str, Any]], str | None]
# OpenSearch spells payment options its own way.
_OPENSEARCH_PAYMENT = {
    "No Upfront": "NO_UPFRONT",
    "Partial Upfront": "PARTIAL_UPFRONT",
    "All Upfront": "ALL_UPFRONT",
}
REDSHIFT_UNFINDABLE = (
    "Redshift reserved nodes carry no idempotency token, chosen id or tag, and the ledger "
    "gave no claim time to recognise the purchase by: check the account's reserved nodes "
    "by hand"
)
# A reserved node in these states was never bought, or is long past.
_REDSHIFT_NOT_BOUGHT = frozenset({"payment-failed", "retired"})


def _charges(offering: Mapping[str, Any]) -> Any:
    return decimal(offering.get("UsagePrice")) + hourly(
        offering.get("RecurringCharges", []), "RecurringChargeAmount", "RecurringChargeFrequency"
    )


@dataclass(frozen=True)
class OpenSearch:
    client_name: str = "opensearch"
    findable: bool = True

    def quote(self, client: Any, item: Mapping[str, Any]) -> Quote:
        action = "es:DescribeReservedInstanceOfferings"
        offering_id = str(item.get("offering_id") or "")
        wanted = {} if offering_id else self.wanted(item)

        def fetch(token: str | None) -> Page:
            extra: dict[str, Any] = {"NextToken": token} if token else {}
            if offering_id:
                extra["ReservedInstanceOfferingId"] = offering_id
            answer = call(
                action,
                lambda: client.describe_reserved_instance_offerings(MaxResults=100, **extra),
            )
            return answer.get("ReservedInstanceOfferings", []), answer.get("NextToken")

        what = offering_id or ", ".join(f"{k}={v}" for k, v in wanted.items())
        for offering in pages(fetch, f"OpenSearch offerings for {what}"):
            if all(offering.get(field) == value for field, value in wanted.items()):
                return priced(
                    str(offering["ReservedInstanceOfferingId"]),
                    item,
                    fixed=offering.get("FixedPrice"),
                    hourly_rate=_charges(offering),
                    currency=offering.get("CurrencyCode"),
                    description=(
                        f"OpenSearch {offering.get('InstanceType')} {offering.get('PaymentOption')}"
                    ),
                )
        raise PurchaseFailed(f"offering not found: OpenSearch reserved instances with {what}")

    @staticmethod
    def wanted(item: Mapping[str, Any]) -> dict[str, Any]:
        """The offering fields the item asks for (matched while walking the pages)."""
        return {
            "InstanceType": text(item, "resource_type"),
            "Duration": term_seconds(item),
            "PaymentOption": _OPENSEARCH_PAYMENT[payment_option(item)],
        }

    def rehearse(self, client: Any, item: Mapping[str, Any], quote: Quote) -> None:
        """OpenSearch has no dry run: the quote is the rehearsal."""

    def purchase(self, client: Any, key: str, item: Mapping[str, Any], quote: Quote) -> str:
        action = "es:PurchaseReservedInstanceOffering"
        try:
            answer = client.purchase_reserved_instance_offering(
                ReservedInstanceOfferingId=quote.offering_id,
                ReservationName=key_name(key),
                InstanceCount=count(item),
            )
        except ClientError as error:
            if error_code(error) != "ResourceAlreadyExistsException":
                raise refused(action, error) from None
            found = self.find(client, key, item)
            if found is None:
                raise explain(action, error) from None
            return found
        except BotoCoreError as error:
            raise refused(action, error) from None
        return str(answer["ReservedInstanceId"])

    def find(
        self, client: Any, key: str, item: Mapping[str, Any], since: datetime | None = None
    ) -> str | None:
        name = key_name(key)

        def fetch(token: str | None) -> Page:
            extra = {"NextToken": token} if token else {}
            answer = call(
                "es:DescribeReservedInstances",
                lambda: client.describe_reserved_instances(MaxResults=100, **extra),
            )
            return answer.get("ReservedInstances", []), answer.get("NextToken")

        for reservation in pages(fetch, "OpenSearch reserved instances"):
            if reservation.get("ReservationName") == name:
                return str(reservation["ReservedInstanceId"])
        return None


@dataclass(frozen=True)
class Redshift:
    client_name: str = "redshift"
    findable: bool = True

    def quote(self, client: Any, item: Mapping[str, Any]) -> Quote:
        action = "redshift:DescribeReservedNodeOfferings"
        offering_id = str(item.get("offering_id") or "")
        wanted = {} if offering_id else self.wanted(item)

        def fetch(marker: str | None) -> Page:
            extra: dict[str, Any] = {"Marker": marker} if marker else {}
            if offering_id:
                extra["ReservedNodeOfferingId"] = offering_id
            answer = call(
                action, lambda: client.describe_reserved_node_offerings(MaxRecords=100, **extra)
            )
            return answer.get("ReservedNodeOfferings", []), answer.get("Marker")

        what = offering_id or ", ".join(f"{k}={v}" for k, v in wanted.items())
        for offering in pages(fetch, f"Redshift offerings for {what}"):
            kind = offering.get("ReservedNodeOfferingType", "Regular")
            regular = bool(offering_id) or kind == "Regular"
            if regular and all(offering.get(field) == value for field, value in wanted.items()):
                return priced(
                    str(offering["ReservedNodeOfferingId"]),
                    item,
                    fixed=offering.get("FixedPrice"),
                    hourly_rate=_charges(offering),
                    currency=offering.get("CurrencyCode"),
                    description=(
                        f"Redshift {offering.get('NodeType')} {offering.get('OfferingType')}"
                    ),
                )
        raise PurchaseFailed(f"offering not found: Redshift reserved nodes with {what}")

    @staticmethod
    def wanted(item: Mapping[str, Any]) -> dict[str, Any]:
        """The offering fields the item asks for (among regular, not upgrade, offerings)."""
        return {
            "NodeType": text(item, "resource_type"),
            "Duration": term_seconds(item),
            "OfferingType": payment_option(item),
        }

    def rehearse(self, client: Any, item: Mapping[str, Any], quote: Quote) -> None:
        """Redshift has no dry run: the quote is the rehearsal."""

    def purchase(self, client: Any, key: str, item: Mapping[str, Any], quote: Quote) -> str:
        action = "redshift:PurchaseReservedNodeOffering"
        guard_unsafe_retries(client, "redshift.PurchaseReservedNodeOffering", action)
        answer = buy(
            action,
            lambda: client.purchase_reserved_node_offering(
                ReservedNodeOfferingId=quote.offering_id, NodeCount=count(item)
            ),
        )
        return str(answer["ReservedNode"]["ReservedNodeId"])

    def find(
        self, client: Any, key: str, item: Mapping[str, Any], since: datetime | None = None
    ) -> str | None:
        if since is None:
            raise LookupFailed(REDSHIFT_UNFINDABLE)
        offering_id = str(item.get("offering_id") or "") or self.quote(client, item).offering_id
        units = count(item)

        def fetch(marker: str | None) -> Page:
            extra = {"Marker": marker} if marker else {}
            answer = call(
                "redshift:DescribeReservedNodes",
                lambda: client.describe_reserved_nodes(MaxRecords=100, **extra),
            )
            return answer.get("ReservedNodes", []), answer.get("Marker")

        candidates = [
            node
            for node in pages(fetch, "Redshift reserved nodes")
            if node.get("ReservedNodeOfferingId") == offering_id
            and node.get("NodeCount") == units
            and str(node.get("State") or "") not in _REDSHIFT_NOT_BOUGHT
            and started_since(node.get("StartTime"), since)
        ]
        if not candidates:
            return None
        return str(min(candidates, key=lambda node: node["StartTime"])["ReservedNodeId"])
