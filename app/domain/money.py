"""Amounts as recommendation items and provider quotes carry them."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def money_of(value: Any) -> Decimal | None:
    """An amount given as a number or a decimal string, or None if it is not a finite
    number (booleans, objects, "NaN", "1e999999" are not amounts)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None
