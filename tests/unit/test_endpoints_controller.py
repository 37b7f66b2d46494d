"""The endpoints controller at scale: slice packing and capping as pure decisions, then the controller
wired to a real in-memory store (tests/unit/test_controllers.py's `world`): one write per service per
store batch, only the slices that changed, the selector index, and acknowledgements that wait for it all."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.controllers.endpoints import (
    MAX_ENDPOINT_ADDRESSES,
    OVER_CAPACITY_ANNOTATION,
    TRIGGER_TIME_ANNOTATION,
    SelectorIndex,
    SliceState,
    reconcile_slices,
    truncate_subsets,
)
from emulator.kinds import ENDPOINT_SLICES, ENDPOINTS, NAMESPACES, PODS, SERVICES
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import MERGE_PATCH
from emulator.store.backend import MemoryBackend
from emulator.store.events import DELETED, Event
from emulator.store.store import Store
from tests.unit.test_controllers import NS, WEB, World, addresses, ip_of, pod, service, slices_of, wire


def big_plan() -> AddressPlan:
    return AddressPlan("10.96.0.0/16", "10.244.0.0/16", "10.250.0.0/24", "30000-30099")


async def namespace_world() -> World:
    """Controllers wired to an in-memory store with room for many addresses, and namespace NS."""
    world = wire(Store(MemoryBackend()), plan=big_plan())
    await world.settle()
    world.registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    await world.settle()
    return world


@pytest.fixture
async def world() -> World:
    return await namespace_world()

P80 = (("", 80, "TCP", ""),)
P81 = (("", 81, "TCP", ""),)


def place(slices: list[SliceState], placement: dict[str, SliceState], wanted: dict[str, Any]) -> list[SliceState]:
    for slice_ in slices:
        slice_.dirty = False
    return reconcile_slices(slices, placement, set(wanted), wanted, 100)


def sizes(slices: list[SliceState]) -> list[int]:
    return [len(s.pods) for s in slices]


# -- packing (pure) ---------------------------------------------------------------------------------


def test_new_endpoints_fill_slices_of_100_and_a_new_one_when_full() -> None:
    slices: list[SliceState] = []
    placement: dict[str, SliceState] = {}
    place(slices, placement, {f"p{i:03}": P80 for i in range(250)})
    assert sizes(slices) == [100, 100, 50]
    assert all(s.dirty for s in slices)
    # 30 more fit the slice with room: only that one is written
    place(slices, placement, {f"q{i:02}": P80 for i in range(30)})
    assert sizes(slices) == [100, 100, 80]
    assert [s.dirty for s in slices] == [False, False, True]
    # more than fit anywhere: a new slice, the full ones untouched
    place(slices, placement, {f"r{i:02}": P80 for i in range(40)})
    assert sizes(slices) == [100, 100, 80, 40]
    assert [s.dirty for s in slices] == [False, False, False, True]


def test_a_changed_endpoint_is_updated_in_place_and_a_removed_one_leaves_only_its_slice() -> None:
    slices: list[SliceState] = []
    placement: dict[str, SliceState] = {}
    place(slices, placement, {f"p{i:03}": P80 for i in range(150)})
    holder = placement["p120"]
    place(slices, placement, {"p120": P80})  # e.g. it turned unready: same slice, rewritten
    assert placement["p120"] is holder and [s.dirty for s in slices] == [s is holder for s in slices]
    deletions = place(slices, placement, {"p120": None})  # deleted or no longer selected
    assert deletions == [] and "p120" not in placement and "p120" not in holder.pods
    assert [s.dirty for s in slices] == [s is holder for s in slices]


def test_new_endpoints_go_first_into_slices_rewritten_anyway() -> None:
    slices: list[SliceState] = []
    placement: dict[str, SliceState] = {}
    place(slices, placement, {f"p{i:03}": P80 for i in range(180)})  # 100 + 80
    first = slices[0]
    wanted: dict[str, Any] = {"p000": None, "p001": None, "new": P80}  # two leave the first slice, one arrives
    place(slices, placement, wanted)
    assert placement["new"] is first and sizes(slices) == [99, 80]
    assert [s.dirty for s in slices] == [True, False]


def test_endpoints_with_other_ports_get_their_own_slices() -> None:
    slices: list[SliceState] = []
    placement: dict[str, SliceState] = {}
    place(slices, placement, {"a": P80, "b": P81})
    assert sorted(s.ports for s in slices) == [P80, P81]
    # b's port changes to a's: it moves, and its old slice, now empty, goes
    deletions = place(slices, placement, {"b": P80})
    assert [s.ports for s in slices] == [P80] and sizes(slices) == [2]
    assert [s.ports for s in deletions] == [P81]


def test_a_service_without_endpoints_keeps_one_placeholder_slice() -> None:
    slices: list[SliceState] = []
    placement: dict[str, SliceState] = {}
    assert place(slices, placement, {}) == []
    assert sizes(slices) == [0] and slices[0].ports == () and slices[0].dirty
    place(slices, placement, {f"p{i:03}": P80 for i in range(150)})
    assert sizes(slices) == [100, 50]  # the placeholder took the first 100
    deletions = place(slices, placement, {f"p{i:03}": None for i in range(150)})
    assert len(deletions) == 1 and sizes(slices) == [0] and slices[0].ports == ()


# -- capping (pure) ---------------------------------------------------------------------------------


def addrs(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"ip": f"10.{prefix}.{i // 250}.{i % 250}"} for i in range(n)]


def test_endpoints_up_to_1000_addresses_are_not_truncated() -> None:
    subsets = [{"addresses": addrs("1", 600), "notReadyAddresses": addrs("2", 400)}]
    assert truncate_subsets(subsets, MAX_ENDPOINT_ADDRESSES) is False
    assert len(subsets[0]["addresses"]) == 600 and len(subsets[0]["notReadyAddresses"]) == 400


def test_past_1000_ready_addresses_each_subset_keeps_its_share_and_no_unready_ones() -> None:
    subsets = [
        {"addresses": addrs("1", 900), "notReadyAddresses": addrs("2", 10)},
        {"addresses": addrs("3", 300)},
    ]
    assert truncate_subsets(subsets, 1000) is True
    assert [len(s.get("addresses", [])) for s in subsets] == [750, 250]
    assert all("notReadyAddresses" not in s for s in subsets)
    assert subsets[0]["addresses"][0] == {"ip": "10.1.0.0"}  # the first ones (the order the controller sorts in)


def test_past_1000_with_fewer_ready_the_unready_are_cut_proportionally() -> None:
    subsets = [
        {"addresses": addrs("1", 900), "notReadyAddresses": addrs("2", 200)},
        {"notReadyAddresses": addrs("3", 100)},
    ]
    assert truncate_subsets(subsets, 1000) is True
    assert len(subsets[0]["addresses"]) == 900
    assert [len(s.get("notReadyAddresses", [])) for s in subsets] == [67, 33]  # ceil(200/300*100), the rest


# -- the selector index (pure) ----------------------------------------------------------------------


def test_the_index_offers_only_services_filed_under_one_of_the_pods_labels() -> None:
    index = SelectorIndex()
    index.add("web", {"app": "web", "tier": "front"})
    index.add("db", {"app": "db"})
    index.add("all", {"team": "shop"})
    assert index.candidates({"app": "web", "team": "shop"}) == {"web", "all"}
    assert index.candidates({"app": "cache"}) == set()
    index.add("web", {"app": "cache"})  # a new selector files it anew
    assert index.candidates({"app": "web", "tier": "front"}) == set()
    index.remove("all")
    assert index.candidates({"app": "cache", "team": "shop"}) == {"web"}


# -- the controller ---------------------------------------------------------------------------------


def writes(events: list[Event], resource: str, since: int) -> list[Event]:
    return [e for e in events if e.resource == resource and e.rv > since]


async def test_pods_created_in_one_batch_make_one_endpoints_write_and_one_write_per_slice(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    await world.settle()
    before = world.store.rv
    for i in range(250):  # no await in between: one store batch
        world.registry.create(PODS, NS, pod(f"p{i:03}"))
    await world.settle()
    assert len(writes(world.events, ENDPOINTS.key, before)) == 1
    slice_writes = writes(world.events, ENDPOINT_SLICES.key, before)
    assert len(slice_writes) == 3  # the placeholder filled, two new slices
    slices = slices_of(world, "web")
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100, 100]
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None and len(addresses(endpoints)) == 250
    assert endpoints["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION]


async def test_a_pod_change_rewrites_only_the_slice_that_holds_it(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    for i in range(250):
        world.registry.create(PODS, NS, pod(f"p{i:03}"))
    await world.settle()
    holder = next(s["metadata"]["name"] for s in slices_of(world, "web") if any(e["targetRef"]["name"] == "p120" for e in s["endpoints"]))
    before = world.store.rv
    world.registry.delete(PODS, NS, "p120")
    await world.settle()
    assert [e.name for e in writes(world.events, ENDPOINT_SLICES.key, before)] == [holder]
    assert len(writes(world.events, ENDPOINTS.key, before)) == 1
    names = [e["targetRef"]["name"] for s in slices_of(world, "web") for e in s["endpoints"]]
    assert len(names) == 249 and "p120" not in names


async def test_1200_pods_truncate_the_endpoints_to_1000_and_slices_hold_them_all(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    for i in range(1200):
        world.registry.create(PODS, NS, pod(f"p{i:04}"))
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None
    assert len(addresses(endpoints)) == 1000
    assert endpoints["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION] == "truncated"
    slices = slices_of(world, "web")
    assert len(slices) == 12 and all(len(s["endpoints"]) <= 100 for s in slices)
    assert len({e["targetRef"]["name"] for s in slices for e in s["endpoints"]}) == 1200
    # back under the capacity: the annotation goes
    for i in range(300):
        world.registry.delete(PODS, NS, f"p{i:04}")
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None and len(addresses(endpoints)) == 900
    assert OVER_CAPACITY_ANNOTATION not in endpoints["metadata"].get("annotations", {})
    assert sum(len(s["endpoints"]) for s in slices_of(world, "web")) == 900


async def test_a_pod_event_reconciles_only_the_services_that_select_it(world: World) -> None:
    for i in range(300):
        world.registry.create(SERVICES, NS, service(f"s{i}", {"shard": f"s{i}"}))
    await world.settle()
    before = world.endpoints.reconciles
    world.registry.create(PODS, NS, pod("p", {"shard": "s7", "app": "x"}))
    await world.settle()
    assert world.endpoints.reconciles - before == 1
    assert addresses(world.get(ENDPOINTS, "s7")) == [ip_of(world, "p")]
    # relabelled: it leaves s7 and joins s8, nothing else is looked at
    before = world.endpoints.reconciles
    world.registry.patch(PODS, NS, "p", MERGE_PATCH, {"metadata": {"labels": {"shard": "s8"}}})
    await world.settle()
    assert world.endpoints.reconciles - before == 2
    assert addresses(world.get(ENDPOINTS, "s7")) == [] and addresses(world.get(ENDPOINTS, "s8")) == [ip_of(world, "p")]


async def test_an_acknowledged_pod_is_already_in_the_delivered_endpoints_and_slices(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    await world.settle()
    delivered: list[Event] = []
    world.store.subscribe(delivered.append)
    first_before = world.store.rv
    first = world.registry.create(PODS, NS, pod("first")).obj
    world.registry.create(PODS, NS, pod("second"))  # the same batch: coalesced with the first
    # what a request handler does: wait until its writes and the reactions to them are delivered
    await world.store.settled_since(first_before)
    ip = first["status"]["podIP"]
    endpoint_events = [e for e in delivered if e.resource == ENDPOINTS.key and e.type != DELETED]
    assert endpoint_events and ip in addresses(endpoint_events[-1].obj)
    slice_ips = {a for e in delivered if e.resource == ENDPOINT_SLICES.key for x in e.obj["endpoints"] for a in x["addresses"]}
    assert ip in slice_ips
    assert world.store.delivered_rv >= endpoint_events[-1].rv


async def test_a_statefulset_pod_gets_its_hostname_in_endpoints_and_slices(world: World) -> None:
    world.registry.create(SERVICES, NS, service("nginx", WEB, clusterIP="None"))
    world.registry.create(PODS, NS, pod("web-0", hostname="web-0", subdomain="nginx"))
    await world.settle()
    endpoints = world.get(ENDPOINTS, "nginx")
    assert endpoints is not None and endpoints["subsets"][0]["addresses"][0]["hostname"] == "web-0"
    [slice_] = slices_of(world, "nginx")
    assert slice_["endpoints"][0]["hostname"] == "web-0"


async def test_a_slice_deleted_by_someone_else_is_written_again(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, NS, pod("a"))
    await world.settle()
    [slice_] = slices_of(world, "web")
    world.registry.delete(ENDPOINT_SLICES, NS, slice_["metadata"]["name"])
    await world.settle()
    [again] = slices_of(world, "web")
    assert [e["addresses"] for e in again["endpoints"]] == [[ip_of(world, "a")]]


async def test_a_restart_with_nothing_changed_writes_nothing() -> None:
    first = wire(Store(MemoryBackend()), plan=big_plan())
    await first.settle()
    first.registry.create(SERVICES, "default", service("web", WEB))
    for i in range(150):
        first.registry.create(PODS, "default", pod(f"p{i:03}"))
    await first.settle()
    store = first.store
    for listener in (first.endpoints.apply, first.namespaces.apply, first.events.append):
        store.unsubscribe(listener)
    rv = store.rv
    again = wire(store, plan=big_plan())
    await again.settle()
    assert [e for e in again.events if e.rv > rv and e.resource in (ENDPOINTS.key, ENDPOINT_SLICES.key)] == []
    assert sum(len(s["endpoints"]) for s in slices_of(again, "web", "default")) == 150
