"""DaemonSets in process: placement (node selectors, affinity, taints and the daemon tolerations), the
rolling update plan, the kind (defaults, validation, the template generation, columns), and the
controller wired to a real in-memory `Store` and `Registry` with the emulator's node.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from emulator import errors
from emulator.controllers.builtins import ensure_node
from emulator.controllers.daemonset import (
    DaemonSetController,
    daemon_tolerations,
    node_affinity_for,
    node_of,
    rolling_update_plan,
    should_run,
)
from emulator.controllers.garbagecollector import GarbageCollector
from emulator.controllers.namespaces import NamespaceController
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import BY_KEY, CONTROLLER_REVISIONS, DAEMON_SETS, EVENTS, NAMESPACES, NODES, PODS
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import STRATEGIC_MERGE_PATCH, Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

NS = "logging"


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints} if taints else {}}


def daemon_set(name: str = "agent", image: str = "fluentd:v1", **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {"metadata": {"name": name}, "spec": {
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "agent", "image": image}]}},
        **spec,
    }}


def daemon_pod(name: str, on: str, hash_: str, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"controller-revision-hash": hash_}},
        "spec": {"nodeName": on},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


# -- pure: placement and the rolling update plan ---------------------------------------------------------


def test_a_node_runs_the_pod_when_selector_affinity_and_taints_allow() -> None:
    ssd = node("a", {"disk": "ssd"})
    assert should_run({}, ssd) and should_run({"nodeSelector": {"disk": "ssd"}}, ssd)
    assert not should_run({"nodeSelector": {"disk": "hdd"}}, ssd)
    assert not should_run({"nodeName": "b"}, ssd)
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]},
        {"matchExpressions": [{"key": "disk", "operator": "Exists"}]},
    ]}}}
    assert should_run({"affinity": affinity}, ssd) and not should_run({"affinity": affinity}, node("b"))
    tainted = node("c", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    assert not should_run({}, tainted)
    assert should_run({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}, tainted)
    assert should_run({}, node("d", taints=[{"key": "k", "effect": "PreferNoSchedule"}]))
    # every daemon pod tolerates the node condition taints
    assert should_run({}, node("e", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]))


def test_daemon_pods_get_the_daemon_tolerations_and_a_pinning_affinity() -> None:
    keys = [(t["key"], t.get("effect")) for t in daemon_tolerations({"tolerations": [{"key": "mine", "operator": "Exists"}]})]
    assert keys == [
        ("mine", None), ("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"), ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") in [(t["key"], t["effect"]) for t in daemon_tolerations({"hostNetwork": True})]
    affinity = node_affinity_for({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": []}]}}, "podAffinity": {}}, "emulator")
    assert affinity == {"podAffinity": {}, "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["emulator"]}]}],
    }}}
    assert node_of({"spec": {"affinity": affinity}}) == "emulator"


def test_the_rolling_update_replaces_within_max_unavailable() -> None:
    ds = {"metadata": {}, "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}}}
    by_node = {n: [daemon_pod(f"p-{n}", n, "old")] for n in ("a", "b", "c")}
    delete, surge = rolling_update_plan(ds, by_node, "new", 0.0)
    assert [p["metadata"]["name"] for p in delete] == ["p-a"] and surge == []
    by_node["a"] = [daemon_pod("p-a2", "a", "new", ready=False)]  # one node is busy updating
    assert rolling_update_plan(ds, by_node, "new", 0.0) == ([], [])
    by_node["b"] = [daemon_pod("p-b", "b", "old", ready=False)]  # an unavailable old pod may always go
    assert [p["metadata"]["name"] for p in rolling_update_plan(ds, by_node, "new", 0.0)[0]] == ["p-b"]
    ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": "100%"}
    by_node = {"a": [daemon_pod("old-a", "a", "old"), daemon_pod("new-a", "a", "new")], "b": [daemon_pod("old-b", "b", "old")]}
    delete, surge = rolling_update_plan(ds, by_node, "new", 0.0)
    assert [p["metadata"]["name"] for p in delete] == ["old-a"] and surge == ["b"]


# -- the controller, in process ----------------------------------------------------------------------


@dataclass
class World:
    store: Store
    registry: Registry
    queues: list[WorkQueue[Any]] = field(default_factory=list)

    async def settle(self) -> None:
        quiet = 0
        while quiet < 2:
            await self.store.settled(self.store.rv)
            await asyncio.sleep(0)
            if self.store.delivered_rv == self.store.rv and all(q.idle for q in self.queues):
                quiet += 1
            else:
                quiet = 0

    def get(self, name: str) -> dict[str, Any]:
        found = self.store.get(DAEMON_SETS.key, NS, name)
        assert found is not None
        return found

    def pods(self) -> list[dict[str, Any]]:
        return sorted(self.store.objects(PODS.key, NS), key=lambda p: p["spec"]["nodeName"])

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.registry.patch(DAEMON_SETS, NS, name, STRATEGIC_MERGE_PATCH, patch)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    store = Store(MemoryBackend())
    plan = AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")
    registry = Registry(Cluster(store, plan))
    namespaces = NamespaceController(registry, 0.01)
    store.subscribe(namespaces.apply)
    w = World(store, registry)
    for controller in (DaemonSetController(registry), GarbageCollector(registry)):
        store.subscribe(controller.apply)
        controller.queue.start()
        w.queues.append(controller.queue)
    namespaces.bootstrap("127.0.0.1", 6443)
    ensure_node(registry)
    registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    await w.settle()
    yield w
    for queue in w.queues:
        await queue.stop()


async def test_a_daemon_set_gets_the_api_servers_defaults_and_is_validated(world: World) -> None:
    assert (DAEMON_SETS.short_names, DAEMON_SETS.categories, {s.name for s in DAEMON_SETS.subresources}) == (("ds",), ("all",), {"status"})
    stored = world.registry.create(DAEMON_SETS, NS, daemon_set()).obj
    assert stored["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert stored["spec"]["revisionHistoryLimit"] == 10
    assert stored["metadata"]["annotations"] == {"deprecated.daemonset.template.generation": "1"}
    with pytest.raises(errors.StatusError) as caught:
        world.registry.create(DAEMON_SETS, NS, daemon_set("bad", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}))
    assert "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}: may not be set when maxUnavailable is non-zero" in caught.value.message
    with pytest.raises(errors.StatusError) as caught:
        world.registry.create(DAEMON_SETS, NS, daemon_set("bad", updateStrategy={"type": "Sometimes"}))
    assert 'spec.updateStrategy.type: Unsupported value: "Sometimes": supported values: "OnDelete", "RollingUpdate"' in caught.value.message
    await world.settle()
    world.patch("agent", {"metadata": {"labels": {"team": "x"}}})
    assert world.get("agent")["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"
    world.patch("agent", {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "fluentd:v2"}]}}}})
    assert world.get("agent")["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    await world.settle()


async def test_one_pod_per_node_with_its_labels_and_status(world: World) -> None:
    world.registry.create(DAEMON_SETS, NS, daemon_set())
    await world.settle()
    [pod] = world.pods()
    meta = pod["metadata"]
    assert meta["name"].startswith("agent-") and len(meta["name"]) == len("agent-") + 5
    [revision] = list(world.store.objects(CONTROLLER_REVISIONS.key, NS))
    hash_ = revision["metadata"]["labels"]["controller-revision-hash"]
    assert revision["metadata"]["name"] == f"agent-{hash_}" and revision["revision"] == 1
    assert meta["labels"] == {"app": "agent", "controller-revision-hash": hash_, "pod-template-generation": "1"}
    assert pod["spec"]["nodeName"] == "emulator" and node_of({"spec": {"affinity": pod["spec"]["affinity"]}}) == "emulator"
    status = world.get("agent")["status"]
    assert status == {
        "currentNumberScheduled": 1, "numberMisscheduled": 0, "desiredNumberScheduled": 1, "numberReady": 1,
        "observedGeneration": 1, "updatedNumberScheduled": 1, "numberAvailable": 1,
    }
    cells = BY_KEY[DAEMON_SETS.key].printer.cells(world.get("agent"), datetime.now(UTC))
    assert cells[:7] == ["agent", 1, 1, 1, 1, 1, "<none>"] and cells[8:] == ["agent", "fluentd:v1", "app=agent"]
    # a second node gets its own pod; a node selector that matches neither leaves none
    world.registry.create(NODES, "", {"metadata": {"name": "worker", "labels": {"disk": "ssd"}}})
    await world.settle()
    assert [p["spec"]["nodeName"] for p in world.pods()] == ["emulator", "worker"]
    world.patch("agent", {"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}})
    await world.settle()
    assert [p["spec"]["nodeName"] for p in world.pods()] == ["worker"]
    world.patch("agent", {"spec": {"template": {"spec": {"nodeSelector": {"disk": "nvme"}}}}})
    await world.settle()
    assert world.pods() == [] and world.get("agent")["status"]["desiredNumberScheduled"] == 0


async def test_a_template_change_rolls_and_on_delete_waits(world: World) -> None:
    world.registry.create(DAEMON_SETS, NS, daemon_set())
    world.registry.create(DAEMON_SETS, NS, daemon_set("manual", updateStrategy={"type": "OnDelete"}))
    await world.settle()
    before = {p["metadata"]["name"] for p in world.pods()}
    for name in ("agent", "manual"):
        world.patch(name, {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "fluentd:v2"}]}}}})
    await world.settle()
    pods = {p["metadata"]["labels"]["app"]: p for p in world.pods()}
    assert pods["agent"]["metadata"]["name"] not in before and pods["agent"]["spec"]["containers"][0]["image"] == "fluentd:v2"
    assert pods["agent"]["metadata"]["labels"]["pod-template-generation"] == "2"
    assert pods["manual"]["metadata"]["name"] in before
    assert world.get("manual")["status"].get("updatedNumberScheduled", 0) == 0
    world.registry.delete(PODS, NS, pods["manual"]["metadata"]["name"])
    await world.settle()
    manual = [p for p in world.pods() if p["metadata"]["labels"]["app"] == "manual"]
    assert [p["spec"]["containers"][0]["image"] for p in manual] == ["fluentd:v2"]
    revisions = sorted(r["revision"] for r in world.store.objects(CONTROLLER_REVISIONS.key, NS) if r["metadata"]["name"].startswith("agent-"))
    assert revisions == [1, 2]


async def test_deleting_the_daemon_set_deletes_its_pods(world: World) -> None:
    world.registry.create(DAEMON_SETS, NS, daemon_set())
    await world.settle()
    world.registry.delete(DAEMON_SETS, NS, "agent")
    await world.settle()
    assert world.pods() == [] and list(world.store.objects(CONTROLLER_REVISIONS.key, NS)) == []


async def test_a_surge_creates_the_new_pod_before_deleting_the_old_one(world: World) -> None:
    world.registry.create(DAEMON_SETS, NS, daemon_set(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}))
    await world.settle()
    [old] = world.pods()
    world.patch("agent", {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "fluentd:v2"}]}}}})
    await world.settle()
    [new] = world.pods()
    assert new["spec"]["containers"][0]["image"] == "fluentd:v2"
    messages = [e["message"] for e in sorted(world.store.objects(EVENTS.key, NS), key=lambda e: int(e["metadata"]["resourceVersion"]))]
    assert messages[-2:] == [f"Created pod: {new['metadata']['name']}", f"Deleted pod: {old['metadata']['name']}"]
