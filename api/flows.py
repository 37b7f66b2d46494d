"""Flows: every DNS query, proxied connection, UDP flow and HTTP request the emulator saw, with its verdict.

    GET /emulator/v1/flows?namespace=&pod=&service=&verdict=&kind=&since=&sinceTime=&limit=
    GET /emulator/v1/flows?watch=1&...

The list is `{"kind": "FlowList", "items": [...], "lastId": N}`, the newest `limit` matching flows, oldest
first. With `watch=1` the answer is newline-delimited JSON, one `{"type": "FLOW", "flow": {...}}` per line,
each flushed at once: the matching backlog (after `since`, at most `limit`), then live flows until the
client goes away. A watcher that stops reading is cut off, as the API's own watches are. The flow's shape
and the filters: emulator/flows/ and docs/observing.md. Kubernetes has no such API, hence the
`/emulator/v1` prefix; without flows (`serve --no-flows`) the path is 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

import orjson
from aiohttp import web

from api.http import json_response
from api.watch import WRITE_TIMEOUT, SlowWatcher, _bound_send_buffer
from emulator import errors
from emulator.flows import filters
from emulator.flows.log import API_PATH, FlowLog
from emulator.flows.reader import FlowReader

PATH = API_PATH
KEEPALIVE = 30.0  # seconds without a flow before an empty line tells proxies the stream is alive


def routes(log: FlowLog | None, reader: FlowReader) -> list[web.RouteDef]:
    if log is None:
        return []
    return [web.get(PATH, Flows(log, reader).get)]


class Flows:
    def __init__(self, log: FlowLog, reader: FlowReader) -> None:
        self.log = log
        self.reader = reader

    async def get(self, request: web.Request) -> web.StreamResponse:
        try:
            wanted = filters.parse(request.query)
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from None
        offset = self.log.wall_offset()
        render = functools.partial(_render, self.reader, offset)
        if request.query.get("watch") in ("1", "true"):
            return await self._watch(request, wanted)
        backlog = self.log.since(wanted.since)
        items = filters.select(backlog, wanted, render, offset)
        return json_response({
            "kind": "FlowList", "apiVersion": "emulator/v1",
            "lastId": self.log.next_id - 1, "bufferSize": self.log.size, "items": items,
        })

    async def _watch(self, request: web.Request, wanted: filters.FlowFilter) -> web.StreamResponse:
        _bound_send_buffer(request)
        watcher = self.log.watch()  # before the backlog is read: nothing falls between the two
        try:
            response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            offset = self.log.wall_offset()
            backlog = self.log.since(wanted.since)
            last = backlog[-1][0] if backlog else wanted.since
            render = functools.partial(_render, self.reader, offset)
            await _write(response, _lines(filters.select(backlog, wanted, render, offset)))
            while not watcher.overflowed:
                batch = await watcher.next(KEEPALIVE)
                if watcher.overflowed:
                    break  # it fell too far behind: the stream ends, the client starts again with ?since=
                if not batch:
                    await _write(response, b"\n")
                    continue
                batch = [numbered for numbered in batch if numbered[0] > last]
                if batch:
                    last = batch[-1][0]
                    render = functools.partial(_render, self.reader, self.log.wall_offset())
                    await _write(response, _lines(filters.live(batch, wanted, render)))
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response
        except ConnectionError:
            return response
        except SlowWatcher:
            if request.transport is not None:
                request.transport.abort()
            return response
        finally:
            self.log.unwatch(watcher)


def _render(reader: FlowReader, offset: float, numbered: tuple[int, tuple[object, ...]]) -> dict[str, object]:
    return reader.render(numbered, offset)


def _lines(flows: list[dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps({"type": "FLOW", "flow": flow}) + b"\n" for flow in flows)


async def _write(response: web.StreamResponse, data: bytes) -> None:
    if not data:
        return
    try:
        async with asyncio.timeout(WRITE_TIMEOUT):
            await response.write(data)
    except TimeoutError:
        raise SlowWatcher from None
