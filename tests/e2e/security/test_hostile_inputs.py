"""No hostile input gets a 5xx: for every route of the URL map, as an anonymous and as a
signed-in admin user, Hypothesis generates path parameters, query parameters (Flask-
Admin's `page`, `sort`, `search` and each view's `flt0_<filter>` among them), form
fields (with a valid CSRF token, so the request reaches the code), file parts, JSON
documents and raw bodies (deep nesting), and every answer must be below 500.

Bounded for CI: a fixed number of examples per route, derandomized (the same inputs
every run, and new ones when the strategies or the URL map change); a failure names
the route, the role and the request, shrunk to the smallest Hypothesis finds.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.e2e.security.calls import LOGOUT_ENDPOINTS, STATIC_ENDPOINTS
from tests.e2e.security.hostile import (
    FORM_KEYS,
    QUERY_KEYS,
    RAW_JSON,
    hostile_text,
    json_body,
    json_values,
    query_string,
    url_text,
    without_surrogates,
)
from tests.e2e.security.world import World, new_client, routes

# A fixed budget keeps CI bounded; HOSTILE_EXAMPLES searches further on a quiet machine.
EXAMPLES_PER_ROUTE = int(os.environ.get("HOSTILE_EXAMPLES", "30"))
ROLES = ("anonymous", "admin")
_ARGUMENT = re.compile(r"<(?:([a-z]+)(?:\(([^)]*)\))?:)?([a-z_]+)>")


@dataclass
class Hostile:
    """One generated request, printed as a failing example."""

    role: str
    method: str
    url: str
    form: dict[str, str] = field(default_factory=dict)
    file_field: str | None = None
    json: str | None = None

    def __repr__(self) -> str:
        parts = [f"{self.method} {self.url[:300]!r} as {self.role}"]
        if self.form:
            parts.append(f"form={ {k: v[:80] for k, v in self.form.items()}!r}")
        if self.file_field:
            parts.append(f"file part in {self.file_field!r}")
        if self.json is not None:
            parts.append(f"json={self.json[:200]!r}{'…' if len(self.json) > 200 else ''}")
        return " ".join(parts)


def path_for(rule: str, draw) -> str:
    def replace(match: re.Match) -> str:
        converter, options, _name = match.groups()
        if converter == "any":
            return draw(st.sampled_from([word.strip() for word in options.split(",")]))
        return url_text(draw(hostile_text)) or "x"

    return _ARGUMENT.sub(replace, rule)


@st.composite
def hostile_requests(draw, rule: str, method: str, filters: list[str]) -> Hostile:
    role = draw(st.sampled_from(ROLES))
    path = path_for(rule, draw)
    keys = st.sampled_from(QUERY_KEYS + [f"flt0_{name}" for name in filters])
    params = draw(st.dictionaries(keys, hostile_text, max_size=4))
    url = path + (f"?{query_string(params)}" if params else "")
    request = Hostile(role, method, url)
    if method in {"GET", "HEAD"}:
        return request
    body = draw(st.sampled_from(["form", "json", "raw"]))
    if body == "form":
        request.form = draw(st.dictionaries(st.sampled_from(FORM_KEYS), hostile_text, max_size=5))
        if draw(st.booleans()):
            request.file_field = draw(st.sampled_from(FORM_KEYS))
    elif body == "json":
        request.json = json_body(draw(json_values))
    else:
        request.json = draw(st.sampled_from(RAW_JSON))
    return request


def send(world: World, request: Hostile):
    """The answer's status, or the exception the app raised (testing propagates it)."""
    client = world.client(request.role)
    token = world.csrf(request.role)
    headers = {"X-CSRFToken": token}
    # A fresh address per request: the approval links' rate limit is not the answer.
    environ = {"REMOTE_ADDR": new_client(world.app).environ_base["REMOTE_ADDR"]}
    kwargs: dict = {"headers": headers, "environ_overrides": environ}
    if request.json is not None:
        kwargs.update(data=request.json.encode(), content_type="application/json")
    elif request.method not in {"GET", "HEAD"}:
        form = {"csrf_token": token, **request.form}
        if request.file_field:
            data: dict = {key: without_surrogates(value) for key, value in form.items()}
            data[request.file_field] = (io.BytesIO(b"\x00\xff payload"), "x\x00.txt")
            kwargs.update(data=data, content_type="multipart/form-data")
        else:
            kwargs.update(
                data=query_string(form).encode(),
                content_type="application/x-www-form-urlencoded",
            )
    response = client.open(request.url, method=request.method, **kwargs)
    response.get_data()
    response.close()
    return response


def filters_of(app) -> dict[str, list[str]]:
    """Each Flask-Admin view's filter argument names (`flt0_<name>`), by endpoint."""
    return {
        view.endpoint: list(getattr(view, "_filter_args", None) or {})
        for view in app.extensions["admin"][0]._views
    }


def no_5xx_check(world: World, strategy: st.SearchStrategy[Hostile], logout: bool):
    """A Hypothesis test of one route: every generated request answers below 500."""

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def no_5xx(request: Hostile) -> None:
        try:
            response = send(world, request)
        except Exception as exc:
            raise AssertionError(f"{request!r} raised {type(exc).__name__}: {exc}") from None
        finally:
            if logout:
                world.forget(request.role)
        assert response.status_code < 500, f"{request!r} answered {response.status_code}"

    return no_5xx


def test_no_hostile_input_gets_a_5xx(app, world):
    failures: list[str] = []
    filters = filters_of(app)
    for endpoint, method, rule in routes(app):
        if endpoint in STATIC_ENDPOINTS:
            continue
        strategy = hostile_requests(rule, method, filters.get(endpoint.split(".")[0], []))
        try:
            no_5xx_check(world, strategy, endpoint in LOGOUT_ENDPOINTS)()
        except (AssertionError, ExceptionGroup) as failure:
            found = failure.exceptions if isinstance(failure, ExceptionGroup) else [failure]
            failures.extend(f"{endpoint} {method}: {str(one)[:600]}" for one in found)
    assert not failures, f"{len(failures)} hostile requests answered a 5xx:\n" + "\n".join(failures)
