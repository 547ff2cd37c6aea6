"""`GET /healthz`, `GET /readyz` and `GET /metrics`: plain routes of the app, so every
request passes the door (`app.door`) and gets the security headers like any other.
None needs a session; `/metrics` asks for its own credentials (`access`)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from prometheus_client.exposition import choose_encoder
from werkzeug.wrappers import Response

from app.config import get_settings
from app.domain.errors import DomainError
from app.observability.access import scrape_refusal
from app.observability.health import readiness
from app.observability.metrics import exposition

blueprint = Blueprint("observability", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> Response:
    found = readiness()
    response = jsonify(found.as_dict())
    response.status_code = 200 if found.ready else 503
    return response


@blueprint.get("/metrics")
def metrics() -> Response:
    settings = get_settings()
    refusal = scrape_refusal(
        token=settings.metrics_token,
        production=settings.is_production,
        authorization=request.headers.get("Authorization"),
        peer=request.remote_addr,
        header_names=request.headers.keys(),
    )
    if refusal is not None:
        raise DomainError(401, refusal)
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(exposition()), content_type=content_type)


@blueprint.errorhandler(DomainError)
def _refused(error: DomainError) -> Response:
    """A scraper reads JSON, not the panel's error page; a 401 names its scheme."""
    response = jsonify(error.as_dict())
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
