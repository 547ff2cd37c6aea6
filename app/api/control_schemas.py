"""The purchase freeze's and the plans' requests and answers (`app.api.controls`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.api.fields import Request, Text


class FreezeBody(Request):
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
