"""The typed SQLAlchemy models; importing this package registers every table."""

from app.models.accounts import CloudAccount, PurchasePlan
from app.models.audit import AuditEvent
from app.models.controls import PurchaseFreeze, SpendLimit
from app.models.executions import PurchaseExecution, PurchaseSuppression
from app.models.identity import Group, LoginAttempts, User, normalize_email
from app.models.notifications import ApprovalToken, Notification
from app.models.purchases import ProviderPurchase
from app.models.retry_batches import RetryBatch, RetryBatchItem

__all__ = [
    "ApprovalToken",
    "AuditEvent",
    "CloudAccount",
    "Group",
    "LoginAttempts",
    "Notification",
    "ProviderPurchase",
    "PurchaseExecution",
    "PurchaseFreeze",
    "PurchasePlan",
    "PurchaseSuppression",
    "RetryBatch",
    "RetryBatchItem",
    "SpendLimit",
    "User",
    "normalize_email",
]
