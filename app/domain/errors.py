"""The one domain error type: a refusal with an HTTP-like status, a message and details.

Entry points render it: the JSON API as `{error, ...details}`, the panel as a flash
message, the CLI as a message and exit code, a task as the recorded outcome.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule refused an action. `details` are JSON-safe and safe to show the actor."""

    # Positional-only, so a detail may be called `status` (a 409's current status).
    def __init__(self, status: int, message: str, /, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details: dict[str, Any] = details

    def as_dict(self) -> dict[str, Any]:
        """The JSON body: `{error, ...details}`."""
        return {"error": self.message, **self.details}

    def __repr__(self) -> str:
        return f"DomainError({self.status}, {self.message!r}, {self.details!r})"
