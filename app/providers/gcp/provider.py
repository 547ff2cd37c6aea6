"""Google Cloud: Compute Engine committed use discounts (regional commitments), bought
through `google-cloud-compute`.

The item (`service` "compute") names a `region`, its `resources` (`VCPU` count and `MEMORY`
in MB, each multiplied by the item's `count`) and `term_years` (1 → `TWELVE_MONTH`,
3 → `THIRTY_SIX_MONTH`); an optional `commitment_type` (e.g. `GENERAL_PURPOSE_N2`) is
passed through, else GCP applies its default type. Commitments are billed monthly, so an
upfront `payment_option` is refused before any request.

The compute API has no price list: a quote describes the commitment
(`compute:<region>:<plan>:<resources>`) with no price, after checking that the region
exists in the project (`compute.regions.get`), the one check a single read can make.

A purchase inserts a commitment named after the idempotency key (`key_name`), with the
key's UUID as the request id (GCP answers a repeated request id with the first
operation) and the key in its description. A second insert under one key meets GCP's
409 for that name, which answers the first purchase; `find` reads the commitment by that
name. Both answer the commitment's resource path,
`projects/<project>/regions/<region>/commitments/<name>`.

Credentials come from Application Default Credentials, resolved on the first call.
Throttling is retried by api-core's `Retry` passed to each call. The insert's operation
is awaited through the same endpoint as the insert, for at most `operation_timeout`; an
insert whose outcome GCP did not tell raises `CommitmentOutcomeUnknown`, so that the
ledger's claim stays and the retry looks the name up before buying.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import google.auth
from google.api_core import exceptions as api
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_errors
from google.auth.credentials import Credentials
from google.cloud import compute_v1, recommender_v1

from app.providers import (
    AccountTarget,
    ConnectionReport,
    LookupFailed,
    PurchaseFailed,
    Quote,
    key_name,
    key_uuid,
)
from app.providers.gcp import recommendations as advised
from app.providers.gcp.commitment import SERVICE, describe
from app.providers.gcp.errors import (
    CREATE,
    PERMISSIONS,
    CommitmentOutcomeUnknown,
    auth_failure,
    call_failure,
    operation_failure,
    throttled,
)

log = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_Client = TypeVar("_Client")


@dataclass
class _Lazy:
    """Credentials resolved on first use, once per provider."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    credentials: Credentials | None = None


@dataclass(frozen=True)
class GcpProvider:
    """Buys Compute Engine commitments in the account's `gcp_project`.

    `credentials` and `client_options` (e.g. `{"api_endpoint": ...}`) are handed to every
    SDK client as they are; without credentials, Application Default Credentials are
    resolved on the first call (constructing the provider touches nothing). The clients
    use the REST transport. `retry_initial` / `retry_timeout` (seconds) shape api-core's
    retry of throttled calls; `operation_timeout` bounds the wait for an insert to finish.
    """

    credentials: Credentials | None = None
    client_options: ClientOptions | Mapping[str, Any] | None = None
    retry_initial: float = 1.0
    retry_timeout: float = 60.0
    request_timeout: float = 60.0
    operation_timeout: float = 300.0
    _lazy: _Lazy = field(default_factory=_Lazy, repr=False, compare=False)

    @property
    def name(self) -> str:
        return "gcp"

    def can_find(self, service: str) -> bool:
        return service == SERVICE

    def quote(self, item: Mapping[str, Any], account: AccountTarget) -> Quote:
        """The commitment the item describes, unpriced; the region must exist."""
        commitment = describe(item)
        project = _project(account, PurchaseFailed)
        try:
            self._client(compute_v1.RegionsClient).get(
                project=project, region=commitment.region, **self._call_options()
            )
        except api.NotFound as exc:
            raise PurchaseFailed(
                f"offering not found: region {commitment.region!r} in project {project} "
                f"({exc.code})"
            ) from exc
        except (api.GoogleAPICallError, api.RetryError) as exc:
            raise call_failure(exc, "compute.regions.get", project) from exc
        except auth_errors.GoogleAuthError as exc:
            raise auth_failure(exc, PurchaseFailed) from exc
        except OSError as exc:
            raise PurchaseFailed(f"GCP could not be reached: {exc}") from exc
        given = item.get("offering_id")
        if given and str(given) != commitment.offering_id:
            raise PurchaseFailed(
                f"offering not found: the item's offering_id {given!r} is not the "
                f"commitment it describes ({commitment.offering_id})"
            )
        return Quote(
            offering_id=commitment.offering_id,
            description=f"GCP commitment {commitment.offering_id} (the API quotes no price)",
        )

    def rehearse(self, item: Mapping[str, Any], account: AccountTarget) -> Quote:
        """The quote: GCP offers no dry run of a commitment's insert."""
        return self.quote(item, account)

    def purchase(
        self, key: str, item: Mapping[str, Any], account: AccountTarget, quote: Quote
    ) -> str:
        """Insert the commitment named after `key`; its resource path once GCP made it."""
        commitment = describe(item)
        project = _project(account, PurchaseFailed)
        name = key_name(key)
        bought = _path(project, commitment.region, name)
        try:
            operation = self._client(compute_v1.RegionCommitmentsClient).insert_unary(
                request=compute_v1.InsertRegionCommitmentRequest(
                    project=project,
                    region=commitment.region,
                    request_id=str(key_uuid(key)),
                    commitment_resource=commitment.resource(name, key),
                ),
                **self._call_options(),
            )
        except api.Conflict:
            return bought  # the name is this key's: an earlier attempt bought it
        except api.ServerError as exc:
            raise CommitmentOutcomeUnknown(bought, f"the insert failed: {exc}") from exc
        except (api.GoogleAPICallError, api.RetryError) as exc:
            raise call_failure(exc, CREATE, project) from exc
        except auth_errors.GoogleAuthError as exc:
            raise auth_failure(exc, PurchaseFailed) from exc
        except OSError as exc:  # a broken connection: the insert may have landed
            raise CommitmentOutcomeUnknown(bought, f"the insert failed: {exc}") from exc
        refusal = operation_failure(
            self._wait(operation, project, commitment.region, bought), project, bought
        )
        if refusal is not None:
            raise refusal
        return bought

    def find(
        self,
        key: str,
        item: Mapping[str, Any],
        account: AccountTarget,
        *,
        since: datetime | None = None,
    ) -> str | None:
        """The commitment named after `key` in the item's region, or None."""
        project = _project(account, LookupFailed)
        region = str(item.get("region") or "").strip()
        if not region:
            raise LookupFailed("the item names no region to look the commitment up in")
        name = key_name(key)
        try:
            self._client(compute_v1.RegionCommitmentsClient).get(
                project=project, region=region, commitment=name, **self._call_options()
            )
        except api.NotFound:
            return None
        except (api.GoogleAPICallError, api.RetryError) as exc:
            failure = call_failure(exc, "compute.commitments.get", project)
            raise LookupFailed(str(failure)) from exc
        except auth_errors.GoogleAuthError as exc:
            raise auth_failure(exc, LookupFailed) from exc
        except OSError as exc:
            raise LookupFailed(f"GCP could not be reached: {exc}") from exc
        return _path(project, region, name)

    def check(self, account: AccountTarget) -> ConnectionReport:
        """One page of at most one commitment, across the project's regions."""
        if not (account.gcp_project or "").strip():
            return ConnectionReport(ok=False, message=_no_project(account))
        project = str(account.gcp_project).strip()
        try:
            self._client(compute_v1.RegionCommitmentsClient).aggregated_list(
                request=compute_v1.AggregatedListRegionCommitmentsRequest(
                    project=project, max_results=1
                ),
                **self._call_options(),
            )
        except (api.GoogleAPICallError, api.RetryError) as exc:
            message = str(call_failure(exc, "compute.commitments.list", project))
            if not message.startswith("IAM denied"):
                return ConnectionReport(ok=False, message=message)
            return ConnectionReport(
                ok=False,
                message=f"{message}; buying needs {', '.join(PERMISSIONS)}",
                missing=PERMISSIONS,
            )
        except auth_errors.GoogleAuthError as exc:
            return ConnectionReport(ok=False, message=str(auth_failure(exc, PurchaseFailed)))
        except OSError as exc:
            return ConnectionReport(ok=False, message=f"GCP could not be reached: {exc}")
        return ConnectionReport(
            ok=True,
            message=f"GCP project {project}: commitments can be listed; buying needs {CREATE}",
        )

    def recommendations(self, account: AccountTarget) -> list[dict[str, Any]]:
        """The project's active committed-use recommendations, region by region
        (`app.providers.gcp.recommendations`)."""
        project = _project(account, PurchaseFailed)
        permission = advised.LIST_REGIONS
        try:
            regions = [
                region.name
                for region in self._client(compute_v1.RegionsClient).list(
                    project=project, **self._call_options()
                )
            ]
            permission = advised.LIST_RECOMMENDATIONS
            items: list[dict[str, Any]] = []
            for region in regions:
                items.extend(
                    advised.items_of(self._recommended_in(project, region), project, region)
                )
        except (api.GoogleAPICallError, api.RetryError) as exc:
            raise _listing_failure(exc, permission, project) from exc
        except auth_errors.GoogleAuthError as exc:
            raise auth_failure(exc, PurchaseFailed) from exc
        except OSError as exc:
            raise PurchaseFailed(f"GCP could not be reached: {exc}") from exc
        return items

    def _recommended_in(self, project: str, region: str) -> list[Any]:
        """A region's active recommendations, at most `MAX_PAGES` pages; a region the
        recommender does not serve has none."""
        try:
            pager = self._client(recommender_v1.RecommenderClient).list_recommendations(
                parent=advised.parent(project, region),
                filter=advised.ACTIVE,
                **self._call_options(),
            )
            found: list[Any] = []
            for number, page in enumerate(pager.pages, start=1):
                found.extend(page.recommendations)
                if number >= advised.MAX_PAGES and page.next_page_token:
                    log.warning(
                        "GCP: recommendations in %s have more than %d pages; the rest is left out",
                        region,
                        number,
                    )
                    break
        except (api.NotFound, api.InvalidArgument) as exc:
            log.info("GCP: no commitment recommendations in %s (%s)", region, exc.code)
            return []
        return found

    def _wait(
        self, operation: compute_v1.Operation, project: str, region: str, bought: str
    ) -> compute_v1.Operation:
        """The insert's operation once DONE, asked of the insert's own endpoint."""
        deadline = time.monotonic() + self.operation_timeout
        operations: compute_v1.RegionOperationsClient | None = None
        while operation.status != compute_v1.Operation.Status.DONE:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommitmentOutcomeUnknown(
                    bought,
                    f"operation {operation.name} had not finished after "
                    f"{self.operation_timeout:g} s",
                )
            operations = operations or self._client(compute_v1.RegionOperationsClient)
            try:
                operation = operations.wait(
                    project=project,
                    region=region,
                    operation=operation.name,
                    retry=self._retry(),
                    timeout=min(remaining, self.request_timeout),
                )
            except (api.GoogleAPICallError, api.RetryError, OSError) as exc:
                raise CommitmentOutcomeUnknown(
                    bought, f"waiting for operation {operation.name} failed: {exc}"
                ) from exc
        return operation

    def _client(self, kind: type[_Client]) -> _Client:
        return kind(  # type: ignore[call-arg]
            credentials=self._credentials(),
            transport="rest",
            client_options=self.client_options,
        )

    def _credentials(self) -> Credentials:
        if self.credentials is not None:
            return self.credentials
        with self._lazy.lock:
            if self._lazy.credentials is None:
                credentials, _ = google.auth.default(scopes=SCOPES)
                self._lazy.credentials = credentials
            return self._lazy.credentials

    def _retry(self) -> Retry:
        return Retry(
            predicate=throttled,
            initial=self.retry_initial,
            maximum=max(self.retry_initial, self.retry_timeout / 4),
            multiplier=2.0,
            timeout=self.retry_timeout,
        )

    def _call_options(self) -> dict[str, Any]:
        return {"retry": self._retry(), "timeout": self.request_timeout}


def _listing_failure(exc: Exception, permission: str, project: str) -> PurchaseFailed:
    """A refused recommendations read, naming the Recommender API when it is the one
    not enabled."""
    said = str(getattr(exc, "message", "") or exc)
    if isinstance(exc, api.Forbidden) and "recommender.googleapis.com" in said:
        return PurchaseFailed(
            f"the Recommender API is not enabled in project {project}: enable "
            f"recommender.googleapis.com ({exc.code})"
        )
    return call_failure(exc, permission, project)


def _project(account: AccountTarget, error: type[Exception]) -> str:
    project = (account.gcp_project or "").strip()
    if not project:
        raise error(_no_project(account))
    return project


def _no_project(account: AccountTarget) -> str:
    return f"account {account.name!r} names no GCP project: set its gcp_project"


def _path(project: str, region: str, name: str) -> str:
    return f"projects/{project}/regions/{region}/commitments/{name}"
