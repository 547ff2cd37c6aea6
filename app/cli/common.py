"""What every command group shares: refusals rendered on stderr with exit status 1,
standard input read as text, and the user a command acts as."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from app.db import fresh_read
from app.domain.errors import DomainError
from app.domain.inputs import clean_text
from app.domain.rbac import Principal
from app.services import identity


def describe_refusal(message: str, details: dict[str, Any]) -> str:
    """A refusal's message, then one `key: value` line per detail (hint, threshold ...)."""
    lines = [message, *(f"  {key}: {value}" for key, value in details.items())]
    return "\n".join(lines)


def refusals_exit_nonzero(command: Callable[..., Any]) -> Callable[..., Any]:
    """Render a `DomainError` as `Error: <message>` (and its details) and exit with 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DomainError as exc:
            raise click.ClickException(describe_refusal(exc.message, exc.details)) from None

    return wrapper


def stdin_text(*, first_line: bool = False) -> str:
    """Standard input as text. Bytes that are not UTF-8 become lone surrogates, which
    `clean_text` and `parse_uuid` refuse as they refuse them anywhere, rather than a
    traceback from the decoder."""
    stream = sys.stdin.buffer
    data = stream.readline() if first_line else stream.read()
    text = data.decode("utf-8", errors="surrogateescape")
    return text.rstrip("\r\n") if first_line else text


def principal_of(email: str) -> Principal:
    """The active user EMAIL as the rules see them (404 if there is none): who a command
    run `--as EMAIL` acts as."""
    email = clean_text(email, "email")
    with fresh_read() as session:
        user = identity.find_user_by_email(session, email)
        if user is None or not user.is_active:
            raise DomainError(404, f"no active user with email {email}")
        return identity.principal_for(user)
