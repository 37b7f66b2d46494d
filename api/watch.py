"""Watch streams: a watch's events (emulator/registry/watch.py) as newline-delimited JSON.

Without a selector and without Tables, the stored JSON is spliced into the line undecoded; a 410
Expired start is sent as an ERROR event, as the API server does; bookmarks every 30 s when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from aiohttp import web

from emulator import errors
from emulator.observability.metrics import WATCH_EVENTS_SENT
from emulator.registry.watch import Watch
from emulator.store.events import Event

BOOKMARK_INTERVAL = 30.0
WRITE_TIMEOUT = 5.0  # a watcher that does not read for this long is cut off (it re-lists), as the API server does
PIECE = 64 * 1024  # the first events go out in pieces of about this size, never as one buffer
# Watches that start together (200 clients at once on a 5,000-pod namespace) take turns building their
# first events: at most this many at a time, so every other request waits behind a few pieces, not 200.
BUILDERS = asyncio.Semaphore(4)


class Backlogs:
    """How many watches are sending their first events right now (api/connections.py holds new watch
    requests back while many are: see `WatchStarts`)."""

    sending = 0


SEND_BUFFER = 64 * 1024  # bytes the kernel may hold for one watch connection (it would grow to megabytes)


def _bound_send_buffer(request: web.Request) -> None:
    """A watch is a long stream: a client that stops reading would otherwise have the kernel buffer
    megabytes for it (autotuned), each copied by the event loop before the write timeout notices."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


class SlowWatcher(Exception):
    """The client stopped reading: what it has not read would pile up in memory."""

Render = Callable[[str, dict[str, Any]], dict[str, Any]]  # (event type, object) -> what the line carries


class WatchStream:
    def __init__(self, watch: Watch, render: Render | None, bookmarks: bool, timeout: int | None) -> None:
        self.watch = watch
        self.rt = watch.rt
        self.render = render  # e.g. a one-row Table for kubectl get -w; None = the object itself
        self.bookmarks = bookmarks
        self.timeout = timeout

    def line(self, event: Event) -> bytes | None:
        seen = self.watch.classify(event)
        if seen is None:
            return None
        kind, obj = seen
        WATCH_EVENTS_SENT[event.resource] += 1  # a plain int, read by /metrics
        if self.render is None:
            return b'{"type":"' + kind.encode() + b'","object":' + event.raw + b"}\n"
        return self.encode(kind, self.render(kind, obj if obj is not None else orjson.loads(event.raw)))

    @staticmethod
    def encode(kind: str, obj: dict[str, Any]) -> bytes:
        return orjson.dumps({"type": kind, "object": obj}) + b"\n"

    def bookmark(self) -> bytes:
        rv = self.watch.bookmark_rv()
        obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": {"resourceVersion": str(rv)}}
        return self.encode("BOOKMARK", obj)

    async def serve(self, request: web.Request, since: str) -> web.StreamResponse:
        _bound_send_buffer(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        try:
            try:
                async with BUILDERS:  # a burst of new watches takes turns here too (each reads a snapshot)
                    backlog = await self.watch.open(since)
            except errors.StatusError as exc:
                if exc.code != 410:
                    raise
                response.enable_chunked_encoding()
                await response.prepare(request)
                await response.write(self.encode("ERROR", exc.status()))
                return response
            response.enable_chunked_encoding()
            Backlogs.sending += 1
            try:
                await response.prepare(request)
                events = iter(backlog)
                while True:
                    async with BUILDERS:
                        data = self._piece(events)
                    if not data:
                        break
                    await self._write(response, data)
                    await asyncio.sleep(0)  # a turn for the others
            finally:
                Backlogs.sending -= 1
            if self.bookmarks:
                await self._write(response, self.bookmark())
            await self._follow(response)
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response
        except ConnectionError:
            return response  # the client went away (kubectl get -w ended with Ctrl-C)
        except SlowWatcher:
            if request.transport is not None:
                request.transport.abort()  # what it did not read is dropped with the connection
            return response
        finally:
            self.watch.close()

    def _piece(self, events: Iterator[Event]) -> bytes:
        """The next lines of the first events, about PIECE bytes of them (b"" when there are no more)."""
        lines: list[bytes] = []
        size = 0
        for event in events:
            line = self.line(event)
            if line:
                lines.append(line)
                size += len(line)
                if size >= PIECE:
                    break
        return b"".join(lines)

    async def _write(self, response: web.StreamResponse, data: bytes) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await response.write(data)
        except TimeoutError:
            raise SlowWatcher from None

    async def _follow(self, response: web.StreamResponse) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout if self.timeout else None
        while not self.watch.overflowed:  # too far behind: the stream ends and the client re-lists
            wait = BOOKMARK_INTERVAL if self.bookmarks else None
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    return
                wait = min(wait, left) if wait else left
            event = await self.watch.next(wait)
            if event is None:
                if self.bookmarks:
                    await self._write(response, self.bookmark())
                continue
            line = self.line(event)
            if line:
                await self._write(response, line)
