"""The generic write path (`Registry`) on its own: every verb, its errors, and what a failed write leaves behind.

Each test wires a real `Store` (in memory), `AddressPlan`, `Cluster` and `Registry` the way emulator/runtime.py
does, and bootstraps the built-in namespaces, their `default` service accounts and the `kubernetes` service.
No controller is subscribed, so what is stored is exactly what the registry wrote. The tests run without an
event loop: the store then commits and delivers each write before it returns.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from emulator import errors
from emulator.controllers.namespaces import NamespaceController
from emulator.kinds import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    ENDPOINTS,
    KINDS,
    NAMESPACES,
    PODS,
    SERVICE_ACCOUNTS,
    SERVICES,
)
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import (
    APPLY_PATCH,
    DELETE_BATCH,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_ATTEMPTS,
    STRATEGIC_MERGE_PATCH,
    Cluster,
    Registry,
    WriteOptions,
)
from emulator.registry.strategy import Strategy
from emulator.store.backend import Backend, MemoryBackend
from emulator.store.store import Store

NS = "default"
SERVICE_CIDR = "10.96.0.0/24"
POD_CIDR = "10.244.0.0/24"
LB_CIDR = "10.250.0.0/24"
NODE_PORTS = "30000-30099"
API_PORT = 6443


# -- the wiring -------------------------------------------------------------------------------------


@dataclass
class World:
    store: Store
    plan: AddressPlan
    registry: Registry


def make_world(
    service_cidr: str = SERVICE_CIDR, node_ports: str = NODE_PORTS, backend: Backend | None = None,
    store: Store | None = None,
) -> World:
    """Store → AddressPlan → Cluster → Registry, stored addresses claimed, the built-ins created."""
    store = store or Store(backend or MemoryBackend())
    plan = AddressPlan(service_cidr, POD_CIDR, LB_CIDR, node_ports)
    registry = Registry(Cluster(store, plan))
    registry.claim_stored()
    NamespaceController(registry).bootstrap("127.0.0.1", API_PORT)
    return World(store, plan, registry)


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def registry(world: World) -> Registry:
    return world.registry


class Breakable(MemoryBackend):
    """The in-memory backend, whose commits fail once `broken` is set (a disk that went away)."""

    broken = False

    def commit(self, rv: int, puts: Any, deletes: Any) -> None:
        if self.broken:
            raise OSError("disk gone")


def break_the_disk(world: World, backend: Breakable) -> None:
    """Make the next commit fail: from then on the store refuses every write (503)."""
    backend.broken = True
    try:  # the write whose commit fails may or may not be refused itself; the ones after it are
        world.registry.create(SERVICE_ACCOUNTS, NS, {"metadata": {"name": "lost"}})
    except errors.StatusError as exc:
        assert exc.code == 503


# -- objects ----------------------------------------------------------------------------------------


def pod(name: str = "web", labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, **({"labels": labels} if labels else {}), **meta},
        "spec": {"containers": [{"name": "app", "image": "nginx"}, {"name": "sidecar", "image": "envoy"}]},
    }


def deployment(name: str = "web", labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Deployment whose pod template holds the containers `pod()` has."""
    return {
        "metadata": {"name": name, **({"labels": labels} if labels else {})},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod()["spec"]},
        },
    }


def service(name: str = "web", *ports: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": list(ports) or [{"port": 80}], **spec}}


def status_of(call: Callable[[], object]) -> errors.StatusError:
    with pytest.raises(errors.StatusError) as caught:
        call()
    return caught.value


def snapshot(store: Store) -> tuple[int, dict[tuple[str, str, str], bytes]]:
    """The store's resourceVersion and every stored object, byte for byte."""
    objects = {
        (k.resource.key, ns, name): raw
        for k in KINDS if k.strategy is not None
        for ns, name, _, raw in store.entries(k.resource.key)
    }
    return store.rv, objects


def stored(store: Store, key: str, name: str, namespace: str = NS) -> dict[str, Any]:
    found = store.get(key, namespace, name)
    assert found is not None, f"{key} {namespace}/{name} is not stored"
    return found


def names(store: Store, key: str, namespace: str | None = NS) -> list[str]:
    return [o["metadata"]["name"] for o in store.objects(key, namespace)]


# -- create -----------------------------------------------------------------------------------------


def test_create_stamps_identity_and_applies_the_kinds_defaults(world: World) -> None:
    created = world.registry.create(PODS, NS, pod()).obj
    meta = created["metadata"]
    assert (created["apiVersion"], created["kind"]) == ("v1", "Pod")
    assert meta["namespace"] == NS and meta["uid"] and meta["creationTimestamp"]
    assert meta["resourceVersion"] == str(world.store.rv)
    assert created["spec"]["serviceAccountName"] == "default"
    assert created["spec"]["enableServiceLinks"] is True
    assert created["status"]["phase"] == "Running"
    assert world.plan.pod_ips.contains(created["status"]["podIP"])
    assert world.store.get(PODS.key, NS, "web") == created


def test_create_of_a_service_defaults_its_ports_and_allocates_a_cluster_ip(world: World) -> None:
    spec = world.registry.create(SERVICES, NS, service("web", {"port": 80})).obj["spec"]
    assert spec["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 80}]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert world.plan.service_ips.contains(spec["clusterIP"]) and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["clusterIP"] != world.plan.service_ips.first_address  # that one is the kubernetes service's


def test_create_ignores_server_set_metadata_the_client_sent(registry: Registry) -> None:
    body = pod(resourceVersion="999", deletionTimestamp="2020-01-01T00:00:00Z", uid="mine")
    meta = registry.create(PODS, NS, body).obj["metadata"]
    assert meta["uid"] != "mine"
    assert "deletionTimestamp" not in meta and meta["resourceVersion"] != "999"


def test_create_with_generate_name_picks_a_free_name_with_that_prefix(world: World) -> None:
    body = {"metadata": {"generateName": "job-"}, "spec": {"containers": [{"name": "c"}]}}
    first = world.registry.create(PODS, NS, body).obj["metadata"]
    second = world.registry.create(PODS, NS, body).obj["metadata"]
    assert first["name"].startswith("job-") and len(first["name"]) == len("job-") + 5
    assert first["generateName"] == "job-"
    assert first["name"] != second["name"]
    assert set(names(world.store, PODS.key)) == {first["name"], second["name"]}


def test_create_without_a_name_or_generate_name_is_invalid(registry: Registry) -> None:
    error = status_of(lambda: registry.create(PODS, NS, {"metadata": {}, "spec": {"containers": [{"name": "c"}]}}))
    assert (error.code, error.reason) == (422, "Invalid")
    assert [c["field"] for c in error.details["causes"]] == ["metadata.name"]
    assert error.details["causes"][0]["reason"] == "FieldValueRequired"


@pytest.mark.parametrize(
    ("rt", "body"),
    [
        (PODS, pod("Web_1")),  # not a DNS-1123 subdomain
        (SERVICES, service("1web")),  # services need a DNS-1035 label: no leading digit
        (NAMESPACES, {"metadata": {"name": "a.b"}}),  # namespaces need a DNS-1123 label: no dots
    ],
    ids=["pod", "service", "namespace"],
)
def test_an_invalid_name_is_422_with_a_cause_on_metadata_name(world: World, rt: Any, body: dict[str, Any]) -> None:
    before = snapshot(world.store)
    error = status_of(lambda: world.registry.create(rt, NS, body))
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.details["kind"] == rt.kind and error.details["name"] == body["metadata"]["name"]
    assert [(c["field"], c["reason"]) for c in error.details["causes"]] == [("metadata.name", "FieldValueInvalid")]
    assert snapshot(world.store) == before


def test_every_problem_of_an_invalid_object_is_a_cause(registry: Registry) -> None:
    body = service("web", {"name": "a", "port": 0}, {"name": "a", "port": 81, "targetPort": "Bad_Name"})
    error = status_of(lambda: registry.create(SERVICES, NS, body))
    assert error.code == 422
    fields = {c["field"] for c in error.details["causes"]}
    assert {"spec.ports[0].port", "spec.ports[1].name", "spec.ports[1].targetPort"} <= fields
    assert error.message.startswith('Service "web" is invalid: [')


def test_a_body_of_the_wrong_json_type_is_a_400_decode_error_naming_the_field(registry: Registry) -> None:
    # the API server's decoder refuses it before validation: 400 BadRequest, not 422 Invalid
    error = status_of(lambda: registry.create(SERVICES, NS, {"metadata": {"name": "web"}, "spec": {"ports": "80"}}))
    assert (error.code, error.reason) == (400, "BadRequest")
    assert error.message == (
        'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field '
        "ServiceSpec.spec.ports of type []v1.ServicePort"
    )


def test_a_body_of_another_kind_is_a_bad_request(registry: Registry) -> None:
    error = status_of(lambda: registry.create(PODS, NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}))
    assert error.code == 400


def test_unknown_fields_warn_by_default_and_fail_in_strict_mode(world: World) -> None:
    body = {"metadata": {"name": "odd"}, "spec": {"containers": [{"name": "c", "colour": "blue"}]}}
    strict = status_of(lambda: world.registry.create(PODS, NS, body, WriteOptions(field_validation="Strict")))
    assert strict.code == 400 and 'unknown field "spec.containers[0].colour"' in strict.message
    assert world.store.get(PODS.key, NS, "odd") is None
    result = world.registry.create(PODS, NS, body)
    assert result.warnings == ['unknown field "spec.containers[0].colour"']
    assert "colour" not in result.obj["spec"]["containers"][0]
    assert world.registry.create(PODS, NS, pod("quiet") | {"extra": 1}, WriteOptions(field_validation="Ignore")).warnings == []


def test_creating_an_existing_object_is_409_already_exists(world: World) -> None:
    world.registry.create(PODS, NS, pod())
    before = snapshot(world.store)
    error = status_of(lambda: world.registry.create(PODS, NS, pod()))
    assert (error.code, error.reason) == (409, "AlreadyExists")
    assert error.message == 'pods "web" already exists'
    assert snapshot(world.store) == before


def test_creating_in_a_missing_namespace_is_404(registry: Registry) -> None:
    error = status_of(lambda: registry.create(PODS, "nowhere", pod()))
    assert (error.code, error.reason) == (404, "NotFound")
    assert error.message == 'namespaces "nowhere" not found'


def test_creating_in_a_terminating_namespace_is_403(world: World) -> None:
    world.registry.create(NAMESPACES, "", {"metadata": {"name": "old"}})
    world.registry.delete(NAMESPACES, "", "old")  # no namespace controller here: it stays Terminating
    error = status_of(lambda: world.registry.create(SERVICE_ACCOUNTS, "old", {"metadata": {"name": "sa"}}))
    assert (error.code, error.reason) == (403, "Forbidden")
    assert "because it is being terminated" in error.message


def test_the_namespace_in_the_body_must_match_the_request(registry: Registry) -> None:
    error = status_of(lambda: registry.create(PODS, NS, pod(namespace="kube-system")))
    assert error.code == 400


def test_a_cluster_scoped_object_drops_a_namespace_it_was_sent(registry: Registry) -> None:
    created = registry.create(NAMESPACES, "ignored", {"metadata": {"name": "team", "namespace": "x"}}).obj
    assert "namespace" not in created["metadata"]
    assert created["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert created["status"] == {"phase": "Active"}


def test_a_pod_needs_its_service_account(registry: Registry) -> None:
    body = pod()
    body["spec"]["serviceAccountName"] = "robot"
    error = status_of(lambda: registry.create(PODS, NS, body))
    assert error.code == 403 and 'serviceaccount "robot" not found' in error.message


def test_a_dry_run_create_stores_nothing_and_holds_no_address(world: World) -> None:
    before = snapshot(world.store)
    options = WriteOptions(dry_run=True)
    svc = world.registry.create(SERVICES, NS, service("web", type="NodePort"), options)
    ip, node_port = svc.obj["spec"]["clusterIP"], svc.obj["spec"]["ports"][0]["nodePort"]
    pod_ip = world.registry.create(PODS, NS, pod(), options).obj["status"]["podIP"]
    assert svc.created and world.plan.service_ips.contains(ip)
    assert snapshot(world.store) == before
    # what the dry run showed is still free: it can be claimed for real
    assert world.plan.service_ips.claim(ip)
    assert world.plan.node_ports.claim(node_port)
    assert world.plan.pod_ips.claim(pod_ip)


def test_a_dry_run_create_is_validated_like_a_real_one(world: World) -> None:
    error = status_of(lambda: world.registry.create(PODS, NS, pod("Bad"), WriteOptions(dry_run=True)))
    assert error.code == 422
    world.registry.create(PODS, NS, pod())
    assert status_of(lambda: world.registry.create(PODS, NS, pod(), WriteOptions(dry_run=True))).code == 409


def test_a_requested_cluster_ip_is_taken_and_may_not_be_taken_twice(world: World) -> None:
    world.registry.create(SERVICES, NS, service("a", clusterIP="10.96.0.10"))
    error = status_of(lambda: world.registry.create(SERVICES, NS, service("b", clusterIP="10.96.0.10")))
    assert error.code == 422
    assert error.details["causes"][0]["field"] == "spec.clusterIP"
    assert "already allocated" in error.message
    outside = status_of(lambda: world.registry.create(SERVICES, NS, service("c", clusterIP="10.97.0.10")))
    assert outside.code == 422 and "not in the valid range" in outside.message


def test_a_restarted_registry_claims_the_addresses_stored_objects_hold(world: World) -> None:
    world.registry.create(SERVICES, NS, service("a", {"port": 80, "nodePort": 30005}, clusterIP="10.96.0.10", type="NodePort"))
    ip = world.registry.create(PODS, NS, pod()).obj["status"]["podIP"]
    again = make_world(store=world.store)  # a new registry and address plan over the same objects
    assert not again.plan.service_ips.claim("10.96.0.10")
    assert not again.plan.node_ports.claim(30005)
    assert not again.plan.pod_ips.claim(ip)


# -- get and list -----------------------------------------------------------------------------------


def test_get_returns_the_stored_object_or_404(world: World) -> None:
    created = world.registry.create(PODS, NS, pod()).obj
    assert world.registry.get(PODS, NS, "web") == created
    error = status_of(lambda: world.registry.get(PODS, NS, "nope"))
    assert (error.code, error.message) == (404, 'pods "nope" not found')
    assert error.details == {"kind": "pods", "name": "nope"}


def listed(registry: Registry, rt: Any, namespace: str | None, labels: str | None = None, fields: str | None = None) -> list[str]:
    keep = registry.make_filter(rt, labels, fields)
    return [orjson.loads(raw)["metadata"]["name"] for raw in registry.list_raw(rt, namespace, keep)]


@pytest.fixture
def three_pods(registry: Registry) -> Registry:
    registry.create(PODS, NS, pod("a", {"app": "web", "tier": "front"}))
    registry.create(PODS, NS, pod("b", {"app": "web", "tier": "back"}))
    done = pod("c", {"app": "db"})
    done["status"] = {"phase": "Succeeded"}
    registry.create(PODS, NS, done)
    registry.create(PODS, "kube-system", pod("d", {"app": "web"}))
    return registry


def test_no_selector_lists_everything_undecoded(three_pods: Registry) -> None:
    assert three_pods.make_filter(PODS, None, None) is None
    assert three_pods.make_filter(PODS, "", "") is None
    assert listed(three_pods, PODS, NS) == ["a", "b", "c"]
    assert listed(three_pods, PODS, None) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app!=web", ["c"]),
        ("app=web,tier=back", ["b"]),
        ("tier in (front,back)", ["a", "b"]),
        ("!tier", ["c"]),
        ("tier", ["a", "b"]),
        ("app notin (web)", ["c"]),
    ],
)
def test_a_label_selector_filters_the_list(three_pods: Registry, selector: str, expected: list[str]) -> None:
    assert listed(three_pods, PODS, NS, labels=selector) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("metadata.name=b", ["b"]),
        ("metadata.name!=b", ["a", "c"]),
        ("status.phase=Succeeded", ["c"]),
        ("status.phase!=Succeeded", ["a", "b"]),
        ("spec.hostNetwork=false", ["a", "b", "c"]),  # an absent field has the value the API server gives it
        ("spec.nodeName=emulator,metadata.name=a", ["a"]),
        ("metadata.namespace=default", ["a", "b", "c"]),
    ],
)
def test_a_field_selector_filters_the_list(three_pods: Registry, selector: str, expected: list[str]) -> None:
    assert listed(three_pods, PODS, NS, fields=selector) == expected


def test_label_and_field_selectors_combine(three_pods: Registry) -> None:
    assert listed(three_pods, PODS, None, labels="app=web", fields="metadata.namespace=kube-system") == ["d"]


def test_each_kind_has_its_own_field_labels(world: World) -> None:
    world.registry.create(SERVICES, NS, service("np", type="NodePort"))
    assert listed(world.registry, SERVICES, NS, fields="spec.type=NodePort") == ["np"]
    assert listed(world.registry, SERVICES, NS, fields="spec.type=ClusterIP") == ["kubernetes"]
    assert listed(world.registry, SERVICES, NS, fields="spec.clusterIP=10.96.0.1") == ["kubernetes"]
    assert listed(world.registry, NAMESPACES, None, fields="status.phase=Active") == [
        "default", "kube-node-lease", "kube-public", "kube-system",
    ]


def test_an_unsupported_field_is_400_naming_the_supported_ones(registry: Registry) -> None:
    error = status_of(lambda: registry.make_filter(PODS, None, "spec.containers=x"))
    assert (error.code, error.reason) == (400, "BadRequest")
    assert "field label not supported: spec.containers" in error.message
    assert "status.phase" in error.message
    # a field one kind supports is not supported by another
    assert status_of(lambda: registry.make_filter(SERVICE_ACCOUNTS, None, "status.phase=Running")).code == 400


@pytest.mark.parametrize(("labels", "fields"), [("app in (web", None), ("a b", None), (None, "novalue")])
def test_a_selector_that_does_not_parse_is_400(registry: Registry, labels: str | None, fields: str | None) -> None:
    error = status_of(lambda: registry.make_filter(PODS, labels, fields))
    assert error.code == 400 and "unable to parse" in error.message


# -- update -----------------------------------------------------------------------------------------


def test_update_replaces_the_object_and_keeps_server_defaults(world: World) -> None:
    created = world.registry.create(PODS, NS, pod()).obj
    edited = pod(labels={"v": "2"})  # a manifest edited and PUT back, without the server's defaults
    result = world.registry.update(PODS, NS, "web", edited)
    assert result.changed
    updated = result.obj
    assert updated["metadata"]["labels"] == {"v": "2"}
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert updated["spec"]["serviceAccountName"] == "default" and updated["spec"]["nodeName"] == "emulator"
    assert updated["status"] == created["status"]


def test_an_update_that_changes_nothing_is_not_written(world: World) -> None:
    created = world.registry.create(PODS, NS, pod()).obj
    rv = world.store.rv
    result = world.registry.update(PODS, NS, "web", created)
    assert not result.changed and result.obj == created
    assert world.store.rv == rv


def test_update_with_a_stale_resource_version_is_409(world: World) -> None:
    stale = world.registry.create(PODS, NS, pod()).obj
    world.registry.patch(PODS, NS, "web", MERGE_PATCH, {"metadata": {"labels": {"x": "1"}}})
    before = snapshot(world.store)
    stale["metadata"]["labels"] = {"x": "2"}
    error = status_of(lambda: world.registry.update(PODS, NS, "web", stale))
    assert (error.code, error.reason) == (409, "Conflict")
    assert "the object has been modified" in error.message
    assert snapshot(world.store) == before


def test_update_with_a_resource_version_that_is_no_number_is_400(world: World) -> None:
    world.registry.create(PODS, NS, pod())
    assert status_of(lambda: world.registry.update(PODS, NS, "web", pod(resourceVersion="abc"))).code == 400


def test_update_of_a_missing_object_is_404(registry: Registry) -> None:
    assert status_of(lambda: registry.update(PODS, NS, "web", pod())).code == 404


def test_update_may_not_rename(world: World) -> None:
    world.registry.create(PODS, NS, pod())
    error = status_of(lambda: world.registry.update(PODS, NS, "web", pod("other")))
    assert error.code == 400 and "does not match the name on the URL" in error.message
    assert world.store.get(PODS.key, NS, "other") is None


def test_the_uid_is_kept_when_an_update_omits_it(world: World) -> None:
    uid = world.registry.create(PODS, NS, pod()).obj["metadata"]["uid"]
    assert world.registry.update(PODS, NS, "web", pod(labels={"a": "b"})).obj["metadata"]["uid"] == uid


def test_an_update_carrying_another_objects_uid_is_a_conflict(world: World) -> None:
    old = world.registry.create(PODS, NS, pod()).obj
    world.registry.delete(PODS, NS, "web")
    world.registry.create(PODS, NS, pod())  # same name, a new object
    old["metadata"].pop("resourceVersion")
    old["metadata"]["labels"] = {"written": "over-the-new-pod"}
    error = status_of(lambda: world.registry.update(PODS, NS, "web", old))
    assert (error.code, error.reason) == (409, "Conflict")
    assert "Precondition failed: UID" in error.message


def test_a_main_resource_update_leaves_status_alone(world: World) -> None:
    created = world.registry.create(PODS, NS, pod()).obj
    body = stored(world.store, PODS.key, "web")
    body["status"]["phase"] = "Failed"
    body["metadata"]["labels"] = {"edited": "yes"}
    updated = world.registry.update(PODS, NS, "web", body).obj
    assert updated["metadata"]["labels"] == {"edited": "yes"}
    assert updated["status"] == created["status"]


def test_the_status_subresource_changes_status_only(world: World) -> None:
    created = world.registry.create(PODS, NS, pod(labels={"v": "1"})).obj
    body = stored(world.store, PODS.key, "web")
    body["status"]["phase"] = "Succeeded"
    body["metadata"]["labels"] = {"v": "2"}
    body["spec"]["containers"][0]["image"] = "other"
    updated = world.registry.update(PODS, NS, "web", body, subresource="status").obj
    assert updated["status"]["phase"] == "Succeeded"
    assert updated["metadata"]["labels"] == {"v": "1"}
    assert updated["spec"] == created["spec"]


def test_a_pods_ip_may_not_change(world: World) -> None:
    world.registry.create(PODS, NS, pod())
    body = stored(world.store, PODS.key, "web")
    body["status"]["podIP"] = "10.244.0.3"
    error = status_of(lambda: world.registry.update(PODS, NS, "web", body, subresource="status"))
    assert error.code == 422 and error.details["causes"][0]["field"] == "status.podIP"


def test_a_services_cluster_ip_is_immutable_and_kept_when_omitted(world: World) -> None:
    ip = world.registry.create(SERVICES, NS, service("web")).obj["spec"]["clusterIP"]
    assert world.registry.update(SERVICES, NS, "web", service("web", {"port": 81})).obj["spec"]["clusterIP"] == ip
    error = status_of(lambda: world.registry.update(SERVICES, NS, "web", service("web", clusterIP="10.96.0.77")))
    assert error.code == 422 and "field is immutable" in error.message


def test_a_dry_run_update_stores_nothing(world: World) -> None:
    world.registry.create(PODS, NS, pod())
    before = snapshot(world.store)
    result = world.registry.update(PODS, NS, "web", pod(labels={"a": "b"}), WriteOptions(dry_run=True))
    assert result.obj["metadata"]["labels"] == {"a": "b"}
    assert snapshot(world.store) == before


def test_changing_a_service_to_node_port_allocates_and_back_releases(world: World) -> None:
    world.registry.create(SERVICES, NS, service("web"))
    as_node_port = world.registry.patch(SERVICES, NS, "web", MERGE_PATCH, {"spec": {"type": "NodePort"}}).obj
    node_port = as_node_port["spec"]["ports"][0]["nodePort"]
    assert world.plan.node_ports.contains(node_port)
    back = world.registry.patch(SERVICES, NS, "web", MERGE_PATCH, {"spec": {"type": "ClusterIP"}}).obj
    assert "nodePort" not in back["spec"]["ports"][0]
    assert world.plan.node_ports.claim(node_port)  # given back


# -- patch ------------------------------------------------------------------------------------------


def template_of(result: Any) -> list[tuple[str, str]]:
    """(name, image) of each container of a stored Deployment's pod template."""
    return [(c["name"], c["image"]) for c in result.obj["spec"]["template"]["spec"]["containers"]]


def pod_patch_refused(world: World, patch_type: str, patch: Any, message: str) -> None:
    """A pod's containers are fixed once it exists (ValidatePodUpdate): the same patch on a pod is 422 and
    changes nothing. Patches of container lists are therefore shown on a Deployment's pod template, which
    uses the pod's merge keys."""
    world.registry.create(PODS, NS, pod())
    before = snapshot(world.store)
    refused = status_of(lambda: world.registry.patch(PODS, NS, "web", patch_type, patch))
    assert refused.code == 422 and message in refused.message
    assert snapshot(world.store) == before


def test_a_merge_patch_changes_what_it_names_and_replaces_lists(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(labels={"a": "1", "b": "2"}))
    patched = world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {
        "metadata": {"labels": {"a": None, "c": "3"}},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy:2"}]}}},
    })
    assert patched.obj["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert template_of(patched) == [("sidecar", "envoy:2")]
    pod_patch_refused(world, MERGE_PATCH, {"spec": {"containers": [{"name": "sidecar", "image": "envoy:2"}]}},
                      "spec.containers: Forbidden: pod updates may not add or remove containers")


def test_a_strategic_merge_patch_merges_containers_by_name(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment())
    patched = world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, {
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy:2"}, {"name": "extra", "image": "busybox"}]}}},
    })
    assert dict(template_of(patched)) == {"app": "nginx", "sidecar": "envoy:2", "extra": "busybox"}
    # on a pod, an image may change (merged by name, the other container kept); a container may not be added
    world.registry.create(PODS, NS, pod())
    images = world.registry.patch(PODS, NS, "web", STRATEGIC_MERGE_PATCH, {"spec": {"containers": [{"name": "sidecar", "image": "envoy:2"}]}}).obj
    assert {c["name"]: c["image"] for c in images["spec"]["containers"]} == {"app": "nginx", "sidecar": "envoy:2"}
    refused = status_of(lambda: world.registry.patch(PODS, NS, "web", STRATEGIC_MERGE_PATCH, {"spec": {"containers": [{"name": "extra", "image": "busybox"}]}}))
    assert refused.code == 422 and "pod updates may not add or remove containers" in refused.message


def test_a_strategic_merge_patch_can_delete_a_list_element(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment())
    patched = world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, {
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}},
    })
    assert template_of(patched) == [("app", "nginx")]
    pod_patch_refused(world, STRATEGIC_MERGE_PATCH, {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}},
                      "pod updates may not add or remove containers")


def test_a_json_patch_applies_its_operations_in_order(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(labels={"a": "1"}))
    patched = world.registry.patch(DEPLOYMENTS, NS, "web", JSON_PATCH, [
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:2"},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
    ])
    assert patched.obj["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert template_of(patched) == [("app", "nginx:2")]
    pod_patch_refused(world, JSON_PATCH, [{"op": "remove", "path": "/spec/containers/1"}], "pod updates may not add or remove containers")


@pytest.mark.parametrize(
    ("patch_type", "patch", "code"),
    [
        (JSON_PATCH, [{"op": "test", "path": "/metadata/name", "value": "other"}], 422),
        (JSON_PATCH, {"op": "add"}, 422),  # not a list
        (JSON_PATCH, [{"op": "remove", "path": "/spec/nothing"}], 422),
        (STRATEGIC_MERGE_PATCH, ["not", "an", "object"], 422),
        (MERGE_PATCH, {"spec": {"containers": []}}, 422),  # the result is validated: a pod needs containers
        (MERGE_PATCH, {"metadata": {"name": "renamed"}}, 400),
        (MERGE_PATCH, {"metadata": {"uid": "someone-else"}}, 409),
        (MERGE_PATCH, {"metadata": {"resourceVersion": "1"}}, 409),  # a stale precondition
        ("application/xml", {}, 415),
    ],
    ids=["test-fails", "json-not-list", "remove-missing", "smp-not-object", "invalid-result", "rename", "uid", "stale-rv", "unknown-type"],
)
def test_a_patch_that_cannot_be_applied_changes_nothing(
    world: World, patch_type: str, patch: Any, code: int
) -> None:
    world.registry.create(PODS, NS, pod())
    before = snapshot(world.store)
    assert status_of(lambda: world.registry.patch(PODS, NS, "web", patch_type, patch)).code == code
    assert snapshot(world.store) == before


def test_patching_a_missing_object_is_404(registry: Registry) -> None:
    assert status_of(lambda: registry.patch(PODS, NS, "web", MERGE_PATCH, {})).code == 404


def test_a_status_patch_changes_status_only(world: World) -> None:
    world.registry.create(PODS, NS, pod())
    patched = world.registry.patch(PODS, NS, "web", MERGE_PATCH, {
        "metadata": {"labels": {"ignored": "yes"}}, "status": {"phase": "Failed"},
    }, subresource="status").obj
    assert patched["status"]["phase"] == "Failed"
    assert "labels" not in patched["metadata"]


def test_a_dry_run_patch_stores_nothing(world: World) -> None:
    world.registry.create(PODS, NS, pod())
    before = snapshot(world.store)
    result = world.registry.patch(PODS, NS, "web", MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}}, WriteOptions(dry_run=True))
    assert result.obj["metadata"]["labels"] == {"a": "b"}
    assert snapshot(world.store) == before


# -- server-side apply ------------------------------------------------------------------------------


def applied_service(target_port: int, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", **({"labels": labels} if labels else {})},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": target_port}]},
    }


def managers(obj: dict[str, Any]) -> list[str]:
    return [e["manager"] for e in obj["metadata"].get("managedFields") or []]


def test_apply_creates_a_missing_object_and_records_its_manager(world: World) -> None:
    result = world.registry.patch(SERVICES, NS, "web", APPLY_PATCH, applied_service(8080), WriteOptions(field_manager="alice"))
    assert result.created
    service_ = stored(world.store, SERVICES.key, "web")
    assert service_["spec"]["ports"][0]["targetPort"] == 8080
    entry = service_["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"], entry["fieldsType"]) == ("alice", "Apply", "FieldsV1")
    assert world.plan.service_ips.contains(service_["spec"]["clusterIP"])


def test_apply_needs_a_field_manager(registry: Registry) -> None:
    error = status_of(lambda: registry.patch(SERVICES, NS, "web", APPLY_PATCH, applied_service(8080)))
    assert error.code == 400 and "fieldManager is required" in error.message


def test_apply_of_a_subresource_of_a_missing_object_is_404(registry: Registry) -> None:
    error = status_of(lambda: registry.apply(SERVICES, NS, "web", applied_service(1), WriteOptions(field_manager="a"), "status"))
    assert error.code == 404


def test_apply_with_another_name_than_the_url_is_400(registry: Registry) -> None:
    assert status_of(lambda: registry.apply(SERVICES, NS, "other", applied_service(1), WriteOptions(field_manager="a"))).code == 400


def test_reapplying_the_same_configuration_writes_nothing(world: World) -> None:
    alice = WriteOptions(field_manager="alice")
    world.registry.apply(SERVICES, NS, "web", applied_service(8080), alice)
    rv = world.store.rv
    result = world.registry.apply(SERVICES, NS, "web", applied_service(8080), alice)
    assert not result.changed
    assert world.store.rv == rv


def test_apply_drops_what_the_manager_no_longer_applies(world: World) -> None:
    alice = WriteOptions(field_manager="alice")
    world.registry.apply(SERVICES, NS, "web", applied_service(8080, a="1", b="2"), alice)
    again = world.registry.apply(SERVICES, NS, "web", applied_service(8080, a="1"), alice).obj
    assert again["metadata"]["labels"] == {"a": "1"}


def test_two_managers_setting_one_field_differently_conflict_unless_forced(world: World) -> None:
    world.registry.apply(SERVICES, NS, "web", applied_service(8080), WriteOptions(field_manager="alice"))
    before = snapshot(world.store)
    error = status_of(lambda: world.registry.apply(SERVICES, NS, "web", applied_service(9090), WriteOptions(field_manager="bob")))
    assert (error.code, error.reason) == (409, "Conflict")
    assert error.details["causes"] == [{
        "type": "FieldManagerConflict",
        "message": 'conflict with "alice"',
        "field": '.spec.ports[port=80,protocol="TCP"].targetPort',
    }]
    assert error.message == 'Apply failed with 1 conflict: conflict with "alice": .spec.ports[port=80,protocol="TCP"].targetPort'
    assert snapshot(world.store) == before
    forced = world.registry.apply(SERVICES, NS, "web", applied_service(9090), WriteOptions(field_manager="bob"), force=True).obj
    assert forced["spec"]["ports"][0]["targetPort"] == 9090
    assert sorted(managers(forced)) == ["alice", "bob"]


def test_conflicts_with_several_fields_are_listed_by_manager(world: World) -> None:
    world.registry.apply(SERVICES, NS, "web", applied_service(8080, a="1"), WriteOptions(field_manager="alice"))
    error = status_of(lambda: world.registry.apply(SERVICES, NS, "web", applied_service(9090, a="2"), WriteOptions(field_manager="bob")))
    assert error.message == (
        'Apply failed with 2 conflicts: conflicts with "alice":\n'
        "- .metadata.labels.a\n"
        '- .spec.ports[port=80,protocol="TCP"].targetPort'
    ), error.message
    assert [c["message"] for c in error.details["causes"]] == ['conflict with "alice"'] * 2


def test_managers_agreeing_on_a_value_do_not_conflict(world: World) -> None:
    world.registry.apply(SERVICES, NS, "web", applied_service(8080), WriteOptions(field_manager="alice"))
    shared = world.registry.apply(SERVICES, NS, "web", applied_service(8080, team="b"), WriteOptions(field_manager="bob")).obj
    assert shared["metadata"]["labels"] == {"team": "b"}
    assert sorted(managers(shared)) == ["alice", "bob"]


def test_a_dry_run_apply_creates_nothing(world: World) -> None:
    before = snapshot(world.store)
    result = world.registry.apply(SERVICES, NS, "web", applied_service(8080), WriteOptions(field_manager="a", dry_run=True))
    assert result.created and result.obj["spec"]["ports"][0]["targetPort"] == 8080
    assert snapshot(world.store) == before


# -- delete -----------------------------------------------------------------------------------------


def test_delete_removes_the_object_and_returns_its_last_state(world: World) -> None:
    created = world.registry.create(PODS, NS, pod()).obj
    gone = world.registry.delete(PODS, NS, "web")
    assert gone["metadata"]["uid"] == created["metadata"]["uid"]
    assert gone["metadata"]["resourceVersion"] == str(world.store.rv)
    assert world.store.get(PODS.key, NS, "web") is None
    assert world.plan.pod_ips.claim(created["status"]["podIP"])  # its address is free again
    assert status_of(lambda: world.registry.delete(PODS, NS, "web")).code == 404


def test_deleting_a_service_gives_back_its_addresses(world: World) -> None:
    spec = world.registry.create(SERVICES, NS, service("lb", type="LoadBalancer")).obj
    ip, node_port = spec["spec"]["clusterIP"], spec["spec"]["ports"][0]["nodePort"]
    lb_ip = spec["status"]["loadBalancer"]["ingress"][0]["ip"]
    world.registry.delete(SERVICES, NS, "lb")
    assert world.plan.service_ips.claim(ip)
    assert world.plan.node_ports.claim(node_port)
    assert world.plan.lb_ips.claim(lb_ip)


def test_delete_with_finalizers_only_marks_then_removing_the_last_finalizer_completes_it(world: World) -> None:
    created = world.registry.create(PODS, NS, pod(finalizers=["example.com/a", "example.com/b"])).obj
    marked = world.registry.delete(PODS, NS, "web")
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert world.store.get(PODS.key, NS, "web") == marked
    # deleting again changes nothing
    rv = world.store.rv
    assert world.registry.delete(PODS, NS, "web") == marked and world.store.rv == rv
    # while finalizers remain the object (and its address) stay
    ip = created["status"]["podIP"]
    assert not world.plan.pod_ips.claim(ip)
    one_left = world.registry.patch(PODS, NS, "web", MERGE_PATCH, {"metadata": {"finalizers": ["example.com/b"]}}).obj
    assert one_left["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    assert world.store.get(PODS.key, NS, "web") is not None
    world.registry.patch(PODS, NS, "web", JSON_PATCH, [{"op": "remove", "path": "/metadata/finalizers"}])
    assert world.store.get(PODS.key, NS, "web") is None
    assert world.plan.pod_ips.claim(ip)


def test_an_update_may_not_clear_the_deletion_timestamp(world: World) -> None:
    world.registry.create(PODS, NS, pod(finalizers=["example.com/a"]))
    marked = world.registry.delete(PODS, NS, "web")
    body = stored(world.store, PODS.key, "web")
    del body["metadata"]["deletionTimestamp"]
    body["metadata"]["labels"] = {"x": "y"}
    kept = world.registry.update(PODS, NS, "web", body).obj
    assert kept["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]


def test_finalize_removes_an_object_whatever_its_finalizers(world: World) -> None:
    world.registry.create(PODS, NS, pod(finalizers=["example.com/a"]))
    assert world.registry.finalize(PODS, NS, "web") is not None
    assert world.store.get(PODS.key, NS, "web") is None
    assert world.registry.finalize(PODS, NS, "web") is None


@pytest.mark.parametrize("field", ["uid", "resourceVersion"])
def test_delete_preconditions_must_match(world: World, field: str) -> None:
    created = world.registry.create(PODS, NS, pod()).obj
    before = snapshot(world.store)
    error = status_of(lambda: world.registry.delete(PODS, NS, "web", preconditions={field: "mismatch"}))
    assert (error.code, error.reason) == (409, "Conflict")
    assert f"Precondition failed: {'UID' if field == 'uid' else 'ResourceVersion'} in precondition" in error.message
    assert snapshot(world.store) == before
    world.registry.delete(PODS, NS, "web", preconditions={field: created["metadata"][field]})
    assert world.store.get(PODS.key, NS, "web") is None


def test_a_dry_run_delete_deletes_nothing(world: World) -> None:
    world.registry.create(PODS, NS, pod(finalizers=["example.com/a"]))
    world.registry.create(PODS, NS, pod("plain"))
    before = snapshot(world.store)
    assert world.registry.delete(PODS, NS, "web", dry_run=True)["metadata"]["name"] == "web"
    assert world.registry.delete(PODS, NS, "plain", dry_run=True)["metadata"]["name"] == "plain"
    assert snapshot(world.store) == before


def test_deleting_a_namespace_marks_it_terminating(world: World) -> None:
    world.registry.create(NAMESPACES, "", {"metadata": {"name": "team"}})
    marked = world.registry.delete(NAMESPACES, "", "team")
    assert marked["status"]["phase"] == "Terminating" and marked["metadata"]["deletionTimestamp"]
    assert world.store.get(NAMESPACES.key, "", "team") == marked  # the namespace controller removes it later


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_the_protected_namespaces_may_not_be_deleted(world: World, name: str) -> None:
    before = snapshot(world.store)
    error = status_of(lambda: world.registry.delete(NAMESPACES, "", name))
    assert (error.code, error.reason) == (403, "Forbidden")
    assert snapshot(world.store) == before


def test_delete_collection_deletes_what_the_selector_picks(three_pods: Registry) -> None:
    three_pods.create(PODS, NS, pod("held", {"app": "web"}, finalizers=["example.com/a"]))
    store = three_pods.store
    deleted = three_pods.delete_collection(PODS, NS, three_pods.make_filter(PODS, "app=web", None))
    assert sorted(o["metadata"]["name"] for o in deleted) == ["a", "b", "held"]
    assert names(store, PODS.key) == ["c", "held"]  # the one with a finalizer is only marked
    assert stored(store, PODS.key, "held")["metadata"]["deletionTimestamp"]
    assert names(store, PODS.key, "kube-system") == ["d"]  # other namespaces untouched


def test_a_large_delete_collection_lets_the_loop_run_between_its_batches(registry: Registry) -> None:
    """The API's deletecollection deletes DELETE_BATCH objects per turn of the event loop: what else runs
    on it (here a task counting the config maps left) sees the deletion under way, not only its end."""
    for i in range(DELETE_BATCH * 2 + 50):
        registry.create(CONFIG_MAPS, NS, {"metadata": {"name": f"cm-{i:03d}", "labels": {"batch": "yes"}}})
    registry.create(CONFIG_MAPS, NS, {"metadata": {"name": "kept"}})

    async def run() -> tuple[list[dict[str, Any]], list[int]]:
        seen: list[int] = []

        async def count() -> None:
            while True:
                left = len(list(registry.store.raws(CONFIG_MAPS.key, NS)))
                seen.append(left)
                if left == DELETE_BATCH + 51:  # after the first batch: the last one listed is deleted and made again
                    registry.delete(CONFIG_MAPS, NS, "cm-449")
                    registry.create(CONFIG_MAPS, NS, {"metadata": {"name": "cm-449", "labels": {"batch": "yes"}}})
                await asyncio.sleep(0)

        counting = asyncio.create_task(count())
        await asyncio.sleep(0)
        deleted = await registry.delete_collection_paced(CONFIG_MAPS, NS, registry.make_filter(CONFIG_MAPS, "batch=yes", None))
        counting.cancel()
        return deleted, seen

    deleted, seen = asyncio.run(run())
    assert len(deleted) == DELETE_BATCH * 2 + 49  # (one of them made again meanwhile: see below)
    assert [o["metadata"]["name"] for o in registry.store.objects(CONFIG_MAPS.key, NS)] == ["cm-449", "kept"]
    assert {DELETE_BATCH + 51, 51} <= set(seen)  # seen between the batches


def test_delete_collection_in_every_namespace_and_as_a_dry_run(three_pods: Registry) -> None:
    store = three_pods.store
    before = snapshot(store)
    assert len(three_pods.delete_collection(PODS, None, None, dry_run=True)) == 4
    assert snapshot(store) == before
    assert len(three_pods.delete_collection(PODS, None, None)) == 4
    assert list(store.objects(PODS.key)) == []


# -- ensure -----------------------------------------------------------------------------------------


def endpoints(ip: str = "10.1.2.3", port: int = 8080) -> dict[str, Any]:
    return {
        "metadata": {"name": "ext", "namespace": NS},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"port": port}]}],
    }


def test_ensure_creates_replaces_and_is_a_no_op_when_nothing_changed(world: World) -> None:
    created = world.registry.ensure(ENDPOINTS, endpoints())
    assert created is not None and created["subsets"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    rv = world.store.rv
    assert world.registry.ensure(ENDPOINTS, endpoints()) is None
    assert world.store.rv == rv
    replaced = world.registry.ensure(ENDPOINTS, endpoints(port=9090))
    assert replaced is not None and replaced["subsets"][0]["ports"][0]["port"] == 9090
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]


def test_ensure_is_validated_like_any_writer(world: World) -> None:
    before = snapshot(world.store)
    error = status_of(lambda: world.registry.ensure(ENDPOINTS, endpoints(ip="not-an-ip")))
    assert error.code == 422 and error.details["causes"][0]["field"] == "subsets[0].addresses[0].ip"
    world.registry.ensure(ENDPOINTS, endpoints())
    after_create = snapshot(world.store)
    assert status_of(lambda: world.registry.ensure(ENDPOINTS, endpoints(port=70000))).code == 422
    assert snapshot(world.store) == after_create != before


def test_ensure_does_not_create_in_a_missing_namespace(registry: Registry) -> None:
    body = {"metadata": {"name": "default", "namespace": "nowhere"}}
    assert status_of(lambda: registry.ensure(SERVICE_ACCOUNTS, body)).code == 404


# -- pod environment --------------------------------------------------------------------------------


def test_pod_environment_gives_the_kubelets_service_variables(world: World) -> None:
    world.registry.create(SERVICES, NS, service("db-main", {"name": "sql", "port": 5432}, clusterIP="10.96.0.20"))
    body = pod()
    body["spec"]["containers"][0]["env"] = [{"name": "DB", "value": "$(DB_MAIN_SERVICE_HOST):$(DB_MAIN_SERVICE_PORT)"}]
    world.registry.create(PODS, NS, body)
    container, env = world.registry.pod_environment(NS, "web", None)
    assert container == "app"  # the first container, as kubectl picks
    assert list(env)[0] == "DB" and env["DB"] == "10.96.0.20:5432"  # the container's own first, expanded
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["DB_MAIN_SERVICE_HOST"] == "10.96.0.20"
    assert env["DB_MAIN_SERVICE_PORT_SQL"] == "5432"
    assert env["DB_MAIN_PORT_5432_TCP"] == "tcp://10.96.0.20:5432"


def test_pod_environment_of_a_named_container_and_without_service_links(world: World) -> None:
    world.registry.create(SERVICES, NS, service("db", clusterIP="10.96.0.20"))
    body = pod()
    body["spec"]["enableServiceLinks"] = False
    world.registry.create(PODS, NS, body)
    container, env = world.registry.pod_environment(NS, "web", "sidecar")
    assert container == "sidecar"
    assert "DB_SERVICE_HOST" not in env and env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_pod_environment_skips_headless_services_and_other_namespaces(world: World) -> None:
    world.registry.create(SERVICES, NS, service("headless", clusterIP="None"))
    world.registry.create(SERVICES, "kube-system", service("dns", clusterIP="10.96.0.30"))
    world.registry.create(PODS, NS, pod())
    _, env = world.registry.pod_environment(NS, "web", None)
    assert not any(k.startswith(("HEADLESS_", "DNS_")) for k in env)


def test_pod_environment_of_a_missing_pod_or_container_is_404(world: World) -> None:
    assert status_of(lambda: world.registry.pod_environment(NS, "web", None)).code == 404
    world.registry.create(PODS, NS, pod())
    error = status_of(lambda: world.registry.pod_environment(NS, "web", "nope"))
    assert error.code == 404 and error.message == 'container "nope" not found in pod "web"'


# -- rollback: a failed write gives back what it took and leaves the store as it was -----------------


def test_a_service_that_fails_validation_takes_no_address(world: World) -> None:
    before = snapshot(world.store)
    bad = service("web", {"port": 0, "nodePort": 30007}, clusterIP="10.96.0.40", type="NodePort")
    assert status_of(lambda: world.registry.create(SERVICES, NS, bad)).code == 422
    assert snapshot(world.store) == before
    ok = world.registry.create(SERVICES, NS, service("web", {"port": 80, "nodePort": 30007}, clusterIP="10.96.0.40", type="NodePort"))
    assert ok.obj["spec"]["clusterIP"] == "10.96.0.40"


def test_a_taken_node_port_gives_back_the_cluster_ip_and_node_ports_already_allocated() -> None:
    # one free cluster IP (10.96.0.2: .1 is the kubernetes service's) and two node ports, 30001 held
    world = make_world(service_cidr="10.96.0.0/30", node_ports="30000-30001")
    assert world.plan.node_ports.claim(30001)
    before = snapshot(world.store)
    bad = service("web", {"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30001}, type="NodePort")
    error = status_of(lambda: world.registry.create(SERVICES, NS, bad))
    assert error.code == 422 and "provided port is already allocated" in error.message
    assert error.details["causes"][0]["field"] == "spec.ports[1].nodePort"
    assert snapshot(world.store) == before
    # the only cluster IP and the only free node port were given back: the next service gets them
    again = world.registry.create(SERVICES, NS, service("web", type="NodePort")).obj["spec"]
    assert (again["clusterIP"], again["ports"][0]["nodePort"]) == ("10.96.0.2", 30000)


def test_a_load_balancer_address_outside_its_range_gives_back_everything_else(world: World) -> None:
    before = snapshot(world.store)
    bad = service("lb", {"port": 80, "nodePort": 30009}, clusterIP="10.96.0.50", type="LoadBalancer", loadBalancerIP="192.0.2.1")
    error = status_of(lambda: world.registry.create(SERVICES, NS, bad))
    assert error.code == 422 and error.details["causes"][0]["field"] == "spec.loadBalancerIP"
    assert snapshot(world.store) == before
    assert world.plan.service_ips.claim("10.96.0.50")
    assert world.plan.node_ports.claim(30009)


def test_a_failed_type_change_gives_back_the_node_ports_it_took() -> None:
    world = make_world(node_ports="30000-30001")
    world.registry.create(SERVICES, NS, service("holder", {"port": 80, "nodePort": 30000}, type="NodePort"))
    world.registry.create(SERVICES, NS, service("web", {"name": "a", "port": 80}, {"name": "b", "port": 81}))
    before = snapshot(world.store)
    patch = {"spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30000}]}}
    assert status_of(lambda: world.registry.patch(SERVICES, NS, "web", MERGE_PATCH, patch)).code == 422
    assert snapshot(world.store) == before
    assert world.plan.node_ports.claim(30001)  # what port "a" was given went back


def test_a_store_that_refuses_the_write_gets_the_addresses_back() -> None:
    backend = Breakable()
    world = make_world(backend=backend)
    world.registry.create(SERVICES, NS, service("kept", type="NodePort"))
    break_the_disk(world, backend)
    before = snapshot(world.store)
    fixed = service("web", {"port": 80, "nodePort": 30042}, clusterIP="10.96.0.42", type="LoadBalancer", loadBalancerIP="10.250.0.42")
    error = status_of(lambda: world.registry.create(SERVICES, NS, fixed))
    assert (error.code, error.reason) == (503, "ServiceUnavailable")
    dynamic = status_of(lambda: world.registry.create(PODS, NS, pod()))
    assert dynamic.code == 503
    update = status_of(lambda: world.registry.patch(SERVICES, NS, "kept", MERGE_PATCH, {"spec": {"type": "LoadBalancer"}}))
    assert update.code == 503
    assert snapshot(world.store) == before
    assert world.plan.service_ips.claim("10.96.0.42")
    assert world.plan.node_ports.claim(30042)
    assert world.plan.lb_ips.claim("10.250.0.42")


def test_a_pod_the_store_refuses_gives_back_its_ip() -> None:
    backend = Breakable()
    world = make_world(backend=backend)
    first = world.registry.create(PODS, NS, pod("first")).obj["status"]["podIP"]
    world.registry.delete(PODS, NS, "first")
    break_the_disk(world, backend)
    body = pod("second")
    body["status"] = {"podIP": first}  # a pod may bring its own address: claimed, then given back
    assert status_of(lambda: world.registry.create(PODS, NS, body)).code == 503
    assert world.plan.pod_ips.claim(first)


@pytest.mark.parametrize(
    ("write", "code"),
    [
        (lambda r: r.create(SERVICES, NS, service("web", clusterIP="10.96.0.60")), 409),  # already exists
        (lambda r: r.create(SERVICES, NS, service("dup", {"port": 1}, clusterIP="10.96.0.60")), 422),  # IP taken
        (lambda r: r.create(PODS, "nowhere", pod()), 404),
        (lambda r: r.update(SERVICES, NS, "web", service("web", clusterIP="10.96.0.61")), 422),
        (lambda r: r.update(SERVICES, NS, "web", {"metadata": {"name": "web", "resourceVersion": "1"}, "spec": {"ports": [{"port": 1}]}}), 409),
        (lambda r: r.patch(SERVICES, NS, "web", MERGE_PATCH, {"spec": {"ports": None}}), 422),
        (lambda r: r.apply(SERVICES, NS, "web", {"spec": {"ports": [{"port": 80, "targetPort": 1}]}}, WriteOptions(field_manager="x")), 409),
        (lambda r: r.delete(SERVICES, NS, "web", preconditions={"uid": "x"}), 409),
        (lambda r: r.delete(NAMESPACES, "", "default"), 403),
        (lambda r: r.ensure(ENDPOINTS, {"metadata": {"name": "web", "namespace": NS}, "subsets": [{"ports": [{"port": 0}]}]}), 422),
    ],
    ids=["exists", "ip-taken", "no-namespace", "immutable-ip", "stale", "invalid-patch", "apply-conflict", "precondition", "protected", "ensure-invalid"],
)
def test_a_failed_write_leaves_the_resource_version_and_objects_unchanged(
    world: World, write: Callable[[Registry], Any], code: int
) -> None:
    owner = WriteOptions(field_manager="owner")
    world.registry.apply(SERVICES, NS, "web", {"spec": {"clusterIP": "10.96.0.60", "ports": [{"port": 80, "targetPort": 8080}]}}, owner)
    before = snapshot(world.store)
    assert status_of(lambda: write(world.registry)).code == code
    assert snapshot(world.store) == before


# -- what the API server refuses and the emulator used to accept -------------------------------------------

NOT_CONFIGURED = "IPv6 is not configured on this cluster"
LONG_NODE = "n" * 300


def _pod_with(**spec: Any) -> dict[str, Any]:
    container = {"name": "app", "image": "nginx", **spec.pop("container", {})}
    return {"metadata": {"name": "web"}, "spec": {"containers": [container], **spec}}


REFUSED: list[tuple[str, Any, dict[str, Any], int, list[tuple[str, str]], str]] = [
    # (id, kind, body, code, [(cause field, cause reason)], a piece of the message)
    ("ip-family", SERVICES, service(ipFamilies=["IPv7"]), 422, [("spec.ipFamilies[0]", "FieldValueNotSupported")],
     'spec.ipFamilies[0]: Unsupported value: "IPv7": supported values: "IPv4", "IPv6"'),
    ("ip-family-policy", SERVICES, service(ipFamilyPolicy="Maybe"), 422, [("spec.ipFamilyPolicy", "FieldValueNotSupported")],
     'spec.ipFamilyPolicy: Unsupported value: "Maybe": supported values: "PreferDualStack", "RequireDualStack", "SingleStack"'),
    ("external-traffic-policy", SERVICES, service(type="NodePort", externalTrafficPolicy="Nope"), 422,
     [("spec.externalTrafficPolicy", "FieldValueNotSupported")],
     'spec.externalTrafficPolicy: Unsupported value: "Nope": supported values: "Cluster", "Local"'),
    ("external-traffic-policy-internal-service", SERVICES, service(externalTrafficPolicy="Nope"), 422,
     [("spec.externalTrafficPolicy", "FieldValueInvalid")],
     'spec.externalTrafficPolicy: Invalid value: "Nope": may only be set for externally-accessible services'),
    ("internal-traffic-policy", SERVICES, service(internalTrafficPolicy="Nope"), 422,
     [("spec.internalTrafficPolicy", "FieldValueNotSupported")],
     'spec.internalTrafficPolicy: Unsupported value: "Nope": supported values: "Cluster", "Local"'),
    ("load-balancer-ip", SERVICES, service(type="LoadBalancer", loadBalancerIP="x"), 422,
     [("spec.loadBalancerIP", "FieldValueInvalid")],
     'spec.loadBalancerIP: Invalid value: "x": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
    ("two-ipv4-cluster-ips", SERVICES, service(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "10.96.0.11"]), 422,
     [("spec.clusterIPs", "FieldValueInvalid")],
     'spec.clusterIPs: Invalid value: []string{"10.96.0.10", "10.96.0.11"}: may specify no more than one IP for each IP family'),
    ("cluster-ips-without-cluster-ip", SERVICES, service(clusterIPs=["10.96.0.10", "10.96.0.11"]), 422,
     [("spec.clusterIPs", "FieldValueInvalid"), ("spec.clusterIPs", "FieldValueInvalid")],
     "must be empty when `clusterIP` is not specified"),
    ("dual-stack-single-stack-policy", SERVICES, service(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "fd00::10"]), 422,
     [("spec.ipFamilyPolicy", "FieldValueInvalid"), ("spec.clusterIPs[1]", "FieldValueInvalid")],
     "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"),
    ("dual-stack-on-one-family", SERVICES,
     service(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "fd00::10"], ipFamilyPolicy="PreferDualStack"), 422,
     [("spec.clusterIPs[1]", "FieldValueInvalid")], f'spec.clusterIPs[1]: Invalid value: []string{{"10.96.0.10", "fd00::10"}}: {NOT_CONFIGURED}'),
    ("require-dual-stack", SERVICES, service(ipFamilyPolicy="RequireDualStack"), 422, [("spec.ipFamilyPolicy", "FieldValueInvalid")],
     'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services'),
    ("ipv6-family", SERVICES, service(ipFamilies=["IPv6"]), 422, [("spec.ipFamilies[0]", "FieldValueInvalid")],
     'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster'),
    ("external-ip-not-an-ip", SERVICES, service(externalIPs=["x"]), 422, [("spec.externalIPs[0]", "FieldValueInvalid")],
     'spec.externalIPs[0]: Invalid value: "x": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
    ("external-ips-special", SERVICES, service(externalIPs=["0.0.0.0", "::", "169.254.1.1", "fe80::1", "224.0.0.1", "ff02::1"]), 422,
     [(f"spec.externalIPs[{i}]", "FieldValueInvalid") for i in range(6)], 'spec.externalIPs[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)'),
    ("external-name-long-label", SERVICES,
     {"metadata": {"name": "web"}, "spec": {"type": "ExternalName", "externalName": "a" * 64 + ".example.com"}}, 422,
     [("spec.externalName", "FieldValueInvalid")], "must be a valid DNS name: each label must be no more than 63 characters"),
    ("port-string", SERVICES, service("web", {"port": "80"}), 400, [],
     'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32'),
    ("container-port-string", PODS, _pod_with(container={"ports": [{"containerPort": "80"}]}), 400, [],
     "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"),
    ("host-network-string", PODS, _pod_with(hostNetwork="yes"), 400, [],
     'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool'),
    ("node-name-too-long", PODS, _pod_with(nodeName=LONG_NODE), 422, [("spec.nodeName", "FieldValueInvalid")],
     f'spec.nodeName: Invalid value: "{LONG_NODE}": must be no more than 253 characters'),
    ("volume-mount-of-no-volume", PODS, _pod_with(container={"volumeMounts": [{"name": "x", "mountPath": "/x"}]}), 422,
     [("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound")], 'spec.containers[0].volumeMounts[0].name: Not found: "x"'),
]


@pytest.mark.parametrize(("kind", "body", "code", "causes", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_what_the_api_server_refuses_is_refused_and_changes_nothing(
    world: World, kind: Any, body: dict[str, Any], code: int, causes: list[tuple[str, str]], message: str
) -> None:
    before = snapshot(world.store)
    error = status_of(lambda: world.registry.create(kind, NS, body))
    assert (error.code, error.reason) == (code, "Invalid" if code == 422 else "BadRequest")
    assert message in error.message
    assert [(c["field"], c["reason"]) for c in error.details.get("causes", [])] == causes
    assert snapshot(world.store) == before
    assert world.plan.service_ips.claim("10.96.0.10")  # nothing was allocated either: the address is free


@pytest.mark.parametrize(
    "spec",
    [
        {"externalIPs": ["127.0.0.5", "203.0.113.7", "239.1.1.1"]},  # loopback stays allowed: every emulator address is in 127/8
        {"ipFamilyPolicy": "PreferDualStack"},  # prefers, so gets the one family there is
        {"ipFamilies": ["IPv4"], "clusterIP": "10.96.0.12"},
        {"clusterIP": "10.96.0.13", "clusterIPs": ["10.96.0.13"]},
        {"type": "LoadBalancer", "loadBalancerIP": "10.250.0.9"},
    ],
)
def test_what_the_api_server_accepts_is_still_accepted(world: World, spec: dict[str, Any]) -> None:
    stored = world.registry.create(SERVICES, NS, service("ok", **spec)).obj["spec"]
    assert stored["ipFamilies"] == ["IPv4"] and stored["clusterIPs"] == [stored["clusterIP"]]
    assert stored["ipFamilyPolicy"] == spec.get("ipFamilyPolicy", "SingleStack")


def test_external_ips_make_a_cluster_ip_service_externally_accessible(world: World) -> None:
    stored = world.registry.create(SERVICES, NS, service("ext", externalIPs=["127.0.0.9"])).obj
    assert stored["spec"]["externalTrafficPolicy"] == "Cluster"  # defaulted, as the API server does
    stored["spec"].pop("externalIPs")  # no longer external: a policy the client merely kept goes with it
    assert "externalTrafficPolicy" not in world.registry.update(SERVICES, NS, "ext", stored).obj["spec"]


def test_an_update_that_does_not_name_the_stack_keeps_it(world: World) -> None:
    world.registry.create(SERVICES, NS, service("pref", ipFamilyPolicy="PreferDualStack"))
    stored = world.registry.update(SERVICES, NS, "pref", service("pref", {"port": 81})).obj["spec"]
    assert (stored["ipFamilyPolicy"], stored["ipFamilies"]) == ("PreferDualStack", ["IPv4"])


def test_changing_the_cluster_ip_alone_is_one_cause_on_cluster_ip(world: World) -> None:
    stored = world.registry.create(SERVICES, NS, service("fixed", clusterIP="10.96.0.20")).obj
    stored["spec"]["clusterIP"] = "10.96.0.21"  # an old client: clusterIPs left as they were
    error = status_of(lambda: world.registry.update(SERVICES, NS, "fixed", stored))
    assert [(c["field"], c["message"]) for c in error.details["causes"]] == [
        ("spec.clusterIP", 'Invalid value: "10.96.0.21": field is immutable')
    ]


def test_volume_mounts_and_volume_names(world: World) -> None:
    body = _pod_with(
        volumes=[{"name": "data", "emptyDir": {}}, {"name": "Bad_Name", "emptyDir": {}}, {"name": "data"}],
        container={"volumeMounts": [
            {"name": "data", "mountPath": "/data"}, {"name": "Bad_Name", "mountPath": "/data"}, {"mountPath": "/x"},
        ]},
    )
    error = status_of(lambda: world.registry.create(PODS, NS, body))
    assert [(c["field"], c["reason"]) for c in error.details["causes"]] == [
        ("spec.volumes[1].name", "FieldValueInvalid"),
        ("spec.volumes[2].name", "FieldValueDuplicate"),
        ("spec.containers[0].volumeMounts[1].name", "FieldValueNotFound"),
        ("spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid"),  # must be unique
        ("spec.containers[0].volumeMounts[2].name", "FieldValueRequired"),
        ("spec.containers[0].volumeMounts[2].name", "FieldValueNotFound"),
    ]
    good = _pod_with(volumes=[{"name": "data", "emptyDir": {}}], container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]})
    assert world.registry.create(PODS, NS, good).obj["spec"]["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]


def test_a_patch_applied_elsewhere_is_applied_again_to_an_object_written_meanwhile(world: World) -> None:
    """`patch_offloaded` (the API's path for a large patch) hands applying and decoding to `offload`; a
    write that lands meanwhile is not lost: the patch is applied once more, to the newer object (as the
    API server's GuaranteedUpdate retries); a resourceVersion the patch names is checked against that one."""
    world.registry.create(DEPLOYMENTS, NS, deployment(labels={"a": "1"}))
    runs: list[int] = []
    writes = iter(range(100))

    async def offload(work: Callable[..., Any], *args: Any) -> Any:
        runs.append(1)
        if len(runs) <= interfering[0]:  # another writer, while this application is under way
            world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"metadata": {"annotations": {"writes": str(next(writes))}}})
        return work(*args)

    def patch(body: dict[str, Any], interfere: int = 1) -> Any:
        runs.clear()
        interfering[0] = interfere
        return asyncio.run(world.registry.patch_offloaded(offload, DEPLOYMENTS, NS, "web", MERGE_PATCH, body, WriteOptions()))

    def labels() -> dict[str, str]:
        return dict(world.registry.get(DEPLOYMENTS, NS, "web")["metadata"]["labels"])

    interfering = [1]
    result = patch({"metadata": {"labels": {"c": "3"}}})
    assert len(runs) == 2 and result.obj["metadata"]["labels"] == {"a": "1", "c": "3"} == labels()
    assert result.obj["metadata"]["annotations"] == {"writes": "0"}  # the other write is kept
    # a version that was current when the patch began, gone by the time it is written: 409, not retried into success
    version = world.registry.get(DEPLOYMENTS, NS, "web")["metadata"]["resourceVersion"]
    refused = status_of(lambda: patch({"metadata": {"resourceVersion": version, "labels": {"d": "4"}}}))
    assert refused.code == 409 and "d" not in labels()
    # a patch that clears the version is no precondition: written over the newer object
    assert patch({"metadata": {"resourceVersion": None, "labels": {"e": "5"}}}).obj["metadata"]["labels"]["e"] == "5"
    # an object written all the time: the last attempt is made on the loop, where nothing comes between
    result = patch({"metadata": {"labels": {"f": "6"}}}, interfere=100)
    assert len(runs) == PATCH_ATTEMPTS - 1 and result.obj["metadata"]["labels"]["f"] == "6" == labels()["f"]
    # deleted meanwhile: 404
    async def deleting(work: Callable[..., Any], *args: Any) -> Any:
        world.registry.delete(DEPLOYMENTS, NS, "web")
        return work(*args)

    gone = status_of(lambda: asyncio.run(world.registry.patch_offloaded(deleting, DEPLOYMENTS, NS, "web", MERGE_PATCH, {"metadata": {"labels": {"g": "7"}}}, WriteOptions())))
    assert gone.code == 404


def test_an_object_decoded_by_a_strategy_since_replaced_is_decoded_again(world: World) -> None:
    """A large body is decoded on a worker thread (`Registry.decoded`); should the kind be served by
    another strategy by the time it is written (its CustomResourceDefinition changed), the write decodes
    the body again rather than take what the old one made of it."""
    decoded = world.registry.decoded(PODS, pod(), WriteOptions())
    assert world.registry.create(PODS, NS, decoded).obj["metadata"]["name"] == "web"
    other = dataclasses.replace(world.registry.decoded(PODS, pod("second"), WriteOptions()),
                                obj={"metadata": {"name": "made-by-the-old-one"}},
                                strategy=Strategy(world.registry.strategy(PODS).cluster))
    assert world.registry.create(PODS, NS, other).obj["metadata"]["name"] == "second"


def test_an_apply_made_elsewhere_is_merged_again_and_a_create_that_lost_the_race_becomes_a_merge(world: World) -> None:
    """`patch_offloaded` with server-side apply: a write meanwhile is merged with (not lost), and an apply
    that would create an object someone else created meanwhile is merged into theirs."""
    options = WriteOptions(field_manager="kubectl")
    applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": deployment()["spec"]}

    async def creating_meanwhile(work: Callable[..., Any], *args: Any) -> Any:
        result = work(*args)
        if world.registry.store.get_raw(DEPLOYMENTS.key, NS, "web") is None:  # someone else's create lands first
            world.registry.create(DEPLOYMENTS, NS, deployment(labels={"theirs": "1"}))
        return result

    result = asyncio.run(world.registry.patch_offloaded(creating_meanwhile, DEPLOYMENTS, NS, "web", APPLY_PATCH, applied, options))
    assert not result.created and result.obj["metadata"]["labels"] == {"theirs": "1", "app": "web"}
    runs: list[int] = []

    async def writing_meanwhile(work: Callable[..., Any], *args: Any) -> Any:
        runs.append(1)
        if len(runs) == 1:
            world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"metadata": {"annotations": {"other": "write"}}})
        return work(*args)

    applied["metadata"]["labels"] = {"app": "web", "tier": "front"}
    result = asyncio.run(world.registry.patch_offloaded(writing_meanwhile, DEPLOYMENTS, NS, "web", APPLY_PATCH, applied, options))
    assert len(runs) == 2 and result.obj["metadata"]["annotations"] == {"other": "write"}
    assert result.obj["metadata"]["labels"] == {"theirs": "1", "app": "web", "tier": "front"}
    missing = status_of(lambda: asyncio.run(world.registry.patch_offloaded(
        writing_meanwhile, DEPLOYMENTS, NS, "absent", APPLY_PATCH, {"metadata": {}}, options, subresource="status")))
    assert missing.code == 404
    assert "managedFields" not in applied["metadata"]  # the patch, applied more than once, is left as it was sent


def test_an_error_found_on_an_object_that_changed_meanwhile_is_tried_again(world: World) -> None:
    """A conflict (or a failed JSON patch test) computed off the loop on an object written meanwhile is
    not the answer: the newer object may not have it. Here helm gives up `data.k1` while kubectl's apply
    of it is being merged against the version in which helm still owned it."""
    helm, kubectl = WriteOptions(field_manager="helm"), WriteOptions(field_manager="kubectl")
    world.registry.apply(CONFIG_MAPS, NS, "settings", {"metadata": {"name": "settings"}, "data": {"k1": "a", "k2": "b"}}, helm)

    async def helm_lets_go(work: Callable[..., Any], *args: Any) -> Any:
        if world.registry.get(CONFIG_MAPS, NS, "settings")["data"].get("k1") == "a":
            world.registry.apply(CONFIG_MAPS, NS, "settings", {"metadata": {"name": "settings"}, "data": {"k2": "b"}}, helm)
        return work(*args)

    ours = {"metadata": {"name": "settings"}, "data": {"k1": "mine"}}
    stale = status_of(lambda: world.registry.apply(CONFIG_MAPS, NS, "settings", copy.deepcopy(ours), kubectl))
    assert stale.code == 409  # inline, helm still owns it
    result = asyncio.run(world.registry.patch_offloaded(helm_lets_go, CONFIG_MAPS, NS, "settings", APPLY_PATCH, ours, kubectl))
    assert result.obj["data"] == {"k1": "mine", "k2": "b"}
