"""Address and port allocation: cluster IPs, pod IPs, load-balancer IPs and node ports.

An allocator hands out integers from a range (an IPv4 network's host addresses, or a port range),
never the same one twice while it is held. Nothing is persisted here: allocations are facts of the
stored objects, so at start the registry claims every address the store already holds, and a
restart can never hand out an address that an acknowledged object owns.
"""

from __future__ import annotations

import ipaddress
import socket

from emulator import errors


def ip_int(ip: str) -> int:
    """A dotted IPv4 address as an integer: inet_aton is ~20x cheaper than ipaddress, and start-up
    claims every stored pod's address."""
    try:
        return int.from_bytes(socket.inet_aton(ip), "big")
    except OSError:
        raise ValueError(f"not an IPv4 address: {ip!r}") from None


class RangeFull(Exception):
    """No free value is left in the range."""


class Allocator:
    """Integers in [first, last]. Dynamic picks start in the upper part of the range, like the API
    server's service IP allocator, so that the lower part stays free for requested (static) values."""

    def __init__(self, first: int, last: int, dynamic_start: int | None = None) -> None:
        if last < first:
            raise ValueError("empty range")
        self.first = first
        self.last = last
        self._held: set[int] = set()
        self._cursor = dynamic_start if dynamic_start is not None else first

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    @property
    def free(self) -> int:
        return self.size - len(self._held)

    def contains(self, value: int) -> bool:
        return self.first <= value <= self.last

    def is_held(self, value: int) -> bool:
        return value in self._held

    def claim(self, value: int) -> bool:
        """Hold a specific value; False when it is already held."""
        if value in self._held:
            return False
        self._held.add(value)
        return True

    def allocate(self) -> int:
        if len(self._held) >= self.size:
            raise RangeFull()
        value = self._cursor
        # Amortised O(1): the cursor only moves forward (wrapping), skipping held values.
        while value in self._held:
            value = value + 1 if value < self.last else self.first
        self._held.add(value)
        self._cursor = value + 1 if value < self.last else self.first
        return value

    def release(self, value: int) -> None:
        self._held.discard(value)


class IPRange:
    """Host addresses of an IPv4 network (network and broadcast addresses excluded)."""

    def __init__(self, cidr: str, reserve_first: bool = False) -> None:
        self.network = ipaddress.IPv4Network(cidr, strict=False)
        first = int(self.network.network_address) + 1
        last = int(self.network.broadcast_address) - 1
        if self.network.prefixlen >= 31:
            first, last = int(self.network.network_address), int(self.network.broadcast_address)
        self.reserved_first = first if reserve_first else None
        dynamic_start = first + (last - first + 1) // 2 if last - first > 16 else first
        self._alloc = Allocator(first, last, dynamic_start)
        if reserve_first:
            self._alloc.claim(first)

    @property
    def first_address(self) -> str:
        return str(ipaddress.IPv4Address(self._alloc.first))

    def contains(self, ip: str) -> bool:
        try:
            return self._alloc.contains(ip_int(ip))
        except ValueError:
            return False

    def allocate(self) -> str:
        # skip x.y.z.0 and x.y.z.255 inside larger ranges: valid hosts, but people and some tools
        # read them as network or broadcast addresses
        skipped: list[int] = []
        try:
            value = self._alloc.allocate()
            while value & 0xFF in (0, 255) and self.network.prefixlen < 24:
                skipped.append(value)
                value = self._alloc.allocate()
        finally:
            for held in skipped:
                self._alloc.release(held)
        return str(ipaddress.IPv4Address(value))

    def claim(self, ip: str) -> bool:
        return self._alloc.claim(ip_int(ip))

    def release(self, ip: str) -> None:
        value = ip_int(ip)
        if value != self.reserved_first:
            self._alloc.release(value)


class PortRange:
    def __init__(self, spec: str) -> None:
        low, _, high = spec.partition("-")
        self.first, self.last = int(low), int(high or low)
        self._alloc = Allocator(self.first, self.last)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def contains(self, port: int) -> bool:
        return self._alloc.contains(port)

    def allocate(self) -> int:
        return self._alloc.allocate()

    def claim(self, port: int) -> bool:
        return self._alloc.claim(port)

    def release(self, port: int) -> None:
        self._alloc.release(port)


class AddressPlan:
    """The cluster's address ranges, as configured."""

    def __init__(self, service_cidr: str, pod_cidr: str, lb_cidr: str, node_ports: str) -> None:
        # The first service address belongs to the `kubernetes` service.
        self.service_ips = IPRange(service_cidr, reserve_first=True)
        self.pod_ips = IPRange(pod_cidr)
        self.lb_ips = IPRange(lb_cidr)
        self.node_ports = PortRange(node_ports)


def full(what: str, path: str, kind: str, group: str, name: str, cidr: str) -> errors.StatusError:
    """The range ran out: a clear 422 that says which range and how to get a bigger one."""
    return errors.invalid_object(
        kind, group, name,
        [errors.FieldError(path, "FieldValueInvalid", f"failed to allocate a {what}: range {cidr} is full; delete unused objects or start the emulator with a larger range")],
    )
