"""The security headers of every response, set in one place: Flask-Talisman for the
policy headers, one `after_request` hook for caching.

- Content-Security-Policy: everything from this origin only; scripts from this origin
  or carrying the response's nonce, never inline handlers or `javascript:` URLs, so an
  injected `<script>` or `onerror=` does not run. Styles may be inline (Flask-Admin's
  templates and Bootstrap's widgets set `style=`; a style cannot run code).
  `frame-ancestors 'none'` (and `X-Frame-Options: DENY` for older browsers): no page
  can be framed, so no click can be tricked ("clickjacking" an Approve button).
- `X-Content-Type-Options: nosniff`: the CSV and the JSON are never run as script.
- `Referrer-Policy: same-origin`: panel URLs (ids, filters) do not leak to other sites,
  while Flask-WTF's https check still sees the Referer of the panel's own forms. A view
  that sets a stricter policy itself (the approval links: `no-referrer`) keeps it.
- HSTS only when APP_BASE_URL is https, and only on https responses; nothing is ever
  redirected to https here (the embedded default is http on 127.0.0.1, and behind a
  TLS proxy the redirect is the proxy's job).
- `Cache-Control: no-store` on everything but static files: every page, JSON answer and
  CSV may hold purchases, tokens or a CSRF token, and a shared or back-button cache
  must not keep them.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_talisman import Talisman
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",  # plus the response's nonce (content_security_policy_nonce_in)
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",  # Bootstrap's icons are data: URLs in its CSS
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
REFERRER_POLICY = "same-origin"


class _Talisman(Talisman):
    """Talisman, except that a response which already names a Referrer-Policy keeps it
    (Talisman has no per-view option for that header; the approval links need theirs)."""

    def _set_referrer_policy_headers(self, headers: Headers) -> None:
        headers.setdefault("Referrer-Policy", self.referrer_policy)


talisman = _Talisman()


def init_app(app: Flask, *, https: bool) -> None:
    """Send the headers on every response of `app`; `https`: APP_BASE_URL is https."""
    talisman.init_app(
        app,
        force_https=False,
        strict_transport_security=https,
        session_cookie_secure=https,  # Talisman would otherwise force Secure on http
        content_security_policy=CONTENT_SECURITY_POLICY,
        content_security_policy_nonce_in=["script-src"],
        frame_options="DENY",
        referrer_policy=REFERRER_POLICY,
        x_content_type_options=True,
    )
    app.after_request(_no_store)


def csp_nonce() -> str:
    """This response's script nonce (what Talisman puts in the policy), for templates
    that render their own `<script nonce=...>` tags (Flask-Admin's)."""
    make_nonce = current_app.jinja_env.globals["csp_nonce"]
    if not callable(make_nonce):
        raise RuntimeError("security headers are not set up on this app (init_app)")
    return str(make_nonce())


def _no_store(response: Response) -> Response:
    if not _is_static_file():
        response.headers["Cache-Control"] = "no-store"
    return response


def _is_static_file() -> bool:
    """A file of a `static` folder (the app's, the panel's or Flask-Admin's): the same
    bytes for everyone, fine to cache."""
    endpoint = request.endpoint or ""
    return endpoint == "static" or endpoint.endswith(".static")
