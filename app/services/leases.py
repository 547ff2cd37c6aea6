"""Leases on claimed work, and the heartbeat that keeps them alive.

A task claims its rows (a retry chunk's items, a running execution, an email being
sent) under a lease: `lease_owner` is the Celery task id of the run, `lease_expires_at`
when the claim lapses (`app.domain.staleness.LEASE_TTL`). While the task runs inside
`holding(task_id)`, a heartbeat thread in its process renews the leases that task id
holds, however long a provider or an SMTP server takes. A worker that dies stops
renewing; once the lease lapses any worker may take the work over (`available`), and
the sweep (`app.services.maintenance.recover_lapsed_work`) queues it again.

The owner is the task id, not the process: a Celery retry or a redelivery of the same
message takes its own lease back at once, while a duplicate message (a new task id)
leaves a live lease alone. Every write that settles the work is still conditional on
its state, so two runs that both believe they hold it settle it once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import ColumnElement, and_, or_, update

from app.db import rowcount, unit_of_work, utcnow
from app.domain.channels import MessageState
from app.domain.outbox import NotificationState
from app.domain.retry import RequestState
from app.domain.staleness import HEARTBEAT_EVERY, LEASE_TTL, UNSTARTED_AFTER
from app.domain.statuses import Status
from app.models import ChannelMessage, Notification, PurchaseExecution, RetryBatchItem
from app.models.leases import Leased

log = logging.getLogger(__name__)

# Each leased table, and what its rows look like while a worker holds them.
WORKING: tuple[tuple[type[Leased], ColumnElement[bool]], ...] = (
    (RetryBatchItem, RetryBatchItem.state == RequestState.QUEUED.value),
    (PurchaseExecution, PurchaseExecution.status == Status.RUNNING.value),
    (Notification, Notification.state == NotificationState.SENDING.value),
    (ChannelMessage, ChannelMessage.state == MessageState.SENDING.value),
)


def held_by(owner: str, now: datetime) -> dict[str, Any]:
    """The column values of a lease `owner` takes now."""
    return {"lease_owner": owner, "lease_expires_at": now + LEASE_TTL}


def in_broker(now: datetime) -> dict[str, Any]:
    """The lease of work handed to the broker now: nobody runs it yet, and the sweep
    queues it again should no worker have claimed it by `UNSTARTED_AFTER`."""
    return {"lease_owner": None, "lease_expires_at": now + UNSTARTED_AFTER}


def available(model: type[Leased], owner: str, now: datetime) -> ColumnElement[bool]:
    """Rows `owner` may claim: in the broker, its own already, or lapsed."""
    return or_(
        model.lease_owner.is_(None),
        model.lease_owner == owner,
        model.lease_expires_at.is_(None),
        model.lease_expires_at < now,
    )


def lapsed(model: type[Leased], now: datetime) -> ColumnElement[bool]:
    """Rows whose holder (a worker, or the broker) is presumed gone."""
    return or_(model.lease_expires_at.is_(None), model.lease_expires_at < now)


# The task ids whose leases this process renews, and its heartbeat thread.
_held: set[str] = set()
_lock = threading.Lock()
_heartbeat: dict[int, threading.Thread] = {}


@contextmanager
def holding(owner: str) -> Iterator[None]:
    """Renew `owner`'s leases while the block runs (the body of one task run)."""
    _start_heartbeat(current_app._get_current_object())  # type: ignore[attr-defined]
    with _lock:
        _held.add(owner)
    try:
        yield
    finally:
        with _lock:
            _held.discard(owner)


def renew(owners: set[str], now: datetime) -> int:
    """Push back the lapse of every lease of `owners` whose work is still running."""
    renewed = 0
    with unit_of_work() as session:
        for model, working in WORKING:
            result = session.execute(
                update(model)
                .where(and_(model.lease_owner.in_(owners), working))
                .values(lease_expires_at=now + LEASE_TTL)
                .execution_options(synchronize_session=False)
            )
            renewed += rowcount(result)
    return renewed


def _start_heartbeat(app: Flask) -> None:
    """One heartbeat thread per process (a forked worker child starts its own)."""
    pid = os.getpid()
    with _lock:
        if pid in _heartbeat and _heartbeat[pid].is_alive():
            return
        thread = threading.Thread(
            target=_beat, args=(app,), name=f"lease-heartbeat-{pid}", daemon=True
        )
        _heartbeat[pid] = thread
    thread.start()


def _beat(app: Flask) -> None:
    stop = threading.Event()
    while not stop.wait(HEARTBEAT_EVERY.total_seconds()):
        with _lock:
            owners = set(_held)
        if not owners:
            continue
        try:
            with app.app_context():
                renew(owners, utcnow())
        except Exception:  # a database hiccup: the next beat tries again
            log.warning("lease heartbeat failed; retrying in %s", HEARTBEAT_EVERY, exc_info=True)
