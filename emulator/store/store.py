"""The store: every object of every kind, its resourceVersion, and the stream of changes.

Objects are kept in memory as their JSON bytes (compact, and invisible to the garbage collector, which
never has to scan them), indexed resource → namespace → name. Every write takes the next global
resourceVersion, is persisted by the backend before the call returns, and then becomes an `Event`
that listeners receive in commit order. A bounded history of events serves watches that resume
from an older resourceVersion; anything older than that history is answered with 410 Expired.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from typing import Any

import orjson

from emulator import errors
from emulator.store.backend import Backend, MemoryBackend, Row
from emulator.store.events import ADDED, DELETED, MODIFIED, Event, Listener

log = logging.getLogger(__name__)

Bucket = dict[str, tuple[int, bytes]]  # name -> (resourceVersion, JSON)


class Store:
    def __init__(self, backend: Backend | None = None, history_size: int = 10_000) -> None:
        self.backend: Backend = backend or MemoryBackend()
        self._objects: dict[str, dict[str, Bucket]] = {}
        self.rv = 0
        self._history: deque[Event] = deque(maxlen=history_size)
        # Watches may resume from any resourceVersion >= this one.
        self._history_floor = 0
        self._listeners: list[Listener] = []
        self._pending: deque[Event] = deque()
        self._dispatching = False

    # -- start ---------------------------------------------------------------------------------------

    def load(self) -> int:
        """Read back what the backend persisted; returns the number of objects."""
        rv, rows = self.backend.load()
        count = 0
        for row in rows:
            self._bucket(row.resource, row.namespace)[row.name] = (row.rv, row.raw)
            count += 1
        self.rv = rv
        self._history_floor = rv
        return count

    # -- reads ---------------------------------------------------------------------------------------

    def _bucket(self, resource: str, namespace: str) -> Bucket:
        by_ns = self._objects.get(resource)
        if by_ns is None:
            by_ns = self._objects[resource] = {}
        bucket = by_ns.get(namespace)
        if bucket is None:
            bucket = by_ns[namespace] = {}
        return bucket

    def get_raw(self, resource: str, namespace: str, name: str) -> tuple[int, bytes] | None:
        bucket = self._objects.get(resource, {}).get(namespace)
        return bucket.get(name) if bucket else None

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.get_raw(resource, namespace, name)
        return orjson.loads(found[1]) if found else None

    def raws(self, resource: str, namespace: str | None = None) -> Iterator[bytes]:
        """Stored JSON of every object of a kind, in one namespace or all, ordered by namespace/name."""
        by_ns = self._objects.get(resource, {})
        spaces = [namespace] if namespace is not None else sorted(by_ns)
        for ns in spaces:
            bucket = by_ns.get(ns)
            if bucket:
                for name in sorted(bucket):
                    yield bucket[name][1]

    def objects(self, resource: str, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        for raw in self.raws(resource, namespace):
            yield orjson.loads(raw)

    def count(self, resource: str, namespace: str | None = None) -> int:
        by_ns = self._objects.get(resource, {})
        if namespace is not None:
            return len(by_ns.get(namespace, ()))
        return sum(len(b) for b in by_ns.values())

    def namespaces_with(self, resource: str) -> list[str]:
        return [ns for ns, bucket in self._objects.get(resource, {}).items() if bucket]

    # -- writes --------------------------------------------------------------------------------------

    def create(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object; stamps metadata.resourceVersion. Raises AlreadyExists."""
        bucket = self._bucket(resource, namespace)
        if name in bucket:
            raise errors.already_exists(resource, name)
        return self._put(ADDED, resource, namespace, name, obj, bucket)

    def update(
        self, resource: str, namespace: str, name: str, obj: dict[str, Any], expected_rv: int | None = None
    ) -> dict[str, Any]:
        """Replace an existing object. `expected_rv` (optimistic concurrency) → 409 Conflict when stale."""
        bucket = self._bucket(resource, namespace)
        current = bucket.get(name)
        if current is None:
            raise errors.not_found(resource, name)
        if expected_rv is not None and expected_rv != current[0]:
            raise errors.conflict(resource, name)
        return self._put(MODIFIED, resource, namespace, name, obj, bucket)

    def delete(self, resource: str, namespace: str, name: str, expected_rv: int | None = None) -> dict[str, Any]:
        """Remove an object; returns its last state carrying the deletion's resourceVersion."""
        bucket = self._bucket(resource, namespace)
        current = bucket.get(name)
        if current is None:
            raise errors.not_found(resource, name)
        if expected_rv is not None and expected_rv != current[0]:
            raise errors.conflict(resource, name)
        rv = self.rv + 1
        obj = orjson.loads(current[1])
        obj["metadata"]["resourceVersion"] = str(rv)
        raw = orjson.dumps(obj)
        self.backend.commit(rv, (), ((resource, namespace, name),))
        self.rv = rv
        del bucket[name]
        self._emit(Event(DELETED, resource, namespace, name, rv, raw))
        return obj

    def _put(
        self, kind: str, resource: str, namespace: str, name: str, obj: dict[str, Any], bucket: Bucket
    ) -> dict[str, Any]:
        rv = self.rv + 1
        obj["metadata"]["resourceVersion"] = str(rv)
        raw = orjson.dumps(obj)
        # Durable first: if the backend fails, memory and listeners never see the change.
        self.backend.commit(rv, (Row(resource, namespace, name, rv, raw),), ())
        self.rv = rv
        bucket[name] = (rv, raw)
        self._emit(Event(kind, resource, namespace, name, rv, raw))
        return obj

    # -- events --------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def replay(self, listener: Listener, resources: tuple[str, ...]) -> None:
        """Hand a new listener the current objects as ADDED events (the informer's initial list)."""
        for resource in resources:
            for ns, bucket in list(self._objects.get(resource, {}).items()):
                for name, (rv, raw) in list(bucket.items()):
                    listener(Event(ADDED, resource, ns, name, rv, raw))

    def _emit(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._history_floor = self._history[0].rv
        self._history.append(event)
        self._pending.append(event)
        if self._dispatching:
            # A listener wrote to the store: deliver this event after the current one reached everyone.
            return
        self._dispatching = True
        try:
            while self._pending:
                current = self._pending.popleft()
                for listener in tuple(self._listeners):
                    try:
                        listener(current)
                    except Exception:  # a broken listener must not lose the write for the others
                        log.exception("store listener %r failed on %r", listener, current)
        finally:
            self._dispatching = False

    def events_since(self, rv: int) -> list[Event]:
        """Every change after `rv` still in the history; raises 410 Expired when `rv` is too old."""
        if rv < self._history_floor:
            raise errors.expired(rv, self._history_floor)
        if rv >= self.rv:
            return []
        return [e for e in self._history if e.rv > rv]

    def close(self) -> None:
        self.backend.close()
