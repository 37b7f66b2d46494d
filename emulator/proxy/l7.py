"""HTTP mode: every request balanced on its own, over pooled keep-alive connections to the endpoints.

The client side is an asyncio Protocol fed to httptools' request parser (the shape of uvicorn's
httptools protocol); the endpoint side forwards response bytes to the client untouched and parses them
only to learn where each response ends, so that its connection can go back to the pool. Requests are
rewritten only in their head (X-Forwarded-*, hop-by-hop headers); bodies stream through, re-chunked when
the client sent them chunked. Pipelined requests are queued and answered in order. A request that
cannot be served is answered here: 503 naming the service when it has no ready endpoints, 502 when none
accepted the connection, 403 when a network policy denies it, 404 on the gateway for an unknown Host,
504 when the endpoint stays silent.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httptools

from emulator.flows.log import SERVICE_KEYS

from .balancer import Backend
from .context import ProxyContext
from .l4 import _why, splice
from .table import Route

log = logging.getLogger("emulator.proxy")

_CRLF = b"\r\n"
# Headers that describe one hop, not the message; the proxy writes its own where needed.
_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer", b"upgrade")
)
_SPECIAL = _HOP | {b"host", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"content-length"}
_BUFFER_LIMIT = 1 << 20  # bytes of request body held for a request not yet connected, before pausing the client
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_RESPONSE_HEAD_LIMIT = 1 << 16  # a response head held for rewriting (gateway response filters) up to this


class _Buffer:
    """Where a request's bytes go until its endpoint connection is ready."""

    __slots__ = ("chunks", "size", "client", "paused")

    def __init__(self, head: bytes, client: Any) -> None:
        self.chunks = [head]
        self.size = len(head)
        self.client = client
        self.paused = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > _BUFFER_LIMIT and not self.paused:
            self.paused = True
            self.client.pause_reading()


# What a connection's parser becomes once the connection is gone: a parser holds its protocol, and its
# protocol holds it; replacing it lets the connection be freed at once instead of by the cyclic collector.
_SPENT_REQUEST_PARSER = httptools.HttpRequestParser(object())
_SPENT_RESPONSE_PARSER = httptools.HttpResponseParser(object())


class _Discard:
    """Where the body of a request answered by the proxy itself goes."""

    __slots__ = ()

    def write(self, data: bytes) -> None:
        pass


_DISCARD = _Discard()


class _Request:
    __slots__ = (
        "method",
        "head",
        "host",
        "keep_alive",
        "chunked",
        "has_body",
        "upgrade",
        "complete",
        "out",
        "conn",
        "route",
        "local",
        "retried",
        "started",
        "source",
        "path",
    )

    def __init__(self) -> None:
        self.method = b""
        self.head = b""
        self.host = b""
        self.keep_alive = True
        self.chunked = False
        self.has_body = False
        self.upgrade = False
        self.complete = False
        self.out: Any = None  # _Buffer, the endpoint transport, or _DISCARD
        self.conn: HttpUpstream | None = None
        self.route: Route | None = None
        self.local: bytes | None = None  # a response the proxy writes itself
        self.retried = False
        self.started = -1.0  # loop time it was first sent (for its flow record); -1: never sent
        self.source: str | None = None  # what routed it on the gateway ("ingress ns/name"), for its flow record
        self.path = b""  # the request target as the client sent it, for its flow record


def local_response(status: int, message: str, keep_alive: bool, head_only: bool = False) -> bytes:
    """A response written by the proxy itself. To a HEAD request: the same head (Content-Length
    included, as RFC 9110 allows), no body."""
    body = message.encode() + b"\n"
    reason = HTTPStatus(status).phrase.encode()
    head = b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % (
        status,
        reason,
        len(body),
    )
    if not keep_alive:
        head += b"Connection: close\r\n"
    return head + _CRLF if head_only else head + _CRLF + body


class HttpClient(asyncio.Protocol):
    """One client connection in HTTP mode. On a service listener each request takes the route the
    `binding` holds at that moment (a keep-alive connection outlives service changes). The gateway's
    connections are `gateway.GatewayClient`, this class with the routing by Host (binding None)."""

    # Slots: every attribute is read or written per request, and an instance dict past 30 keys loses
    # CPython 3.11's fast attribute access.
    __slots__ = (
        "ctx",
        "binding",
        "transport",
        "parser",
        "client_ip",
        "activity",
        "seen",
        "deadline",
        "closed",
        "eof",
        "upgrading",
        "current",
        "queue",
        "connecting",
        "req",
        "_url",
        "_headers",
        "_host",
        "_xff",
        "_fwd",
        "_chunked",
        "_clen",
        "_upgrade",
        "_connection",
        "_rare",
        "waiting",
        "held",
        "_ip_bytes",
        "_xff_line",
        "dst",
        "__dict__",  # what subclasses (the gateway's connections) keep besides
    )

    def __init__(self, ctx: ProxyContext, binding: Any) -> None:
        self.ctx = ctx
        self.binding = binding  # listeners.Binding: `.route` is swapped in place when the service changes
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.client_ip = ""
        self.activity = 0
        self.seen = 0
        self.deadline = 0.0
        self.closed = False
        self.eof = False
        self.upgrading = False
        self.current: _Request | None = None  # the request in flight (its response is being written)
        self.queue: deque[_Request] = deque()  # pipelined requests waiting for their turn
        self.connecting: asyncio.Task[None] | None = None
        # The request being parsed:
        self.req: _Request | None = None
        self._url = b""
        self._headers: list[bytes] = []
        self._host = b""
        self._xff = b""
        self._fwd = 0  # bit 1: client sent X-Forwarded-Host, bit 2: X-Forwarded-Proto
        self._chunked = False
        self._clen = False
        self._upgrade = b""
        self._connection = False  # the request carries a Connection header
        self._rare = False  # a header other than Host that the proxy reads was seen (there is more to reset)
        self.waiting = False  # idle on keep-alive: the next bytes start a request head (and its deadline)
        self.held: _Request | None = None  # sent, its head held until the end of this read (body coalesced)
        self._ip_bytes = b""
        self._xff_line = b""  # "X-Forwarded-For: <client>\r\n", for requests that bring none
        self.dst: Any = None  # the address the client reached, looked up for the first flow record

    # -- client transport ---------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self._ip_bytes = ip = self.client_ip.encode()
        self._xff_line = b"X-Forwarded-For: " + ip + _CRLF
        ctx = self.ctx
        ctx.live.add(self)
        self.deadline = ctx.now + ctx.header_after

    def data_received(self, data: bytes) -> None:
        self.activity += 1
        if self.waiting:
            # The first bytes of a request after an idle keep-alive: its head must come within header_timeout.
            self.waiting = False
            if self.current is None:
                self.deadline = self.ctx.now + self.ctx.header_after
        if self.upgrading:
            # Waiting for the endpoint's answer to an Upgrade: what the client sends now is not HTTP,
            # and belongs to the upgrading request's endpoint only.
            current = self.current
            if current is not None and current.upgrade:
                current.out.write(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrading = True
            if self.queue:
                # The upgrade is pipelined behind a response still in flight: its tunnel bytes would
                # reach the earlier request's endpoint. It is refused in its turn, then the connection ends.
                self._refuse(self.queue[-1], 400, "an Upgrade request must not be pipelined behind another request")
                return
            tail = data[exc.args[0] :]
            current = self.current
            if tail and current is not None and current.upgrade:
                current.out.write(tail)
        except httptools.HttpParserError as exc:
            self._bad_request(exc, data)
        finally:
            if self.held is not None:  # (also after an upgrade pipelined behind a request with a body)
                self._release()

    def _release(self) -> None:
        """Write the held request: its head and what of its body came in the same read, in one write."""
        req, self.held = self.held, None
        assert req is not None
        buffered, conn = req.out, req.conn
        if conn is not None and isinstance(buffered, _Buffer):
            req.out = transport = conn.transport
            chunks = buffered.chunks
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def eof_received(self) -> bool:
        # HTTP clients do not half-close to say "that was my request": a FIN means the client is
        # gone, so the exchange in flight is abandoned (nginx's "client closed request"). The transport
        # closes itself and connection_lost releases the endpoint connection.
        self.eof = True
        return False

    def pause_writing(self) -> None:
        req = self.current
        if req is not None and req.conn is not None:
            req.conn.paused = True
            req.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        req = self.current
        if req is not None and req.conn is not None:
            req.conn.paused = False
            req.conn.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.live.discard(self)
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        req = self.current
        if req is not None and req.conn is not None and req.conn.client is self:
            # The response may be half written: that connection cannot serve anyone else.
            req.conn.client = None
            req.conn.transport.close()
        self.current = None
        self.queue.clear()
        self.parser = _SPENT_REQUEST_PARSER  # the parser holds this object: no cycle left for the collector

    def on_deadline(self, now: float) -> None:
        req = self.current
        if req is None:
            # A request head that did not arrive in time, or a keep-alive connection left idle.
            self.transport.close()
            return
        if self.activity != self.seen:
            self.seen = self.activity
            self.deadline = now + self.ctx.settings.idle_timeout
            return
        conn = req.conn
        if conn is not None and not conn.got_bytes and req.route is not None:
            message = f"endpoint {conn.backend[0]}:{conn.backend[1]} of service {_name(req.route)} did not answer within {self.ctx.settings.idle_timeout:.0f}s"
            log.info("%s from %s: 504 %s", req.method.decode(), self.client_ip, message)
            self.transport.write(local_response(504, message, False, req.method == b"HEAD"))
        self.transport.close()

    def shutdown(self) -> None:
        req = self.current
        if req is not None and req.conn is not None:
            req.conn.transport.abort()
        if self.transport is not None:
            self.transport.abort()

    # -- httptools callbacks (request being parsed) -------------------------------------------------
    #
    # No on_message_begin here (a Python call per request): what a request's head leaves behind is reset
    # once the head is read (on_headers_complete), the header deadline set by data_received. A subclass
    # that keeps more state per request (the gateway) defines on_message_begin and calls _begin_message.

    def _begin_message(self) -> None:
        self._url = b""
        self._headers = []
        self._host = b""
        self._reset_rare()
        if self.current is None:
            self.deadline = self.ctx.now + self.ctx.header_after

    def _reset_rare(self) -> None:
        self._xff = b""
        self._fwd = 0
        self._chunked = False
        self._clen = False
        self._upgrade = b""
        self._connection = False
        self._rare = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname not in _SPECIAL:
            self._headers += (name, b": ", value, _CRLF)
        elif lname == b"host":
            self._host = value
        else:
            self._rare = True
            self._special_header(lname, name, value)

    def _special_header(self, lname: bytes, name: bytes, value: bytes) -> None:
        if lname == b"x-forwarded-for":
            self._xff = value + b", "
        elif lname == b"content-length":
            self._clen = value.strip() != b"0"
            self._headers += (name, b": ", value, _CRLF)
        elif lname == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()
        elif lname == b"upgrade":
            self._upgrade = value
        elif lname == b"x-forwarded-host":
            self._fwd |= 1
            self._headers += (name, b": ", value, _CRLF)
        elif lname == b"x-forwarded-proto":
            self._fwd |= 2
            self._headers += (name, b": ", value, _CRLF)
        elif lname == b"connection":
            self._connection = True  # (dropped: hop-by-hop)
        # else: hop-by-hop, dropped

    def on_headers_complete(self) -> None:
        parser = self.parser
        req = _Request()
        req.method = method = parser.get_method()
        req.keep_alive = keep_alive = parser.should_keep_alive()
        req.host = host = self._host
        req.path = self._url
        if self._chunked or self._clen:
            req.chunked = chunked = self._chunked
            req.has_body = True
        else:
            chunked = False
        # The client's own version goes upstream: an HTTP/1.0 client cannot read a chunked response,
        # and an endpoint asked in 1.0 does not send one (it delimits the body by length or by closing).
        # Without a Connection header, only 1.0 does not keep the connection: the version is read (a
        # string made by the parser) only when there is one.
        http10 = parser.get_http_version() == "1.0" if self._connection else not keep_alive
        version = b" HTTP/1.0\r\nHost: " if http10 else b" HTTP/1.1\r\nHost: "
        parts = [method, b" ", self._url, version, host or b"localhost", _CRLF]
        parts += self._headers
        if http10 and keep_alive:
            parts.append(b"Connection: keep-alive\r\n")  # 1.0 keeps a connection only when asked to
        parts.append(b"X-Forwarded-For: " + self._xff + self._ip_bytes + _CRLF if self._xff else self._xff_line)
        fwd = self._fwd
        if not fwd & 1 and host:
            parts += (b"X-Forwarded-Host: ", host, _CRLF)
        if chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        if self._upgrade and parser.should_upgrade():
            req.upgrade = True
            parts += (b"Connection: Upgrade\r\nUpgrade: ", self._upgrade, _CRLF)
        parts.append(_CRLF if fwd & 2 else b"X-Forwarded-Proto: http\r\n\r\n")
        req.head = b"".join(parts)
        # read: ready for the next request's head
        self._url = b""
        self._headers = []
        self._host = b""
        if self._rare:
            self._reset_rare()
        self.req = req
        if self.current is None:
            self._dispatch(req)
        else:
            req.out = _Buffer(req.head, self.transport)
            self.queue.append(req)

    def on_body(self, body: bytes) -> None:
        req = self.req
        if req is None:
            return
        if req.chunked:
            req.out.write(b"".join((b"%x\r\n" % len(body), body, _CRLF)))
        else:
            req.out.write(body)

    def on_message_complete(self) -> None:
        req = self.req
        if req is None:
            return
        self.req = None
        req.complete = True
        if req.chunked:
            req.out.write(b"0\r\n\r\n")
        if req.local is not None and req is self.current:
            self._write_local(req)

    # -- dispatch -----------------------------------------------------------------------------------

    def _refuse(self, req: _Request, status: int, message: str) -> None:
        """Answer a queued request from the proxy when its turn comes, and close after it."""
        log.info("%s from %s: %d %s", req.method.decode(), self.client_ip, status, message)
        req.keep_alive = False
        req.local = local_response(status, message, False, req.method == b"HEAD")
        req.out = _DISCARD

    def _dispatch(self, req: _Request) -> None:
        if req.local is not None:  # refused while it was queued
            self.current = req
            self._write_local(req)
            return
        self.current = req
        ctx = self.ctx
        self.deadline = ctx.now + ctx.exchange_after
        self.seen = self.activity
        req.route = route = self.binding.route
        balancer = route.balancer
        # The loop's clock is read only for what needs it: affinity pins, and the flow's duration.
        now = ctx.loop.time() if ctx.record is not None or balancer.affinity_timeout else 0.0
        # The common case inline: the next endpoint, allowed, with an idle pooled connection.
        backend = balancer.pick(self.client_ip, now)
        allowed = False
        if backend is not None:
            policy = ctx.policy
            if policy is None or policy.check(self.client_ip, backend[0], backend[1], "TCP")[0]:
                idle = ctx.pool.idle.get(backend)
                if idle:
                    req.started = now
                    self._attach(req, idle.pop())
                    return
                allowed = True
        self._send(req, route, [], [], now, backend, allowed)

    def _send(
        self,
        req: _Request,
        route: Route,
        tried: list[Backend],
        failures: list[str],
        now: float,
        backend: Backend | None = None,
        allowed: bool = False,
    ) -> None:
        """Send `req` to an endpoint of `route` (`backend` when the caller has picked it already; `allowed`
        when it has also asked the policy hook about it)."""
        ctx = self.ctx
        if req.started < 0:
            req.started = now
        if backend is None:
            backend = route.balancer.pick(self.client_ip, now, tried)
        if backend is None or len(tried) >= ctx.settings.connect_attempts:
            if failures:
                self._reply(
                    req, 502, f"no endpoint of service {_name(route)} accepted the connection ({'; '.join(failures)})"
                )
            else:
                self._reply(req, 503, f"no endpoints available for service {_name(route)} (port {route.port})")
            return
        if self.binding is None and (backend in ctx.settings.protected or ("*", backend[1]) in ctx.settings.protected):
            # the gateway may listen beyond loopback: it never becomes a road to the emulator's API
            self._reply(req, 403, f"the gateway does not forward to the emulator's own API (service {_name(route)})")
            return
        if ctx.policy is not None and not allowed:
            reason = ctx.refusal("request", self.client_ip, backend, "TCP", route.label)
            if reason is not None:
                self._reply(req, 403, f"denied by network policy: {reason}")
                return
        conn = ctx.pool.take(backend)
        if conn is not None:
            self._attach(req, conn)
        else:
            if req.out is None:
                req.out = _Buffer(req.head, self.transport)
            self.connecting = ctx.loop.create_task(self._connect(req, route, backend, tried, failures))

    async def _connect(
        self, req: _Request, route: Route, backend: Backend, tried: list[Backend], failures: list[str]
    ) -> None:
        ctx = self.ctx
        try:
            async with asyncio.timeout(ctx.settings.connect_timeout):
                _, conn = await ctx.loop.create_connection(lambda: HttpUpstream(ctx, backend), backend[0], backend[1])
        except (OSError, TimeoutError) as exc:
            self.connecting = None
            tried.append(backend)
            failures.append(f"{backend[0]}:{backend[1]}: {_why(exc)}")
            if not self.closed:
                self._send(req, route, tried, failures, ctx.loop.time())
            return
        self.connecting = None
        if self.closed or self.current is not req:
            conn.transport.close()
            return
        conn.reused = False
        self._attach(req, conn)

    def _attach(self, req: _Request, conn: HttpUpstream) -> None:
        """Send `req` on `conn`: its head (or what was buffered while it waited), then its body as it
        comes. A request that is not kept alive gets a response that says `Connection: close`."""
        req.conn = conn
        conn.client = self
        if not req.keep_alive and not req.upgrade and conn.head_filter is None:
            conn.head_filter = say_close  # (the gateway sets its own filter, which says it too)
            conn._held = b""
        if req.method == b"HEAD":
            conn.expect_head()
        buffered = req.out
        if buffered is None:  # sent as its head is read (inside data_received)
            if req.has_body and not req.upgrade:
                # its body (or part of it) follows in the same read: held until the end of it, one write
                req.out = _Buffer(req.head, self.transport)
                self.held = req
                return
            req.out = conn.transport
            conn.transport.write(req.head)
            return
        req.out = transport = conn.transport
        chunks = buffered.chunks
        transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if buffered.paused:
            self.transport.resume_reading()

    def _reply(self, req: _Request, status: int, message: str) -> None:
        """Answer `req` from the proxy itself, once its body has been read (and dropped)."""
        if status >= 500 or status == 404:
            log.info(
                "%s %s from %s: %d %s", req.method.decode(), req.host.decode("latin-1"), self.client_ip, status, message
            )
        req.local = local_response(status, message, req.keep_alive, req.method == b"HEAD")
        if isinstance(req.out, _Buffer) and req.out.paused:
            self.transport.resume_reading()
        req.out = _DISCARD
        if req.complete:
            self._write_local(req)

    def _write_local(self, req: _Request) -> None:
        assert req.local is not None
        self.transport.write(req.local)
        self._done(req)

    # -- responses ----------------------------------------------------------------------------------

    def response_done(self, conn: HttpUpstream, reusable: bool) -> None:
        """The endpoint finished the response to the request in flight."""
        req = self.current
        conn.client = None
        if req is None:
            conn.transport.close()
            return
        if reusable and req.complete and not conn.closed:
            if conn.paused:
                conn.paused = False
                conn.transport.resume_reading()
            conn.reused = True
            ctx = self.ctx
            idle = ctx.pool.idle.get(conn.backend)
            if idle is not None and len(idle) < ctx.pool.max_idle:
                conn.idle_since = ctx.now
                idle.append(conn)  # BackendPool.put, inline
            else:
                ctx.pool.put(conn, ctx.now)
        else:
            conn.transport.close()
        self._done(req)

    def _done(self, req: _Request) -> None:
        self.current = None
        if self.ctx.record is not None:
            self._record(req)
        if self.closed:
            return
        if not req.complete or not req.keep_alive or req.upgrade:
            # Not complete: the endpoint answered before the body was in; the rest of it would be read
            # as the next request, so this connection ends here.
            self.transport.close()
            return
        if self.queue:
            self._dispatch(self.queue.popleft())
            return
        if self.eof:
            self.transport.close()
            return
        self.deadline = self.ctx.now + self.ctx.keepalive_after
        self.waiting = True

    def _record(self, req: _Request) -> None:
        """The request's flow (emulator/flows/): one tuple; the proxy's own answers say their verdict."""
        ctx, local, conn, record = self.ctx, req.local, req.conn, self.ctx.record
        if record is None:
            return
        dst = self.dst
        if dst is None:  # the bound address (no getsockname), or the gateway's own socket
            binding = self.binding
            dst = self.dst = binding.key[:2] if binding is not None else self.transport.get_extra_info("sockname")
        now = ctx.loop.time()
        if local is None and conn is not None:  # the endpoint answered (it was sent): nothing more to decide
            record((now, "http", self.client_ip, dst, SERVICE_KEYS[req.route], conn.backend, "allowed", None, -1, -1,
                    now - req.started, req.method, req.host, req.path, conn.status, req.source))
            return
        verdict, reason = "allowed", None
        if local is not None:
            status = int(local[9:12])
            if status >= 400:
                reason = local[local.find(b"\r\n\r\n") + 4 :].strip().decode("utf-8", "replace") or None
                verdict = "denied" if status == 403 and reason and reason.startswith("denied by network policy") else "error"
        else:
            status = conn.status if conn is not None else 0
        record((now, "http", self.client_ip, dst, SERVICE_KEYS[req.route],  # a label: no object kept
                    conn.backend if conn is not None else None, verdict, reason, -1, -1,
                    now - req.started if req.started >= 0 else 0.0, req.method, req.host, req.path, status, req.source))

    def backend_lost(self, conn: HttpUpstream) -> None:
        req = self.current
        if req is None or req.conn is not conn:
            return
        req.conn = None
        route = req.route
        if not conn.got_bytes and route is not None:
            if conn.reused and not req.has_body and not req.retried:
                # A pooled connection the endpoint closed just as we used it (its keep-alive timeout):
                # the request never arrived, so sending it again on a fresh connection is safe.
                req.retried = True
                req.out = _Buffer(req.head, self.transport)
                self.connecting = self.ctx.loop.create_task(self._connect(req, route, conn.backend, [], []))
                return
            self._reply(
                req,
                502,
                f"endpoint {conn.backend[0]}:{conn.backend[1]} of service {_name(route)} closed the connection without answering",
            )
            return
        # A response cut short or delimited by the connection's end: the client learns it the same way.
        self.current = None
        self.transport.close()

    def tunnel(self, conn: HttpUpstream) -> None:
        """The endpoint switched protocols (101): from here on this is a TCP-mode pair."""
        self.current = None
        self.ctx.live.discard(self)
        conn.client = None
        splice(self.ctx, self.transport, conn.transport, self.client_ip)

    def _bad_request(self, exc: Exception, data: bytes = b"") -> None:
        if isinstance(exc, httptools.HttpParserCallbackError):
            log.error(
                "HTTP proxy failed on a request from %s", self.client_ip, exc_info=exc.__context__ or exc
            )  # our bug, not theirs
        else:
            log.info("bad HTTP request from %s: %s", self.client_ip, exc)
        if self.current is None:
            self.transport.write(local_response(400, f"bad request: {exc}", False))
        self.transport.close()


class HttpUpstream(asyncio.Protocol):
    """A keep-alive connection to one endpoint, serving one client request at a time."""

    def __init__(self, ctx: ProxyContext, backend: Backend) -> None:
        self.ctx = ctx
        self.backend = backend
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.client: HttpClient | None = None
        self.idle_since = 0.0
        self.reused = True  # cleared by the connect path for a fresh connection
        self.got_bytes = False
        self.closed = False
        self.paused = False
        self._done = False
        self._keep = False
        self._head_only = False
        # The gateway's response header filters: set for the one request that has them, cleared once
        # its response head is rewritten (every other response is forwarded as it comes).
        self.head_filter: Callable[[bytes], bytes] | None = None
        self._held = b""
        self.status = 0  # of the last response head (for flow records)
        self._sock: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._sock = transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            # An idle pooled connection does not speak first; whatever this is, do not reuse it.
            self.transport.close()
            return
        if self.head_filter is None:
            client.transport.write(data)
        else:
            self._write_filtered(client, data)
        client.activity += 1
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            client.tunnel(self)
            return
        except httptools.HttpParserError as exc:
            log.info("bad HTTP response from %s:%d: %s", *self.backend, exc)
            self.client = None
            self.transport.close()
            client.transport.close()
            return
        if self._done:
            self._done = False
            self.got_bytes = False
            if self._head_only:
                # The parser expected a body after a HEAD response's Content-Length: start afresh.
                self._head_only = False
                self.parser = httptools.HttpResponseParser(self)
            client.response_done(self, self._keep)
        elif _QUICKACK is not None and self._sock is not None:
            # The response is not complete. A backend that writes its head and its body in two sends
            # (Python's http.server, many small servers) has Nagle hold the body until this side ACKs
            # the head, and Linux delays that ACK by up to 40 ms on a keep-alive connection: ask for
            # the ACK now (TCP_QUICKACK is one-shot, so it is asked after every such read).
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass

    def _write_filtered(self, client: HttpClient, data: bytes) -> None:
        """Hold the response until its head is complete, write the head through `head_filter`, then
        the rest as it comes. Interim (1xx) heads pass unchanged; a head larger than any server sends
        passes unchanged too."""
        held = self._held + data
        end = held.find(b"\r\n\r\n")
        if end < 0:
            if len(held) > _RESPONSE_HEAD_LIMIT:
                self.head_filter, self._held = None, b""
                client.transport.write(held)
            else:
                self._held = held
            return
        head, rest = held[: end + 4], held[end + 4 :]
        self._held = b""
        if head[9:10] == b"1" and head[9:12] != b"101":
            client.transport.write(head)
            if rest:
                self._write_filtered(client, rest)
            return
        head_filter, self.head_filter = self.head_filter, None
        assert head_filter is not None
        client.transport.write(head_filter(head) + rest)

    def expect_head(self) -> None:
        """The next response answers a HEAD request: its head is all of it (a Content-Length there
        announces no body), so it is parsed by a parser that stops at the head."""
        self.parser = httptools.HttpResponseParser(_HeadResponse(self))

    def on_message_complete(self) -> None:
        # The only callback of a response (one Python call per response): its status is read here.
        parser = self.parser
        status = parser.get_status_code()
        if status < 200 and status != 101:
            return  # 100 Continue and friends: the real response follows
        self.status = status
        self._done = True
        self._keep = parser.should_keep_alive()

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.parser = _SPENT_RESPONSE_PARSER  # (no cycle through the parser left for the collector)
        client = self.client
        if client is None:
            self.ctx.pool.discard(self)
            return
        self.client = None
        client.backend_lost(self)

    def close(self) -> None:
        self.transport.close()


class _HeadResponse:
    """The parser callbacks of a response to HEAD: done at the end of the head."""

    __slots__ = ("conn",)

    def __init__(self, conn: HttpUpstream) -> None:
        self.conn = conn

    def on_headers_complete(self) -> None:
        conn = self.conn
        parser = conn.parser
        status = parser.get_status_code()
        if status < 200 and status != 101:
            return  # interim: the real response follows
        conn.status = status
        conn._head_only = True
        conn._done = True
        conn._keep = parser.should_keep_alive()

    def on_message_complete(self) -> None:
        pass  # (the head said it all; an interim response ends here too)


def say_close(head: bytes) -> bytes:
    """A response head that says `Connection: close` (the client asked for it, or spoke HTTP/1.0: the
    proxy closes after this response and says so, as RFC 9112 9.6 wants; a client that reads only the
    response would otherwise send its next request into a closing connection)."""
    if b"\r\nconnection:" not in head.lower():
        return head[:-2] + b"Connection: close\r\n\r\n"
    lines = head[:-4].split(b"\r\n")
    kept = [line for line in lines[1:] if line.partition(b":")[0].strip().lower() != b"connection"]
    return b"\r\n".join((lines[0], *kept, b"Connection: close\r\n\r\n"))


def _name(route: Route) -> str:
    return f'"{route.namespace}/{route.service}"'
