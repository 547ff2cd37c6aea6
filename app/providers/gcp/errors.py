"""What GCP's refusals mean, in the words the product's operators act on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from google.api_core import exceptions as api
from google.auth import exceptions as auth_errors
from google.cloud import compute_v1

from app.providers import OutcomeUnknown, PurchaseFailed

CREATE = "compute.commitments.create"
# What the purchasing identity needs: quote (regions.get), find (get), check (list), buy,
# and wait for the purchase's operation (regionOperations.get).
PERMISSIONS = (
    "compute.regions.get",
    "compute.commitments.get",
    "compute.commitments.list",
    CREATE,
    "compute.regionOperations.get",
)
# Operation error codes and HTTP error reasons that mean "no room", not "not allowed".
CAPACITY_CODES = frozenset(
    {"QUOTA_EXCEEDED", "ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"}
)
CAPACITY_REASONS = frozenset({"quotaExceeded"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
DISABLED_REASONS = frozenset({"accessNotConfigured", "SERVICE_DISABLED"})
EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})
_REQUEST_PREFIX = re.compile(r"^[A-Z]+ [a-z]+://\S+: ")


class CommitmentOutcomeUnknown(OutcomeUnknown):
    """An insert whose outcome GCP did not tell (the operation did not finish in time, or
    the connection broke after the request went out): the ledger's claim stays, so that
    a retry looks the commitment up by name instead of assuming nothing was bought."""

    def __init__(self, bought: str, detail: str) -> None:
        super().__init__(
            f"the outcome of GCP commitment {bought} is unknown ({detail}); it may still be "
            "created: a retry looks it up by name before buying"
        )
        self.bought = bought


def throttled(exc: BaseException) -> bool:
    """Whether api-core should retry: 429, RESOURCE_EXHAUSTED, or a 403 rate limit."""
    if isinstance(exc, api.TooManyRequests | api.ResourceExhausted):
        return True
    return isinstance(exc, api.Forbidden) and bool(_reasons(exc) & RATE_REASONS)


def call_failure(exc: Exception, permission: str, project: str) -> PurchaseFailed:
    """A refused call (`permission` on `project`) as the product's message."""
    if isinstance(exc, api.RetryError):
        return PurchaseFailed(
            f"throttled: GCP kept rate-limiting {permission} on project {project} after "
            f"retrying ({_said(exc.cause) if exc.cause else exc.message}); try again later"
        )
    code = getattr(exc, "code", None) or "error"
    said = _said(exc)
    if _reasons(exc) & CAPACITY_REASONS or any(mark in said for mark in CAPACITY_CODES):
        return PurchaseFailed(f"insufficient capacity: {said} (project {project}, {code})")
    if isinstance(exc, api.Forbidden) and _reasons(exc) & DISABLED_REASONS:
        return PurchaseFailed(
            f"the Compute Engine API is not enabled in project {project}: enable "
            f"compute.googleapis.com ({code})"
        )
    if isinstance(exc, api.Forbidden):
        return PurchaseFailed(
            f"IAM denied: {permission} is not allowed on project {project} ({code})"
        )
    if isinstance(exc, api.Unauthorized):
        return PurchaseFailed(
            f"GCP rejected the credentials ({code}): renew the Application Default "
            "Credentials of the purchasing identity"
        )
    if isinstance(exc, api.NotFound):
        return PurchaseFailed(f"offering not found: {said} (project {project}, {code})")
    return PurchaseFailed(f"GCP refused {permission} on project {project} ({code}): {said}")


def auth_failure(exc: auth_errors.GoogleAuthError, error: type[Exception]) -> Exception:
    """No usable credentials, without repeating what the credential source answered."""
    if isinstance(exc, auth_errors.DefaultCredentialsError):
        return error(
            "no GCP credentials: set up Application Default Credentials for the purchasing "
            "identity (GOOGLE_APPLICATION_CREDENTIALS, or the metadata server on GCP)"
        )
    return error(
        f"GCP credentials could not be used ({type(exc).__name__}): renew the Application "
        "Default Credentials of the purchasing identity"
    )


def operation_failure(
    operation: compute_v1.Operation, project: str, bought: str
) -> PurchaseFailed | None:
    """A finished insert's error as the product's message; None if it created the
    commitment (or found it already created under this key's name)."""
    errors = list(operation.error.errors)
    if not errors and not operation.http_error_status_code:
        return None
    codes = {entry.code for entry in errors}
    if codes & EXISTS_CODES or operation.http_error_status_code == 409:
        return None
    said = "; ".join(f"{entry.code}: {entry.message}" for entry in errors) or (
        operation.http_error_message or "no detail"
    )
    status = operation.http_error_status_code or "operation error"
    if codes & CAPACITY_CODES:
        return PurchaseFailed(f"insufficient capacity: {said} (project {project}, {status})")
    if operation.http_error_status_code == 403:
        return PurchaseFailed(f"IAM denied: {CREATE} is not allowed on project {project} (403)")
    return PurchaseFailed(f"GCP did not create commitment {bought} ({status}): {said}")


def _reasons(exc: BaseException) -> set[str]:
    entries: list[Any] = list(getattr(exc, "errors", None) or [])
    reasons = {str(entry.get("reason", "")) for entry in entries if isinstance(entry, Mapping)}
    reason = getattr(exc, "reason", None)
    return reasons | ({str(reason)} if reason else set())


def _said(exc: BaseException) -> str:
    """GCP's own words, without the method and URL api-core puts in front."""
    message = str(getattr(exc, "message", "") or exc)
    return _REQUEST_PREFIX.sub("", message, count=1)
