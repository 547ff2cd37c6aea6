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


def outcome(items: Sequence[Mapping[str, Any]]) -> tuple[Status, str | None]:
    """The row's status and error text once every selected item has its outcome.

    All bought: completed. Some bought: partially completed. None bought (or nothing
    selected): failed. The error names how many failed and the first reason.
    """
    selected = [item for item in items if is_selected(item)]
    if not selected:
        return Status.FAILED, NOTHING_SELECTED
    errors = [str(item.get("error")) for item in selected if not item.get("purchased")]
    if not errors:
        return Status.COMPLETED, None
    summary = f"{len(errors)} of {len(selected)} purchases failed: {errors[0]}"
    if len(errors) == len(selected):
        return Status.FAILED, summary
    return Status.PARTIALLY_COMPLETED, summary


def item_outcome(item: Mapping[str, Any]) -> str:
    """What became of one item, as the details page shows it: `purchased` (the ledger
    holds its purchase, whatever else it says), `skipped` (`selected: false`),
    `failed` (it carries an error), else `pending` (not run yet)."""
    if item.get("purchased") is True:
        return "purchased"
    if not is_selected(item):
        return "skipped"
    if item.get("error"):
        return "failed"
    return "pending"
