"""Idle keep-alive connections to endpoints, reused by HTTP mode across requests and clients.

Reusing a backend connection is what lets HTTP mode balance every request without paying a TCP
handshake per request. Connections are taken most-recently-used first (the warmest, and the least
likely to have been closed by the endpoint's own keep-alive timeout).
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from .balancer import Backend


class Pooled(Protocol):
    backend: Backend
    idle_since: float

    def close(self) -> None: ...


C = TypeVar("C", bound=Pooled)


class BackendPool(Generic[C]):
    """Idle connections of one kind `C` (the proxy pools `l7.HttpUpstream`), handed back as that kind."""

    __slots__ = ("idle", "max_idle")

    def __init__(self, max_idle: int) -> None:
        self.idle: dict[Backend, list[C]] = {}  # most recently used last (HTTP mode takes from here inline)
        self.max_idle = max_idle

    def take(self, backend: Backend) -> C | None:
        idle = self.idle.get(backend)
        if idle:
            return idle.pop()
        return None

    def put(self, conn: C, now: float) -> None:
        idle = self.idle.get(conn.backend)
        if idle is None:
            idle = self.idle[conn.backend] = []
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = now
        idle.append(conn)

    def discard(self, conn: C) -> None:
        """Forget a connection the endpoint closed while it sat in the pool."""
        idle = self.idle.get(conn.backend)
        if idle and conn in idle:
            idle.remove(conn)

    def expire(self, now: float, max_idle_time: float) -> None:
        for backend, idle in list(self.idle.items()):
            # Oldest are at the front: close from there until the first one young enough.
            n = 0
            while n < len(idle) and now - idle[n].idle_since > max_idle_time:
                n += 1
            if n:
                old, idle[:] = idle[:n], idle[n:]
                for conn in old:
                    conn.close()
            if not idle:
                del self.idle[backend]

    def close_all(self) -> None:
        idle, self.idle = self.idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def __len__(self) -> int:
        return sum(len(v) for v in self.idle.values())
