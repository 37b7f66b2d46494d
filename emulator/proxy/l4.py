"""TCP mode: one client connection spliced to one endpoint connection, bytes pumped both ways.

This is kube-proxy's model (balance per connection, then get out of the way). The pump is two asyncio
Protocols that write straight into each other's transport; flow control is the transports' own: when
one side's write buffer is full, the other side stops reading until it drains. Half-closes are passed
on, so request/response protocols that signal the end with a FIN keep working.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

from emulator.flows.log import SERVICE_KEYS

from .balancer import Backend
from .context import ProxyContext
from .table import Route

log = logging.getLogger("emulator.proxy")

_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class _Pending:
    """Stands in for the endpoint's transport while it is being connected: keeps what arrives."""

    __slots__ = ("chunks", "eof")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.eof = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class TcpClient(asyncio.Protocol):
    """The client side of a spliced pair; owns the pair's lifetime and its idle deadline."""

    __slots__ = (
        "ctx",
        "route",
        "client",
        "upstream",
        "client_ip",
        "task",
        "active",
        "deadline",
        "eofs",
        "closed",
        "upstream_side",
        "backend",
        "sent",
        "received",
        "opened",
        "dst",
    )

    def __init__(self, ctx: ProxyContext, route: Route | None, dst: Any = None) -> None:
        self.ctx = ctx
        self.route = route
        self.client: Any = None
        self.upstream: Any = _Pending()
        self.upstream_side: TcpUpstream | None = None
        self.client_ip = ""
        self.task: asyncio.Task[None] | None = None
        self.active = ctx.now  # sweep-clock time of the client's last bytes
        self.deadline = 0.0
        self.eofs = 0  # bit 1: client sent FIN, bit 2: endpoint sent FIN
        self.closed = False
        self.backend: Backend | None = None  # the endpoint connected to, for the flow record
        self.sent = self.received = 0  # bytes from the client / to it
        self.opened = 0.0
        self.dst: Any = dst  # the address the client reached (recorded with flows only; None: asked of the socket)

    # -- client transport callbacks -----------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.client = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        ctx = self.ctx
        ctx.live.add(self)
        self.opened = ctx.loop.time()
        if ctx.record is not None and self.dst is None:
            self.dst = transport.get_extra_info("sockname")
        self.deadline = self.opened + ctx.settings.idle_timeout
        self.active = ctx.now
        # Nothing to read into until the endpoint is connected; let the kernel buffer hold it.
        transport.pause_reading()
        self.task = ctx.loop.create_task(self._connect())

    def data_received(self, data: bytes) -> None:
        self.upstream.write(data)
        self.active = self.ctx.now
        self.sent += len(data)

    def eof_received(self) -> bool:
        if self.upstream.can_write_eof():
            self.upstream.write_eof()
        self.eofs |= 1
        if self.eofs == 3:
            self._close()
        return True

    def pause_writing(self) -> None:
        self.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.upstream.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ctx = self.ctx
        ctx.live.discard(self)
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.upstream.close()
        self.upstream_side = None  # (it holds this pair: no cycle left for the collector)
        if ctx.record is not None and self.backend is not None and self.route is not None:
            now = ctx.loop.time()
            ctx.record((now, "tcp", self.client_ip, self.dst, SERVICE_KEYS[self.route], self.backend,
                        "allowed", None, self.sent, self.received, now - self.opened))

    # -- the pair -----------------------------------------------------------------------------------

    def _close(self) -> None:
        self.client.close()
        self.upstream.close()

    def on_deadline(self, now: float) -> None:
        side = self.upstream_side
        active = self.active if side is None or side.active < self.active else side.active
        deadline = self.ctx.idle_deadline(active, self.ctx.settings.idle_timeout)
        if deadline > now:
            self.deadline = deadline
            return
        log.info(
            "closing idle TCP connection from %s (no traffic for %.0fs)", self.client_ip, self.ctx.settings.idle_timeout
        )
        self.client.abort()
        self.upstream.abort()

    def shutdown(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.client is not None:
            self.client.abort()
        self.upstream.abort()

    async def _connect(self) -> None:
        route = self.route
        assert route is not None
        ctx = self.ctx
        settings = ctx.settings
        tried: list[Backend] = []
        failures: list[str] = []
        now = ctx.loop.time()
        while len(tried) < settings.connect_attempts:
            backend = route.balancer.pick(self.client_ip, now, tried)
            if backend is None:
                break
            if ctx.refusal("connection", self.client_ip, backend, "TCP", route.label) is not None:
                self.client.close()
                return
            try:
                async with asyncio.timeout(settings.connect_timeout):
                    transport = await self._open(backend)
            except (OSError, TimeoutError) as exc:
                tried.append(backend)
                failures.append(f"{backend[0]}:{backend[1]}: {_why(exc)}")
                continue
            self.task = None
            self.backend = backend
            self._connected(transport)
            return
        if failures:
            log.warning(
                "service %s: no endpoint accepted a connection from %s (%s)",
                route.label,
                self.client_ip,
                "; ".join(failures),
            )
        else:
            log.info("service %s has no ready endpoints: closing connection from %s", route.label, self.client_ip)
        if ctx.record is not None:
            why = "; ".join(failures) if failures else "no ready endpoints"
            ctx.record((ctx.loop.time(), "tcp", self.client_ip, self.dst, SERVICE_KEYS[route],
                        tried[-1] if tried else None, "error", why, -1, -1, ctx.loop.time() - self.opened))
        self.client.close()

    async def _open(self, backend: Backend) -> Any:
        loop = self.ctx.loop
        ip = self.client_ip
        if self.ctx.settings.preserve_client_ip and ip.startswith("127.") and ip != "127.0.0.1":
            # Connect from the client's own loopback address (a pod IP), so that the endpoint sees who
            # called, as it would in a cluster. IP_BIND_ADDRESS_NO_PORT defers the port choice to
            # connect(), so these binds do not use up ephemeral ports per address.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                try:
                    sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
                    sock.bind((ip, 0))
                except OSError:
                    sock.close()
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setblocking(False)
                await loop.sock_connect(sock, backend)
            except BaseException:
                sock.close()
                raise
            transport, _ = await loop.create_connection(self._upstream_side, sock=sock)
        else:
            transport, _ = await loop.create_connection(self._upstream_side, backend[0], backend[1])
        return transport

    def _upstream_side(self) -> TcpUpstream:
        self.upstream_side = side = TcpUpstream(self)
        return side

    def _connected(self, transport: Any) -> None:
        if self.closed:
            transport.close()
            return
        pending: _Pending = self.upstream
        self.upstream = transport
        if pending.chunks:
            transport.write(b"".join(pending.chunks))
        if pending.eof:
            transport.write_eof()
        self.client.resume_reading()


class TcpUpstream(asyncio.Protocol):
    """The endpoint side of a spliced pair. Holds the client transport itself and counts its own
    activity: the hot path touches only this object's slots."""

    __slots__ = ("pair", "client", "ctx", "active")

    def __init__(self, pair: TcpClient) -> None:
        self.pair = pair
        self.client: Any = pair.client
        self.ctx = pair.ctx
        self.active = pair.ctx.now  # sweep-clock time of the endpoint's last bytes

    def data_received(self, data: bytes) -> None:
        self.client.write(data)
        self.active = self.ctx.now
        self.pair.received += len(data)

    def eof_received(self) -> bool:
        pair = self.pair
        if self.client.can_write_eof():
            self.client.write_eof()
        pair.eofs |= 2
        if pair.eofs == 3:
            pair._close()
        return True

    def pause_writing(self) -> None:
        self.client.pause_reading()

    def resume_writing(self) -> None:
        self.client.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        # close() sends what is still buffered for the client first, then the FIN.
        self.client.close()


def splice(ctx: ProxyContext, client: Any, upstream: Any, client_ip: str) -> TcpClient:
    """Turn two already connected transports into a TCP-mode pair (HTTP mode after `101 Switching
    Protocols`: from then on the bytes are not HTTP any more)."""
    pair = TcpClient(ctx, None)
    pair.client = client
    pair.upstream = upstream
    pair.client_ip = client_ip
    pair.deadline = ctx.loop.time() + ctx.settings.idle_timeout
    client.set_protocol(pair)
    upstream.set_protocol(pair._upstream_side())
    ctx.live.add(pair)
    client.resume_reading()
    upstream.resume_reading()
    return pair


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno)) + " " + (exc.strerror or "")
    return str(exc) or type(exc).__name__
