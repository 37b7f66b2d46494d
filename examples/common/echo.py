"""A tiny HTTP "container": answers every GET with `hello from <pod name>`, so you can see which pod served you.

Listens on the pod's address ($POD_IP, which `emulator run` sets) and `--port` (8000). Standard library only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # examples/common: the HTTP plumbing
from textserver import TextHandler, serve  # noqa: E402


class Echo(TextHandler):
    """`hello from echo-1 (127.244.0.5:8000)` for any path."""

    def do_GET(self) -> None:
        host, port = self.server.server_address[:2]
        self.reply(200, f"hello from {os.environ.get('POD_NAME', 'echo')} ({host}:{port})\n")


def main() -> None:
    serve(Echo, 8000, __doc__)


if __name__ == "__main__":
    main()
