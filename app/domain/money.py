"""Amounts as recommendation items and provider quotes carry them, and as people read
them: `usd` is the one way an amount is written for a person (the panel, the emails,
the link pages), "$12,000.00". The product stores US dollars."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

UNKNOWN_AMOUNT = "$?"


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


def usd(value: Any) -> str:
    """`value` in dollars with thousands separators and cents: "$12,000.00", "-$5.50";
    "$?" for what is not a finite amount. A `Decimal` is taken as it is (no float
    rounding on the way)."""
    amount = value if isinstance(value, Decimal) and value.is_finite() else money_of(value)
    if amount is None:
        return UNKNOWN_AMOUNT
    digits = f"{abs(amount):,.2f}"
    sign = "-" if amount < 0 and digits.strip("0.,") else ""  # never "-$0.00"
    return f"{sign}${digits}"
