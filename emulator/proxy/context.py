"""What every proxied connection shares: settings, the policy hook, the backend pool, the live set.

Timeouts are enforced by one sweeper over the live set (see `server.py`) instead of a timer per
connection: a connection records a `deadline` when its phase changes and notes its activity, and the
sweeper calls `on_deadline` only for the few that are due. Byte pumps stamp activity with `now`, the
loop time of the last sweep: an attribute read, where a clock call per packet would cost more.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .pool import BackendPool

if TYPE_CHECKING:
    from emulator.flows.log import FlowLog

    from .l7 import HttpUpstream

log = logging.getLogger("emulator.proxy")

DENIAL_LOG_INTERVAL = 5.0  # seconds between two log lines for the same denied (source, destination, reason)


@dataclass(slots=True)
class ProxySettings:
    node_address: str = "127.0.0.1"  # where NodePort services listen
    gateway_host: str = "127.0.0.1"
    gateway_port: int | None = 8081  # None: no Host-header gateway
    # the gateway's HTTPS port (Ingress TLS, Gateway HTTPS listeners on 443; certificates by SNI). None: none;
    # the command line's default is 8443 (--gateway-https-port), a library user asks for it
    gateway_https_port: int | None = None
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
    udp_max_flows: int = 1024  # UDP flows kept per listener; past that the least recently used is dropped
    preserve_client_ip: bool = True  # TCP mode connects to the endpoint from the client's loopback address
    backlog: int = 1024
    # addresses beyond loopback that services ask for (externalIPs, load-balancer IPs) are listened on
    # only when the user said so (--listen-beyond-loopback); the node address is the user's own choice
    listen_beyond_loopback: bool = False
    # endpoints the gateway never forwards to: the emulator's own API ("*" as the address: any)
    protected: frozenset[tuple[str, int]] = frozenset()
    sweep_interval: float = 1.0
    bind_retry_interval: float = 5.0  # listeners that failed to bind are retried this often
    flows: FlowLog | None = None  # where connections, flows and requests are recorded (emulator/flows/); None: nowhere


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
    __slots__ = (
        "settings",
        "policy",
        "pool",
        "live",
        "loop",
        "now",
        "_denials",
        "record",
        "header_after",
        "exchange_after",
        "keepalive_after",
    )

    def __init__(
        self, settings: ProxySettings, policy: ConnectionPolicy | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.pool: BackendPool[HttpUpstream] = BackendPool(settings.pool_max_idle)
        self.live: set[Timed] = set()
        self.loop = loop
        self.now = loop.time()  # the sweep clock: set by the sweeper on every pass
        # HTTP mode's deadlines are `now` plus these: the timeout and one sweep, since `now` is up to one
        # sweep behind (an attribute read where the loop's clock is a call; never early)
        self.header_after = settings.sweep_interval + settings.header_timeout
        self.exchange_after = settings.sweep_interval + settings.idle_timeout
        self.keepalive_after = settings.sweep_interval + settings.keepalive_timeout
        self._denials: dict[tuple[str, str, str], tuple[float, int]] = {}  # logged at, suppressed since
        # a flow record's one tuple goes here (FlowLog.record); None: flows are off
        self.record = settings.flows.record if settings.flows is not None else None

    def idle_deadline(self, active: float, timeout: float) -> float:
        """When something last active at sweep-clock time `active` has been quiet for `timeout`. The
        activity happened within one sweep after `active`, so that sweep is added: never early."""
        return active + self.settings.sweep_interval + timeout

    def refusal(self, kind: str, src_ip: str, dst: tuple[str, int], protocol: str, label: str) -> str | None:
        """Why the NetworkPolicy hook refuses this connection/request/flow (logged), or None when it may go."""
        if self.policy is None:
            return None
        allowed, reason = self.policy.check(src_ip, dst[0], dst[1], protocol)
        if allowed:
            return None
        self.denied(kind, src_ip, dst, protocol, label, reason)
        if self.record is not None and kind != "request":  # a request's flow is recorded with its 403
            self.record((self.loop.time(), "udp" if protocol == "UDP" else "tcp", src_ip, None, label, dst, "denied", reason, -1, -1, -1.0))
        return reason

    def denied(self, kind: str, src_ip: str, dst: tuple[str, int], protocol: str, label: str, reason: str) -> None:
        """Log a denial; the same (source, destination, reason) at most once per DENIAL_LOG_INTERVAL,
        with a count of the ones left out (a client retrying in a loop must not flood the log)."""
        key = (src_ip, f"{dst[0]}:{dst[1]}/{protocol}", reason)
        now = self.loop.time()
        seen = self._denials.get(key)
        if seen is not None and now - seen[0] < DENIAL_LOG_INTERVAL:
            self._denials[key] = (seen[0], seen[1] + 1)
            return
        if len(self._denials) >= 4096:
            self._denials.clear()  # bounded: forgetting only means logging a denial again
        self._denials[key] = (now, 0)
        more = f" ({seen[1]} more like it in the last {now - seen[0]:.0f}s)" if seen is not None and seen[1] else ""
        log.warning(
            "network policy denied %s %s -> %s:%d/%s (service %s): %s%s",
            kind,
            src_ip,
            dst[0],
            dst[1],
            protocol,
            label,
            reason,
            more,
        )
