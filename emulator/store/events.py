"""Store events: what every reactor (controllers, DNS, proxy, API watch streams) consumes.

An event carries the object's stored JSON bytes; `obj` decodes them once, on first use, so that a
listener that only needs the key never pays for a decode and every listener shares one decode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

View = TypeVar("View")


class Event:
    __slots__ = ("type", "resource", "namespace", "name", "rv", "raw", "_obj", "_view")

    def __init__(self, type: str, resource: str, namespace: str, name: str, rv: int, raw: bytes) -> None:
        self.type = type  # ADDED | MODIFIED | DELETED
        self.resource = resource  # ResourceType.key: "pods", "networkpolicies.networking.k8s.io"
        self.namespace = namespace  # "" for cluster-scoped kinds
        self.name = name
        self.rv = rv  # the global resourceVersion of this change
        self.raw = raw  # the object's JSON (for DELETED: its last state, with the new resourceVersion)
        self._obj: dict[str, Any] | None = None
        self._view: tuple[Callable[[dict[str, Any]], Any], Any] | None = None

    @property
    def obj(self) -> dict[str, Any]:
        """The object as a dict. Shared between listeners: treat it as read-only."""
        if self._obj is None:
            self._obj = orjson.loads(self.raw)
        return self._obj

    def view(self, parse: Callable[[dict[str, Any]], View]) -> View:
        """`parse(self.obj)` (a kind's read view, e.g. `ServiceView.of`), made once per event and shared
        by every listener: DNS, the proxy and the endpoints controller read one parse of a Service."""
        cached = self._view
        if cached is not None and cached[0] is parse:
            value: View = cached[1]
            return value
        made = parse(self.obj)
        self._view = (parse, made)
        return made

    def forget(self) -> None:
        """Drop the decoded copy and the view (they are made again on demand)."""
        self._obj = None
        self._view = None

    def __repr__(self) -> str:
        return f"Event({self.type} {self.resource} {self.namespace}/{self.name} rv={self.rv})"


# A listener is called synchronously, in commit order, after each change is durable. It must be quick
# (update an index, queue work) and must not raise. It may write to the store: such writes are
# delivered to every listener after the current event has reached them all.
Listener = Callable[[Event], None]
