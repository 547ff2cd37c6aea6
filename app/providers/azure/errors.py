"""Azure's errors in an operator's words: never the token, only Azure's error code and the
permission it names (or the one the call needs)."""

from __future__ import annotations

import re

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

# The permissions each call needs, named when Azure's answer does not name one.
READ_CATALOG = "Microsoft.Capacity/catalogs/read"
CALCULATE_PRICE = "Microsoft.Capacity/calculateprice/action"
PURCHASE = "Microsoft.Capacity/reservationOrders/action"
READ_ORDER = "Microsoft.Capacity/reservationOrders/read"

_DENIED_CODES = frozenset({"AuthorizationFailed", "Forbidden", "InvalidAccessToken"})
_CAPACITY_CODES = frozenset({"FulfillmentOutOfStockError", "InsufficientCapacity"})
_NOT_OFFERED_CODES = frozenset(
    {"SkuNotAvailable", "UnsupportedReservationTerm", "InvalidLocationId", "NotSupportedCountry"}
)
# How ARM's AuthorizationFailed names the permission it refused.
_ACTION = re.compile(r"perform action '([^']+)'")


def denied_permission(exc: AzureError, permission: str) -> str | None:
    """The permission Azure refused (the one it names, else `permission`), or None when
    `exc` is not a refusal."""
    status, code, text = _parts(exc)
    if status not in (401, 403) and code not in _DENIED_CODES:
        return None
    named = _ACTION.search(text)
    return named.group(1) if named else permission


def reason(exc: AzureError, permission: str) -> str:
    """What went wrong, for `PurchaseFailed` / `LookupFailed`; `permission` is what the
    call needs, named when Azure refuses without naming one."""
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        return (
            f"Azure credentials unavailable ({_first_line(exc)}): give the worker a managed "
            "identity, environment credentials or an az login"
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return f"Azure unreachable: {_first_line(exc)}"
    status, code, text = _parts(exc)
    refused = denied_permission(exc, permission)
    if refused:
        return f"IAM denied: {refused} is not allowed ({code or 'AuthorizationFailed'})"
    if status == 429:
        return f"throttled: Azure kept answering 429 ({code or 'TooManyRequests'}); try later"
    if code in _CAPACITY_CODES or "capacity" in text.lower():
        return f"insufficient capacity: {text} ({code or status})"
    if status == 404 or code in _NOT_OFFERED_CODES:
        return f"offering not found: {text} ({code or status})"
    answered = " ".join(part for part in (str(status or "an error"), code) if part)
    return f"Azure answered {answered}: {text}"


def _parts(exc: AzureError) -> tuple[int | None, str, str]:
    if not isinstance(exc, HttpResponseError):
        return None, "", _first_line(exc)
    error = exc.error
    code = str(error.code) if error is not None and error.code else ""
    text = str(error.message) if error is not None and error.message else _first_line(exc)
    return exc.status_code, code, text[:300]


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]
