"""The executor's pure decisions: keys, providers and the row's outcome."""

from __future__ import annotations

import uuid

import pytest

from app.domain import purchasing
from app.domain.statuses import Status


def test_the_ledger_key_is_the_lineage_root_and_the_item_index():
    root = uuid.UUID("6f1c0000-0000-4000-8000-000000000000")
    assert purchasing.ledger_key(root, 3) == f"{root}:3"


@pytest.mark.parametrize(
    ("item", "account", "expected"),
    [({"provider": " AWS "}, "gcp", "aws"), ({}, "Azure", "azure"), ({"provider": ""}, None, "")],
)
def test_an_item_buys_from_its_provider_else_its_accounts(item, account, expected):
    assert purchasing.item_provider(item, account) == expected


def bought(**extra):
    return {"purchased": True, "purchase_id": "p", **extra}


def failed(error="capacity"):
    return {"purchased": False, "error": error}


@pytest.mark.parametrize(
    ("items", "status", "error"),
    [
        ([bought(), bought(), {"selected": False}], Status.COMPLETED, None),
        ([bought(), failed("quota")], Status.PARTIALLY_COMPLETED, "1 of 2 purchases failed: quota"),
        ([failed("a"), failed("b")], Status.FAILED, "2 of 2 purchases failed: a"),
        ([{"selected": False}], Status.FAILED, purchasing.NOTHING_SELECTED),
        ([], Status.FAILED, purchasing.NOTHING_SELECTED),
    ],
)
def test_the_rows_outcome_follows_its_selected_items(items, status, error):
    assert purchasing.outcome(items) == (status, error)
