"""The one home for what an AWS error means to an operator.

Every AWS call the provider makes goes through `call` (or `call_or_absent`), which turns
botocore's errors into `PurchaseFailed` with a message that says what happened and what to
do. Throttling has already been retried by botocore's standard retry mode when it reaches
here, so it surfaces as `throttled: ...`. Messages name the IAM action, never a credential.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from app.providers import PurchaseFailed

T = TypeVar("T")

DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedException",
        "AuthorizationError",
        "AuthorizationErrorException",
        "Forbidden",
    }
)
CREDENTIALS_REJECTED = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
    }
)
CAPACITY = frozenset(
    {
        "InsufficientReservedInstanceCapacity",
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientCacheClusterCapacity",
        "InsufficientDBInstanceCapacity",
    }
)
OFFERING_GONE = frozenset(
    {
        "InvalidReservedInstancesOfferingId",
        "InvalidReservedInstancesOfferingId.NotFound",
        "ReservedInstancesOfferingNotFound",
        "ReservedDBInstancesOfferingNotFound",
        "ReservedCacheNodesOfferingNotFound",
        "ReservedNodesOfferingNotFoundFault",
        "ReservedNodeOfferingNotFound",
        "ResourceNotFoundException",
    }
)
QUOTA = frozenset(
    {
        "ReservedInstancesLimitExceeded",
        "ReservedDBInstanceQuotaExceeded",
        "ReservedCacheNodeQuotaExceeded",
        "ReservedNodeQuotaExceededFault",
        "ReservedNodeQuotaExceeded",
        "ServiceQuotaExceededException",
        "LimitExceededException",
    }
)
THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
    }
)

# AWS's own messages can be long; an operator needs the start of them.
_MESSAGE_LIMIT = 300


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or "")


def explain(action: str, error: Exception) -> PurchaseFailed:
    """What `error` from the call of IAM action `action` (e.g. `ec2:CreateTags`) means."""
    if isinstance(error, ClientError):
        code = error_code(error)
        detail = str(error.response.get("Error", {}).get("Message") or "")[:_MESSAGE_LIMIT]
        if code in DENIED:
            return PurchaseFailed(f"IAM denied: {action} is not allowed ({code})")
        if code in CREDENTIALS_REJECTED:
            return PurchaseFailed(
                f"credentials rejected: {action} ({code}); check the AWS credentials the "
                "worker's standard chain provides"
            )
        if code in CAPACITY:
            return PurchaseFailed(f"insufficient capacity: {action} ({code}): {detail}")
        if code in OFFERING_GONE:
            return PurchaseFailed(f"offering not found: {action} ({code}): {detail}")
        if code in QUOTA:
            return PurchaseFailed(
                f"quota exceeded: {action} ({code}): {detail}; ask AWS for a higher limit"
            )
        if code in THROTTLED:
            return PurchaseFailed(f"throttled: {action} ({code}) after retries; retry later")
        return PurchaseFailed(f"{action} failed ({code or 'no code'}): {detail}")
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return PurchaseFailed(
            f"no AWS credentials for {action}: the standard chain (environment, shared "
            "config, instance or task role) provided none"
        )
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return PurchaseFailed(f"cannot reach AWS for {action}: {error}")
    if isinstance(error, ParamValidationError):
        return PurchaseFailed(f"{action} refused the item before sending it: {error}")
    return PurchaseFailed(f"{action} failed: {type(error).__name__}: {error}")


def call(action: str, operation: Callable[[], T]) -> T:
    """Run one AWS call; its failure raises `PurchaseFailed` in an operator's words."""
    try:
        return operation()
    except (ClientError, BotoCoreError) as error:
        raise explain(action, error) from None


def call_or_absent(action: str, operation: Callable[[], T], absent: Collection[str]) -> T | None:
    """`call`, but an error whose code is in `absent` (the API's "no such id") is None."""
    try:
        return operation()
    except ClientError as error:
        if error_code(error) in absent:
            return None
        raise explain(action, error) from None
    except BotoCoreError as error:
        raise explain(action, error) from None
