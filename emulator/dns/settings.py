"""The DNS server's settings: where it listens, which zone it owns, where other names go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class DnsSettings:
    host: str = "127.0.0.1"
    port: int = 1053  # above 1024 so no root is needed; 53 where the user may bind it
    zone: str = "cluster.local"
    ttl: int = 5  # CoreDNS's default (kubeadm configures 30)
    default_namespace: str = "default"  # the namespace of the bare `svc` short form
    # Resolvers for names outside the zone as "ip" or "ip:port" ("[v6]:port"). None: the host's own
    # (/etc/resolv.conf, minus this server); [] or ["none"]: answer REFUSED.
    upstreams: list[str] | None = None
    upstream_timeout: float = 2.0  # seconds for one forwarded query, all upstreams together; then SERVFAIL
    # Who may use this server as a forwarder, so that binding off loopback does not make an open
    # resolver: "loopback" clients only, also "private" networks (containers, LAN), or "any".
    forward_for: Literal["loopback", "private", "any"] = "private"
    tcp_idle_timeout: float = 10.0  # seconds a TCP connection may sit without a complete query
    tcp_max_connections: int = 256
    max_cached_answers: int = 200_000  # packed answers kept; the cache starts over when full
