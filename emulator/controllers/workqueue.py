"""The controllers' work queue (client-go's workqueue idea): store events only mark a key dirty; one asyncio
task per controller takes the keys one by one and runs the controller's sync for each.

- Coalescing: a key marked dirty several times before its sync runs is synced once. A thousand pod
  events for one ReplicaSet make one or two syncs, not a thousand.
- No sync runs inside the store's event delivery: `add` only records the key and wakes the worker.
  The worker runs syncs for up to TURN_BUDGET seconds, then yields to the event loop, so the store
  delivers the writes they made (and requests are served). Syncs read the store, which every write
  changes at once; what they index from events may lag by one turn, never more. Working in turns
  rather than yielding after each sync is what lets the consumers of those writes coalesce: the
  garbage collector deleting a thousand pods one item at a time makes a few ReplicaSet syncs, not a
  thousand.
- A sync returns None (done), or in how many seconds to look at the key again (0: at once, because
  it did only part of the work, or because a deadline is due then). A sync that raises is retried
  with exponential backoff (5 ms doubling to 60 s), as client-go's default rate limiter does.
- Bounded: the queue holds each key once, and at most one timer per key (the earlier deadline wins).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from emulator import errors

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

BASE_DELAY = 0.005
MAX_DELAY = 60.0
TURN_BUDGET = 0.01  # seconds of syncs before the worker yields to the event loop


class WorkQueue(Generic[K]):
    def __init__(self, name: str, sync: Callable[[K], float | None]) -> None:
        self.name = name
        self._sync = sync
        self._dirty: dict[K, None] = {}  # insertion-ordered set: first marked, first synced
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self.syncs = 0  # how many syncs ran (tests and benchmarks read it)

    # -- marking keys ------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Mark `key` dirty (a no-op when it already is)."""
        if key in self._dirty:
            return
        self._dirty[key] = None
        if self._wake is not None:
            self._wake.set()

    def add_after(self, key: K, delay: float) -> None:
        """Mark `key` dirty in `delay` seconds (at once when `delay` <= 0); an earlier timer is kept."""
        if delay <= 0:
            self.add(key)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: nobody would run the sync anyway
        due = loop.time() + delay
        existing = self._timers.get(key)
        if existing is not None:
            if existing[0] <= due:
                return
            existing[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        """Drop a key's retry count (its object is gone)."""
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._dirty)

    @property
    def idle(self) -> bool:
        """Nothing dirty and no sync running (timers may still be pending)."""
        return not self._dirty and not self._busy

    # -- the worker ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._wake = asyncio.Event()
        if self._dirty:
            self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.name}-controller")

    async def stop(self) -> None:
        for _, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        assert self._wake is not None
        clock = time.perf_counter
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                turn_ends = clock() + TURN_BUDGET
                while self._dirty and clock() < turn_ends:
                    key = next(iter(self._dirty))
                    del self._dirty[key]
                    self._process(key)
                # let the store deliver what the syncs wrote (and requests run) before the next turn
                await asyncio.sleep(0)

    def _process(self, key: K) -> None:
        self._busy = True
        self.syncs += 1
        try:
            again = self._sync(key)
        except Exception as exc:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = min(BASE_DELAY * 2**failures, MAX_DELAY)
            if isinstance(exc, errors.StatusError):
                # refused writes (a namespace being deleted, a conflict): retried, quietly
                log.debug("%s: syncing %s failed (%s); retrying in %.3fs", self.name, key, exc, delay)
            else:
                log.exception("%s: syncing %s failed; retrying in %.3fs", self.name, key, delay)
            self.add_after(key, delay)
            return
        finally:
            self._busy = False
        self._failures.pop(key, None)
        if again is not None:
            self.add_after(key, again)
