"""Reading a JSON API request: its body parsed as JSON, then validated against its
model (`app.api.schemas`), a mismatch refused with a 400 `DomainError` naming the first
field that does not fit, as the client spells it."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from app.domain.errors import DomainError

# A refusal names a field or key, never echoes a huge one back.
_MAX_SHOWN = 40
# The error types of the schemas' validators, whose messages follow the field's name.
_OURS = frozenset({"text", "flag", "limit"})


def refused(message: str, **details: Any) -> PydanticCustomError:
    """A validator's refusal whose message is already the whole answer."""
    return PydanticCustomError("refused", "{message}", {"message": message, "details": details})


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any) -> M:
    """`data` as `model`, or a 400 `DomainError` naming the first field that does not fit."""
    try:
        return model.model_validate(data)
    except ValidationError as invalid:
        raise refusal(invalid) from None


def refusal(invalid: ValidationError) -> DomainError:
    first = invalid.errors(include_url=False, include_input=False)[0]
    context = first.get("ctx") or {}
    if first["type"] == "refused":
        return DomainError(400, context["message"], **context["details"])
    where = _where(first["loc"])
    if first["type"] in _OURS:  # a message written to follow the field's name
        return DomainError(400, f"{where} {first['msg']}")
    if first["type"] == "extra_forbidden":
        return DomainError(400, f"{where} is not a field of this request")
    message = first["msg"][:1].lower() + first["msg"][1:]
    return DomainError(400, f"{where}: {message}" if where else message)


def _where(loc: tuple[int | str, ...]) -> str:
    """`filter.status`, `execution_ids[3]`: the field as a client spells it."""
    where = ""
    for part in loc:
        if isinstance(part, int):
            where += f"[{part}]"
        else:
            shown = part if len(part) <= _MAX_SHOWN else part[:_MAX_SHOWN] + "…"
            # A key is JSON text: show it, control characters escaped, never raw.
            shown = shown.encode("unicode_escape", "backslashreplace").decode("ascii")
            where += f".{shown}" if where else shown
    return where


def json_body(raw: bytes) -> Any:
    """A request body parsed as JSON by pydantic's parser, which refuses lone surrogates
    and nesting deeper than it can hold with an error rather than a crash; None when
    empty."""
    if not raw.strip():
        return None
    try:
        return pydantic_core.from_json(raw)
    except ValueError as exc:
        raise DomainError(400, f"the body is not valid JSON: {str(exc)[:100]}") from None
