"""Retry batches: what a bulk request may ask for, and how a batch's state reads.

Pure rules. A single retry is a batch of one; each row of a batch gets the retry's
checks (`app.domain.retry.retry_refusal`) and its own outcome. This module only bounds
the request and names the batch's state.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.domain.errors import DomainError
from app.domain.inputs import is_text
from app.domain.rbac import Action, Principal, authorize
from app.domain.retry import RequestState

MAX_BATCH_ROWS = 10_000
# Rows a worker settles in one transaction (and whose emails go over one connection).
CHUNK_SIZE = 250
# Longer than any id spelling `parse_uuid` reads: a longer one is not an id at all.
MAX_ID_TEXT = 100


class BatchKind(StrEnum):
    SINGLE = "single"  # a retry request: one row, refused at once or queued
    BULK = "bulk"  # rows by ids or by a filter, each with its own outcome


class BatchState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True)
class BulkSelection:
    """The rows a bulk request names: a list of ids as given, or a filter to resolve."""

    execution_ids: tuple[str, ...] | None = None
    filter: Mapping[str, Any] | None = None


def parse_selection(body: Any) -> BulkSelection:
    """`{"execution_ids": [...]}` or `{"filter": {...}}`: exactly one, else 400.

    Ids are kept as given, first occurrence first, duplicates dropped (a row is retried
    once per batch); each is checked later with its own outcome, so a malformed one is
    that item's 400, not the request's. At most `MAX_BATCH_ROWS` of them.
    """
    if not isinstance(body, Mapping):
        raise DomainError(400, 'send a JSON object with "execution_ids" or "filter"')
    has_ids, has_filter = "execution_ids" in body, "filter" in body
    if has_ids == has_filter:
        raise DomainError(400, 'send exactly one of "execution_ids" and "filter"')
    if has_filter:
        return BulkSelection(filter=_parse_filter(body["filter"]))
    raw_ids = body["execution_ids"]
    if not isinstance(raw_ids, list) or not raw_ids:
        raise DomainError(400, '"execution_ids" must be a non-empty list of execution ids')
    if len(raw_ids) > MAX_BATCH_ROWS:
        raise DomainError(
            400,
            f"at most {MAX_BATCH_ROWS:,} execution ids per request; got {len(raw_ids):,}",
            max_execution_ids=MAX_BATCH_ROWS,
        )
    for position, raw in enumerate(raw_ids):
        if not is_text(raw) or not 0 < len(raw.strip()) <= MAX_ID_TEXT:
            raise DomainError(
                400, f"execution_ids[{position}] is not an execution id (a UUID string)"
            )
    unique = {_same_row(raw.strip()): raw.strip() for raw in reversed(raw_ids)}
    return BulkSelection(execution_ids=tuple(reversed(unique.values())))


def _same_row(raw: str) -> str:
    """Spellings of one id (case, braces, dashes) name one row: the canonical form."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return raw


def _parse_filter(raw: Any) -> dict[str, Any]:
    """The filter as given; its fields are the history filter's, parsed with its rules
    when the batch is recorded."""
    if not isinstance(raw, Mapping):
        raise DomainError(400, '"filter" must be a JSON object')
    return dict(raw)


def bulk_refusal(principal: Principal) -> DomainError | None:
    """Refuse a bulk request outright only when its requester may retry nothing at all
    (a row they created themselves is the most any retry permission covers); every row
    still gets its own permission check."""
    if principal.user_id is not None and authorize(principal, Action.RETRY, principal.user_id):
        return None
    return DomainError(
        403,
        "not allowed to retry purchases: retry-any:purchases or retry-own:purchases is required",
    )


def batch_state(counts: Mapping[str, int]) -> BatchState:
    """`done` once no item is queued; `running` once some item is settled."""
    queued = counts.get(RequestState.QUEUED.value, 0)
    if queued == 0:
        return BatchState.DONE
    return BatchState.RUNNING if sum(counts.values()) > queued else BatchState.QUEUED


def chunk_of(position: int) -> int:
    return position // CHUNK_SIZE
