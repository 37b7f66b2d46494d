"""The adapter pattern's app: a service that reports its statistics in a format of its own.

GET /orders answers a small JSON list; GET /fail answers 500 (to have errors to count); GET /stats
answers one line in the app's private format, which no monitoring system understands:

    STATS requests=12 errors=1 uptime=34.2s in_flight=0

Listens on $POD_IP and `--port` (8000). Standard library only.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # examples/common: the HTTP plumbing
from textserver import TextHandler, serve  # noqa: E402

STARTED = time.monotonic()
counters = {"requests": 0, "errors": 0, "in_flight": 0}
lock = threading.Lock()


def stats_line() -> str:
    """The app's own format: `STATS key=value ...`, uptime with an `s` suffix."""
    with lock:
        requests, errors, in_flight = counters["requests"], counters["errors"], counters["in_flight"]
    return f"STATS requests={requests} errors={errors} uptime={time.monotonic() - STARTED:.1f}s in_flight={in_flight}\n"


class Orders(TextHandler):
    def do_GET(self) -> None:
        if self.path == "/stats":  # monitoring traffic is not counted
            self.reply(200, stats_line(), "text/plain")
            return
        with lock:
            counters["requests"] += 1
            counters["in_flight"] += 1
        try:
            if self.path == "/fail":
                with lock:
                    counters["errors"] += 1
                self.reply(500, '{"error": "out of stock"}\n', "application/json")
            else:
                self.reply(200, '[{"id": 1, "item": "teapot"}]\n', "application/json")
        finally:
            with lock:
                counters["in_flight"] -= 1


def main() -> None:
    serve(Orders, 8000, __doc__)


if __name__ == "__main__":
    main()
