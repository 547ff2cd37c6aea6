"""botocore clients for an account: from `boto3.Session()`'s default credential chain, or
from the temporary credentials of the account's role (STS AssumeRole, with the account's
ExternalId when it has one). Nothing is created until the first call, so constructing the
provider needs neither network nor credentials. Credentials are never logged."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import boto3
from botocore.config import Config

from app.providers import AccountTarget
from app.providers.aws.errors import call

SESSION_NAME = "commitment-control-plane"
CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8},
    # An unreachable endpoint is reported in seconds (Test connection waits on it), not
    # after botocore's default minute per attempt.
    connect_timeout=10,
    user_agent_extra="commitment-control-plane",
)
# Temporary credentials are renewed this long before they expire.
_RENEW_BEFORE = timedelta(minutes=5)


class ClientFactory(Protocol):
    """Makes the botocore client for `service_name` in `region` acting in `account`."""

    def __call__(self, account: AccountTarget, service_name: str, region: str) -> Any: ...


class Boto3Clients:
    """The default `ClientFactory`: one `boto3.Session()`, created on first use; an
    account's role is assumed once and its credentials reused until shortly before they
    expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._assumed: dict[tuple[str, str], dict[str, Any]] = {}

    def __call__(self, account: AccountTarget, service_name: str, region: str) -> Any:
        credentials = self._credentials(account, region) if account.aws_role_arn else {}
        with self._lock:  # a boto3 Session is not safe to share between threads unlocked
            return self._base().client(
                service_name,  # type: ignore[call-overload]
                region_name=region,
                config=CONFIG,
                **credentials,
            )

    def _base(self) -> boto3.Session:
        if self._session is None:
            self._session = boto3.Session()
        return self._session

    def _credentials(self, account: AccountTarget, region: str) -> dict[str, Any]:
        role = str(account.aws_role_arn)
        cache_key = (role, account.external_id)
        cached = self._assumed.get(cache_key)
        if cached is not None and cached["expires"] - _RENEW_BEFORE > datetime.now(UTC):
            return cached["client_args"]
        with self._lock:
            sts = self._base().client("sts", region_name=region, config=CONFIG)
        arguments: dict[str, Any] = {"RoleArn": role, "RoleSessionName": SESSION_NAME}
        if account.external_id:
            arguments["ExternalId"] = account.external_id
        answer = call("sts:AssumeRole", lambda: sts.assume_role(**arguments))
        issued = answer["Credentials"]
        client_args = {
            "aws_access_key_id": issued["AccessKeyId"],
            "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"],
        }
        self._assumed[cache_key] = {"expires": issued["Expiration"], "client_args": client_args}
        return client_args
