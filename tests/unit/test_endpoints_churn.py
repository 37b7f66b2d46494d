"""What the data paths do per write while the cluster changes (bench/churn): a service created beside
another with the same (or a broader) selector takes its pods from that service, not from a scan of the
namespace; a service create or delete hands the proxy only its own addresses to bind or unbind."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.kinds import ENDPOINTS, PODS, SERVICES
from emulator.proxy.table import ProxyTable
from emulator.registry.registry import MERGE_PATCH
from tests.integration.test_proxy_support import added, deleted, modified
from tests.integration.test_proxy_support import service as proxy_service
from tests.unit.test_controllers import NS, World, addresses, ip_of, pod, service
from tests.unit.test_endpoints_controller import namespace_world


@pytest.fixture
async def world() -> World:
    return await namespace_world()


def no_scan(world: World) -> None:
    def scan(*_: Any) -> Any:
        raise AssertionError("the namespace's pods were scanned")

    world.endpoints._scan = scan  # type: ignore[method-assign,assignment]


async def test_a_service_beside_one_with_the_same_or_a_broader_selector_takes_its_pods_without_a_scan(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", {"app": "web"}))
    for i in range(6):
        world.registry.create(PODS, NS, pod(f"p{i}", {"app": "web", "tier": "front" if i % 2 else "back"}, ready=i != 3))
    world.registry.create(PODS, NS, pod("other", {"app": "db", "tier": "front"}))
    await world.settle()
    no_scan(world)
    world.registry.create(SERVICES, NS, service("same", {"app": "web"}))
    world.registry.create(SERVICES, NS, service("front", {"app": "web", "tier": "front"}))
    await world.settle()
    assert addresses(world.get(ENDPOINTS, "same")) == addresses(world.get(ENDPOINTS, "web"))
    assert addresses(world.get(ENDPOINTS, "same"), "notReadyAddresses") == [ip_of(world, "p3")]
    assert addresses(world.get(ENDPOINTS, "front")) == sorted(ip_of(world, p) for p in ("p1", "p5"))
    assert addresses(world.get(ENDPOINTS, "front"), "notReadyAddresses") == [ip_of(world, "p3")]
    # and they follow the pods from then on, each on its own
    world.registry.patch(PODS, NS, "p1", MERGE_PATCH, {"metadata": {"labels": {"tier": "back"}}})
    world.registry.delete(PODS, NS, "p5")
    await world.settle()
    assert addresses(world.get(ENDPOINTS, "front")) == []
    assert ip_of(world, "p1") in addresses(world.get(ENDPOINTS, "same"))
    assert len(addresses(world.get(ENDPOINTS, "same"))) == len(addresses(world.get(ENDPOINTS, "web"))) == 4


async def test_a_narrower_selector_elsewhere_does_not_stand_in_for_a_scan(world: World) -> None:
    world.registry.create(SERVICES, NS, service("front", {"app": "web", "tier": "front"}))
    world.registry.create(PODS, NS, pod("a", {"app": "web", "tier": "front"}))
    world.registry.create(PODS, NS, pod("b", {"app": "web", "tier": "back"}))
    await world.settle()
    world.registry.create(SERVICES, NS, service("web", {"app": "web"}))
    await world.settle()
    assert addresses(world.get(ENDPOINTS, "web")) == sorted(ip_of(world, p) for p in ("a", "b"))


def test_the_proxy_table_hands_over_only_the_addresses_that_changed() -> None:
    t = ProxyTable(node_address="127.0.0.1")
    for i in range(50):
        t.apply(added("services", proxy_service(f"s{i}", f"127.96.0.{i + 1}", [{"port": 80}])))
    assert len(t.take_changed()) == 50 and t.take_changed() == set()
    t.apply(added("services", proxy_service("new", "127.96.1.1", [{"port": 80}, {"name": "b", "port": 81}])))
    assert t.take_changed() == {("127.96.1.1", 80, "TCP"), ("127.96.1.1", 81, "TCP")}
    # labels: the route changes in place, no address to look at
    relabelled = proxy_service("s3", "127.96.0.4", [{"port": 80}])
    relabelled["metadata"]["labels"] = {"x": "y"}
    t.apply(modified("services", relabelled))
    assert t.take_changed() == set()
    t.apply(deleted("services", relabelled))
    assert t.take_changed() == {("127.96.0.4", 80, "TCP")}
