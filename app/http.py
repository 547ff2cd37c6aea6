"""How a request is read and answered, shared by the API, the panel and the sign-in
pages: JSON bodies parsed one way, refusals rendered as JSON on the API and as a page
elsewhere.

The app-wide error handlers are here (`create_app` registers them, for every
blueprint): a `DomainError` is answered by `render_domain_error`; a failed CSRF check
and any other HTTP error are JSON under /api and Flask's own page elsewhere.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.domain.errors import DomainError


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def render_domain_error(error: DomainError) -> Response:
    """A refusal with its status: the JSON body `{error, ...details}` on the API, a page
    elsewhere (a panel URL with a bad id or page number, say)."""
    response: Response
    if is_api_request():
        response = jsonify(error.as_dict())
    else:
        response = Response(render_template("error.html", error=error), mimetype="text/html")
    response.status_code = error.status
    return response


def csrf_error(error: CSRFError) -> Response | CSRFError:
    """A failed CSRF check: a 400 refusal in JSON on the API; Flask's page elsewhere."""
    if not is_api_request():
        return error
    return render_domain_error(DomainError(400, f"CSRF check failed: {error.description}"))


def http_error(error: HTTPException) -> Response | HTTPException:
    """API paths answer every HTTP error in JSON; pages keep Flask's HTML."""
    if not is_api_request():
        return error
    response = jsonify(error=(error.description or error.name))
    response.status_code = error.code or 500
    return response


def json_object(example: str) -> dict[str, Any]:
    """The request's JSON body, which must be an object: 415 if it is not JSON, 400 if
    it is not an object. (Its text, depth and size were checked at the door,
    `app.door`, before any endpoint ran.)

    `example` shows the expected shape in the refusal.
    """
    body = request.get_json(silent=True)
    if not request.is_json or body is None:
        raise DomainError(415, f"send a JSON object: {example}")
    if not isinstance(body, dict):
        raise DomainError(400, f"the body must be a JSON object: {example}")
    return body
