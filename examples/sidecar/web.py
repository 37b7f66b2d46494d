"""The sidecar pattern's web server: serves the files of a directory over HTTP, like an nginx container.

`--dir` defaults to $SHARED_DIR, the volume it shares with the content puller (examples/common/pod.py
creates it); listens on $POD_IP and `--port` (8000). Standard library only.
"""

from __future__ import annotations

import argparse
import functools
import os
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class QuietFiles(SimpleHTTPRequestHandler):
    """Static files, without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.environ.get("SHARED_DIR", "."), help="directory to serve [$SHARED_DIR]")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    handler = functools.partial(QuietFiles, directory=args.dir)
    address = (os.environ.get("POD_IP", "127.0.0.1"), args.port)
    print(f"web: serving {args.dir} on http://{address[0]}:{address[1]}/", flush=True)
    ThreadingHTTPServer(address, handler).serve_forever()


if __name__ == "__main__":
    main()
