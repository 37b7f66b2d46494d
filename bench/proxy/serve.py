"""The emulator's Proxy alone, for the benchmark: one TCP-mode and one HTTP-mode service port over the
given endpoints, fed the same Service/Endpoints events the store would deliver. Runs until stdin closes
or SIGTERM.

    python bench/proxy/serve.py [--source TREE] [--flows] CLUSTER_IP TCP_PORT HTTP_PORT BACKEND_PORT BACKEND_IP...

`--source` imports the emulator from another checkout (a copy of the tree before a change, to compare
before and after in one run); `--flows` records flows and feeds the data-path counters, as `emulator serve`
does by default (without it: as `--no-flows`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any


def _event(resource: str, obj: dict[str, Any]) -> Any:
    import orjson

    from emulator.store.events import ADDED, Event

    return Event(ADDED, resource, "bench", obj["metadata"]["name"], 1, orjson.dumps(obj))


async def main(args: argparse.Namespace) -> None:
    from emulator.proxy import Proxy, ProxySettings

    flows = None
    if args.flows:
        from emulator.flows.log import FlowLog
        from emulator.observability.stats import DataPathStats

        flows = FlowLog(10_000, DataPathStats())
        flows.start(asyncio.get_running_loop())
    # (a tree from before flows were recorded has no `flows` setting: it is only ever run without, see run.py)
    proxy = Proxy(ProxySettings(gateway_port=None, **({"flows": flows} if flows is not None else {})))
    for name, port_name, port in (("bench-tcp", "tcp", args.tcp_port), ("bench-http", "http", args.http_port)):
        svc = {
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": args.ip,
                "ports": [{"name": port_name, "port": port, "targetPort": args.backend_port}],
            },
        }
        eps = {
            "metadata": {"name": name, "namespace": "bench"},
            "subsets": [
                {
                    "addresses": [{"ip": b} for b in args.backends],
                    "ports": [{"name": port_name, "port": args.backend_port}],
                }
            ],
        }
        proxy.apply(_event("services", svc))
        proxy.apply(_event("endpoints", eps))
    await proxy.start()
    if proxy.problems():
        raise SystemExit(str(proxy.problems()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 1):  # closed: the benchmark is done
            stop.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    await stop.wait()
    await proxy.close()
    if flows is not None:
        flows.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=str(Path(__file__).resolve().parents[2]))
    ap.add_argument("--flows", action="store_true")
    ap.add_argument("ip")
    ap.add_argument("tcp_port", type=int)
    ap.add_argument("http_port", type=int)
    ap.add_argument("backend_port", type=int)
    ap.add_argument("backends", nargs="+")
    parsed = ap.parse_args()
    sys.path.insert(0, str(Path(parsed.source).resolve()))
    import gc

    import uvloop

    # the collector as `emulator serve` sets it (where the tree has the setting)
    try:
        from emulator.cli.serve import GC_YOUNG_THRESHOLD

        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    except ImportError:
        pass

    uvloop.run(main(parsed))
