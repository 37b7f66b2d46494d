"""The store on its own: commit order, group commit, durability, settling, write rules, and watch history.

Every test drives a real `Store` over a real backend (SQLite on a temporary file, or the in-memory one)
inside the test's event loop; a spy subclass of a backend only counts what it is asked to commit.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from emulator import errors
from emulator.store.backend import Backend, MemoryBackend, Row, SqliteBackend
from emulator.store.events import ADDED, DELETED, MODIFIED, Event
from emulator.store.store import Store

NS = "default"


def obj(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"}, "spec": spec}


def rvs(events: Iterable[Event]) -> list[int]:
    return [e.rv for e in events]


def keys(events: Iterable[Event]) -> list[tuple[str, str, str]]:
    return [(e.type, e.resource, e.name) for e in events]


def rows_on_disk(path: Path) -> dict[tuple[str, str, str], int]:
    """What another process would read from the SQLite file right now: (resource, ns, name) -> rv."""
    db = sqlite3.connect(str(path))
    try:
        return {(r, ns, n): rv for r, ns, n, rv in db.execute("SELECT resource, namespace, name, rv FROM objects")}
    finally:
        db.close()


class CountingSqlite(SqliteBackend):
    """The real SQLite backend, remembering each commit it was asked for: (rv, puts, deletes)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "NORMAL")
        self.commits: list[tuple[int, list[Row], list[tuple[str, str, str]]]] = []

    def commit(self, rv: int, puts: Iterable[Row], deletes: Iterable[tuple[str, str, str]]) -> None:
        puts, deletes = list(puts), list(deletes)
        self.commits.append((rv, puts, deletes))
        super().commit(rv, puts, deletes)


class GatedSqlite(CountingSqlite):
    """Holds each commit until the test releases it: a slow fsync the test can see in flight."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()

    def commit(self, rv: int, puts: Iterable[Row], deletes: Iterable[tuple[str, str, str]]) -> None:
        self.entered.set()
        assert self.release.wait(5), "the test never released the commit"
        super().commit(rv, puts, deletes)


class BrokenDisk(MemoryBackend):
    """The in-memory backend whose disk fails once `broken` is set (full, removed)."""

    broken = False

    def commit(self, rv: int, puts: Iterable[Row], deletes: Iterable[tuple[str, str, str]]) -> None:
        if self.broken:
            raise OSError(28, "No space left on device")


@pytest.fixture(params=["sqlite", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b: Backend = SqliteBackend(tmp_path / "store.db", "NORMAL") if request.param == "sqlite" else MemoryBackend()
    yield b
    b.close()


def endpoints_controller(store: Store) -> Callable[[Event], None]:
    """Like the endpoints controller: a new pod makes an `endpoints` object, which makes a slice."""

    def react(event: Event) -> None:
        if event.type != ADDED:
            return
        if event.resource == "pods":
            store.create("endpoints", event.namespace, event.name, obj(event.name))
        elif event.resource == "endpoints":
            store.create("endpointslices", event.namespace, event.name, obj(event.name))

    return react


# --- commit order -----------------------------------------------------------------------------------


async def test_events_reach_listeners_in_resource_version_order(backend: Backend) -> None:
    """Watches and controllers rely on seeing every change once, oldest first, with growing versions."""
    store = Store(backend)
    seen: list[Event] = []
    store.subscribe(seen.append)
    a = store.create("pods", NS, "a", obj("a"))
    store.create("pods", NS, "b", obj("b"))
    await asyncio.sleep(0)
    store.create("services", NS, "a", obj("a"))
    await store.settled(store.rv)
    store.update("pods", NS, "a", obj("a", image="v2"), expected_rv=int(a["metadata"]["resourceVersion"]))
    gone = store.delete("pods", NS, "b")
    await store.settled(store.rv)

    assert rvs(seen) == [1, 2, 3, 4, 5]
    assert keys(seen) == [
        (ADDED, "pods", "a"), (ADDED, "pods", "b"), (ADDED, "services", "a"), (MODIFIED, "pods", "a"), (DELETED, "pods", "b"),
    ]
    assert [e.obj["metadata"]["resourceVersion"] for e in seen] == ["1", "2", "3", "4", "5"]
    # a DELETED event carries the object's last state, stamped with the deletion's version
    assert seen[-1].obj == gone and gone["metadata"]["uid"] == "uid-b"
    assert store.delivered_rv == store.rv == 5


WHO = contextvars.ContextVar("who", default="nobody")


async def test_listeners_do_not_run_as_the_request_that_started_the_flush() -> None:
    """A request's context (its user, for RBAC's escalation check) must not leak into the delivery that its
    write happens to start, nor into what listeners schedule from there."""
    store = Store(MemoryBackend())
    seen: list[str] = []
    store.subscribe(lambda event: seen.append(WHO.get()))
    store.subscribe(lambda event: asyncio.get_running_loop().call_soon(lambda: seen.append("later:" + WHO.get())))

    async def request() -> None:
        WHO.set("system:serviceaccount:ns:bot")
        store.create("pods", NS, "a", obj("a"))
        await store.settled(store.rv)

    await asyncio.get_running_loop().create_task(request())
    await asyncio.sleep(0)
    assert seen == ["nobody", "later:nobody"]


async def test_a_listeners_writes_are_delivered_after_every_listener_saw_the_current_event(backend: Backend) -> None:
    """A controller writing in reaction must not let its change overtake the event it reacted to for
    the listeners after it: everybody sees one order."""
    store = Store(backend)
    log: list[tuple[int, str]] = []  # (rv, listener) in call order
    store.subscribe(lambda e: log.append((e.rv, "first")))
    store.subscribe(endpoints_controller(store))
    store.subscribe(lambda e: log.append((e.rv, "last")))
    for name in ("a", "b"):
        store.create("pods", NS, name, obj(name))
    await store.settled_since(0)

    # pods a, b (1, 2), their endpoints (3, 4), then their slices (5, 6): each reaction after its cause
    assert store.rv == 6
    assert log == [(rv, who) for rv in range(1, 7) for who in ("first", "last")]
    assert [rv for rv, who in log if who == "first"] == [rv for rv, who in log if who == "last"]
    assert keys(store.events_since(0)) == [
        (ADDED, "pods", "a"), (ADDED, "pods", "b"),
        (ADDED, "endpoints", "a"), (ADDED, "endpoints", "b"),
        (ADDED, "endpointslices", "a"), (ADDED, "endpointslices", "b"),
    ]


async def test_a_failing_listener_does_not_keep_the_change_from_the_others(caplog: pytest.LogCaptureFixture) -> None:
    """One broken reactor (a bug in a controller) must not make DNS or a watch miss the change."""
    store = Store(MemoryBackend())
    seen: list[int] = []

    def broken(event: Event) -> None:
        raise RuntimeError("controller bug")

    store.subscribe(broken)
    store.subscribe(lambda e: seen.append(e.rv))
    store.create("pods", NS, "a", obj("a"))
    with caplog.at_level("ERROR", logger="emulator.store.store"):
        await store.settled(1)
    assert seen == [1]
    assert "controller bug" in caplog.text
    store.create("pods", NS, "b", obj("b"))  # the store still accepts writes
    await store.settled(2)
    assert seen == [1, 2]


def test_without_an_event_loop_a_write_is_committed_and_delivered_before_it_returns(tmp_path: Path) -> None:
    """Tools and fixtures use the store outside a loop: there is nobody to flush later, so it is done now."""
    backend = CountingSqlite(tmp_path / "store.db")
    store = Store(backend)
    seen: list[Event] = []
    store.subscribe(seen.append)
    store.subscribe(endpoints_controller(store))
    store.create("pods", NS, "a", obj("a"))
    assert keys(seen) == [(ADDED, "pods", "a"), (ADDED, "endpoints", "a"), (ADDED, "endpointslices", "a")]
    assert store.delivered_rv == 3
    assert rows_on_disk(backend.path) == {("pods", NS, "a"): 1, ("endpoints", NS, "a"): 2, ("endpointslices", NS, "a"): 3}
    store.close()


# --- group commit and durability --------------------------------------------------------------------


async def test_writes_in_one_turn_of_the_loop_share_one_commit(tmp_path: Path) -> None:
    """Fifty creates before the loop runs the flush: one transaction (one fsync), not fifty."""
    backend = CountingSqlite(tmp_path / "store.db")
    store = Store(backend)
    for i in range(50):
        store.create("pods", NS, f"p{i}", obj(f"p{i}"))
    await store.settled_since(0)
    assert len(backend.commits) == 1
    rv, puts, deletes = backend.commits[0]
    assert rv == 50 and len(puts) == 50 and deletes == []
    store.close()


async def test_writes_that_arrive_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    """While one fsync is in flight, requests keep being served, and what they write is committed together."""
    backend = GatedSqlite(tmp_path / "store.db")
    store = Store(backend)
    store.create("pods", NS, "first", obj("first"))
    assert await asyncio.to_thread(backend.entered.wait, 5)  # its commit is running, off the loop
    for i in range(20):
        store.create("pods", NS, f"p{i}", obj(f"p{i}"))
        await asyncio.sleep(0)  # separate turns of the loop, like separate requests
    assert store.get("pods", NS, "p19") is not None  # served from memory meanwhile
    assert store.delivered_rv == 0  # but not acknowledged: nothing is on disk yet
    backend.release.set()
    await store.settled_since(0)
    assert [(rv, len(puts)) for rv, puts, _ in backend.commits] == [(1, 1), (21, 20)]
    assert len(rows_on_disk(backend.path)) == 21
    store.close()


async def test_a_batch_commits_only_what_it_leaves_behind(tmp_path: Path) -> None:
    """Created then deleted in one batch: nothing to store; modified twice: the last state only."""
    backend = CountingSqlite(tmp_path / "store.db")
    store = Store(backend)
    store.create("pods", NS, "kept", obj("kept"))
    store.update("pods", NS, "kept", obj("kept", image="v2"))
    store.create("pods", NS, "brief", obj("brief"))
    store.delete("pods", NS, "brief")
    await store.settled_since(0)
    [(rv, puts, deletes)] = backend.commits
    assert rv == 4
    assert [(p.name, p.rv) for p in puts] == [("kept", 2)]
    assert orjson.loads(puts[0].raw)["spec"] == {"image": "v2"}
    assert deletes == [("pods", NS, "brief")]
    assert rows_on_disk(backend.path) == {("pods", NS, "kept"): 2}
    store.close()


async def test_acknowledged_writes_survive_a_restart(tmp_path: Path) -> None:
    """What a client was told is stored is there, unchanged, when the emulator starts again; and the
    resourceVersion never goes back (a client's old version must not name a new object)."""
    path = tmp_path / "store.db"
    store = Store(SqliteBackend(path))
    acknowledged: dict[tuple[str, str], dict[str, Any]] = {}
    for i in range(30):
        before = store.rv
        created = store.create("pods", NS, f"p{i}", obj(f"p{i}"))
        if i % 3 == 0:
            await asyncio.sleep(0)  # several batches, not just one
        if i % 5 == 0:
            await store.settled_since(before)
        acknowledged[("pods", f"p{i}")] = created
    await store.settled_since(0)
    acknowledged[("pods", "p1")] = store.update("pods", NS, "p1", obj("p1", image="v2"), expected_rv=2)
    store.delete("pods", NS, "p2")
    del acknowledged[("pods", "p2")]
    acknowledged[("services", "web")] = store.create("services", NS, "web", obj("web"))
    store.delete("pods", NS, "p3")  # the last write is a deletion: its version must survive too
    del acknowledged[("pods", "p3")]
    await store.settled_since(0)
    last_rv = store.rv
    assert last_rv == 34
    store.close()

    reopened = Store(SqliteBackend(path))
    assert reopened.load() == len(acknowledged)
    assert reopened.rv == reopened.delivered_rv == last_rv
    for (resource, name), expected in acknowledged.items():
        rv, raw = reopened.get_raw(resource, NS, name) or (None, b"")
        assert rv == int(expected["metadata"]["resourceVersion"])
        assert orjson.loads(raw) == expected
        assert orjson.loads(raw)["metadata"]["uid"] == f"uid-{name}"
    assert reopened.get("pods", NS, "p2") is None and reopened.get("pods", NS, "p3") is None
    assert reopened.get("pods", NS, "p1")["spec"] == {"image": "v2"}  # type: ignore[index]

    after = reopened.create("pods", NS, "later", obj("later"))
    assert after["metadata"]["resourceVersion"] == str(last_rv + 1)
    await reopened.settled_since(last_rv)
    reopened.close()


# --- settling: when a write may be acknowledged -----------------------------------------------------


async def test_a_write_is_readable_at_once_but_settled_only_once_on_disk_and_delivered(tmp_path: Path) -> None:
    """Reads may run ahead of the disk; acknowledgements and events never do."""
    path = tmp_path / "store.db"
    store = Store(SqliteBackend(path))
    seen: list[Event] = []
    store.subscribe(seen.append)
    created = store.create("pods", NS, "a", obj("a"))
    assert store.get("pods", NS, "a") == created and store.rv == 1
    assert seen == [] and store.delivered_rv == 0
    assert store.events_since(0) == []  # a watch cannot be handed a change that may yet be lost
    await store.settled(1)
    assert keys(seen) == [(ADDED, "pods", "a")] and store.delivered_rv == 1
    assert rows_on_disk(path) == {("pods", NS, "a"): 1}
    store.close()


async def test_settled_waits_for_what_listeners_wrote_in_reaction(tmp_path: Path) -> None:
    """Creating a pod is acknowledged only once its endpoints (and their slices) exist and are delivered:
    a client that creates a pod and then resolves its service finds it."""
    path = tmp_path / "store.db"
    store = Store(SqliteBackend(path))
    store.subscribe(endpoints_controller(store))
    seen: list[Event] = []
    store.subscribe(seen.append)
    store.create("pods", NS, "a", obj("a"))
    await store.settled(1)
    assert keys(seen) == [(ADDED, "pods", "a"), (ADDED, "endpoints", "a"), (ADDED, "endpointslices", "a")]
    assert store.delivered_rv == 3
    assert rows_on_disk(path) == {("pods", NS, "a"): 1, ("endpoints", NS, "a"): 2, ("endpointslices", NS, "a"): 3}
    store.close()


async def test_settled_since_waits_for_every_write_of_a_request_and_their_reactions(tmp_path: Path) -> None:
    """A request that wrote several objects (a manifest) returns once all of them, and everything the
    controllers made of them, is on disk and delivered — not once only the last one is."""
    path = tmp_path / "store.db"
    store = Store(SqliteBackend(path))
    store.create("services", NS, "web", obj("web"))
    await store.settled(1)
    store.subscribe(endpoints_controller(store))
    seen: list[Event] = []
    store.subscribe(seen.append)

    before = store.rv
    store.create("pods", NS, "a", obj("a"))
    await asyncio.sleep(0)
    store.create("pods", NS, "b", obj("b"))
    store.create("configmaps", NS, "c", obj("c"))  # the request's last write has no reaction
    await store.settled_since(before)

    names = {(e.resource, e.name) for e in seen}
    assert names == {
        ("pods", "a"), ("pods", "b"), ("configmaps", "c"),
        ("endpoints", "a"), ("endpoints", "b"), ("endpointslices", "a"), ("endpointslices", "b"),
    }
    assert store.delivered_rv == store.rv == 8
    assert len(rows_on_disk(path)) == 8
    store.close()


async def test_settled_since_returns_at_once_when_everything_is_delivered() -> None:
    """A request that wrote nothing (a no-op update) must not wait."""
    store = Store(MemoryBackend())
    store.create("pods", NS, "a", obj("a"))
    await store.settled(1)
    await asyncio.wait_for(store.settled_since(store.rv), 1)
    await asyncio.wait_for(store.settled_since(0), 1)


async def test_a_failed_commit_is_never_acknowledged_and_stops_writes() -> None:
    """When the disk fails, memory is ahead of it: the waiting request gets 503, later writes are refused,
    and reads keep working."""
    backend = BrokenDisk()
    store = Store(backend)
    store.create("pods", NS, "a", obj("a"))
    await store.settled(1)
    seen: list[Event] = []
    store.subscribe(seen.append)
    backend.broken = True
    store.create("pods", NS, "b", obj("b"))
    with pytest.raises(errors.StatusError) as lost:
        await store.settled(2)
    assert lost.value.code == 503
    assert seen == [] and store.delivered_rv == 1
    with pytest.raises(errors.StatusError) as refused:
        store.create("pods", NS, "c", obj("c"))
    assert refused.value.code == 503
    with pytest.raises(errors.StatusError):
        store.delete("pods", NS, "a")
    assert store.get("pods", NS, "a") is not None


def test_without_an_event_loop_a_failed_commit_is_not_acknowledged() -> None:
    """The no-loop path must keep the promise of the async one: a write the disk refused is an error."""
    backend = BrokenDisk()
    backend.broken = True
    store = Store(backend)
    with pytest.raises(errors.StatusError):
        store.create("pods", NS, "a", obj("a"))


# --- what the store refuses -------------------------------------------------------------------------


def _status(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(errors.StatusError) as caught:
        call()
    return caught.value.code, caught.value.reason


async def test_creating_an_existing_object_is_already_exists_and_changes_nothing() -> None:
    store = Store(MemoryBackend())
    store.create("pods", NS, "a", obj("a"))
    assert _status(lambda: store.create("pods", NS, "a", obj("a", image="v2"))) == (409, "AlreadyExists")
    assert store.rv == 1 and store.get("pods", NS, "a")["spec"] == {}  # type: ignore[index]
    # the same name in another namespace or of another kind is another object
    store.create("pods", "other", "a", {"metadata": {"name": "a", "namespace": "other"}})
    store.create("services", NS, "a", obj("a"))
    await store.settled_since(0)
    assert rvs(store.events_since(0)) == [1, 2, 3]


async def test_a_stale_expected_resource_version_is_a_conflict() -> None:
    """Optimistic concurrency: two clients updating from the same read, the second one loses."""
    store = Store(MemoryBackend())
    store.create("pods", NS, "a", obj("a"))
    store.update("pods", NS, "a", obj("a", image="v2"), expected_rv=1)
    assert _status(lambda: store.update("pods", NS, "a", obj("a", image="v3"), expected_rv=1)) == (409, "Conflict")
    assert _status(lambda: store.delete("pods", NS, "a", expected_rv=1)) == (409, "Conflict")
    assert store.rv == 2 and store.get("pods", NS, "a")["spec"] == {"image": "v2"}  # type: ignore[index]
    # without an expected version the write goes through (a plain PUT/DELETE without a precondition)
    updated = store.update("pods", NS, "a", obj("a", image="v4"))
    assert updated["metadata"]["resourceVersion"] == "3"
    store.delete("pods", NS, "a", expected_rv=3)
    await store.settled_since(0)
    assert keys(store.events_since(0)) == [(ADDED, "pods", "a"), (MODIFIED, "pods", "a"), (MODIFIED, "pods", "a"), (DELETED, "pods", "a")]


async def test_updating_or_deleting_a_missing_object_is_not_found() -> None:
    store = Store(MemoryBackend())
    assert _status(lambda: store.update("pods", NS, "ghost", obj("ghost"))) == (404, "NotFound")
    assert _status(lambda: store.delete("pods", NS, "ghost")) == (404, "NotFound")
    store.create("pods", NS, "a", obj("a"))
    store.delete("pods", NS, "a")
    assert _status(lambda: store.delete("pods", NS, "a")) == (404, "NotFound")  # not twice
    assert _status(lambda: store.update("pods", NS, "a", obj("a"))) == (404, "NotFound")
    assert store.rv == 2
    again = store.create("pods", NS, "a", obj("a"))  # the name is free again, with a new version
    assert again["metadata"]["resourceVersion"] == "3"
    await store.settled_since(0)
    assert rvs(store.events_since(0)) == [1, 2, 3]


async def test_lists_are_ordered_by_namespace_and_name() -> None:
    store = Store(MemoryBackend())
    for ns, name in [("b", "x"), ("a", "z"), ("a", "y"), ("b", "w")]:
        store.create("pods", ns, name, {"metadata": {"name": name, "namespace": ns}})
    store.create("services", "a", "s", {"metadata": {"name": "s", "namespace": "a"}})
    store.delete("pods", "b", "x")
    store.delete("pods", "b", "w")  # an emptied namespace lists nothing
    assert [(ns, name, rv) for ns, name, rv, _ in store.entries("pods")] == [("a", "y", 3), ("a", "z", 2)]
    assert [o["metadata"]["name"] for o in store.objects("pods", "a")] == ["y", "z"]
    assert list(store.entries("pods", "b")) == [] and list(store.entries("nothing")) == []
    await store.settled_since(0)


async def test_replay_hands_a_new_listener_what_exists_as_added() -> None:
    """An informer starting late first receives the current objects, then the changes."""
    store = Store(MemoryBackend())
    store.create("pods", NS, "a", obj("a"))
    store.create("pods", NS, "b", obj("b"))
    store.delete("pods", NS, "b")
    store.create("services", NS, "s", obj("s"))
    await store.settled_since(0)
    seen: list[Event] = []
    store.replay(seen.append, ("pods", "services"))
    assert sorted((e.type, e.resource, e.name, e.rv) for e in seen) == [(ADDED, "pods", "a", 1), (ADDED, "services", "s", 4)]


# --- history: resuming a watch, and 410 Expired ------------------------------------------------------


async def test_a_watch_resuming_within_the_history_gets_exactly_the_changes_it_missed(backend: Backend) -> None:
    store = Store(backend, history_size=10)
    for name in "abcde":
        store.create("pods", NS, name, obj(name))
    store.delete("pods", NS, "a")
    await store.settled_since(0)
    assert rvs(store.events_since(0)) == [1, 2, 3, 4, 5, 6]
    assert rvs(store.events_since(2)) == [3, 4, 5, 6]
    assert store.events_since(6) == []
    assert store.events_since(99) == []
    assert keys(store.events_since(5)) == [(DELETED, "pods", "a")]
    # and the states up to a version (what a client that listed then holds)
    assert rvs(store.events_until(3)) == [1, 2, 3]
    assert store.events_until(0) == []


async def test_a_resource_version_older_than_the_history_is_expired() -> None:
    """With room for three changes, a client at version 2 missed change 3 which is gone: 410, re-list."""
    store = Store(MemoryBackend(), history_size=3)
    for i in range(6):
        store.create("pods", NS, f"p{i}", obj(f"p{i}"))
        await store.settled(store.rv)  # one change per batch
    assert rvs(store.events_since(3)) == [4, 5, 6]  # the oldest version still resumable
    for too_old in (2, 1, 0):
        with pytest.raises(errors.StatusError) as caught:
            store.events_since(too_old)
        assert (caught.value.code, caught.value.reason) == (410, "Expired")
        assert caught.value.status()["code"] == 410
    assert rvs(store.events_until(6)) == [4, 5, 6]


async def test_the_history_floor_moves_with_a_batch_larger_than_the_history() -> None:
    """Ten changes committed together through a history of three: only the last three are resumable."""
    store = Store(MemoryBackend(), history_size=3)
    for i in range(10):
        store.create("pods", NS, f"p{i}", obj(f"p{i}"))
    await store.settled_since(0)
    assert rvs(store.events_since(7)) == [8, 9, 10]
    with pytest.raises(errors.StatusError) as caught:
        store.events_since(6)
    assert caught.value.code == 410


async def test_a_watch_from_before_a_restart_is_expired(tmp_path: Path) -> None:
    """The history lives in memory: after a restart only the versions from then on can be resumed."""
    path = tmp_path / "store.db"
    store = Store(SqliteBackend(path), history_size=100)
    for name in "abc":
        store.create("pods", NS, name, obj(name))
    await store.settled_since(0)
    store.close()

    reopened = Store(SqliteBackend(path), history_size=100)
    reopened.load()
    for old in (0, 1, 2):
        with pytest.raises(errors.StatusError) as caught:
            reopened.events_since(old)
        assert caught.value.code == 410
    assert reopened.events_since(3) == []  # the version a fresh list returns can be watched from
    reopened.create("pods", NS, "d", obj("d"))
    await reopened.settled(4)
    assert keys(reopened.events_since(3)) == [(ADDED, "pods", "d")]
    reopened.close()
