"""The request door: hostile input is refused with 400 (413 for a body too large) and a
message naming the part, before any blueprint's hooks, view, domain or database code
sees it.

Every request, whatever its endpoint, is read here once: its path, its query string,
its form (keys, values, and whether it carries a file) and its JSON body (parsed once,
with the nesting depth bounded and every key and string checked). Text is judged by
the one rule, `app.domain.inputs.text_problem`. What passes is left parsed and cached
on the request (`request.form`, `request.get_json()`), so the endpoints read the very
values checked here.

Why at the door rather than in each endpoint: a NUL reaches PostgreSQL from any text
field and is refused there with a 500; a 100,000-deep JSON array raises
`RecursionError` in the parser itself; a file part where a form expects text reaches
WTForms as an object. Refusing these by the shape of the request, not by what each
endpoint does with it, leaves no endpoint to forget.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from app.domain.errors import DomainError
from app.domain.inputs import text_problem
from app.http import is_api_request, render_domain_error

# Deeper than any body this API takes (a bulk filter is two levels), shallow enough
# that no later walk over a body can come near Python's recursion limit.
MAX_JSON_DEPTH = 32

# Endpoints that accept a file part in a form: the panel's New purchase page (its items
# file, read as UTF-8 text). A file anywhere else is refused, so a handler never meets a
# `FileStorage` where it expects text.
FILE_ENDPOINTS: frozenset[str] = frozenset({"purchase_new.submit"})

_FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
_SHOWN = 40  # characters of a refused name quoted back in a message


def init_app(app: Flask) -> None:
    """Register the door. Called by the factory before any extension or blueprint
    registers a hook of its own, so it runs first on every request (app-wide
    `before_request` functions run in registration order, before blueprints' own)."""
    app.before_request(refuse_hostile_input)


def refuse_hostile_input() -> Response | None:
    """The refusal of the first hostile part of the request, or None to let it on."""
    try:
        _check_request()
    except DomainError as refusal:
        return render_domain_error(refusal)
    return None


def _check_request() -> None:
    _check_text(request.path, "the path")
    for key, value in request.args.items(multi=True):
        _check_text(key, "a query parameter name")
        _check_text(value, f"the query parameter {_name(key)}")
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        if request.mimetype in _FORM_TYPES:
            _check_form()
        elif request.is_json:
            if not is_api_request() and request.get_data(cache=True):
                # Flask-WTF builds a page's form from any JSON body, and a body that is
                # not an object of strings breaks it (a 500): pages take forms only.
                raise DomainError(415, "this page takes a form, not a JSON body")
            _check_json()
    except RequestEntityTooLarge:
        # A body sent without a length, or a form over its memory or part limits.
        raise _too_large(limit) from None


def _check_form() -> None:
    for key, value in request.form.items(multi=True):
        _check_text(key, "a form field name")
        _check_text(value, f"the form field {_name(key)}")
    if request.files and request.endpoint not in FILE_ENDPOINTS:
        field = next(iter(request.files))
        raise DomainError(400, f"the form field {_name(field)} is a file: no file is taken here")


def _check_json() -> None:
    """Parse the body once, through Flask (which caches it for the endpoint), with the
    parser's own recursion refused rather than raised; then walk it without recursion."""
    if not request.get_data(cache=True):
        return  # no body: the endpoint says what it expected
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise _too_deep() from None
    if body is None and request.get_data(cache=True).strip() != b"null":
        raise DomainError(400, "the body is not valid JSON (UTF-8)")
    _check_json_value(body)


def _check_json_value(body: Any) -> None:
    pending: list[tuple[Any, int, str]] = [(body, 0, "the JSON body")]
    while pending:
        value, depth, where = pending.pop()
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise _too_deep()
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key, f"a key in {where}")
                    pending.append((item, depth + 1, f"the JSON body's {_name(key)}"))
            else:
                pending.extend((item, depth + 1, where) for item in value)


def _check_text(value: str, what: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise DomainError(400, f"{what} {problem}")


def _name(key: str) -> str:
    """A name quoted back safely: escaped (`repr`) and cut short."""
    shown = key if len(key) <= _SHOWN else key[:_SHOWN] + "…"
    return ascii(shown)


def _too_deep() -> DomainError:
    return DomainError(400, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")


def _too_large(limit: int | None) -> DomainError:
    size = f"{limit:,} bytes" if limit else "the limit"
    parts = current_app.config.get("MAX_FORM_PARTS") or "any number of"
    return DomainError(
        413, f"the request body is too large: at most {size}, and a form of {parts} fields"
    )
