"""The cloud providers the product buys commitments from."""

PROVIDERS = ("aws", "azure", "gcp")


def normalize_provider(value: object) -> str:
    """A provider as data may spell it (" AWS ") in the one form rules compare."""
    return str(value or "").strip().lower()
