"""The baseline the emulator's pod creates are measured against: the least an aiohttp POST handler can do.

It reads the JSON body, parses it with orjson and answers 201 with a JSON object about the size of a
created pod (~1.3 KB), under uvloop like the emulator. No validation, no store, no logging: whatever
the emulator does beyond this is its own cost.

    python bench/api/bare.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import orjson
import uvloop
from aiohttp import web

# Stands in for what the emulator adds to a pod on create (defaults, status, conditions).
_CONDITIONS = [
    {"type": kind, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    for kind in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "PodScheduled", "Ready")
]


async def create(request: web.Request) -> web.Response:
    obj = orjson.loads(await request.read())
    metadata = obj.setdefault("metadata", {})
    metadata.update(namespace="default", uid="00000000-0000-0000-0000-000000000000",
                    creationTimestamp="2026-01-01T00:00:00Z", resourceVersion="1")
    obj["spec"].update(restartPolicy="Always", serviceAccountName="default", serviceAccount="default",
                       enableServiceLinks=True, nodeName="emulator")
    obj["status"] = {
        "phase": "Running", "conditions": _CONDITIONS, "startTime": "2026-01-01T00:00:00Z",
        "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "qosClass": "BestEffort",
        "podIP": "127.244.0.1", "podIPs": [{"ip": "127.244.0.1"}],
    }
    response = web.Response(body=orjson.dumps(obj), status=201)
    response.headers["Content-Type"] = "application/json"
    return response


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_post("/{path:.+}", create)
    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(serve(int(sys.argv[1])))
