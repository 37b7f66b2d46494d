"""core/v1 Events: how controllers record them, and how long they are kept.

`EventRecorder` records events about the objects a controller manages (what `kubectl describe` and
`kubectl get events` list) as client-go's recorder and its EventCorrelator do:

- spam filter: at most EVENT_BURST events per object, then one per EVENT_REFILL seconds;
- aggregation: beyond AGGREGATE_AFTER similar events (same object, type and reason, any message) within
  AGGREGATE_WINDOW, one "(combined from similar events)" event whose count grows;
- deduplication: an event identical to one recorded before (same object, type, reason and message) bumps
  that event's `count` and `lastTimestamp` instead of adding another object. Beyond the recorder's own
  cache, identical events are found in the store (`_StoredEvents`: one index per store, fed by its
  EVENTS events and shared by all recorders), so a restart does not record the same events again.

A scale-up to a thousand pods so costs a couple of dozen writes, not a thousand.

`EventTTL` is the API server's `--event-ttl`: an event is deleted `ttl` seconds after its last update
(one hour by default, `--event-ttl`), and at most `limit` events are kept (the oldest go first), so a
busy controller cannot grow the store without bound.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import weakref
from typing import Any

from emulator import errors
from emulator.kinds import EVENTS, ResourceType
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.store.store import Store
from emulator.timestamps import now_rfc3339, parse_rfc3339

log = logging.getLogger(__name__)

IDENTICAL_CACHE = 4096  # events remembered for deduplication (client-go's LRU size)
STORED_INDEX_LIMIT = 200_000  # stored events the shared index knows (the oldest forgotten beyond)

Identity = tuple[str, str, str, str, str, str]  # namespace, involvedObject uid, type, reason, message, source


def _identity_of(namespace: str, event: dict[str, Any]) -> Identity:
    return (
        namespace, str((event.get("involvedObject") or {}).get("uid") or ""), str(event.get("type") or ""),
        str(event.get("reason") or ""), str(event.get("message") or ""), str((event.get("source") or {}).get("component") or ""),
    )


class _StoredEvents:
    """The events in one store by what makes two of them identical (hashed: an int per event, the
    store's object checked on use), kept from the store's EVENTS events."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}  # hash of the identity -> event name (in the identity's namespace)

    def apply(self, event: Event) -> None:
        if event.resource != EVENTS.key:
            return
        key = hash(_identity_of(event.namespace, event.obj))
        if event.type == DELETED:
            if self._names.get(key) == event.name:
                del self._names[key]
            return
        if key not in self._names and len(self._names) >= STORED_INDEX_LIMIT:
            del self._names[next(iter(self._names))]
        self._names[key] = event.name

    def find(self, store: Store, identity: Identity) -> str | None:
        name = self._names.get(hash(identity))
        if name is None:
            return None
        stored = store.get(EVENTS.key, identity[0], name)
        return name if stored is not None and _identity_of(identity[0], stored) == identity else None


_STORED: weakref.WeakKeyDictionary[Store, _StoredEvents] = weakref.WeakKeyDictionary()


def _stored_events(store: Store) -> _StoredEvents:
    """The store's index, built on first use (the store is loaded by then) from its current events."""
    index = _STORED.get(store)
    if index is None:
        index = _STORED[store] = _StoredEvents()
        store.replay(index.apply, (EVENTS.key,))
        store.subscribe(index.apply)
    return index


class EventRecorder:
    EVENT_BURST = 25
    EVENT_REFILL = 300.0  # seconds per event once the burst is spent
    AGGREGATE_AFTER = 10
    AGGREGATE_WINDOW = 600.0

    def __init__(self, registry: Registry, component: str) -> None:
        self.registry = registry
        self.component = component
        self._tokens: dict[str, tuple[float, float]] = {}  # object uid -> (tokens, when)
        self._similar: dict[tuple[str, str, str], tuple[int, float, str | None]] = {}  # -> (count, since, aggregate)
        self._identical: dict[tuple[str, str, str, str, str], str] = {}  # (ns, uid, type, reason, message) -> event name

    def record(self, rt: ResourceType, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        uid, now = meta.get("uid", ""), time.monotonic()
        tokens, then = self._tokens.get(uid, (float(self.EVENT_BURST), now))
        tokens = min(float(self.EVENT_BURST), tokens + (now - then) / self.EVENT_REFILL)
        if tokens < 1:
            return
        self._tokens[uid] = (tokens - 1, now)
        key = (uid, kind, reason)
        count, since, aggregate = self._similar.get(key, (0, now, None))
        if now - since > self.AGGREGATE_WINDOW:
            count, since, aggregate = 0, now, None
        count += 1
        if count > self.AGGREGATE_AFTER:
            message = f"(combined from similar events): {message}"
            if aggregate is not None and self._bump(meta["namespace"], aggregate, message):
                self._similar[key] = (count, since, aggregate)
                return
            name = self._create(rt, meta, kind, reason, message)
            self._similar[key] = (count, since, name)
            return
        self._similar[key] = (count, since, None)
        same = (meta["namespace"], uid, kind, reason, message)
        existing = self._identical.get(same)
        if existing is None:  # recorded before this process, or forgotten by the cache: look in the store
            existing = _stored_events(self.registry.store).find(self.registry.store, (*same, self.component))
        if existing is not None and self._bump(meta["namespace"], existing, message):
            self._remember(same, existing)
            return
        name = self._create(rt, meta, kind, reason, message)
        if name is not None:
            self._remember(same, name)

    def _remember(self, same: tuple[str, str, str, str, str], name: str) -> None:
        if same not in self._identical and len(self._identical) >= IDENTICAL_CACHE:
            del self._identical[next(iter(self._identical))]
        self._identical[same] = name

    def forget(self, uid: str) -> None:
        """The object is gone: drop what was kept about it."""
        self._tokens.pop(uid, None)
        for key in [k for k in self._similar if k[0] == uid]:
            del self._similar[key]
        for same in [k for k in self._identical if k[1] == uid]:
            del self._identical[same]

    def _create(self, rt: ResourceType, meta: dict[str, Any], kind: str, reason: str, message: str) -> str | None:
        now = now_rfc3339()
        name = f"{meta['name']}.{time.time_ns():x}"
        event = {
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": rt.kind, "namespace": meta["namespace"], "name": meta["name"], "uid": meta.get("uid", ""),
                "apiVersion": rt.api_version, "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason, "message": message, "source": {"component": self.component},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": kind,
            "reportingComponent": self.component, "reportingInstance": "",
        }
        try:
            self.registry.create(EVENTS, meta["namespace"], event)
        except errors.StatusError as exc:
            log.debug("could not record event %s about %s/%s: %s", reason, meta["namespace"], meta["name"], exc)
            return None
        return name

    def _bump(self, namespace: str, name: str, message: str) -> bool:
        """count + 1 and a new lastTimestamp on an event recorded before (False: it is gone)."""
        current = self.registry.store.get(EVENTS.key, namespace, name)
        if current is None:
            return False
        new = {**current, "message": message, "count": int(current.get("count") or 1) + 1, "lastTimestamp": now_rfc3339()}
        try:
            self.registry.replace_object(EVENTS, current, new)
        except errors.StatusError:
            return False
        return True


def _last_seen(obj: dict[str, Any]) -> float:
    """When an event last happened (wall clock seconds): lastTimestamp, the series' or its eventTime."""
    for value in (
        obj.get("lastTimestamp"), (obj.get("series") or {}).get("lastObservedTime"), obj.get("eventTime"),
        obj.get("metadata", {}).get("creationTimestamp"),
    ):
        if value:
            try:
                parsed = parse_rfc3339(value)
            except ValueError:
                continue
            if parsed is not None:
                return parsed.timestamp()
    return time.time()


class EventTTL:
    """Deletes events `ttl` seconds after their last update, and the oldest beyond `limit` events."""

    def __init__(self, registry: Registry, ttl: float, limit: int) -> None:
        self.registry = registry
        self.ttl = ttl
        self.limit = limit
        self._seen: dict[tuple[str, str], float] = {}  # (namespace, name) -> last seen
        self._heap: list[tuple[float, str, str]] = []  # (last seen, namespace, name), stale entries skipped
        self._timer: asyncio.TimerHandle | None = None
        self._running = False
        self.deleted = 0

    def apply(self, event: Event) -> None:
        if event.resource != EVENTS.key:
            return
        key = (event.namespace, event.name)
        if event.type == DELETED:
            self._seen.pop(key, None)
            return
        seen = _last_seen(event.obj)
        self._seen[key] = seen
        heapq.heappush(self._heap, (seen, event.namespace, event.name))
        if len(self._heap) > 2 * len(self._seen) + 1024:  # drop superseded entries now and then
            self._heap = [(t, ns, n) for t, ns, n in self._heap if self._seen.get((ns, n)) == t]
            heapq.heapify(self._heap)
        if self._running and (len(self._seen) > self.limit or self._timer is None):
            self._schedule(0 if len(self._seen) > self.limit else seen + self.ttl - time.time())

    def start(self) -> None:
        self._running = True
        self._schedule(0)

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        expire_before = time.time() - self.ttl
        budget = 500  # deletions per turn: a backlog is worked off without stalling the loop
        while self._heap and budget:
            seen, ns, name = self._heap[0]
            if self._seen.get((ns, name)) != seen:
                heapq.heappop(self._heap)  # superseded by a later update, or gone
                continue
            if seen > expire_before and len(self._seen) <= self.limit:
                break
            heapq.heappop(self._heap)
            self._seen.pop((ns, name), None)
            budget -= 1
            try:
                self.registry.delete(EVENTS, ns, name)
                self.deleted += 1
            except errors.StatusError:
                pass  # deleted meanwhile
        if not self._running:
            return
        if not budget:
            self._schedule(0.01)
        elif self._heap:
            self._schedule(self._heap[0][0] + self.ttl - time.time())
