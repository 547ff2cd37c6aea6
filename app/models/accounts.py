"""Cloud accounts and purchase plans: where a purchase runs, and the ramp it belongs to."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Integer, Numeric, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, CanonicalUUID, UTCDateTime, new_uuid, utc_now
from app.domain.providers import NEW_ACCOUNT_MODE, PROVIDERS, PurchaseMode

_PROVIDERS = ", ".join(f"'{provider}'" for provider in PROVIDERS)
_MODES = ", ".join(f"'{mode.value}'" for mode in PurchaseMode)


class CloudAccount(Base):
    __tablename__ = "cloud_accounts"
    __table_args__ = (
        CheckConstraint(f"provider IN ({_PROVIDERS})", name="provider_known"),
        CheckConstraint(f"purchase_mode IN ({_MODES})", name="purchase_mode_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(CanonicalUUID, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    # How its purchases run (`PurchaseMode`): a new account is asked, never bought from,
    # until an admin switches it to `live`.
    purchase_mode: Mapped[str] = mapped_column(
        String(16), server_default=NEW_ACCOUNT_MODE.value, default=NEW_ACCOUNT_MODE.value
    )
    # Where the cloud's SDK acts, beside `external_id` (the AWS account, the Azure
    # subscription, the GCP project): a role the AWS client assumes with `external_id` as
    # its STS external id, and the billing scope Azure's purchase is charged to. Never a
    # secret: credentials come from each SDK's own chain.
    aws_role_arn: Mapped[str | None] = mapped_column(String(2048))
    azure_billing_scope: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())

    @property
    def mode(self) -> PurchaseMode:
        return PurchaseMode(self.purchase_mode)

    def __repr__(self) -> str:
        return f"<CloudAccount {self.provider}:{self.name}>"


class PurchasePlan(Base):
    """A ramp: buy `percent_per_step` of the recommendation every `step_interval_days`."""

    __tablename__ = "purchase_plans"
    __table_args__ = (
        CheckConstraint("total_steps >= 1", name="total_steps_positive"),
        CheckConstraint(
            "current_step >= 0 AND current_step <= total_steps", name="current_step_in_range"
        ),
        CheckConstraint(
            "percent_per_step > 0 AND percent_per_step <= 100", name="percent_per_step_in_range"
        ),
        CheckConstraint("step_interval_days >= 1", name="step_interval_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(CanonicalUUID, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200))
    auto_purchase: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    current_step: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    total_steps: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)
    percent_per_step: Mapped[float] = mapped_column(
        Numeric(5, 2), server_default=text("100"), default=100
    )
    step_interval_days: Mapped[int] = mapped_column(Integer, server_default=text("7"), default=7)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())

    def __repr__(self) -> str:
        return f"<PurchasePlan {self.name}>"
