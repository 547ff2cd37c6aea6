"""What every AWS service module shares: reading an item, pricing an offering, walking
pages with a cap, telling a refused purchase from one whose outcome is unknown, and the
guard that keeps botocore from re-sending a purchase that carries no idempotency token."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError

from app.providers import OutcomeUnknown, PurchaseFailed, Quote
from app.providers.aws.errors import THROTTLED, error_code, explain

T = TypeVar("T")

# The tag every purchase carries where the API takes tags; `find` looks it up.
TAG_KEY = "ccp:idempotency-key"
# At most this many pages of any listing; past it the search fails rather than walk on.
MAX_PAGES = 10
HOURS_PER_MONTH = 730
TERM_SECONDS = {1: 31_536_000, 3: 94_608_000}
# The item's payment option, in the words the reserved-offering APIs use.
OFFERING_TYPES = {
    "no-upfront": "No Upfront",
    "partial-upfront": "Partial Upfront",
    "all-upfront": "All Upfront",
}
CENT = Decimal("0.01")
# A purchase found by its attributes (EC2, Redshift) may show a start this much before the
# ledger's claim: the clocks of AWS and of the database are not the same clock.
CLOCK_SKEW = timedelta(minutes=5)


class Service(Protocol):
    """One AWS service's purchasing, over a botocore client for the item's region."""

    @property
    def client_name(self) -> str:
        """The botocore service name (`ec2`, `rds`, ...)."""
        ...

    @property
    def findable(self) -> bool: ...

    def quote(self, client: Any, item: Mapping[str, Any]) -> Quote: ...

    def rehearse(self, client: Any, item: Mapping[str, Any], quote: Quote) -> None: ...

    def purchase(self, client: Any, key: str, item: Mapping[str, Any], quote: Quote) -> str: ...

    def find(
        self, client: Any, key: str, item: Mapping[str, Any], since: datetime | None = None
    ) -> str | None:
        """What was bought under `key`, or None; `since` is when the ledger claimed the key
        (only EC2 and Redshift use it)."""
        ...


def text(item: Mapping[str, Any], field: str, default: str | None = None) -> str:
    """A text field of the item; missing and no default → `PurchaseFailed` naming it."""
    value = item.get(field)
    if value is None or str(value).strip() == "":
        if default is None:
            raise PurchaseFailed(f"the item has no {field}: it is needed to find the offering")
        return default
    return str(value).strip()


def count(item: Mapping[str, Any]) -> int:
    value = item.get("count", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PurchaseFailed(f"the item's count must be a whole number of at least 1: {value!r}")
    return value


def term_years(item: Mapping[str, Any]) -> int:
    value = item.get("term_years")
    if value not in TERM_SECONDS or isinstance(value, bool):
        raise PurchaseFailed(f"the item's term_years must be 1 or 3: {value!r}")
    return int(value)


def term_seconds(item: Mapping[str, Any]) -> int:
    return TERM_SECONDS[term_years(item)]


def payment_option(item: Mapping[str, Any]) -> str:
    """The item's payment option as the APIs spell it ("No Upfront", ...)."""
    value = item.get("payment_option")
    if value not in OFFERING_TYPES:
        raise PurchaseFailed(
            f"the item's payment_option must be one of {', '.join(OFFERING_TYPES)}: {value!r}"
        )
    return OFFERING_TYPES[str(value)]


def decimal(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value if value is not None else 0))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return amount if amount.is_finite() else Decimal(0)


def hourly(charges: Iterable[Mapping[str, Any]], amount: str, frequency: str) -> Decimal:
    """The sum of an offering's hourly recurring charges (`amount`/`frequency` are the
    field names, which differ between APIs)."""
    return sum(
        (decimal(c.get(amount)) for c in charges if str(c.get(frequency)).lower() == "hourly"),
        Decimal(0),
    )


def priced(
    offering_id: str,
    item: Mapping[str, Any],
    *,
    fixed: Any,
    hourly_rate: Decimal,
    currency: str | None,
    description: str,
) -> Quote:
    """A quote for the item's whole count: `fixed` (per unit, once) and `hourly_rate` (per
    unit) times the count; a month is 730 hours."""
    units = count(item)
    upfront = decimal(fixed) * units
    monthly = hourly_rate * HOURS_PER_MONTH * units
    total = upfront + monthly * 12 * term_years(item)
    return Quote(
        offering_id=offering_id,
        currency=currency or "USD",
        upfront=upfront.quantize(CENT, ROUND_HALF_UP),
        recurring_monthly=monthly.quantize(CENT, ROUND_HALF_UP),
        term_total=total.quantize(CENT, ROUND_HALF_UP),
        description=description,
    )


def pages(
    fetch: Callable[[str | None], tuple[list[T], str | None]],
    what: str,
    cap: int = MAX_PAGES,
) -> Iterator[T]:
    """Every entry of a paged listing, page by page (`fetch(token)` answers a page and the
    next token); more than `cap` pages fails rather than walk on."""
    token: str | None = None
    for _ in range(cap):
        entries, token = fetch(token)
        yield from entries
        if not token:
            return
    raise PurchaseFailed(
        f"page cap: {what} has more than {cap} pages; name the offering (offering_id) "
        "or ask AWS support which entry applies"
    )


def outcome_unknown(action: str, why: object) -> OutcomeUnknown:
    """What a purchase that may have bought, but whose answer was lost, raises: the
    ledger keeps its claim, and a retry looks the key up (`find`) before it buys."""
    return OutcomeUnknown(
        f"outcome unknown: {action} got no clear answer ({why}); it may have bought. "
        "A retry looks the purchase up at AWS first and buys only if nothing was bought"
    )


def ambiguous(error: Exception) -> bool:
    """Whether a purchase that failed with `error` may still have bought: the request may
    have reached AWS and the answer is missing (a broken or timed-out connection after
    sending, a 5xx that is not throttling). A refused connection or a connect timeout
    never sent it; a 4xx or throttling is AWS saying it did nothing."""
    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 and error_code(error) not in THROTTLED
    # botocore's ConnectionError family (refused, connect timeout, TLS handshake, proxy)
    # is raised before the request is sent; HTTPClientError (read timeout, connection
    # closed) after.
    return isinstance(error, HTTPClientError)


def refused(action: str, error: Exception) -> OutcomeUnknown | PurchaseFailed:
    """What a failed purchase call raises: `OutcomeUnknown` when it may have bought (see
    `ambiguous`), else `PurchaseFailed` in an operator's words."""
    return outcome_unknown(action, error) if ambiguous(error) else explain(action, error)


def buy(action: str, operation: Callable[[], T]) -> T:
    """Run one purchase call; its failure raises what `refused` says."""
    try:
        return operation()
    except (ClientError, BotoCoreError) as error:
        raise refused(action, error) from None


def guard_unsafe_retries(client: Any, event: str, action: str) -> None:
    """Let botocore retry `event`'s operation (e.g. `ec2.PurchaseReservedInstancesOffering`)
    only when AWS answered that it did nothing (throttling) or the request never left (a
    refused connection): after a broken connection or a 5xx, AWS may have bought, and
    without a token a re-sent call buys again, so the attempt raises `OutcomeUnknown`
    naming IAM action `action` instead."""

    def refuse_ambiguous(
        response: tuple[Any, Mapping[str, Any]] | None,
        caught_exception: Exception | None,
        **_: Any,
    ) -> None:
        if caught_exception is not None:
            if ambiguous(caught_exception) or not isinstance(caught_exception, BotoCoreError):
                raise outcome_unknown(action, caught_exception)
            return
        if response is None:
            return
        status = int(response[1].get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(response[1].get("Error", {}).get("Code") or "")
        if status >= 500 and code not in THROTTLED:
            raise outcome_unknown(action, f"HTTP {status} {code}".strip())

    client.meta.events.register_first(
        f"needs-retry.{event}", refuse_ambiguous, unique_id=f"ccp-refuse-ambiguous-{event}"
    )


def earliest_start(since: datetime) -> datetime:
    """The earliest start a purchase made under a key claimed at `since` can show (a naive
    `since` is read as UTC)."""
    aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    return aware - CLOCK_SKEW


def started_since(start: Any, since: datetime) -> bool:
    """Whether a reservation's start (a datetime, as botocore parses it) is no earlier
    than `earliest_start(since)`; a missing start is not."""
    if not isinstance(start, datetime):
        return False
    aware = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    return aware >= earliest_start(since)
