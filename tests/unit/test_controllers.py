"""The controllers, fed by store events: the endpoints controller (Endpoints and EndpointSlices from services
and pods) and the namespace controller (built-ins, default service accounts, two-step namespace deletion).

Each test wires a real in-memory `Store`, `AddressPlan`, `Cluster`, `Registry` and both controllers the way
emulator/runtime.py does, inside the test's event loop: writes go through the registry, the store delivers
their events to the controllers, and `settle` waits until every change and every reaction is delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from emulator import errors
from emulator.controllers.endpoints import (
    HEADLESS_LABEL,
    MANAGED_BY_LABEL,
    MIRROR_MANAGER,
    SERVICE_NAME_LABEL,
    SLICE_MANAGER,
    EndpointsController,
)
from emulator.controllers.namespaces import BUILTIN_NAMESPACES, NamespaceController
from emulator.kinds import ENDPOINT_SLICES, ENDPOINTS, NAMESPACES, PODS, SERVICE_ACCOUNTS, SERVICES
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import MERGE_PATCH, Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.events import DELETED, Event
from emulator.store.store import Store

NS = "shop"
API_ADDRESS = "192.0.2.10"
API_PORT = 6443
DELAY = 0.01  # the namespace controller's termination delay


@dataclass
class World:
    store: Store
    plan: AddressPlan
    registry: Registry
    namespaces: NamespaceController
    endpoints: EndpointsController
    events: list[Event] = field(default_factory=list)

    async def settle(self) -> None:
        """Wait until every change, and whatever controllers wrote in reaction, is delivered."""
        while True:
            await self.store.settled(self.store.rv)
            if self.store.delivered_rv == self.store.rv:
                return

    async def eventually(self, check: Callable[[], bool], timeout: float = 2.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.settle()
            if check():
                return
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(DELAY / 2)

    def get(self, rt: Any, name: str, namespace: str = NS) -> dict[str, Any] | None:
        return self.store.get(rt.key, namespace if rt.namespaced else "", name)

    def names(self, rt: Any, namespace: str | None = NS) -> list[str]:
        return [o["metadata"]["name"] for o in self.store.objects(rt.key, namespace)]


def wire(store: Store, termination_delay: float = DELAY, plan: AddressPlan | None = None) -> World:
    """Runtime.start's order: registry, stored addresses claimed, controllers subscribed, the endpoints
    controller started, the built-ins created."""
    plan = plan or AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")
    registry = Registry(Cluster(store, plan, "127.0.0.1", API_ADDRESS, API_PORT))
    registry.claim_stored()
    namespaces = NamespaceController(registry, termination_delay)
    endpoints = EndpointsController(registry)
    world = World(store, plan, registry, namespaces, endpoints)
    store.subscribe(namespaces.apply)
    store.subscribe(endpoints.apply)
    store.subscribe(world.events.append)
    endpoints.start()
    namespaces.bootstrap(API_ADDRESS, API_PORT)
    return world


@pytest.fixture
async def world() -> World:
    world = wire(Store(MemoryBackend()))
    await world.settle()
    world.registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    await world.settle()
    return world


# -- objects ----------------------------------------------------------------------------------------


def pod(
    name: str, labels: dict[str, str] | None = None, *, ready: bool = True, ports: dict[str, int] | None = None,
    hostname: str | None = None, subdomain: str | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "nginx"}
    if ports:
        container["ports"] = [{"name": n, "containerPort": p} for n, p in ports.items()]
    spec: dict[str, Any] = {"containers": [container]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    body: dict[str, Any] = {"metadata": {"name": name, "labels": labels or {"app": "web"}}, "spec": spec}
    if not ready:
        body["status"] = {"conditions": [{"type": "Ready", "status": "False"}]}
    return body


def service(name: str = "web", selector: dict[str, str] | None = None, *ports: dict[str, Any], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {"ports": list(ports) or [{"port": 80, "targetPort": 8080}], **spec}}
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


WEB = {"app": "web"}


def ip_of(world: World, name: str, namespace: str = NS) -> str:
    found = world.get(PODS, name, namespace)
    assert found is not None
    return found["status"]["podIP"]


def addresses(endpoints: dict[str, Any] | None, group: str = "addresses") -> list[str]:
    assert endpoints is not None
    return sorted(a["ip"] for s in endpoints.get("subsets") or [] for a in s.get(group) or [])


def slices_of(world: World, service_name: str, namespace: str = NS) -> list[dict[str, Any]]:
    return [
        s for s in world.store.objects(ENDPOINT_SLICES.key, namespace)
        if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == service_name
    ]


# -- endpoints: who is in them ----------------------------------------------------------------------


async def test_a_selector_service_gets_ready_pods_in_addresses_and_unready_in_not_ready_addresses(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, NS, pod("ready"))
    world.registry.create(PODS, NS, pod("unready", ready=False))
    world.registry.create(PODS, NS, pod("other", {"app": "db"}))
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None
    assert len(endpoints["subsets"]) == 1
    subset = endpoints["subsets"][0]
    assert addresses(endpoints) == [ip_of(world, "ready")]
    assert addresses(endpoints, "notReadyAddresses") == [ip_of(world, "unready")]
    assert subset["ports"] == [{"port": 8080, "protocol": "TCP"}]
    ready = subset["addresses"][0]
    assert ready["nodeName"] == "emulator"
    target = world.get(PODS, "ready")
    assert target is not None
    assert ready["targetRef"] == {"kind": "Pod", "namespace": NS, "name": "ready", "uid": target["metadata"]["uid"]}
    assert "hostname" not in ready


async def test_a_service_created_after_its_pods_finds_them(world: World) -> None:
    world.registry.create(PODS, NS, pod("a"))
    world.registry.create(PODS, NS, pod("b"))
    await world.settle()
    assert world.get(ENDPOINTS, "web") is None
    world.registry.create(SERVICES, NS, service("web", WEB))
    await world.settle()
    assert addresses(world.get(ENDPOINTS, "web")) == sorted([ip_of(world, "a"), ip_of(world, "b")])


async def test_a_service_without_matching_pods_has_endpoints_without_subsets(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None and "subsets" not in endpoints


async def test_a_named_target_port_is_resolved_on_each_pod(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB, {"name": "http", "port": 80, "targetPort": "http"}))
    world.registry.create(PODS, NS, pod("on-8080", ports={"http": 8080}))
    world.registry.create(PODS, NS, pod("on-9090", ports={"http": 9090, "metrics": 9100}))
    world.registry.create(PODS, NS, pod("unnamed", ports={"metrics": 8080}))  # has no port called http: left out
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None
    by_port = {s["ports"][0]["port"]: addresses({"subsets": [s]}) for s in endpoints["subsets"]}
    assert by_port == {8080: [ip_of(world, "on-8080")], 9090: [ip_of(world, "on-9090")]}
    assert all(s["ports"][0]["name"] == "http" for s in endpoints["subsets"])
    assert ip_of(world, "unnamed") not in addresses(endpoints)


async def test_a_pod_missing_one_named_port_is_listed_for_the_ports_it_has(world: World) -> None:
    world.registry.create(SERVICES, NS, service(
        "web", WEB, {"name": "http", "port": 80, "targetPort": "http"}, {"name": "admin", "port": 81, "targetPort": 9000},
    ))
    world.registry.create(PODS, NS, pod("p", ports={"web": 8080}))  # no "http": only the numeric target applies
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None
    assert endpoints["subsets"][0]["ports"] == [{"name": "admin", "port": 9000, "protocol": "TCP"}]


async def test_the_hostname_is_set_only_when_the_pods_subdomain_is_the_service(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB, clusterIP="None"))
    world.registry.create(PODS, NS, pod("named", hostname="db-0", subdomain="web"))
    world.registry.create(PODS, NS, pod("elsewhere", hostname="db-1", subdomain="other"))
    world.registry.create(PODS, NS, pod("no-hostname", subdomain="web"))
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None
    hostnames = {a["targetRef"]["name"]: a.get("hostname") for a in endpoints["subsets"][0]["addresses"]}
    assert hostnames == {"named": "db-0", "elsewhere": None, "no-hostname": None}


async def test_publish_not_ready_addresses_lists_unready_pods_as_ready(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB, publishNotReadyAddresses=True))
    world.registry.create(PODS, NS, pod("unready", ready=False))
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert addresses(endpoints) == [ip_of(world, "unready")]
    assert addresses(endpoints, "notReadyAddresses") == []


async def test_a_pod_leaving_the_selector_leaves_the_endpoints(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, NS, pod("a"))
    world.registry.create(PODS, NS, pod("b"))
    await world.settle()
    world.registry.patch(PODS, NS, "a", MERGE_PATCH, {"metadata": {"labels": {"app": "retired"}}})
    await world.settle()
    assert addresses(world.get(ENDPOINTS, "web")) == [ip_of(world, "b")]
    world.registry.patch(PODS, NS, "a", MERGE_PATCH, {"metadata": {"labels": {"app": "web"}}})
    await world.settle()
    assert addresses(world.get(ENDPOINTS, "web")) == sorted([ip_of(world, "a"), ip_of(world, "b")])


async def test_a_pod_turning_unready_moves_to_not_ready_addresses(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, NS, pod("a"))
    await world.settle()
    ip = ip_of(world, "a")
    current = world.get(PODS, "a")
    assert current is not None
    for condition in current["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition["status"] = "False"
    world.registry.update(PODS, NS, "a", current, subresource="status")
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert (addresses(endpoints), addresses(endpoints, "notReadyAddresses")) == ([], [ip])


async def test_deleted_finished_and_terminating_pods_leave_the_endpoints(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    for name in ("deleted", "finished", "terminating", "stays"):
        world.registry.create(PODS, NS, pod(name) | {"metadata": {"name": name, "labels": WEB, "finalizers": ["x.io/keep"]}})
    await world.settle()
    assert len(addresses(world.get(ENDPOINTS, "web"))) == 4
    world.registry.finalize(PODS, NS, "deleted")
    world.registry.patch(PODS, NS, "finished", MERGE_PATCH, {"status": {"phase": "Succeeded"}}, subresource="status")
    world.registry.delete(PODS, NS, "terminating")  # a finalizer keeps it, marked for deletion
    await world.settle()
    assert world.get(PODS, "terminating") is not None
    assert addresses(world.get(ENDPOINTS, "web")) == [ip_of(world, "stays")]


async def test_changing_the_selector_selects_other_pods(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, NS, pod("web-pod"))
    world.registry.create(PODS, NS, pod("db-pod", {"app": "db"}))
    await world.settle()
    world.registry.patch(SERVICES, NS, "web", MERGE_PATCH, {"spec": {"selector": {"app": "db"}}})
    await world.settle()
    assert addresses(world.get(ENDPOINTS, "web")) == [ip_of(world, "db-pod")]


async def test_pods_of_other_namespaces_are_not_selected(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, "default", pod("elsewhere"))
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None and "subsets" not in endpoints


async def test_a_headless_service_is_labelled_and_may_have_no_ports(world: World) -> None:
    body = {"metadata": {"name": "web"}, "spec": {"clusterIP": "None", "selector": WEB}}
    world.registry.create(SERVICES, NS, body)
    world.registry.create(PODS, NS, pod("a"))
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None
    assert endpoints["metadata"]["labels"] == {HEADLESS_LABEL: ""}
    assert endpoints["subsets"] == [{"addresses": endpoints["subsets"][0]["addresses"]}]  # no ports
    assert addresses(endpoints) == [ip_of(world, "a")]


async def test_endpoints_carry_the_services_labels(world: World) -> None:
    body = service("web", WEB)
    body["metadata"]["labels"] = {"team": "shop"}
    world.registry.create(SERVICES, NS, body)
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None
    assert (endpoints["metadata"].get("labels") or {}).get("team") == "shop"


async def test_endpoint_ports_carry_the_app_protocol(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB, {"port": 80, "targetPort": 8080, "appProtocol": "http"}))
    world.registry.create(PODS, NS, pod("a"))
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web")
    assert endpoints is not None
    assert endpoints["subsets"][0]["ports"][0].get("appProtocol") == "http"


# -- endpoints: whose they are ----------------------------------------------------------------------


async def test_a_selectorless_service_keeps_the_endpoints_users_write(world: World) -> None:
    world.registry.create(SERVICES, NS, service("ext"))
    user = {"metadata": {"name": "ext", "namespace": NS}, "subsets": [{"addresses": [{"ip": "203.0.113.5"}], "ports": [{"port": 5432}]}]}
    world.registry.create(ENDPOINTS, NS, user)
    world.registry.create(PODS, NS, pod("a", {"app": "ext"}))
    await world.settle()
    world.registry.patch(SERVICES, NS, "ext", MERGE_PATCH, {"metadata": {"labels": {"touched": "yes"}}})
    await world.settle()
    endpoints = world.get(ENDPOINTS, "ext")
    assert endpoints is not None
    assert endpoints["subsets"] == [{"addresses": [{"ip": "203.0.113.5"}], "ports": [{"port": 5432, "protocol": "TCP"}]}]
    # and they are mirrored into a slice by the mirroring controller
    [slice_] = slices_of(world, "ext")
    assert slice_["metadata"]["labels"][MANAGED_BY_LABEL] == MIRROR_MANAGER
    assert [e["addresses"] for e in slice_["endpoints"]] == [["203.0.113.5"]]


async def test_a_service_losing_its_selector_leaves_its_endpoints_to_the_user(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, NS, pod("a"))
    await world.settle()
    world.registry.patch(SERVICES, NS, "web", MERGE_PATCH, {"spec": {"selector": None}})
    world.registry.create(PODS, NS, pod("b"))
    await world.settle()
    assert addresses(world.get(ENDPOINTS, "web")) == [ip_of(world, "a")]  # no longer maintained


async def test_deleting_the_service_deletes_its_endpoints_and_slices(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB, {"name": "http", "port": 80, "targetPort": "http"}))
    world.registry.create(PODS, NS, pod("a", ports={"http": 8080}))
    world.registry.create(PODS, NS, pod("b", ports={"http": 9090}))
    await world.settle()
    assert [s["metadata"]["name"].startswith("web-") for s in slices_of(world, "web")] == [True, True]
    world.registry.delete(SERVICES, NS, "web")
    await world.settle()
    assert world.get(ENDPOINTS, "web") is None
    assert slices_of(world, "web") == []
    assert world.names(PODS) == ["a", "b"]


async def test_deleting_a_selectorless_service_deletes_its_endpoints_too(world: World) -> None:
    world.registry.create(SERVICES, NS, service("ext"))
    world.registry.create(ENDPOINTS, NS, {"metadata": {"name": "ext", "namespace": NS}, "subsets": [{"addresses": [{"ip": "203.0.113.5"}]}]})
    await world.settle()
    world.registry.delete(SERVICES, NS, "ext")
    await world.settle()
    assert world.get(ENDPOINTS, "ext") is None


# -- endpoint slices --------------------------------------------------------------------------------


async def test_endpoint_slices_hold_one_port_layout_each(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB, {"name": "http", "port": 80, "targetPort": "http"}))
    world.registry.create(PODS, NS, pod("a", ports={"http": 8080}, hostname="a", subdomain="web"))
    world.registry.create(PODS, NS, pod("b", ports={"http": 9090}, ready=False))
    await world.settle()
    slices = {s["metadata"]["name"]: s for s in slices_of(world, "web")}
    assert len(slices) == 2
    service_uid = world.get(SERVICES, "web")["metadata"]["uid"]  # type: ignore[index]
    for slice_ in slices.values():
        assert slice_["metadata"]["labels"] == {SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: SLICE_MANAGER}
        assert slice_["metadata"]["generateName"] == "web-"
        assert slice_["metadata"]["ownerReferences"] == [{
            "apiVersion": "v1", "kind": "Service", "name": "web", "uid": service_uid, "controller": True, "blockOwnerDeletion": True,
        }]
        assert slice_["addressType"] == "IPv4"
    by_port = {s["ports"][0]["port"]: s for s in slices.values()}
    assert by_port[8080]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    [ready] = by_port[8080]["endpoints"]
    assert ready["addresses"] == [ip_of(world, "a")]
    assert ready["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert ready["hostname"] == "a" and ready["nodeName"] == "emulator" and ready["targetRef"]["name"] == "a"
    [unready] = by_port[9090]["endpoints"]
    assert unready["addresses"] == [ip_of(world, "b")]
    assert unready["conditions"] == {"ready": False, "serving": False, "terminating": False}
    # the slice left empty goes
    world.registry.delete(PODS, NS, "b")
    await world.settle()
    [only] = slices_of(world, "web")
    assert only["metadata"]["name"] == by_port[8080]["metadata"]["name"] and only["ports"][0]["port"] == 8080


async def test_a_service_without_endpoints_still_has_one_empty_slice(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB, {"port": 80}))
    await world.settle()
    [slice_] = slices_of(world, "web")
    assert slice_["metadata"]["name"].startswith("web-") and slice_["endpoints"] == []


async def test_unnamed_ports_get_an_empty_name_in_slices(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, NS, pod("a"))
    await world.settle()
    [slice_] = slices_of(world, "web")
    assert slice_["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]


async def test_a_slice_a_user_wrote_under_the_same_name_is_left_alone(world: World) -> None:
    mine = {
        "metadata": {"name": "web-0", "namespace": NS, "labels": {"owner": "me"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["203.0.113.9"]}],
    }
    world.registry.create(ENDPOINT_SLICES, NS, mine)
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, NS, pod("a"))
    await world.settle()
    kept = world.get(ENDPOINT_SLICES, "web-0")
    assert kept is not None and kept["metadata"]["labels"] == {"owner": "me"}
    world.registry.delete(SERVICES, NS, "web")
    await world.settle()
    assert world.get(ENDPOINT_SLICES, "web-0") is not None


async def test_the_controller_takes_over_what_was_stored_before_it_started() -> None:
    store = Store(MemoryBackend())
    # a previous run: objects stored without any controller listening
    before = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    NamespaceController(before).bootstrap(API_ADDRESS, API_PORT)
    before.create(SERVICES, "default", service("web", WEB))
    before.create(PODS, "default", pod("a"))
    stale = {"addressType": "IPv4", "endpoints": []}
    for name, owner in (("web-abcde", "web"), ("gone-0", "gone")):  # an old naming scheme; Endpoints that are gone
        labels = {SERVICE_NAME_LABEL: owner, MANAGED_BY_LABEL: SLICE_MANAGER}
        before.create(ENDPOINT_SLICES, "default", {"metadata": {"name": name, "labels": labels}, **stale})
    await store.settled(store.rv)
    assert store.get(ENDPOINTS.key, "default", "web") is None

    world = wire(store)
    await world.settle()
    endpoints = world.get(ENDPOINTS, "web", "default")
    assert addresses(endpoints) == [ip_of(world, "a", "default")]
    # a slice of ours under an older naming scheme is adopted (and kept up to date); one of a service that is gone goes
    slices = {s["metadata"]["name"]: s for s in world.store.objects(ENDPOINT_SLICES.key, "default")}
    assert sorted(slices) == ["kubernetes-0", "web-abcde"]
    assert [e["addresses"] for e in slices["web-abcde"]["endpoints"]] == [[ip_of(world, "a", "default")]]


# -- namespaces -------------------------------------------------------------------------------------


async def test_bootstrap_creates_the_builtin_namespaces_each_with_a_default_service_account(world: World) -> None:
    assert set(BUILTIN_NAMESPACES) == {"default", "kube-system", "kube-public", "kube-node-lease"}
    for name in BUILTIN_NAMESPACES:
        namespace = world.get(NAMESPACES, name)
        assert namespace is not None and namespace["status"]["phase"] == "Active"
        assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": name}
        assert world.names(SERVICE_ACCOUNTS, name) == ["default"]


async def test_bootstrap_creates_the_kubernetes_service_on_the_first_service_ip(world: World) -> None:
    kubernetes = world.get(SERVICES, "kubernetes", "default")
    assert kubernetes is not None
    assert kubernetes["spec"]["clusterIP"] == world.plan.service_ips.first_address == "10.96.0.1"
    assert kubernetes["spec"]["ports"] == [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": API_PORT}]
    assert kubernetes["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    endpoints = world.get(ENDPOINTS, "kubernetes", "default")
    assert endpoints is not None
    assert endpoints["subsets"] == [{
        "addresses": [{"ip": API_ADDRESS}], "ports": [{"name": "https", "port": API_PORT, "protocol": "TCP"}],
    }]
    # no other service is ever given that address
    assert world.registry.create(SERVICES, "default", service("other")).obj["spec"]["clusterIP"] != "10.96.0.1"
    with pytest.raises(errors.StatusError) as caught:
        world.registry.create(SERVICES, "default", service("thief", clusterIP="10.96.0.1"))
    assert caught.value.code == 422 and "already allocated" in caught.value.message


async def test_bootstrap_again_changes_nothing(world: World) -> None:
    rv = world.store.rv
    world.namespaces.bootstrap(API_ADDRESS, API_PORT)
    await world.settle()
    assert world.store.rv == rv


async def test_a_new_namespace_gets_a_default_service_account(world: World) -> None:
    assert world.names(SERVICE_ACCOUNTS) == ["default"]
    world.registry.create(NAMESPACES, "", {"metadata": {"name": "fresh"}})
    await world.settle()
    assert world.names(SERVICE_ACCOUNTS, "fresh") == ["default"]
    # so a pod can be created in it right away
    world.registry.create(PODS, "fresh", pod("a"))


async def test_the_default_service_account_comes_back_when_deleted(world: World) -> None:
    first = world.get(SERVICE_ACCOUNTS, "default")
    assert first is not None
    world.registry.delete(SERVICE_ACCOUNTS, NS, "default")
    await world.settle()
    again = world.get(SERVICE_ACCOUNTS, "default")
    assert again is not None and again["metadata"]["uid"] != first["metadata"]["uid"]


async def test_other_service_accounts_do_not_come_back(world: World) -> None:
    world.registry.create(SERVICE_ACCOUNTS, NS, {"metadata": {"name": "robot"}})
    world.registry.delete(SERVICE_ACCOUNTS, NS, "robot")
    await world.settle()
    assert world.names(SERVICE_ACCOUNTS) == ["default"]


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
async def test_the_protected_namespaces_cannot_be_deleted(world: World, name: str) -> None:
    with pytest.raises(errors.StatusError) as caught:
        world.registry.delete(NAMESPACES, "", name)
    assert caught.value.code == 403


async def test_deleting_a_namespace_marks_it_terminating_then_its_contents_go_and_then_it(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web", WEB))
    world.registry.create(PODS, NS, pod("a"))
    world.registry.create(PODS, NS, pod("held") | {"metadata": {"name": "held", "finalizers": ["x.io/keep"]}})
    world.registry.create(SERVICE_ACCOUNTS, NS, {"metadata": {"name": "robot"}})
    world.registry.create(SERVICES, "default", service("neighbour", WEB))
    await world.settle()
    assert world.get(ENDPOINTS, "web") is not None and slices_of(world, "web")
    world.events.clear()

    world.registry.delete(NAMESPACES, "", NS)
    await world.settle()
    namespace = world.get(NAMESPACES, NS)
    assert namespace is not None  # Terminating first: nothing is gone yet
    assert namespace["status"]["phase"] == "Terminating" and namespace["metadata"]["deletionTimestamp"]
    assert world.names(PODS) == ["a", "held"]

    await world.eventually(lambda: world.get(NAMESPACES, NS) is None)
    for rt in (PODS, SERVICES, ENDPOINTS, ENDPOINT_SLICES, SERVICE_ACCOUNTS):
        assert world.names(rt) == [], rt.key  # the finalizer did not keep "held", the default SA did not come back
    deleted = [(e.resource, e.namespace, e.name) for e in world.events if e.type == DELETED]
    assert deleted[-1] == (NAMESPACES.key, "", NS)  # the namespace goes last
    assert {(SERVICES.key, NS, "web"), (PODS.key, NS, "a"), (PODS.key, NS, "held")} <= set(deleted)
    # other namespaces are untouched
    assert world.get(SERVICES, "neighbour", "default") is not None
    assert world.names(SERVICE_ACCOUNTS, "default") == ["default"]


async def test_nothing_new_can_be_created_in_a_terminating_namespace(world: World) -> None:
    world.namespaces.termination_delay = 0.3  # Terminating for a while
    world.registry.delete(NAMESPACES, "", NS)
    await world.settle()
    with pytest.raises(errors.StatusError) as caught:
        world.registry.create(PODS, NS, pod("late"))
    assert caught.value.code == 403
    # the default service account deleted now does not come back either
    world.registry.delete(SERVICE_ACCOUNTS, NS, "default")
    await world.settle()
    assert world.names(SERVICE_ACCOUNTS) == []
    await world.eventually(lambda: world.get(NAMESPACES, NS) is None)


async def test_a_namespace_of_the_same_name_may_be_created_once_the_old_one_is_gone(world: World) -> None:
    old = world.get(NAMESPACES, NS)
    assert old is not None
    world.registry.create(PODS, NS, pod("a"))
    world.registry.delete(NAMESPACES, "", NS)
    await world.eventually(lambda: world.get(NAMESPACES, NS) is None)
    world.registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    await world.settle()
    new = world.get(NAMESPACES, NS)
    assert new is not None and new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["status"]["phase"] == "Active"
    assert world.names(PODS) == [] and world.names(SERVICE_ACCOUNTS) == ["default"]


async def test_bootstrap_finishes_a_deletion_a_previous_run_left_unfinished() -> None:
    store = Store(MemoryBackend())
    before = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    NamespaceController(before).bootstrap(API_ADDRESS, API_PORT)
    before.create(NAMESPACES, "", {"metadata": {"name": NS}})
    before.create(SERVICE_ACCOUNTS, NS, {"metadata": {"name": "robot"}})
    before.delete(NAMESPACES, "", NS)  # marked; the process stopped before its controller finished
    await store.settled(store.rv)

    world = wire(store)
    await world.eventually(lambda: world.get(NAMESPACES, NS) is None)
    assert world.names(SERVICE_ACCOUNTS) == []
