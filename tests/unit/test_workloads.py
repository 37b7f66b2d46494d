"""Workloads in process: the Deployment, ReplicaSet and ReplicationController kinds (defaults, validation,
generation, the scale subresource, columns), the work queue, and the controllers that run them — the
ReplicaSet controller (for ReplicationControllers too), the Deployment controller and the garbage
collector — wired to a real in-memory `Store` and `Registry` as emulator/runtime.py wires them.

`settle` waits until every change and every reaction is delivered *and* every controller's queue is idle,
so a test reads the state the controllers converge to.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from emulator import errors
from emulator.controllers.deployment import DeploymentController, compute_hash
from emulator.controllers.endpoints import EndpointsController
from emulator.controllers.garbagecollector import GarbageCollector
from emulator.controllers.namespaces import NamespaceController
from emulator.controllers.replicaset import ReplicaSetController, rank_for_deletion
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import (
    BY_KEY,
    DEPLOYMENTS,
    ENDPOINTS,
    EVENTS,
    NAMESPACES,
    PODS,
    REPLICA_SETS,
    REPLICATION_CONTROLLERS,
    SERVICES,
    ResourceType,
)
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.events import ADDED, Event
from emulator.store.store import Store

NS = "shop"
ALPHABET = set("bcdfghjklmnpqrstvwxz2456789")


@dataclass
class World:
    store: Store
    registry: Registry
    replica_sets: ReplicaSetController
    deployments: DeploymentController
    collector: GarbageCollector
    queues: list[WorkQueue[Any]] = field(default_factory=list)

    async def settle(self) -> None:
        """Until the store has delivered everything and no controller has work left (twice in a row: a
        sync's writes are delivered after it, and may give another controller work)."""
        quiet = 0
        while quiet < 2:
            await self.store.settled(self.store.rv)
            await asyncio.sleep(0)
            if self.store.delivered_rv == self.store.rv and all(q.idle for q in self.queues):
                quiet += 1
            else:
                quiet = 0

    async def eventually(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            await self.settle()
            if check():
                return
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)

    def get(self, rt: ResourceType, name: str, namespace: str = NS) -> dict[str, Any]:
        found = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        assert found is not None, f"{rt.key} {name} not found"
        return found

    def find(self, rt: ResourceType, name: str, namespace: str = NS) -> dict[str, Any] | None:
        return self.store.get(rt.key, namespace, name)

    def objects(self, rt: ResourceType, namespace: str = NS) -> list[dict[str, Any]]:
        return list(self.store.objects(rt.key, namespace))

    def pods(self, **labels: str) -> list[dict[str, Any]]:
        return [p for p in self.objects(PODS) if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())]

    def replica_sets_of(self, deployment: str) -> list[dict[str, Any]]:
        uid = self.get(DEPLOYMENTS, deployment)["metadata"]["uid"]
        owned = [rs for rs in self.objects(REPLICA_SETS) if any(r["uid"] == uid for r in rs["metadata"].get("ownerReferences") or [])]
        return sorted(owned, key=lambda rs: int(rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", 0)))


@pytest.fixture
async def world() -> AsyncIterator[World]:
    store = Store(MemoryBackend())
    plan = AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")
    registry = Registry(Cluster(store, plan))
    namespaces = NamespaceController(registry, 0.01)
    endpoints = EndpointsController(registry)
    store.subscribe(namespaces.apply)
    store.subscribe(endpoints.apply)
    endpoints.start()
    w = World(store, registry, ReplicaSetController(registry), DeploymentController(registry), GarbageCollector(registry))
    for controller in (w.replica_sets, w.deployments, w.collector):
        store.subscribe(controller.apply)
        controller.queue.start()
        w.queues.append(controller.queue)
    namespaces.bootstrap("127.0.0.1", 6443)
    registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    await w.settle()
    yield w
    for queue in w.queues:
        await queue.stop()


# -- objects -----------------------------------------------------------------------------------------


def template(labels: dict[str, str], image: str = "nginx", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}], **spec}}


def deployment(name: str = "web", replicas: int | None = 3, image: str = "nginx", **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": labels}, "template": template(labels, image), **spec}}
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def replica_set(name: str = "rs", replicas: int = 2, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {"metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template(labels), **spec}}


def rc(name: str = "redis-master", replicas: int = 1) -> dict[str, Any]:
    labels = {"app": "redis", "role": "master", "tier": "backend"}
    return {"metadata": {"name": name}, "spec": {"replicas": replicas, "template": template(labels, "redis")}}


def standalone_pod(name: str, labels: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels, **meta}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])


def set_ready(world: World, name: str, value: bool) -> None:
    pod = world.get(PODS, name)
    for condition in pod["status"]["conditions"]:
        if condition["type"] in ("Ready", "ContainersReady"):
            condition["status"] = "True" if value else "False"
            condition["lastTransitionTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    world.registry.update(PODS, NS, name, pod, subresource="status")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


def invalid(call: Callable[[], Any]) -> str:
    with pytest.raises(errors.StatusError) as caught:
        call()
    assert caught.value.code == 422, caught.value.message
    return caught.value.message


# -- the kinds: defaults, validation, generation --------------------------------------------------------


def test_the_kinds_are_served_with_their_names_and_subresources() -> None:
    for rt, short in ((DEPLOYMENTS, "deploy"), (REPLICA_SETS, "rs"), (REPLICATION_CONTROLLERS, "rc")):
        assert short in rt.short_names and "all" in rt.categories
        subresources = {s.name: s for s in rt.subresources}
        assert subresources["scale"].kind == "Scale" and subresources["scale"].group == "autoscaling"
        assert "status" in subresources
    assert DEPLOYMENTS.api_version == REPLICA_SETS.api_version == "apps/v1"
    assert REPLICATION_CONTROLLERS.api_version == "v1"


async def test_a_deployment_gets_the_api_servers_defaults(world: World) -> None:
    body = deployment(replicas=None)
    body["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"port": 80}}
    stored = world.registry.create(DEPLOYMENTS, NS, body).obj
    spec = stored["spec"]
    assert stored["metadata"]["generation"] == 1
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    pod_spec = spec["template"]["spec"]
    assert {k: pod_spec[k] for k in ("restartPolicy", "dnsPolicy", "schedulerName", "terminationGracePeriodSeconds", "securityContext")} == {
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30, "securityContext": {},
    }
    container = pod_spec["containers"][0]
    assert container["imagePullPolicy"] == "Always"  # no tag: latest
    assert (container["terminationMessagePath"], container["terminationMessagePolicy"], container["resources"]) == ("/dev/termination-log", "File", {})
    assert container["readinessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
    }
    tagged = world.registry.create(DEPLOYMENTS, NS, deployment("tagged", image="registry:5000/nginx:1.27")).obj
    assert tagged["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    recreate = world.registry.create(DEPLOYMENTS, NS, deployment("re", strategy={"type": "Recreate"})).obj
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_a_pod_gets_the_api_servers_defaults_and_a_put_of_its_manifest_changes_nothing(world: World) -> None:
    manifest = {"metadata": {"name": "web"}, "spec": {
        "containers": [{"name": "app", "image": "nginx:1.27", "livenessProbe": {"tcpSocket": {"port": 80}}}],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
    }}
    stored = world.registry.create(PODS, NS, copy.deepcopy(manifest)).obj
    spec = stored["spec"]
    assert {k: spec[k] for k in ("restartPolicy", "dnsPolicy", "schedulerName", "terminationGracePeriodSeconds", "securityContext")} == {
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30, "securityContext": {},
    }
    app, init = spec["containers"][0], spec["initContainers"][0]
    assert (app["terminationMessagePath"], app["terminationMessagePolicy"], app["imagePullPolicy"]) == ("/dev/termination-log", "File", "IfNotPresent")
    assert init["imagePullPolicy"] == "Always" and init["terminationMessagePath"] == "/dev/termination-log"
    assert app["livenessProbe"]["periodSeconds"] == 10
    # a PUT of the manifest as written (kubectl replace): defaulted the same, so no change of the spec
    again = world.registry.update(PODS, NS, "web", {**copy.deepcopy(manifest), "metadata": {"name": "web", "labels": {"v": "2"}}})
    assert again.obj["spec"] == spec and again.obj["metadata"]["labels"] == {"v": "2"}


def test_a_pod_stored_before_pods_were_defaulted_can_still_be_updated(world: World) -> None:
    created = world.registry.create(PODS, NS, {"metadata": {"name": "old"}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}).obj
    legacy = copy.deepcopy(created)  # as an earlier version stored it: none of the defaults
    for key in ("dnsPolicy", "schedulerName", "terminationGracePeriodSeconds", "securityContext"):
        del legacy["spec"][key]
    for key in ("terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy", "resources"):
        del legacy["spec"]["containers"][0][key]
    world.store.update(PODS.key, NS, "old", legacy)
    labelled = world.registry.patch(PODS, NS, "old", MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}}).obj
    assert labelled["metadata"]["labels"] == {"a": "b"}
    assert labelled["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"  # defaulted now
    # while a real change of the spec is still refused
    with pytest.raises(errors.StatusError, match="pod updates may not change fields"):
        world.registry.patch(PODS, NS, "old", MERGE_PATCH, {"spec": {"dnsPolicy": "Default"}})
    # a pod made from a template (its containers defaulted) with what templates did not default: a probe's
    # httpGet path, an ephemeral container added by `kubectl debug`
    made = world.registry.create(PODS, NS, {"metadata": {"name": "made"}, "spec": {"containers": [
        {"name": "app", "image": "nginx", "readinessProbe": {"httpGet": {"port": 80}}}]}}).obj
    legacy = copy.deepcopy(made)
    del legacy["spec"]["containers"][0]["readinessProbe"]["timeoutSeconds"]
    del legacy["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
    legacy["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox", "command": ["sh"]}]
    world.store.update(PODS.key, NS, "made", legacy)
    status = world.registry.patch(PODS, NS, "made", MERGE_PATCH, {"status": {"message": "hi"}}, subresource="status").obj
    assert status["status"]["message"] == "hi"
    assert world.registry.patch(PODS, NS, "made", MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}}).obj["metadata"]["labels"] == {"a": "b"}


def test_a_pod_tolerates_not_ready_and_unreachable_nodes_for_300_s(world: World) -> None:
    def tolerations(name: str, given: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        spec: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx"}]}
        if given is not None:
            spec["tolerations"] = given
        return list(world.registry.create(PODS, NS, {"metadata": {"name": name}, "spec": spec}).obj["spec"]["tolerations"])

    default = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
               for k in ("not-ready", "unreachable")]
    assert tolerations("plain") == default
    assert tolerations("everything", [{"operator": "Exists"}]) == [{"operator": "Exists"}]  # tolerates them already
    own = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}  # a DaemonSet's pods
    assert tolerations("daemon", [own]) == [own, default[1]]


def test_empty_strings_are_defaulted_as_go_defaults_them(world: World) -> None:
    spec = world.registry.create(PODS, NS, {"metadata": {"name": "chart"}, "spec": {"dnsPolicy": "", "containers": [
        {"name": "app", "image": "nginx:1", "imagePullPolicy": "", "terminationMessagePath": "", "terminationMessagePolicy": "",
         "livenessProbe": {"httpGet": {"port": 80, "path": "", "scheme": ""}}}], "terminationGracePeriodSeconds": 0}}).obj["spec"]
    app = spec["containers"][0]
    assert (spec["dnsPolicy"], spec["terminationGracePeriodSeconds"]) == ("ClusterFirst", 0)  # 0 is a grace period
    assert (app["imagePullPolicy"], app["terminationMessagePath"], app["terminationMessagePolicy"]) == ("IfNotPresent", "/dev/termination-log", "File")
    assert app["livenessProbe"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}


def test_the_selector_must_match_the_template_labels(world: World) -> None:
    body = deployment()
    body["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    assert invalid(lambda: world.registry.create(DEPLOYMENTS, NS, body)) == (
        'Deployment "web" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: '
        "`selector` does not match template `labels`"
    )
    del body["spec"]["selector"]
    assert invalid(lambda: world.registry.create(DEPLOYMENTS, NS, body)) == (
        'Deployment "web" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"other"}: `selector` does not match template `labels`]'
    )
    rs = replica_set()
    rs["spec"]["template"]["metadata"]["labels"] = {"app": "x", "tier": "db"}
    assert "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\", \"tier\":\"db\"}" in invalid(
        lambda: world.registry.create(REPLICA_SETS, NS, rs)
    )
    empty = deployment("empty")
    empty["spec"]["selector"] = {}
    assert "empty selector is invalid for deployment" in invalid(lambda: world.registry.create(DEPLOYMENTS, NS, empty))


def test_the_pod_template_is_validated_like_a_pod_of_a_controller(world: World) -> None:
    body = deployment()
    spec = body["spec"]["template"]["spec"]
    spec["restartPolicy"] = "Never"
    spec["activeDeadlineSeconds"] = 5
    spec["containers"].append({"name": "app", "image": "x"})
    message = invalid(lambda: world.registry.create(DEPLOYMENTS, NS, body))
    assert 'spec.template.spec.containers[1].name: Duplicate value: "app"' in message
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"' in message
    assert "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in Deployment is not Supported" in message
    body = deployment()
    del body["spec"]["template"]["spec"]["containers"]
    assert "spec.template.spec.containers: Required value" in invalid(lambda: world.registry.create(DEPLOYMENTS, NS, body))


def test_the_strategy_and_counts_are_validated(world: World) -> None:
    recreate = deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    assert invalid(lambda: world.registry.create(DEPLOYMENTS, NS, recreate)).endswith(
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
    )
    stuck = deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})
    assert 'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"0%"}: may not be 0 when `maxSurge` is 0' in invalid(
        lambda: world.registry.create(DEPLOYMENTS, NS, stuck)
    )
    too_much = deployment(strategy={"rollingUpdate": {"maxUnavailable": "150%"}})
    assert "must not be greater than 100%" in invalid(lambda: world.registry.create(DEPLOYMENTS, NS, too_much))
    deadline = deployment(minReadySeconds=10, progressDeadlineSeconds=10)
    assert "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds" in invalid(
        lambda: world.registry.create(DEPLOYMENTS, NS, deadline)
    )
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in invalid(
        lambda: world.registry.create(DEPLOYMENTS, NS, deployment(replicas=-1))
    )
    with pytest.raises(errors.StatusError) as caught:
        world.registry.create(DEPLOYMENTS, NS, deployment(strategy={"type": "Rolling"}))
    assert caught.value.code == 422 and 'supported values: "Recreate", "RollingUpdate"' in caught.value.message


async def test_the_selector_of_apps_kinds_is_immutable_and_an_rcs_is_not(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment())
    patch = {"spec": {"selector": {"matchLabels": {"app": "web", "tier": "fe"}}, "template": {"metadata": {"labels": {"tier": "fe"}}}}}
    assert invalid(lambda: world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, patch)) == (
        'Deployment "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"fe"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    )
    world.registry.create(REPLICA_SETS, NS, replica_set())
    assert "field is immutable" in invalid(lambda: world.registry.patch(REPLICA_SETS, NS, "rs", STRATEGIC_MERGE_PATCH, {"spec": {"selector": {"matchLabels": {"x": "y"}}}}))
    world.registry.create(REPLICATION_CONTROLLERS, NS, rc())
    world.registry.patch(REPLICATION_CONTROLLERS, NS, "redis-master", JSON_PATCH, [{"op": "replace", "path": "/spec/selector", "value": {"app": "redis"}}])
    assert world.get(REPLICATION_CONTROLLERS, "redis-master")["spec"]["selector"] == {"app": "redis"}


async def test_generation_counts_spec_changes_only(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=0))
    await world.settle()
    generation = world.get(DEPLOYMENTS, "web")["metadata"]["generation"]
    assert generation == 1
    world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"metadata": {"labels": {"team": "a"}}})
    assert world.get(DEPLOYMENTS, "web")["metadata"]["generation"] == 1
    world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"spec": {"replicas": 2}})
    assert world.get(DEPLOYMENTS, "web")["metadata"]["generation"] == 2
    # annotations are copied to the ReplicaSets, so they count (the controller's revision does not)
    world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"metadata": {"annotations": {"kubernetes.io/change-cause": "x"}}})
    assert world.get(DEPLOYMENTS, "web")["metadata"]["generation"] == 3
    await world.settle()
    assert world.get(DEPLOYMENTS, "web")["status"]["observedGeneration"] == 3
    rs = world.replica_sets_of("web")[0]
    assert rs["metadata"]["annotations"]["kubernetes.io/change-cause"] == "x"
    # status writes never count
    world.registry.create(REPLICA_SETS, NS, replica_set("plain", replicas=0))
    current = world.get(REPLICA_SETS, "plain")
    world.registry.update(REPLICA_SETS, NS, "plain", {**current, "status": {"replicas": 7}}, subresource="status")
    assert world.get(REPLICA_SETS, "plain")["metadata"]["generation"] == 1


async def test_a_replication_controller_takes_its_selector_and_labels_from_the_template(world: World) -> None:
    stored = world.registry.create(REPLICATION_CONTROLLERS, NS, rc()).obj
    labels = {"app": "redis", "role": "master", "tier": "backend"}
    assert stored["spec"]["selector"] == labels and stored["metadata"]["labels"] == labels
    assert stored["metadata"]["generation"] == 1
    bare = {"metadata": {"name": "bare"}, "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}}
    assert invalid(lambda: world.registry.create(REPLICATION_CONTROLLERS, NS, bare)) == 'ReplicationController "bare" is invalid: spec.selector: Required value'


# -- the scale subresource -------------------------------------------------------------------------------


async def test_the_scale_subresource_reads_and_writes_replicas(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=2))
    await world.settle()
    scale = world.registry.get_scale(DEPLOYMENTS, NS, "web")
    d = world.get(DEPLOYMENTS, "web")
    assert scale == {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: d["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
        "spec": {"replicas": 2}, "status": {"replicas": 2, "selector": "app=web"},
    }
    result = world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"spec": {"replicas": 4}}, subresource="scale")
    assert result.obj["kind"] == "Scale" and result.obj["spec"] == {"replicas": 4}
    assert world.get(DEPLOYMENTS, "web")["metadata"]["generation"] == 2
    await world.settle()
    assert len(world.pods(app="web")) == 4
    # a PUT with a stale resourceVersion is a conflict, as for the object itself
    with pytest.raises(errors.StatusError) as caught:
        world.registry.update(DEPLOYMENTS, NS, "web", {**scale, "spec": {"replicas": 1}}, subresource="scale")
    assert caught.value.code == 409
    fresh = world.registry.get_scale(DEPLOYMENTS, NS, "web")
    world.registry.update(DEPLOYMENTS, NS, "web", {**fresh, "spec": {"replicas": 0}}, subresource="scale")
    assert world.get(DEPLOYMENTS, "web")["spec"]["replicas"] == 0
    assert world.registry.get_scale(DEPLOYMENTS, NS, "web")["spec"] == {}  # replicas is omitempty
    negative = world.registry.get_scale(DEPLOYMENTS, NS, "web") | {"spec": {"replicas": -1}}
    assert invalid(lambda: world.registry.update(DEPLOYMENTS, NS, "web", negative, subresource="scale")) == (
        'Scale "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )
    with pytest.raises(errors.StatusError) as caught:
        world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"spec": {"replicas": "3"}}, subresource="scale")
    assert caught.value.code == 400 and "ScaleSpec.spec.replicas of type int32" in caught.value.message
    # (replicas 0 is omitted from the Scale, so a JSON patch adds it)
    world.registry.patch(DEPLOYMENTS, NS, "web", JSON_PATCH, [{"op": "add", "path": "/spec/replicas", "value": 1}], subresource="scale")
    assert world.get(DEPLOYMENTS, "web")["spec"]["replicas"] == 1


async def test_a_replication_controllers_scale_names_its_map_selector(world: World) -> None:
    world.registry.create(REPLICATION_CONTROLLERS, NS, rc(replicas=1))
    await world.settle()
    scale = world.registry.get_scale(REPLICATION_CONTROLLERS, NS, "redis-master")
    assert scale["status"] == {"replicas": 1, "selector": "app=redis,role=master,tier=backend"}
    world.registry.patch(REPLICATION_CONTROLLERS, NS, "redis-master", MERGE_PATCH, {"spec": {"replicas": 3}}, subresource="scale")
    await world.settle()
    assert len(world.pods(app="redis")) == 3


# -- columns -------------------------------------------------------------------------------------------


async def test_the_columns_are_kubectls(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=2, image="nginx:1.27"))
    world.registry.create(REPLICATION_CONTROLLERS, NS, rc(replicas=1))
    await world.settle()
    now = datetime.now(UTC)
    printer = BY_KEY[DEPLOYMENTS.key].printer
    assert [c.name for c in printer.columns] == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]
    assert [c.priority for c in printer.columns] == [0, 0, 0, 0, 0, 1, 1, 1]
    cells = printer.cells(world.get(DEPLOYMENTS, "web"), now)
    assert cells[:4] == ["web", "2/2", 2, 2] and cells[5:] == ["app", "nginx:1.27", "app=web"]
    rs = world.replica_sets_of("web")[0]
    rs_printer = BY_KEY[REPLICA_SETS.key].printer
    assert [c.name for c in rs_printer.columns] == ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"]
    rs_cells = rs_printer.cells(rs, now)
    assert rs_cells[1:4] == [2, 2, 2]
    assert rs_cells[7] == f"app=web,pod-template-hash={rs['metadata']['labels']['pod-template-hash']}"
    rc_printer = BY_KEY[REPLICATION_CONTROLLERS.key].printer
    rc_cells = rc_printer.cells(world.get(REPLICATION_CONTROLLERS, "redis-master"), now)
    assert rc_cells[:4] == ["redis-master", 1, 1, 1] and rc_cells[5:] == ["app", "redis", "app=redis,role=master,tier=backend"]


# -- the work queue ------------------------------------------------------------------------------------


async def test_the_work_queue_coalesces_keys_and_retries_failures() -> None:
    seen: list[str] = []
    failures = {"bad": 2}

    def sync(key: str) -> float | None:
        seen.append(key)
        if failures.get(key):
            failures[key] -= 1
            raise RuntimeError("not yet")
        return None

    queue: WorkQueue[str] = WorkQueue("test", sync)
    for key in ("a", "b", "a", "a", "bad", "b"):
        queue.add(key)  # before start: kept
    queue.start()
    try:
        deadline = time.monotonic() + 2
        while (not queue.idle or seen.count("bad") < 3) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert seen.count("a") == 1 and seen.count("b") == 1  # coalesced
        assert seen.count("bad") == 3  # retried with backoff until it succeeded
        queue.add_after("later", 0.05)
        queue.add_after("later", 0.5)  # the earlier deadline wins
        await asyncio.sleep(0.15)
        assert seen[-1] == "later"
    finally:
        await queue.stop()


# -- the ReplicaSet controller ---------------------------------------------------------------------------


async def test_a_replica_set_creates_owned_pods_with_generated_names(world: World) -> None:
    world.registry.create(REPLICA_SETS, NS, replica_set("frontend", replicas=3))
    await world.settle()
    rs = world.get(REPLICA_SETS, "frontend")
    pods = world.pods(app="frontend")
    assert len(pods) == 3
    for pod in pods:
        name = pod["metadata"]["name"]
        assert name.startswith("frontend-") and len(name) == len("frontend-") + 5 and set(name[-5:]) <= ALPHABET
        assert pod["metadata"]["generateName"] == "frontend-"
        assert pod["metadata"]["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "frontend", "uid": rs["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True,
        }]
        assert pod["spec"]["containers"][0]["image"] == "nginx" and ready(pod)
    assert rs["status"] == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 3, "observedGeneration": 1}


async def test_pod_events_are_recorded_without_flooding(world: World) -> None:
    world.registry.create(REPLICA_SETS, NS, replica_set("many", replicas=40))
    await world.settle()
    events = [e for e in world.objects(EVENTS) if e["involvedObject"]["name"] == "many"]
    assert {(e["source"]["component"], e["involvedObject"]["kind"], e["reason"], e["type"]) for e in events} == {
        ("replicaset-controller", "ReplicaSet", "SuccessfulCreate", "Normal"),
    }
    single = [e for e in events if e["count"] == 1 and not e["message"].startswith("(combined")]
    combined = [e for e in events if e["message"].startswith("(combined from similar events): Created pod: many-")]
    # ten events, then one combined event counting the rest of the burst of 25: 11 writes for 40 pods
    assert len(single) == 10 and all(e["message"].startswith("Created pod: many-") for e in single)
    assert len(combined) == 1 and combined[0]["count"] == 15


async def test_scaling_down_deletes_unready_pods_first(world: World) -> None:
    world.registry.create(REPLICA_SETS, NS, replica_set("frontend", replicas=4))
    await world.settle()
    names = sorted(p["metadata"]["name"] for p in world.pods(app="frontend"))
    set_ready(world, names[1], False)
    set_ready(world, names[2], False)
    await world.settle()
    assert world.get(REPLICA_SETS, "frontend")["status"]["readyReplicas"] == 2
    world.registry.patch(REPLICA_SETS, NS, "frontend", MERGE_PATCH, {"spec": {"replicas": 2}})
    await world.settle()
    assert sorted(p["metadata"]["name"] for p in world.pods(app="frontend")) == [names[0], names[3]]
    assert world.get(REPLICA_SETS, "frontend")["status"]["replicas"] == 2


def test_pods_are_ranked_for_deletion_as_kubernetes_ranks_them() -> None:
    now = time.time()

    def stamp(age: float) -> str:
        return datetime.fromtimestamp(now - age, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def pod(name: str, *, node: str = "emulator", phase: str = "Running", is_ready: bool = True, age: float = 1000, ready_for: float = 1000,
            cost: int | None = None, restarts: int = 0) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "uid": name, "creationTimestamp": stamp(age)}
        if cost is not None:
            meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
        status = {
            "phase": phase, "conditions": [{"type": "Ready", "status": "True" if is_ready else "False", "lastTransitionTime": stamp(ready_for)}],
            "containerStatuses": [{"restartCount": restarts}],
        }
        return {"metadata": meta, "spec": {"nodeName": node}, "status": status}

    pods = [
        pod("old-ready"), pod("cheap", cost=-5), pod("new-ready", age=10, ready_for=10), pod("restarting", restarts=4),
        pod("unready", is_ready=False), pod("pending", phase="Pending", is_ready=False), pod("unscheduled", node=""),
    ]
    order = [p["metadata"]["name"] for p in rank_for_deletion(pods, now)]
    assert order == ["unscheduled", "pending", "unready", "cheap", "new-ready", "restarting", "old-ready"]


async def test_orphans_are_adopted_and_pods_that_stop_matching_are_released(world: World) -> None:
    world.registry.create(PODS, NS, standalone_pod("orphan", {"app": "frontend"}))
    world.registry.create(PODS, NS, standalone_pod("stranger", {"app": "other"}))
    await world.settle()
    world.registry.create(REPLICA_SETS, NS, replica_set("frontend", replicas=2))
    await world.settle()
    rs_uid = world.get(REPLICA_SETS, "frontend")["metadata"]["uid"]
    assert world.get(PODS, "orphan")["metadata"]["ownerReferences"][0]["uid"] == rs_uid
    assert "ownerReferences" not in world.get(PODS, "stranger")["metadata"]
    assert len(world.pods(app="frontend")) == 2  # the orphan counts: one pod created
    world.registry.patch(PODS, NS, "orphan", MERGE_PATCH, {"metadata": {"labels": {"app": "debugging"}}})
    await world.settle()
    assert "ownerReferences" not in world.get(PODS, "orphan")["metadata"]  # released, and replaced
    assert len(world.pods(app="frontend")) == 2
    assert world.get(REPLICA_SETS, "frontend")["status"]["replicas"] == 2


async def test_available_replicas_wait_for_min_ready_seconds(world: World) -> None:
    world.registry.create(REPLICA_SETS, NS, replica_set("slow", replicas=2, minReadySeconds=1))
    await world.settle()
    status = world.get(REPLICA_SETS, "slow")["status"]
    assert status["readyReplicas"] == 2 and "availableReplicas" not in status
    await world.eventually(lambda: world.get(REPLICA_SETS, "slow")["status"].get("availableReplicas") == 2, timeout=4)


async def test_refused_pods_are_reported_as_a_replica_failure(world: World) -> None:
    body = replica_set("nosa", replicas=1)
    body["spec"]["template"]["spec"]["serviceAccountName"] = "missing"
    world.registry.create(REPLICA_SETS, NS, body)
    await world.eventually(lambda: condition(world.get(REPLICA_SETS, "nosa"), "ReplicaFailure") is not None)
    failure = condition(world.get(REPLICA_SETS, "nosa"), "ReplicaFailure")
    assert failure is not None and failure["reason"] == "FailedCreate" and 'serviceaccount "missing" not found' in failure["message"]
    world.registry.patch(REPLICA_SETS, NS, "nosa", JSON_PATCH, [{"op": "remove", "path": "/spec/template/spec/serviceAccountName"}])
    await world.eventually(lambda: condition(world.get(REPLICA_SETS, "nosa"), "ReplicaFailure") is None)
    assert len(world.pods(app="nosa")) == 1


async def test_a_replication_controllers_pods_become_a_services_endpoints(world: World) -> None:
    world.registry.create(REPLICATION_CONTROLLERS, NS, rc(replicas=2))
    world.registry.create(SERVICES, NS, {
        "metadata": {"name": "redis-master"},
        "spec": {"selector": {"app": "redis", "role": "master", "tier": "backend"}, "ports": [{"port": 6379}]},
    })
    await world.settle()
    pods = world.pods(app="redis")
    assert len(pods) == 2 and all(p["metadata"]["name"].startswith("redis-master-") for p in pods)
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"
    endpoints = world.get(ENDPOINTS, "redis-master")
    assert sorted(a["ip"] for a in endpoints["subsets"][0]["addresses"]) == sorted(p["status"]["podIP"] for p in pods)
    rc_status = world.get(REPLICATION_CONTROLLERS, "redis-master")["status"]
    assert rc_status == {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 1}


# -- the Deployment controller ---------------------------------------------------------------------------


async def test_a_deployment_rolls_out_through_a_hashed_replica_set(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=3))
    await world.settle()
    d = world.get(DEPLOYMENTS, "web")
    [rs] = world.replica_sets_of("web")
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}" and 1 <= len(pod_hash) <= 10 and set(pod_hash) <= ALPHABET
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": pod_hash}}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "1", "deployment.kubernetes.io/desired-replicas": "3", "deployment.kubernetes.io/max-replicas": "4",
    }
    assert rs["metadata"]["ownerReferences"][0] | {"uid": ""} == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "", "controller": True, "blockOwnerDeletion": True,
    }
    assert d["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}
    pods = world.pods(app="web")
    assert len(pods) == 3 and all(p["metadata"]["name"].startswith(f"web-{pod_hash}-") for p in pods)
    status = d["status"]
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
    }
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Available", "True", "MinimumReplicasAvailable"), ("Progressing", "True", "NewReplicaSetAvailable"),
    ]
    assert condition(d, "Progressing")["message"] == f'ReplicaSet "web-{pod_hash}" has successfully progressed.'  # type: ignore[index]
    events = [e for e in world.objects(EVENTS) if e["involvedObject"]["name"] == "web"]
    assert [(e["reason"], e["message"]) for e in events] == [("ScalingReplicaSet", f"Scaled up replica set web-{pod_hash} from 0 to 3")]


def test_the_template_hash_is_stable_and_spelled_safely() -> None:
    t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "nginx"}]}}
    first = compute_hash(t, None)
    assert first == compute_hash(dict(reversed(list(t.items()))), None)
    assert set(first) <= ALPHABET and 1 <= len(first) <= 10
    assert compute_hash(t, 1) != first
    assert compute_hash({**t, "spec": {"containers": [{"name": "a", "image": "nginx:2"}]}}, None) != first


async def test_a_template_change_rolls_out_within_surge_and_unavailability(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=4))
    await world.settle()
    most = [0]
    least_available = [4]

    def watch(event: Event) -> None:
        # what the controller bounds: the ReplicaSets' sizes (pods being removed are not counted, as a
        # terminating pod is not), and the pods that are ready
        if event.resource == REPLICA_SETS.key:
            most[0] = max(most[0], sum(rs["spec"]["replicas"] for rs in world.objects(REPLICA_SETS)))
        if event.resource == PODS.key:
            least_available[0] = min(least_available[0], sum(1 for p in world.pods(app="web") if ready(p)))

    world.store.subscribe(watch)
    world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}})
    await world.settle()
    world.store.unsubscribe(watch)
    old, new = world.replica_sets_of("web")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 4)
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert world.get(DEPLOYMENTS, "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert all(p["spec"]["containers"][0]["image"] == "nginx:2" for p in world.pods(app="web"))
    assert most[0] <= 4 + 1  # maxSurge 25% of 4
    assert least_available[0] >= 4 - 1  # maxUnavailable 25% of 4
    d = world.get(DEPLOYMENTS, "web")
    assert d["status"]["updatedReplicas"] == 4 and d["status"]["observedGeneration"] == d["metadata"]["generation"]


async def test_a_rolling_update_waits_for_the_new_pods_to_be_ready(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=3))
    await world.settle()

    def probe_fails(event: Event) -> None:  # a kubelet whose readiness probe fails on the new image
        if event.resource == PODS.key and event.type == ADDED and event.obj["spec"]["containers"][0]["image"] == "nginx:broken":
            set_ready(world, event.name, False)

    world.store.subscribe(probe_fails)
    world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:broken"}]}}}})
    await world.settle()
    old, new = world.replica_sets_of("web")
    # 3 replicas: maxSurge rounds up to 1, maxUnavailable down to 0: one new pod, no old one removed
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (3, 1)
    status = world.get(DEPLOYMENTS, "web")["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"], status["unavailableReplicas"]) == (4, 1, 3, 1)
    assert condition(world.get(DEPLOYMENTS, "web"), "Progressing")["reason"] == "ReplicaSetUpdated"  # type: ignore[index]
    world.store.unsubscribe(probe_fails)
    for pod in world.pods(app="web"):
        if not ready(pod):
            set_ready(world, pod["metadata"]["name"], True)  # the probe passes now
    await world.settle()
    old, new = world.replica_sets_of("web")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)
    assert condition(world.get(DEPLOYMENTS, "web"), "Progressing")["reason"] == "NewReplicaSetAvailable"  # type: ignore[index]


async def test_going_back_to_an_old_template_reuses_its_replica_set_with_a_new_revision(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=2))
    await world.settle()
    first = world.get(DEPLOYMENTS, "web")["spec"]["template"]
    world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}})
    await world.settle()
    world.registry.patch(DEPLOYMENTS, NS, "web", JSON_PATCH, [{"op": "replace", "path": "/spec/template", "value": first}])  # kubectl rollout undo
    await world.settle()
    sets = world.replica_sets_of("web")
    assert len(sets) == 2
    second, original = sets
    assert original["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert original["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert (original["spec"]["replicas"], second["spec"]["replicas"]) == (2, 0)
    assert world.get(DEPLOYMENTS, "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


async def test_min_ready_seconds_holds_back_availability_and_the_rollout(world: World) -> None:
    began = time.monotonic()
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=2, minReadySeconds=1))
    await world.settle()
    d = world.get(DEPLOYMENTS, "web")
    assert d["status"]["readyReplicas"] == 2 and "availableReplicas" not in d["status"]
    assert condition(d, "Available")["status"] == "False"  # type: ignore[index]
    assert world.replica_sets_of("web")[0]["spec"]["minReadySeconds"] == 1

    def complete() -> bool:
        status = world.get(DEPLOYMENTS, "web")["status"]
        return status.get("availableReplicas") == 2 and condition(world.get(DEPLOYMENTS, "web"), "Progressing")["reason"] == "NewReplicaSetAvailable"  # type: ignore[index]

    await world.eventually(complete, timeout=5)
    # readiness is stamped in whole seconds (as by the API server): available within (0, 1+] seconds
    assert 0 < time.monotonic() - began < 3
    assert condition(world.get(DEPLOYMENTS, "web"), "Available")["status"] == "True"  # type: ignore[index]


async def test_recreate_removes_the_old_pods_before_creating_new_ones(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=2, strategy={"type": "Recreate"}))
    await world.settle()
    mixed = [False]

    def watch(event: Event) -> None:
        if event.resource == PODS.key:
            images = {p["spec"]["containers"][0]["image"] for p in world.pods(app="web")}
            mixed[0] = mixed[0] or len(images) > 1

    world.store.subscribe(watch)
    world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}})
    await world.settle()
    world.store.unsubscribe(watch)
    assert not mixed[0]
    assert sorted(p["spec"]["containers"][0]["image"] for p in world.pods(app="web")) == ["nginx:2", "nginx:2"]
    assert [rs["spec"]["replicas"] for rs in world.replica_sets_of("web")] == [0, 2]


async def test_a_paused_deployment_scales_but_does_not_roll_out(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=2))
    await world.settle()
    world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"spec": {"paused": True}})
    await world.settle()
    progressing = condition(world.get(DEPLOYMENTS, "web"), "Progressing")
    assert progressing is not None and (progressing["status"], progressing["reason"], progressing["message"]) == ("Unknown", "DeploymentPaused", "Deployment is paused")
    world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, {"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}})
    await world.settle()
    [rs] = world.replica_sets_of("web")
    assert rs["spec"]["replicas"] == 3 and rs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
    world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"spec": {"paused": False}})
    await world.settle()
    assert [rs["spec"]["replicas"] for rs in world.replica_sets_of("web")] == [0, 3]
    assert condition(world.get(DEPLOYMENTS, "web"), "Progressing")["reason"] == "NewReplicaSetAvailable"  # type: ignore[index]


async def test_scaling_during_a_rollout_is_proportional(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=10))
    await world.settle()

    def probe_fails(event: Event) -> None:
        if event.resource == PODS.key and event.type == ADDED and event.obj["spec"]["containers"][0]["image"] == "nginx:2":
            set_ready(world, event.name, False)

    world.store.subscribe(probe_fails)
    world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}})
    await world.settle()
    old, new = world.replica_sets_of("web")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (8, 5)  # 10 + surge 3, 2 unavailable
    world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"spec": {"replicas": 20}}, subresource="scale")
    await world.settle()
    world.store.unsubscribe(probe_fails)
    old, new = world.replica_sets_of("web")
    # 20 + surge 5 = 25 pods allowed, 12 more spread 8:5 over the two (the leftover to the largest)
    assert old["spec"]["replicas"] + new["spec"]["replicas"] == 25
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (15, 10)
    assert old["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "20"


async def test_old_replica_sets_beyond_the_history_limit_are_deleted(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=1, revisionHistoryLimit=1))
    for image in ("nginx:2", "nginx:3", "nginx:4"):
        await world.settle()
        world.registry.patch(DEPLOYMENTS, NS, "web", STRATEGIC_MERGE_PATCH, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    await world.settle()
    revisions = [rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in world.replica_sets_of("web")]
    assert revisions == ["3", "4"]
    assert len(world.objects(REPLICA_SETS)) == 2


async def test_a_rollout_that_makes_no_progress_exceeds_its_deadline(world: World) -> None:
    body = deployment(replicas=1, progressDeadlineSeconds=1)
    body["spec"]["template"]["spec"]["serviceAccountName"] = "missing"
    world.registry.create(DEPLOYMENTS, NS, body)

    def timed_out() -> bool:
        found = condition(world.get(DEPLOYMENTS, "web"), "Progressing")
        return found is not None and found["reason"] == "ProgressDeadlineExceeded"

    await world.eventually(timed_out, timeout=6)
    d = world.get(DEPLOYMENTS, "web")
    rs_name = world.replica_sets_of("web")[0]["metadata"]["name"]
    assert condition(d, "Progressing") | {"lastUpdateTime": "", "lastTransitionTime": ""} == {  # type: ignore[operator]
        "type": "Progressing", "status": "False", "lastUpdateTime": "", "lastTransitionTime": "", "reason": "ProgressDeadlineExceeded",
        "message": f'ReplicaSet "{rs_name}" has timed out progressing.',
    }
    assert condition(d, "Available")["reason"] == "MinimumReplicasUnavailable"  # type: ignore[index]
    assert condition(d, "ReplicaFailure")["reason"] == "FailedCreate"  # type: ignore[index]


async def test_a_thousand_replicas_come_up_quickly_in_few_syncs(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment("big", replicas=1))
    await world.settle()
    syncs = world.replica_sets.queue.syncs
    began = time.perf_counter()
    world.registry.patch(DEPLOYMENTS, NS, "big", MERGE_PATCH, {"spec": {"replicas": 1000}}, subresource="scale")
    await world.eventually(lambda: world.get(DEPLOYMENTS, "big")["status"].get("availableReplicas") == 1000, timeout=30)
    elapsed = time.perf_counter() - began
    pods = world.pods(app="big")
    assert len(pods) == 1000 and len({p["metadata"]["name"] for p in pods}) == 1000
    assert world.replica_sets.queue.syncs - syncs < 20  # a thousand pod events coalesce
    assert elapsed < 10, f"1,000 replicas took {elapsed:.2f}s"
    began = time.perf_counter()
    world.registry.patch(DEPLOYMENTS, NS, "big", MERGE_PATCH, {"spec": {"replicas": 0}}, subresource="scale")
    await world.eventually(lambda: not world.pods(app="big"), timeout=30)
    assert time.perf_counter() - began < 10


async def test_a_foreground_deletion_of_many_pods_is_quick(world: World) -> None:
    world.registry.create(DEPLOYMENTS, NS, deployment("big", replicas=500))
    await world.settle()
    syncs = world.replica_sets.queue.syncs
    began = time.perf_counter()
    world.registry.delete(DEPLOYMENTS, NS, "big", propagation="Foreground")
    await world.eventually(lambda: world.find(DEPLOYMENTS, "big") is None, timeout=30)
    assert time.perf_counter() - began < 10
    assert world.objects(PODS) == [] and world.objects(REPLICA_SETS) == []
    # the collector deletes pods one by one, in turns: the ReplicaSet is synced per turn, not per pod
    assert world.replica_sets.queue.syncs - syncs < 50


# -- garbage collection ----------------------------------------------------------------------------------


async def deployed(world: World, replicas: int = 2) -> tuple[dict[str, Any], dict[str, Any]]:
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=replicas))
    await world.settle()
    return world.get(DEPLOYMENTS, "web"), world.replica_sets_of("web")[0]


async def test_deleting_in_the_background_removes_the_dependents_after(world: World) -> None:
    await deployed(world)
    world.registry.delete(DEPLOYMENTS, NS, "web", propagation="Background")
    assert world.find(DEPLOYMENTS, "web") is None  # gone at once
    await world.settle()
    assert world.objects(REPLICA_SETS) == [] and world.objects(PODS) == []


async def test_deleting_in_the_foreground_keeps_the_owner_until_its_dependents_are_gone(world: World) -> None:
    _, rs = await deployed(world)
    seen: list[tuple[str, str, list[str]]] = []

    def watch(event: Event) -> None:
        if event.resource in (DEPLOYMENTS.key, REPLICA_SETS.key):
            seen.append((event.type, event.resource, event.obj["metadata"].get("finalizers") or []))

    world.store.subscribe(watch)
    marked = world.registry.delete(DEPLOYMENTS, NS, "web", propagation="Foreground")
    assert marked["metadata"]["finalizers"] == ["foregroundDeletion"] and marked["metadata"]["deletionTimestamp"]
    await world.settle()
    world.store.unsubscribe(watch)
    assert world.find(DEPLOYMENTS, "web") is None and world.objects(REPLICA_SETS) == [] and world.objects(PODS) == []
    # the ReplicaSet went in the foreground too (it has pods), and before the Deployment
    assert ("MODIFIED", REPLICA_SETS.key, ["foregroundDeletion"]) in seen
    order = [(kind, resource) for kind, resource, _ in seen if kind == "DELETED"]
    assert order == [("DELETED", REPLICA_SETS.key), ("DELETED", DEPLOYMENTS.key)]
    assert rs["metadata"]["name"] not in {r["metadata"]["name"] for r in world.objects(REPLICA_SETS)}


async def test_orphaning_keeps_the_dependents_without_the_reference(world: World) -> None:
    d, rs = await deployed(world)
    world.registry.delete(DEPLOYMENTS, NS, "web", propagation="Orphan")
    await world.settle()
    assert world.find(DEPLOYMENTS, "web") is None
    kept = world.get(REPLICA_SETS, rs["metadata"]["name"])
    assert "ownerReferences" not in kept["metadata"]
    assert len(world.pods(app="web")) == 2  # still the ReplicaSet's
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in world.pods(app="web"))
    # the same Deployment again adopts the ReplicaSet instead of creating one
    world.registry.create(DEPLOYMENTS, NS, deployment(replicas=2))
    await world.settle()
    [again] = world.replica_sets_of("web")
    assert again["metadata"]["uid"] == rs["metadata"]["uid"]
    assert again["metadata"]["ownerReferences"][0]["uid"] != d["metadata"]["uid"]
    assert len(world.pods(app="web")) == 2


async def test_the_propagation_policy_is_checked_and_may_change_while_pending(world: World) -> None:
    await deployed(world)
    with pytest.raises(errors.StatusError) as caught:
        world.registry.delete(DEPLOYMENTS, NS, "web", propagation="Sideways")
    assert caught.value.code == 400
    # a finalizer the collector does not own keeps it pending: the policy can still change
    world.registry.patch(DEPLOYMENTS, NS, "web", MERGE_PATCH, {"metadata": {"finalizers": ["example.com/hold"]}})
    marked = world.registry.delete(DEPLOYMENTS, NS, "web", propagation="Orphan")
    assert marked["metadata"]["finalizers"] == ["example.com/hold", "orphan"]
    again = world.registry.delete(DEPLOYMENTS, NS, "web", propagation="Foreground")
    assert again["metadata"]["finalizers"] == ["example.com/hold", "foregroundDeletion"]
    await world.settle()
    assert world.get(DEPLOYMENTS, "web")["metadata"]["finalizers"] == ["example.com/hold"]
    assert world.objects(PODS) == []  # the foreground deletion went through


async def test_a_dependent_of_a_missing_owner_is_collected(world: World) -> None:
    ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost", "uid": "00000000-0000-0000-0000-000000000000", "controller": True}
    world.registry.create(PODS, NS, standalone_pod("haunted", {"app": "x"}, ownerReferences=[ghost]))
    await world.settle()
    assert world.find(PODS, "haunted") is None


async def test_a_dependent_with_another_owner_only_loses_the_reference(world: World) -> None:
    world.registry.create(REPLICA_SETS, NS, replica_set("one", replicas=0))
    world.registry.create(REPLICA_SETS, NS, replica_set("two", replicas=0))
    one, two = world.get(REPLICA_SETS, "one"), world.get(REPLICA_SETS, "two")

    def ref(rs: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"]}

    world.registry.create(PODS, NS, standalone_pod("shared", {"app": "nobody"}, ownerReferences=[ref(one), ref(two)]))
    await world.settle()
    world.registry.delete(REPLICA_SETS, NS, "one")
    await world.settle()
    assert world.get(PODS, "shared")["metadata"]["ownerReferences"] == [ref(two)]
    world.registry.delete(REPLICA_SETS, NS, "two")
    await world.settle()
    assert world.find(PODS, "shared") is None


async def test_a_replication_controller_deleted_in_the_background_takes_its_pods(world: World) -> None:
    world.registry.create(REPLICATION_CONTROLLERS, NS, rc(replicas=2))
    await world.settle()
    assert len(world.pods(app="redis")) == 2
    world.registry.delete(REPLICATION_CONTROLLERS, NS, "redis-master")
    await world.settle()
    assert world.pods(app="redis") == []
