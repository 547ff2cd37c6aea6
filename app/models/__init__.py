"""The typed SQLAlchemy models; importing this package registers every table."""

from app.models.accounts import CloudAccount, PurchasePlan
from app.models.audit import AuditEvent
from app.models.causes import FailureCauseFix
from app.models.channels import ChannelMessage, NotificationChannel
from app.models.controls import PurchaseFreeze, SpendLimit
from app.models.executions import PurchaseExecution, PurchaseSuppression
from app.models.identity import Group, LoginAttempts, User, normalize_email
from app.models.notifications import ApprovalToken, DigestLink, Notification
from app.models.purchases import ProviderPurchase
from app.models.retry_batches import RetryBatch, RetryBatchItem

__all__ = [
    "ApprovalToken",
    "AuditEvent",
    "ChannelMessage",
    "CloudAccount",
    "DigestLink",
    "FailureCauseFix",
    "Group",
    "LoginAttempts",
    "Notification",
    "NotificationChannel",
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
