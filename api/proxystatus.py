"""What the service proxy listens on and what it could not bind, for people asking "why does port 80
not answer?".

    GET /emulator/v1/proxy

`{"kind": "ProxyStatus", "listening": [{address, port, protocol, service, servicePort, mode}, ...],
"problems": [{address, port, protocol, for, reason, message, fix}, ...]}`. A listener that cannot bind
(a port below 1024 without the right to bind it, a port another process holds) is a problem with the
fix spelled out; the rest of the proxy keeps working and failed binds are retried. Kubernetes has no
such API, hence the `/emulator/v1` prefix. Without a proxy (`--no-proxy`) the lists are empty.
"""

from __future__ import annotations

from aiohttp import web

from api.http import json_response
from emulator.proxy.server import Proxy

PATH = "/emulator/v1/proxy"


def routes(proxy: Proxy | None) -> list[web.RouteDef]:
    async def status(request: web.Request) -> web.Response:
        return json_response({
            "kind": "ProxyStatus",
            "apiVersion": "emulator/v1",
            "enabled": proxy is not None,
            "listening": proxy.listening() if proxy else [],
            "problems": proxy.problems() if proxy else [],
        })

    return [web.get(PATH, status)]
