"""Who the DNS server serves how (pure): which clients it forwards names outside the zone for, and
how TCP connections are grouped by source for the per-source connection limit.

The forwarding choice is `emulator serve --dns-forward-from`: `local` (the default: loopback, RFC 1918,
RFC 6598 shared address space and IPv6 unique local addresses), `loopback`, `any`, or CIDRs. Python's
`is_private` is not used: it also counts 0.0.0.0/8, 240.0.0.0/4, 198.18.0.0/15 and the documentation
ranges, none of which is a client on a network of ours.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# "local", "loopback", "any", or the networks whose clients are forwarded for.
ForwardFrom = Literal["local", "loopback", "any"] | tuple[Network, ...]

LOCAL_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",  # RFC 1918
        "192.168.0.0/16",  # RFC 1918
        "100.64.0.0/10",  # RFC 6598 (carrier-grade NAT, also Tailscale and some container networks)
        "fc00::/7",  # RFC 4193 unique local addresses
    )
)


def parse_forward_from(text: str) -> ForwardFrom:
    """`local`, `loopback`, `any` (any letter case), or comma-separated CIDRs (host bits allowed:
    `10.1.2.3/8` is 10.0.0.0/8). Raises ValueError for anything else (config.check reports it first)."""
    word = text.strip().lower()
    if word == "local":
        return "local"
    if word == "loopback":
        return "loopback"
    if word == "any":
        return "any"
    networks = tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
    if not networks:
        raise ValueError(f"no CIDR in {text!r}")
    return networks


def client_address(client: str) -> Address | None:
    """A client's address as asyncio reports it (an IPv6 one may carry `%scope`); an IPv4 client of a
    dual-stack socket (`::ffff:10.1.2.3`) is its IPv4 address. None when it is not an address."""
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forward_allowed(client: str, choice: ForwardFrom) -> bool:
    """Whether the server forwards names outside the zone for `client` (no open resolver)."""
    if choice == "any":
        return True
    address = client_address(client)
    if address is None:
        return False
    if choice == "loopback":
        return address.is_loopback
    if choice == "local":
        return address.is_loopback or any(address in network for network in LOCAL_NETWORKS)
    return any(address in network for network in choice)


def source_key(client: str) -> str:
    """What the per-source TCP connection limit counts by: the client's IPv4 address, or its IPv6 /64
    (one host usually owns a whole /64, so counting single IPv6 addresses would limit nothing)."""
    address = client_address(client)
    if address is None:
        return client
    if isinstance(address, ipaddress.IPv6Address) and not address.is_loopback:
        return f"{ipaddress.IPv6Network((address, 64), strict=False)}"
    return str(address)
