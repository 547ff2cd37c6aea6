"""The RBAC decision, exhaustively: every action x every kind of actor and row."""

from __future__ import annotations

import uuid

import pytest

from app.domain.rbac import (
    DEFAULT_PERMISSIONS,
    Action,
    GroupGrant,
    InvalidPermission,
    Principal,
    authorize,
    effective_permissions,
    refusal,
    validate_permission,
)

ME = uuid.UUID("11111111-1111-1111-1111-111111111111")
SOMEONE_ELSE = uuid.UUID("22222222-2222-2222-2222-222222222222")

ADMIN = Principal(ME, "admin@example.com", frozenset({"admin:*"}))
ANY_HOLDER = Principal(
    ME,
    "purchaser@example.com",
    DEFAULT_PERMISSIONS | {"approve-any:purchases", "cancel-any:purchases", "retry-any:purchases"},
)
OWN_HOLDER = Principal(ME, "alice@example.com", DEFAULT_PERMISSIONS)
READ_ONLY = Principal(ME, "viewer@example.com", frozenset({"view:purchases"}))
NOBODY = Principal(ME, "nobody@example.com", frozenset())

ROW_MINE, ROW_OTHERS, ROW_NO_CREATOR = ME, SOMEONE_ELSE, None
ACTING = [Action.APPROVE, Action.CANCEL, Action.RETRY]

# (principal, row creator) -> allowed, for approve, cancel and retry alike.
MATRIX = [
    ("admin", ADMIN, ROW_MINE, True),
    ("admin", ADMIN, ROW_OTHERS, True),
    ("admin", ADMIN, ROW_NO_CREATOR, True),
    ("any-holder", ANY_HOLDER, ROW_MINE, True),
    ("any-holder", ANY_HOLDER, ROW_OTHERS, True),
    ("any-holder", ANY_HOLDER, ROW_NO_CREATOR, True),
    ("own-holder on own row", OWN_HOLDER, ROW_MINE, True),
    ("own-holder on other's row", OWN_HOLDER, ROW_OTHERS, False),
    ("own-holder on NULL-creator row", OWN_HOLDER, ROW_NO_CREATOR, False),
    ("read-only on own row", READ_ONLY, ROW_MINE, False),
    ("read-only on other's row", READ_ONLY, ROW_OTHERS, False),
    ("read-only on NULL-creator row", READ_ONLY, ROW_NO_CREATOR, False),
    ("no permissions", NOBODY, ROW_MINE, False),
]


@pytest.mark.parametrize("action", ACTING, ids=str)
@pytest.mark.parametrize(
    ("principal", "creator", "allowed"),
    [case[1:] for case in MATRIX],
    ids=[case[0] for case in MATRIX],
)
def test_acting_verbs(action, principal, creator, allowed):
    decision = authorize(principal, action, creator)
    assert decision.allowed is allowed
    assert bool(decision) is allowed
    assert decision.reason


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [(ADMIN, True), (ANY_HOLDER, True), (OWN_HOLDER, True), (READ_ONLY, True), (NOBODY, False)],
    ids=["admin", "any-holder", "own-holder", "read-only", "nobody"],
)
@pytest.mark.parametrize("creator", [ROW_MINE, ROW_OTHERS, ROW_NO_CREATOR])
def test_view(principal, allowed, creator):
    assert authorize(principal, Action.VIEW, creator).allowed is allowed


@pytest.mark.parametrize("action", ACTING, ids=str)
def test_only_the_matching_verb_counts(action):
    """retry-any does not let anyone approve; each action reads its own verbs."""
    for other in ACTING:
        if other is action:
            continue
        principal = Principal(ME, "x@example.com", frozenset({f"{other.value}-any:purchases"}))
        assert not authorize(principal, action, SOMEONE_ELSE).allowed


def test_refusal_reasons_say_what_is_missing():
    assert "retry-any:purchases" in authorize(OWN_HOLDER, Action.RETRY, ROW_OTHERS).reason
    assert "no recorded creator" in authorize(OWN_HOLDER, Action.RETRY, ROW_NO_CREATOR).reason
    reason = authorize(READ_ONLY, Action.CANCEL, ROW_MINE).reason
    assert "cancel-any:purchases" in reason and "cancel-own:purchases" in reason


def test_anonymous_principal_never_owns_a_null_creator_row():
    anonymous = Principal(None, "system", DEFAULT_PERMISSIONS)
    assert not authorize(anonymous, Action.RETRY, None).allowed


def test_defaults_for_a_user_without_groups():
    assert effective_permissions([]) == DEFAULT_PERMISSIONS
    assert DEFAULT_PERMISSIONS == {
        "view:purchases",
        "approve-own:purchases",
        "cancel-own:purchases",
        "retry-own:purchases",
    }


def test_groups_add_to_the_defaults():
    purchasers = GroupGrant(frozenset({"retry-any:purchases"}))
    assert effective_permissions([purchasers]) == DEFAULT_PERMISSIONS | {"retry-any:purchases"}


def test_read_only_alone_leaves_view_only():
    read_only = GroupGrant(frozenset({"view:purchases"}), restricts_defaults=True)
    assert effective_permissions([read_only]) == {"view:purchases"}


def test_a_restricting_group_keeps_what_other_groups_grant():
    read_only = GroupGrant(frozenset({"view:purchases"}), restricts_defaults=True)
    purchasers = GroupGrant(frozenset({"retry-any:purchases"}))
    assert effective_permissions([read_only, purchasers]) == {
        "view:purchases",
        "retry-any:purchases",
    }


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("retry-any:purchases", "retry-any:purchases"),
        ("  View:Purchases ", "view:purchases"),
        ("admin:*", "admin:*"),
    ],
)
def test_valid_permissions(raw, canonical):
    assert validate_permission(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "retry",
        "retry-any",
        ":purchases",
        "retry-any:",
        "retry any:purchases",
        "a:b:c",
        "fly-any:purchases",
        "retry-any:invoices",
        "view:*",
        "admin:purchases",
        "",
    ],
)
def test_invalid_permissions(raw):
    with pytest.raises(InvalidPermission):
        validate_permission(raw)


def test_a_refusal_names_what_is_missing_and_nothing_about_the_row():
    viewer = Principal(uuid.uuid4(), "v@example.com", frozenset({"view:purchases"}))
    denied = refusal(viewer, Action.RETRY, uuid.uuid4())
    assert denied.status == 403 and denied.details == {}
    assert "retry-any:purchases" in denied.message
    assert refusal(viewer, Action.VIEW) is None
    nobody = Principal(uuid.uuid4(), "n@example.com", frozenset())
    assert "view:purchases" in refusal(nobody, Action.VIEW).message
