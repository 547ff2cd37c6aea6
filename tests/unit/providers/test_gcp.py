"""The GCP provider against a compute API stand-in on 127.0.0.1, reached through the
SDK's own endpoint setting (`client_options.api_endpoint`) and its REST transport with
anonymous credentials. Every request the SDK sends is recorded and asserted on."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from google.auth.credentials import AnonymousCredentials

from app.providers import (
    AccountTarget,
    LookupFailed,
    PurchaseFailed,
    Quote,
    key_name,
    key_uuid,
)
from app.providers.gcp import CommitmentOutcomeUnknown, GcpProvider

PROJECT = "proj-1"
REGION = "us-central1"
KEY = "lineage-7f1c:0"
NAME = key_name(KEY)
BASE = f"/compute/v1/projects/{PROJECT}"
COMMITMENTS = f"{BASE}/regions/{REGION}/commitments"
OPERATIONS = f"{BASE}/regions/{REGION}/operations"
BOUGHT = f"projects/{PROJECT}/regions/{REGION}/commitments/{NAME}"
ACCOUNT = AccountTarget(name="gcp-prod", provider="gcp", gcp_project=PROJECT)
ITEM = {
    "provider": "gcp",
    "service": "compute",
    "region": REGION,
    "count": 2,
    "term_years": 1,
    "payment_option": "no-upfront",
    "resources": [{"type": "VCPU", "amount": 4}, {"type": "MEMORY", "amount": 16384}],
}
OFFERING = f"compute:{REGION}:TWELVE_MONTH:VCPU=8,MEMORY=32768"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class ComputeApi:
    """Answers queued per (method, path), in order; anything unqueued is a 501."""

    requests: list[Request] = field(default_factory=list)
    answers: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    endpoint: str = ""

    def answer(self, method: str, path: str, status: int, body: Any) -> None:
        self.answers.setdefault((method, path), []).append((status, body))

    def sent(self, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if method is None or r.method == method]

    def handle(self, method: str, target: str, raw: bytes) -> tuple[int, Any]:
        url = urlsplit(target)
        body = json.loads(raw) if raw else None
        self.requests.append(Request(method, url.path, parse_qs(url.query), body))
        queued = self.answers.get((method, url.path))
        if not queued:
            return 501, error(501, f"unexpected {method} {url.path}")
        return queued.pop(0)


def error(code: int, message: str, reason: str = "") -> dict[str, Any]:
    errors = [{"message": message, "domain": "global", "reason": reason}] if reason else []
    return {"error": {"code": code, "message": message, "errors": errors}}


def operation(status: str = "DONE", **extra: Any) -> dict[str, Any]:
    return {"name": "operation-1", "status": status, "operationType": "insert", **extra}


@pytest.fixture
def api() -> Iterator[ComputeApi]:
    fake = ComputeApi()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = fake.handle(self.command, self.path, raw)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    fake.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def gcp(api: ComputeApi) -> GcpProvider:
    return GcpProvider(
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": api.endpoint},
        retry_initial=0.01,
        retry_timeout=0.5,
        request_timeout=5.0,
        operation_timeout=5.0,
    )


def quote() -> Quote:
    return Quote(offering_id=OFFERING)


def test_constructing_the_default_provider_needs_no_credentials():
    provider = GcpProvider()
    assert provider.name == "gcp"
    assert provider.can_find("compute") and not provider.can_find("vm")


def test_quote_describes_the_commitment_for_the_whole_count_after_finding_the_region(api, gcp):
    api.answer("GET", f"{BASE}/regions/{REGION}", 200, {"name": REGION, "status": "UP"})
    answered = gcp.quote(ITEM, ACCOUNT)
    assert answered.offering_id == OFFERING
    assert (answered.upfront, answered.recurring_monthly, answered.term_total) == (None,) * 3
    assert [(r.method, r.path) for r in api.requests] == [("GET", f"{BASE}/regions/{REGION}")]


def test_quote_of_an_unknown_region_is_offering_not_found(api, gcp):
    api.answer("GET", f"{BASE}/regions/mars-1", 404, error(404, "not found", "notFound"))
    with pytest.raises(PurchaseFailed, match=r"^offering not found: region 'mars-1'"):
        gcp.quote({**ITEM, "region": "mars-1"}, ACCOUNT)
    assert len(api.requests) == 1


def test_dry_run_quotes_and_inserts_nothing(api, gcp):
    api.answer("GET", f"{BASE}/regions/{REGION}", 200, {"name": REGION})
    assert gcp.rehearse({**ITEM, "term_years": 3}, ACCOUNT).offering_id == (
        f"compute:{REGION}:THIRTY_SIX_MONTH:VCPU=8,MEMORY=32768"
    )
    assert [r.method for r in api.requests] == ["GET"]
    assert not api.sent("POST")


def test_purchase_inserts_the_commitment_named_after_the_key_with_its_request_id(api, gcp):
    api.answer("POST", COMMITMENTS, 200, operation("RUNNING"))
    api.answer("POST", f"{OPERATIONS}/operation-1/wait", 200, operation("DONE"))
    assert gcp.purchase(KEY, ITEM, ACCOUNT, quote()) == BOUGHT
    insert, wait = api.requests
    assert (insert.method, insert.path) == ("POST", COMMITMENTS)
    assert insert.query["requestId"] == [str(key_uuid(KEY))]
    assert insert.body["name"] == NAME
    assert insert.body["plan"] == "TWELVE_MONTH"
    assert insert.body["category"] == "MACHINE"
    assert insert.body["description"] == f"ccp:idempotency-key={KEY}"
    assert insert.body["resources"] == [
        {"type": "VCPU", "amount": "8"},
        {"type": "MEMORY", "amount": "32768"},
    ]
    assert (wait.method, wait.path) == ("POST", f"{OPERATIONS}/operation-1/wait")


def test_a_409_for_the_keys_name_answers_the_earlier_purchase(api, gcp):
    exists = error(409, f"The resource '{NAME}' already exists", "alreadyExists")
    api.answer("POST", COMMITMENTS, 409, exists)
    assert gcp.purchase(KEY, ITEM, ACCOUNT, quote()) == BOUGHT
    assert [(r.method, r.path) for r in api.requests] == [("POST", COMMITMENTS)]


def test_find_answers_the_commitment_named_after_the_key(api, gcp):
    api.answer("GET", f"{COMMITMENTS}/{NAME}", 200, {"name": NAME, "id": "123"})
    assert gcp.find(KEY, ITEM, ACCOUNT) == BOUGHT
    assert [(r.method, r.path) for r in api.requests] == [("GET", f"{COMMITMENTS}/{NAME}")]


def test_find_answers_none_when_gcp_has_no_such_commitment(api, gcp):
    api.answer("GET", f"{COMMITMENTS}/{NAME}", 404, error(404, "not found", "notFound"))
    assert gcp.find(KEY, ITEM, ACCOUNT) is None
    assert len(api.requests) == 1


def test_find_that_cannot_ask_raises_lookup_failed(api, gcp):
    api.answer("GET", f"{COMMITMENTS}/{NAME}", 403, error(403, "denied", "forbidden"))
    with pytest.raises(LookupFailed, match=r"IAM denied: compute\.commitments\.get .* proj-1"):
        gcp.find(KEY, ITEM, ACCOUNT)
    assert len(api.requests) == 1


def test_purchase_denied_names_the_permission_and_the_project(api, gcp):
    api.answer("POST", COMMITMENTS, 403, error(403, "Required permission", "forbidden"))
    with pytest.raises(PurchaseFailed) as refused:
        gcp.purchase(KEY, ITEM, ACCOUNT, quote())
    assert str(refused.value) == (
        "IAM denied: compute.commitments.create is not allowed on project proj-1 (403)"
    )
    assert len(api.sent("POST")) == 1


def test_check_denied_names_what_the_identity_needs(api, gcp):
    api.answer("GET", f"{BASE}/aggregated/commitments", 403, error(403, "no", "forbidden"))
    report = gcp.check(ACCOUNT)
    assert not report.ok
    assert "IAM denied: compute.commitments.list is not allowed on project proj-1" in (
        report.message
    )
    assert "compute.commitments.create" in report.message
    assert "compute.commitments.create" in report.missing
    (listed,) = api.requests
    assert listed.query["maxResults"] == ["1"]


def test_check_reads_one_commitment_at_most(api, gcp):
    api.answer("GET", f"{BASE}/aggregated/commitments", 200, {"items": {}})
    report = gcp.check(ACCOUNT)
    assert report.ok, report.message
    (listed,) = api.requests
    assert listed.query["maxResults"] == ["1"]


def test_throttling_is_retried_by_the_client_and_then_buys(api, gcp):
    api.answer("POST", COMMITMENTS, 429, error(429, "Rate Limit Exceeded", "rateLimitExceeded"))
    api.answer("POST", COMMITMENTS, 200, operation("DONE"))
    assert gcp.purchase(KEY, ITEM, ACCOUNT, quote()) == BOUGHT
    first, second = api.requests
    assert first.path == second.path == COMMITMENTS
    assert first.query["requestId"] == second.query["requestId"] == [str(key_uuid(KEY))]


def test_throttling_that_lasts_surfaces_as_throttled(api, gcp):
    for _ in range(50):
        api.answer("POST", COMMITMENTS, 429, error(429, "Rate Limit Exceeded"))
    with pytest.raises(PurchaseFailed, match=r"^throttled: "):
        gcp.purchase(KEY, ITEM, ACCOUNT, quote())
    assert len(api.requests) >= 2


@pytest.mark.parametrize("code", ["ZONE_RESOURCE_POOL_EXHAUSTED", "QUOTA_EXCEEDED"])
def test_an_operation_that_ran_out_of_room_is_insufficient_capacity(api, gcp, code):
    failed = operation(
        "DONE",
        error={"errors": [{"code": code, "message": "Quota 'COMMITTED_CPUS' exceeded."}]},
        httpErrorStatusCode=403,
        httpErrorMessage="FORBIDDEN",
    )
    api.answer("POST", COMMITMENTS, 200, operation("RUNNING"))
    api.answer("POST", f"{OPERATIONS}/operation-1/wait", 200, failed)
    with pytest.raises(PurchaseFailed, match=rf"^insufficient capacity: {code}: "):
        gcp.purchase(KEY, ITEM, ACCOUNT, quote())
    assert [r.path for r in api.requests] == [COMMITMENTS, f"{OPERATIONS}/operation-1/wait"]


def test_a_quota_refusal_of_the_insert_is_insufficient_capacity(api, gcp):
    quota = error(403, "Quota 'COMMITMENTS' exceeded. Limit: 10.0", "quotaExceeded")
    api.answer("POST", COMMITMENTS, 403, quota)
    with pytest.raises(PurchaseFailed, match=r"^insufficient capacity: Quota 'COMMITMENTS'"):
        gcp.purchase(KEY, ITEM, ACCOUNT, quote())


@pytest.mark.parametrize("payment", ["all-upfront", "partial-upfront"])
def test_upfront_payment_is_refused_before_any_request(api, gcp, payment):
    item = {**ITEM, "payment_option": payment}
    for call in (
        lambda: gcp.purchase(KEY, item, ACCOUNT, quote()),
        lambda: gcp.quote(item, ACCOUNT),
    ):
        with pytest.raises(PurchaseFailed, match=rf"^payment_option '{payment}'"):
            call()
    assert api.requests == []


def test_an_operation_that_does_not_finish_leaves_the_outcome_unknown(api):
    provider = GcpProvider(
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": api.endpoint},
        operation_timeout=0.0,
    )
    api.answer("POST", COMMITMENTS, 200, operation("RUNNING"))
    with pytest.raises(CommitmentOutcomeUnknown, match="operation-1 had not finished") as unknown:
        provider.purchase(KEY, ITEM, ACCOUNT, quote())
    assert not isinstance(unknown.value, PurchaseFailed)
    assert unknown.value.bought == BOUGHT


def test_a_server_error_on_insert_leaves_the_outcome_unknown(api, gcp):
    api.answer("POST", COMMITMENTS, 503, error(503, "backend unavailable"))
    with pytest.raises(CommitmentOutcomeUnknown):
        gcp.purchase(KEY, ITEM, ACCOUNT, quote())


def test_an_account_without_a_project_is_refused_before_any_request(api, gcp):
    account = AccountTarget(name="no-project", provider="gcp")
    with pytest.raises(PurchaseFailed, match="names no GCP project"):
        gcp.purchase(KEY, ITEM, account, quote())
    with pytest.raises(LookupFailed, match="names no GCP project"):
        gcp.find(KEY, ITEM, account)
    assert not gcp.check(account).ok
    assert api.requests == []


def test_without_application_default_credentials_check_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    report = GcpProvider(client_options={"api_endpoint": "http://127.0.0.1:9"}).check(ACCOUNT)
    assert not report.ok
    assert report.message.startswith("no GCP credentials: set up Application Default")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"resources": []}, "resources"),
        ({"resources": [{"type": "GPU", "amount": 1}]}, "resources"),
        ({"resources": [{"type": "VCPU", "amount": 0}]}, "resources"),
        ({"term_years": 2}, "term_years"),
        ({"region": ""}, "region"),
    ],
)
def test_an_item_gcp_cannot_buy_names_the_field_before_any_request(api, gcp, change, field):
    with pytest.raises(PurchaseFailed, match=rf"^{field}"):
        gcp.purchase(KEY, {**ITEM, **change}, ACCOUNT, quote())
    assert api.requests == []
