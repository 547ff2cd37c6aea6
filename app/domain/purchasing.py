"""What the executor decides without a database (docs/operations.md, "The executor
and the ledger"): which items to buy, under which key, from which provider, and what
the row's outcome is.

A purchase is claimed in the ledger under `<lineage root>:<item index>` before it is
made, so every retry of a lineage maps an item to the same key and no key is bought
twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from app.domain.money import money_of
from app.domain.providers import normalize_provider
from app.domain.statuses import Status

NOTHING_SELECTED = "nothing to buy: no recommendation is selected"


def ledger_key(lineage_root: uuid.UUID, index: int) -> str:
    return f"{lineage_root}:{index}"


def is_selected(item: Mapping[str, Any]) -> bool:
    """Items are selected unless they say `selected: false`."""
    return item.get("selected", True) is not False


def item_provider(item: Mapping[str, Any], account_provider: str | None) -> str:
    """The provider that buys `item`: its own, else its execution's account's."""
    return normalize_provider(item.get("provider")) or normalize_provider(account_provider)


def purchased(item: Mapping[str, Any], purchase_id: str) -> dict[str, Any]:
    return {**item, "purchased": True, "purchase_id": purchase_id, "error": None}


def failed(item: Mapping[str, Any], error: str) -> dict[str, Any]:
    return {**item, "purchased": False, "purchase_id": None, "error": error}


def quoted(item: Mapping[str, Any], quote: Mapping[str, Any]) -> dict[str, Any]:
    """A dry run's outcome: what would have been bought, and its price; nothing bought."""
    return {**item, "purchased": False, "purchase_id": None, "error": None, "quote": dict(quote)}


def price_refusal(item: Mapping[str, Any], quote: Mapping[str, Any]) -> str | None:
    """Why the quoted price may not be paid for `item` (its `max_price` is the most it
    may cost over its term), or None. A quote without a price cannot be checked against
    a limit, so it is refused too: nothing is bought on a guess."""
    limit = money_of(item.get("max_price"))
    if item.get("max_price") is None or limit is None:
        return None
    total = money_of(quote.get("term_total"))
    currency = quote.get("currency") or ""
    if total is None:
        return f"price unknown: the provider quotes none, so max_price {limit} cannot be checked"
    if total > limit:
        return f"price above the item's limit: {total} {currency} over the term, max_price {limit}"
    return None


def outcome(items: Sequence[Mapping[str, Any]]) -> tuple[Status, str | None]:
    """The row's status and error text once every selected item has its outcome.

    All bought: completed. Some bought: partially completed. None bought (or nothing
    selected): failed. The error names how many failed and the first reason.
    """
    selected = [item for item in items if is_selected(item)]
    if not selected:
        return Status.FAILED, NOTHING_SELECTED
    errors = [str(item.get("error")) for item in selected if item_outcome(item) == "failed"]
    errors += ["not run" for item in selected if item_outcome(item) == "pending"]
    if not errors:
        return Status.COMPLETED, None
    summary = f"{len(errors)} of {len(selected)} purchases failed: {errors[0]}"
    if len(errors) == len(selected):
        return Status.FAILED, summary
    return Status.PARTIALLY_COMPLETED, summary


def item_outcome(item: Mapping[str, Any]) -> str:
    """What became of one item, as the details page shows it: `purchased` (the ledger
    holds its purchase, whatever else it says), `skipped` (`selected: false`),
    `failed` (it carries an error), `quoted` (a dry run priced it and bought nothing),
    else `pending` (not run yet)."""
    if item.get("purchased") is True:
        return "purchased"
    if not is_selected(item):
        return "skipped"
    if item.get("error"):
        return "failed"
    if isinstance(item.get("quote"), dict):
        return "quoted"
    return "pending"


def quote_text(quote: Mapping[str, Any]) -> str:
    """A quote in one line: the offering, and its price over the term when known."""
    total = quote.get("term_total")
    currency = quote.get("currency") or ""
    price = f"{total} {currency} over the term".replace("  ", " ") if total else "no price quoted"
    return f"{quote.get('offering_id') or 'offering'}: {price}"
