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
`StatusRequestHandler` answers them with a Kubernetes `Status` as well, instead of aiohttp's text. When the
API speaks HTTPS, `HttpsOnly` answers a plain-HTTP request (an http:// URL given to kubectl or curl) with a
Status that names the URL and kubeconfig to use, where TLS alone would drop the connection ("EOF").
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from api.watch import Backlogs
from emulator import errors
from emulator.security import tls

log = logging.getLogger(__name__)

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
    runner: web.AppRunner, sock: Any, ssl_context: Any, kubeconfig: Path | None = None, backlog: int = 1024
) -> asyncio.AbstractServer:
    """Serve `runner`'s application on the bound `sock`, every connection behind a HeadDeadline. With
    `ssl_context`, in HTTPS: `kubeconfig` (the one written for it) is named to clients that ask in plain HTTP."""
    loop = asyncio.get_running_loop()
    server = runner.server
    assert server is not None, "the runner is not set up"
    # aiohttp's Server builds RequestHandler(server, loop, **its settings): the same, with our subclass
    settings = getattr(server, "_kwargs", None)

    starts = WatchStarts(loop)

    def protocol() -> HeadDeadline:
        inner = StatusRequestHandler(server, loop=loop, **settings) if settings is not None else server()
        return HeadDeadline(inner, loop, starts=starts)

    if ssl_context is not None:
        listener = HttpsOnly(loop, sock, protocol, ssl_context, kubeconfig)
        sock.listen(backlog)
        listener.start()
        return listener
    return await loop.create_server(protocol, sock=sock, backlog=backlog)


# -- the HTTPS port, asked in plain HTTP --------------------------------------------------------------

TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello
PLAIN_HEAD_MAX = 8192  # bytes of a plain request read before its answer (its head, or what fits)


def plain_http_answer(host: str, port: int, kubeconfig: Path | None) -> bytes:
    """What a plain-HTTP request to the HTTPS API gets: a 400 whose Status says how to reach it (kubectl
    prints "Error from server (BadRequest): ..." instead of "Unable to connect to the server: EOF")."""
    where = f"KUBECONFIG={kubeconfig}" if kubeconfig is not None else "KUBECONFIG=<data-dir>/kubeconfig"
    message = (
        f"the API on {host}:{port} {tls.SPEAKS_HTTPS}: use https://{host}:{port} with the kubeconfig "
        f"the emulator wrote for it ({where}, or `emulator kubeconfig --from-data-dir --write`)"
    )
    body = orjson.dumps(errors.StatusError(400, "BadRequest", message).status())
    head = f"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


class _PlainAnswer(asyncio.Protocol):
    """Reads a plain request's head (bounded), answers it with `answer`, closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.seen = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.seen = (self.seen + data)[-PLAIN_HEAD_MAX:]
        if self.transport is not None and (b"\r\n\r\n" in self.seen or b"\n\n" in self.seen or len(self.seen) >= PLAIN_HEAD_MAX):
            self.transport.write(self.answer)
            self.transport.close()
            self.transport = None


class HttpsOnly(asyncio.AbstractServer):
    """The API's listener when it speaks HTTPS. Each connection's first byte is looked at before anything is
    read (MSG_PEEK): a TLS handshake goes on to TLS and the API's protocol as usual; anything else is a
    client that was given an http:// URL for this port, and gets `plain_http_answer` in plain HTTP (a closed
    connection would tell it nothing; Go's servers answer the same case with a 400 too). A connection that
    sends nothing is dropped after HEADER_TIMEOUT, as a slow request head is."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: Any, protocol: Any, ssl_context: Any, kubeconfig: Path | None) -> None:
        self.loop = loop
        self.sock = sock
        self.protocol = protocol
        self.ssl_context = ssl_context
        host, port = sock.getsockname()[:2]
        self.answer = plain_http_answer(host if ":" not in host else f"[{host}]", port, kubeconfig)
        self._accepting: asyncio.Task[None] | None = None
        self._routing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.sock.setblocking(False)
        self._accepting = self.loop.create_task(self._accept(), name="api-https-accept")

    async def _accept(self) -> None:
        while True:
            try:
                conn, _ = await self.loop.sock_accept(self.sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:  # out of descriptors, a connection reset before it was taken: go on
                log.debug("accept failed: %r", exc)
                await asyncio.sleep(0.05)
                continue
            task = self.loop.create_task(self._route(conn))
            self._routing.add(task)
            task.add_done_callback(self._routing.discard)

    async def _route(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        readable: asyncio.Future[None] = self.loop.create_future()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        self.loop.add_reader(conn.fileno(), ready)
        try:
            await asyncio.wait_for(readable, HEADER_TIMEOUT)
            first = conn.recv(1, socket.MSG_PEEK)
        except (TimeoutError, OSError):
            first = b""
        except asyncio.CancelledError:  # the listener closes
            self.loop.remove_reader(conn.fileno())
            conn.close()
            raise
        finally:
            if conn.fileno() != -1:
                self.loop.remove_reader(conn.fileno())
        if not first:  # closed, reset or silent: nothing to answer
            conn.close()
            return
        try:
            if first[0] == TLS_HANDSHAKE:
                await self.loop.connect_accepted_socket(self.protocol, conn, ssl=self.ssl_context)
            else:
                await self.loop.connect_accepted_socket(lambda: _PlainAnswer(self.answer), conn)
        except (TimeoutError, OSError) as exc:  # a failed handshake: the client's to retry
            log.debug("connection dropped before it was served: %r", exc)
            conn.close()

    def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            self._accepting = None
        for task in list(self._routing):
            task.cancel()
        self.sock.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def is_serving(self) -> bool:
        return self._accepting is not None

    async def start_serving(self) -> None:  # (asyncio.AbstractServer's interface: it serves from start())
        if self._accepting is None:
            self.start()

    async def serve_forever(self) -> None:
        await self.start_serving()
        await asyncio.Event().wait()

    async def wait_closed(self) -> None:
        if self._routing:
            await asyncio.gather(*self._routing, return_exceptions=True)
