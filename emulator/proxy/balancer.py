"""Choosing an endpoint for a new connection or request: round-robin, ClientIP affinity, failover.

kube-proxy spreads *new connections* over the ready endpoints of a service port and, with
`sessionAffinity: ClientIP`, keeps sending one client address to the same endpoint until that client has
been quiet for `timeoutSeconds`. This module is that decision and nothing else: no sockets, no clocks of
its own (the caller passes `now`), so it is tested directly.
"""

from __future__ import annotations

from collections.abc import Collection

Backend = tuple[str, int]  # (endpoint IP, target port)


class Balancer:
    """Round-robin over one service port's ready endpoints, optionally pinned per client IP."""

    __slots__ = ("backends", "affinity_timeout", "_next", "_pins")

    def __init__(self, backends: list[Backend] | None = None, affinity_timeout: float = 0.0) -> None:
        self.backends: list[Backend] = backends or []
        self.affinity_timeout = affinity_timeout  # seconds; 0 = no affinity
        self._next = 0
        self._pins: dict[str, tuple[Backend, float]] = {}  # client IP -> (endpoint, expires at)

    def set_backends(self, backends: list[Backend]) -> None:
        # Keep the cursor where it was (modulo the new size) so that an endpoint change does not make
        # the next few connections all land on the first endpoint.
        self.backends = backends
        if backends:
            self._next %= len(backends)
        else:
            self._next = 0
        if self._pins:
            alive = set(backends)
            self._pins = {ip: pin for ip, pin in self._pins.items() if pin[0] in alive}

    def set_affinity(self, timeout: float) -> None:
        if timeout != self.affinity_timeout:
            self.affinity_timeout = timeout
            self._pins.clear()

    def pick(self, client_ip: str, now: float = 0.0, exclude: Collection[Backend] = ()) -> Backend | None:
        """The endpoint for a new connection from `client_ip`, skipping `exclude` (endpoints that just
        refused). None when no usable endpoint is left."""
        backends = self.backends
        n = len(backends)
        if n == 0:
            return None
        if self.affinity_timeout:
            pin = self._pins.get(client_ip)
            if pin is not None and pin[1] > now and pin[0] not in exclude:
                backend = pin[0]
                self._pins[client_ip] = (backend, now + self.affinity_timeout)
                return backend
        i = self._next
        if not exclude:
            # The common case, kept to an index and an increment.
            self._next = i + 1 if i + 1 < n else 0
            backend = backends[i]
        else:
            for _ in range(n):
                candidate = backends[i]
                i = i + 1 if i + 1 < n else 0
                if candidate not in exclude:
                    break
            else:
                return None
            self._next = i
            backend = candidate
        if self.affinity_timeout:
            self._pins[client_ip] = (backend, now + self.affinity_timeout)
        return backend

    def expire(self, now: float) -> None:
        """Forget pins of clients that have been quiet for longer than the timeout."""
        if self._pins:
            self._pins = {ip: pin for ip, pin in self._pins.items() if pin[1] > now}
