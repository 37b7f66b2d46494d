"""The official `kubernetes` Python client against the emulator: typed CoreV1Api, watch, and the dynamic client.

The client is configured only with the emulator's URL (`Configuration(host=...)`), as a user would.
The dynamic client caches discovery in $TMPDIR, so each test points TMPDIR at its own directory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException

from tests.conftest import Emulator, start_emulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("client-data"))
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def api_client(emu: Emulator) -> Iterator[client.ApiClient]:
    with client.ApiClient(client.Configuration(host=emu.api_url)) as api:
        yield api


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def ns(core: client.CoreV1Api, request: pytest.FixtureRequest) -> str:
    name = request.node.name.lower().removeprefix("test_").replace("_", "-")[:50]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


@pytest.fixture
def dyn(api_client: client.ApiClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dynamic.DynamicClient:
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches its directory: forget it
    return dynamic.DynamicClient(api_client)


def pod(name: str, image: str = "busybox", **labels: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {"app": name}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image)]),
    )


# -- typed API ---------------------------------------------------------------------------------------


def test_pods_create_list_read_patch_replace_delete(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_pod(ns, pod("p1", app="web"))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.status.phase == "Running" and created.status.pod_ip
    core.create_namespaced_pod(ns, pod("p2", app="db"))

    assert sorted(p.metadata.name for p in core.list_namespaced_pod(ns).items) == ["p1", "p2"]
    assert [p.metadata.name for p in core.list_namespaced_pod(ns, label_selector="app=web").items] == ["p1"]
    assert [p.metadata.name for p in core.list_namespaced_pod(ns, field_selector="metadata.name=p2").items] == ["p2"]
    assert ns in {p.metadata.namespace for p in core.list_pod_for_all_namespaces().items}
    assert core.read_namespaced_pod("p1", ns).spec.containers[0].image == "busybox"

    # a dict body is a strategic merge patch: containers merge by name, labels merge
    patched = core.patch_namespaced_pod(
        "p1",
        ns,
        {"metadata": {"labels": {"tier": "fe"}}, "spec": {"containers": [{"name": "app", "image": "busybox:2"}]}},
    )
    assert patched.metadata.labels == {"app": "web", "tier": "fe"}
    assert [(c.name, c.image) for c in patched.spec.containers] == [("app", "busybox:2")]
    # a list body is a JSON patch
    patched = core.patch_namespaced_pod("p1", ns, [{"op": "replace", "path": "/metadata/labels/tier", "value": "be"}])
    assert patched.metadata.labels["tier"] == "be"
    # a patch that changes nothing leaves the resourceVersion alone
    again = core.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"tier": "be"}}})
    assert again.metadata.resource_version == patched.metadata.resource_version

    stale = core.read_namespaced_pod("p1", ns)
    stale.metadata.resource_version = created.metadata.resource_version
    stale.metadata.labels["stale"] = "yes"
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_pod("p1", ns, stale)
    assert conflict.value.status == 409
    assert '"reason":"Conflict"' in conflict.value.body.replace(" ", "")
    fresh = core.read_namespaced_pod("p1", ns)
    fresh.metadata.labels["replaced"] = "yes"
    assert core.replace_namespaced_pod("p1", ns, fresh).metadata.labels["replaced"] == "yes"

    core.delete_namespaced_pod("p1", ns)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("p1", ns)
    assert missing.value.status == 404
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_pod(ns, pod("p2"))
    assert exists.value.status == 409


def test_services_create_read_patch_delete(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("backend", app="api"))
    spec = client.V1ServiceSpec(selector={"app": "api"}, ports=[client.V1ServicePort(port=80, target_port=8080)])
    svc = core.create_namespaced_service(ns, client.V1Service(metadata=client.V1ObjectMeta(name="api"), spec=spec))
    assert svc.spec.cluster_ip and svc.spec.type == "ClusterIP"
    assert svc.spec.ports[0].port == 80 and svc.spec.ports[0].target_port == 8080
    endpoints = core.read_namespaced_endpoints("api", ns)
    assert [a.target_ref.name for a in endpoints.subsets[0].addresses] == ["backend"]

    # ServiceSpec.ports merge by port in a strategic merge patch
    patched = core.patch_namespaced_service(
        "api", ns, {"spec": {"ports": [{"port": 9090, "name": "metrics"}, {"port": 80, "name": "http"}]}}
    )
    assert sorted((p.port, p.name) for p in patched.spec.ports) == [(80, "http"), (9090, "metrics")]
    assert patched.spec.cluster_ip == svc.spec.cluster_ip
    assert [s.metadata.name for s in core.list_namespaced_service(ns).items] == ["api"]

    core.delete_namespaced_service("api", ns)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_service("api", ns)
    assert missing.value.status == 404
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_endpoints("api", ns)
    assert gone.value.status == 404


def test_strict_field_validation(dyn: dynamic.DynamicClient, ns: str) -> None:
    # the typed API refuses unknown fields itself, so send the object through the dynamic client
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {"containers": [{"name": "c", "image": "x", "bogus": 1}]},
    }
    with pytest.raises(dynamic.exceptions.BadRequestError) as refused:
        pods.create(body=body, namespace=ns, query_params=[("fieldValidation", "Strict")])
    assert 'strict decoding error: unknown field \\"spec.containers[0].bogus\\"' in refused.value.body
    with pytest.raises(dynamic.exceptions.NotFoundError):
        pods.get(name="bad", namespace=ns)


def test_watch_sees_added_modified_deleted(core: client.CoreV1Api, ns: str) -> None:
    seen: list[tuple[str, str, str]] = []
    # from the list's resourceVersion, like an informer: no change can fall between list and watch
    since = core.list_namespaced_pod(ns).metadata.resource_version

    def follow() -> None:
        for event in watch.Watch().stream(core.list_namespaced_pod, ns, resource_version=since, timeout_seconds=5):
            obj = event["object"]
            seen.append((event["type"], obj.metadata.name, obj.metadata.labels.get("step", "")))
            if event["type"] == "DELETED":
                return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    time.sleep(0.2)  # let the stream open, so that the changes below arrive live
    core.create_namespaced_pod(ns, pod("watched", step="one"))
    core.patch_namespaced_pod("watched", ns, {"metadata": {"labels": {"step": "two"}}})
    core.delete_namespaced_pod("watched", ns)
    follower.join(10)
    assert not follower.is_alive()
    assert seen == [("ADDED", "watched", "one"), ("MODIFIED", "watched", "two"), ("DELETED", "watched", "two")]


def test_watch_from_resource_version(core: client.CoreV1Api, ns: str) -> None:
    listed = core.list_namespaced_pod(ns)
    core.create_namespaced_pod(ns, pod("later"))
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_pod, ns, resource_version=listed.metadata.resource_version, timeout_seconds=1
        )
    ]
    assert events == [("ADDED", "later")]


# -- dynamic client ----------------------------------------------------------------------------------


def test_dynamic_discovery_and_list(dyn: dynamic.DynamicClient, tmp_path: Path) -> None:
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    assert pods.namespaced and pods.name == "pods"
    policies = dyn.resources.get(api_version="networking.k8s.io/v1", kind="NetworkPolicy")
    assert policies.group == "networking.k8s.io"
    assert dyn.resources.get(api_version="discovery.k8s.io/v1", kind="EndpointSlice").name == "endpointslices"
    assert dyn.resources.get(short_names=["svc"])  # by short name
    names = {n.metadata.name for n in dyn.resources.get(api_version="v1", kind="Namespace").get().items}
    assert {"default", "kube-system"} <= names
    assert list(tmp_path.glob("osrcp-*.json")), "the discovery cache went somewhere else than TMPDIR"


def test_dynamic_create_patch_apply_delete(dyn: dynamic.DynamicClient, ns: str, emu: Emulator) -> None:
    services = dyn.resources.get(api_version="v1", kind="Service")
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "dyn"},
        "spec": {"selector": {"app": "dyn"}, "ports": [{"port": 80}]},
    }
    created = services.create(body=body, namespace=ns)
    assert created.metadata.name == "dyn" and created.spec.clusterIP

    merged = services.patch(
        name="dyn",
        namespace=ns,
        body={"metadata": {"labels": {"via": "merge"}}},
        content_type="application/merge-patch+json",
    )
    assert merged.metadata.labels.to_dict() == {"via": "merge"}
    strategic = services.patch(
        name="dyn", namespace=ns, body={"spec": {"ports": [{"port": 81, "name": "alt"}, {"port": 80, "name": "http"}]}}
    )  # SMP is the default
    assert sorted(p.port for p in strategic.spec.ports) == [80, 81]
    assert [s.metadata.name for s in services.get(namespace=ns).items] == ["dyn"]
    assert services.get(name="dyn", namespace=ns).metadata.labels.to_dict() == {"via": "merge"}

    applied_body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ssa", "labels": {"by": "py"}},
        "spec": {"ports": [{"port": 8080}]},
    }
    applied = services.server_side_apply(body=applied_body, namespace=ns, field_manager="py")
    assert applied.metadata.labels.to_dict() == {"by": "py"} and applied.spec.ports[0].port == 8080
    again = services.server_side_apply(body=applied_body, namespace=ns, field_manager="py")
    assert again.metadata.resourceVersion == applied.metadata.resourceVersion  # nothing changed
    # another manager changing the same field conflicts, unless it forces
    takeover = {**applied_body, "metadata": {"name": "ssa", "labels": {"by": "other"}}}
    with pytest.raises(dynamic.exceptions.ConflictError):
        services.server_side_apply(body=takeover, namespace=ns, field_manager="other")
    forced = services.server_side_apply(body=takeover, namespace=ns, field_manager="other", force_conflicts=True)
    assert forced.metadata.labels.to_dict() == {"by": "other"}

    deleted = services.delete(name="dyn", namespace=ns)
    assert deleted.metadata.name == "dyn" or deleted.kind == "Status"
    with pytest.raises(dynamic.exceptions.NotFoundError):
        services.get(name="dyn", namespace=ns)
    with httpx.Client(base_url=emu.api_url) as http:
        assert http.get(f"/api/v1/namespaces/{ns}/services/ssa").status_code == 200


def test_dynamic_network_policy(dyn: dynamic.DynamicClient, ns: str) -> None:
    policies = dyn.resources.get(api_version="networking.k8s.io/v1", kind="NetworkPolicy")
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
    }
    policies.create(body=body, namespace=ns)
    assert [p.metadata.name for p in policies.get(namespace=ns).items] == ["deny"]
    policies.delete(name="deny", namespace=ns)
    assert policies.get(namespace=ns).items == []


def test_leader_election_leases_with_the_clients_own_lock(api_client: client.ApiClient, ns: str) -> None:
    """kubernetes.leaderelection's LeaseLock (what an operator's leader election does, client-go's alike):
    one candidate takes the Lease, the other sees it held, and a write from a stale read is refused."""
    from datetime import datetime

    from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord
    from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

    previous = client.Configuration.get_default_copy()
    client.Configuration.set_default(api_client.configuration)  # LeaseLock makes its own API object
    try:
        now = str(datetime.now())  # (the record's times as leaderelection.py writes them: local, naive)
        a, b = LeaseLock("operator", ns, "pod-a"), LeaseLock("operator", ns, "pod-b")
        assert a.create("operator", ns, LeaderElectionRecord("pod-a", "15", now, now))
        found, record = b.get("operator", ns)
        assert found and record.holder_identity == "pod-a" and int(record.lease_duration) == 15
        assert a.update("operator", ns, LeaderElectionRecord("pod-a", "15", now, str(datetime.now())))
        assert not b.update("operator", ns, LeaderElectionRecord("pod-b", "15", now, now))  # b read before a renewed: 409
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease("operator", ns)
        assert lease.spec.holder_identity == "pod-a" and lease.spec.renew_time is not None
    finally:
        client.Configuration.set_default(previous)
