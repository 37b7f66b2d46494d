"""Watch streams: store events for one kind (and namespace, and selectors) as newline-delimited JSON.

A watch starts either from a resourceVersion (every change after it, from the store's history; 410
Expired when that is too old) or from now (synthetic ADDED events for what exists, then changes).
With a label or field selector the stream follows membership the way the API server does: an object
that starts matching arrives as ADDED, one that stops matching as DELETED. Without a selector and
without Tables, the stored JSON is spliced into the line undecoded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from emulator import errors
from emulator.kinds import ResourceType
from emulator.registry.registry import ObjectFilter
from emulator.store.events import ADDED, DELETED, Event
from emulator.store.store import Store

QUEUE_LIMIT = 10_000  # events a slow watcher may fall behind before its stream is ended (it re-lists)
BOOKMARK_INTERVAL = 30.0

Render = Callable[[str, dict[str, Any]], dict[str, Any]]  # (event type, object) -> what the line carries


class WatchStream:
    def __init__(
        self, store: Store, rt: ResourceType, namespace: str | None, keep: ObjectFilter | None,
        render: Render | None, bookmarks: bool, timeout: int | None,
    ) -> None:
        self.store = store
        self.rt = rt
        self.namespace = namespace  # None: every namespace (or a cluster-scoped kind)
        self.keep = keep
        self.render = render  # e.g. a one-row Table for kubectl get -w; None = the object itself
        self.bookmarks = bookmarks
        self.timeout = timeout
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.overflowed = False
        self.inside: set[tuple[str, str]] = set()  # with a selector: the objects the client holds
        self.last_rv = 0  # the resourceVersion the events sent so far bring the client to

    def relevant(self, event: Event) -> bool:
        return event.resource == self.rt.key and (self.namespace is None or event.namespace == self.namespace)

    def _listener(self, event: Event) -> None:
        if not self.relevant(event) or self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True
            self.store.unsubscribe(self._listener)
            return
        self.queue.put_nowait(event)

    # -- what one event becomes ------------------------------------------------------------------------

    def line(self, event: Event) -> bytes | None:
        kind = event.type
        obj: dict[str, Any] | None = None
        if self.keep is not None:
            # decoded here, not through event.obj: that would keep a decoded copy in the store's history
            obj = orjson.loads(event.raw)
            key = (event.namespace, event.name)
            was, now = key in self.inside, kind != DELETED and self.keep(obj)
            if now:
                self.inside.add(key)
                kind = kind if was else ADDED
            elif was:
                self.inside.discard(key)
                kind = DELETED  # it left the selection
            else:
                return None
        if self.render is None:
            return b'{"type":"' + kind.encode() + b'","object":' + event.raw + b"}\n"
        return self.encode(kind, self.render(kind, obj if obj is not None else orjson.loads(event.raw)))

    @staticmethod
    def encode(kind: str, obj: dict[str, Any]) -> bytes:
        return orjson.dumps({"type": kind, "object": obj}) + b"\n"

    def bookmark(self) -> bytes:
        # the version this stream has brought the client to: never past an event it has not sent yet;
        # with nothing queued, everything delivered so far has been sent (or did not concern it)
        if self.queue.empty():
            self.last_rv = max(self.last_rv, self.store.delivered_rv)
        obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": {"resourceVersion": str(self.last_rv)}}
        return self.encode("BOOKMARK", obj)

    # -- the stream ----------------------------------------------------------------------------------

    def _start(self, since: str) -> tuple[list[Event], int]:
        """The events to send first and the resourceVersion they bring the client to."""
        if since in ("", "0"):  # what exists now, as ADDED (with a selector, what matches)
            current = [
                Event(ADDED, self.rt.key, ns, name, rv, raw)
                for ns, name, rv, raw in self.store.entries(self.rt.key, self.namespace)
            ]
            return current, self.store.rv
        try:
            start = int(since)
        except ValueError:
            raise errors.bad_request(f'invalid resourceVersion "{since}": use the resourceVersion of a list') from None
        backlog = [e for e in self.store.events_since(start) if self.relevant(e)]
        if self.keep is not None:
            self.inside = self._held_at(start, backlog)
        return backlog, start

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

    async def serve(self, request: web.Request, since: str) -> web.StreamResponse:
        # Start where memory and delivered events agree: a write not yet delivered would be seen both
        # in the current objects and, later, as an event (group commit lets memory run ahead).
        for _ in range(10):
            if self.store.delivered_rv >= self.store.rv:
                break
            await self.store.settled(self.store.rv)
        # subscribe before reading the backlog (no await in between), so that no change falls between
        self.store.subscribe(self._listener)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        try:
            try:
                backlog, self.last_rv = self._start(since)
            except errors.StatusError as exc:
                if exc.code != 410:
                    raise
                response.enable_chunked_encoding()
                await response.prepare(request)
                await response.write(self.encode("ERROR", exc.status()))
                return response
            response.enable_chunked_encoding()
            await response.prepare(request)
            chunk = b"".join(line for line in map(self.line, backlog) if line)
            if self.bookmarks:
                chunk += self.bookmark()
            if chunk:
                await response.write(chunk)
            await self._follow(response)
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return response
        except ConnectionResetError:
            return response  # the client went away (kubectl get -w ended with Ctrl-C)
        finally:
            self.store.unsubscribe(self._listener)

    async def _follow(self, response: web.StreamResponse) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout if self.timeout else None
        while not self.overflowed:  # too far behind: the stream ends and the client re-lists
            wait = BOOKMARK_INTERVAL if self.bookmarks else None
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    return
                wait = min(wait, left) if wait else left
            try:
                event = await asyncio.wait_for(self.queue.get(), wait)
            except TimeoutError:
                if self.bookmarks:
                    await response.write(self.bookmark())
                continue
            if event.rv <= self.last_rv:
                continue  # already sent from the backlog
            self.last_rv = event.rv
            line = self.line(event)
            if line:
                await response.write(line)
