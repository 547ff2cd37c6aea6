"""The cloud providers the product buys commitments from."""

PROVIDERS = ("aws", "azure", "gcp")
