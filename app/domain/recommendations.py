"""An execution's recommendations: a JSON list of objects, one per item to buy.

The database only promises JSON: a row inserted by hand can hold `[1]` or `{}`. Such a
row is shown as malformed and refused with this reason by every rule that would read
its items, never a crash.
"""

from __future__ import annotations

from typing import Any

OUTCOME_FIELDS: dict[str, Any] = {"error": None, "purchased": False, "purchase_id": None}
# What the executor records beside the outcome (the offering and price it was quoted),
# removed from a successor's copy: its own run quotes again.
RECORDED_FIELDS = ("quote",)


def malformed_reason(recommendations: Any) -> str | None:
    """Why `recommendations` is not a list of objects, or None if it is."""
    if not isinstance(recommendations, list):
        kind = type(recommendations).__name__ if recommendations is not None else "null"
        return f"malformed recommendations: expected a JSON list of objects, got {kind}"
    for index, item in enumerate(recommendations):
        if not isinstance(item, dict):
            return (
                f"malformed recommendations: item {index} is {type(item).__name__}, not an object"
            )
    return None


def items_of(recommendations: Any) -> list[dict[str, Any]]:
    """The items, or none at all for a malformed value (its reason is `malformed_reason`)."""
    return recommendations if malformed_reason(recommendations) is None else []
