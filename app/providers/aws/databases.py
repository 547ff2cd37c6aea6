"""RDS, ElastiCache and MemoryDB reserved nodes: APIs that let the caller choose the
reservation's id, so the key is carried as that id (`key_name(key)`: `ccp-` and 36
lower-case hex digits, within every one of these APIs' rules) and as the tag
`ccp:idempotency-key`. `find` describes the reservation by that id; a purchase re-sent
under an id AWS already holds ("already exists") answers the reservation bought first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.providers import PurchaseFailed, Quote, key_name
from app.providers.aws.common import (
    TAG_KEY,
    count,
    decimal,
    hourly,
    pages,
    payment_option,
    priced,
    refused,
    term_seconds,
    text,
)
from app.providers.aws.errors import call, call_or_absent, error_code

Page = tuple[list[dict[str, Any]], str | None]


def _tags(key: str) -> list[dict[str, str]]:
    return [{"Key": TAG_KEY, "Value": key}]


def _first_offering(fetch: Callable[[str | None], Page], what: str, kind: str) -> dict[str, Any]:
    for offering in pages(fetch, what):
        return offering
    raise PurchaseFailed(f"offering not found: {kind} with {what}")


def _bought_once(
    action: str,
    buy: Callable[[], Mapping[str, Any]],
    already: str,
    again: Callable[[], str | None],
) -> Mapping[str, Any] | str:
    """The purchase's answer; or, when AWS already holds the chosen id (`already`), the
    id found for it (a purchase re-sent after its answer was lost). A failure that may
    have bought raises `OutcomeUnknown` (see `refused`)."""
    try:
        return buy()
    except ClientError as error:
        if error_code(error) != already:
            raise refused(action, error) from None
    except BotoCoreError as error:
        raise refused(action, error) from None
    found = again()
    if found is None:
        raise PurchaseFailed(f"{action} says the reservation exists, but it cannot be found")
    return found


@dataclass(frozen=True)
class Rds:
    client_name: str = "rds"
    findable: bool = True

    def quote(self, client: Any, item: Mapping[str, Any]) -> Quote:
        action = "rds:DescribeReservedDBInstancesOfferings"
        offering_id = str(item.get("offering_id") or "")
        filters: dict[str, Any] = (
            {"ReservedDBInstancesOfferingId": offering_id}
            if offering_id
            else {
                "DBInstanceClass": text(item, "resource_type"),
                "ProductDescription": text(item, "engine"),
                "Duration": str(term_seconds(item)),
                "OfferingType": payment_option(item),
                "MultiAZ": bool(item.get("multi_az", False)),
            }
        )

        def fetch(marker: str | None) -> Page:
            extra = {"Marker": marker} if marker else {}
            answer = call(
                action,
                lambda: client.describe_reserved_db_instances_offerings(
                    **filters, MaxRecords=100, **extra
                ),
            )
            return answer.get("ReservedDBInstancesOfferings", []), answer.get("Marker")

        what = ", ".join(f"{k}={v}" for k, v in filters.items())
        offering = _first_offering(fetch, what, "RDS reserved instances")
        return priced(
            str(offering["ReservedDBInstancesOfferingId"]),
            item,
            fixed=offering.get("FixedPrice"),
            hourly_rate=decimal(offering.get("UsagePrice"))
            + hourly(
                offering.get("RecurringCharges", []),
                "RecurringChargeAmount",
                "RecurringChargeFrequency",
            ),
            currency=offering.get("CurrencyCode"),
            description=(
                f"RDS {offering.get('DBInstanceClass')} {offering.get('ProductDescription')} "
                f"{'Multi-AZ' if offering.get('MultiAZ') else 'Single-AZ'} "
                f"{offering.get('OfferingType')}"
            ),
        )

    def rehearse(self, client: Any, item: Mapping[str, Any], quote: Quote) -> None:
        """RDS has no dry run: the quote is the rehearsal."""

    def purchase(self, client: Any, key: str, item: Mapping[str, Any], quote: Quote) -> str:
        action = "rds:PurchaseReservedDBInstancesOffering"
        answer = _bought_once(
            action,
            lambda: client.purchase_reserved_db_instances_offering(
                ReservedDBInstancesOfferingId=quote.offering_id,
                ReservedDBInstanceId=key_name(key),
                DBInstanceCount=count(item),
                Tags=_tags(key),
            ),
            "ReservedDBInstanceAlreadyExists",
            lambda: self.find(client, key, item),
        )
        if isinstance(answer, str):
            return answer
        return str(answer["ReservedDBInstance"]["ReservedDBInstanceId"])

    def find(
        self, client: Any, key: str, item: Mapping[str, Any], since: datetime | None = None
    ) -> str | None:
        answer = call_or_absent(
            "rds:DescribeReservedDBInstances",
            lambda: client.describe_reserved_db_instances(ReservedDBInstanceId=key_name(key)),
            {"ReservedDBInstanceNotFound"},
        )
        for reservation in (answer or {}).get("ReservedDBInstances", []):
            return str(reservation["ReservedDBInstanceId"])
        return None


@dataclass(frozen=True)
class ElastiCache:
    client_name: str = "elasticache"
    findable: bool = True

    def quote(self, client: Any, item: Mapping[str, Any]) -> Quote:
        action = "elasticache:DescribeReservedCacheNodesOfferings"
        offering_id = str(item.get("offering_id") or "")
        filters: dict[str, Any] = (
            {"ReservedCacheNodesOfferingId": offering_id}
            if offering_id
            else {
                "CacheNodeType": text(item, "resource_type"),
                "ProductDescription": text(item, "engine"),
                "Duration": str(term_seconds(item)),
                "OfferingType": payment_option(item),
            }
        )

        def fetch(marker: str | None) -> Page:
            extra = {"Marker": marker} if marker else {}
            answer = call(
                action,
                lambda: client.describe_reserved_cache_nodes_offerings(
                    **filters, MaxRecords=100, **extra
                ),
            )
            return answer.get("ReservedCacheNodesOfferings", []), answer.get("Marker")

        what = ", ".join(f"{k}={v}" for k, v in filters.items())
        offering = _first_offering(fetch, what, "ElastiCache reserved nodes")
        return priced(
            str(offering["ReservedCacheNodesOfferingId"]),
            item,
            fixed=offering.get("FixedPrice"),
            hourly_rate=decimal(offering.get("UsagePrice"))
            + hourly(
                offering.get("RecurringCharges", []),
                "RecurringChargeAmount",
                "RecurringChargeFrequency",
            ),
            currency="USD",
            description=(
                f"ElastiCache {offering.get('CacheNodeType')} "
                f"{offering.get('ProductDescription')} {offering.get('OfferingType')}"
            ),
        )

    def rehearse(self, client: Any, item: Mapping[str, Any], quote: Quote) -> None:
        """ElastiCache has no dry run: the quote is the rehearsal."""

    def purchase(self, client: Any, key: str, item: Mapping[str, Any], quote: Quote) -> str:
        answer = _bought_once(
            "elasticache:PurchaseReservedCacheNodesOffering",
            lambda: client.purchase_reserved_cache_nodes_offering(
                ReservedCacheNodesOfferingId=quote.offering_id,
                ReservedCacheNodeId=key_name(key),
                CacheNodeCount=count(item),
                Tags=_tags(key),
            ),
            "ReservedCacheNodeAlreadyExists",
            lambda: self.find(client, key, item),
        )
        if isinstance(answer, str):
            return answer
        return str(answer["ReservedCacheNode"]["ReservedCacheNodeId"])

    def find(
        self, client: Any, key: str, item: Mapping[str, Any], since: datetime | None = None
    ) -> str | None:
        answer = call_or_absent(
            "elasticache:DescribeReservedCacheNodes",
            lambda: client.describe_reserved_cache_nodes(ReservedCacheNodeId=key_name(key)),
            {"ReservedCacheNodeNotFound"},
        )
        for reservation in (answer or {}).get("ReservedCacheNodes", []):
            return str(reservation["ReservedCacheNodeId"])
        return None


@dataclass(frozen=True)
class MemoryDb:
    client_name: str = "memorydb"
    findable: bool = True

    def quote(self, client: Any, item: Mapping[str, Any]) -> Quote:
        action = "memorydb:DescribeReservedNodesOfferings"
        offering_id = str(item.get("offering_id") or "")
        filters: dict[str, Any] = (
            {"ReservedNodesOfferingId": offering_id}
            if offering_id
            else {
                "NodeType": text(item, "resource_type"),
                "Duration": str(term_seconds(item)),
                "OfferingType": payment_option(item),
            }
        )

        def fetch(token: str | None) -> Page:
            extra = {"NextToken": token} if token else {}
            answer = call(
                action,
                lambda: client.describe_reserved_nodes_offerings(
                    **filters, MaxResults=100, **extra
                ),
            )
            return answer.get("ReservedNodesOfferings", []), answer.get("NextToken")

        what = ", ".join(f"{k}={v}" for k, v in filters.items())
        offering = _first_offering(fetch, what, "MemoryDB reserved nodes")
        return priced(
            str(offering["ReservedNodesOfferingId"]),
            item,
            fixed=offering.get("FixedPrice"),
            hourly_rate=hourly(
                offering.get("RecurringCharges", []),
                "RecurringChargeAmount",
                "RecurringChargeFrequency",
            ),
            currency="USD",
            description=f"MemoryDB {offering.get('NodeType')} {offering.get('OfferingType')}",
        )

    def rehearse(self, client: Any, item: Mapping[str, Any], quote: Quote) -> None:
        """MemoryDB has no dry run: the quote is the rehearsal."""

    def purchase(self, client: Any, key: str, item: Mapping[str, Any], quote: Quote) -> str:
        answer = _bought_once(
            "memorydb:PurchaseReservedNodesOffering",
            lambda: client.purchase_reserved_nodes_offering(
                ReservedNodesOfferingId=quote.offering_id,
                ReservationId=key_name(key),
                NodeCount=count(item),
                Tags=_tags(key),
            ),
            "ReservedNodeAlreadyExistsFault",
            lambda: self.find(client, key, item),
        )
        if isinstance(answer, str):
            return answer
        return str(answer["ReservedNode"]["ReservationId"])

    def find(
        self, client: Any, key: str, item: Mapping[str, Any], since: datetime | None = None
    ) -> str | None:
        answer = call_or_absent(
            "memorydb:DescribeReservedNodes",
            lambda: client.describe_reserved_nodes(ReservationId=key_name(key)),
            {"ReservedNodeNotFoundFault"},
        )
        for reservation in (answer or {}).get("ReservedNodes", []):
            return str(reservation["ReservationId"])
        return None
