"""The Azure provider: quote, purchase, find and check through ReservationsMgmtClient."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.core.paging import PageIterator
from azure.core.pipeline.transport import HttpTransport
from azure.mgmt.core.polling.arm_polling import ARMPolling
from azure.mgmt.reservations import ReservationsMgmtClient
from azure.mgmt.reservations.models import Catalog

from app.providers import (
    AccountTarget,
    ConnectionReport,
    LookupFailed,
    PurchaseFailed,
    Quote,
    key_name,
    key_uuid,
)
from app.providers.azure import recommendations as advised
from app.providers.azure.errors import (
    CALCULATE_PRICE,
    PURCHASE,
    READ_CATALOG,
    READ_ORDER,
    denied_permission,
    reason,
)
from app.providers.azure.orders import (
    FAILED_STATES,
    MAX_CATALOG_PAGES,
    SERVICE_TYPES,
    Offering,
    billing_plan_of,
    catalog_title,
    failed,
    order_id_of,
    priced_quote,
    purchase_request,
    subscription_of,
    text,
    wanted_offering,
)

# How long a purchase waits for Azure to settle the order before answering it as bought
# (accepted, still provisioning: `find` answers the same).
PURCHASE_WAIT_SECONDS = 600.0


class AzureProvider:
    """Azure reservation orders for the services in `SERVICE_TYPES`.

    `credential` (a TokenCredential; `DefaultAzureCredential` at the first call when None),
    `transport` (an azure-core HttpTransport) and `client_options` (ReservationsMgmtClient's
    keyword arguments, e.g. `retry_total`, `polling_interval`) go to the SDK client as given.
    """

    name = "azure"

    def __init__(
        self,
        credential: TokenCredential | None = None,
        transport: HttpTransport | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._credential = credential
        self._transport = transport
        self._client_options = dict(client_options or {})
        self._client: ReservationsMgmtClient | None = None
        self._lock = threading.Lock()

    def can_find(self, service: str) -> bool:
        return service in SERVICE_TYPES

    def quote(self, item: Mapping[str, Any], account: AccountTarget) -> Quote:
        subscription = subscription_of(account)
        plan = billing_plan_of(item)
        offering = wanted_offering(item)
        if not item.get("offering_id"):
            offering = self._search_catalog(subscription, offering, plan)
        request = purchase_request(item, account, offering, plan)
        try:
            priced = self._reservations().reservation_order.calculate(body=request)
        except AzureError as exc:
            raise PurchaseFailed(reason(exc, CALCULATE_PRICE)) from exc
        return priced_quote(item, offering, plan, priced.properties)

    def rehearse(self, item: Mapping[str, Any], account: AccountTarget) -> Quote:
        """Azure has no dry run of a purchase: the quote's `calculatePrice` checks the same
        request the purchase sends, and nothing is bought."""
        return self.quote(item, account)

    def purchase(
        self, key: str, item: Mapping[str, Any], account: AccountTarget, quote: Quote
    ) -> str:
        """Buy the quoted offering under the order id `key_uuid(key)` and wait for the
        order to settle; answer the order's resource id."""
        plan = billing_plan_of(item)
        offering = Offering.parse(quote.offering_id)
        if offering is None:
            raise PurchaseFailed(
                f"offering not found: {quote.offering_id!r} is not an Azure offering"
            )
        request = purchase_request(item, account, offering, plan, display_name=key_name(key))
        order_id = str(key_uuid(key))
        polling = _OrderPolling(float(self._client_options.get("polling_interval", 30)))
        try:
            poller = self._reservations().reservation_order.begin_purchase(
                reservation_order_id=order_id, body=request, polling=polling
            )
        except ResourceExistsError as exc:
            # The order id is taken: bought under this key, unless the order says not.
            found = self.find(key, item, account)
            if found is None:
                raise PurchaseFailed(reason(exc, PURCHASE)) from exc
            return found
        except AzureError as exc:
            raise PurchaseFailed(reason(exc, PURCHASE)) from exc
        try:
            poller.wait(PURCHASE_WAIT_SECONDS)
            if not poller.done():
                # Accepted and still provisioning: the order exists, as `find` would say.
                return order_id_of(None, order_id)
            order = poller.result()
        except AzureError as exc:
            raise PurchaseFailed(
                f"reservation order {order_id} was accepted, then failed: {reason(exc, PURCHASE)}"
            ) from exc
        state = failed(order)
        if state:
            raise PurchaseFailed(f"reservation order {order_id} ended {state}: nothing was bought")
        return order_id_of(order, order_id)

    def find(
        self,
        key: str,
        item: Mapping[str, Any],
        account: AccountTarget,
        *,
        since: datetime | None = None,
    ) -> str | None:
        """The order bought under `key` (also while Azure is still provisioning it), None
        when Azure has no order of that id."""
        order_id = str(key_uuid(key))
        try:
            order = self._reservations().reservation_order.get(reservation_order_id=order_id)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise LookupFailed(reason(exc, READ_ORDER)) from exc
        state = failed(order)
        if state:
            # Nothing was bought, yet the key's order id is spent: an operator decides.
            raise LookupFailed(
                f"reservation order {order_id} ended {state}: nothing was bought under this "
                "key; look at the order in the Azure portal before buying again"
            )
        return order_id_of(order, order_id)

    def check(self, account: AccountTarget) -> ConnectionReport:
        """Read the first page of the subscription's virtual machine catalog."""
        if not account.azure_subscription_id:
            return ConnectionReport(
                ok=False, message=f"account {account.name} has no Azure subscription id: set it"
            )
        try:
            pages = self._reservations().get_catalog(
                account.azure_subscription_id, reserved_resource_type="VirtualMachines", take=1
            )
            list(next(pages.by_page(), iter(())))
        except AzureError as exc:
            refused = denied_permission(exc, READ_CATALOG)
            return ConnectionReport(
                ok=False, message=reason(exc, READ_CATALOG), missing=(refused,) if refused else ()
            )
        return ConnectionReport(
            ok=True,
            message=(
                f"subscription {account.azure_subscription_id}: the reservations catalog is "
                f"readable; buying also needs {CALCULATE_PRICE}, {PURCHASE} and {READ_ORDER}"
            ),
        )

    def recommendations(self, account: AccountTarget) -> list[dict[str, Any]]:
        """Azure's reservation recommendations for the account's subscription
        (`app.providers.azure.recommendations`), through azure-mgmt-consumption on the same
        credential, transport and client options as the purchases."""
        if not account.azure_subscription_id:
            raise PurchaseFailed(
                f"account {account.name} has no Azure subscription id: set it before importing"
            )
        from azure.mgmt.consumption import ConsumptionManagementClient

        options = dict(self._client_options)
        if self._transport is not None:
            options["transport"] = self._transport
        client = ConsumptionManagementClient(
            self._credential_now(), account.azure_subscription_id, **options
        )
        return advised.recommendations(client, account)

    def _credential_now(self) -> TokenCredential:
        if self._credential is not None:
            return self._credential
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    def _reservations(self) -> ReservationsMgmtClient:
        with self._lock:
            if self._client is None:
                credential = self._credential
                if credential is None:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                options = dict(self._client_options)
                if self._transport is not None:
                    options["transport"] = self._transport
                self._client = ReservationsMgmtClient(credential, **options)
            return self._client

    def _search_catalog(self, subscription: str, wanted: Offering, plan: str) -> Offering:
        """The catalog's entry for `wanted` under `plan`, filtered by resource type and
        location at Azure; at most MAX_CATALOG_PAGES pages."""
        described = (
            f"{wanted.resource_type} {wanted.sku} in {wanted.location} for {wanted.term} "
            f"billed {plan}"
        )
        pages = self._reservations().get_catalog(
            subscription, reserved_resource_type=wanted.resource_type, location=wanted.location
        )
        try:
            for entry in _bounded(pages.by_page(), described):
                if wanted.offered_by(entry, plan):
                    return replace(wanted, sku=text(entry.name), title=catalog_title(entry))
        except AzureError as exc:
            raise PurchaseFailed(reason(exc, READ_CATALOG)) from exc
        raise PurchaseFailed(f"offering not found: {described}")


class _OrderPolling(ARMPolling):
    """ARM polling that also stops at the order states Azure ends a failed purchase in
    (BillingFailed, Cancelled), which azure-core does not know as final."""

    def finished(self) -> bool:
        return super().finished() or text(self.status()).lower() in FAILED_STATES


def _bounded(pages: Iterator[Iterator[Catalog]], described: str) -> Iterator[Catalog]:
    for number, page in enumerate(pages, start=1):
        yield from page
        if number >= MAX_CATALOG_PAGES and isinstance(pages, PageIterator):
            if pages.continuation_token:
                raise PurchaseFailed(
                    f"offering not found: the catalog search for {described} stopped after "
                    f"{MAX_CATALOG_PAGES} pages; give the item an offering_id"
                )
            return
