"""The JSON API's requests and answers as pydantic models: the request models refuse a
request that does not fit them (a 400 naming the field, before any rule or query
runs), and all of them write the OpenAPI document (`app.api.openapi`), so what the
document promises is what the API checks.

This module holds sign-in, the purchases and the history; the bulk retry's are in
`app.api.bulk_schemas`, the freeze's and the plans' in `app.api.control_schemas`, and
the field types they share in `app.api.fields`. Path ids stay plain strings: the
services parse them (`parse_uuid`), because a malformed id is a refusal they audit, in
the documented order of checks (docs/api.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
)
from pydantic_core import PydanticCustomError

from app.api.fields import (
    Flag,
    ProviderName,
    QueryId,
    QueryMoment,
    Request,
    StatusName,
    Text,
    blank_is_none,
    no_default,
    query_text,
)
from app.domain.causes import MAX_SIGNATURE_LENGTH
from app.domain.items import MAX_CREATE_ITEMS
from app.services.execution_reads import MAX_PAGE_SIZE, MAX_SEARCH_LENGTH

MAX_CURSOR_LENGTH = 200

# --- Requests ---------------------------------------------------------------------------


class LoginBody(BaseModel):
    """`POST /api/auth/login`. Other keys are ignored, as they always were."""

    email: Text = Field(min_length=1, max_length=320)
    password: Text = Field(min_length=1, max_length=1024)


class RetryQuery(BaseModel):
    """`POST /api/purchases/retry/<id>`: `force` overrides the threshold and nothing else."""

    force: Flag = False


class CreatePurchaseBody(Request):
    """`POST /api/purchases`: the account, its items, and optionally the plan, the
    step and when it starts. Each item is checked by the service, naming the item and
    its field."""

    cloud_account_id: Text = Field(max_length=100, json_schema_extra={"format": "uuid"})
    recommendations: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_CREATE_ITEMS)
    plan_id: Text | None = Field(default=None, max_length=100, json_schema_extra={"format": "uuid"})
    step_number: StrictInt | None = Field(default=None, ge=1, le=10_000)
    scheduled_for: Text | None = Field(
        default=None, max_length=64, json_schema_extra={"format": "date-time"}
    )

    def as_request(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class CreateQuery(BaseModel):
    """`POST /api/purchases?preview=true` answers what would be created; writes nothing."""

    preview: Flag = False


class PurchaseCreated(BaseModel):
    execution_id: str
    status: str


class PurchasePreview(BaseModel):
    preview: bool
    account: dict[str, Any]
    plan_id: str | None
    step_number: int
    scheduled_for: str | None
    items: list[dict[str, Any]] = Field(
        description="per item: index, selected, commitment, the provider's quote or why not"
    )
    totals: dict[str, Any] = Field(
        description="upfront, monthly, term_total, monthly/yearly/term savings, as decimal strings"
    )


class DecisionBody(Request):
    """`POST /api/purchases/approve|cancel/<id>`: the approval email's token, or nothing
    (then the session decides)."""

    token: Text = Field(default=None, min_length=1, json_schema_extra=no_default)  # type: ignore[assignment]


class HistoryFilterQuery(BaseModel):
    """The `HistoryFilter` fields of `/api/history` and its CSV export."""

    status: Annotated[StatusName | None, BeforeValidator(blank_is_none)] = None
    cloud_account_id: QueryId = None
    plan_id: QueryId = None
    created_by_user_id: QueryId = None
    execution_id: QueryId = None
    error_contains: query_text(MAX_SEARCH_LENGTH) = None  # type: ignore[valid-type]
    created_after: QueryMoment = None
    created_before: QueryMoment = None
    provider: Annotated[ProviderName | None, BeforeValidator(blank_is_none)] = None
    cause: query_text(MAX_SIGNATURE_LENGTH) = None  # type: ignore[valid-type]

    def filter_args(self) -> dict[str, str]:
        return self.model_dump(include=set(HistoryFilterQuery.model_fields), exclude_none=True)


def _limit(value: Any) -> Any:
    """Only 1 to 200 written in ASCII digits: not "1.0", "²", "+5" or "1_0"; blank is
    the default."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise PydanticCustomError("limit", f"must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


class HistoryQuery(HistoryFilterQuery):
    limit: Annotated[int | None, BeforeValidator(_limit)] = Field(
        default=None, ge=1, le=MAX_PAGE_SIZE, description="1 to 200; 50 when absent"
    )
    before: query_text(MAX_CURSOR_LENGTH) = Field(  # type: ignore[valid-type]
        default=None, description="the `next` of the previous page"
    )


# --- Answers ----------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every refusal: `{error, ...details}`."""

    model_config = ConfigDict(extra="allow")
    error: str


class SignedIn(BaseModel):
    class Who(BaseModel):
        id: str
        email: str

    csrf_token: str
    user: Who


class Me(BaseModel):
    id: str
    email: str
    permissions: list[str]
    csrf_token: str


class SignedOut(BaseModel):
    status: Literal["signed out"]


class RetryQueued(BaseModel):
    request_id: str
    status: Literal["queued"]
    status_url: str


class RetryRequestState(BaseModel):
    """A retry request; a rejection carries the refusal's details too."""

    model_config = ConfigDict(extra="allow")
    request_id: str
    state: Literal["queued", "succeeded", "rejected", "failed"]
    retry_of: str
    force: bool
    execution_id: str | None
    retry_attempt_n: int | None
    error: str | None
    requested_by: str | None
    created_at: str | None
    finished_at: str | None
    status_code: int | None = None


class Decision(BaseModel):
    execution_id: str
    status: str
    approved_by: str | None
    cancelled_by: str | None


class ExecutionItem(BaseModel):
    execution_id: str
    status: str
    error: str | None
    ops_hint: str | None
    recommendations_error: str | None
    retry_execution_id: str | None
    retry_of: str | None
    retry_attempt_n: int
    created_by_user_id: str | None
    created_by_email: str | None
    retried_by_user_id: str | None = Field(description="who asked for this retry, if one")
    cloud_account_id: str | None
    plan_id: str | None
    step_number: int | None
    purchase_mode: str | None = Field(
        description="the mode the row ran in (simulate, dry_run or live); null until it starts"
    )
    total_upfront_cost: str | None = Field(description="a decimal string")
    estimated_savings: str | None = Field(description="a decimal string")
    approved_by: str | None
    cancelled_by: str | None
    notification_sent_at: str | None
    completed_at: str | None
    created_at: str | None
    updated_at: str | None


class ExecutionDetail(ExecutionItem):
    recommendations: Any = Field(description="as stored: normally a list of items")


class HistoryPage(BaseModel):
    items: list[ExecutionItem]
    next: str | None = Field(description="the cursor of the following page; null on the last")
