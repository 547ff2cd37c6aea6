"""Setting a group's spend limit: admins (Administration → Spend Limits) and the command
line (`flask groups limit`), each change validated and audited (`spend_limit.changed`,
`spend_limit.cleared`). How the limits are checked is `app.services.spending`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.inputs import clean_text, text_problem
from app.domain.money import money_of
from app.domain.providers import PROVIDERS, SERVICES, normalize_provider, normalize_service
from app.domain.rbac import ADMIN, Principal
from app.domain.spending import CENT, ZERO
from app.models import CloudAccount, Group
from app.models import SpendLimit as SpendLimitRow
from app.services import audit
from app.services.accounts import find_account
from app.services.management import CLI_ACTOR

# --- Setting a group's limit: admins, and the command line -------------------------------

# What `set_limit` takes, each key optional: a list of names (None allows everything of
# its kind) or an amount (None: no cap).
LIMIT_FIELDS = (
    "allowed_accounts",
    "allowed_providers",
    "allowed_services",
    "max_per_purchase",
    "max_per_day",
)
# The largest amount a limit may state (the columns hold 12 digits before the point).
MAX_LIMIT = Decimal("999999999999.99")
MAX_LISTED = 1_000
# The largest id a group can have (an INTEGER column).
INTEGER_MAX = 2**31 - 1
_SHOWN = 100


def may_manage_limits(actor: Principal) -> bool:
    """Whether `actor` may set or clear a spend limit: an admin, or the command line
    (whoever runs commands on the server owns the deployment)."""
    return actor.is_admin or actor == CLI_ACTOR


def set_limit(
    session: Session, actor: Principal, group_name_or_id: str | int, fields: Mapping[str, Any]
) -> SpendLimitRow:
    """Set what `fields` name of a group's limit (a key left out keeps its value; a key
    given as None allows everything of its kind, or lifts the cap), creating the limit
    if the group has none. Audited as `spend_limit.changed` with the limit before (None
    when new) and after; a change that changes nothing records nothing.

    403 unless an admin or the command line; 404 for an unknown group; 400 naming the
    field for anything `limit_fields` refuses."""
    _require_manager(actor)
    group = find_group(session, group_name_or_id)
    clean = limit_fields(session, fields)
    row = session.scalar(
        select(SpendLimitRow)
        .where(SpendLimitRow.group_id == group.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    before = row.as_dict() if row is not None else None
    if row is None:
        row = SpendLimitRow(group_id=group.id)
        session.add(row)
    for name, value in clean.items():
        setattr(row, _COLUMNS[name], value)
    session.flush()
    after = row.as_dict()
    if before != after:
        audit.record(
            session,
            "spend_limit.changed",
            actor=actor,
            details={"group_id": group.id, "group": group.name, "before": before, "after": after},
        )
    return row


def clear_limit(session: Session, actor: Principal, group_name_or_id: str | int) -> Group:
    """Remove a group's limit: its members are bound by it no more. Audited as
    `spend_limit.cleared` with the limit it was. 403 as `set_limit`; 404 for an unknown
    group or one without a limit. Returns the group."""
    _require_manager(actor)
    group = find_group(session, group_name_or_id)
    row = session.scalar(
        select(SpendLimitRow).where(SpendLimitRow.group_id == group.id).with_for_update()
    )
    if row is None:
        raise DomainError(404, f'group "{group.name}" has no spend limit to clear')
    before = row.as_dict()
    session.delete(row)
    session.flush()
    audit.record(
        session,
        "spend_limit.cleared",
        actor=actor,
        details={"group_id": group.id, "group": group.name, "before": before, "after": None},
    )
    return group


@dataclass(frozen=True)
class GroupLimit:
    """A group and its limit as people read it: accounts by name."""

    group_id: int
    group: str
    limit: dict[str, Any] | None
    accounts: list[str] | None

    @property
    def limited(self) -> bool:
        return self.limit is not None


def limits_by_group(session: Session) -> list[GroupLimit]:
    """Every group, by name, with its limit (None without one). Accounts are shown by
    name, sorted; an account deleted since the limit named it shows as `(deleted <id>)`."""
    rows = session.execute(
        select(Group.id, Group.name, SpendLimitRow)
        .outerjoin(SpendLimitRow, SpendLimitRow.group_id == Group.id)
        .order_by(Group.name)
    ).all()
    names = dict(session.execute(select(CloudAccount.id, CloudAccount.name)).all())
    by_text = {str(account_id): name for account_id, name in names.items()}
    found = []
    for group_id, name, row in rows:
        limit = row.as_dict() if row is not None else None
        ids = limit["allowed_account_ids"] if limit is not None else None
        accounts = None if ids is None else sorted(by_text.get(i, f"(deleted {i})") for i in ids)
        found.append(GroupLimit(group_id, name, limit, accounts))
    return found


def find_group(session: Session, name_or_id: str | int) -> Group:
    """The group `name_or_id` names: its name, or its id (a whole number no group is
    named). 404 when none; 400 for text that is not text."""
    if isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
        group = session.get(Group, name_or_id) if 0 < name_or_id <= INTEGER_MAX else None
        if group is None:
            raise DomainError(404, f"no group with id {name_or_id}")
        return group
    if not isinstance(name_or_id, str):
        raise DomainError(400, f"group: expected a name or an id, got {_shown(name_or_id)}")
    text = clean_text(name_or_id, "group").strip()
    group = session.scalar(select(Group).where(Group.name == text))
    if group is None and text.isdigit() and len(text) <= 10 and int(text) <= INTEGER_MAX:
        group = session.get(Group, int(text))
    if group is None:
        raise DomainError(404, f"no group named {_shown(text)}")
    return group


def limit_fields(session: Session, fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` checked and normalized, as the columns store them, or a 400 naming the
    first field that is wrong: accounts (names or ids of existing accounts) become ids as
    text; providers must be aws, azure or gcp; services are spelled as the rules compare
    them (`normalize_service`) and must be known; an amount is a number from 0 to
    999,999,999,999.99 with at most two decimal places. Lists are sorted, without
    repeats; None (or an empty text for an amount) leaves the field unlimited."""
    if not isinstance(fields, Mapping):
        raise DomainError(400, "spend limit: expected an object of fields")
    unknown = [str(key) for key in fields if key not in LIMIT_FIELDS]
    if unknown:
        raise DomainError(
            400,
            f"spend limit: unknown field {_shown(unknown[0])} (known: {', '.join(LIMIT_FIELDS)})",
        )
    clean: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if name.startswith("max_"):
            clean[name] = _amount_field(name, value)
        elif value is None:
            clean[name] = None
        else:
            entries = _text_list(name, value)
            if name == "allowed_accounts":
                clean[name] = _account_ids(session, entries)
            elif name == "allowed_providers":
                clean[name] = _providers(entries)
            else:
                clean[name] = _services(entries)
    return clean


_COLUMNS = {
    "allowed_accounts": "allowed_account_ids",
    "allowed_providers": "allowed_providers",
    "allowed_services": "allowed_services",
    "max_per_purchase": "max_per_purchase",
    "max_per_day": "max_per_day",
}


def _label(name: str) -> str:
    return name.replace("_", " ")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _require_manager(actor: Principal) -> None:
    if not may_manage_limits(actor):
        raise DomainError(403, f"not allowed to change spend limits: {ADMIN} is required")


def _text_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise DomainError(400, f"{_label(name)}: expected a list, got {_shown(value)}")
    if len(value) > MAX_LISTED:
        raise DomainError(400, f"{_label(name)}: more than {MAX_LISTED} entries")
    entries = []
    for entry in value:
        if not isinstance(entry, str):
            raise DomainError(400, f"{_label(name)}: expected names, got {_shown(entry)}")
        problem = text_problem(entry)
        if problem is not None:
            raise DomainError(400, f"{_label(name)}: an entry {problem}")
        if entry.strip():
            entries.append(entry.strip())
    return entries


def _account_ids(session: Session, entries: list[str]) -> list[str]:
    ids = set()
    for entry in entries:
        try:
            ids.add(str(find_account(session, entry).id))
        except DomainError as refusal:
            raise DomainError(400, f"allowed accounts: {refusal.message}") from None
    return sorted(ids)


def _providers(entries: list[str]) -> list[str]:
    found = set()
    for entry in entries:
        provider = normalize_provider(entry)
        if provider not in PROVIDERS:
            raise DomainError(
                400, f"allowed providers: {_shown(entry)} is not one of {', '.join(PROVIDERS)}"
            )
        found.add(provider)
    return sorted(found)


def _services(entries: list[str]) -> list[str]:
    known = {service for services in SERVICES.values() for service in services}
    found = set()
    for entry in entries:
        service = normalize_service(entry)
        if service not in known:
            raise DomainError(
                400,
                f"allowed services: {_shown(entry)} is not a service this product buys "
                f"(known: {', '.join(sorted(known))})",
            )
        found.add(service)
    return sorted(found)


def _amount_field(name: str, value: Any) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = money_of(str(value) if isinstance(value, Decimal) else value)
    except ValueError:  # an integer too long to be turned into text
        amount = None
    if amount is None or amount < 0 or amount > MAX_LIMIT or amount != amount.quantize(CENT):
        raise DomainError(
            400,
            f"{_label(name)}: expected an amount from 0 to {MAX_LIMIT:,} with at most two "
            f"decimal places, got {_shown(value)}",
        )
    return amount.quantize(CENT) + ZERO  # + ZERO: "-0" is stored as 0.00
