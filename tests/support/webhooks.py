"""HTTP endpoints on loopback for the notification channels' tests.

- `WebhookReceiver`: a tiny `http.server` in a thread that records every POST and
  answers with the status it is told (503 while "down").
- `InterceptingProxy`: an HTTPS proxy on loopback that terminates the CONNECT tunnel
  with a self-signed certificate and records the request inside, so a test sees what
  Apprise sends to Slack or Teams without the internet (the channel's URL carries
  Apprise's own `verify=no`; the worker finds the proxy through HTTPS_PROXY).
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    host: str = ""


class WebhookReceiver:
    """Records each POST; answers `status` (200 when up, 503 while down)."""

    def __init__(self, port: int = 0) -> None:
        self.status = 200
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.status
                receiver.received.append(Received(self.path, dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accepted(self) -> list[Received]:
        return [request for request in self.received if 200 <= request.answered < 300]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key (any host: the client does not verify)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intercepted.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "proxy.crt", folder / "proxy.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class InterceptingProxy:
    """An HTTPS proxy that answers every tunnelled request itself with `status`/`reply`
    and records it (with the host the client tunnelled to)."""

    def __init__(self, folder: Path, *, status: int = 200, reply: bytes = b"ok") -> None:
        self.received: list[Received] = []
        self.status, self.reply = status, reply
        cert, key = self_signed(folder)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            request = _read_head(client)
            host = request.split(b" ")[1].decode() if request.startswith(b"CONNECT") else ""
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with self.tls.wrap_socket(client, server_side=True) as tls:
                head = _read_head(tls)
                lines = head.decode("latin-1").split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                length = int(headers.get("Content-Length", headers.get("content-length", "0")))
                body = b""
                while len(body) < length:
                    body += tls.recv(length - len(body))
                self.received.append(
                    Received(lines[0].split(" ")[1], headers, body, self.status, host)
                )
                tls.sendall(
                    f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(self.reply)}\r\n"
                    "Connection: close\r\n\r\n".encode()
                    + self.reply
                )

    def __enter__(self) -> InterceptingProxy:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.listener.close()


def _read_head(stream: Any) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = stream.recv(1)
        if not chunk:
            break
        data += chunk
    return data
