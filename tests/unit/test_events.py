"""Events in process: the recorder's deduplication and aggregation, and their bounded retention (`EventTTL`),
against a real in-memory Store and Registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emulator.controllers.events import EventRecorder, EventTTL
from emulator.kinds import EVENTS, NAMESPACES, PODS, SERVICE_ACCOUNTS
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

NS = "ev"


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")))
    registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    registry.create(SERVICE_ACCOUNTS, NS, {"metadata": {"name": "default"}})
    await store.settled(store.rv)
    yield registry


def events(registry: Registry) -> list[dict[str, Any]]:
    return sorted(registry.store.objects(EVENTS.key, NS), key=lambda e: e["metadata"]["name"])


def pod(registry: Registry, name: str) -> dict[str, Any]:
    return registry.create(PODS, NS, {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}}).obj


def stamp(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_identical_events_bump_one_event(registry: Registry) -> None:
    recorder = EventRecorder(registry, "test-controller")
    target = pod(registry, "p")
    for _ in range(3):
        recorder.record(PODS, target, "Warning", "Failed", 'configmap "x" not found')
    recorder.record(PODS, target, "Normal", "Started", "started")
    found = events(registry)
    assert sorted((e["reason"], e["count"]) for e in found) == [("Failed", 3), ("Started", 1)]
    failed = next(e for e in found if e["reason"] == "Failed")
    assert failed["involvedObject"]["uid"] == target["metadata"]["uid"]
    assert failed["source"] == {"component": "test-controller"}


async def test_a_deleted_event_is_recorded_again(registry: Registry) -> None:
    recorder = EventRecorder(registry, "c")
    target = pod(registry, "p")
    recorder.record(PODS, target, "Normal", "Pulled", "same")
    registry.delete(EVENTS, NS, events(registry)[0]["metadata"]["name"])
    recorder.record(PODS, target, "Normal", "Pulled", "same")
    assert [e["count"] for e in events(registry)] == [1]


async def test_identical_events_recorded_before_a_restart_are_bumped(registry: Registry) -> None:
    target = pod(registry, "p")
    EventRecorder(registry, "kubelet").record(PODS, target, "Warning", "Failed", 'Error: configmap "x" not found')
    EventRecorder(registry, "other").record(PODS, target, "Warning", "Failed", 'Error: configmap "x" not found')
    await registry.store.settled(registry.store.rv)
    # a new recorder (the process restarted: nothing in memory) finds the stored event of its component
    again = EventRecorder(registry, "kubelet")
    again.record(PODS, target, "Warning", "Failed", 'Error: configmap "x" not found')
    again.record(PODS, target, "Warning", "Failed", 'Error: configmap "y" not found')
    found = events(registry)
    assert sorted((e["source"]["component"], e["message"][-13:], e["count"]) for e in found) == [
        ("kubelet", '"x" not found', 2), ("kubelet", '"y" not found', 1), ("other", '"x" not found', 1)]
    await registry.store.settled(registry.store.rv)
    # an event deleted meanwhile (its TTL) is recorded anew
    bumped = next(e for e in found if e["count"] == 2)
    registry.delete(EVENTS, NS, bumped["metadata"]["name"])
    await registry.store.settled(registry.store.rv)
    EventRecorder(registry, "kubelet").record(PODS, target, "Warning", "Failed", 'Error: configmap "x" not found')
    assert sorted(e["count"] for e in events(registry)) == [1, 1, 1]


async def test_the_stored_events_index_follows_the_store(registry: Registry) -> None:
    """Events written by anyone (a client, another recorder) are found; other objects' are not."""
    a, b = pod(registry, "a"), pod(registry, "b")
    registry.create(EVENTS, NS, {
        "metadata": {"name": "by-hand"}, "involvedObject": {"kind": "Pod", "name": "a", "namespace": NS, "uid": a["metadata"]["uid"]},
        "reason": "Pulled", "message": "m", "type": "Normal", "source": {"component": "kubelet"}, "count": 5,
    })
    EventRecorder(registry, "kubelet").record(PODS, b, "Normal", "Started", "s")  # builds the index
    await registry.store.settled(registry.store.rv)
    recorder = EventRecorder(registry, "kubelet")
    recorder.record(PODS, a, "Normal", "Pulled", "m")
    recorder.record(PODS, b, "Normal", "Pulled", "m")
    counts = {(e["involvedObject"]["name"], e["reason"]): e["count"] for e in events(registry)}
    assert counts == {("a", "Pulled"): 6, ("b", "Pulled"): 1, ("b", "Started"): 1}


async def test_similar_events_are_aggregated_beyond_ten(registry: Registry) -> None:
    recorder = EventRecorder(registry, "c")
    target = pod(registry, "p")
    for i in range(14):
        recorder.record(PODS, target, "Normal", "Created", f"created {i}")
    found = events(registry)
    combined = [e for e in found if e["message"].startswith("(combined from similar events): ")]
    assert len(found) == 11 and len(combined) == 1
    assert combined[0]["count"] == 4 and combined[0]["message"].endswith("created 13")


async def test_ttl_deletes_events_not_updated_for_ttl_seconds(registry: Registry) -> None:
    ttl = EventTTL(registry, ttl=60, limit=1000)
    registry.store.subscribe(ttl.apply)
    for name, ago in (("old", 3600), ("recent", 5), ("borderline", 61)):
        registry.create(EVENTS, NS, {
            "metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": NS},
            "reason": "R", "message": "m", "type": "Normal", "lastTimestamp": stamp(ago), "firstTimestamp": stamp(ago),
        })
    await registry.store.settled(registry.store.rv)
    ttl.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if [e["metadata"]["name"] for e in events(registry)] == ["recent"]:
                break
        assert [e["metadata"]["name"] for e in events(registry)] == ["recent"]
        assert ttl.deleted == 2
    finally:
        ttl.stop()


async def test_limit_deletes_the_oldest_first(registry: Registry) -> None:
    ttl = EventTTL(registry, ttl=3600, limit=3)
    registry.store.subscribe(ttl.apply)
    ttl.start()
    try:
        for i in range(5):
            registry.create(EVENTS, NS, {
                "metadata": {"name": f"e{i}"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": NS},
                "reason": "R", "message": "m", "type": "Normal", "lastTimestamp": stamp(100 - i),
            })
        for _ in range(100):
            await registry.store.settled(registry.store.rv)
            await asyncio.sleep(0.01)
            if len(events(registry)) == 3:
                break
        assert [e["metadata"]["name"] for e in events(registry)] == ["e2", "e3", "e4"]
    finally:
        ttl.stop()
