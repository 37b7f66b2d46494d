"""HTTP/2 on the gateway: h2c with prior knowledge and h2 over TLS (ALPN "h2"), every stream routed on its own.

The gateway's HTTP/1.1 side hands a client connection over when it starts with the HTTP/2 connection
preface (h2c) or when TLS negotiated ALPN "h2":

    proto = H2Gateway(ctx, routing, table, listener, tls)  # routing: () -> the current RoutingConfig
    transport.set_protocol(proto)
    proto.connection_made(transport)
    proto.data_received(first_bytes)                        # the bytes already read, preface included

(`listener` is the routing model's ListenerKey, e.g. SHARED_HTTP; `tls` says the client came over TLS:
`:scheme`, X-Forwarded-Proto and redirects follow it. Optional: `upstreams`, the endpoint connections to
share (default: one `H2Upstreams` per proxy context), and `scheme_ports`, the ports a redirect that
changes the scheme points to (pass the gateway's bound ports; default: the configured ones, else 80/443).)
The HTTP/2 protocol itself is the `h2` library's sans-I/O `H2Connection`; this module moves its events
between sockets.

Each request stream is routed as the HTTP/1.1 gateway routes a request: on the shared ports an exact
Ingress/Gateway API host first, then the service names (`web.ns`, `web.ns.svc.<zone>`, with
`.localhost` too), then wildcard hosts and rules without a host; on other listeners only their routes.
The matched Action is carried out (redirect answered here, weighted backend, header modifiers, URL
rewrite; RequestMirror is NOT done for HTTP/2 streams), then a service endpoint is chosen by the
service's balancer and checked against NetworkPolicy. Answers of the gateway itself: 404 no route,
500 a backend with a problem, 503 no ready endpoint, 502 none accepted the connection, 403 denied by
policy. A gRPC request gets these in gRPC's words: a trailers-only answer whose grpc-status is the HTTP
status mapped as gRPC maps it (404 UNIMPLEMENTED, 403 PERMISSION_DENIED, 502/503/504 UNAVAILABLE, 500
UNKNOWN), grpc-message the text; its flow records the HTTP status.

Upstream, a stream goes
- over h2c, on one multiplexed connection per endpoint shared by every client connection
  (`H2Upstreams`; a second one is opened when the endpoint's stream limit is reached), when the route is
  a GRPCRoute, the service port's appProtocol is `kubernetes.io/h2c`, `h2c` or `grpc`, or the request
  is gRPC (`content-type: application/grpc...`: gRPC needs trailers, which HTTP/1.1 cannot carry back);
  responses, trailers and streaming either way pass through, resets both ways;
- else as an HTTP/1.1 request on a pooled keep-alive connection (httptools parses the response), the
  response translated back into HTTP/2 frames.
Flow control is end to end: bytes from one side are acknowledged to their sender (WINDOW_UPDATE) only
once the other side has taken them, so a slow reader slows its writer instead of filling memory.
Not done: Upgrade: h2c from an HTTP/1.1 request, extended CONNECT (WebSocket over HTTP/2), server push.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httptools

from emulator.flows.log import SERVICE_KEYS
from emulator.routing import match
from emulator.routing.model import (
    SHARED_HTTP,
    SHARED_HTTPS,
    Action,
    HeaderChanges,
    ListenerKey,
    ListenerRoutes,
    RoutingConfig,
)

from .balancer import Backend
from .context import ProxyContext
from .gateway import MIRROR_BODY_LIMIT, MirrorCopy, wire_safe
from .l4 import _why
from .l7 import _CRLF
from .pool import BackendPool
from .table import ProxyTable, Route

log = logging.getLogger("emulator.proxy")

MAX_CONCURRENT_STREAMS = 128  # per client connection, as advertised in our SETTINGS
STREAM_WINDOW = 1 << 20  # initial flow-control window of a stream, both to clients and to endpoints
CONNECTION_WINDOW = 1 << 24
MAX_HEADER_LIST_SIZE = 1 << 16
H1_RESPONSE_BUFFER = 1 << 20  # response bytes of an HTTP/1.1 endpoint held for a slow client before pausing it
H2C_APP_PROTOCOLS = frozenset(("kubernetes.io/h2c", "h2c", "grpc"))
# gRPC's mapping of an HTTP status to its own (doc/http-grpc-status-mapping.md): INTERNAL,
# UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED, UNAVAILABLE; any other is UNKNOWN.
GRPC_UNKNOWN = 2
GRPC_STATUS_OF_HTTP = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}

Headers = list[tuple[bytes, bytes]]

# Connection-specific headers HTTP/2 forbids (RFC 9113 8.2.2), dropped from either direction.
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"http2-settings")
)
# Request headers the gateway writes itself upstream.
_REQUEST_OWN = _CONNECTION_SPECIFIC | {b"host", b"te", b"expect", b"x-forwarded-for"}
_RESPONSE_DROP = _CONNECTION_SPECIFIC | {b"te", b"trailer"}


def _h1_head(method: bytes, path: bytes, authority: bytes, headers: Headers, chunked: bool) -> bytes:
    """An HTTP/1.1 request head for an endpoint that does not speak HTTP/2."""
    parts = [method, b" ", path, b" HTTP/1.1\r\nHost: ", authority or b"localhost", _CRLF]
    for name, value in headers:
        parts += (name, b": ", value, _CRLF)
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    parts.append(_CRLF)
    return b"".join(parts)


def _config(client_side: bool) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(client_side=client_side, header_encoding=None)


def _start(conn: h2.connection.H2Connection, client_side: bool) -> None:
    """Our SETTINGS and a large connection window (the defaults' 64 KiB would throttle any stream)."""
    codes = h2.settings.SettingCodes
    values = {
        codes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
        codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        codes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
    }
    if client_side:
        values[codes.ENABLE_PUSH] = 0
    conn.local_settings = h2.settings.Settings(client=client_side, initial_values=values)
    conn.initiate_connection()
    conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)


def _bytes_headers(headers: Iterable[tuple[Any, Any]]) -> Headers:
    return [
        (n.encode("latin-1") if isinstance(n, str) else n, v.encode("latin-1") if isinstance(v, str) else v)
        for n, v in headers
    ]


def _changed(headers: Headers, changes: HeaderChanges | None) -> Headers:
    """Header modifier filters, names kept lower case as HTTP/2 wants them."""
    if changes is None:
        return headers
    return [(n.lower(), v) for n, v in _bytes_headers(match.apply_header_changes(headers, changes))]


def _is_grpc(headers: Headers) -> bool:
    """gRPC proper (`application/grpc`, `application/grpc+proto`, ...), not gRPC-Web (HTTP/1.1 is fine for it)."""
    for name, value in headers:
        if name == b"content-type":
            value = value.lower()
            return value == b"application/grpc" or value.startswith((b"application/grpc+", b"application/grpc;"))
    return False


class _Outbox:
    """Data of one stream waiting for the receiving side's flow-control window, then how the stream
    ends (trailers, or a bare END_STREAM). Each chunk carries the credit (flow-controlled bytes) to give
    back to its sender once it went out."""

    __slots__ = ("chunks", "size", "end", "trailers", "finished")

    def __init__(self) -> None:
        # memoryviews: a chunk larger than a frame is sent in slices, which must not copy the rest each time
        self.chunks: deque[tuple[memoryview, int]] = deque()
        self.size = 0
        self.end = False
        self.trailers: Headers | None = None
        self.finished = False  # END_STREAM sent

    def put(self, data: bytes, credit: int) -> None:
        self.chunks.append((memoryview(data), credit))
        self.size += len(data)

    def flush(self, conn: h2.connection.H2Connection, stream_id: int, ack: Callable[[int], None]) -> bool:
        """Send what the windows allow; True once the stream's end went out."""
        if self.finished:
            return True
        chunks = self.chunks
        while chunks:
            data, credit = chunks[0]
            if data:
                room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if room <= 0:
                    return False
                if len(data) > room:
                    conn.send_data(stream_id, data[:room])
                    chunks[0] = (data[room:], credit)
                    self.size -= room
                    continue
            chunks.popleft()
            self.size -= len(data)
            last = self.end and not chunks and self.trailers is None
            if data or last:
                conn.send_data(stream_id, data, end_stream=last)
            if credit:
                ack(credit)
            if last:
                self.finished = True
                return True
        if self.end:
            if self.trailers is not None:
                conn.send_headers(stream_id, self.trailers, end_stream=True)
            else:
                conn.send_data(stream_id, b"", end_stream=True)
            self.finished = True
            return True
        return False


class _Stream:
    """One client request stream: what it asked, where it goes, and the data waiting either way."""

    __slots__ = (
        "gw", "id", "method", "path", "authority", "headers", "grpc", "route", "backend", "tried", "failures",
        "h2c", "chunked", "up_headers", "head", "request", "response", "upstream", "up_id", "responded", "request_ended",
        "response_changes", "done", "local", "status", "reason", "source", "started", "mirror",
    )  # fmt: skip

    def __init__(self, gw: H2Gateway, stream_id: int) -> None:
        self.gw = gw
        self.id = stream_id
        self.method = b"GET"
        self.path = b"/"
        self.authority = b""
        self.headers: Headers = []  # the client's regular headers (no pseudo-headers)
        self.grpc = False
        self.route: Route | None = None
        self.backend: Backend | None = None
        self.tried: list[Backend] = []
        self.failures: list[str] = []
        self.h2c = False
        self.chunked = False  # HTTP/1.1 upstream: the body goes chunked (no content-length, not ended)
        self.up_headers: Headers = []  # h2c upstream: the request's headers as sent
        self.head = b""  # HTTP/1.1 upstream: the request head as sent
        self.request = _Outbox()  # client -> endpoint (h2c), or the body held until HTTP/1.1 connects
        self.response = _Outbox()  # endpoint -> client
        self.upstream: H2Upstream | H1Upstream | None = None
        self.up_id = 0
        self.responded = False
        self.request_ended = False
        self.response_changes: list[HeaderChanges] = []
        self.done = False
        self.local = False  # answered by the gateway itself
        # for the stream's flow record (emulator/flows/)
        self.status = 0  # of the response head sent
        self.reason: str | None = None  # why the gateway answered it with an error, or reset it
        self.source: str | None = None  # what routed it ("grpcroute ns/name rule 0")
        self.started = -1.0  # loop time it was sent on to an endpoint; -1: never
        self.mirror: MirrorCopy | None = None  # an HTTP/1.1 copy for the rule's RequestMirror filters


class H2Gateway(asyncio.Protocol):
    """One HTTP/2 client connection on the gateway (server side)."""

    def __init__(
        self,
        ctx: ProxyContext,
        routing: Callable[[], RoutingConfig],
        table: ProxyTable,
        listener: ListenerKey,
        tls: bool,
        upstreams: H2Upstreams | None = None,
        scheme_ports: Mapping[str, int] | None = None,
        mirror: Callable[[MirrorCopy, str], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.send_mirror = mirror  # sends a finished copy to its mirrors (the gateway's); None: none sent
        self.routing = routing
        self.table = table
        self.listener = listener
        self.tls = tls
        self.scheme = b"https" if tls else b"http"
        self.upstreams = upstreams if upstreams is not None else H2Upstreams.of(ctx)
        if scheme_ports is None:
            # the ports a redirect that changes the scheme points to: the gateway's own, when fixed
            s = ctx.settings
            https = getattr(s, "gateway_https_port", None)
            scheme_ports = {"http": s.gateway_port or 80, "https": https or 443}
        self.scheme_ports = scheme_ports
        self.conn = h2.connection.H2Connection(_config(client_side=False))
        self.streams: dict[int, _Stream] = {}
        self.transport: Any = None
        self.client_ip = ""
        self.closed = False
        self.client_done = False  # the client sent GOAWAY
        self.paused = False  # the client's socket buffer is full
        self.dst: Any = None  # the address the client reached, looked up for the first flow record
        self.deadline = 0.0
        self.activity = 0
        self.seen = 0

    # -- client transport ---------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.ctx.live.add(self)
        _start(self.conn, client_side=False)
        self._idle()
        self.write()

    def data_received(self, data: bytes) -> None:
        self.activity += 1
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("HTTP/2 protocol error from %s: %s", self.client_ip, exc)
            self.write()  # the GOAWAY h2 prepared
            self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self._on_data(event)
            elif isinstance(event, h2.events.RequestReceived):
                self._on_request(event)
            elif isinstance(event, h2.events.StreamEnded):
                self._on_request_end(event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                self._on_request_trailers(event)
            elif isinstance(event, h2.events.WindowUpdated):
                self._flush_responses(event.stream_id)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._flush_responses(0)
            elif isinstance(event, h2.events.StreamReset):
                self._on_client_reset(event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                # The client opens no more streams; those in flight finish first.
                self.client_done = True
                if not self.streams:
                    self.write()
                    self.transport.close()
                    return
        self.write()

    def write(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def pause_writing(self) -> None:
        # The client reads slowly: response data stays in the streams' outboxes, uncredited, so the
        # endpoints feeding it are held back too (h2c by their windows, HTTP/1.1 by pausing reads).
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._flush_responses(0)
        self.write()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.live.discard(self)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.done = True
            self._release(stream)
            if self.ctx.record is not None:
                stream.reason = stream.reason or "the client closed the connection"
                self._record(stream)
            if stream.upstream is not None:
                stream.upstream.cancel(stream)

    def on_deadline(self, now: float) -> None:
        if not self.streams:
            # an idle keep-alive connection
            self.conn.close_connection()
            self.write()
            self.transport.close()
            return
        if self.activity != self.seen:
            self.seen = self.activity
            self.deadline = now + self.ctx.settings.idle_timeout
            return
        # No traffic either way for idle_timeout: the streams end, the connection stays.
        idle = self.ctx.settings.idle_timeout
        for stream in list(self.streams.values()):
            if stream.responded or stream.route is None:
                self.reset(stream, h2.errors.ErrorCodes.CANCEL)  # gives back what it held, cancels upstream
                continue
            up, stream.upstream = stream.upstream, None
            if up is not None:
                up.cancel(stream)
            backend = stream.backend or ("?", 0)
            self._reply(stream, 504, f"endpoint {backend[0]}:{backend[1]} of service {_name(stream.route)} did not answer within {idle:.0f}s")
        self.write()
        self._idle()

    def shutdown(self) -> None:
        if self.transport is not None and not self.closed:
            self.conn.close_connection()
            self.write()
            self.transport.abort()

    def _idle(self) -> None:
        if self.streams:
            self.deadline = self.ctx.loop.time() + self.ctx.settings.idle_timeout
            self.seen = self.activity
        else:
            self.deadline = self.ctx.loop.time() + self.ctx.settings.keepalive_timeout

    # -- requests -----------------------------------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream = _Stream(self, event.stream_id)
        if not self.streams:
            self.deadline = self.ctx.loop.time() + self.ctx.settings.idle_timeout
            self.seen = self.activity
        self.streams[stream.id] = stream
        cookies: list[bytes] = []
        for name, value in _bytes_headers(event.headers or ()):
            if name.startswith(b":"):
                if name == b":method":
                    stream.method = value
                elif name == b":path":
                    stream.path = value
                elif name == b":authority":
                    stream.authority = value
            elif name == b"cookie":
                cookies.append(value)  # HTTP/2 may split cookies (RFC 9113 8.2.3): one header upstream
            elif name == b"host":
                if not stream.authority:
                    stream.authority = value
            else:
                stream.headers.append((name, value))
        if cookies:
            stream.headers.append((b"cookie", b"; ".join(cookies)))
        stream.grpc = _is_grpc(stream.headers)
        stream.request_ended = event.stream_ended is not None
        if stream.request_ended:
            stream.request.end = True
        if stream.method == b"CONNECT":
            self._reply(stream, 405, "CONNECT is not supported by the gateway over HTTP/2")
            return
        for name, value in stream.headers:
            if name == b"expect" and value.lower() == b"100-continue":
                # Answered here: the body goes on as it comes (the endpoint is asked without Expect).
                self.conn.send_headers(stream.id, [(b":status", b"100")])
        self._dispatch(stream)

    def _dispatch(self, stream: _Stream) -> None:
        path_text = stream.path.decode("latin-1")
        path, _, query = path_text.partition("?")
        host_header = stream.authority.decode("latin-1")
        host = match.host_of(host_header)
        lr = self.routing().listeners.get(self.listener)
        shared = self.listener in (SHARED_HTTP, SHARED_HTTPS)
        found = None
        if lr is not None and host in lr.exact:
            found = self._find(lr, stream, host, path, query)
            if found is None:
                self._reply(stream, 404, f'no route for {stream.method.decode()} {path} on host "{host}"')
                return
        elif shared:
            route = self._service_route(host_header)
            if route is not None:
                self._forward(stream, route, None, stream.path, stream.authority)
                return
        if found is None and lr is not None:
            found = self._find(lr, stream, host, path, query)
        if found is None:
            self._reply(stream, 404, self._not_found(lr, host_header, shared))
            return
        self._carry_out(stream, found, path, query, host)

    def _not_found(self, lr: ListenerRoutes | None, host: str, shared: bool) -> str:
        """The 404 of the HTTP/1.1 gateway, in its words."""
        hosts = [*sorted(lr.exact), *(f"*{suffix}" for suffix, _, _ in lr.wildcards)][:10] if lr else []
        routed = f"; routed hosts: {', '.join(hosts)}" if hosts else ""
        if not shared:
            return f'no route for Host "{host}" on this Gateway listener (port {self.listener[0]}){routed}'
        s = self.ctx.settings
        return (
            f'no service for Host "{host}": use <service>.<namespace>, <service>.<namespace>.svc.{s.zone}, '
            f"<service>.<namespace>.localhost or <service> (namespace {s.default_namespace}), optionally with :<port>{routed}"
        )

    def _find(self, lr: ListenerRoutes, stream: _Stream, host: str, path: str, query: str) -> Action | None:
        """The action of the entry the request matches; `host` normalized (match.host_of)."""
        routes = match.host_routes(lr, host)
        if routes is None:
            return None
        headers: dict[str, str] | None = None
        if routes.uses_headers:
            headers = {}
            for name, value in stream.headers:
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]},{text}" if key in headers else text
        entry = match.find_in(routes, path, stream.method.decode("latin-1"), headers, query)
        return None if entry is None else entry.action

    def _service_route(self, host_header: str) -> Route | None:
        """Today's gateway names: `web`, `web.ns`, `web.ns.svc[.zone]`, optionally `.localhost`, `:port`."""
        return self.table.gateway_route(host_header.encode("latin-1"))

    def _carry_out(self, stream: _Stream, action: Action, path: str, query: str, host: str) -> None:
        stream.source = action.source or None
        if action.redirect is not None:
            location = match.redirect_location(
                action.redirect,
                scheme=self.scheme.decode(),
                host=host,
                port=_port_of(stream.authority.decode("latin-1")),
                path=path,
                query=query,
                matched_prefix=action.matched_prefix,
                scheme_ports=self.scheme_ports,
            )
            changes = [action.response_headers] if action.response_headers else []
            stream.response_changes = changes
            self._reply(stream, action.redirect.status_code, f"redirecting to {location}", [(b"location", location.encode())])
            return
        if action.problem is not None:
            self._reply(stream, 500, f"{action.source}: {action.problem}")
            return
        backend = match.pick_backend(action, random.random)
        if backend is None:
            self._reply(stream, 500, f"{action.source}: no backend with a weight above 0")
            return
        if backend.problem is not None:
            self._reply(stream, 500, f"{action.source}: {backend.problem}")
            return
        route, why = self.table.backend_route(backend)
        if route is None:
            self._reply(stream, 500, f"{action.source}: {why}")
            return
        rule_headers = _changed(stream.headers, action.request_headers)
        stream.headers = _changed(rule_headers, backend.request_headers)
        stream.response_changes = [c for c in (action.response_headers, backend.response_headers) if c is not None]
        new_path = stream.path
        authority = stream.authority
        rewrite = action.rewrite
        if rewrite is not None:
            if rewrite.path is not None:
                rewritten = match.rewrite_path(path, rewrite.path, action.matched_prefix)
                new_path = (rewritten + (f"?{query}" if query else "")).encode("latin-1")
            if rewrite.hostname is not None:
                authority = rewrite.hostname.encode("latin-1")
        if not wire_safe(new_path, authority, *(v for _, v in stream.headers)):  # (the compiler refuses such values)
            self._reply(stream, 500, f"{action.source}: a rewritten path, host or header value holds CR, LF or NUL")
            return
        grpc_route = action.source.lower().startswith("grpcroute")
        if action.mirrors and self.send_mirror is not None:
            if grpc_route or stream.grpc:
                log.debug("%s: mirror skipped: gRPC is not mirrored", action.source)
            else:  # the copy carries the rule's filters, not the primary backendRef's own
                self._plan_mirror(stream, action, rule_headers, new_path, authority)
        self._forward(stream, route, grpc_route, new_path, authority)

    def _plan_mirror(self, stream: _Stream, action: Action, headers: Headers, path: bytes, authority: bytes) -> None:
        """An HTTP/1.1 copy of the request for the rule's mirrors (as the HTTP/1.1 gateway sends it): its
        head now, its body chunked as it comes, sent once the request ends (the answers are dropped)."""
        routes: list[Route] = []
        for mirror in action.mirrors:
            if mirror.backend.problem is not None or (mirror.percent < 100 and random.random() * 100 >= mirror.percent):
                continue
            found, why = self.table.backend_route(mirror.backend)
            if found is None:
                log.debug("%s: mirror skipped: %s", action.source, why)
                continue
            routes.append(found)
        if not routes:
            return
        # its body goes chunked as it comes (MirrorCopy adds Connection: close)
        sent = [(n, v) for n, v in self._forwarded(stream, headers) if n != b"content-length"]
        stream.mirror = MirrorCopy(routes, _h1_head(stream.method, path, authority, sent, chunked=True))

    def _forward(self, stream: _Stream, route: Route, grpc_route: bool | None, path: bytes, authority: bytes) -> None:
        stream.route = route
        stream.h2c = bool(grpc_route) or stream.grpc or _app_protocol(self.table, route) in H2C_APP_PROTOCOLS
        headers = self._forwarded(stream, stream.headers)
        if stream.h2c:
            pseudo = [(b":method", stream.method), (b":scheme", b"http"), (b":path", path), (b":authority", authority)]
            te = [(b"te", b"trailers")] if any(n == b"te" and b"trailers" in v.lower() for n, v in stream.headers) else []
            stream.up_headers = pseudo + te + headers
        else:
            chunked = not stream.request_ended and all(n != b"content-length" for n, _ in headers)
            stream.head = _h1_head(stream.method, path, authority, headers, chunked)
            stream.chunked = chunked
        self._connect(stream)

    def _forwarded(self, stream: _Stream, headers: Headers) -> Headers:
        """The client's headers as they go upstream: the connection's own dropped, X-Forwarded-For
        extended with the client, X-Forwarded-Host and -Proto added unless the client sent them."""
        forwarded_for = self.client_ip.encode()
        out: Headers = []
        for name, value in headers:
            if name == b"x-forwarded-for":
                forwarded_for = value + b", " + forwarded_for
            elif name not in _REQUEST_OWN:
                out.append((name, value))
        names = {n for n, _ in out}
        out.append((b"x-forwarded-for", forwarded_for))
        if b"x-forwarded-host" not in names and stream.authority:
            out.append((b"x-forwarded-host", stream.authority))
        if b"x-forwarded-proto" not in names:
            out.append((b"x-forwarded-proto", self.scheme))
        return out

    def _connect(self, stream: _Stream) -> None:
        route = stream.route
        assert route is not None
        ctx = self.ctx
        backend = route.balancer.pick(self.client_ip, ctx.loop.time(), stream.tried)
        if backend is None or len(stream.tried) >= ctx.settings.connect_attempts:
            if stream.failures:
                self._reply(stream, 502, f"no endpoint of service {_name(route)} accepted the connection ({'; '.join(stream.failures)})")
            else:
                self._reply(stream, 503, f"no endpoints available for service {_name(route)} (port {route.port})")
            return
        if backend in ctx.settings.protected or ("*", backend[1]) in ctx.settings.protected:
            self._reply(stream, 403, f"the gateway does not forward to the emulator's own API (service {_name(route)})")
            return
        reason = ctx.refusal("request", self.client_ip, backend, "TCP", route.label)
        if reason is not None:
            self._reply(stream, 403, f"denied by network policy: {reason}")
            return
        stream.backend = backend
        stream.started = ctx.loop.time()
        if stream.h2c:
            self.upstreams.h2_for(backend).open(stream)
        else:
            self.upstreams.h1_send(stream, backend)

    def connect_failed(self, stream: _Stream, backend: Backend, why: str) -> None:
        """The endpoint did not accept the connection: the next one is tried."""
        if stream.done:
            return
        stream.upstream = None
        stream.tried.append(backend)
        stream.failures.append(f"{backend[0]}:{backend[1]}: {why}")
        self._connect(stream)
        self.write()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        credit = event.flow_controlled_length or 0
        if stream is None or stream.local or stream.done:
            if credit:
                self._credit(event.stream_id, credit)
            return
        data = event.data or b""
        copy = stream.mirror
        if copy is not None and data:
            copy.size += len(data)
            if copy.size > MIRROR_BODY_LIMIT:
                stream.mirror = None
                log.debug("mirror skipped: the request body is over %d bytes", MIRROR_BODY_LIMIT)
            else:
                copy.chunks.append(b"".join((b"%x\r\n" % len(data), data, _CRLF)))
        up = stream.upstream
        if isinstance(up, H1Upstream) and up.stream is stream:
            up.send_body(data, credit)
        else:
            stream.request.put(data, credit)
            if isinstance(up, H2Upstream):
                up.flush_request(stream)
        if event.stream_ended is not None:
            self._on_request_end(event.stream_id)

    def _on_request_trailers(self, event: h2.events.TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None and stream.h2c:
            stream.request.trailers = _bytes_headers(event.headers or ())
        # HTTP/1.1 endpoints: request trailers are dropped (rarely sent, rarely read)

    def _on_request_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.request_ended:
            return
        stream.request_ended = True
        stream.request.end = True
        copy = stream.mirror
        if copy is not None and self.send_mirror is not None:
            stream.mirror = None
            copy.chunks.append(b"0\r\n\r\n")
            self.send_mirror(copy, self.client_ip)
        up = stream.upstream
        if isinstance(up, H1Upstream) and up.stream is stream:
            up.end_body()
        elif isinstance(up, H2Upstream):
            up.flush_request(stream)
        if stream.local or stream.response.finished:
            self._forget(stream)

    def _on_client_reset(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        self._forget(stream)
        if stream.upstream is not None:
            stream.upstream.cancel(stream)

    def _credit(self, stream_id: int, n: int) -> None:
        """Give the client back `n` bytes of window: its data went on."""
        try:
            self.conn.acknowledge_received_data(n, stream_id)
        except h2.exceptions.ProtocolError:
            pass  # a stream h2 never saw: nothing to give back

    # -- responses ----------------------------------------------------------------------------------

    def _reply(self, stream: _Stream, status: int, message: str, extra: Headers | None = None) -> None:
        """Answer a stream from the gateway itself."""
        if status >= 500 or status == 404:
            log.info("%s %s%s from %s over HTTP/2: %d %s", stream.method.decode(), stream.authority.decode("latin-1"), stream.path.decode("latin-1"), self.client_ip, status, message)
        if status >= 400:
            stream.reason = message
        if stream.responded or stream.done:
            self.reset(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)  # too late for an answer
            return
        stream.local = True
        stream.upstream = None  # the callers have let go of it
        self._release(stream)  # what the client already sent goes nowhere
        if stream.grpc and status >= 400:
            # A gRPC client is answered in gRPC: a trailers-only response (one HEADERS frame that ends
            # the stream) with the status gRPC maps the HTTP one to, as Envoy answers its own errors.
            # An HTTP 404 with a body raced in grpcio's client: a streaming call could end UNKNOWN
            # ("Stream removed") before it had read the 404 it maps to UNIMPLEMENTED.
            grpc_headers: Headers = [
                (b":status", b"200"),
                (b"content-type", b"application/grpc"),
                (b"grpc-status", b"%d" % GRPC_STATUS_OF_HTTP.get(status, GRPC_UNKNOWN)),
                (b"grpc-message", _grpc_message(message)),
                *(extra or ()),
            ]
            self.respond(stream, grpc_headers, end=True, recorded=status)
            return
        body = message.encode() + b"\n"
        headers: Headers = [
            (b":status", str(status).encode()),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            *(extra or ()),
        ]
        head_only = stream.method == b"HEAD"
        self.respond(stream, headers, end=head_only)
        if not head_only:
            stream.response.put(body, 0)
            stream.response.end = True
            self._flush_response(stream)

    def respond(self, stream: _Stream, headers: Headers, end: bool, recorded: int = 0) -> None:
        """The response head (the endpoint's, or the gateway's own) goes to the client; `recorded`, when
        given, is the status its flow records (a gRPC answer's HTTP equivalent)."""
        if stream.done:
            return
        for changes in stream.response_changes:
            status = headers[0] if headers and headers[0][0] == b":status" else None
            rest = [h for h in headers if h[0] != b":status"]
            headers = ([status] if status else []) + _changed(rest, changes)
        stream.responded = True
        if recorded:
            stream.status = recorded
        elif headers and headers[0][0] == b":status" and headers[0][1].isdigit():
            stream.status = int(headers[0][1])
        try:
            self.conn.send_headers(stream.id, headers, end_stream=end)
        except h2.exceptions.ProtocolError as exc:
            log.info("HTTP/2 response to %s not sent: %s", self.client_ip, exc)
            self.reset(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        if end:
            stream.response.end = True
            stream.response.finished = True
            self._response_finished(stream)

    def response_data(self, stream: _Stream, data: bytes, credit: int) -> None:
        self.activity += 1
        if stream.done:
            if stream.upstream is not None and credit:
                stream.upstream.credit(stream, credit)
            return
        stream.response.put(data, credit)
        self._flush_response(stream)

    def response_end(self, stream: _Stream, trailers: Headers | None = None) -> None:
        if stream.done:
            return
        if trailers is not None:
            stream.response.trailers = trailers
        stream.response.end = True
        self._flush_response(stream)

    def _flush_response(self, stream: _Stream) -> None:
        if self.paused:
            return
        up = stream.upstream
        ack = (lambda n: up.credit(stream, n)) if up is not None else _no_credit
        try:
            finished = stream.response.flush(self.conn, stream.id, ack)
        except h2.exceptions.ProtocolError:  # the client reset the stream meanwhile
            finished = False
            self._on_client_reset(stream.id)
        if finished:
            self._response_finished(stream)

    def _flush_responses(self, stream_id: int) -> None:
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None and stream.responded:
                self._flush_response(stream)
            return
        for stream in list(self.streams.values()):
            if stream.responded and (stream.response.chunks or stream.response.end):
                self._flush_response(stream)

    def _response_finished(self, stream: _Stream) -> None:
        self._forget(stream)
        if not stream.request_ended:
            # Answered before the request's body was all in: the rest is not wanted (RFC 9113 8.1).
            try:
                self.conn.reset_stream(stream.id, h2.errors.ErrorCodes.NO_ERROR)
            except h2.exceptions.ProtocolError:
                pass
            up = stream.upstream
            if isinstance(up, H1Upstream) and up.stream is stream:
                up.cancel(stream)

    def _record(self, stream: _Stream) -> None:
        """The stream's flow (emulator/flows/), as the HTTP/1.1 gateway records a request."""
        assert self.ctx.record is not None
        if self.dst is None:
            self.dst = self.transport.get_extra_info("sockname")
        now = self.ctx.loop.time()
        verdict, reason = "allowed", None
        if stream.reason is not None:
            reason = stream.reason
            verdict = "denied" if stream.status == 403 and reason.startswith("denied by network policy") else "error"
        self.ctx.record((now, "http", self.client_ip, self.dst, SERVICE_KEYS[stream.route], stream.backend, verdict, reason, -1, -1,
                         now - stream.started if stream.started >= 0 else 0.0, stream.method, stream.authority,
                         stream.path, stream.status, stream.source))  # fmt: skip

    def _release(self, stream: _Stream) -> None:
        """Credit back what a stream holds and will never pass on: request data not sent to the
        endpoint (to the client), response data not delivered (to the endpoint). Without this, the
        connection windows of both (an h2c endpoint's connection is shared) would shrink for good."""
        request, response = stream.request, stream.response
        for _, credit in request.chunks:
            if credit:
                self._credit(stream.id, credit)
        request.chunks.clear()
        request.size = 0
        up = stream.upstream
        for _, credit in response.chunks:
            if credit and up is not None:
                up.credit(stream, credit)
        response.chunks.clear()
        response.size = 0

    def _forget(self, stream: _Stream) -> None:
        if stream.done:
            return
        stream.done = True
        self._release(stream)
        if self.ctx.record is not None:
            self._record(stream)
        if self.streams.pop(stream.id, None) is not None and not self.streams:
            if self.client_done and not self.closed:
                self.write()
                self.transport.close()
            self._idle()

    def reset(self, stream: _Stream, code: int) -> None:
        """End a stream abruptly (the endpoint reset it, or went away mid-response)."""
        if stream.done:
            return
        stream.reason = stream.reason or f"stream reset ({_code(code)})"
        self._forget(stream)
        try:
            self.conn.reset_stream(stream.id, code)
        except h2.exceptions.ProtocolError:
            pass
        if stream.upstream is not None:
            stream.upstream.cancel(stream)

    def upstream_lost(self, stream: _Stream, why: str) -> None:
        """The endpoint's connection ended before this stream's response did."""
        if stream.done:
            return
        stream.upstream = None
        if not stream.responded:
            route = stream.route
            label = _name(route) if route is not None else "?"
            backend = stream.backend or ("?", 0)
            self._reply(stream, 502, f"endpoint {backend[0]}:{backend[1]} of service {label} {why}")
        else:
            self.reset(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)
        self.write()


def _grpc_message(message: str) -> bytes:
    """`grpc-message` is percent-encoded UTF-8: bytes outside printable ASCII, and `%`, as %XX."""
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in message.encode())


def _no_credit(n: int) -> None:
    pass


def _app_protocol(table: ProxyTable, route: Route) -> str:
    """The service port's appProtocol (lower case; "" when unset)."""
    return route.app_protocol


def _port_of(authority: str) -> int | None:
    """The port in an :authority, if any."""
    if authority.startswith("["):
        tail = authority[authority.find("]") + 1 :]
        return int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else None
    if authority.count(":") == 1:
        text = authority.rpartition(":")[2]
        return int(text) if text.isdigit() else None
    return None


def _name(route: Route) -> str:
    return f'"{route.namespace}/{route.service}"'


# -- upstream: h2c --------------------------------------------------------------------------------------


class H2Upstream(asyncio.Protocol):
    """One h2c connection to one endpoint, carrying streams of any number of client connections."""

    def __init__(self, ctx: ProxyContext, pools: H2Upstreams, backend: Backend) -> None:
        self.ctx = ctx
        self.pools = pools
        self.backend = backend
        self.conn = h2.connection.H2Connection(_config(client_side=True))
        self.transport: Any = None
        self.streams: dict[int, _Stream] = {}  # by upstream stream id
        self.waiting: list[_Stream] = []  # streams to open once connected
        self.ready = False
        self.closed = False
        self.draining = False  # GOAWAY received: no new streams
        self.paused = False
        self.deadline = 0.0

    def has_room(self) -> bool:
        if self.closed or self.draining:
            return False
        limit = self.conn.remote_settings.max_concurrent_streams if self.ready else 100
        return len(self.streams) + len(self.waiting) < limit

    def open(self, stream: _Stream) -> None:
        stream.upstream = self
        if not self.ready:
            self.waiting.append(stream)
            return
        self._start(stream)
        self.write()

    def _start(self, stream: _Stream) -> None:
        stream_id = self.conn.get_next_available_stream_id()
        stream.up_id = stream_id
        self.streams[stream_id] = stream
        self.deadline = 0.0
        ends = stream.request.end and not stream.request.chunks and stream.request.trailers is None
        try:
            self.conn.send_headers(stream_id, stream.up_headers, end_stream=ends)
        except h2.exceptions.ProtocolError as exc:
            self.streams.pop(stream_id, None)
            stream.upstream = None
            stream.gw.upstream_lost(stream, f"could not be sent the request: {exc}")
            return
        if ends:
            stream.request.finished = True
        else:
            self.flush_request(stream, write=False)

    def flush_request(self, stream: _Stream, write: bool = True) -> None:
        if not self.ready or self.paused or stream.up_id == 0 or self.streams.get(stream.up_id) is not stream:
            return
        gw = stream.gw
        try:
            stream.request.flush(self.conn, stream.up_id, lambda n: gw._credit(stream.id, n))
        except h2.exceptions.ProtocolError:
            pass  # the endpoint closed or reset the stream: its events say how
        gw.write()
        if write:
            self.write()

    def write(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def credit(self, stream: _Stream, n: int) -> None:
        """The client took `n` bytes of this stream's response: the endpoint may send more."""
        if self.closed:
            return
        try:
            self.conn.acknowledge_received_data(n, stream.up_id)
        except h2.exceptions.ProtocolError:
            return
        self.write()

    def cancel(self, stream: _Stream) -> None:
        """The client is gone or reset the stream: the endpoint stops working on it."""
        if stream in self.waiting:
            self.waiting.remove(stream)
            return
        if self.streams.pop(stream.up_id, None) is None or self.closed:
            return
        try:
            self.conn.reset_stream(stream.up_id, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.ProtocolError:
            pass
        self.write()
        self._maybe_idle()

    # -- transport ----------------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.closed:  # shut down while connecting
            transport.close()
            return
        self.ctx.live.add(self)
        _start(self.conn, client_side=True)
        self.ready = True
        waiting, self.waiting = self.waiting, []
        for stream in waiting:
            if not stream.done:
                self._start(stream)
        self.write()
        self._maybe_idle()

    def connect_failed(self, why: str) -> None:
        self.closed = True
        self.pools.forget_h2(self)
        waiting, self.waiting = self.waiting, []
        for stream in waiting:
            stream.gw.connect_failed(stream, self.backend, why)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("HTTP/2 protocol error from endpoint %s:%d: %s", *self.backend, exc)
            self.write()
            self.transport.close()
            return
        touched: set[H2Gateway] = set()
        for event in events:
            stream_id = getattr(event, "stream_id", 0)
            stream = self.streams.get(stream_id) if stream_id else None
            if stream is not None:
                touched.add(stream.gw)
            if isinstance(event, h2.events.DataReceived):
                credit = event.flow_controlled_length or 0
                if stream is None:
                    if credit:
                        self.credit_id(stream_id, credit)
                elif event.data:
                    stream.gw.response_data(stream, event.data, credit)
                elif credit:
                    self.credit_id(stream_id, credit)
            elif isinstance(event, h2.events.ResponseReceived):
                if stream is not None:
                    ended = event.stream_ended is not None  # a trailers-only response (gRPC errors)
                    if ended:
                        self._ended(stream)
                    stream.gw.respond(stream, _response_headers(event.headers), end=ended)
            elif isinstance(event, h2.events.TrailersReceived):
                if stream is not None:
                    stream.response.trailers = _response_headers(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                if stream is not None:
                    self._ended(stream)
                    stream.gw.response_end(stream)
            elif isinstance(event, h2.events.StreamReset):
                if stream is not None:
                    self.streams.pop(stream_id, None)
                    if stream.responded:
                        stream.gw.reset(stream, event.error_code or h2.errors.ErrorCodes.CANCEL)
                    else:
                        stream.upstream = None
                        stream.gw.upstream_lost(stream, f"reset the stream ({_code(event.error_code)})")
            elif isinstance(event, h2.events.WindowUpdated):
                targets = [stream] if stream is not None else list(self.streams.values()) if not stream_id else []
                for target in targets:
                    self.flush_request(target, write=False)
                    touched.add(target.gw)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                for target in list(self.streams.values()):
                    self.flush_request(target, write=False)
                    touched.add(target.gw)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.draining = True
                self.pools.forget_h2(self)
                last = event.last_stream_id or 0
                for sid, target in list(self.streams.items()):
                    if sid > last:  # never processed: safe to say so
                        self.streams.pop(sid, None)
                        target.gw.upstream_lost(target, "closed the connection (GOAWAY) before the request")
                        touched.add(target.gw)
        self.write()
        for gw in touched:
            gw.write()
        self._maybe_idle()
        if self.draining and not self.streams:
            self.transport.close()

    def _ended(self, stream: _Stream) -> None:
        """The endpoint's response is complete. If the request is not (a server that answers before
        reading everything), the endpoint's stream is reset so that it does not stay half open."""
        self.streams.pop(stream.up_id, None)
        if not stream.request.finished:
            try:
                self.conn.reset_stream(stream.up_id, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.ProtocolError:
                pass

    def credit_id(self, stream_id: int, n: int) -> None:
        try:
            self.conn.acknowledge_received_data(n, stream_id)
        except h2.exceptions.ProtocolError:
            pass

    def _maybe_idle(self) -> None:
        if not self.streams and not self.waiting and not self.closed:
            self.deadline = self.ctx.loop.time() + self.ctx.settings.pool_idle_timeout

    def pause_writing(self) -> None:
        # The endpoint reads slowly: request data stays in the outboxes, uncredited to the clients.
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in list(self.streams.values()):
            self.flush_request(stream, write=False)
        self.write()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.live.discard(self)
        self.pools.forget_h2(self)
        streams, self.streams = self.streams, {}
        waiting, self.waiting = self.waiting, []
        for stream in [*streams.values(), *waiting]:
            stream.upstream = None
            stream.gw.upstream_lost(stream, "closed the connection")

    def on_deadline(self, now: float) -> None:
        if self.streams or self.waiting:
            self.deadline = 0.0
            return
        self.shutdown()

    def shutdown(self) -> None:
        if self.transport is not None and not self.closed:
            try:
                self.conn.close_connection()
            except h2.exceptions.ProtocolError:
                pass
            self.write()
            self.transport.close()
        self.closed = True
        self.pools.forget_h2(self)


def _response_headers(headers: Iterable[tuple[Any, Any]] | None) -> Headers:
    return [(n, v) for n, v in _bytes_headers(headers or ()) if n not in _RESPONSE_DROP]


def _code(code: int | None) -> str:
    try:
        return h2.errors.ErrorCodes(code or 0).name
    except ValueError:
        return str(code)


# -- upstream: HTTP/1.1 ---------------------------------------------------------------------------------


class H1Upstream(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection to one endpoint carrying one HTTP/2 stream's exchange at a
    time, the response translated into HTTP/2 frames."""

    def __init__(self, ctx: ProxyContext, pools: H2Upstreams, backend: Backend) -> None:
        self.ctx = ctx
        self.pools = pools
        self.backend = backend
        self.transport: Any = None
        self.stream: _Stream | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.deadline = 0.0
        self.reused = False
        self.closed = False
        self.got_bytes = False
        self.write_paused = False
        self.owed: list[int] = []  # client credit held while the endpoint's socket buffer is full
        self.read_paused = False
        self._headers: Headers = []
        self._status = 0
        self._done = False
        self._interim = False
        self._keep = False
        self._length_known = False
        self._chunked = False

    def begin(self, stream: _Stream) -> None:
        """Send `stream`'s request (head and what body has come)."""
        self.stream = stream
        stream.upstream = self
        self.deadline = 0.0
        self.got_bytes = False
        self._done = False
        self._chunked = stream.chunked
        out: list[bytes | memoryview] = [stream.head]
        gw = stream.gw
        for data, credit in stream.request.chunks:
            out.append(self._frame(data))
            if credit:
                gw._credit(stream.id, credit)
        stream.request.chunks.clear()
        stream.request.size = 0
        if stream.request_ended and self._chunked:
            out.append(b"0\r\n\r\n")
        self.transport.write(b"".join(out))
        gw.write()

    def _frame(self, data: bytes | memoryview) -> bytes | memoryview:
        if not self._chunked or not data:
            return data
        return b"%x\r\n%s\r\n" % (len(data), data)

    def send_body(self, data: bytes, credit: int) -> None:
        if data:
            self.transport.write(self._frame(data))
        if credit:
            if self.write_paused:
                self.owed.append(credit)
            else:
                assert self.stream is not None
                self.stream.gw._credit(self.stream.id, credit)

    def end_body(self) -> None:
        if self._chunked:
            self.transport.write(b"0\r\n\r\n")

    def credit(self, stream: _Stream, n: int) -> None:
        """The client took `n` bytes of the response: read on if the endpoint was paused for it."""
        if self.read_paused and stream.response.size < H1_RESPONSE_BUFFER // 2 and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def cancel(self, stream: _Stream) -> None:
        if self.stream is stream:
            self.stream = None
            if not self.closed:
                self.transport.close()  # a half-done exchange: the connection cannot be reused

    # -- transport ----------------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.ctx.live.add(self)

    def data_received(self, data: bytes) -> None:
        stream = self.stream
        if stream is None:
            self.transport.close()  # an idle connection does not speak first: do not reuse it
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            log.info("endpoint %s:%d switched protocols on an HTTP/2 stream: not supported", *self.backend)
            self._abort(stream)
            return
        except httptools.HttpParserError as exc:
            log.info("bad HTTP response from %s:%d: %s", *self.backend, exc)
            self._abort(stream)
            return
        stream.gw.write()
        if self._done:
            self._finish(stream)

    def _abort(self, stream: _Stream) -> None:
        self.stream = None
        self.transport.close()
        stream.upstream = None
        stream.gw.upstream_lost(stream, "sent a response the gateway cannot read")

    def on_message_begin(self) -> None:
        self._headers = []
        self._length_known = False

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname == b"content-length" or (lname == b"transfer-encoding" and b"chunked" in value.lower()):
            self._length_known = True
        if lname not in _RESPONSE_DROP:
            self._headers.append((lname, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self._interim = True  # 100 Continue and friends: the real response follows
            return
        stream = self.stream
        if stream is None:
            return
        head_only = stream.method == b"HEAD"
        stream.gw.respond(stream, [(b":status", str(status).encode()), *self._headers], end=False)
        if head_only:
            self._done = True

    def on_body(self, body: bytes) -> None:
        stream = self.stream
        if stream is None or self._done:
            return
        stream.gw.response_data(stream, body, len(body))
        if stream.response.size > H1_RESPONSE_BUFFER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._done = True
        self._keep = self.parser.should_keep_alive()  # only known here: the parser resets after

    def _finish(self, stream: _Stream) -> None:
        keep = self._keep and stream.request_ended and stream.method != b"HEAD"
        self.stream = None
        self._done = False
        stream.gw.response_end(stream)
        stream.upstream = None
        stream.gw.write()
        if keep and not self.closed:
            if self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()
            self.reused = True
            self.pools.put_h1(self)
        else:
            self.transport.close()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        stream = self.stream
        owed, self.owed = self.owed, []
        if stream is not None and not stream.done:
            for n in owed:
                stream.gw._credit(stream.id, n)
            stream.gw.write()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.live.discard(self)
        self.pools.h1.discard(self)
        stream = self.stream
        if stream is None:
            return
        self.stream = None
        if stream.responded and not self._length_known and not self._done:
            # A response delimited by the connection's end: that was its end.
            stream.gw.response_end(stream)
            stream.gw.write()
            return
        if not self.got_bytes and self.reused and stream.request_ended and not stream.responded:
            # A pooled connection the endpoint closed just as we used it (its keep-alive timeout):
            # the request never arrived, so it goes again on a fresh connection.
            stream.upstream = None
            assert stream.backend is not None
            self.pools.h1_send(stream, stream.backend, pooled=False)
            return
        stream.upstream = None
        stream.gw.upstream_lost(stream, "closed the connection without answering" if not stream.responded else "closed the connection mid-response")

    def on_deadline(self, now: float) -> None:
        if self.stream is None:
            self.transport.close()  # idle in the pool for pool_idle_timeout
        else:
            self.deadline = 0.0  # the client connection's own deadline watches the exchange

    def shutdown(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.transport.close()


# -- the pools ----------------------------------------------------------------------------------------


class H2Upstreams:
    """The gateway's HTTP/2 upstream connections: h2c ones by endpoint (each shared by every stream that
    fits), and idle HTTP/1.1 ones. `H2Upstreams.of(ctx)` is the one a proxy context shares."""

    _by_context: weakref.WeakValueDictionary[int, H2Upstreams] = weakref.WeakValueDictionary()

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.h2: dict[Backend, list[H2Upstream]] = {}
        self.h1: BackendPool[H1Upstream] = BackendPool(ctx.settings.pool_max_idle)
        self.connecting: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    @classmethod
    def of(cls, ctx: ProxyContext) -> H2Upstreams:
        # Kept while a connection refers to it; it holds `ctx`, so the id cannot be reused meanwhile.
        found = cls._by_context.get(id(ctx))
        if found is None or found.ctx is not ctx:
            found = cls(ctx)
            cls._by_context[id(ctx)] = found
        return found

    def h2_for(self, backend: Backend) -> H2Upstream:
        conns = self.h2.setdefault(backend, [])
        for up in conns:
            if up.has_room():
                return up
        up = H2Upstream(self.ctx, self, backend)
        conns.append(up)
        self._start_connect(backend, lambda: up, up.connect_failed)
        return up

    def forget_h2(self, up: H2Upstream) -> None:
        conns = self.h2.get(up.backend)
        if conns and up in conns:
            conns.remove(up)
            if not conns:
                del self.h2[up.backend]

    def h1_send(self, stream: _Stream, backend: Backend, pooled: bool = True) -> None:
        conn = self.h1.take(backend) if pooled else None
        if conn is not None:
            conn.begin(stream)
            return

        def failed(why: str) -> None:
            stream.gw.connect_failed(stream, backend, why)

        def made(up: H1Upstream) -> None:
            if stream.done:
                up.transport.close()
            else:
                up.begin(stream)

        stream.upstream = None
        self._start_connect(backend, lambda: H1Upstream(self.ctx, self, backend), failed, made)

    def put_h1(self, conn: H1Upstream) -> None:
        now = self.ctx.loop.time()
        conn.deadline = now + self.ctx.settings.pool_idle_timeout
        self.h1.put(conn, now)

    def _start_connect(
        self, backend: Backend, factory: Callable[[], Any], failed: Callable[[str], None], made: Callable[[Any], None] | None = None
    ) -> None:
        task = self.ctx.loop.create_task(self._connect(backend, factory, failed, made))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    async def _connect(
        self, backend: Backend, factory: Callable[[], Any], failed: Callable[[str], None], made: Callable[[Any], None] | None = None
    ) -> None:
        ctx = self.ctx
        try:
            async with asyncio.timeout(ctx.settings.connect_timeout):
                _, proto = await ctx.loop.create_connection(factory, backend[0], backend[1])
        except (OSError, TimeoutError) as exc:
            failed(_why(exc))
            return
        if made is not None:
            made(proto)
