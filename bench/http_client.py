"""API clients as a script or a browser uses the JSON API: a keep-alive connection and a
cookie jar each, signed in once with `POST /api/auth/login`, then sending the CSRF token
it answered with every state-changing call. Their CPU counts as the benchmark's own.
"""

from __future__ import annotations

import http.client
import json
from http.cookies import SimpleCookie
from typing import Any

from bench import BenchError


class Client:
    """One API client: its own connection and cookie jar."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.csrf:
            headers["X-CSRFToken"] = self.csrf
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for key, morsel in jar.items():
                if morsel.value:
                    self.cookies[key] = morsel.value
                else:
                    self.cookies.pop(key, None)
        if response.will_close:
            self.conn.close()
        return response.status, payload

    def login(self, email: str, password: str) -> None:
        status, payload = self.call(
            "POST", "/api/auth/login", {"email": email, "password": password}
        )
        if status != 200:
            raise BenchError(f"login answered {status}: {payload[:300]!r}")
        self.csrf = json.loads(payload)["csrf_token"]

    def close(self) -> None:
        self.conn.close()


def signed_in_clients(port: int, email: str, password: str, count: int) -> list[Client]:
    clients = [Client(port) for _ in range(count)]
    for client in clients:
        client.login(email, password)
    return clients
