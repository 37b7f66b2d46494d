"""The API's connections: slow clients hold nothing for long, and protocol errors are Status answers too.

A connection must send each request head within HEADER_TIMEOUT.

aiohttp waits for a request head as long as bytes keep trickling in, so a thousand clients sending one
byte every few seconds would keep a thousand connections (and their buffers) forever. `HeadDeadline`
wraps aiohttp's protocol per connection: the clock starts when the connection opens, or with the first
byte of the next request after a response, and stops when the head is complete (its blank line); past
the deadline the connection is dropped. Idle keep-alive connections are aiohttp's to close
(keepalive_timeout), bodies are read with their own deadline (api/http.py `read_body`).

Watch requests that arrive while many watches are sending their first events (200 clients starting at once
on a big namespace) step aside for the other requests: `WatchStarts` holds a watch's request head until no
new one has come for a moment (never longer than START_MAX_WAIT), then lets them through a few per loop turn.
The event loop accepts one connection per turn, so without this a `kubectl get` connecting behind 200 such
watches would wait for every one of them to be served first (a few hundred milliseconds); with it, it is
answered as soon as it is read. Only the request's first line is looked at; nothing else changes.

Requests aiohttp cannot parse (a bad request line, a header over 8 KiB) never reach the application;
`StatusRequestHandler` answers them with a Kubernetes `Status` as well, instead of aiohttp's text.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from api.watch import Backlogs
from emulator import errors

HEADER_TIMEOUT = 10.0  # seconds from a request's first byte (or the connection) to the end of its head

BUSY_BACKLOGS = 4  # watch requests are held back only while this many watches are sending their first events
START_QUIET = 0.002  # seconds without a new watch request before the held ones start
START_MAX_WAIT = 0.1  # a held watch request starts after this long at the latest (a steady stream of them)
START_BATCH = 16  # held watch requests let through per loop turn
HEAD_LINE_MAX = 8192  # bytes of a request's first line kept to tell whether it is a watch (aiohttp's own limit)
# GET with watch=<true> (Go's ParseBool spellings): the request line is all it takes to tell
WATCH_REQUEST = re.compile(rb"GET [^ ?]*\?(?:[^ ]*&)?watch=(?:1|t|T|true|TRUE|True)(?:[& ]|\r?$)")

_guards: dict[asyncio.BaseTransport, HeadDeadline] = {}


class WatchStarts:
    """Watch requests held back while a burst of them arrives (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.held: deque[HeadDeadline] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.oldest = 0.0  # loop time the oldest held request arrived
        self.latest = 0.0  # and the newest
        self.releasing = False

    def hold(self, guard: HeadDeadline) -> None:
        self.latest = now = self.loop.time()
        if not self.held:
            self.oldest = now
        self.held.append(guard)
        if self.timer is None and not self.releasing:  # else the release under way takes it in turn
            self.timer = self.loop.call_at(now + START_QUIET, self._quiet)

    def _quiet(self) -> None:
        """Start the held requests once none came for START_QUIET (or the oldest waited START_MAX_WAIT)."""
        self.timer = None
        due = min(self.latest + START_QUIET, self.oldest + START_MAX_WAIT)
        if due > self.loop.time():
            self.timer = self.loop.call_at(due, self._quiet)
            return
        self._release()

    def _release(self) -> None:
        self.releasing = True
        for _ in range(min(START_BATCH, len(self.held))):
            self.held.popleft().release()
        if self.held:
            self.loop.call_soon(self._release)  # the next few on the next turn: other work goes in between
        else:
            self.releasing = False


class HeadDeadline(asyncio.Protocol):
    def __init__(
        self, inner: Any, loop: asyncio.AbstractEventLoop, timeout: float = HEADER_TIMEOUT, starts: WatchStarts | None = None
    ) -> None:
        self.inner = inner  # aiohttp's RequestHandler for this connection
        self.loop = loop
        self.timeout = timeout
        self.starts = starts
        self.transport: asyncio.BaseTransport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.waiting_head = True
        self.tail = b""
        self.line = b""  # the start of the request being read, up to its first line
        self.held: list[bytes] | None = None  # what arrived while its watch request waits in WatchStarts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        _guards[transport] = self
        self._arm()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.held is not None:
            self.held.append(data)
            return
        if self.waiting_head:
            if self.starts is not None and len(self.line) < HEAD_LINE_MAX and b"\n" not in self.line:
                self.line += data[:HEAD_LINE_MAX]
            seen = self.tail + data if self.tail else data
            if b"\r\n\r\n" in seen:
                self.waiting_head = False
                if self.timer is not None:
                    self._disarm()
                if (self.starts is not None and (Backlogs.sending >= BUSY_BACKLOGS or self.starts.held)
                        and WATCH_REQUEST.match(self.line.split(b"\n", 1)[0])):
                    self.line = b""
                    self.held = [data]
                    self.starts.hold(self)
                    return
                self.line = b""
            else:
                if self.timer is None:
                    # the first byte of the next request starts its clock (a head that arrives whole, in
                    # this first piece, needs none: the usual request costs no timer)
                    self._arm()
                self.tail = seen[-3:]
        self.inner.data_received(data)

    def release(self) -> None:
        """WatchStarts lets the held watch request through."""
        held, self.held = self.held or [], None
        if self.transport is None or self.transport.is_closing():
            return  # the client went away meanwhile
        for data in held:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.transport is not None:
            _guards.pop(self.transport, None)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def response_done(self) -> None:
        """The request was answered: the next head's clock starts with its first byte."""
        self.waiting_head = True
        self.tail = b""
        self.line = b""
        self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self.timer = self.loop.call_later(self.timeout, self._too_slow)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _too_slow(self) -> None:
        self.timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()  # type: ignore[attr-defined]


class StatusRequestHandler(RequestHandler):
    """aiohttp's protocol, answering what it cannot parse with a Status (and without a traceback)."""

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)  # a real fault: aiohttp logs it
        reasons = {400: "BadRequest", 408: "Timeout", 413: "RequestEntityTooLarge", 431: "RequestHeaderFieldsTooLarge"}
        detail = getattr(exc, "message", None) or message or str(exc or "")
        error = errors.StatusError(status, reasons.get(status, "BadRequest"), f"the request could not be read as HTTP: {detail}")
        response = web.Response(status=status, body=orjson.dumps(error.status()), content_type="application/json")
        response.force_close()
        return response


def response_done(request: web.Request) -> None:
    guard = _guards.get(request.transport) if request.transport is not None else None
    if guard is not None:
        guard.response_done()


async def serve(
    runner: web.AppRunner, sock: Any, ssl_context: Any, backlog: int = 1024
) -> asyncio.AbstractServer:
    """Serve `runner`'s application on the bound `sock`, every connection behind a HeadDeadline."""
    loop = asyncio.get_running_loop()
    server = runner.server
    assert server is not None, "the runner is not set up"
    # aiohttp's Server builds RequestHandler(server, loop, **its settings): the same, with our subclass
    settings = getattr(server, "_kwargs", None)

    starts = WatchStarts(loop)

    def protocol() -> HeadDeadline:
        inner = StatusRequestHandler(server, loop=loop, **settings) if settings is not None else server()
        return HeadDeadline(inner, loop, starts=starts)

    return await loop.create_server(protocol, sock=sock, ssl=ssl_context, backlog=backlog)
