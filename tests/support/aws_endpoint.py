"""A small EC2 endpoint on 127.0.0.1 that boto3 reaches through its own endpoint setting
(`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_EC2`), with any fake credentials.

It speaks EC2's query protocol (form-encoded POST, XML answers in EC2's shapes) for four
actions, over a real in-memory store:

- `DescribeReservedInstancesOfferings`: the seeded offerings (`OFFERINGS`, or the
  constructor's), filtered by ids, instance type, product description, tenancy, class,
  offering type and duration; one page;
- `PurchaseReservedInstancesOffering`: records a reservation and counts the purchase
  (`DryRun=true` answers `DryRunOperation` and buys nothing);
- `CreateTags`: tags a reservation (an unknown id is `InvalidReservedInstancesId`);
- `DescribeReservedInstances`: the reservations, filtered by ids and `tag:<key>` filters.

Knobs (attributes, or `POST /_knobs` with a JSON object of them):
- `throttle`: answer the next N requests `RequestLimitExceeded` (HTTP 503);
- `lose_purchase_responses`: the next N purchases buy, then answer `InternalError` 500
  (the answer lost on the way back);
- `describe_error`: answer `DescribeReservedInstances` with this error code (HTTP 400, so
  botocore does not retry it; None: answer normally);
- `deny`: actions answered `UnauthorizedOperation` (HTTP 403).

`GET /_state` answers JSON: `purchases` (how many purchases bought), `reservations`
(id → offering, count, tags), `actions` (every action asked, in order) and the knobs.

In-process: `with Ec2Endpoint() as endpoint: ... endpoint.url ... endpoint.purchases`.
From another process: `python -m tests.support.aws_endpoint --port N [--state FILE]`
serves until killed; with `--state`, the store is loaded from FILE at start and written
to it after every change, so it survives the endpoint's restart and can be read without
HTTP.
"""

from __future__ import annotations

import argparse
import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
YEAR = 31_536_000


def _offering(offering_id: str, instance_type: str, kind: str, years: int) -> dict[str, Any]:
    fixed = {"No Upfront": 0, "Partial Upfront": 300 * years, "All Upfront": 600 * years}[kind]
    rate = {"No Upfront": 0.07, "Partial Upfront": 0.034, "All Upfront": 0.0}[kind]
    return {
        "reservedInstancesOfferingId": offering_id,
        "instanceType": instance_type,
        "productDescription": "Linux/UNIX",
        "instanceTenancy": "default",
        "offeringClass": "standard",
        "offeringType": kind,
        "duration": YEAR * years,
        "fixedPrice": fixed,
        "usagePrice": 0.0,
        "hourly": rate,
        "currencyCode": "USD",
        "scope": "Region",
    }


OFFERINGS: tuple[dict[str, Any], ...] = tuple(
    _offering(f"ri-offer-m5large-{years}y-{kind.split()[0].lower()}", "m5.large", kind, years)
    for years in (1, 3)
    for kind in ("No Upfront", "Partial Upfront", "All Upfront")
)


class Ec2Endpoint:
    """The endpoint and its store; `start()` serves it in a thread (see the module)."""

    def __init__(
        self,
        port: int = 0,
        state_file: Path | None = None,
        offerings: Sequence[Mapping[str, Any]] = OFFERINGS,
    ) -> None:
        self.lock = threading.Lock()
        self.offerings = [dict(o) for o in offerings]
        self.reservations: dict[str, dict[str, Any]] = {}
        self.purchases = 0
        self.actions: list[str] = []
        self.throttle = 0
        self.lose_purchase_responses = 0
        self.describe_error: str | None = None
        self.deny: set[str] = set()
        self.state_file = state_file
        if state_file is not None and state_file.exists():
            saved = json.loads(state_file.read_text())
            self.reservations, self.purchases = saved["reservations"], saved["purchases"]
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Ec2Endpoint:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Ec2Endpoint:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "purchases": self.purchases,
                "reservations": self.reservations,
                "actions": list(self.actions),
                "throttle": self.throttle,
                "lose_purchase_responses": self.lose_purchase_responses,
                "describe_error": self.describe_error,
                "deny": sorted(self.deny),
            }

    def set_knobs(self, knobs: Mapping[str, Any]) -> None:
        with self.lock:
            self.throttle = int(knobs.get("throttle", self.throttle))
            self.lose_purchase_responses = int(
                knobs.get("lose_purchase_responses", self.lose_purchase_responses)
            )
            self.describe_error = knobs.get("describe_error", self.describe_error)
            self.deny = set(knobs.get("deny", self.deny))

    def _save(self) -> None:
        if self.state_file is not None:
            temporary = self.state_file.with_suffix(".tmp")
            temporary.write_text(
                json.dumps({"purchases": self.purchases, "reservations": self.reservations})
            )
            temporary.replace(self.state_file)

    def answer(self, params: Mapping[str, str]) -> tuple[int, str]:
        """The HTTP status and XML body for one EC2 query request."""
        action = params.get("Action", "")
        with self.lock:
            self.actions.append(action)
            if self.throttle > 0:
                self.throttle -= 1
                return _error(503, "RequestLimitExceeded", "Request limit exceeded.")
            if action in self.deny:
                return _error(403, "UnauthorizedOperation", "You are not authorized.")
            handler = {
                "DescribeReservedInstancesOfferings": self._describe_offerings,
                "PurchaseReservedInstancesOffering": self._purchase,
                "CreateTags": self._create_tags,
                "DescribeReservedInstances": self._describe_reserved,
            }.get(action)
            if handler is None:
                return _error(400, "InvalidAction", f"{action} is not served here")
            return handler(action, params)

    def _describe_offerings(self, action: str, params: Mapping[str, str]) -> tuple[int, str]:
        ids = _listed(params, "ReservedInstancesOfferingId")
        wanted = {
            "instanceType": params.get("InstanceType"),
            "productDescription": params.get("ProductDescription"),
            "instanceTenancy": params.get("InstanceTenancy"),
            "offeringClass": params.get("OfferingClass"),
            "offeringType": params.get("OfferingType"),
        }
        low, high = int(params.get("MinDuration", 0)), int(params.get("MaxDuration", 10**12))
        found = [
            o
            for o in self.offerings
            if (not ids or o["reservedInstancesOfferingId"] in ids)
            and all(v is None or o[k] == v for k, v in wanted.items())
            and low <= o["duration"] <= high
        ]
        items = "".join(f"<item>{_offering_xml(o)}</item>" for o in found)
        return 200, _ok(
            action, f"<reservedInstancesOfferingsSet>{items}</reservedInstancesOfferingsSet>"
        )

    def _purchase(self, action: str, params: Mapping[str, str]) -> tuple[int, str]:
        offering_id = params.get("ReservedInstancesOfferingId", "")
        offering = next(
            (o for o in self.offerings if o["reservedInstancesOfferingId"] == offering_id), None
        )
        if offering is None:
            return _error(400, "InvalidReservedInstancesOfferingId", f"{offering_id} not found")
        if params.get("DryRun", "").lower() == "true":
            return _error(412, "DryRunOperation", "Request would have succeeded.")
        reservation = f"ri-{uuid.uuid4()}"
        self.reservations[reservation] = {
            "offering": offering_id,
            "count": int(params.get("InstanceCount", "1")),
            "tags": {},
        }
        self.purchases += 1
        self._save()
        if self.lose_purchase_responses > 0:
            self.lose_purchase_responses -= 1
            return _error(500, "InternalError", "An internal error has occurred.")
        return 200, _ok(action, f"<reservedInstancesId>{reservation}</reservedInstancesId>")

    def _create_tags(self, action: str, params: Mapping[str, str]) -> tuple[int, str]:
        resources = _listed(params, "ResourceId")
        unknown = [r for r in resources if r not in self.reservations]
        if unknown:
            return _error(400, "InvalidReservedInstancesId", f"{unknown[0]} does not exist")
        n = 1
        while f"Tag.{n}.Key" in params:
            for resource in resources:
                tags = self.reservations[resource]["tags"]
                tags[params[f"Tag.{n}.Key"]] = params.get(f"Tag.{n}.Value", "")
            n += 1
        self._save()
        return 200, _ok(action, "<return>true</return>")

    def _describe_reserved(self, action: str, params: Mapping[str, str]) -> tuple[int, str]:
        if self.describe_error:
            return _error(400, self.describe_error, "The lookup failed.")
        ids = _listed(params, "ReservedInstancesId")
        tag_filters: dict[str, list[str]] = {}
        n = 1
        while f"Filter.{n}.Name" in params:
            name = params[f"Filter.{n}.Name"]
            if name.startswith("tag:"):
                tag_filters[name[4:]] = _listed(params, f"Filter.{n}.Value")
            n += 1
        found = [
            (rid, r)
            for rid, r in self.reservations.items()
            if (not ids or rid in ids)
            and all(r["tags"].get(k) in values for k, values in tag_filters.items())
        ]
        items = "".join(_reservation_xml(rid, r, self.offerings) for rid, r in found)
        return 200, _ok(action, f"<reservedInstancesSet>{items}</reservedInstancesSet>")


def _listed(params: Mapping[str, str], prefix: str) -> list[str]:
    values, n = [], 1
    while f"{prefix}.{n}" in params:
        values.append(params[f"{prefix}.{n}"])
        n += 1
    return values


def _offering_xml(o: Mapping[str, Any]) -> str:
    fields = "".join(
        f"<{k}>{escape(str(o[k]))}</{k}>"
        for k in (
            "reservedInstancesOfferingId",
            "instanceType",
            "productDescription",
            "instanceTenancy",
            "offeringClass",
            "offeringType",
            "duration",
            "fixedPrice",
            "usagePrice",
            "currencyCode",
            "scope",
        )
    )
    charges = (
        f"<item><frequency>Hourly</frequency><amount>{o['hourly']}</amount></item>"
        if o["hourly"]
        else ""
    )
    return f"{fields}<marketplace>false</marketplace><recurringCharges>{charges}</recurringCharges>"


def _reservation_xml(rid: str, r: Mapping[str, Any], offerings: Sequence[Mapping[str, Any]]) -> str:
    offering = next((o for o in offerings if o["reservedInstancesOfferingId"] == r["offering"]), {})
    tags = "".join(
        f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>"
        for k, v in r["tags"].items()
    )
    return (
        f"<item><reservedInstancesId>{rid}</reservedInstancesId>"
        f"<instanceType>{offering.get('instanceType', '')}</instanceType>"
        f"<instanceCount>{r['count']}</instanceCount><state>active</state>"
        f"<tagSet>{tags}</tagSet></item>"
    )


def _ok(action: str, body: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><{action}Response xmlns="{NAMESPACE}">'
        f"<requestId>{uuid.uuid4()}</requestId>{body}</{action}Response>"
    )


def _error(status: int, code: str, message: str) -> tuple[int, str]:
    return status, (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{escape(message)}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    )


def _handler(endpoint: Ec2Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/_state":
                self._send(404, "text/plain", "only GET /_state")
                return
            self._send(200, "application/json", json.dumps(endpoint.state()))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if self.path == "/_knobs":
                endpoint.set_knobs(json.loads(body or "{}"))
                self._send(200, "application/json", json.dumps(endpoint.state()))
                return
            params = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
            status, xml = endpoint.answer(params)
            self._send(status, "text/xml", xml)

        def _send(self, status: int, content_type: str, text: str) -> None:
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="A local EC2 endpoint for tests")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state", type=Path, default=None)
    arguments = parser.parse_args()
    endpoint = Ec2Endpoint(port=arguments.port, state_file=arguments.state)
    print(endpoint.url, flush=True)
    try:
        endpoint.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.server.server_close()


if __name__ == "__main__":
    main()
