"""The ambassador pattern's app: counts visits in a database it believes is on localhost.

GET / increments the key `visits` with `INCR visits` sent to $POD_IP:6379 — the ambassador in the same
pod, the pod's "localhost" — and answers `visits: N`. It knows nothing of services or where the
database runs. Listens on $POD_IP and `--port` (8000). Standard library only.
"""

from __future__ import annotations

import argparse
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCALHOST = os.environ.get("POD_IP", "127.0.0.1")  # in a pod this would be 127.0.0.1; here each pod has its own
DATABASE_PORT = 6379


def database(command: str) -> str:
    """Send one command to the database (through the ambassador) and return its reply line."""
    with socket.create_connection((LOCALHOST, DATABASE_PORT), timeout=5) as conn:
        conn.sendall(command.encode() + b"\n")
        reply = conn.makefile("rb").readline()
    return reply.decode().strip()


class Visits(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        try:
            reply = database("INCR visits")
            status, body = (
                (200, f"visits: {reply[1:]}\n") if reply.startswith(":") else (502, f"database said {reply}\n")
            )
        except OSError as exc:
            status, body = 502, f"no database on localhost:{DATABASE_PORT}: {exc}\n"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    ThreadingHTTPServer((LOCALHOST, args.port), Visits).serve_forever()


if __name__ == "__main__":
    main()
