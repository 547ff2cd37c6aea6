"""How a request is answered when it fails: JSON on the API, pages elsewhere.

Shared by the API blueprint and the sign-in wiring, so both render refusals alike.
"""

from __future__ import annotations

from flask import jsonify, request
from werkzeug.wrappers import Response

from app.domain.errors import DomainError


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def render_domain_error(error: DomainError) -> Response:
    """A refusal as the JSON body `{error, ...details}` with its status."""
    response = jsonify(error.as_dict())
    response.status_code = error.status
    return response
