"""How a request is read and answered, shared by the API, the panel and the sign-in
pages: JSON bodies parsed one way, refusals rendered as JSON on the API and as a page
elsewhere."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from werkzeug.wrappers import Response

from app.domain.errors import DomainError
from app.domain.inputs import is_text


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def render_domain_error(error: DomainError) -> Response:
    """A refusal with its status: the JSON body `{error, ...details}` on the API, a page
    elsewhere (a panel URL with a bad id or page number, say)."""
    if is_api_request():
        response = jsonify(error.as_dict())
    else:
        response = Response(render_template("error.html", error=error), mimetype="text/html")
    response.status_code = error.status
    return response


def json_object(example: str) -> dict[str, Any]:
    """The request's JSON body, which must be an object: 415 if it is not JSON, 400 if
    it is not an object or holds text that is not valid Unicode (a lone surrogate).

    `example` shows the expected shape in the refusal.
    """
    body = request.get_json(silent=True)
    if not request.is_json or body is None:
        raise DomainError(415, f"send a JSON object: {example}")
    if not isinstance(body, dict):
        raise DomainError(400, f"the body must be a JSON object: {example}")
    if not _all_text_valid(body):
        raise DomainError(400, "the body holds text that is not valid Unicode")
    return body


def _all_text_valid(value: Any) -> bool:
    if isinstance(value, str):
        return is_text(value)
    if isinstance(value, dict):
        return all(is_text(key) and _all_text_valid(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_all_text_valid(item) for item in value)
    return True
