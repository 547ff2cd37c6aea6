"""The typed SQLAlchemy models; importing this package registers every table."""

from app.models.accounts import PROVIDERS, CloudAccount, PurchasePlan
from app.models.audit import AuditEvent
from app.models.executions import PurchaseExecution, PurchaseSuppression
from app.models.identity import Group, User, normalize_email, user_groups
from app.models.retry_requests import RetryRequest

__all__ = [
    "PROVIDERS",
    "AuditEvent",
    "CloudAccount",
    "Group",
    "PurchaseExecution",
    "PurchasePlan",
    "PurchaseSuppression",
    "RetryRequest",
    "User",
    "normalize_email",
    "user_groups",
]
