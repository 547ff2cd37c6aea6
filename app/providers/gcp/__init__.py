"""Google Cloud: Compute Engine commitments (see `app.providers.gcp.provider`)."""

from app.providers.gcp.errors import CommitmentOutcomeUnknown
from app.providers.gcp.provider import GcpProvider

__all__ = ["CommitmentOutcomeUnknown", "GcpProvider"]
