"""`HistoryFilter.parse`: the one reading of history filters (the API's query string, the
panel's filters, the bulk retry's JSON object). Pure: no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.domain.errors import DomainError
from app.services.execution_reads import HistoryFilter


def test_every_field_is_read_and_blank_means_unset():
    account = uuid.uuid4()
    parsed = HistoryFilter.parse(
        {
            "status": " failed ",
            "cloud_account_id": str(account),
            "plan_id": "",
            "created_by_user_id": None,
            "error_contains": "  Quota 50%_ ",
            "created_after": "2026-03-01",
            "created_before": "2026-03-02T10:00:00+02:00",
        }
    )
    assert parsed == HistoryFilter(
        status="failed",
        cloud_account_id=account,
        error_contains="Quota 50%_",
        created_after=datetime(2026, 3, 1, tzinfo=UTC),
        created_before=datetime(2026, 3, 2, 8, tzinfo=UTC),
    )
    assert HistoryFilter.parse({}) == HistoryFilter()


@pytest.mark.parametrize(
    "moment", ["2026-03-01T12:30:00", "2026-03-01 12:30:00", "2026-03-01T12:30:00Z"]
)
def test_a_naive_moment_is_utc(moment):
    assert HistoryFilter.parse({"created_after": moment}).created_after == datetime(
        2026, 3, 1, 12, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"status": 3}, "status must be text"),
        ({"plan_id": ["a"]}, "plan_id must be text"),
        ({"error_contains": {"x": 1}}, "error_contains must be text"),
        ({"created_after": 1700000000}, "created_after must be text"),
        ({"error_contains": "\ud800"}, "error_contains must be text"),
        ({"error_contains": "a\x00b"}, "error_contains must be text"),
        ({"error_contains": "x" * 201}, "error_contains is longer than 200"),
        ({"created_after": "yesterday"}, "created_after must be an ISO 8601"),
        ({"created_before": "2026-02-30"}, "created_before must be an ISO 8601"),
        ({"created_before": "9999-12-31T23:59:00-01:00"}, "created_before must be an ISO"),
        ({"created_after": "1" * 10_000}, "created_after must be an ISO 8601"),
        ({"cloud_account_id": "aws"}, "malformed cloud_account_id"),
        ({"status": "bogus"}, "unknown status"),
    ],
)
def test_bad_values_are_a_400_naming_the_field(args, named):
    with pytest.raises(DomainError) as refused:
        HistoryFilter.parse(args)
    assert refused.value.status == 400
    assert refused.value.message.startswith(named)
    assert len(refused.value.message) < 300


def test_search_is_an_exact_id_or_error_text():
    row = uuid.uuid4()
    assert HistoryFilter.for_search(f" {str(row).upper()} ") == HistoryFilter(execution_id=row)
    assert HistoryFilter.for_search("capacity") == HistoryFilter(error_contains="capacity")
    assert HistoryFilter.for_search(str(row)[:8]) == HistoryFilter(error_contains=str(row)[:8])


def test_as_args_reads_back_into_the_same_filter():
    original = HistoryFilter(
        status="failed",
        plan_id=uuid.uuid4(),
        error_contains="=x",
        created_after=datetime(2026, 3, 1, 12, tzinfo=UTC),
        execution_id=uuid.uuid4(),
    )
    assert HistoryFilter.parse(original.as_args()) == original
    assert HistoryFilter(status="failed").merged(HistoryFilter(error_contains="q")) == (
        HistoryFilter(status="failed", error_contains="q")
    )
