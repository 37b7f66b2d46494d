"""The gateway: HTTP requests routed by Host to Ingress and Gateway API routes, and to services by name.

On the gateway's shared ports (HTTP, and HTTPS with the certificate chosen by SNI) a request goes to, in
this order (the lead's decision, docs/proxy.md):
1. an exact host of an Ingress rule or a Gateway API route (`ListenerRoutes.exact`);
2. a service by name: `web`, `web.ns`, `web.ns.svc[.zone]`, each optionally with `.localhost` (every
   browser resolves `*.localhost` to loopback) and `:port`;
3. a wildcard host, 4. the rules with no host (Ingress defaultBackend last);
5. else a 404 that names the accepted forms and some of the hosts that are routed.
Ports that Gateway listeners ask for (other than 80/443) route by their own listener's routes only.

A request by service name costs what it cost before Ingress existed, plus one dict lookup (is the raw
Host an exact route host?). A routed request carries out its rule's `Action` (emulator/routing/model.py)
at parse time, on the request head it builds: a redirect or a broken backend is answered here, URL
rewrites and request header changes are written into the head, response header changes are applied by
the endpoint connection to that response's head only (`HttpUpstream.head_filter`), and a mirror gets a
copy of the request on its own connection (its answer read and dropped; never delaying the request).
Then the chosen service port is balanced, pooled and policy-checked like any other request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from emulator.routing.match import (
    apply_header_changes,
    find_in,
    host_of,
    host_routes,
    pick_backend,
    redirect_location,
    rewrite_path,
)
from emulator.routing.model import Action, HeaderChanges, ListenerKey, ListenerRoutes, RoutingConfig

from .context import ProxyContext
from .l7 import _CRLF, _DISCARD, HttpClient, HttpUpstream, _Buffer, _Request, local_response
from .table import ProxyTable, Route

log = logging.getLogger("emulator.proxy")

EMPTY_ROUTES = ListenerRoutes()
MIRROR_BODY_LIMIT = 1 << 20  # requests with a larger body are not mirrored
MIRRORS_IN_FLIGHT = 256  # mirror copies under way at once; beyond it a copy is skipped
MIRROR_TIMEOUT = 10.0  # a mirror copy (connect, send, read the answer) is given up after this
HOSTS_NAMED = 10  # routed hosts a 404 names
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Response headers a filter may not touch: they frame the message on this connection.
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))


class GatewayPort:
    """One port of the gateway and the routes it serves: those of listener `key` of the routing config,
    swapped whole when the routing changes (a request in flight keeps the routes it was matched by)."""

    __slots__ = ("key", "tls", "service_names", "routes", "port", "_exact")

    def __init__(self, key: ListenerKey, tls: bool, service_names: bool) -> None:
        self.key = key
        self.tls = tls
        self.service_names = service_names  # the shared ports also route by service name
        self.routes = EMPTY_ROUTES
        self.port = 0  # the port bound (not the listener's 80/443)
        self._exact: dict[bytes, bool] = {}

    def set_routes(self, routes: ListenerRoutes) -> None:
        self.routes, self._exact = routes, {}

    def exact_host(self, host: bytes) -> bool:
        """Whether a raw Host header names an exact route host (cached per raw value)."""
        try:
            return self._exact[host]
        except KeyError:
            pass
        hit = host_of(host.decode("latin-1")) in self.routes.exact
        if len(self._exact) > 4096:
            self._exact = {}  # bounded against clients sending random hosts
        self._exact[host] = hit
        return hit

    def has_routes(self) -> bool:
        routes = self.routes
        return bool(routes.exact or routes.wildcards or routes.any_host)


class Gateway:
    """What the gateway's connections share: the service table, the routing config, its ports."""

    def __init__(self, ctx: ProxyContext, table: ProxyTable) -> None:
        self.ctx = ctx
        self.table = table
        self.config = RoutingConfig()
        self.ports: dict[ListenerKey, GatewayPort] = {}
        self.scheme_ports: dict[str, int] = {"http": 80, "https": 443}  # for redirects that change the scheme
        self.mirrors: set[asyncio.Task[None]] = set()

    def routing(self) -> RoutingConfig:
        return self.config

    def port(self, key: ListenerKey, tls: bool, service_names: bool) -> GatewayPort:
        port = self.ports.get(key)
        if port is None:
            port = self.ports[key] = GatewayPort(key, tls, service_names)
            port.set_routes(self.config.listeners.get(key, EMPTY_ROUTES))
        return port

    def swap(self, config: RoutingConfig) -> None:
        self.config = config
        for key, port in self.ports.items():
            port.set_routes(config.listeners.get(key, EMPTY_ROUTES))

    def client(self, port: GatewayPort) -> Callable[[], GatewayClient]:
        return functools.partial(GatewayClient, self.ctx, self, port)

    def not_found(self, port: GatewayPort, host: str) -> str:
        routes = port.routes
        hosts = [*sorted(routes.exact), *(f"*{suffix}" for suffix, _, _ in routes.wildcards)][:HOSTS_NAMED]
        routed = f"; routed hosts: {', '.join(hosts)}" if hosts else ""
        if not port.service_names:
            return f'no route for Host "{host}" on this Gateway listener (port {port.key[0]}){routed}'
        s = self.ctx.settings
        return (
            f'no service for Host "{host}": use <service>.<namespace>, <service>.<namespace>.svc.{s.zone}, '
            f"<service>.<namespace>.localhost or <service> (namespace {s.default_namespace}), optionally with :<port>{routed}"
        )

    def mirror(self, copy: MirrorCopy, client_ip: str) -> None:
        ctx = self.ctx
        data = b"".join(copy.chunks)
        for route in copy.routes:
            if len(self.mirrors) >= MIRRORS_IN_FLIGHT:
                log.debug("mirror to %s skipped: %d copies under way", route.label, len(self.mirrors))
                return
            backend = route.balancer.pick(client_ip, ctx.loop.time())
            if backend is None or backend in ctx.settings.protected or ("*", backend[1]) in ctx.settings.protected:
                continue
            if ctx.refusal("request", client_ip, backend, "TCP", route.label) is not None:
                continue
            task = ctx.loop.create_task(_send_mirror(backend, data, route.label))
            self.mirrors.add(task)
            task.add_done_callback(self.mirrors.discard)

    def close(self) -> None:
        for task in list(self.mirrors):
            task.cancel()
        self.mirrors.clear()


async def _send_mirror(backend: tuple[str, int], data: bytes, label: str) -> None:
    try:
        async with asyncio.timeout(MIRROR_TIMEOUT):
            reader, writer = await asyncio.open_connection(backend[0], backend[1])
            try:
                writer.write(data)
                await writer.drain()
                while await reader.read(65536):
                    pass
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        log.debug("mirror copy to %s:%d (service %s) failed: %s", backend[0], backend[1], label, exc)


class MirrorCopy:
    """A request being copied for its mirrors: the head (with `Connection: close`), then the body."""

    __slots__ = ("routes", "chunks", "size")

    def __init__(self, routes: list[Route], head: bytes) -> None:
        self.routes = routes
        self.chunks = [head[:-2] + b"Connection: close\r\n\r\n"]
        self.size = 0


class _GatewayRequest(_Request):
    __slots__ = ("mirror", "response_changes")

    def __init__(self) -> None:
        super().__init__()
        self.mirror: MirrorCopy | None = None
        self.response_changes: tuple[HeaderChanges, ...] = ()


def redirect_response(status: int, location: str, keep_alive: bool, head_only: bool = False) -> bytes:
    body = b""
    reason = HTTPStatus(status).phrase.encode() if status in HTTPStatus._value2member_map_ else b"Redirect"
    head = b"HTTP/1.1 %d %s\r\nLocation: %s\r\nContent-Length: 0\r\n" % (status, reason, location.encode("latin-1", "replace"))
    if not keep_alive:
        head += b"Connection: close\r\n"
    return head + _CRLF + (b"" if head_only else body)


def rewrite_response_head(head: bytes, changes: Sequence[HeaderChanges], close: bool = False) -> bytes:
    """A response head (status line to the blank line) after ResponseHeaderModifier `changes`; the
    headers that frame the message stay as they are, except that `close` says `Connection: close` (the
    client asked for it: the gateway closes after this response, and says so, as RFC 9112 9.6 wants)."""
    lines = head[:-4].split(b"\r\n")
    framing: list[tuple[bytes, bytes]] = []
    fields: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        pair = (name.strip(), value.strip())
        (framing if pair[0].lower() in _FRAMING else fields).append(pair)
    if close:
        framing = [p for p in framing if p[0].lower() != b"connection"] + [(b"Connection", b"close")]
    for change in changes:
        fields = [(_b(n), _b(v)) for n, v in apply_header_changes(fields, _without_framing(change))]
        fields = [(n, v) for n, v in fields if wire_safe(n, v)]  # (the compiler refuses such values)
    out = [lines[0]]
    out += [n + b": " + v for n, v in fields + framing]
    return b"\r\n".join(out) + b"\r\n\r\n"


def say_close(head: bytes) -> bytes:
    """A response head that says `Connection: close` (the common case of `rewrite_response_head` with
    `close` and no changes, kept cheap: connection-per-request clients pay it on every request)."""
    if b"\r\nconnection:" not in head.lower():
        return head[:-2] + b"Connection: close\r\n\r\n"
    return rewrite_response_head(head, (), close=True)


def _without_framing(change: HeaderChanges) -> HeaderChanges:
    if not any(n.lower().encode() in _FRAMING for n in (*(k for k, _ in change.set), *(k for k, _ in change.add), *change.remove)):
        return change
    return HeaderChanges(
        set=tuple(p for p in change.set if p[0].lower().encode() not in _FRAMING),
        add=tuple(p for p in change.add if p[0].lower().encode() not in _FRAMING),
        remove=tuple(n for n in change.remove if n.lower().encode() not in _FRAMING),
    )


def _b(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1", "replace")


# Request headers the gateway writes itself (framing, hop-by-hop, Host, X-Forwarded-*): filters may not
# set, add or remove them (removing Content-Length would leave the body to be read as the next request).
_REQUEST_OWN = frozenset((
    "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
    "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
))
# Headers l7.py keeps apart from the client's list: header matches see them all the same.
_KEPT_APART = frozenset((b"upgrade", b"connection", b"te", b"transfer-encoding", b"x-forwarded-for", b"keep-alive", b"trailer"))
_FORWARDED = (b"x-forwarded-host", b"x-forwarded-proto")


def _request_change(change: HeaderChanges) -> HeaderChanges:
    if not any(n.lower() in _REQUEST_OWN for n in (*(k for k, _ in change.set), *(k for k, _ in change.add), *change.remove)):
        return change
    return HeaderChanges(
        set=tuple(p for p in change.set if p[0].lower() not in _REQUEST_OWN),
        add=tuple(p for p in change.add if p[0].lower() not in _REQUEST_OWN),
        remove=tuple(n for n in change.remove if n.lower() not in _REQUEST_OWN),
    )


def wire_safe(*values: bytes) -> bool:
    """Whether values can go into a message head: no CR, LF or NUL (they would end a line or the head;
    the compiler refuses such values, this is the last check before the wire)."""
    return not any(b"\r" in v or b"\n" in v or b"\0" in v for v in values)


def _without_forwarded(headers: list[bytes]) -> list[bytes]:
    """The client's header list without X-Forwarded-Host/-Proto: the gateway is the edge, it says them."""
    out: list[bytes] = []
    for i in range(0, len(headers), 4):
        if headers[i].lower() not in _FORWARDED:
            out += headers[i : i + 4]
    return out


def _changed(headers: list[bytes], change: HeaderChanges | None) -> list[bytes]:
    """A header list (name, ": ", value, CRLF, ...) after a RequestHeaderModifier."""
    if change is None:
        return headers
    pairs: list[tuple[bytes, bytes]] = list(zip(headers[0::4], headers[2::4], strict=True))
    pairs = [(_b(n), _b(v)) for n, v in apply_header_changes(pairs, _request_change(change))]
    return [part for n, v in pairs for part in (n, b": ", v, _CRLF)]


def _port_of(host: str) -> int | None:
    """The port in a Host header, if any."""
    if host.startswith("["):
        tail = host[host.find("]") + 1 :]
        return int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else None
    if host.count(":") == 1:
        text = host.rpartition(":")[2]
        return int(text) if text.isdigit() else None
    return None


class GatewayClient(HttpClient):
    """One client connection on a gateway port. Requests are routed when their head is complete (a
    pipelined request takes the routes of that moment); the service-name path builds the same head as
    a service listener does."""

    def __init__(self, ctx: ProxyContext, gateway: Gateway, port: GatewayPort) -> None:
        super().__init__(ctx, None)
        self.gateway = gateway
        self.listener = port
        self._proto = b"X-Forwarded-Proto: https\r\n" if port.tls else b"X-Forwarded-Proto: http\r\n"

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.listener.tls:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._hand_to_h2(b"")

    # -- request head -------------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        if self._url[:1] != b"/" and self._url != b"*":
            self._origin_form()
        parser = self.parser
        req = _GatewayRequest()
        req.method = parser.get_method()
        req.keep_alive = parser.should_keep_alive()
        req.host = host = self._host
        req.path = self._url
        req.chunked = self._chunked
        req.has_body = self._chunked or self._clen
        listener = self.listener
        route: Route | None = None
        if listener.service_names and not (listener.routes.exact and listener.exact_host(host)):
            route = self.gateway.table.gateway_route(host)
        if route is not None:
            req.route = route
            req.out = _Buffer(self._head(req, self._url, host, self._headers), self.transport)
        else:
            self._route(req)
        self.req = req
        if self.current is None:
            self._dispatch(req)
        else:
            self.queue.append(req)

    def _origin_form(self) -> None:
        """An absolute-form target (`GET http://web.ns/x`, a client talking to a proxy): its authority is
        the host (RFC 9112 3.2.2: the Host header is ignored) and the origin form goes upstream."""
        split = urlsplit(self._url.decode("latin-1"))
        if split.scheme.lower() in ("http", "https") and split.netloc:
            self._host = split.netloc.rpartition("@")[2].encode("latin-1")
            self._url = ((split.path or "/") + (f"?{split.query}" if split.query else "")).encode("latin-1")

    def _head(self, req: _Request, url: bytes, host: bytes, headers: list[bytes]) -> bytes:
        """The request head as it goes upstream (the shape of HttpClient.on_headers_complete)."""
        parser = self.parser
        http10 = parser.get_http_version() == "1.0"
        parts = [req.method, b" ", url, b" HTTP/1.0\r\nHost: " if http10 else b" HTTP/1.1\r\nHost: "]
        parts += (host or b"localhost", _CRLF)
        parts += _without_forwarded(headers) if self._fwd else headers
        if http10 and req.keep_alive:
            parts.append(b"Connection: keep-alive\r\n")
        parts += (b"X-Forwarded-For: ", self._xff, self._ip_bytes, _CRLF)
        if req.host:
            parts += (b"X-Forwarded-Host: ", req.host, _CRLF)
        parts.append(self._proto)
        if req.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        if self._upgrade and parser.should_upgrade():
            req.upgrade = True
            parts += (b"Connection: Upgrade\r\nUpgrade: ", self._upgrade, _CRLF)
        parts.append(_CRLF)
        return b"".join(parts)

    def _route(self, req: _GatewayRequest) -> None:
        """Match the request against the listener's routes and carry out the action (or answer)."""
        listener = self.listener
        host_text = req.host.decode("latin-1")
        url = self._url
        target = url.decode("latin-1")
        if not target.startswith("/"):
            split = urlsplit(target)  # absolute form (a client talking to a proxy) or `*`
            target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        path, _, query = target.partition("?")
        host = host_of(host_text)
        routes = host_routes(listener.routes, host) if listener.has_routes() else None
        entry = None
        if routes is not None:
            headers = self._header_map() if routes.uses_headers else None
            entry = find_in(routes, path, req.method.decode("latin-1"), headers, query)
        if entry is None:
            if routes is None:
                message = self.gateway.not_found(listener, host_text)
            else:
                message = f'no rule for {req.method.decode("latin-1")} {path} among the routes of host "{host_text}"'
            self._answer(req, 404, message)
            return
        action = entry.action
        if action.redirect is not None:
            if self._upgrade:
                req.keep_alive = False  # the client's next bytes would be the refused protocol's
            location = redirect_location(
                action.redirect, scheme="https" if listener.tls else "http", host=host, port=_port_of(host_text),
                path=path, query=query, matched_prefix=action.matched_prefix, scheme_ports=self.gateway.scheme_ports,
            )
            if not wire_safe(location.encode("latin-1", "replace")):
                self._answer(req, 500, f"{action.source or 'route'}: the redirect location holds CR, LF or NUL")
                return
            req.local = redirect_response(action.redirect.status_code, location, req.keep_alive, req.method == b"HEAD")
            req.out = _DISCARD
            return
        backend = pick_backend(action, random.random) if action.problem is None else None
        if backend is None or backend.problem is not None:
            why = (backend.problem if backend is not None else None) or action.problem or "no backend has a weight above 0"
            self._answer(req, 500, f"{action.source or 'route'}: {why}")
            return
        route, why = self.gateway.table.backend_route(backend)
        if route is None:
            self._answer(req, 500, f"{action.source or 'route'}: {why}")
            return
        req.route = route
        req.source = action.source or None  # names the Ingress/route rule in the request's flow
        headers_out = headers_rule = self._headers
        if action.request_headers is not None or backend.request_headers is not None:
            headers_rule = _changed(headers_out, action.request_headers)
            headers_out = _changed(headers_rule, backend.request_headers)
            if not wire_safe(*headers_out[2::4]):
                self._answer(req, 500, f"{action.source or 'route'}: a request header value holds CR, LF or NUL")
                return
        host_out, url_out = req.host, url
        rewrite = action.rewrite
        if rewrite is not None:
            if rewrite.hostname:
                host_out = rewrite.hostname.encode("latin-1", "replace")
            if rewrite.path is not None:
                new_path = rewrite_path(path, rewrite.path, action.matched_prefix)
                url_out = (new_path + (f"?{query}" if query else "")).encode("latin-1", "replace")
            if not wire_safe(host_out, url_out) or b" " in url_out:
                self._answer(req, 500, f"{action.source or 'route'}: the rewritten host or path holds CR, LF, NUL or a space")
                return
        req.response_changes = tuple(c for c in (action.response_headers, backend.response_headers) if c is not None)
        head = self._head(req, url_out, host_out, headers_out)
        req.out = _Buffer(head, self.transport)
        if action.mirrors and not req.upgrade:
            # the copy carries the rule's filters, not the primary backendRef's own
            self._plan_mirror(req, action, head if headers_rule is headers_out else self._head(req, url_out, host_out, headers_rule))

    def _plan_mirror(self, req: _GatewayRequest, action: Action, head: bytes) -> None:
        routes: list[Route] = []
        for mirror in action.mirrors:
            if mirror.backend.problem is not None or (mirror.percent < 100 and random.random() * 100 >= mirror.percent):
                continue
            route, why = self.gateway.table.backend_route(mirror.backend)
            if route is None:
                log.debug("%s: mirror skipped: %s", action.source, why)
                continue
            routes.append(route)
        if routes:
            req.mirror = MirrorCopy(routes, head)

    def on_message_begin(self) -> None:
        self._begin_message()
        self._apart: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        HttpClient.on_header(self, name, value)
        if name.lower() in _KEPT_APART:
            self._apart += (name, b": ", value, _CRLF)

    def _header_map(self) -> dict[str, str]:
        headers = self._headers + self._apart
        out = {"host": self._host.decode("latin-1")}
        for name, value in zip(headers[0::4], headers[2::4], strict=True):
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            out[key] = f"{out[key]},{text}" if key in out else text
        return out

    def _answer(self, req: _Request, status: int, message: str) -> None:
        """Answer `req` from the gateway, once its body is in."""
        if self._upgrade:
            req.keep_alive = False  # the client's next bytes would be the refused protocol's
        if status >= 500 or status == 404:
            log.info("%s %s from %s: %d %s", req.method.decode(), req.host.decode("latin-1"), self.client_ip, status, message)
        req.local = local_response(status, message, req.keep_alive, req.method == b"HEAD")
        req.out = _DISCARD

    # -- body, dispatch -----------------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        HttpClient.on_body(self, body)
        req = self.req
        if req is not None and req.mirror is not None:  # type: ignore[attr-defined]
            copy: MirrorCopy = req.mirror  # type: ignore[attr-defined]
            copy.size += len(body)
            if copy.size > MIRROR_BODY_LIMIT:
                req.mirror = None  # type: ignore[attr-defined]
                log.debug("mirror skipped: the request body is over %d bytes", MIRROR_BODY_LIMIT)
            else:
                copy.chunks.append(b"".join((b"%x\r\n" % len(body), body, _CRLF)) if req.chunked else body)

    def on_message_complete(self) -> None:
        req = self.req
        HttpClient.on_message_complete(self)
        if req is not None and req.mirror is not None:  # type: ignore[attr-defined]
            copy: MirrorCopy = req.mirror  # type: ignore[attr-defined]
            req.mirror = None  # type: ignore[attr-defined]
            if req.chunked:
                copy.chunks.append(b"0\r\n\r\n")
            self.gateway.mirror(copy, self.client_ip)

    def _dispatch(self, req: _Request) -> None:
        self.current = req
        if req.local is not None:
            # answered here: once the body is read (on_message_complete writes it), unless the
            # connection ends after this request anyway
            if req.complete or not req.keep_alive:
                self._write_local(req)
            return
        now = self.ctx.loop.time()
        self.deadline = now + self.ctx.settings.idle_timeout
        self.seen = self.activity
        assert req.route is not None
        self._send(req, req.route, [], [], now)

    def _attach(self, req: _Request, conn: HttpUpstream) -> None:
        changes: tuple[HeaderChanges, ...] = getattr(req, "response_changes", ())
        close = not req.keep_alive and not req.upgrade
        if changes:
            conn.head_filter = functools.partial(rewrite_response_head, changes=changes, close=close)
        else:
            conn.head_filter = say_close if close else None
        conn._held = b""
        HttpClient._attach(self, req, conn)

    # -- HTTP/2 ---------------------------------------------------------------------------------------

    def _bad_request(self, exc: Exception, data: bytes = b"") -> None:
        if self.current is None and not self.queue and self.parser.get_method() == b"PRI":
            at = data.find(b"SM\r\n\r\n")
            if at >= 0:
                self._hand_to_h2(H2_PREFACE + data[at + 6 :])
                return
        super()._bad_request(exc, data)

    def _hand_to_h2(self, first: bytes) -> None:
        """The connection speaks HTTP/2 (ALPN h2, or the h2c preface): emulator/proxy/h2.py takes it."""
        transport = self.transport
        try:
            from .h2 import H2Gateway  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            body = b"HTTP/2 is not served by this gateway: use HTTP/1.1\n"
            transport.write(
                b"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            transport.close()
            return
        self.ctx.live.discard(self)
        self.closed = True  # this object is done with the connection
        protocol = H2Gateway(
            self.ctx, self.gateway.routing, self.gateway.table, self.listener.key, self.listener.tls,
            scheme_ports=self.gateway.scheme_ports, mirror=self.gateway.mirror,
        )
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if first:
            protocol.data_received(first)
