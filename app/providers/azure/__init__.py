"""Azure reservations, bought through azure-mgmt-reservations.

- `quote` reads the subscription's catalog for the item's reserved resource type and
  location (typed filters; at most `MAX_CATALOG_PAGES` pages), picks the item's `sku` for
  its term and billing plan, and prices the whole `count` with `calculatePrice`, in the
  billing currency. An item's `offering_id` (`Type/location/term/sku`) skips the catalog.
- `purchase` puts a reservation order under an id the caller chooses: `key_uuid(key)`. That
  id is the idempotency key: buying again under one key names the same order. Azure takes
  no tags on a reservation order, so the order's display name carries `key_name(key)` for
  an operator to match it to the ledger.
- `find` gets the order by that id: found is bought (or being bought), 404 is not.
- `check` reads one page of the catalog.

Billing plans: `all-upfront` is Upfront, `no-upfront` is Monthly; Azure has no partial
upfront, so such an item is refused before any request. Throttling is retried by
azure-core's RetryPolicy, which honours Retry-After.

Credentials come from `DefaultAzureCredential`, created at the first call, never when the
provider is constructed. Tests pass `credential`, `transport` and `client_options` (the
client's keyword arguments: retry and polling settings).
"""

from app.providers.azure.orders import MAX_CATALOG_PAGES, SERVICE_TYPES, Offering
from app.providers.azure.provider import AzureProvider

__all__ = ["MAX_CATALOG_PAGES", "SERVICE_TYPES", "AzureProvider", "Offering"]
