"""Who may read `/metrics`: a pure decision of the request's credentials, its peer and
the settings.

The numbers are aggregates (statuses, kinds, reasons, queue names; no user, account or
amount of any one purchase), yet they tell the business's spend, so they are not public:

- With `METRICS_TOKEN` set, the scraper sends `Authorization: Bearer <METRICS_TOKEN>`
  (compared in constant time); nothing else is accepted, wherever it comes from.
- Without it, only this machine may scrape: a loopback peer whose request carries no
  proxy header. A reverse proxy on the same host makes every visitor look like
  127.0.0.1, and most proxies add `X-Forwarded-For`; the token is the way through one.
- Under `APP_ENV=production` the token is required: there a proxy is the rule.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from ipaddress import ip_address

# Headers a proxy adds: a request carrying one did not come from this machine itself.
PROXY_HEADERS = frozenset({"forwarded", "x-forwarded-for", "x-real-ip"})


def scrape_refusal(
    *,
    token: str | None,
    production: bool,
    authorization: str | None,
    peer: str | None,
    header_names: Iterable[str],
) -> str | None:
    """Why this request may not read `/metrics` (the 401's message), or None.
    `header_names`: the names of the request's headers, in any case."""
    if token is not None:
        scheme, _, sent = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            sent.strip().encode(), token.encode()
        ):
            return None
        return "send METRICS_TOKEN as 'Authorization: Bearer <token>'"
    if production:
        return "set METRICS_TOKEN to read /metrics under APP_ENV=production"
    proxied = any(name.lower() in PROXY_HEADERS for name in header_names)
    if proxied or not is_loopback(peer):
        return "without METRICS_TOKEN, /metrics answers only this machine (loopback, no proxy)"
    return None


def is_loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ip_address(peer).is_loopback
    except ValueError:
        return False
