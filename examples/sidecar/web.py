"""The sidecar pattern's web server: serves the files of a directory over HTTP, like an nginx container.

`--dir` is the directory to serve: in pod `site` the emptyDir volume it shares with the content
puller, in pod `origin` the checkout's examples/sidecar/content. Listens on $POD_IP and `--port`
(8000). Standard library only.
"""

from __future__ import annotations

import argparse
import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # examples/common: the HTTP plumbing
from textserver import QuietLog, pod_address  # noqa: E402


class QuietFiles(QuietLog, SimpleHTTPRequestHandler):
    """Static files, without a log line per request."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".", help="directory to serve [.]")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    handler = functools.partial(QuietFiles, directory=args.dir)
    address = (pod_address(), args.port)
    print(f"web: serving {args.dir} on http://{address[0]}:{address[1]}/", flush=True)
    ThreadingHTTPServer(address, handler).serve_forever()


if __name__ == "__main__":
    main()
