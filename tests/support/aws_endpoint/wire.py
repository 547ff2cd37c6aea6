"""EC2's query-protocol wire format as the local endpoint speaks it: the seeded
offerings, the reservation filters it serves, and the XML of its answers and errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
YEAR = 31_536_000
# The reservation filters EC2 documents that this endpoint serves (tag:<key> besides).
FILTERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "instance-type": lambda r: r["instanceType"],
    "product-description": lambda r: r["productDescription"],
    "duration": lambda r: str(r["duration"]),
    "scope": lambda r: r["scope"],
    "availability-zone": lambda r: r.get("availabilityZone") or "",
    "state": lambda r: r["state"],
    "reserved-instances-id": lambda r: r["reservedInstancesId"],
}


def offering(offering_id: str, instance_type: str, kind: str, years: int) -> dict[str, Any]:
    """A regional Linux offering of `instance_type` paid as `kind`, for `years`."""
    fixed = {"No Upfront": 0, "Partial Upfront": 300 * years, "All Upfront": 600 * years}[kind]
    rate = {"No Upfront": 0.07, "Partial Upfront": 0.034, "All Upfront": 0.0}[kind]
    return {
        "reservedInstancesOfferingId": offering_id,
        "instanceType": instance_type,
        "productDescription": "Linux/UNIX",
        "instanceTenancy": "default",
        "offeringClass": "standard",
        "offeringType": kind,
        "duration": YEAR * years,
        "fixedPrice": fixed,
        "usagePrice": 0.0,
        "hourly": rate,
        "currencyCode": "USD",
        "scope": "Region",
    }


OFFERINGS: tuple[dict[str, Any], ...] = tuple(
    offering(f"ri-offer-m5large-{years}y-{kind.split()[0].lower()}", "m5.large", kind, years)
    for years in (1, 3)
    for kind in ("No Upfront", "Partial Upfront", "All Upfront")
)

# DescribeReservedInstances' typed parameters: the field each one matches.
TYPED = {"offeringClass": "OfferingClass", "offeringType": "OfferingType"}
RESERVATION_FIELDS = (
    "instanceType",
    "productDescription",
    "instanceTenancy",
    "offeringClass",
    "offeringType",
    "duration",
    "fixedPrice",
    "usagePrice",
    "currencyCode",
    "scope",
    "availabilityZone",
)


def matches(shown: Mapping[str, Any], name: str, values: Sequence[str]) -> bool:
    if name == "tag-key":
        return any(key in values for key in shown["tags"])
    if name.startswith("tag:"):
        return shown["tags"].get(name[4:]) in values
    return FILTERS[name](shown) in values


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def listed(params: Mapping[str, str], prefix: str) -> list[str]:
    values, n = [], 1
    while f"{prefix}.{n}" in params:
        values.append(params[f"{prefix}.{n}"])
        n += 1
    return values


def offering_xml(o: Mapping[str, Any]) -> str:
    fields = "".join(
        f"<{k}>{escape(str(o[k]))}</{k}>"
        for k in (
            "reservedInstancesOfferingId",
            "instanceType",
            "productDescription",
            "instanceTenancy",
            "offeringClass",
            "offeringType",
            "duration",
            "fixedPrice",
            "usagePrice",
            "currencyCode",
            "scope",
        )
    )
    charges = (
        f"<item><frequency>Hourly</frequency><amount>{o['hourly']}</amount></item>"
        if o["hourly"]
        else ""
    )
    return f"{fields}<marketplace>false</marketplace><recurringCharges>{charges}</recurringCharges>"


def reservation_xml(shown: Mapping[str, Any]) -> str:
    tags = "".join(
        f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>"
        for k, v in shown["tags"].items()
    )
    fields = "".join(
        f"<{k}>{escape(str(v))}</{k}>" for k, v in shown.items() if k != "tags" and v is not None
    )
    return f"<item>{fields}<tagSet>{tags}</tagSet></item>"


def ok(action: str, body: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><{action}Response xmlns="{NAMESPACE}">'
        f"<requestId>{uuid.uuid4()}</requestId>{body}</{action}Response>"
    )


def error(status: int, code: str, message: str) -> tuple[int, str]:
    return status, (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{escape(message)}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    )
