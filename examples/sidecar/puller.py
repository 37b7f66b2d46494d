"""The sidecar pattern's content puller: copies pages from the `origin` service into the shared volume.

Every `--interval` seconds (2) it fetches each page from the service `origin` — found the way a
container finds it, through the kubelet's variables ORIGIN_SERVICE_HOST / ORIGIN_SERVICE_PORT — and,
when the page changed, writes it into `--dir` (the volume it shares with the web server) atomically,
so the web server never serves half a file. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request


def pull(base: str, page: str, into: str) -> bool:
    """Fetch one page; True when the copy in `into` changed."""
    with urllib.request.urlopen(f"{base}/{page}", timeout=5) as response:
        body = response.read()
    target = os.path.join(into, page)
    try:
        with open(target, "rb") as current:
            if current.read() == body:
                return False
    except FileNotFoundError:
        pass
    partial = target + ".part"
    with open(partial, "wb") as out:
        out.write(body)
    os.replace(partial, target)  # atomic: readers see the old page or the new one
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the shared volume to write the pages into")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--page", action="append", default=[], help="page to copy (repeatable) [index.html]")
    args = parser.parse_args()
    pages = args.page or ["index.html"]
    into = args.dir
    try:
        base = f"http://{os.environ['ORIGIN_SERVICE_HOST']}:{os.environ['ORIGIN_SERVICE_PORT']}"
    except KeyError:
        sys.exit("puller: no ORIGIN_SERVICE_HOST: the service `origin` did not exist when this container started")
    while True:
        for page in pages:
            try:
                if pull(base, page, into):
                    print(f"puller: pulled {page} from {base}", flush=True)
            except (OSError, urllib.error.URLError) as exc:
                print(f"puller: cannot fetch {page} from {base}: {exc}", flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
