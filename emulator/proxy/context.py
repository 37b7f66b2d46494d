"""What every proxied connection shares: settings, the policy hook, the backend pool, the live set.

Timeouts are enforced by one sweeper over the live set (see `server.py`) instead of a timer per
connection: a connection records a `deadline` when its phase changes and counts `activity`, and the
sweeper calls `on_deadline` only for the few that are due.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from .pool import BackendPool

log = logging.getLogger("emulator.proxy")


@dataclass(slots=True)
class ProxySettings:
    node_address: str = "127.0.0.1"  # where NodePort services listen
    gateway_host: str = "127.0.0.1"
    gateway_port: int | None = 8081  # None: no Host-header gateway
    zone: str = "cluster.local"
    default_namespace: str = "default"  # the namespace of a bare `Host: web` on the gateway
    connect_timeout: float = 5.0  # per endpoint tried
    connect_attempts: int = 3  # endpoints tried for one connection or request before giving up
    idle_timeout: float = 3600.0  # a TCP connection, or an HTTP exchange in flight, with no traffic at all
    header_timeout: float = 30.0  # an HTTP client must send a complete request head within this
    keepalive_timeout: float = 75.0  # an idle keep-alive HTTP client connection is closed after this
    pool_idle_timeout: float = 30.0  # pooled backend connections unused for this long are closed
    pool_max_idle: int = 128  # idle connections kept per endpoint
    udp_timeout: float = 30.0  # a UDP flow with no datagram either way is forgotten (conntrack's default)
    preserve_client_ip: bool = True  # TCP mode connects to the endpoint from the client's loopback address
    backlog: int = 1024
    sweep_interval: float = 1.0
    bind_retry_interval: float = 5.0  # listeners that failed to bind are retried this often


class ConnectionPolicy(Protocol):
    """The NetworkPolicy hook. Called for every new TCP connection and UDP flow (after the endpoint is
    chosen) and for every HTTP request. `src_ip` is the client's address as the proxy sees it (a client
    that binds its pod IP before connecting is that pod); `dst_ip`/`dst_port` are the endpoint's pod IP
    and target port. Returns (allowed, reason naming the deciding policy)."""

    def check(self, src_ip: str, dst_ip: str, dst_port: int, protocol: str) -> tuple[bool, str]: ...


class Timed(Protocol):
    deadline: float  # loop time; 0 = none

    def on_deadline(self, now: float) -> None: ...

    def shutdown(self) -> None: ...


class ProxyContext:
    __slots__ = ("settings", "policy", "pool", "live", "loop")

    def __init__(
        self, settings: ProxySettings, policy: ConnectionPolicy | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.pool = BackendPool(settings.pool_max_idle)
        self.live: set[Timed] = set()
        self.loop = loop

    def denied(self, kind: str, src_ip: str, dst: tuple[str, int], protocol: str, label: str, reason: str) -> None:
        log.warning(
            "network policy denied %s %s -> %s:%d/%s (service %s): %s",
            kind,
            src_ip,
            dst[0],
            dst[1],
            protocol,
            label,
            reason,
        )
