"""The API's connections: slow clients hold nothing for long, and protocol errors are Status answers too.

A connection must send each request head within HEADER_TIMEOUT.

aiohttp waits for a request head as long as bytes keep trickling in, so a thousand clients sending one
byte every few seconds would keep a thousand connections (and their buffers) forever. `HeadDeadline`
wraps aiohttp's protocol per connection: the clock starts when the connection opens, or with the first
byte of the next request after a response, and stops when the head is complete (its blank line); past
the deadline the connection is dropped. Idle keep-alive connections are aiohttp's to close
(keepalive_timeout), bodies are read with their own deadline (api/http.py `read_body`).

Requests aiohttp cannot parse (a bad request line, a header over 8 KiB) never reach the application;
`StatusRequestHandler` answers them with a Kubernetes `Status` as well, instead of aiohttp's text.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from emulator import errors

HEADER_TIMEOUT = 10.0  # seconds from a request's first byte (or the connection) to the end of its head

_guards: dict[asyncio.BaseTransport, HeadDeadline] = {}


class HeadDeadline(asyncio.Protocol):
    def __init__(self, inner: Any, loop: asyncio.AbstractEventLoop, timeout: float = HEADER_TIMEOUT) -> None:
        self.inner = inner  # aiohttp's RequestHandler for this connection
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.BaseTransport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.waiting_head = True
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        _guards[transport] = self
        self._arm()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.waiting_head:
            if self.timer is None:
                self._arm()  # the first byte of the next request starts its clock
            seen = self.tail + data
            if b"\r\n\r\n" in seen:
                self.waiting_head = False
                self._disarm()
            else:
                self.tail = seen[-3:]
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

    def protocol() -> HeadDeadline:
        inner = StatusRequestHandler(server, loop=loop, **settings) if settings is not None else server()
        return HeadDeadline(inner, loop)

    return await loop.create_server(protocol, sock=sock, ssl=ssl_context, backlog=backlog)
