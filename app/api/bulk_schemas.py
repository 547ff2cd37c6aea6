"""The bulk retry's request, preview and state, as the API checks and documents them
(`POST /api/purchases/retry`, `GET /api/purchases/retry/batches/<id>`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from app.api.fields import Flag, ProviderName, Request, StatusName, Text, no_default
from app.api.reading import refused
from app.domain.bulk_retry import MAX_BATCH_ROWS, MAX_ID_TEXT
from app.domain.causes import MAX_SIGNATURE_LENGTH
from app.services.execution_reads import MAX_SEARCH_LENGTH


class BulkFilter(Request):
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


class BulkRetryBody(Request):
    """`POST /api/purchases/retry`: exactly one of `execution_ids` and `filter`. Each id
    is checked later with its own outcome, so a malformed one is that item's 400."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["execution_ids"]}, {"required": ["filter"]}]}
    )

    execution_ids: list[ExecutionIdText] = Field(  # never null: left out or a list
        default=None,  # type: ignore[arg-type]
        min_length=1,
        max_length=MAX_BATCH_ROWS,
        json_schema_extra=no_default,
    )
    filter: BulkFilter = Field(default=None, json_schema_extra=no_default)  # type: ignore[assignment]
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


class BatchQuery(BaseModel):
    items: Flag = True


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
        json_schema_extra=no_default,
    )


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
