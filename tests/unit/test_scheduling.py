"""Scheduling: the pure filters of emulator/scheduling.py in kube-scheduler's words, then the pod strategy and
the scheduler controller over a real in-memory store and registry: a pod no node fits waits Pending without
an address, says why, and is bound (address, Running) once a node fits."""

from __future__ import annotations

from typing import Any

import pytest

from emulator import errors
from emulator.controllers.scheduler import SchedulerController
from emulator.kinds import EVENTS, NAMESPACES, NODES, PODS
from emulator.registry.registry import MERGE_PATCH
from emulator.scheduling import place
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store
from tests.unit.test_controllers import NS, World, wire

READY = {"conditions": [{"type": "Ready", "status": "True"}]}
PREEMPTION = " preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."


def node(name: str = "emulator", labels: dict[str, str] | None = None, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": READY if status is None else status}


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}


@pytest.mark.parametrize(("the_pod", "the_node", "why"), [
    (pod(), node(unschedulable=True), "1 node(s) were unschedulable"),
    (pod(nodeSelector={"disk": "ssd"}), node(labels={"disk": "hdd"}), "1 node(s) didn't match Pod's node affinity/selector"),
    (pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}), node(labels={"zone": "b"}),
     "1 node(s) didn't match Pod's node affinity/selector"),
    (pod(), node(taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]), "1 node(s) had untolerated taint {dedicated: db}"),
    (pod(), node(taints=[{"key": "gone", "effect": "NoExecute"}]), "1 node(s) had untolerated taint {gone: }"),
    (pod(), node(status={}), "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }"),
])
def test_what_keeps_a_pod_off_a_node_is_said_as_kube_scheduler_says_it(the_pod: dict[str, Any], the_node: dict[str, Any], why: str) -> None:
    assert place(the_pod, [the_node], "emulator") == (None, "Unschedulable", f"0/1 nodes are available: {why}.{PREEMPTION}")


@pytest.mark.parametrize(("the_pod", "the_node"), [
    (pod(), node()),
    (pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]), node(unschedulable=True)),
    (pod(nodeSelector={"disk": "ssd"}), node(labels={"disk": "ssd"})),
    (pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db"}]), node(taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])),
    (pod(tolerations=[{"operator": "Exists"}]), node(taints=[{"key": "any", "effect": "NoExecute"}], unschedulable=True)),
    (pod(), node(taints=[{"key": "soft", "effect": "PreferNoSchedule"}])),  # a preference, not a filter
])
def test_what_fits(the_pod: dict[str, Any], the_node: dict[str, Any]) -> None:
    assert place(the_pod, [the_node], "emulator") == ("emulator", "", "")


def test_gates_first_and_the_emulators_node_preferred_among_those_that_fit() -> None:
    assert place(pod(schedulingGates=[{"name": "wait"}]), [node()], "emulator")[:2] == (None, "SchedulingGated")
    nodes = [node("a"), node("emulator"), node("z", labels={"disk": "ssd"})]
    assert place(pod(), nodes, "emulator")[0] == "emulator"
    assert place(pod(nodeSelector={"disk": "ssd"}), nodes, "emulator")[0] == "z"
    _, _, message = place(pod(), [node("a", unschedulable=True), node("b", status={}), node("c", unschedulable=True)], "emulator")
    assert message.startswith("0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
                              "2 node(s) were unschedulable.")


# -- the pod strategy and the controller ------------------------------------------------------------


@pytest.fixture
async def world() -> World:
    world = wire(Store(MemoryBackend()))
    scheduler = SchedulerController(world.registry)
    world.store.subscribe(scheduler.apply)
    scheduler.queue.start()
    world.registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    await world.settle()
    return world


def stored(world: World, name: str = "p") -> dict[str, Any]:
    found = world.store.get(PODS.key, NS, name)
    assert found is not None
    return found


async def test_a_pod_waits_for_a_node_and_runs_once_one_fits(world: World) -> None:
    world.registry.patch(NODES, "", "emulator", MERGE_PATCH, {"spec": {"unschedulable": True}})
    world.registry.create(PODS, NS, pod())
    waiting = stored(world)
    assert waiting["status"]["phase"] == "Pending" and "podIP" not in waiting["status"] and "nodeName" not in waiting["spec"]
    scheduled = next(c for c in waiting["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable") and "were unschedulable" in scheduled["message"]
    await world.eventually(lambda: any(e.get("reason") == "FailedScheduling" for e in world.store.objects(EVENTS.key, NS)))
    world.registry.patch(NODES, "", "emulator", MERGE_PATCH, {"spec": {"unschedulable": None}})
    await world.eventually(lambda: stored(world)["spec"].get("nodeName") == "emulator")
    bound = stored(world)
    assert bound["status"]["phase"] == "Running" and bound["status"]["podIP"]
    assert {c["type"]: c["status"] for c in bound["status"]["conditions"]}["PodScheduled"] == "True"
    with pytest.raises(errors.StatusError) as caught:
        world.registry.bind(NS, "p", "other")
    assert caught.value.code == 409 and 'already assigned to node "emulator"' in caught.value.message


async def test_a_gated_pod_is_placed_when_its_gates_are_removed(world: World) -> None:
    world.registry.create(PODS, NS, pod(schedulingGates=[{"name": "wait"}]))
    assert next(c for c in stored(world)["status"]["conditions"] if c["type"] == "PodScheduled")["reason"] == "SchedulingGated"
    world.registry.patch(PODS, NS, "p", MERGE_PATCH, {"spec": {"schedulingGates": None}})
    await world.eventually(lambda: stored(world)["spec"].get("nodeName") == "emulator")
    assert not [e for e in world.store.objects(EVENTS.key, NS) if e.get("reason") == "FailedScheduling"]  # gated is no failure


async def test_a_new_reason_is_said_again(world: World) -> None:
    world.registry.create(PODS, NS, pod(nodeSelector={"disk": "ssd"}))
    await world.settle()
    world.registry.patch(NODES, "", "emulator", MERGE_PATCH, {"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
                                                             "metadata": {"labels": {"disk": "ssd"}}})

    def messages() -> list[str]:
        return [e["message"] for e in world.store.objects(EVENTS.key, NS) if e.get("reason") == "FailedScheduling"]

    await world.eventually(lambda: len(messages()) == 2)
    assert "didn't match" in messages()[0] and "untolerated taint {k: v}" in messages()[1]
    assert "untolerated taint {k: v}" in next(c for c in stored(world)["status"]["conditions"] if c["type"] == "PodScheduled")["message"]


async def test_an_empty_node_name_is_no_node_and_bind_refuses_what_the_api_server_refuses(world: World) -> None:
    world.registry.create(PODS, NS, pod(nodeName=""))  # what a chart's empty value gives
    assert stored(world)["spec"]["nodeName"] == "emulator"
    world.registry.create(PODS, NS, {**pod(schedulingGates=[{"name": "wait"}]), "metadata": {"name": "gated"}})
    with pytest.raises(errors.StatusError) as caught:
        world.registry.bind(NS, "gated", "emulator")
    assert caught.value.code == 409 and "has non-empty .spec.schedulingGates" in caught.value.message


def test_no_node_at_all_says_how_to_get_it_back() -> None:
    assert place(pod(), [], "emulator") == (None, "Unschedulable", "no nodes available to schedule pods (restart the emulator to register its node)")
