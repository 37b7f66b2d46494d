"""Shared pieces of the gateway tests (Ingress, HTTPRoute, TLS): real HTTP backends in threads that say who
they are and what they got, services that lead to them (a Service without selector and its Endpoints,
applied with kubectl), a raw keep-alive client, and an emulator with its HTTPS port on a free port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Emulator, start_emulator
from tests.integration.kubectl_support import Kubectl
from tests.integration.test_proxy_support import free_port, loopback_ip


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and the body go in two writes: no 40 ms delayed-ACK stall
    server: Backend

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        seen = {
            "backend": self.server.name,
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host"),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode(errors="replace"),
        }
        self.server.seen.append(seen)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while data := self.connection.recv(65536):
                self.connection.sendall(b"echo:" + data)
            self.close_connection = True
            return
        out = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Backend", self.server.name)
        self.send_header("X-Remove-Me", "yes")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _read_chunked(self) -> bytes:
        out = b""
        while True:
            size = int(self.rfile.readline().strip(), 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer


class Backend(ThreadingHTTPServer):
    """An HTTP/1.1 server on a loopback address of its own that answers with what it saw (JSON)."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.ip = loopback_ip("127.93")
        self.port = free_port(self.ip)
        self.seen: list[dict[str, Any]] = []
        super().__init__((self.ip, self.port), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def running_backends() -> Iterator[Callable[[str], Backend]]:
    """For a test module's `backends` fixture: starts backends by name, stops them after the test."""
    started: list[Backend] = []

    def start(name: str) -> Backend:
        backend = Backend(name)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


def service_yaml(name: str, ns: str, backend: Backend, port: int = 80, port_name: str = "http") -> str:
    """A Service without selector and the Endpoints that lead it to `backend`."""
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  ports: [{{name: {port_name}, port: {port}, targetPort: {backend.port}}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: {name}, namespace: {ns}}}
subsets:
- addresses: [{{ip: {backend.ip}}}]
  ports: [{{name: {port_name}, port: {backend.port}}}]
"""


def apply(kubectl: Kubectl, text: str) -> None:
    kubectl.run("apply", "-f", "-", stdin=text)


def gateway_emulator(data_dir: Path) -> Emulator:
    return start_emulator(data_dir, "--gateway-https-port", "0")


def https_port(emu: Emulator) -> int:
    return int(emu.faces["gateway-https"].rsplit(":", 1)[1])


def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """`check()` once it returns something true (an assertion, or a connection, failing until the deadline fails)."""
    deadline = time.monotonic() + timeout
    result: Any = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, OSError, httpx.TransportError):  # not yet; a port not bound yet
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {result!r}")
        time.sleep(interval)


def get(emu: Emulator, host: str, path: str = "/", **kwargs: Any) -> httpx.Response:
    headers = {"Host": host, **kwargs.pop("headers", {})}
    return httpx.request(
        kwargs.pop("method", "GET"), f"http://127.0.0.1:{emu.gateway_port}{path}", headers=headers, timeout=5, **kwargs
    )


def backend_of(response: httpx.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.text)
    return str(response.json()["backend"])


def wait_routed(emu: Emulator, host: str, path: str = "/", backend: str | None = None) -> httpx.Response:
    """The gateway answers `host` + `path` from a backend (`backend`, when given): routing follows the
    store within moments of an apply."""

    def check() -> httpx.Response | None:
        response = get(emu, host, path)
        if response.status_code == 200 and (backend is None or response.json()["backend"] == backend):
            return response
        return None

    response: httpx.Response = eventually(check)
    return response


def raw_connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)
