"""Every redirect the product answers stays on the site, whatever the request names as
where to go: the login form's `next`, a panel form's `next`, the Referer header."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.e2e.helpers import csrf_from
from tests.e2e.security.calls import LOGOUT_ENDPOINTS, build, id_kinds_of
from tests.e2e.security.world import ROLES, STATE_CHANGING, answer, location_is_on_site, routes
from tests.factories import PASSWORD

HOSTILE = [
    "https://evil.example/",
    "//evil.example",
    "/\\evil.example",
    "/\t/evil.example",
    " //evil.example",
    "javascript:alert(1)",
    "http://localhost.evil.example/",
    "https:evil.example",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_login_next_stays_on_the_site(world, target):
    client = world.client("anonymous")
    form = {
        "email": world.users["own-only"].email,
        "password": PASSWORD,
        "csrf_token": csrf_from(client.get("/login", query_string={"next": target}).text),
    }
    response = client.post("/login", query_string={"next": target}, data=form)
    assert response.status_code == 302, answer(response)
    assert location_is_on_site(response.headers["Location"]), answer(response)


def test_panel_forms_stay_on_the_site_whatever_the_referer_or_next(app, world):
    """Every panel POST, acted on and refused (own-only on another user's row), with a
    hostile Referer header and a hostile `next` field."""
    wrong: list[str] = []
    panel_posts = [
        route
        for route in routes(app)
        if route[1] in STATE_CHANGING and not route[0].startswith(("api.", "links."))
    ]
    for endpoint, method, rule in panel_posts:
        kind = next(k for k in ("other", "existing", "-") if k in id_kinds_of(endpoint))
        for role in ("own-only", "admin"):
            for target in HOSTILE:
                call = build(world, endpoint, method, rule, role, kind)
                call.kwargs["data"]["next"] = target
                call.kwargs["headers"] = {"Referer": target}
                response = world.client(role).open(call.url, method=method, **call.kwargs)
                if endpoint in LOGOUT_ENDPOINTS:
                    world.forget(role)
                location = response.headers.get("Location")
                if location is not None and not location_is_on_site(location):
                    wrong.append(f"{method} {call.url[:80]} as {role}: {answer(response)}")
    assert not wrong, f"{len(wrong)} redirects leave the site:\n" + "\n".join(wrong)


def test_every_get_stays_on_the_site_whatever_the_referer_or_next(app, world):
    """Every GET of the URL map, as every role, with a hostile Referer and `next`."""
    wrong: list[str] = []
    gets = [route for route in routes(app) if route[1] == "GET"]
    for number, (endpoint, method, rule) in enumerate(gets):
        for role in ROLES:
            target = HOSTILE[(number + ROLES.index(role)) % len(HOSTILE)]
            call = build(world, endpoint, method, rule, role, id_kinds_of(endpoint)[0])
            separator = "&" if "?" in call.url else "?"
            url = f"{call.url}{separator}next={quote(target, safe='')}"
            response = world.client(role).get(url, headers={"Referer": target})
            response.close()
            location = response.headers.get("Location")
            if location is not None and not location_is_on_site(location):
                wrong.append(f"GET {url[:80]} as {role}: {answer(response)}")
    assert not wrong, f"{len(wrong)} redirects leave the site:\n" + "\n".join(wrong)
