"""The signed webhook, as an Apprise notification of the product's own.

Apprise's `json://` cannot sign a body, so a webhook channel goes through a custom
Apprise plugin (`apprise.decorators.notify`) registered on the schemes `ccpwebhook`
(http) and `ccpwebhooks` (https). It POSTs the message's JSON body, byte for byte as
signed, with

    X-Signature-256: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the secret>
    X-Signature-Timestamp: <unix seconds>

(`app.domain.channels.sign`). The channel's secret travels to the plugin as the
password of the Apprise URL built here (Apprise hides URL passwords in what it logs);
the webhook URL's own path and query are kept. A 2xx answer is success; anything else,
or no answer, is a failure the outbox retries.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import requests
from apprise.decorators import notify

from app.domain.channels import sign

PLAIN = "ccpwebhook"
SECURE = "ccpwebhooks"
# Connect and read timeouts: well inside a lease (app.domain.staleness.LEASE_TTL).
TIMEOUT = (4.0, 8.0)

# Apprise's logger: what the plugin logs is what the outbox records as the error.
log = logging.getLogger("apprise.custom.ccp_webhook")


def apprise_url(target: str, secret: str) -> str:
    """The Apprise URL of a webhook `target` (http or https) signed with `secret`."""
    register()
    parts = urlsplit(target)
    scheme = SECURE if parts.scheme.lower() == "https" else PLAIN
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://:{quote(secret, safe='')}@{host}{port}{parts.path or '/'}{query}"


@cache
def register() -> None:
    """Register the plugin with Apprise, once per process."""
    # Apprise's decorator is untyped.
    notify(on=PLAIN, name="Signed webhook")(_post)  # type: ignore[no-untyped-call]
    notify(on=SECURE, name="Signed webhook (https)")(_post)  # type: ignore[no-untyped-call]


def _post(body: str, title: str, notify_type: str, meta: dict[str, Any], **_: Any) -> bool:
    scheme = "https" if meta.get("schema") == SECURE else "http"
    host = meta.get("host") or ""
    port = f":{meta['port']}" if meta.get("port") else ""
    query = f"?{urlencode(meta['qsd'])}" if meta.get("qsd") else ""
    url = f"{scheme}://{host}{port}{meta.get('fullpath') or '/'}{query}"
    signed = sign(body.encode(), unquote(meta.get("password") or ""), int(time.time()))
    try:
        response = requests.post(
            url,
            data=signed.body,
            headers=signed.headers,
            timeout=TIMEOUT,
            verify=meta.get("verify", True),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        log.warning("webhook %s://%s%s unreachable: %s", scheme, host, port, type(exc).__name__)
        return False
    if not 200 <= response.status_code < 300:
        log.warning("webhook %s://%s%s answered %s", scheme, host, port, response.status_code)
        return False
    return True
