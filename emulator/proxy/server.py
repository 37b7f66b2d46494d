"""The service proxy: store events in, listeners on every service address out.

`Proxy.apply` is the store listener: it updates the routing table synchronously (a few dict writes) and,
when the set of addresses changed, schedules one reconcile task that binds and unbinds sockets; a burst
of events costs one reconcile. A sweeper task enforces timeouts, expires pooled connections and retries
binds that failed. Ingress and Gateway API objects go to the proxy's `RoutingIndex`
(emulator/routing/index.py); when it reports a change, the gateway takes the compiled routing once per
burst, swaps it in, updates its certificates and binds the ports Gateway listeners ask for
(emulator/proxy/gateway.py). The runtime does:

    proxy = Proxy(settings, policy=None)
    store.subscribe(proxy.apply)
    await proxy.start()
    ...
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from emulator.routing.index import RoutingIndex
from emulator.routing.model import HTTP, HTTPS, SHARED_HTTP, SHARED_HTTPS, ListenerKey, RoutingConfig
from emulator.routing.sources import RoutingSettings
from emulator.store.events import Event

from .context import ConnectionPolicy, ProxyContext, ProxySettings
from .gateway import Gateway
from .gatewaytls import ALPN_H1, ALPN_H2, CertificateSet
from .listeners import Listeners, bind_problem
from .table import ProxyTable

__all__ = ["Proxy", "ProxySettings", "ConnectionPolicy"]

log = logging.getLogger("emulator.proxy")
ROUTING_DELAY = 0.05  # seconds routing changes are gathered before one compilation (a burst of applies: one)


class Proxy:
    def __init__(self, settings: ProxySettings | None = None, policy: ConnectionPolicy | None = None) -> None:
        self.settings = settings or ProxySettings()
        s = self.settings
        self.table = ProxyTable(s.node_address, s.zone, s.default_namespace)
        self._policy = policy
        self._ctx: ProxyContext | None = None
        self._listeners: Listeners | None = None
        self._gateway: asyncio.Server | None = None  # what loop.create_server returns
        self._gateway_problem: dict[str, Any] | None = None
        self._gateway_tls: asyncio.Server | None = None
        self._gateway_tls_problem: dict[str, Any] | None = None
        # Ingress and Gateway API routing, compiled by the index; carried out by the gateway
        self.routing_index = RoutingIndex(RoutingSettings(
            gateway_host=s.gateway_host, http_port=s.gateway_port or 0, https_port=s.gateway_https_port, zone=s.zone,
        ))
        self._routing_watched = frozenset(self.routing_index.watched)
        self._routing_dirty = True
        self.gateway: Gateway | None = None
        self._certificates: dict[ListenerKey, CertificateSet] = {}
        self._extra: dict[ListenerKey, asyncio.Server] = {}  # ports Gateway listeners ask for
        self._extra_problems: dict[ListenerKey, dict[str, Any]] = {}
        self._extra_task: asyncio.Task[None] | None = None
        self._extra_dirty = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty = False
        self._full = True  # the next reconcile looks at every address (at start, after a failure)
        self._reconciler: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._last_bind_retry = 0.0
        # called with each new RoutingConfig once the gateway routes by it (the runtime feeds DNS from it)
        self.routing_observers: list[Callable[[RoutingConfig], None]] = []
        # called with the Gateway listener ports the gateway could not bind ((port, protocol) -> why)
        # whenever that set changes (the Gateway API status controller says so in the Gateways' status)
        self.bind_observers: list[Callable[[dict[ListenerKey, str]], None]] = []
        self._unbound: dict[ListenerKey, str] = {}

    # -- the policy hook ----------------------------------------------------------------------------

    @property
    def policy(self) -> ConnectionPolicy | None:
        return self._policy

    @policy.setter
    def policy(self, policy: ConnectionPolicy | None) -> None:
        """Install or remove the NetworkPolicy hook; it applies to new connections and requests only."""
        self._policy = policy
        if self._ctx is not None:
            self._ctx.policy = policy

    # -- store listener -----------------------------------------------------------------------------

    @property
    def routing_watched(self) -> tuple[str, ...]:
        """The store keys routing reads (replayed to `apply` at start, besides services and endpoints)."""
        return self.routing_index.watched

    def apply(self, event: Event) -> None:
        """Take a store event (services, endpoints, what routing reads; others are ignored). Never raises."""
        try:
            if self.table.apply(event):
                self._schedule()
            if event.resource in self._routing_watched and self.routing_index.apply(event) and not self._routing_dirty:
                self._routing_dirty = True
                self._call_soon(self._refresh_routing, ROUTING_DELAY)
        except Exception:
            log.exception("proxy could not apply %r", event)

    def _call_soon(self, callback: Any, delay: float = 0.0) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not started yet: start() does it
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.call_later(delay, callback) if delay else loop.call_soon(callback)
        elif delay:
            loop.call_soon_threadsafe(loop.call_later, delay, callback)
        else:
            loop.call_soon_threadsafe(callback)

    def _refresh_routing(self) -> None:
        """Take the compiled routing (once per burst of changes) and swap it in with one assignment."""
        if not self._routing_dirty or self.gateway is None:
            return
        self._routing_dirty = False
        try:
            config = self.routing_index.compiled().config
        except Exception:
            log.exception("gateway: the routing could not be compiled; the previous one stays")
            return
        self.gateway.swap(config)
        for observer in self.routing_observers:
            try:
                observer(config)
            except Exception:
                log.exception("gateway: a routing observer failed")
        for key, certificates in self._certificates.items():
            routes = config.listeners.get(key)
            certificates.update(routes.certificates if routes is not None else ())
        self._extra_dirty = True
        if self._extra_task is None or self._extra_task.done():
            self._extra_task = asyncio.get_running_loop().create_task(self._reconcile_extra())

    def _schedule(self) -> None:
        self._dirty = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not started yet: start() reconciles everything
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._kick()
        else:
            loop.call_soon_threadsafe(self._kick)

    def _kick(self) -> None:
        if self._reconciler is None or self._reconciler.done():
            self._reconciler = asyncio.get_running_loop().create_task(self._reconcile())

    async def _reconcile(self) -> None:
        await asyncio.sleep(0)  # let the rest of a burst of events land first
        while self._dirty and self._listeners is not None:
            self._dirty = False
            # the addresses whose route changed, and those whose bind failed (retried): not every listener
            keys: set[tuple[str, int, str]] | None = self.table.take_changed() | self._listeners.problems.keys()
            if self._full:
                self._full = False
                keys = None
            try:
                await self._listeners.reconcile(self.table.listeners, keys)
            except Exception:
                self._full = True  # what this pass did not get to is looked at again on the next one
                log.exception("proxy listener reconcile failed")

    async def sync(self) -> None:
        """Wait until the bound listeners (and the gateway's routing and ports) reflect every event
        applied so far."""
        while self._reconciler is not None and not self._reconciler.done():
            await asyncio.shield(self._reconciler)
        if self._dirty and self._listeners is not None:
            self._kick()
            await self.sync()
            return
        if self._routing_dirty and self.gateway is not None:
            self._refresh_routing()
        while self._extra_task is not None and not self._extra_task.done():
            await asyncio.shield(self._extra_task)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        s = self.settings
        self._ctx = ProxyContext(s, self._policy, loop)
        self._listeners = Listeners(self._ctx, self.table, None)
        self.gateway = Gateway(self._ctx, self.table)
        if s.gateway_port is not None:
            await self._bind_gateway()
        if s.gateway_https_port is not None:
            await self._bind_gateway_tls()
        self._routing_dirty = True
        self._refresh_routing()
        self._dirty = True
        self._kick()
        await self.sync()
        self._report_unbound()
        self._sweeper = loop.create_task(self._sweep())

    async def _bind_gateway(self) -> None:
        """Bind the Host-header gateway; a failure is a problem with its fix, retried by the sweeper."""
        ctx, s = self._ctx, self.settings
        assert ctx is not None and s.gateway_port is not None and self._listeners is not None
        assert self.gateway is not None
        port = self.gateway.port(SHARED_HTTP, tls=False, service_names=True)
        try:
            self._gateway = await ctx.loop.create_server(
                self.gateway.client(port),
                s.gateway_host,
                s.gateway_port,
                reuse_address=True,
                backlog=s.backlog,
            )
        except OSError as exc:
            problem = bind_problem(s.gateway_host, s.gateway_port, "TCP", "the service gateway", exc, None)
            if (self._gateway_problem or {}).get("reason") != problem["reason"]:
                log.error("%s; fix: %s", problem["message"], problem["fix"])
            self._gateway_problem = problem
            return
        # The bound address, not the asked one: port 0 means "any free port".
        self._listeners.gateway = address = self.gateway_address
        port.port = self.gateway.scheme_ports["http"] = self._gateway.sockets[0].getsockname()[1]
        if self._gateway_problem is not None:
            self._gateway_problem = None
            log.info("service gateway on http://%s (the earlier problem is gone)", address)
        else:
            log.info("service gateway on http://%s (route by Host: <service>.<namespace>)", address)

    def _tls_certificates(self, key: ListenerKey) -> CertificateSet:
        certificates = self._certificates.get(key)
        if certificates is None:
            s = self.settings
            alpn = ALPN_H2 if importlib.util.find_spec("h2") is not None else ALPN_H1
            certificates = CertificateSet([s.gateway_host, "localhost", "*.localhost"], alpn)
            if self.gateway is not None:
                routes = self.gateway.config.listeners.get(key)
                certificates.update(routes.certificates if routes is not None else ())
            self._certificates[key] = certificates
        return certificates

    async def _bind_gateway_tls(self) -> None:
        """The gateway's HTTPS port: Ingress TLS and Gateway HTTPS listeners on 443, certificates by SNI."""
        ctx, s = self._ctx, self.settings
        assert ctx is not None and s.gateway_https_port is not None and self.gateway is not None
        port = self.gateway.port(SHARED_HTTPS, tls=True, service_names=True)
        try:
            self._gateway_tls = await ctx.loop.create_server(
                self.gateway.client(port), s.gateway_host, s.gateway_https_port,
                ssl=self._tls_certificates(SHARED_HTTPS).front, reuse_address=True, backlog=s.backlog,
            )
        except OSError as exc:
            problem = bind_problem(s.gateway_host, s.gateway_https_port, "TCP", "the gateway's HTTPS port", exc, None)
            if (self._gateway_tls_problem or {}).get("reason") != problem["reason"]:
                log.error("%s; fix: %s", problem["message"], problem["fix"])
            self._gateway_tls_problem = problem
            return
        port.port = self.gateway.scheme_ports["https"] = self._gateway_tls.sockets[0].getsockname()[1]
        address = self.gateway_tls_address
        if self._gateway_tls_problem is not None:
            self._gateway_tls_problem = None
            log.info("gateway HTTPS on https://%s (the earlier problem is gone)", address)
        else:
            log.info("gateway HTTPS on https://%s (Ingress TLS and Gateway HTTPS listeners, certificates by SNI)", address)

    async def _reconcile_extra(self) -> None:
        """Bind the ports Gateway listeners ask for besides 80 and 443 (on the gateway host), unbind
        those no listener wants any more."""
        await asyncio.sleep(0)
        while self._extra_dirty and self.gateway is not None:
            self._extra_dirty = False
            try:
                await self._bind_extra(self.gateway.config)
            except Exception:
                log.exception("gateway listener reconcile failed")
        self._report_unbound()

    async def _bind_extra(self, config: RoutingConfig) -> None:
        ctx, s, gateway = self._ctx, self.settings, self.gateway
        assert ctx is not None and gateway is not None
        wanted = {
            key for key in config.listeners if key not in (SHARED_HTTP, SHARED_HTTPS) and key[1] in (HTTP, HTTPS)
        }
        for key in [k for k in self._extra if k not in wanted]:
            self._extra.pop(key).close()
            self._certificates.pop(key, None)
            gateway.ports.pop(key, None)
            log.info("gateway: stopped listening on %s:%d for a Gateway listener", s.gateway_host, key[0])
        for key in [k for k in self._extra_problems if k not in wanted]:
            del self._extra_problems[key]
        for key in sorted(wanted):
            if key in self._extra:
                continue
            number, protocol = key
            what = f"a Gateway {protocol} listener on port {number}"
            refused = self._extra_refusal(number, what)
            if refused is not None:
                if self._extra_problems.get(key, {}).get("reason") != refused["reason"]:
                    log.warning("%s; fix: %s", refused["message"], refused["fix"])
                self._extra_problems[key] = refused
                continue
            port = gateway.port(key, tls=protocol == HTTPS, service_names=False)
            try:
                server = await ctx.loop.create_server(
                    gateway.client(port), s.gateway_host, number,
                    ssl=self._tls_certificates(key).front if protocol == HTTPS else None,
                    reuse_address=True, backlog=s.backlog,
                )
            except OSError as exc:
                gateway.ports.pop(key, None)
                problem = bind_problem(s.gateway_host, number, "TCP", what, exc, None)
                if self._extra_problems.get(key, {}).get("reason") != problem["reason"]:
                    log.error("%s; fix: %s", problem["message"], problem["fix"])
                self._extra_problems[key] = problem
                continue
            port.port = number
            if key not in gateway.config.listeners:  # gone while we bound it
                server.close()
                gateway.ports.pop(key, None)
                continue
            self._extra[key] = server
            if self._extra_problems.pop(key, None) is not None:
                log.info("gateway: listening on %s:%d for %s (the earlier problem is gone)", s.gateway_host, number, what)
            else:
                log.info("gateway: listening on %s:%d for %s", s.gateway_host, number, what)

    def unbound_listeners(self) -> dict[ListenerKey, str]:
        """The Gateway listener ports the gateway could not bind, each with why and what to do about it."""
        problems = dict(self._extra_problems)
        if self._gateway_problem is not None:
            problems[SHARED_HTTP] = self._gateway_problem
        if self._gateway_tls_problem is not None:
            problems[SHARED_HTTPS] = self._gateway_tls_problem
        return {key: f"{problem['message']}; fix: {problem['fix']}" for key, problem in problems.items()}

    def _report_unbound(self) -> None:
        unbound = self.unbound_listeners()
        if unbound != self._unbound:
            self._unbound = unbound
            for observer in self.bind_observers:
                observer(dict(unbound))

    def _extra_refusal(self, number: int, what: str) -> dict[str, Any] | None:
        """A Gateway listener's port is bound on the gateway host only where service listeners may be:
        loopback, unless the user said --listen-beyond-loopback."""
        s = self.settings
        try:
            loopback = ipaddress.ip_address(s.gateway_host).is_loopback
        except ValueError:
            loopback = s.gateway_host == "localhost"
        if loopback or s.listen_beyond_loopback:
            return None
        return {
            "address": s.gateway_host, "port": number, "protocol": "TCP", "for": what, "reason": "BeyondLoopback",
            "message": f"not listening on {s.gateway_host}:{number} for {what}: {s.gateway_host} is not a loopback address",
            "fix": "listen on ports 80/443 of the Gateway (served on the gateway's own ports), or start serve with --listen-beyond-loopback",
        }

    async def close(self) -> None:
        for task in (self._sweeper, self._reconciler, self._extra_task):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._sweeper = self._reconciler = self._extra_task = None
        for server in (self._gateway, self._gateway_tls, *self._extra.values()):
            if server is not None:
                server.close()
        self._gateway = self._gateway_tls = None
        self._extra.clear()
        if self.gateway is not None:
            self.gateway.close()
        if self._listeners is not None:
            self._listeners.close_all()
        ctx = self._ctx
        if ctx is not None:
            for conn in list(ctx.live):
                conn.shutdown()
            ctx.live.clear()
            ctx.pool.close_all()
        self._loop = None
        # Let the transports deliver their connection_lost callbacks before the caller moves on.
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def _sweep(self) -> None:
        ctx = self._ctx
        assert ctx is not None
        s = self.settings
        while True:
            await asyncio.sleep(s.sweep_interval)
            ctx.now = now = ctx.loop.time()
            try:
                for conn in [c for c in ctx.live if c.deadline and c.deadline <= now]:
                    conn.on_deadline(now)
                ctx.pool.expire(now, s.pool_idle_timeout)
                for route in self.table.all_routes():
                    route.balancer.expire(now)
                if (
                    self._listeners is not None
                    and (self._listeners.problems or self._gateway_problem or self._gateway_tls_problem or self._extra_problems)
                    and now - self._last_bind_retry >= s.bind_retry_interval
                ):
                    self._last_bind_retry = now
                    if self._gateway_problem is not None:
                        await self._bind_gateway()
                    if self._gateway_tls_problem is not None:
                        await self._bind_gateway_tls()
                    self._report_unbound()
                    if self._extra_problems and (self._extra_task is None or self._extra_task.done()):
                        self._extra_dirty = True
                        self._extra_task = ctx.loop.create_task(self._reconcile_extra())
                    if self._listeners.problems:
                        self._dirty = True
                        self._kick()
            except Exception:
                log.exception("proxy sweep failed")

    # -- status -------------------------------------------------------------------------------------

    @property
    def gateway_address(self) -> str | None:
        """host:port the Host-header gateway is bound to (the real port when 0 was asked for)."""
        if self._gateway is None or not self._gateway.sockets:
            return None
        host, port = self._gateway.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    @property
    def gateway_tls_address(self) -> str | None:
        """host:port of the gateway's HTTPS port (the real port when 0 was asked for)."""
        if self._gateway_tls is None or not self._gateway_tls.sockets:
            return None
        host, port = self._gateway_tls.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    @property
    def gateway_tls_certificate(self) -> bytes | None:
        """PEM of the self-signed certificate the HTTPS port presents when no Secret's certificate fits."""
        certificates = self._certificates.get(SHARED_HTTPS)
        return certificates.default_pem if certificates is not None else None

    def gateway_listening(self) -> list[dict[str, Any]]:
        """The gateway's ports bound right now: its own HTTP and HTTPS ports and those Gateway listeners
        asked for, each with the listener it serves and how many hosts are routed there (for the API)."""
        gateway = self.gateway
        if gateway is None:
            return []
        servers = {SHARED_HTTP: self._gateway, SHARED_HTTPS: self._gateway_tls, **self._extra}
        out = []
        for key, server in servers.items():
            port = gateway.ports.get(key)
            if server is None or not server.sockets or port is None:
                continue
            address, number = server.sockets[0].getsockname()[:2]
            routes = port.routes
            out.append({
                "address": address, "port": number, "protocol": "HTTPS" if port.tls else "HTTP",
                "listener": f"{key[0]}/{key[1]}", "serviceNames": port.service_names,
                "hosts": len(routes.exact) + len(routes.wildcards) + (1 if routes.any_host is not None else 0),
            })
        return out

    def problems(self) -> list[dict[str, Any]]:
        """Listeners that could not be bound, and addresses two services claim, each with `message` and
        `fix` (for the API; each was logged once when it arose)."""
        out = [p for p in (self._gateway_problem, self._gateway_tls_problem) if p]
        out += [self._extra_problems[k] for k in sorted(self._extra_problems)]
        if self._listeners is not None:
            out += [self._listeners.problems[k] for k in sorted(self._listeners.problems)]
        return out + self.table.conflicts()

    def listening(self) -> list[dict[str, Any]]:
        """The addresses bound right now and the service port behind each."""
        if self._listeners is None:
            return []
        return [
            {
                "address": k[0],
                "port": k[1],
                "protocol": k[2],
                "service": f"{b.route.namespace}/{b.route.service}",
                "servicePort": b.route.port,
                "mode": b.route.mode,
            }
            for k, b in sorted(self._listeners.bound.items())
        ]
