"""The lease columns of work a worker claims (see `app.services.leases`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime


class Leased:
    """Who holds the row's work (the Celery task id of the run working on it, or NULL
    while it waits in the broker) and until when; past `lease_expires_at` any worker
    may take the work over."""

    lease_owner: Mapped[str | None] = mapped_column(String(155))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
