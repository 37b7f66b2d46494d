"""A tiny HTTP "container": answers every GET with `hello from <pod name>`, so you can see which pod served you.

Listens on the pod's address ($POD_IP, which `emulator run` sets) and `--port` (8000). Standard library only.
"""

from __future__ import annotations

import argparse
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    """`hello from echo-1 (127.244.0.5:8000)` for any path."""

    protocol_version = "HTTP/1.1"  # keep-alive, so the proxy's per-request balancing is visible on one connection

    def do_GET(self) -> None:
        host, port = self.server.server_address[:2]
        body = f"hello from {os.environ.get('POD_NAME', 'echo')} ({host}:{port})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    ThreadingHTTPServer((os.environ.get("POD_IP", "127.0.0.1"), args.port), Echo).serve_forever()


if __name__ == "__main__":
    main()
