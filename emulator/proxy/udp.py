"""UDP mode: a datagram relay with one upstream socket per client address (a "flow").

UDP has no connections, so the balancing unit is the flow, as in conntrack: the first datagram from a
client address picks an endpoint, later ones follow it, and replies come back from the service address.
A flow with no datagram either way for `udp_timeout` is forgotten; so is one whose endpoint left the
service (kube-proxy clears conntrack entries of removed UDP endpoints), and, past `udp_max_flows` per
listener, the least recently used.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from emulator.flows.log import SERVICE_KEYS

from .balancer import Backend
from .context import ProxyContext

log = logging.getLogger("emulator.proxy")

Address = tuple[str, int]
_MAX_PENDING = 64  # datagrams kept per flow while its upstream socket opens


class UdpListener(asyncio.DatagramProtocol):
    """The socket bound on the service address. `binding.route` is read per new flow, so an updated
    route takes effect without rebinding."""

    def __init__(self, ctx: ProxyContext, binding: Any) -> None:
        self.ctx = ctx
        self.binding = binding
        self.transport: Any = None
        self.flows: dict[Address, UdpFlow] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        flows = self.flows
        flow = flows.get(addr)
        if flow is None or (flow.backends is not self.binding.route.balancer.backends and not flow.still_routed()):
            flow = self._open(addr)
            if flow is None:
                return
        else:
            now = self.ctx.now
            if flow.active != now:
                # First datagram of this flow in this sweep tick: stamp it, and move it to the end so
                # that `flows` stays in least-recently-used order (the front is evicted first).
                flow.active = now
                del flows[addr]
                flows[addr] = flow
        flow.send(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP listener error: %s", exc)

    def _open(self, addr: Address) -> UdpFlow | None:
        ctx = self.ctx
        stale = self.flows.get(addr)
        if stale is not None:
            stale.close()
        while len(self.flows) >= ctx.settings.udp_max_flows:
            next(iter(self.flows.values())).close()  # the least recently used
        route = self.binding.route
        now = ctx.loop.time()
        backend = route.balancer.pick(addr[0], now)
        if backend is None:
            log.info("service %s has no ready endpoints: dropping datagram from %s", route.label, addr[0])
            if ctx.record is not None:
                ctx.record((now, "udp", addr[0], self.transport.get_extra_info("sockname"), SERVICE_KEYS[route], None, "error", "no ready endpoints", -1, -1, -1.0))
            return None
        allowed = ctx.refusal("UDP flow", addr[0], backend, "UDP", route.label) is None
        if allowed and ctx.record is not None:  # a new flow (a denied one is recorded by the policy hook)
            ctx.record((now, "udp", addr[0], self.transport.get_extra_info("sockname"), SERVICE_KEYS[route], backend, "allowed", None, -1, -1, -1.0))
        flow = UdpFlow(self, addr, backend, route.balancer.backends, allowed)
        self.flows[addr] = flow
        ctx.live.add(flow)
        if allowed:
            flow.task = ctx.loop.create_task(flow.open())
        return flow

    def close(self) -> None:
        for flow in list(self.flows.values()):
            flow.close()
        if self.transport is not None:
            self.transport.close()


class UdpFlow(asyncio.DatagramProtocol):
    """One client address relayed to one endpoint. A denied flow exists too: it drops datagrams
    quietly for its lifetime instead of logging a denial per datagram."""

    def __init__(
        self, listener: UdpListener, client: Address, backend: Backend, backends: list[Backend], allowed: bool
    ) -> None:
        ctx = listener.ctx
        self.ctx = ctx
        self.listener = listener
        self.client = client
        self.backend = backend
        self.backends = backends  # the route's endpoint list this flow was checked against (by identity)
        self.allowed = allowed
        self.transport: Any = None
        self.pending: list[bytes] = []
        self.task: asyncio.Task[None] | None = None
        self.active = ctx.now  # sweep-clock time of the last datagram either way
        self.deadline = ctx.loop.time() + ctx.settings.udp_timeout

    def still_routed(self) -> bool:
        """The service's endpoints changed: does this flow's endpoint remain one of them?"""
        backends = self.listener.binding.route.balancer.backends
        if self.backend not in backends:
            return False
        self.backends = backends
        return True

    async def open(self) -> None:
        loop = self.listener.ctx.loop
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: self, remote_addr=self.backend)
        except OSError as exc:
            log.warning("UDP flow %s -> %s:%d failed: %s", self.client[0], *self.backend, exc)
            self.close()
            return
        finally:
            self.task = None
        if self.listener.flows.get(self.client) is not self:
            transport.close()
            return
        for data in self.pending:
            transport.sendto(data)
        self.pending.clear()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data)
        elif self.allowed and len(self.pending) < _MAX_PENDING:
            self.pending.append(data)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.active = self.ctx.now
        listener = self.listener.transport
        if listener is not None and not listener.is_closing():
            listener.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from the endpoint: UDP's way of saying "nobody listens"; the client
        # sees silence, as it would in a cluster.
        log.debug("UDP flow %s -> %s:%d: %s", self.client[0], *self.backend, exc)

    def on_deadline(self, now: float) -> None:
        deadline = self.ctx.idle_deadline(self.active, self.ctx.settings.udp_timeout)
        if deadline > now:
            self.deadline = deadline
        else:
            self.close()

    def shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        if self.listener.flows.get(self.client) is self:
            del self.listener.flows[self.client]
        self.listener.ctx.live.discard(self)
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.transport is not None:
            self.transport.close()
