"""What the security suite shares: the URL map as (endpoint, method) pairs, one user per
role signed in once per test, and the rows a request may name, made fresh per request.

Roles (the product's seeded groups): `anonymous`; `read-only` (only `Read-only`, which
drops the defaults: view only); `own-only` (no group: the defaults, `*-own`);
`purchaser` (`Purchasers`: `*-any`); `admin` (`Administrators`: `admin:*`).

Kinds of id a route may carry: `own` (the signed-in user's row), `other` (another user's),
`none` (no recorded creator), `unknown` (a fresh UUID), `malformed` (`not-a-uuid`).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.db import Base, utcnow
from app.domain.statuses import Status
from app.models import AuditEvent, Group, PurchaseFreeze, PurchasePlan, RetryBatch, User
from app.services.link_tokens import issue_links
from tests.e2e.helpers import csrf_from, queue_single_retry, sign_in
from tests.factories import make_account, make_execution, make_suppression, make_user

ROLES = ("anonymous", "read-only", "own-only", "purchaser", "admin")
SIGNED_IN = ROLES[1:]
ROLE_GROUPS: dict[str, tuple[str, ...]] = {
    "read-only": ("Read-only",),
    "own-only": (),
    "purchaser": ("Purchasers",),
    "admin": ("Administrators",),
}
ID_KINDS = ("own", "other", "none", "unknown", "malformed")
TOKEN_KINDS = ("valid", "foreign", "none")
MALFORMED = "not-a-uuid"
# Management views whose rows have whole-number ids (the rest: UUIDs).
INT_ID_VIEWS = frozenset({"groups", "audit", "suppressions"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Each client gets its own address, so the approval links' per-address budget (20 a
# minute) is never what answers: the suite asks about authority, not about the limit.
_addresses = (f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}" for n in itertools.count(1))


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """Every (endpoint, method, rule) of the URL map, HEAD and OPTIONS aside (Flask adds
    them to every rule and answers them itself)."""
    found = {
        (rule.endpoint, method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    return sorted(found)


def new_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = next(_addresses)
    return client


def location_is_on_site(location: str) -> bool:
    """A Location a browser resolves to this site: a path (not `//host`, not `/\\host`)
    or an absolute URL whose host is the test client's. Browsers drop tabs and newlines
    inside a URL and leading blanks, so those are dropped first."""
    location = "".join(char for char in location if char not in "\t\n\r").lstrip()
    parts = urlsplit(location)
    if parts.scheme or parts.netloc:
        return parts.scheme in {"http", "https"} and parts.netloc == "localhost"
    return location.startswith("/") and not location.startswith(("//", "/\\"))


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


@dataclass
class World:
    """One user per signed-in role plus `bob`, the "other user", on the test's session."""

    app: Flask
    session: Session
    users: dict[str, User]
    bob: User
    _clients: dict[str, FlaskClient] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str) -> FlaskClient:
        """The role's client, signed in (once; again after `forget`)."""
        if role not in self._clients:
            client = new_client(self.app)
            if role == "anonymous":
                self._tokens[role] = csrf_from(client.get("/login").text)
            else:
                self._tokens[role] = sign_in(client, self.users[role])
            self._clients[role] = client
        return self._clients[role]

    def csrf(self, role: str) -> str:
        self.client(role)
        return self._tokens[role]

    def forget(self, role: str) -> None:
        """After a sign-out: the next `client(role)` signs in again."""
        self._clients.pop(role, None)
        self._tokens.pop(role, None)

    def creator(self, role: str, kind: str) -> User | None:
        if kind == "own" and role in self.users:
            return self.users[role]
        return None if kind == "none" else self.bob

    def execution_id(self, role: str, kind: str, status: Status = Status.PENDING) -> str:
        """A fresh execution of the kind (or a UUID naming none, or a malformed id)."""
        if kind == "unknown":
            return str(uuid.uuid4())
        if kind == "malformed":
            return MALFORMED
        row = make_execution(self.session, status, created_by=self.creator(role, kind))
        return str(row.execution_id)

    def retry_request_id(self, role: str, kind: str) -> str:
        if kind in {"unknown", "malformed"}:
            return self.execution_id(role, kind)
        execution = make_execution(self.session, Status.FAILED, created_by=self.bob)
        request = queue_single_retry(self.session, execution, self.creator(role, kind))
        return str(request.id)

    def retry_batch_id(self, role: str, kind: str) -> str:
        if kind in {"unknown", "malformed"}:
            return self.execution_id(role, kind)
        requester = self.creator(role, kind)
        batch = RetryBatch(
            requested_by_user_id=requester.id if requester else None,
            requested_by_email=requester.email if requester else "scheduler",
            total=0,
            selection={"execution_ids": 0},
        )
        self.session.add(batch)
        self.session.flush()
        return str(batch.id)

    def link(self, action: str, kind: str) -> tuple[str, str | None]:
        """(execution id, token) for an approval link: `valid` (this row's, this action's),
        `foreign` (another pending row's token for the same action) or `none`."""
        execution = make_execution(self.session, Status.PENDING, created_by=self.bob)
        other = make_execution(self.session, Status.PENDING, created_by=self.bob)
        target = execution if kind == "valid" else other
        issued = issue_links(
            self.session,
            target,
            "finops@example.com",
            settings=self.app.extensions["settings"],
            now=utcnow(),
        )
        self.session.flush()
        token = token_of(getattr(issued.links, action))
        return str(execution.execution_id), (None if kind == "none" else token)

    def plan_id(self, state: str, kind: str) -> str:
        """A plan a switch acts on (`active`, `paused`, or `scheduled`: active, with an
        approved row scheduled an hour from now), or an unknown or malformed id."""
        if kind == "malformed":
            return MALFORMED
        if kind == "unknown":
            return str(uuid.uuid4())
        plan = PurchasePlan(name=f"plan {uuid.uuid4().hex[:8]}", enabled=state != "paused")
        self.session.add(plan)
        self.session.flush()
        if state == "scheduled":
            make_execution(
                self.session,
                Status.APPROVED,
                created_by=self.bob,
                plan_id=plan.id,
                scheduled_for=utcnow() + timedelta(hours=1),
            )
        return str(plan.id)

    def set_frozen(self, frozen: bool) -> None:
        """Switch the global freeze on or off directly, without the rules."""
        self.session.execute(
            update(PurchaseFreeze).where(PurchaseFreeze.active.is_(True)).values(active=None)
        )
        if frozen:
            self.session.add(PurchaseFreeze(reason="the security suite", frozen_by="suite"))
        self.session.flush()

    def status_of(self, execution_id: str) -> str | None:
        try:
            key = uuid.UUID(execution_id)
        except ValueError:
            return None
        self.session.expire_all()
        row = self.session.execute(
            select(Base.metadata.tables["purchase_executions"].c.status).where(
                Base.metadata.tables["purchase_executions"].c.execution_id == key
            )
        ).scalar_one_or_none()
        return row

    def management_id(self, endpoint: str, kind: str) -> str:
        """An id the management view `endpoint` (users, groups …) can show."""
        view = endpoint.split(".")[0]
        if kind == "malformed":
            return MALFORMED
        if kind == "unknown":
            return "2147483000" if view in INT_ID_VIEWS else str(uuid.uuid4())
        if view == "users":
            return str(self.bob.id)
        if view == "groups":
            # Not a seeded group: an edit with an empty form must not change a role.
            group = Group(name=f"spare {uuid.uuid4().hex[:8]}", permissions=[])
            self.session.add(group)
            self.session.flush()
            return str(group.id)
        if view == "accounts":
            return str(make_account(self.session).id)
        if view == "audit":
            event = AuditEvent(actor_email="bob@example.com", action="test.event", details={})
            self.session.add(event)
            self.session.flush()
            return str(event.id)
        if view == "suppressions":
            execution = make_execution(self.session, Status.COMPLETED, created_by=self.bob)
            return str(make_suppression(self.session, execution).id)
        return str(make_execution(self.session, Status.FAILED, created_by=self.bob).execution_id)

    def snapshot(self) -> dict[str, Any]:
        """Row counts of every table (the audit log's refusals aside) and every
        execution's status: what "changes nothing" compares."""
        self.session.expire_all()
        counts: dict[str, Any] = {}
        for table in Base.metadata.sorted_tables:
            query = select(func.count()).select_from(table)
            if table.name == "audit_events":
                query = query.where(~table.c.action.like("%refused%"))
            counts[table.name] = self.session.execute(query).scalar_one()
        executions = Base.metadata.tables["purchase_executions"]
        counts["statuses"] = dict(
            self.session.execute(select(executions.c.execution_id, executions.c.status)).all()
        )
        return counts


def make_world(app: Flask, session: Session) -> World:
    users = {
        role: make_user(session, f"{role}@example.com", groups)
        for role, groups in ROLE_GROUPS.items()
    }
    return World(app, session, users, make_user(session, "bob@example.com"))


def answer(response: TestResponse) -> str:
    """A response as a short line for failure messages."""
    where = f" → {response.headers['Location']}" if "Location" in response.headers else ""
    body = response.get_data(as_text=True)[:160].replace("\n", " ")
    return f"{response.status_code}{where} {body!r}"


def pairs(items: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    yield from sorted(items.items())
