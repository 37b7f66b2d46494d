"""The ambassador pattern's app: counts visits in a database it believes is on localhost.

GET / increments the key `visits` with `INCR visits` sent to $POD_IP:6379 — the ambassador in the same
pod, the pod's "localhost" — and answers `visits: N`. It knows nothing of services or where the
database runs. Listens on $POD_IP and `--port` (8000). Standard library only.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # examples/common: the HTTP plumbing
from textserver import TextHandler, pod_address, serve  # noqa: E402

LOCALHOST = pod_address()  # in a pod this would be 127.0.0.1; here each pod has its own
DATABASE_PORT = 6379


def database(command: str) -> str:
    """Send one command to the database (through the ambassador) and return its reply line."""
    with socket.create_connection((LOCALHOST, DATABASE_PORT), timeout=5) as conn:
        conn.sendall(command.encode() + b"\n")
        reply = conn.makefile("rb").readline()
    return reply.decode().strip()


class Visits(TextHandler):
    def do_GET(self) -> None:
        try:
            reply = database("INCR visits")
            status, body = (
                (200, f"visits: {reply[1:]}\n") if reply.startswith(":") else (502, f"database said {reply}\n")
            )
        except OSError as exc:
            status, body = 502, f"no database on localhost:{DATABASE_PORT}: {exc}\n"
        self.reply(status, body)


def main() -> None:
    serve(Visits, 8000, __doc__)


if __name__ == "__main__":
    main()
