"""A watch on one kind (and namespace, and selectors): the engine side of `?watch=1`.

A watch starts either from a resourceVersion (every change after it, from the store's history; 410
Expired when that is too old) or from now (synthetic ADDED events for what exists, then changes).
With a label or field selector it follows membership the way the API server does: an object that
starts matching arrives as ADDED, one that stops matching as DELETED. api/watch.py encodes what
this yields as a stream; nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from emulator import errors
from emulator.kinds.base import ResourceType
from emulator.store.events import ADDED, DELETED, Event
from emulator.store.store import Store

QUEUE_LIMIT = 10_000  # events a slow watcher may fall behind before its watch is ended (it re-lists)

ObjectFilter = Callable[[dict[str, Any]], bool]


class Snapshot:
    """The objects of one kind (and namespace) at one resourceVersion, in the store's order: what a watch
    from "now" sends first. Shared by every watch that starts at that version (200 clients starting
    together on a 5,000-pod namespace read the store once and hold one copy, not 200)."""

    __slots__ = ("rows", "__weakref__")

    def __init__(self, rows: list[tuple[str, str, int, bytes]]) -> None:
        self.rows = rows  # (namespace, name, resourceVersion, JSON): the stored bytes themselves, not copies


# (store, kind, namespace, resourceVersion) -> the snapshot still in use by some watch at that version
_snapshots: weakref.WeakValueDictionary[tuple[Store, str, str | None, int], Snapshot] = weakref.WeakValueDictionary()


def snapshot(store: Store, resource: str, namespace: str | None) -> Snapshot:
    """The current objects of `resource`: every write moves `store.rv`, so an unchanged version is an
    unchanged set of objects, and the copy made for it earlier (if a watch still holds it) is reused."""
    key = (store, resource, namespace, store.rv)
    found = _snapshots.get(key)
    if found is None:
        found = _snapshots[key] = Snapshot(list(store.entries(resource, namespace)))
    return found


class Census:
    """How many watches are open, and the most that were open at once since the last look: a burst of
    watches that came and went between two looks still shows (emulator/runtime.py gives memory back after one)."""

    open = 0
    peak = 0

    @classmethod
    def opened(cls) -> None:
        cls.open += 1
        cls.peak = max(cls.peak, cls.open)

    @classmethod
    def closed(cls) -> None:
        cls.open -= 1

    @classmethod
    def take_peak(cls) -> int:
        """The most watches open at once since the last call (then counting starts again from now)."""
        peak, cls.peak = cls.peak, cls.open
        return peak


class Watch:
    def __init__(self, store: Store, rt: ResourceType, namespace: str | None, keep: ObjectFilter | None) -> None:
        self.store = store
        self.rt = rt
        self.namespace = namespace  # None: every namespace (or a cluster-scoped kind)
        self.keep = keep
        # the changes not handed out yet: a bare deque and one waiter, not an asyncio.Queue (four deques
        # and an Event each): an idle watch should cost little, thousands of them can be open
        self.queue: deque[Event] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.inside: set[tuple[str, str]] = set()  # with a selector: the objects the client holds
        self.last_rv = 0  # the resourceVersion the events handed out so far bring the client to
        self.counted = False  # in the Census (from open to close)

    def relevant(self, event: Event) -> bool:
        return event.resource == self.rt.key and (self.namespace is None or event.namespace == self.namespace)

    def _listener(self, event: Event) -> None:
        if not self.relevant(event) or self.overflowed:
            return
        if len(self.queue) >= QUEUE_LIMIT:
            self.overflowed = True
            self.store.unsubscribe(self._listener)
            self._wake()
            return
        self.queue.append(event)
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- start and stop ------------------------------------------------------------------------------

    async def open(self, since: str) -> Iterable[Event]:
        """Subscribe, and return the events to send first (their resourceVersion is `last_rv` then)."""
        # Start where memory and delivered events agree: a write not yet delivered would be seen both
        # in the current objects and, later, as an event (group commit lets memory run ahead).
        for _ in range(10):
            if self.store.delivered_rv >= self.store.rv:
                break
            await self.store.settled(self.store.rv)
        # subscribe before reading the backlog (no await in between), so that no change falls between
        self.store.subscribe(self._listener)
        if not self.counted:
            self.counted = True
            Census.opened()
        backlog, self.last_rv = self._start(since)
        return backlog

    def close(self) -> None:
        self.store.unsubscribe(self._listener)
        if self.counted:
            self.counted = False
            Census.closed()

    def _start(self, since: str) -> tuple[Iterable[Event], int]:
        if since in ("", "0"):  # what exists now, as ADDED (with a selector, what matches)
            # a snapshot of the entries now (shared); the events are made as they are sent, not all at once
            return self._added(snapshot(self.store, self.rt.key, self.namespace)), self.store.rv
        try:
            start = int(since)
        except ValueError:
            raise errors.bad_request(f'invalid resourceVersion "{since}": use the resourceVersion of a list') from None
        backlog = [e for e in self.store.events_since(start) if self.relevant(e)]
        if self.keep is not None:
            self.inside = self._held_at(start, backlog)
        return backlog, start

    def _added(self, current: Snapshot) -> Iterator[Event]:
        key = self.rt.key
        for ns, name, rv, raw in current.rows:
            yield Event(ADDED, key, ns, name, rv, raw)

    def _held_at(self, since: int, backlog: list[Event]) -> set[tuple[str, str]]:
        """With a selector: the objects a client that listed at `since` holds — what matched then, so
        that a change after it is sent as ADDED, MODIFIED or DELETED as the API server would."""
        assert self.keep is not None
        first_change: dict[tuple[str, str], Event] = {}
        for event in backlog:
            first_change.setdefault((event.namespace, event.name), event)
        held = {
            (ns, name) for ns, name, _, raw in self.store.entries(self.rt.key, self.namespace)
            if (ns, name) not in first_change and self.keep(orjson.loads(raw))  # unchanged: as it is now
        }
        earlier = {(e.namespace, e.name): e for e in self.store.events_until(since) if self.relevant(e)}
        for key, change in first_change.items():
            if change.type == ADDED:
                continue  # it did not exist yet
            before = earlier.get(key)
            # its state at `since` is its last earlier change; older than the history: assume it matched
            # (a DELETED the client did not need is harmless, a missing one is not)
            if before is None or (before.type != DELETED and self.keep(orjson.loads(before.raw))):
                held.add(key)
        return held

    # -- what one event becomes ------------------------------------------------------------------------

    def classify(self, event: Event) -> tuple[str, dict[str, Any] | None] | None:
        """The event type the client sees (membership of the selection decides, with a selector) and the
        decoded object when deciding needed it; None when the event does not concern the client."""
        if self.keep is None:
            return event.type, None
        # decoded here, not through event.obj: that would keep a decoded copy in the store's history
        obj = orjson.loads(event.raw)
        key = (event.namespace, event.name)
        was, now = key in self.inside, event.type != DELETED and self.keep(obj)
        if now:
            self.inside.add(key)
            return (event.type if was else ADDED), obj
        if was:
            self.inside.discard(key)
            return DELETED, obj  # it left the selection
        return None

    async def next(self, wait: float | None) -> Event | None:
        """The next change not handed out yet; None when `wait` seconds pass without one."""
        while True:
            if not self.queue:
                if self.overflowed:
                    return None
                self.waiter = asyncio.get_running_loop().create_future()
                try:
                    async with asyncio.timeout(wait):
                        await self.waiter
                except TimeoutError:
                    return None
                finally:
                    self.waiter = None
                continue
            event = self.queue.popleft()
            if event.rv <= self.last_rv:
                continue  # already in the backlog
            self.last_rv = event.rv
            return event

    def bookmark_rv(self) -> int:
        """The version this watch has brought the client to: never past an event it has not handed out;
        with nothing queued, everything delivered so far has been handed out (or did not concern it)."""
        if not self.queue:
            self.last_rv = max(self.last_rv, self.store.delivered_rv)
        return self.last_rv
