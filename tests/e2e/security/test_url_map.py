"""Every route of the URL map, as every role, with every kind of id, against one table.

A cell is a short text: the statuses allowed (`200`, `302|404`), then what the request
may do to the data: `done` (it must change something: the row moved, a request or batch
was recorded), `kept` (the default: nothing but a refusal's audit event changes) or
`any` (not checked). `login` means a redirect to the login page. Every 3xx answer's
Location must be on the site, and every answer carries the security headers. A route
the table does not know fails the suite.
"""

from __future__ import annotations

import pytest

from tests.e2e.security.calls import LOGOUT_ENDPOINTS, build, id_kinds_of
from tests.e2e.security.world import ROLES, answer, location_is_on_site, routes

LOGIN = "302 login"


def roles(anonymous, read_only, own_only, purchaser, admin):
    return dict(zip(ROLES, (anonymous, read_only, own_only, purchaser, admin), strict=True))


def signed_in(cell, anonymous=LOGIN):
    return roles(anonymous, cell, cell, cell, cell)


def admin_only(cell, anonymous=LOGIN):
    return roles(anonymous, "403", "403", "403", cell)


def kinds(own, other, none, unknown, malformed):
    return {"own": own, "other": other, "none": none, "unknown": unknown, "malformed": malformed}


def rows(existing, unknown="404", malformed="400"):
    return {"existing": existing, "unknown": unknown, "malformed": malformed}


def links(valid):
    return {"valid": valid, "foreign": "403|404", "none": "400|403"}


# Deciding a row: own-only may decide its own; purchasers and admins any row.
def deciding(ok, refused, unknown, malformed, anonymous):
    return roles(
        anonymous,
        kinds(refused, refused, refused, f"{unknown}|403", f"{malformed}|403"),
        kinds(ok, refused, refused, unknown, malformed),
        kinds(ok, ok, ok, unknown, malformed),
        kinds(ok, ok, ok, unknown, malformed),
    )


# Reading a retry request or batch: its requester's or an admin's.
def requester_or_admin(ok, anonymous):
    mine = kinds(ok, "403", "403", "404", "400")
    return roles(anonymous, mine, mine, mine, kinds(ok, ok, ok, "404", "400"))


# A Flask-Admin operation the view switched off: a redirect to its list or a 404.
OFF = "302|404"


def management(view, *, create="200", edit="302|200 any", delete="404", read_only=False):
    """users, groups, accounts: admins only. The audit log: admins only, read-only."""
    if read_only:
        create = edit = delete = "404"
        details = rows("200")
    else:
        details = rows(OFF, OFF, OFF)
    return {
        (f"{view}.index_view", "GET"): admin_only("200"),
        (f"{view}.create_view", "GET"): admin_only("404" if read_only else "200"),
        (f"{view}.create_view", "POST"): admin_only(create),
        (f"{view}.edit_view", "GET"): admin_only(
            rows("404", "404", "404") if read_only else rows("200")
        ),
        (f"{view}.edit_view", "POST"): admin_only(
            rows("404", "404", "404") if read_only else rows(edit)
        ),
        (f"{view}.delete_view", "POST"): admin_only(
            rows(delete, "404", "404") if delete == "404" else rows(delete)
        ),
        (f"{view}.details_view", "GET"): admin_only(details),
        (f"{view}.export", "GET"): admin_only(OFF),
        (f"{view}.action_view", "POST"): admin_only("404"),
        (f"{view}.ajax_lookup", "GET"): admin_only("404"),
        (f"{view}.ajax_update", "POST"): admin_only("404"),
    }


EXPECTED: dict[tuple[str, str], dict] = {
    # Public by design: static files, the sign-in pages, the root redirect.
    ("static", "GET"): roles("404", "404", "404", "404", "404"),
    ("admin.static", "GET"): roles("200", "200", "200", "200", "200"),
    ("panel.static", "GET"): roles("200", "200", "200", "200", "200"),
    ("auth.root", "GET"): roles("302", "302", "302", "302", "302"),
    ("auth.login", "GET"): signed_in("302", anonymous="200"),
    ("auth.login", "POST"): signed_in("302 any", anonymous="400|401 any"),
    ("auth.logout", "POST"): signed_in("302", anonymous="302"),
    # The JSON API: 401 before anything else when signed out.
    ("api.login", "POST"): roles(*["400|401 any"] * 5),
    ("api.openapi_document", "GET"): roles(*["200"] * 5),  # describes, reveals no data
    ("api.logout", "POST"): signed_in("200", anonymous="401"),
    ("api.me", "GET"): signed_in("200", anonymous="401"),
    ("api.history", "GET"): signed_in("200", anonymous="401"),
    ("api.history_export", "GET"): signed_in("200", anonymous="401"),
    ("api.execution_detail", "GET"): signed_in(kinds("200", "200", "200", "404", "400"), "401"),
    ("api.approve_execution", "POST"): deciding("200 done", "403", "404", "400", "401"),
    ("api.cancel_execution", "POST"): deciding("200 done", "403", "404", "400", "401"),
    ("api.retry_execution", "POST"): deciding("202 done", "403", "404", "400", "401"),
    ("api.bulk_retry_executions", "POST"): roles("401", "403", *["202 done"] * 3),
    # The suite sends an empty body: refused by its schema before any rule runs.
    ("api.create_purchase", "POST"): signed_in("400", anonymous="401"),
    ("api.retry_request_state", "GET"): requester_or_admin("200", "401"),
    ("api.retry_batch_state", "GET"): requester_or_admin("200", "401"),
    # The freeze: read by every viewer, switched by admins. The plans: read by every
    # viewer, switched by admins and purchasers (approve-any); a malformed id is a 400
    # before anything else.
    ("api.purchase_freeze", "GET"): signed_in("200", anonymous="401"),
    ("api.freeze_purchases", "POST"): admin_only("201 done", anonymous="401"),
    ("api.lift_freeze", "POST"): admin_only("200 done", anonymous="401"),
    ("api.plans", "GET"): signed_in("200", anonymous="401"),
    **{
        (f"api.{name}", "POST"): roles(
            "401", *[rows("403", "403", "400")] * 2, *[rows("200 done")] * 2
        )
        for name in ("pause_plan", "resume_plan", "run_plan_now")
    },
    # Failures by cause: read by every viewer; "mark fixed" by whoever may retry. The
    # suite names no failed row's signature: 404 once permitted, nothing recorded.
    ("api.failure_causes", "GET"): signed_in("200", anonymous="401"),
    ("api.mark_cause_fixed", "POST"): roles("401", "403", "404", "404", "404"),
    ("causes.index", "GET"): signed_in("200"),
    ("causes.mark_fixed_view", "POST"): signed_in("302"),
    # The approval email's pages: the token is the authority, whoever is signed in.
    ("links.confirm", "GET"): roles(*[links("200")] * 5),
    ("links.act", "POST"): roles(*[links("200 done")] * 5),
    # A digest's page: its token is the authority; the suite has none to give it.
    ("links.digest", "GET"): roles(*["403"] * 5),
    ("links.digest_approve", "POST"): roles(*["403"] * 5),
    # Health for probes; metrics only for METRICS_TOKEN or a loopback scraper, which
    # the suite's client (a documentation address) is not.
    ("observability.healthz", "GET"): roles(*["200"] * 5),
    ("observability.readyz", "GET"): roles(*["200"] * 5),
    ("observability.metrics", "GET"): roles(*["401"] * 5),
    # Notification channels: admins only; with no id, the edit page is the new-channel
    # form (an empty POST is shown again with its errors); a malformed id is a 400.
    ("channels.index", "GET"): admin_only("200"),
    ("channels.edit", "GET"): admin_only("200"),
    ("channels.edit", "POST"): admin_only("200"),
    **{
        (f"channels.{name}", "POST"): admin_only("400")
        for name in ("delete", "disable", "enable", "test")
    },
    # The panel: Purchase History and its row actions (a refusal is a flash message).
    ("admin.index", "GET"): signed_in("200"),
    ("purchases.index_view", "GET"): signed_in("200"),
    ("purchases.details_view", "GET"): signed_in(kinds("200", "200", "200", "404", "400")),
    ("purchases.approve_view", "POST"): deciding("302 done", "302", "302", "302", LOGIN),
    ("purchases.cancel_view", "POST"): deciding("302 done", "302", "302", "302", LOGIN),
    ("purchases.retry_view", "POST"): deciding("302 done", "302", "302", "302", LOGIN),
    # Retry selected: every row gets its own outcome in a batch, refusals included;
    # a user who may retry nothing is refused whole, as `POST /api/purchases/retry` is.
    ("purchases.action_view", "POST"): roles(
        LOGIN,
        kinds(*["302|403"] * 5),
        kinds("302 done", *["302 any"] * 4),
        kinds("302 done", "302 done", "302 done", "302 any", "302 any"),
        kinds("302 done", "302 done", "302 done", "302 any", "302 any"),
    ),
    # Without a filter there is nothing to match: refused, nothing written.
    ("purchases.retry_matching_view", "POST"): roles(LOGIN, "400|403", "400", "400", "400"),
    # Switched off, and its address is the New purchase page's, which answers there.
    ("purchases.create_view", "GET"): admin_only("200"),
    ("purchases.create_view", "POST"): admin_only("400"),
    ("purchases.edit_view", "GET"): signed_in(OFF),
    ("purchases.edit_view", "POST"): signed_in(OFF),
    ("purchases.delete_view", "POST"): signed_in(OFF),
    ("purchases.export", "GET"): signed_in(OFF),
    ("purchases.ajax_lookup", "GET"): signed_in("404"),
    ("purchases.ajax_update", "POST"): signed_in("404"),
    ("retry_batches.index", "GET"): signed_in(OFF),
    # New purchase: those who may create (of the roles, admins only); an empty form is a
    # 400 on the page, nothing written.
    ("purchase_new.index", "GET"): admin_only("200"),
    ("purchase_new.submit", "POST"): admin_only("400"),
    ("retry_batches.details", "GET"): requester_or_admin("200", LOGIN),
    # Management: admins only; the audit log read-only; suppressions for every viewer.
    **management("users"),
    **management("groups"),
    **management("accounts", delete="302 done"),
    ("accounts.set_mode_view", "POST"): admin_only(rows("302")),
    ("accounts.test_connection_view", "POST"): admin_only(rows("302")),
    # Spend limits: admins only. The suite names no group, so the form and Clear are 400.
    ("limits.index", "GET"): admin_only("200"),
    ("limits.edit", "GET"): admin_only("400"),
    ("limits.edit", "POST"): admin_only("400"),
    ("limits.clear", "POST"): admin_only("400"),
    **management("audit", read_only=True),
    ("suppressions.index_view", "GET"): signed_in("200"),
    # The freeze page: admins only. The plans page: every viewer; its switches refuse
    # (a flash) all but admins and purchasers.
    ("freeze.index", "GET"): admin_only("200"),
    ("freeze.freeze_view", "POST"): admin_only("302 done"),
    ("freeze.lift_view", "POST"): admin_only("302 done"),
    ("plans.index", "GET"): signed_in("200"),
    # Your settings: every signed-in user, for themselves (no time zone sent: nothing
    # changes).
    ("settings.index", "GET"): signed_in("200"),
    ("settings.index", "POST"): signed_in("302"),
    **{
        (f"plans.{name}", "POST"): roles(
            LOGIN, *[rows("302", "302", "302")] * 2, *[rows("302 done", "302", "302")] * 2
        )
        for name in ("pause_view", "resume_view", "run_now_view")
    },
    ("suppressions.details_view", "GET"): signed_in(rows(OFF, OFF, OFF)),
    ("suppressions.export", "GET"): signed_in(OFF),
    **{
        (f"suppressions.{name}", method): signed_in(
            rows("404", "404", "404") if name in {"edit_view", "delete_view"} else "404"
        )
        for name, method in [
            ("create_view", "GET"),
            ("create_view", "POST"),
            ("edit_view", "GET"),
            ("edit_view", "POST"),
            ("delete_view", "POST"),
            ("action_view", "POST"),
            ("ajax_lookup", "GET"),
            ("ajax_update", "POST"),
        ]
    },
}

VIEWS = sorted({endpoint.split(".")[0] for endpoint, _ in EXPECTED})


def test_every_route_of_the_url_map_has_an_entry(app):
    in_map = {(endpoint, method) for endpoint, method, _ in routes(app)}
    missing = sorted(in_map - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - in_map)
    assert not missing, (
        "routes with no expected answers: add each to EXPECTED in "
        f"tests/e2e/security/test_url_map.py (per role, and per kind of id): {missing}"
    )
    assert not stale, f"EXPECTED names routes the URL map no longer has: {stale}"


def parse(cell: str) -> tuple[set[int], bool, str]:
    words = cell.split()
    statuses = {int(code) for code in words[0].split("|")}
    effect = next((word for word in words[1:] if word in {"done", "kept", "any"}), "kept")
    return statuses, "login" in words, effect


def cell_for(entry: dict, role: str, kind: str) -> str:
    cell = entry[role]
    return cell if isinstance(cell, str) else cell[kind]


def unhardened(response, endpoint: str) -> list[str]:
    """What the response lacks of the headers every answer carries: no framing, no
    sniffing, no inline script, and nothing stored but static files."""
    headers = response.headers
    directives = {}
    for part in headers.get("Content-Security-Policy", "").split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    missing = []
    if directives.get("frame-ancestors") != "'none'":
        missing.append("CSP frame-ancestors 'none'")
    if "script-src" not in directives or "'unsafe-inline'" in directives["script-src"]:
        missing.append("a CSP script-src without 'unsafe-inline'")
    if headers.get("X-Content-Type-Options") != "nosniff":
        missing.append("nosniff")
    if headers.get("X-Frame-Options") != "DENY":
        missing.append("X-Frame-Options: DENY")
    if not endpoint.endswith("static") and headers.get("Cache-Control") != "no-store":
        missing.append("Cache-Control: no-store")
    return [f"missing {what}" for what in missing]


@pytest.mark.parametrize("view", VIEWS)
def test_each_role_gets_the_expected_answer(app, world, view):
    wrong: list[str] = []
    for endpoint, method, rule in routes(app):
        if endpoint.split(".")[0] != view or (endpoint, method) not in EXPECTED:
            continue
        for kind in id_kinds_of(endpoint):
            for role in ROLES:
                call = build(world, endpoint, method, rule, role, kind)
                before = world.snapshot()
                response = world.client(role).open(call.url, method=method, **call.kwargs)
                response.get_data()
                response.close()
                changed = world.snapshot() != before
                if endpoint in LOGOUT_ENDPOINTS:
                    world.forget(role)
                statuses, login, effect = parse(cell_for(EXPECTED[endpoint, method], role, kind))
                location = response.headers.get("Location", "")
                problems = []
                if response.status_code not in statuses:
                    problems.append(f"expected {'|'.join(map(str, sorted(statuses)))}")
                if login and not location.startswith("/login"):
                    problems.append("expected a redirect to /login")
                if location and not location_is_on_site(location):
                    problems.append("Location leaves the site")
                problems.extend(unhardened(response, endpoint))
                if effect == "done" and not changed:
                    problems.append("expected it to act; nothing changed")
                if effect == "kept" and changed:
                    problems.append("expected nothing to change; something did")
                if problems:
                    wrong.append(
                        f"{method} {call.url[:90]} as {role} ({kind}): "
                        f"{'; '.join(problems)}; got {answer(response)}"
                    )
    assert not wrong, f"{len(wrong)} answers differ from EXPECTED:\n" + "\n".join(wrong)
