"""The HTTP plumbing the example containers share, so each script keeps only what it does.

- `QuietLog`: no log line per request (the stdlib's handlers write one to stderr for each);
- `TextHandler`: a keep-alive request handler with `reply(status, body)`, which sends a text body with
  its Content-Type and Content-Length;
- `serve(handler, default_port, doc=__doc__)`: parses `--port` and serves on the pod's address ($POD_IP,
  which `emulator run` sets and the kubelet examples' manifests declare) until the process is stopped.

The scripts find this module by putting examples/common on `sys.path` (see any of them).
Standard library only.
"""

from __future__ import annotations

import argparse
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def pod_address() -> str:
    """The pod's own address: on one machine it plays the part of the pod's `localhost` too."""
    return os.environ.get("POD_IP", "127.0.0.1")


class QuietLog:
    """Mixed into a request handler: requests are not logged."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass


class TextHandler(QuietLog, BaseHTTPRequestHandler):
    """A request handler that answers with `self.reply(status, body)`; subclasses write `do_GET`."""

    protocol_version = "HTTP/1.1"  # keep-alive, so the proxy's per-request balancing is visible on one connection
    content_type = "text/plain; charset=utf-8"

    def reply(self, status: int, body: str, content_type: str | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type or self.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler: type[BaseHTTPRequestHandler], default_port: int, doc: str = "", host: str = "") -> None:
    """Parse `--port` (the first line of `doc` is the `--help` description) and serve `handler` for ever."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args()
    ThreadingHTTPServer((host or pod_address(), args.port), handler).serve_forever()
