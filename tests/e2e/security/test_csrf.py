"""Every state-changing route of the URL map refuses a request without a CSRF token, or
with another session's, with a 4xx, and changes nothing (a refusal's own audit event
aside). The routes are enumerated from the URL map, not listed here; the exemptions
are, and they must be exactly what the URL map has.
"""

from __future__ import annotations

import pytest

from tests.e2e.security.calls import LINK_ENDPOINTS, build, id_kinds_of
from tests.e2e.security.world import STATE_CHANGING, World, answer, routes

# No CSRF token by design, each for a reason:
EXEMPT_ALWAYS = {
    # No session yet, so no token to send; it takes only a JSON body, which a
    # cross-site form cannot send.
    "api.login",
    # The approval email's confirm button and a digest's "approve the ticked ones": the
    # link's token is the authority.
    "links.act",
    "links.digest_approve",
}
# With the email link's `token` in the JSON body (and only then): the token is the
# authority, no session is used.
EXEMPT_WITH_BODY_TOKEN = {"api.approve_execution", "api.cancel_execution"}
ROLE = "admin"  # the most a forged request could do


def state_changing(app) -> list[tuple[str, str, str]]:
    return [route for route in routes(app) if route[1] in STATE_CHANGING]


def a_kind_that_acts(endpoint: str) -> str:
    """The kind of id with which the admin's request would act, given a token."""
    kinds = id_kinds_of(endpoint)
    return next((kind for kind in ("other", "existing", "valid") if kind in kinds), kinds[0])


def is_csrf_refusal(response) -> bool:
    return response.status_code == 400 and "csrf" in response.get_data(as_text=True).lower()


def send(world: World, endpoint: str, method: str, rule: str, token: str | None):
    call = build(world, endpoint, method, rule, ROLE, a_kind_that_acts(endpoint), csrf=False)
    if token is not None:
        if endpoint.startswith("api."):
            call.kwargs["headers"] = {"X-CSRFToken": token}
        else:
            call.kwargs.setdefault("data", {})["csrf_token"] = token
    before = world.snapshot()
    response = world.client(ROLE).open(call.url, method=method, **call.kwargs)
    response.get_data()
    response.close()
    return call, response, world.snapshot() != before


@pytest.mark.parametrize("token", ["missing", "foreign"])
def test_every_state_changing_route_refuses_a_bad_csrf_token(app, world, token):
    wrong: list[str] = []
    for endpoint, method, rule in state_changing(app):
        if endpoint in EXEMPT_ALWAYS:
            continue
        # Another signed-in user's token: valid, but bound to their session.
        sent = world.csrf("purchaser") if token == "foreign" else None
        call, response, changed = send(world, endpoint, method, rule, sent)
        if not 400 <= response.status_code < 500 or changed:
            what = "changed data" if changed else "was not refused"
            wrong.append(f"{method} {call.url[:90]} {what}: {answer(response)}")
    assert not wrong, f"{len(wrong)} forged requests got through:\n" + "\n".join(wrong)


def test_the_csrf_exemptions_are_exactly_the_documented_ones(app, world):
    """Send every state-changing route a request with no CSRF token (the API's approve and
    cancel with a link's token in the body): those not refused for CSRF are exempt."""
    exempt = set()
    for endpoint, method, rule in state_changing(app):
        if endpoint in EXEMPT_WITH_BODY_TOKEN:
            action = endpoint.split(".")[1].split("_")[0]
            execution_id, link_token = world.link(action, "valid")
            response = world.client(ROLE).post(
                f"/api/purchases/{action}/{execution_id}", json={"token": link_token}
            )
        else:
            _, response, _ = send(world, endpoint, method, rule, None)
        if not is_csrf_refusal(response):
            exempt.add(endpoint)
    assert exempt == EXEMPT_ALWAYS | EXEMPT_WITH_BODY_TOKEN, (
        "the routes that take no CSRF token changed: "
        f"new {sorted(exempt - EXEMPT_ALWAYS - EXEMPT_WITH_BODY_TOKEN)}, "
        f"no longer {sorted(EXEMPT_ALWAYS | EXEMPT_WITH_BODY_TOKEN - exempt)}"
    )


def test_exempt_routes_still_refuse_what_has_no_authority(app, world):
    """An exempt route without its own authority (no link token, no credentials) is
    refused and changes nothing."""
    for endpoint in sorted(LINK_ENDPOINTS & EXEMPT_ALWAYS):
        execution_id, _ = world.link("approve", "none")
        before = world.snapshot()
        response = world.client("anonymous").post(f"/purchases/approve/{execution_id}")
        assert 400 <= response.status_code < 500, (endpoint, answer(response))
        assert world.snapshot() == before
    before = world.snapshot()
    response = world.client("anonymous").post(
        "/api/auth/login", json={"email": "admin@example.com", "password": "wrong password"}
    )
    assert response.status_code == 401, answer(response)
    assert world.snapshot()["purchase_executions"] == before["purchase_executions"]
