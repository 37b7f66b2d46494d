"""The store: every object of every kind, its resourceVersion, and the stream of changes.

Objects are kept in memory as their JSON bytes (compact, and invisible to the garbage collector, which
never has to scan them), indexed resource → namespace → name. Every write takes the next global
resourceVersion and becomes an `Event` that listeners receive in commit order once the backend has
persisted it (see "commit and delivery" below). A bounded history of events serves watches that resume
from an older resourceVersion; anything older than that history is answered with 410 Expired.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from emulator import errors
from emulator.observability.metrics import STORE_COMMIT_DURATION
from emulator.store.backend import Backend, MemoryBackend, Row
from emulator.store.events import ADDED, DELETED, MODIFIED, Event, Listener

log = logging.getLogger(__name__)


class Bucket:
    """One namespace's objects of one kind: name -> JSON and name -> resourceVersion. Two dicts of plain
    values (str, bytes, int) rather than one of (rv, JSON) tuples: such dicts are never tracked by the
    cyclic garbage collector, so its full collections do not walk every stored object (with 100,000 pods
    one walk took milliseconds, and grew with the store: the API's p99 with it)."""

    __slots__ = ("raws", "rvs")

    def __init__(self) -> None:
        self.raws: dict[str, bytes] = {}
        self.rvs: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.raws)

    def __contains__(self, name: str) -> bool:
        return name in self.raws

    def get(self, name: str) -> tuple[int, bytes] | None:
        raw = self.raws.get(name)
        return None if raw is None else (self.rvs[name], raw)

    def put(self, name: str, rv: int, raw: bytes) -> None:
        self.raws[name] = raw
        self.rvs[name] = rv

    def remove(self, name: str) -> None:
        del self.raws[name]
        del self.rvs[name]

    def items(self) -> list[tuple[str, int, bytes]]:
        """(name, resourceVersion, JSON) of every object, in insertion order (a copy)."""
        rvs = self.rvs
        return [(name, rvs[name], raw) for name, raw in self.raws.items()]


def _event_rv(event: Event) -> int:
    return event.rv


def _exact(raw: bytes) -> bytes:
    """A copy of exactly len(raw) bytes: orjson's result keeps a larger allocation alive."""
    return bytes(memoryview(raw))


def _final_state(batch: list[tuple[Event, Row | None]]) -> tuple[int, list[Row], list[tuple[str, str, str]]]:
    """What a batch leaves behind: the last change per object wins (create-then-delete stores nothing)."""
    final: dict[tuple[str, str, str], Row | None] = {}
    for event, row in batch:
        final[(event.resource, event.namespace, event.name)] = row
    puts = [row for row in final.values() if row is not None]
    deletes = [key for key, row in final.items() if row is None]
    return batch[-1][0].rv, puts, deletes


class Store:
    def __init__(self, backend: Backend | None = None, history_size: int = 10_000) -> None:
        self.backend: Backend = backend or MemoryBackend()
        self._objects: dict[str, dict[str, Bucket]] = {}
        self.rv = 0
        self._history: deque[Event] = deque(maxlen=history_size)
        # Watches may resume from any resourceVersion >= this one.
        self._history_floor = 0
        self._listeners: dict[Listener, None] = {}  # ordered, and a listener leaves in O(1)
        self._listening: tuple[Listener, ...] = ()  # the same, as delivery walks it (rebuilt on a change)
        self._unsaved: list[tuple[Event, Row | None]] = []  # written, not yet committed (None = deleted)
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._dispatching = False
        self._dispatched_rv = 0  # every change up to here is on disk and delivered
        self._dispatch_root: int | None = None  # the outside write whose reaction is being delivered
        self._root_of: dict[int, int] = {}  # rv of a listener's write -> the outside write it reacted to
        self._last_of_root: dict[int, int] = {}  # outside write -> last rv written in reaction to it
        self._progress: asyncio.Future[None] | None = None
        self._failure: Exception | None = None

    # -- start ---------------------------------------------------------------------------------------

    def load(self) -> int:
        """Read back what the backend persisted; returns the number of objects."""
        rv, rows = self.backend.load()
        count = 0
        for row in rows:
            self._bucket(row.resource, row.namespace).put(row.name, row.rv, row.raw)
            count += 1
        self.rv = self._dispatched_rv = self._history_floor = rv
        return count

    # -- reads ---------------------------------------------------------------------------------------

    def _bucket(self, resource: str, namespace: str) -> Bucket:
        by_ns = self._objects.get(resource)
        if by_ns is None:
            by_ns = self._objects[resource] = {}
        bucket = by_ns.get(namespace)
        if bucket is None:
            bucket = by_ns[namespace] = Bucket()
        return bucket

    def get_raw(self, resource: str, namespace: str, name: str) -> tuple[int, bytes] | None:
        bucket = self._objects.get(resource, {}).get(namespace)
        if bucket is None:
            return None
        raw = bucket.raws.get(name)
        return None if raw is None else (bucket.rvs[name], raw)

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.get_raw(resource, namespace, name)
        return orjson.loads(found[1]) if found else None

    def raws(self, resource: str, namespace: str | None = None) -> Iterator[bytes]:
        """Stored JSON of every object of a kind, in one namespace or all, ordered by namespace/name."""
        for _, _, _, raw in self.entries(resource, namespace):
            yield raw

    def entries(self, resource: str, namespace: str | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        """(namespace, name, resourceVersion, JSON) of every object of a kind, ordered by namespace/name."""
        by_ns = self._objects.get(resource, {})
        for ns in [namespace] if namespace is not None else sorted(by_ns):
            bucket = by_ns.get(ns)
            if bucket:
                raws, rvs = bucket.raws, bucket.rvs
                for name in sorted(raws):
                    yield ns, name, rvs[name], raws[name]

    def objects(self, resource: str, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        for raw in self.raws(resource, namespace):
            yield orjson.loads(raw)

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
        bucket, _ = self._current(resource, namespace, name, expected_rv)
        return self._put(MODIFIED, resource, namespace, name, obj, bucket)

    def delete(self, resource: str, namespace: str, name: str, expected_rv: int | None = None) -> dict[str, Any]:
        """Remove an object; returns its last state carrying the deletion's resourceVersion."""
        bucket, current = self._current(resource, namespace, name, expected_rv)
        self._check_writable()
        rv = self.rv + 1
        obj: dict[str, Any] = orjson.loads(current[1])
        obj["metadata"]["resourceVersion"] = str(rv)
        self.rv = rv
        bucket.remove(name)
        self._record(Event(DELETED, resource, namespace, name, rv, _exact(orjson.dumps(obj))), None)
        return obj

    def _current(self, resource: str, namespace: str, name: str, expected_rv: int | None) -> tuple[Bucket, tuple[int, bytes]]:
        bucket = self._objects.get(resource, {}).get(namespace)
        current = bucket.get(name) if bucket else None
        if bucket is None or current is None:
            raise errors.not_found(resource, name)
        if expected_rv is not None and expected_rv != current[0]:
            raise errors.conflict(resource, name)
        return bucket, current

    def _put(
        self, kind: str, resource: str, namespace: str, name: str, obj: dict[str, Any], bucket: Bucket
    ) -> dict[str, Any]:
        self._check_writable()
        rv = self.rv + 1
        obj["metadata"]["resourceVersion"] = str(rv)
        raw = _exact(orjson.dumps(obj))
        self.rv = rv
        bucket.put(name, rv, raw)
        self._record(Event(kind, resource, namespace, name, rv, raw), Row(resource, namespace, name, rv, raw))
        return obj

    # -- commit and delivery -------------------------------------------------------------------------
    #
    # A write changes memory at once and joins the batch of unsaved changes; one flush task commits
    # the whole batch in one backend transaction (one fsync for every write that arrived meanwhile:
    # group commit), then delivers the batch's events in resourceVersion order. Whoever acknowledges
    # a write awaits `settled(rv)`: it returns once the change is on disk, delivered, and so are the
    # changes listeners made in reaction to it (the endpoints a new pod produces). Reads may see a
    # write a moment before it is on disk; acknowledgements and events never do.

    def _check_writable(self) -> None:
        if self._failure is not None:
            raise errors.StatusError(
                503, "ServiceUnavailable",
                f"the store cannot write any more ({self._failure}): check the disk that holds the data directory "
                "(full? removed?), then restart the emulator; reads keep working until then",
            )

    def _record(self, event: Event, row: Row | None) -> None:
        self._unsaved.append((event, row))
        if self._dispatch_root is not None:
            # written by a listener: part of the reaction to the change being delivered
            self._root_of[event.rv] = self._dispatch_root
            self._last_of_root[self._dispatch_root] = event.rv
        if self._flushing or self._dispatching:
            return  # the running flush picks it up
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (tools, direct use): commit and deliver right away
            self.flush_now()
            self._check_writable()  # a commit that failed is refused, never acknowledged
            return
        self._flushing = True
        # referenced: the loop keeps only weak ones. A context of its own: the flush, the listeners it calls
        # and what they schedule must not run as the request that happened to start it (its user)
        self._flush_task = loop.create_task(self._flush(), context=contextvars.Context())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._unsaved and self._failure is None:
                batch, self._unsaved = self._unsaved, []
                try:
                    started = time.perf_counter()
                    if self.backend.blocking:
                        # the fsync runs off the event loop: requests keep being served meanwhile
                        await loop.run_in_executor(None, self.backend.commit, *_final_state(batch))
                    else:
                        self.backend.commit(*_final_state(batch))
                    STORE_COMMIT_DURATION.observe(time.perf_counter() - started)
                    self._deliver(batch)
                except Exception as exc:
                    self._fail(exc)
        finally:
            self._flushing = False
            self._wake()

    def flush_now(self) -> None:
        """Commit and deliver everything unsaved, synchronously (no event loop running)."""
        if self._flushing or self._dispatching:
            return
        while self._unsaved and self._failure is None:
            batch, self._unsaved = self._unsaved, []
            try:
                self.backend.commit(*_final_state(batch))
                self._deliver(batch)
            except Exception as exc:
                self._fail(exc)
        self._wake()

    def _fail(self, exc: Exception) -> None:
        # Memory is ahead of the disk now: refuse writes rather than acknowledge what may be lost.
        log.critical("the store could not commit or deliver changes (%r); refusing further writes", exc)
        self._failure = exc

    def _deliver(self, batch: list[tuple[Event, Row | None]]) -> None:
        self._dispatching = True
        try:
            for event, _ in batch:
                if len(self._history) == self._history.maxlen:
                    self._history_floor = self._history[0].rv if self._history else event.rv
                self._history.append(event)
                self._dispatch_root = self._root_of.pop(event.rv, event.rv)
                for listener in self._listening:
                    try:
                        listener(event)
                    except Exception:  # a broken listener must not lose the write for the others
                        log.exception("store listener %r failed on %r", listener, event)
                self._dispatched_rv = event.rv
                event.forget()  # the history keeps bytes only: decoded copies would pile up for the collector
        finally:
            self._dispatching = False
            self._dispatch_root = None
        if len(self._last_of_root) > 4096:  # reactions nobody waited for
            self._last_of_root = {k: v for k, v in self._last_of_root.items() if v > self._dispatched_rv}
        self._wake()

    # -- reactions made after delivery ----------------------------------------------------------------

    def delivering(self) -> int | None:
        """The outside write whose events are being delivered right now (None outside delivery). A listener
        that reacts later (coalescing a batch) remembers it and then calls `reacted`."""
        return self._dispatch_root

    def reacted(self, roots: Iterable[int], last_rv: int) -> None:
        """Writes up to `last_rv`, made after delivery, were the reaction to `roots` (from `delivering`):
        their requests are acknowledged only once `last_rv` is delivered too, as if written in reaction."""
        for root in roots:
            if self._last_of_root.get(root, 0) < last_rv:
                self._last_of_root[root] = last_rv

    def _wake(self) -> None:
        progress, self._progress = self._progress, None
        if progress is not None and not progress.done():
            progress.set_result(None)

    @property
    def delivered_rv(self) -> int:
        """Every change up to this resourceVersion is on disk and has reached the listeners."""
        return self._dispatched_rv

    async def settled(self, rv: int) -> None:
        """Wait until change `rv`, and what listeners wrote in reaction to it, is on disk and delivered."""
        while True:
            target = self._last_of_root.get(rv, rv)
            if self._dispatched_rv >= target:
                self._last_of_root.pop(rv, None)
                return
            if self._failure is not None:
                self._check_writable()
            if self._progress is None:
                self._progress = asyncio.get_running_loop().create_future()
            await self._progress

    async def settled_since(self, before: int) -> None:
        """`settled` for every change after `before` (a request that wrote several objects)."""
        last = self.rv
        while True:
            reactions = self._last_of_root
            target = max([last, *(v for k, v in reactions.items() if before < k <= last)]) if reactions else last
            if self._dispatched_rv >= target:
                if reactions:
                    for root in [k for k in reactions if before < k <= last]:
                        del reactions[root]
                return
            await self.settled(target)

    async def drain(self) -> None:
        """Wait until nothing is left unsaved (before closing)."""
        await self.settled(self.rv)

    # -- events --------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners[listener] = None
        self._listening = tuple(self._listeners)

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return self._listening

    def object_counts(self) -> dict[str, int]:
        """Objects stored, by resource (/metrics reads it)."""
        return {resource: sum(map(len, by_ns.values())) for resource, by_ns in self._objects.items()}

    def unsubscribe(self, listener: Listener) -> None:
        if self._listeners.pop(listener, 0) is None:
            self._listening = tuple(self._listeners)

    def replay(self, listener: Listener, resources: tuple[str, ...]) -> None:
        """Hand a new listener the current objects as ADDED events (the informer's initial list)."""
        for resource in resources:
            for ns, bucket in list(self._objects.get(resource, {}).items()):
                for name, rv, raw in bucket.items():
                    listener(Event(ADDED, resource, ns, name, rv, raw))

    def events_since(self, rv: int) -> list[Event]:
        """Every delivered change after `rv` still in the history; 410 Expired when `rv` is too old."""
        if rv < self._history_floor:
            raise errors.expired(rv, self._history_floor)
        if rv >= self._dispatched_rv:
            return []
        history = self._history
        return list(itertools.islice(history, bisect.bisect_right(history, rv, key=_event_rv), None))

    def events_until(self, rv: int) -> list[Event]:
        """The delivered changes still in the history up to and including `rv`."""
        history = self._history
        return list(itertools.islice(history, 0, bisect.bisect_right(history, rv, key=_event_rv)))

    def close(self) -> None:
        self.backend.close()
