"""The service proxy: store events in, listeners on every service address out.

`Proxy.apply` is the store listener: it updates the routing table synchronously (a few dict writes) and,
when the set of addresses changed, schedules one reconcile task that binds and unbinds sockets; a burst
of events costs one reconcile. A sweeper task enforces timeouts, expires pooled connections and retries
binds that failed. The runtime does:

    proxy = Proxy(settings, policy=None)
    store.subscribe(proxy.apply)
    await proxy.start()
    ...
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from emulator.store.events import Event

from .context import ConnectionPolicy, ProxyContext, ProxySettings
from .l7 import HttpClient
from .listeners import Listeners, bind_problem
from .table import ProxyTable

__all__ = ["Proxy", "ProxySettings", "ConnectionPolicy"]

log = logging.getLogger("emulator.proxy")


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty = False
        self._reconciler: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._last_bind_retry = 0.0

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

    def apply(self, event: Event) -> None:
        """Take a store event (services, endpoints; others are ignored). Never raises."""
        try:
            if self.table.apply(event):
                self._schedule()
        except Exception:
            log.exception("proxy could not apply %r", event)

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
            try:
                await self._listeners.reconcile(dict(self.table.listeners))
            except Exception:
                log.exception("proxy listener reconcile failed")

    async def sync(self) -> None:
        """Wait until the bound listeners reflect every event applied so far."""
        while self._reconciler is not None and not self._reconciler.done():
            await asyncio.shield(self._reconciler)
        if self._dirty and self._listeners is not None:
            self._kick()
            await self.sync()

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        s = self.settings
        self._ctx = ProxyContext(s, self._policy, loop)
        self._listeners = Listeners(self._ctx, self.table, None)
        if s.gateway_port is not None:
            await self._bind_gateway()
        self._dirty = True
        self._kick()
        await self.sync()
        self._sweeper = loop.create_task(self._sweep())

    async def _bind_gateway(self) -> None:
        """Bind the Host-header gateway; a failure is a problem with its fix, retried by the sweeper."""
        ctx, s = self._ctx, self.settings
        assert ctx is not None and s.gateway_port is not None and self._listeners is not None
        try:
            self._gateway = await ctx.loop.create_server(
                lambda: HttpClient(ctx, None, self.table),
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
        if self._gateway_problem is not None:
            self._gateway_problem = None
            log.info("service gateway on http://%s (the earlier problem is gone)", address)
        else:
            log.info("service gateway on http://%s (route by Host: <service>.<namespace>)", address)

    async def close(self) -> None:
        for task in (self._sweeper, self._reconciler):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._sweeper = self._reconciler = None
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None
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
                    and (self._listeners.problems or self._gateway_problem)
                    and now - self._last_bind_retry >= s.bind_retry_interval
                ):
                    self._last_bind_retry = now
                    if self._gateway_problem is not None:
                        await self._bind_gateway()
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

    def problems(self) -> list[dict[str, Any]]:
        """Listeners that could not be bound, and addresses two services claim, each with `message` and
        `fix` (for the API; each was logged once when it arose)."""
        out = [self._gateway_problem] if self._gateway_problem else []
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
