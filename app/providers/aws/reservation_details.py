"""How Cost Explorer describes a recommended reservation, read as an item's fields:
the region's code, the instance or node type, and per service what the purchase API
needs besides (EC2's platform, tenancy and scope; RDS's engine as the RDS offerings
spell it; ElastiCache's engine). `DESCRIBERS` holds one reader per item service; a
reader answers None for a recommendation that cannot become an item (a dedicated host,
no instance type).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import botocore.session

# RDS engines as Cost Explorer names them, and as the RDS offerings' ProductDescription.
_RDS_ENGINES = {
    "mysql": "mysql",
    "postgresql": "postgresql",
    "mariadb": "mariadb",
    "aurora mysql": "aurora-mysql",
    "aurora postgresql": "aurora-postgresql",
    "aurora": "aurora",
    "oracle": "oracle",
    "sql server": "sqlserver",
    "db2": "db2",
}
_EDITIONS = {
    "standard": "se",
    "standard one": "se1",
    "standard two": "se2",
    "enterprise": "ee",
    "express": "ex",
    "web": "web",
}
_LICENSES = {"license included": "li", "bring your own license": "byol"}


def _ec2(details: Mapping[str, Any]) -> dict[str, Any] | None:
    found = details.get("EC2InstanceDetails") or {}
    tenancy = {"shared": "default", "default": "default", "dedicated": "dedicated"}.get(
        str(found.get("Tenancy") or "shared").lower()
    )
    if tenancy is None or not found.get("InstanceType"):  # a dedicated host: not an RI
        return None
    zone = str(found.get("AvailabilityZone") or "")
    return {
        "region": region_code(found.get("Region")),
        "resource_type": str(found["InstanceType"]),
        "platform": str(found.get("Platform") or "Linux/UNIX"),
        "tenancy": tenancy,
        "scope": "Availability Zone" if zone else "Region",
        "availability_zone": zone or None,
    }


def _rds(details: Mapping[str, Any]) -> dict[str, Any] | None:
    found = details.get("RDSInstanceDetails") or {}
    if not found.get("InstanceType"):
        return None
    return {
        "region": region_code(found.get("Region")),
        "resource_type": str(found["InstanceType"]),
        "engine": rds_engine(found),
        "multi_az": str(found.get("DeploymentOption") or "").lower().startswith("multi-az"),
    }


def _nodes(shape: str, engine: bool = False) -> Callable[[Mapping[str, Any]], dict | None]:
    def describe(details: Mapping[str, Any]) -> dict[str, Any] | None:
        found = details.get(shape) or {}
        if not found.get("NodeType"):
            return None
        described = {
            "region": region_code(found.get("Region")),
            "resource_type": str(found["NodeType"]),
        }
        if engine:
            described["engine"] = str(found.get("ProductDescription") or "redis").lower()
        return described

    return describe


def _opensearch(details: Mapping[str, Any]) -> dict[str, Any] | None:
    found = details.get("ESInstanceDetails") or {}
    family, size = str(found.get("InstanceClass") or ""), str(found.get("InstanceSize") or "")
    if not family or not size:
        return None
    return {
        "region": region_code(found.get("Region")),
        "resource_type": f"{family}.{size}.search",
    }


DESCRIBERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any] | None]] = {
    "ec2": _ec2,
    "rds": _rds,
    "elasticache": _nodes("ElastiCacheInstanceDetails", engine=True),
    "opensearch": _opensearch,
    "redshift": _nodes("RedshiftInstanceDetails"),
    "memorydb": _nodes("MemoryDBInstanceDetails"),
}


def region_code(name: Any) -> str:
    """A region's code ("us-east-1") from Cost Explorer's name for it ("US East (N.
    Virginia)", or the older "EU (Ireland)"); a code, or a name botocore does not know,
    is kept as given."""
    text = str(name or "").strip()
    return _region_codes().get(text.lower(), text)


@cache
def _region_codes() -> dict[str, str]:
    codes: dict[str, str] = {}
    endpoints = botocore.session.get_session().get_data("endpoints")
    for partition in endpoints.get("partitions", []):
        for code, region in partition.get("regions", {}).items():
            described = str(region.get("description") or "").lower()
            if described:
                codes[described] = code
                if described.startswith("europe ("):
                    codes["eu (" + described.removeprefix("europe (")] = code
                if described.startswith("aws govcloud"):
                    codes[described.removeprefix("aws ")] = code
    return codes


def rds_engine(details: Mapping[str, Any]) -> str:
    """The RDS offerings' name for a recommendation's engine: `mysql`, `aurora-postgresql`,
    and for Oracle and SQL Server the edition and license (`oracle-se2(byol)`)."""
    named = str(details.get("DatabaseEngine") or "").strip()
    engine = _RDS_ENGINES.get(named.lower(), named.lower().replace(" ", "-"))
    if engine not in ("oracle", "sqlserver"):
        return engine
    edition = _EDITIONS.get(str(details.get("DatabaseEdition") or "").strip().lower())
    license_model = _LICENSES.get(str(details.get("LicenseModel") or "").strip().lower())
    if edition:
        engine = f"{engine}-{edition}"
    return f"{engine}({license_model})" if license_model else engine
