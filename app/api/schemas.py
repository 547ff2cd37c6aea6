"""The JSON API's requests and answers as pydantic models: the request models refuse a
request that does not fit them (a 400 naming the field, before any rule or query
runs), and all of them write the OpenAPI document (`app.api.openapi`), so what the
document promises is what the API checks.

Text goes through the product's one text rule (`app.domain.inputs.text_problem`). Path
ids stay plain strings here: the services parse them (`parse_uuid`), because a
malformed id is a refusal they audit, in the documented order of checks (docs/api.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.api.reading import refused
from app.domain.bulk_retry import MAX_BATCH_ROWS, MAX_ID_TEXT
from app.domain.causes import MAX_SIGNATURE_LENGTH
from app.domain.inputs import parse_bool, text_problem
from app.domain.items import MAX_CREATE_ITEMS
from app.domain.providers import PROVIDERS
from app.domain.statuses import Status
from app.services.execution_reads import MAX_PAGE_SIZE, MAX_SEARCH_LENGTH

MAX_CURSOR_LENGTH = 200


def _text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("text", problem)
    return value


def _flag(value: Any) -> Any:
    """The usual spellings of a yes or no in a query string (`parse_bool`)."""
    if isinstance(value, bool):
        return value
    flag = parse_bool(value) if isinstance(value, str) else None
    if flag is None:
        raise PydanticCustomError("flag", "must be true or false")
    return flag


def _blank_is_none(value: Any) -> Any:
    """A blank query value is no filter, as in the panel's forms."""
    if isinstance(value, str):
        _text(value)
        return value.strip() or None
    return value


def _no_default(schema: dict[str, Any]) -> None:
    """For a field that may be left out but never be null: no `"default": null` in the
    document, which would contradict the field's type."""
    schema.pop("default", None)


Text = Annotated[str, AfterValidator(_text)]
Flag = Annotated[bool, BeforeValidator(_flag)]


def _query_text(max_length: int, **schema: Any) -> Any:
    """An optional query value of at most `max_length` characters (`schema`: what the
    document adds, a format), blank meaning absent."""
    text = Annotated[str, Field(max_length=max_length, json_schema_extra=schema or None)]
    return Annotated[text | None, BeforeValidator(_blank_is_none)]


if TYPE_CHECKING:  # what the validators below hand the code
    QueryId = str | None
    QueryMoment = str | None
    StatusName = str
    ProviderName = str
else:
    QueryId = _query_text(MAX_ID_TEXT, format="uuid")
    QueryMoment = _query_text(
        64, format="date-time", description="ISO 8601 date or date-time; UTC when naive"
    )
    StatusName = Literal[tuple(status.value for status in Status)]
    ProviderName = Literal[PROVIDERS]


class _Request(BaseModel):
    """A request part: unknown fields refused (a misspelt filter must not widen a bulk
    retry by being dropped)."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)


# --- Requests ---------------------------------------------------------------------------


class LoginBody(BaseModel):
    """`POST /api/auth/login`. Other keys are ignored, as they always were."""

    email: Text = Field(min_length=1, max_length=320)
    password: Text = Field(min_length=1, max_length=1024)


class RetryQuery(BaseModel):
    """`POST /api/purchases/retry/<id>`: `force` overrides the threshold and nothing else."""

    force: Flag = False


class BulkFilter(_Request):
    """The history filter a bulk retry selects its rows with: its fields are
    `HistoryFilter`'s (a test holds them equal), over failed rows only (`status` is
    `failed` or absent); a blank value is no filter."""

    status: StatusName | Literal[""] | None = None
    cloud_account_id: Text | None = Field(default=None, json_schema_extra={"format": "uuid"})
    plan_id: Text | None = Field(default=None, json_schema_extra={"format": "uuid"})
    created_by_user_id: Text | None = Field(default=None, json_schema_extra={"format": "uuid"})
    execution_id: Text | None = Field(default=None, json_schema_extra={"format": "uuid"})
    error_contains: Text | None = Field(default=None, max_length=MAX_SEARCH_LENGTH)
    created_after: Text | None = Field(default=None, max_length=64)
    created_before: Text | None = Field(default=None, max_length=64)
    provider: ProviderName | Literal[""] | None = None
    cause: Text | None = Field(default=None, max_length=MAX_SIGNATURE_LENGTH)


ExecutionIdText = Annotated[Text, Field(min_length=1, max_length=MAX_ID_TEXT)]


class BulkRetryBody(_Request):
    """`POST /api/purchases/retry`: exactly one of `execution_ids` and `filter`. Each id
    is checked later with its own outcome, so a malformed one is that item's 400."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["execution_ids"]}, {"required": ["filter"]}]}
    )

    execution_ids: list[ExecutionIdText] = Field(  # never null: left out or a list
        default=None,  # type: ignore[arg-type]
        min_length=1,
        max_length=MAX_BATCH_ROWS,
        json_schema_extra=_no_default,
    )
    filter: BulkFilter = Field(default=None, json_schema_extra=_no_default)  # type: ignore[assignment]
    force: StrictBool = False

    @field_validator("execution_ids", mode="before")
    @classmethod
    def _at_most_the_batch_limit(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_BATCH_ROWS:
            raise refused(
                f"at most {MAX_BATCH_ROWS:,} execution ids per request; got {len(value):,}",
                max_execution_ids=MAX_BATCH_ROWS,
            )
        return value

    @model_validator(mode="after")
    def _exactly_one_selection(self) -> BulkRetryBody:
        given = {"execution_ids", "filter"} & self.model_fields_set
        if len(given) != 1 or None in (getattr(self, name) for name in given):
            raise refused('send exactly one of "execution_ids" and "filter"')
        return self

    def as_request(self) -> dict[str, Any]:
        """The body as the bulk retry service reads it."""
        return self.model_dump(exclude_unset=True, exclude_none=True)


class CreatePurchaseBody(_Request):
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


class DecisionBody(_Request):
    """`POST /api/purchases/approve|cancel/<id>`: the approval email's token, or nothing
    (then the session decides)."""

    token: Text = Field(default=None, min_length=1, json_schema_extra=_no_default)  # type: ignore[assignment]


class BatchQuery(BaseModel):
    items: Flag = True


class HistoryFilterQuery(BaseModel):
    """The `HistoryFilter` fields of `/api/history` and its CSV export."""

    status: Annotated[StatusName | None, BeforeValidator(_blank_is_none)] = None
    cloud_account_id: QueryId = None
    plan_id: QueryId = None
    created_by_user_id: QueryId = None
    execution_id: QueryId = None
    error_contains: _query_text(MAX_SEARCH_LENGTH) = None  # type: ignore[valid-type]
    created_after: QueryMoment = None
    created_before: QueryMoment = None
    provider: Annotated[ProviderName | None, BeforeValidator(_blank_is_none)] = None
    cause: _query_text(MAX_SIGNATURE_LENGTH) = None  # type: ignore[valid-type]

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
    before: _query_text(MAX_CURSOR_LENGTH) = Field(  # type: ignore[valid-type]
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


class BatchAccepted(BaseModel):
    batch_id: str
    total: int
    status_url: str


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    execution_id: str
    state: Literal["queued", "succeeded", "rejected", "failed"]
    successor_execution_id: str | None
    status_code: int | None
    error: str | None


class BatchState(BaseModel):
    batch_id: str
    state: Literal["queued", "running", "done"]
    total: int
    queued: int
    succeeded: int
    rejected: int
    failed: int
    force: bool
    requested_by: str | None
    selection: dict[str, Any] | None
    created_at: str | None
    finished_at: str | None
    items: list[BatchItem] = Field(  # left out, never null
        default=None,  # type: ignore[arg-type]
        description="left out with ?items=false",
        json_schema_extra=_no_default,
    )


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


# --- The freeze and the plans (app.api.controls) ------------------------------------------


class FreezeBody(_Request):
    """`POST /api/freeze`: why purchases stop. Left out or blank, the freeze is refused
    (and the refusal audited) by the rule, which says why."""

    reason: Text | None = None


class FreezeState(BaseModel):
    frozen: bool
    reason: str | None
    frozen_by: str | None
    frozen_at: str | None = Field(description="ISO 8601, UTC")


class FreezeLifted(BaseModel):
    lifted: Literal[True]
    released: int = Field(description="approved executions queued now the freeze is lifted")


class PlanItem(BaseModel):
    id: str
    name: str
    enabled: bool
    paused: bool
    auto_purchase: bool
    current_step: int
    total_steps: int
    percent_per_step: str = Field(description="a decimal string")
    step_interval_days: int
    next_scheduled_for: str | None = Field(
        description="when the plan's next scheduled execution starts (ISO 8601, UTC)"
    )
    scheduled_later: int = Field(description="pending or approved executions scheduled later")
    waiting: int = Field(description="approved executions that may not start yet")


class PlanList(BaseModel):
    items: list[PlanItem]


class PlanSwitched(BaseModel):
    plan: PlanItem
    released: int = Field(description="approved executions queued by this switch")
    step_number: int | None = Field(description="run now: the step brought forward")


# --- A bulk retry's preview (app.api.purchases) -------------------------------------------


class BulkRetryQuery(BaseModel):
    """`POST /api/purchases/retry`: `preview=true` answers what would happen, writing
    nothing."""

    preview: Flag = False


class RetryPreviewTotals(BaseModel):
    """Money as decimal strings with two places (`app.domain.spending.Totals`)."""

    items: int
    upfront: str
    monthly: str
    term_total: str = Field(description="upfront plus recurring over the term")
    monthly_savings: str
    yearly_savings: str
    term_savings: str


class RetryPreviewGroup(BaseModel):
    outcome: Literal["queued", "refused"]
    status: int | None = Field(description="the refusal's HTTP status; null when queued")
    reason: str | None = Field(description="why these rows would be refused; null when queued")
    count: int
    totals: RetryPreviewTotals
    execution_ids: list[str] = Field(description="the group's first 100 ids")


class RetryPreview(BaseModel):
    total: int
    groups: list[RetryPreviewGroup]
    totals: RetryPreviewTotals = Field(description="the money of the rows that would be queued")
