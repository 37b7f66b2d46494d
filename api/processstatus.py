"""What the emulator process holds: memory, open files, threads, asyncio tasks and store listeners
(every watch is one), for checking that load goes away once its clients have.

    GET /emulator/v1/process

Kubernetes has no such API, hence the `/emulator/v1` prefix; with tokens required it is for the admin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from api.http import json_response

PATH = "/emulator/v1/process"


def routes(status: Callable[[], dict[str, Any]]) -> list[web.RouteDef]:
    async def get(request: web.Request) -> web.Response:
        return json_response(status())

    return [web.get(PATH, get)]
