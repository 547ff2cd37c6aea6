"""The JSON API: errors are always JSON `{error, ...details}` with the right status."""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.domain.errors import DomainError
from app.http import is_api_request, render_domain_error

blueprint = Blueprint("api", __name__, url_prefix="/api")


def init_app(app: Flask) -> None:
    from app.api import auth  # noqa: F401  (registers the routes)

    app.register_blueprint(blueprint)
    app.register_error_handler(DomainError, render_domain_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)


def _csrf_error(error: CSRFError) -> Response | CSRFError:
    if not is_api_request():
        return error
    return render_domain_error(DomainError(400, f"CSRF check failed: {error.description}"))


def _http_error(error: HTTPException) -> Response | HTTPException:
    """API paths answer every HTTP error in JSON; pages keep Flask's HTML."""
    if not is_api_request():
        return error
    response = jsonify(error=(error.description or error.name))
    response.status_code = error.code or 500
    return response
