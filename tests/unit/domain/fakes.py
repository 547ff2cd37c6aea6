"""Rows and users as the pure rules see them, with no database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from app.domain.providers import PurchaseMode
from app.domain.rbac import DEFAULT_PERMISSIONS, Principal
from app.domain.retry import RetryPolicy

ME = uuid.uuid4()
SOMEONE_ELSE = uuid.uuid4()
SUCCESSOR = uuid.uuid4()
POLICY = RetryPolicy(threshold=5)


@dataclass
class Row:
    status: str = "failed"
    created_by_user_id: uuid.UUID | None = ME
    retried_by_user_id: uuid.UUID | None = None
    retry_execution_id: uuid.UUID | None = None
    retry_attempt_n: int = 0
    error: str | None = "InsufficientCapacity: try later"
    recommendations: Any = field(default_factory=lambda: [{"provider": "aws", "count": 1}])
    account_provider: str | None = "aws"
    account_mode: PurchaseMode = PurchaseMode.SIMULATE


def user(*extra: str, defaults: bool = True) -> Principal:
    permissions = (DEFAULT_PERMISSIONS if defaults else frozenset()) | set(extra)
    return Principal(user_id=ME, email="me@example.com", permissions=frozenset(permissions))
