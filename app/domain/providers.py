"""The cloud providers the product buys commitments from, the services it buys from each,
and the modes an account buys in."""

from __future__ import annotations

from enum import StrEnum

PROVIDERS = ("aws", "azure", "gcp")


class PurchaseMode(StrEnum):
    """How an account's purchases run.

    `simulate`: the embedded simulator buys nothing and answers like a cloud would.
    `dry_run`: the cloud is asked what it would sell and at what price (and EC2 checks the
    purchase itself with `DryRun`); nothing is bought and nothing is claimed in the ledger.
    `live`: the cloud's SDK buys, under the ledger's idempotency key.
    """

    SIMULATE = "simulate"
    DRY_RUN = "dry_run"
    LIVE = "live"


# How a row's mode reads wherever it is shown (the panel, the API, the outcome email).
MODE_MEANINGS = {
    PurchaseMode.SIMULATE: "simulated: nothing was bought",
    PurchaseMode.DRY_RUN: "dry run: quoted, nothing was bought",
    PurchaseMode.LIVE: "live: bought from the cloud",
}


def mode_meaning(mode: str | None) -> str:
    """What a row's `purchase_mode` means, in words; "" before it runs."""
    try:
        return MODE_MEANINGS[PurchaseMode(mode)] if mode else ""
    except ValueError:
        return str(mode)


# What a new account buys in until an admin says otherwise: the cloud is asked, nothing
# is bought.
NEW_ACCOUNT_MODE = PurchaseMode.DRY_RUN

# The services each provider's real client buys, by the name items carry in `service`.
SERVICES: dict[str, tuple[str, ...]] = {
    "aws": ("ec2", "rds", "elasticache", "memorydb", "opensearch", "redshift", "savingsplans"),
    "azure": (
        "vm",
        "sql",
        "cosmosdb",
        "sqldatawarehouse",
        "appservice",
        "redis",
        "mysql",
        "postgresql",
        "mariadb",
        "managed-disk",
        "blob-storage",
        "databricks",
        "data-explorer",
        "dedicated-host",
        "azure-files",
        "data-factory",
    ),
    "gcp": ("compute",),
}

# Other spellings people and exports use for a service, and the name it has here.
SERVICE_ALIASES = {
    "savings-plans": "savingsplans",
    "savings_plans": "savingsplans",
    "sp": "savingsplans",
    "elasticsearch": "opensearch",
    "virtualmachines": "vm",
    "virtual-machines": "vm",
    "sqldatabases": "sql",
    "cosmos-db": "cosmosdb",
    "synapse": "sqldatawarehouse",
    "gce": "compute",
}


def normalize_provider(value: object) -> str:
    """A provider as data may spell it (" AWS ") in the one form rules compare."""
    return str(value or "").strip().lower()


def normalize_service(value: object) -> str:
    """A service as data may spell it ("Savings-Plans") in the one form rules compare."""
    spelled = str(value or "").strip().lower()
    return SERVICE_ALIASES.get(spelled, spelled)
