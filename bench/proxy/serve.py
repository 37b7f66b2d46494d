"""The emulator's Proxy alone, for the benchmark: one TCP-mode and one HTTP-mode service port over the
given endpoints, fed the same Service/Endpoints events the store would deliver. Runs until stdin closes
or SIGTERM.

    python bench/proxy/serve.py CLUSTER_IP TCP_PORT HTTP_PORT BACKEND_PORT BACKEND_IP...
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from emulator.proxy import Proxy, ProxySettings  # noqa: E402
from emulator.store.events import ADDED, Event  # noqa: E402


def _event(resource: str, obj: dict) -> Event:
    return Event(ADDED, resource, "bench", obj["metadata"]["name"], 1, orjson.dumps(obj))


async def main(ip: str, tcp_port: int, http_port: int, backend_port: int, backends: list[str]) -> None:
    proxy = Proxy(ProxySettings(gateway_port=None))
    for name, port_name, port in (("bench-tcp", "tcp", tcp_port), ("bench-http", "http", http_port)):
        svc = {
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": ip,
                "ports": [{"name": port_name, "port": port, "targetPort": backend_port}],
            },
        }
        eps = {
            "metadata": {"name": name, "namespace": "bench"},
            "subsets": [
                {"addresses": [{"ip": b} for b in backends], "ports": [{"name": port_name, "port": backend_port}]}
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
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(1) or stop.set())
    await stop.wait()
    await proxy.close()


if __name__ == "__main__":
    import uvloop

    a = sys.argv[1:]
    uvloop.run(main(a[0], int(a[1]), int(a[2]), int(a[3]), a[4:]))
