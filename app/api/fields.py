"""The field types and the request base the API's schemas share.

Text goes through the product's one text rule (`app.domain.inputs.text_problem`); a
query value may be blank, meaning absent; a request part refuses fields it does not
have (`Request`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from app.domain.bulk_retry import MAX_ID_TEXT
from app.domain.inputs import parse_bool, text_problem
from app.domain.providers import PROVIDERS
from app.domain.statuses import Status


def _text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("text", problem)
    return value


def _flag(value: Any) -> Any:
    """The usual spellings of a yes or no in a query string (`parse_bool`)."""
    if isinstance(value, bool):
        return value
    flag = parse_bool(value) if isinstance(value, str) else None
    if flag is None:
        raise PydanticCustomError("flag", "must be true or false")
    return flag


def blank_is_none(value: Any) -> Any:
    """A blank query value is no filter, as in the panel's forms."""
    if isinstance(value, str):
        _text(value)
        return value.strip() or None
    return value


def no_default(schema: dict[str, Any]) -> None:
    """For a field that may be left out but never be null: no `"default": null` in the
    document, which would contradict the field's type."""
    schema.pop("default", None)


Text = Annotated[str, AfterValidator(_text)]
Flag = Annotated[bool, BeforeValidator(_flag)]


def query_text(max_length: int, **schema: Any) -> Any:
    """An optional query value of at most `max_length` characters (`schema`: what the
    document adds, a format), blank meaning absent."""
    text = Annotated[str, Field(max_length=max_length, json_schema_extra=schema or None)]
    return Annotated[text | None, BeforeValidator(blank_is_none)]


if TYPE_CHECKING:  # what the validators below hand the code
    QueryId = str | None
    QueryMoment = str | None
    StatusName = str
    ProviderName = str
else:
    QueryId = query_text(MAX_ID_TEXT, format="uuid")
    QueryMoment = query_text(
        64, format="date-time", description="ISO 8601 date or date-time; UTC when naive"
    )
    StatusName = Literal[tuple(status.value for status in Status)]
    ProviderName = Literal[PROVIDERS]


class Request(BaseModel):
    """A request part: unknown fields refused (a misspelt filter must not widen a bulk
    retry by being dropped)."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)
