"""The DNS server's settings: where it listens, which zone it owns, where other names go."""

from __future__ import annotations

from dataclasses import dataclass

from emulator.dns.sources import ForwardFrom, parse_forward_from


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
    # resolver (`--dns-forward-from`, parsed by sources.parse_forward_from): "local" (loopback, RFC 1918,
    # RFC 6598 and ULA clients), "loopback", "any", or a tuple of networks.
    forward_from: ForwardFrom = "local"
    max_pending_forwards: int = 1024  # upstream lookups in flight; past that SERVFAIL at once rather than queue
    tcp_idle_timeout: float = 10.0  # seconds a TCP connection may stay open after its last complete query
    tcp_query_timeout: float = 3.0  # seconds from a query's first byte until it must be complete
    tcp_max_connections: int = 256  # open TCP connections, all clients together
    tcp_max_per_source: int = 16  # open TCP connections from one client address (IPv6: one /64)
    # Domains besides the cluster zone whose Ingress and Gateway API hostnames are answered with the
    # gateway's address (`--gateway-domain`); names elsewhere are the user's own and are forwarded.
    gateway_domains: tuple[str, ...] = ("localhost",)
    max_cached_answers: int = 200_000  # packed answers kept; the cache starts over when full

    def __post_init__(self) -> None:
        # Also as text (what --dns-forward-from takes): "10.0.0.0/8,fd00::/8". Anything else raises ValueError.
        if isinstance(self.forward_from, str):
            self.forward_from = parse_forward_from(self.forward_from)
