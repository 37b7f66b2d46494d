"""Bound sockets brought in line with the addresses the routing table wants, and bind failures explained.

Binding is asynchronous and can fail for reasons the user can fix (a port below 1024 without the right
to bind it, a port another process holds, an address that is not configured), so a failure is not an
error of the whole proxy: it is recorded as a problem with the fix in plain words, the other listeners
keep working, and the bind is retried later.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import sys
from typing import Any

from .context import ProxyContext
from .l4 import TcpClient
from .l7 import HttpClient
from .table import ListenerKey, ProxyTable, Route
from .udp import UdpListener

log = logging.getLogger("emulator.proxy")


class Binding:
    """One bound address. `route` is swapped in place when the service behind it changes, so the
    socket stays bound and new connections see the new route."""

    __slots__ = ("key", "route", "server", "udp")

    def __init__(self, key: ListenerKey, route: Route) -> None:
        self.key = key
        self.route = route
        self.server: asyncio.AbstractServer | None = None
        self.udp: UdpListener | None = None

    def close(self) -> None:
        if self.server is not None:
            # Stop accepting; connections already established go on until either side ends them, as
            # conntrack keeps established flows of a deleted service.
            self.server.close()
        if self.udp is not None:
            self.udp.close()


def _unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def _problem(key: ListenerKey, route: Route, reason: str, what: str, fix: str) -> dict[str, Any]:
    address, port, protocol = key
    return {
        "address": address, "port": port, "protocol": protocol, "for": f"service {route.label}", "reason": reason,
        "message": f"not listening on {address}:{port}/{protocol} for service {route.label}: {what}", "fix": fix,
    }


def bind_problem(
    address: str, port: int, protocol: str, what: str, exc: OSError, gateway: str | None
) -> dict[str, Any]:
    """A bind failure as something a person can act on."""
    via_gateway = (
        f"; meanwhile HTTP services stay reachable through the gateway at http://{gateway} with a Host header such as `web.default`"
        if gateway
        else ""
    )
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        start = _unprivileged_port_start()
        reason = "PermissionDenied"
        fix = (
            f"ports below {start} need privileges: allow them for everyone with `sudo sysctl net.ipv4.ip_unprivileged_port_start={port}` "
            f"(or 0), or give the interpreter the capability with `sudo setcap cap_net_bind_service=+ep {sys.executable}`, "
            f"or use a service port >= {start}{via_gateway}"
        )
    elif code == errno.EADDRINUSE:
        reason = "AddressInUse"
        fix = f"another process holds {address}:{port} (find it with `ss -lpn 'sport = :{port}'`); stop it or change the port, the proxy retries by itself{via_gateway}"
    elif code == errno.EADDRNOTAVAIL:
        reason = "AddressNotAvailable"
        fix = (
            f"{address} is not an address of this machine: use address ranges inside 127.0.0.0/8 (routed to loopback on Linux), "
            f"or add it with `sudo ip addr add {address}/32 dev lo`{via_gateway}"
        )
    else:
        reason = "BindFailed"
        fix = f"check that {address}:{port} can be bound on this machine{via_gateway}"
    return {
        "address": address,
        "port": port,
        "protocol": protocol,
        "for": what,
        "reason": reason,
        "message": f"cannot listen on {address}:{port}/{protocol} for {what}: {exc.strerror or exc}",
        "fix": fix,
    }


def bound_socket(address: str, port: int, protocol: str) -> socket.socket:
    """A socket bound to an IP address (checked by `_refusal`), made here rather than by the event loop:
    given a host, uvloop resolves it on its thread pool, and waking that thread for every service
    created cost more than the bind. Failures read as the loop's own (`bind_problem` words them)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # The protocol named, as getaddrinfo would: asyncio turns Nagle off only on sockets whose proto is
    # IPPROTO_TCP, and an accepted socket inherits its listener's (0 would leave Nagle on every client).
    if protocol == "UDP":
        sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    else:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if protocol != "UDP":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            raise OSError(
                exc.errno, f"error while attempting to bind on address {(address, port)!r}: {(exc.strerror or '').lower()}"
            ) from None
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Listeners:
    def __init__(self, ctx: ProxyContext, table: ProxyTable, gateway: str | None) -> None:
        self.ctx = ctx
        self.table = table
        self.gateway = gateway  # "host:port" for messages, when the gateway is up
        self.bound: dict[ListenerKey, Binding] = {}
        self.problems: dict[ListenerKey, dict[str, Any]] = {}

    async def reconcile(self, desired: dict[ListenerKey, Route], keys: set[ListenerKey] | None = None) -> None:
        """Bind what `desired` has and nothing else. With `keys`, only those addresses are looked at (the
        ones whose route changed, and those to retry): the others are bound to their route already."""
        if keys is None:
            gone = [k for k in self.bound if k not in desired]
            forgotten = [k for k in self.problems if k not in desired]
            todo: list[tuple[ListenerKey, Route]] = list(desired.items())
        else:
            gone = [k for k in keys if k in self.bound and k not in desired]
            forgotten = [k for k in keys if k in self.problems and k not in desired]
            todo = [(k, desired[k]) for k in keys if k in desired]
        for key in gone:
            self.bound.pop(key).close()
            log.info("stopped listening on %s:%d/%s", *key)
        for key in forgotten:
            del self.problems[key]
        for key, route in todo:
            binding = self.bound.get(key)
            if binding is not None:
                binding.route = route
                continue
            binding = Binding(key, route)
            refused = self._refusal(key, route)
            if refused is not None:
                if self.problems.get(key, {}).get("reason") != refused["reason"]:
                    log.warning("%s; fix: %s", refused["message"], refused["fix"])
                self.problems[key] = refused
                continue
            try:
                await self._bind(binding)
            except OSError as exc:
                problem = bind_problem(key[0], key[1], key[2], f"service {route.label}", exc, self.gateway)
                if self.problems.get(key, {}).get("reason") != problem["reason"]:
                    log.error("%s; fix: %s", problem["message"], problem["fix"])
                self.problems[key] = problem
                continue
            # The table may have moved on while we awaited the bind.
            current = self.table.listeners.get(key)
            if current is None:
                binding.close()
                continue
            binding.route = current
            self.bound[key] = binding
            if self.problems.pop(key, None) is not None:
                log.info("listening on %s:%d/%s for service %s (the earlier problem is gone)", *key, route.label)
            else:
                log.debug("listening on %s:%d/%s for service %s", *key, route.label)

    def _refusal(self, key: ListenerKey, route: Route) -> dict[str, Any] | None:
        """Why an address a service asks for is not listened on: not an IP address (never resolved), or
        beyond loopback without the user's word (it would put the service on the network)."""
        address = key[0]
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return _problem(key, route, "NotAnAddress", f"{address!r} is not an IP address", "use an IP address in spec.externalIPs")
        settings = self.ctx.settings
        if ip.is_loopback or address == settings.node_address or settings.listen_beyond_loopback:
            return None
        return _problem(
            key, route, "BeyondLoopback", f"{address} is not a loopback address: listening there would expose the service to the network",
            "use an address in 127.0.0.0/8, or start serve with --listen-beyond-loopback if the service is meant to be reachable from other machines",
        )

    async def _bind(self, binding: Binding) -> None:
        address, port, protocol = binding.key
        sock = bound_socket(address, port, protocol)
        try:
            await self._serve(binding, sock)
        except BaseException:
            sock.close()  # (closing it twice, after the loop did, is harmless)
            raise

    async def _serve(self, binding: Binding, sock: socket.socket) -> None:
        ctx = self.ctx
        if binding.key[2] == "UDP":
            _, proto = await ctx.loop.create_datagram_endpoint(lambda: UdpListener(ctx, binding), sock=sock)
            binding.udp = proto
            return

        dst = binding.key[:2]  # what a connection reached, for its flow record (no getsockname per connection)

        def accept() -> asyncio.Protocol:
            # The mode is read per connection, so an appProtocol change needs no rebind.
            route = binding.route
            if route.mode == "http":
                return HttpClient(ctx, binding)  # reads binding.route per request
            return TcpClient(ctx, route, dst)

        binding.server = await ctx.loop.create_server(accept, sock=sock, backlog=ctx.settings.backlog)

    def close_all(self) -> None:
        bound, self.bound = self.bound, {}
        for binding in bound.values():
            binding.close()
