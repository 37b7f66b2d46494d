"""Forwarding names outside the cluster zone to upstream resolvers.

Default upstreams are the host's (/etc/resolv.conf), minus this server itself so that it never
forwards to itself. A query goes to each upstream in turn until one answers within its share of the
timeout; when none does, the caller answers SERVFAIL instead of leaving the client hanging.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path
from typing import cast

log = logging.getLogger("emulator.dns")

Address = tuple[str, int]


def parse_upstream(text: str) -> Address:
    """ "1.1.1.1", "1.1.1.1:5353", "[::1]:53", "::1" → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host, port = text, 53
    ipaddress.ip_address(host)  # upstreams are addresses: resolving a name here would need DNS
    return host, port


def host_upstreams(own: Address, resolv_conf: str = "/etc/resolv.conf") -> list[Address]:
    """The nameservers of the host's resolv.conf, without this server (when it listens on port 53)."""
    try:
        text = Path(resolv_conf).read_text()
    except OSError:
        return []
    found: list[Address] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                address = (str(ipaddress.ip_address(fields[1].split("%")[0])), 53)
            except ValueError:
                continue
            if not _is_self(address, own) and address not in found:
                found.append(address)
    return found


DOCKER_RESOLVER = "127.0.0.11"


def _is_self(address: Address, own: Address) -> bool:
    if address[1] != own[1]:
        return False
    if address[0] == own[0]:
        return True
    # A wildcard bind answers on every local address, loopback included; except Docker's embedded
    # resolver, 127.0.0.11:53, which is NAT'ed to another port inside every container network.
    if address[0] == DOCKER_RESOLVER:
        return False
    return own[0] in ("0.0.0.0", "::") and ipaddress.ip_address(address[0]).is_loopback


def resolve_upstreams(configured: list[str] | None, own: Address) -> list[Address]:
    if configured is None:
        return host_upstreams(own)
    if not configured or [c.lower() for c in configured] == ["none"]:
        return []
    return [a for a in (parse_upstream(c) for c in configured) if not _is_self(a, own)]


class Upstreams:
    def __init__(self, servers: list[Address], timeout: float) -> None:
        self.servers = servers
        self.timeout = timeout

    def __bool__(self) -> bool:
        return bool(self.servers)

    async def query(self, message: bytes, tcp: bool = False) -> bytes | None:
        """The first upstream reply to `message` (same ID), or None when every upstream failed or timed out."""
        if not self.servers:
            return None
        share = self.timeout / len(self.servers)
        for server in self.servers:
            try:
                reply = await asyncio.wait_for(_ask_tcp(server, message) if tcp else _ask_udp(server, message), share)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as error:
                log.debug("upstream %s:%d failed: %r", server[0], server[1], error)
                continue
            if reply is not None:
                return reply
        return None


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self, message: bytes) -> None:
        self.message = message
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_datagram_endpoint hands a DatagramTransport (BaseProtocol's signature says BaseTransport).
        cast(asyncio.DatagramTransport, transport).sendto(self.message)

    def datagram_received(self, data: bytes, addr: object) -> None:
        # Only a reply to this query (same ID, QR set) ends the wait; stray packets are ignored.
        if len(data) >= 12 and data[:2] == self.message[:2] and data[2] & 0x80 and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _ask_udp(server: Address, message: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    # A fresh socket per query: a random source port, and no shared state to get wrong.
    transport, protocol = await loop.create_datagram_endpoint(lambda: _OneReply(message), remote_addr=server)
    try:
        return await protocol.reply
    finally:
        transport.close()


async def _ask_tcp(server: Address, message: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server[0], server[1])
    try:
        writer.write(len(message).to_bytes(2, "big") + message)
        size = int.from_bytes(await reader.readexactly(2), "big")
        return await reader.readexactly(size)
    finally:
        writer.close()
