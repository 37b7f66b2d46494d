"""The adapter pattern's adapter: turns the app's private statistics into Prometheus metrics.

GET /metrics reads the app's `/stats` line from the same pod ($POD_IP:8000, the pod's localhost
here) and answers it in the Prometheus text exposition format, labelled with the pod's name:

    # HELP app_requests_total Requests served by the app.
    # TYPE app_requests_total counter
    app_requests_total{pod="orders-6d9c7b8f5-x2x7q"} 12

The app is not changed: the adapter alone knows both formats. Listens on $POD_IP and `--port` (9102).
Standard library only.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # examples/common: the HTTP plumbing
from textserver import TextHandler, pod_address, serve  # noqa: E402

LOCALHOST = pod_address()
APP_PORT = 8000

# the app's key → (metric name, type, help, how to read the value)
METRICS = {
    "requests": ("app_requests_total", "counter", "Requests served by the app.", int),
    "errors": ("app_errors_total", "counter", "Requests that failed.", int),
    "uptime": ("app_uptime_seconds", "gauge", "Seconds since the app started.", lambda v: float(v.rstrip("s"))),
    "in_flight": ("app_requests_in_flight", "gauge", "Requests being served right now.", int),
}


def parse_stats(line: str) -> dict[str, str]:
    """`STATS requests=12 errors=1 uptime=34.2s` → {"requests": "12", ...}."""
    words = line.split()
    if not words or words[0] != "STATS":
        raise ValueError(f"not a stats line: {line!r}")
    return dict(word.split("=", 1) for word in words[1:] if "=" in word)


def to_prometheus(stats: dict[str, str], pod: str) -> str:
    """The normalised form: HELP, TYPE and one sample per known key; unknown keys are left out."""
    lines: list[str] = []
    for key, (name, kind, help_text, read) in METRICS.items():
        if key not in stats:
            continue
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f'{name}{{pod="{pod}"}} {read(stats[key])}']
    return "\n".join(lines) + "\n"


class Metrics(TextHandler):
    content_type = "text/plain; version=0.0.4; charset=utf-8"  # the Prometheus text format

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.reply(404, "only /metrics here\n")
            return
        try:
            with urllib.request.urlopen(f"http://{LOCALHOST}:{APP_PORT}/stats", timeout=5) as response:
                stats = parse_stats(response.read().decode())
            self.reply(200, to_prometheus(stats, os.environ.get("POD_NAME", "")))
        except (OSError, ValueError) as exc:
            self.reply(502, f"cannot read the app's stats: {exc}\n")


def main() -> None:
    serve(Metrics, 9102, __doc__)


if __name__ == "__main__":
    main()
