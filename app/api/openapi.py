"""One decorator per API route that both checks its request against the route's models
and describes the route, and the OpenAPI 3.1 document written from those descriptions
(`GET /api/openapi.json`, no session needed).

The document is assembled with apispec from the models' own JSON Schema (pydantic's
`model_json_schema`, JSON Schema 2020-12, which is OpenAPI 3.1's dialect): nothing is
described twice, so the document cannot drift from what the API checks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from apispec import APISpec
from flask import current_app, jsonify, request
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.wrappers import Response

from app.api import CSRF_HEADER, blueprint
from app.api.reading import json_body, validate
from app.api.schemas import ErrorBody
from app.domain.errors import DomainError

SESSION = "session"
CSRF = "csrf"
_REF = "#/components/schemas/{model}"
# A response that is a file, not JSON: its media type.
Media = str
Refs = dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]

_REASONS = {
    200: "OK",
    202: "Accepted: the worker settles it; follow `status_url`",
    400: "Malformed: a body, query or id that does not fit, or a failed CSRF check",
    401: "No session, or wrong credentials",
    403: "Not allowed",
    404: "Unknown id",
    409: "Refused by the rules; details say why",
    413: "The body is too large",
    415: "The body is not JSON",
    429: "Too many tries from this client address",
}


@dataclass(frozen=True)
class Operation:
    """What a route takes and answers. `auth`: "none" (no session needed), "session"
    (a session cookie; on POST also `X-CSRFToken`), "session-or-token" (those, or the
    approval email's token in the body)."""

    summary: str
    responses: Mapping[int, type[BaseModel] | Media]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = False
    body_example: str = "{...}"
    # Reads the body some other way than `read_body` (login keeps its 415 for a body
    # that is not JSON); its result is still checked against `body`.
    body_reader: Callable[[], Any] | None = None
    auth: str = "session"
    tags: tuple[str, ...] = field(default_factory=tuple)


def operation(**described: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Check the request's query string (`query=`) and JSON body (`body=`) against their
    models and hand the view the results as `query` and `body`; a request that does not
    fit is a 400 before the view runs. Also the route's entry in the document."""
    spec = Operation(**described)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def checked(**kwargs: Any) -> Any:
            if spec.query is not None:
                kwargs["query"] = validate(spec.query, request.args.to_dict())
            if spec.body is not None:
                kwargs["body"] = read_body(spec)
            return view(**kwargs)

        checked.api_operation = spec  # type: ignore[attr-defined]
        return checked

    return decorate


def read_body(spec: Operation) -> BaseModel | None:
    """The JSON body as `spec.body`; None when there is none and none is required. A
    body sent as something other than JSON is no body (a form post carries none)."""
    assert spec.body is not None
    if spec.body_reader is not None:
        return validate(spec.body, spec.body_reader())
    data = json_body(request.get_data(cache=True)) if request.is_json else None
    if data is None:
        if spec.body_required:
            raise DomainError(400, f"send a JSON object: {spec.body_example}")
        return None
    if not isinstance(data, dict):
        raise DomainError(400, f"the body must be a JSON object: {spec.body_example}")
    return validate(spec.body, data)


@blueprint.get("/openapi.json")
@operation(summary="This document", responses={200: "application/json"}, auth="none")
def openapi_document() -> Response:
    return jsonify(document())


def document() -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of every route with an `operation`."""
    spec = APISpec(
        title="Commitment purchases: the approval-and-retry control plane",
        version="1",
        openapi_version="3.1.0",
        info={
            "description": "Errors are JSON `{error, ...details}`. Sign in with "
            "`POST /api/auth/login`; send its `csrf_token` as `X-CSRFToken` on every "
            "state-changing request."
        },
    )
    spec.components.security_scheme(
        SESSION,
        {"type": "apiKey", "in": "cookie", "name": current_app.config["SESSION_COOKIE_NAME"]},
    )
    spec.components.security_scheme(CSRF, {"type": "apiKey", "in": "header", "name": CSRF_HEADER})
    routes = list(_described_routes())
    refs, schemas = _component_schemas(routes)
    for name, schema in schemas.items():
        spec.components.schema(name, schema)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, described in routes:
        paths.setdefault(path, {})[method] = _operation_object(path, method, described, refs)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _described_routes() -> Iterable[tuple[str, str, Operation]]:
    for rule in current_app.url_map.iter_rules():
        view = current_app.view_functions.get(rule.endpoint)
        described = getattr(view, "api_operation", None)
        if described is None:
            continue
        # `<path:execution_id>` → `{execution_id}`
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield path, method.lower(), described


def _component_schemas(routes: list[tuple[str, str, Operation]]) -> tuple[Refs, dict[str, Any]]:
    """Every model's schema, each under the name pydantic gives it (`X-Input` when a
    model reads differently in a request and an answer), and the `$ref` of each."""
    models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ErrorBody, "serialization"): None
    }
    for _path, _method, described in routes:
        if described.body is not None:
            models[(described.body, "validation")] = None
        for answer in described.responses.values():
            if isinstance(answer, type):
                models[(answer, "serialization")] = None
    refs, top = models_json_schema(list(models), ref_template=_REF)
    # Its keys are the pairs given, so every model is a BaseModel (no pydantic dataclass).
    return cast(Refs, refs), top.get("$defs", {})


def _operation_object(path: str, method: str, described: Operation, refs: Refs) -> dict[str, Any]:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
            "description": "a UUID; anything else is a 400",
        }
        for name in re.findall(r"{([^{}]+)}", path)
    ]
    if described.query is not None:
        parameters += _query_parameters(described.query)
    # The request door refuses hostile input (control characters anywhere, a body too
    # large or too deep) before any route runs, so every operation may answer it.
    door = {400: ErrorBody, 413: ErrorBody} if method != "get" else {400: ErrorBody}
    responses = {**door, **described.responses}
    answer: dict[str, Any] = {
        "summary": described.summary,
        "operationId": f"{method}_{path}",
        "tags": list(described.tags) or [path.split("/")[2]],
        "parameters": parameters,
        "responses": {
            str(status): _response(status, model, refs)
            for status, model in sorted(responses.items())
        },
    }
    if described.body is not None:
        answer["requestBody"] = {
            "required": described.body_required,
            "content": {"application/json": {"schema": refs[(described.body, "validation")]}},
        }
    writes = method != "get"
    if described.auth == "none":
        answer["security"] = []
    else:
        needed: dict[str, list[str]] = {SESSION: [], CSRF: []} if writes else {SESSION: []}
        answer["security"] = [needed, {}] if described.auth == "session-or-token" else [needed]
    return answer


def _response(status: int, model: type[BaseModel] | Media, refs: Refs) -> dict[str, Any]:
    if isinstance(model, str):
        shape = {"type": "object"} if model == "application/json" else {"type": "string"}
        content = {model: {"schema": shape}}
    else:
        content = {"application/json": {"schema": refs[(model, "serialization")]}}
    return {"description": _REASONS.get(status, "OK"), "content": content}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=_REF, mode="validation")
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _without_null(prop),
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query value is text or absent, never JSON null: `anyOf [X, null]` becomes X."""
    options = [option for option in schema.get("anyOf", ()) if option != {"type": "null"}]
    if "anyOf" not in schema or len(options) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key not in {"anyOf", "default"}}
    return {**options[0], **rest}
