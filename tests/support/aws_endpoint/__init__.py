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
- `DescribeReservedInstances`: the reservations in EC2's shape (type, platform, tenancy,
  class, offering type, duration, scope and zone, count, `start`, `state`, tags),
  filtered by ids, `OfferingClass`, `OfferingType` and the filters `instance-type`,
  `product-description`, `duration`, `scope`, `availability-zone`, `state`,
  `reserved-instances-id`, `tag-key` and `tag:<key>`; any other filter name is
  `InvalidParameterValue`, as EC2 answers it.

`add_reservation(...)` seeds a reservation (any start, state and tags), e.g. one bought
before a key was claimed.

Knobs (attributes, or `POST /_knobs` with a JSON object of them):
- `throttle`: answer the next N requests `RequestLimitExceeded` (HTTP 503);
- `lose_purchase_responses`: the next N purchases buy, then answer `InternalError` 500
  (the answer lost on the way back);
- `describe_error`: answer `DescribeReservedInstances` with this error code (HTTP 400, so
  botocore does not retry it; None: answer normally);
- `deny`: actions answered `UnauthorizedOperation` (HTTP 403);
- `hold` (an action name) and `hold_nth` (default 1): the `hold_nth`-th request of that
  action served from now on (not throttled or denied) is applied to the store, then its
  answer is held: the handler waits, without the store's lock, so other requests are
  served, until `release()` (or `POST /_knobs {"release": true}`) or `hold_seconds`
  (default `HOLD_SECONDS`) pass.
  `held` (a `threading.Event`, and `held` in the state) is set while it waits. One hold
  per setting; `stop()` releases it.

`GET /_state` answers JSON: `purchases` (how many purchases bought), `reservations`
(id → offering, count, tags, start, state), `actions` (every action asked, in order),
`held` and the knobs.

In-process: `with Ec2Endpoint() as endpoint: ... endpoint.url ... endpoint.purchases`.
From another process: `python -m tests.support.aws_endpoint --port N [--state FILE]`
serves until killed; with `--state`, the store is loaded from FILE at start and written
to it after every change, so it survives the endpoint's restart and can be read without
HTTP.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.support.aws_endpoint.wire import (
    FILTERS,
    OFFERINGS,
    RESERVATION_FIELDS,
    TYPED,
    error,
    iso,
    listed,
    matches,
    offering,
    offering_xml,
    ok,
    reservation_xml,
)

__all__ = ["HOLD_SECONDS", "OFFERINGS", "Ec2Endpoint", "offering"]

HOLD_SECONDS = 120.0


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
        self.hold: str | None = None
        self.hold_nth = 1
        self.hold_seconds = HOLD_SECONDS
        self._hold_seen = 0
        self.held = threading.Event()
        self._released = threading.Event()
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
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Ec2Endpoint:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def release(self) -> None:
        """Let a held answer (see `hold`) go out."""
        self._released.set()

    def add_reservation(
        self,
        offering_id: str,
        count: int = 1,
        *,
        start: datetime | None = None,
        state: str = "active",
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Seed a reservation of a served offering (bought now unless `start` says when);
        answers its id."""
        reservation = f"ri-{uuid.uuid4()}"
        with self.lock:
            self.reservations[reservation] = {
                "offering": offering_id,
                "count": count,
                "tags": dict(tags or {}),
                "start": iso(start or datetime.now(UTC)),
                "state": state,
            }
            self._save()
        return reservation

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "purchases": self.purchases,
                "reservations": self.reservations,
                "actions": list(self.actions),
                "held": self.held.is_set(),
                "hold": self.hold,
                "hold_nth": self.hold_nth,
                "hold_seconds": self.hold_seconds,
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
            if "hold" in knobs:
                self.hold, self._hold_seen = knobs["hold"], 0
                self.hold_nth = int(knobs.get("hold_nth", 1))
                self._released.clear()
            self.hold_seconds = float(knobs.get("hold_seconds", self.hold_seconds))
        if knobs.get("release"):
            self.release()

    def _save(self) -> None:
        if self.state_file is not None:
            temporary = self.state_file.with_suffix(".tmp")
            temporary.write_text(
                json.dumps({"purchases": self.purchases, "reservations": self.reservations})
            )
            temporary.replace(self.state_file)

    def answer(self, params: Mapping[str, str]) -> tuple[int, str]:
        """The HTTP status and XML body for one EC2 query request (held first when the
        `hold` knob picks it)."""
        action = params.get("Action", "")
        with self.lock:
            self.actions.append(action)
            if self.throttle > 0:
                self.throttle -= 1
                return error(503, "RequestLimitExceeded", "Request limit exceeded.")
            if action in self.deny:
                return error(403, "UnauthorizedOperation", "You are not authorized.")
            handler = {
                "DescribeReservedInstancesOfferings": self._describe_offerings,
                "PurchaseReservedInstancesOffering": self._purchase,
                "CreateTags": self._create_tags,
                "DescribeReservedInstances": self._describe_reserved,
            }.get(action)
            if handler is None:
                return error(400, "InvalidAction", f"{action} is not served here")
            answer = handler(action, params)
            hold = action == self.hold
            if hold:
                self._hold_seen += 1
                hold = self._hold_seen == self.hold_nth
                self.hold = None if hold else self.hold
        if hold:
            self.held.set()
            self._released.wait(self.hold_seconds)
            self.held.clear()
        return answer

    def _describe_offerings(self, action: str, params: Mapping[str, str]) -> tuple[int, str]:
        ids = listed(params, "ReservedInstancesOfferingId")
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
        items = "".join(f"<item>{offering_xml(o)}</item>" for o in found)
        return 200, ok(
            action, f"<reservedInstancesOfferingsSet>{items}</reservedInstancesOfferingsSet>"
        )

    def _purchase(self, action: str, params: Mapping[str, str]) -> tuple[int, str]:
        offering_id = params.get("ReservedInstancesOfferingId", "")
        offering = next(
            (o for o in self.offerings if o["reservedInstancesOfferingId"] == offering_id), None
        )
        if offering is None:
            return error(400, "InvalidReservedInstancesOfferingId", f"{offering_id} not found")
        if params.get("DryRun", "").lower() == "true":
            return error(412, "DryRunOperation", "Request would have succeeded.")
        reservation = f"ri-{uuid.uuid4()}"
        self.reservations[reservation] = {
            "offering": offering_id,
            "count": int(params.get("InstanceCount", "1")),
            "tags": {},
            "start": iso(datetime.now(UTC)),
            "state": "active",
        }
        self.purchases += 1
        self._save()
        if self.lose_purchase_responses > 0:
            self.lose_purchase_responses -= 1
            return error(500, "InternalError", "An internal error has occurred.")
        return 200, ok(action, f"<reservedInstancesId>{reservation}</reservedInstancesId>")

    def _create_tags(self, action: str, params: Mapping[str, str]) -> tuple[int, str]:
        resources = listed(params, "ResourceId")
        unknown = [r for r in resources if r not in self.reservations]
        if unknown:
            return error(400, "InvalidReservedInstancesId", f"{unknown[0]} does not exist")
        n = 1
        while f"Tag.{n}.Key" in params:
            for resource in resources:
                tags = self.reservations[resource]["tags"]
                tags[params[f"Tag.{n}.Key"]] = params.get(f"Tag.{n}.Value", "")
            n += 1
        self._save()
        return 200, ok(action, "<return>true</return>")

    def _describe_reserved(self, action: str, params: Mapping[str, str]) -> tuple[int, str]:
        if self.describe_error:
            return error(400, self.describe_error, "The lookup failed.")
        ids = listed(params, "ReservedInstancesId")
        filters: dict[str, list[str]] = {}
        n = 1
        while f"Filter.{n}.Name" in params:
            name = params[f"Filter.{n}.Name"]
            if name not in FILTERS and name != "tag-key" and not name.startswith("tag:"):
                return error(400, "InvalidParameterValue", f"The filter '{name}' is invalid")
            filters[name] = listed(params, f"Filter.{n}.Value")
            n += 1
        typed = {k: params[v] for k, v in TYPED.items() if v in params}
        found = [
            shown
            for shown in (self._shown(rid, r) for rid, r in self.reservations.items())
            if (not ids or shown["reservedInstancesId"] in ids)
            and all(shown[k] == v for k, v in typed.items())
            and all(matches(shown, name, values) for name, values in filters.items())
        ]
        items = "".join(reservation_xml(shown) for shown in found)
        return 200, ok(action, f"<reservedInstancesSet>{items}</reservedInstancesSet>")

    def _shown(self, rid: str, r: Mapping[str, Any]) -> dict[str, Any]:
        """A reservation as EC2 describes it (its offering's fields and its own)."""
        o = next(
            (o for o in self.offerings if o["reservedInstancesOfferingId"] == r["offering"]), {}
        )
        return {
            **{k: o.get(k) for k in RESERVATION_FIELDS},
            "reservedInstancesId": rid,
            "instanceCount": r["count"],
            "start": r.get("start") or "1970-01-01T00:00:00.000Z",
            "state": r.get("state", "active"),
            "tags": r["tags"],
        }


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
            try:
                self.wfile.write(payload)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller is gone (a worker killed while its answer was held)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
