"""StatefulSets in process: the pure parts of the controller (names and ordinals, which revision a pod is
made from, which pod a rolling update replaces, revision hashes and data, claim owners), the kind
(defaults, validation, columns) and the controller itself wired to a real in-memory `Store` and
`Registry` with the garbage collector, as emulator/runtime.py wires them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from emulator import errors
from emulator.controllers.garbagecollector import GarbageCollector
from emulator.controllers.namespaces import NamespaceController
from emulator.controllers.statefulset import (
    StatefulSetController,
    claim_owners,
    dead_history,
    equal_revisions,
    fnv1_32,
    go_json,
    new_claim,
    new_pod,
    parent_and_ordinal,
    revision_hash,
    rolling_update_target,
    template_of,
    template_patch,
    uses_current_revision,
)
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import (
    BY_KEY,
    CONTROLLER_REVISIONS,
    EVENTS,
    NAMESPACES,
    PERSISTENT_VOLUME_CLAIMS,
    PODS,
    STATEFUL_SETS,
    ResourceType,
)
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import STRATEGIC_MERGE_PATCH, Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

NS = "db"
ALPHABET = set("bcdfghjklmnpqrstvwxz2456789")


# -- objects -----------------------------------------------------------------------------------------


def stateful_set(name: str = "web", replicas: int | None = 2, image: str = "nginx:1.27", **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {
            "serviceName": "nginx", "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                "name": "nginx", "image": image, "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}],
            }]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
            **spec,
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def pod(name: str, revision: str = "web-1", phase: str = "Running", ready: bool = True, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"controller-revision-hash": revision}, **meta},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


# -- pure: identity, revisions, decisions ----------------------------------------------------------------


def test_pods_are_named_by_ordinal_and_parsed_back() -> None:
    assert parent_and_ordinal("web-0") == ("web", 0)
    assert parent_and_ordinal("my-db-12") == ("my-db", 12)
    assert parent_and_ordinal("web") is None and parent_and_ordinal("web-x") is None


def test_a_pod_below_the_partition_is_made_from_the_current_revision() -> None:
    spec = {"replicas": 4, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}
    assert [uses_current_revision(spec, i) for i in range(4)] == [True, True, False, False]
    shifted = {**spec, "ordinals": {"start": 5}}
    assert [uses_current_revision(shifted, i) for i in range(5, 9)] == [True, True, False, False]
    assert not uses_current_revision({"updateStrategy": {"type": "OnDelete"}}, 0)


def test_a_rolling_update_replaces_the_highest_ordinal_first_and_waits_for_health() -> None:
    spec = {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}
    slots = {i: pod(f"web-{i}", "old") for i in range(3)}
    action, target = rolling_update_target(spec, slots, "new")
    assert action == "delete" and target is not None and target["metadata"]["name"] == "web-2"
    slots[2] = pod("web-2", "new", ready=False)
    assert rolling_update_target(spec, slots, "new") == ("wait", None)  # the new web-2 is not ready yet
    slots[2] = pod("web-2", "new")
    action, target = rolling_update_target(spec, slots, "new")
    assert target is not None and target["metadata"]["name"] == "web-1"
    # a partition keeps the lower ordinals at the current revision
    partitioned = {**spec, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}
    assert rolling_update_target(partitioned, slots, "new") == ("done", None)
    assert rolling_update_target(spec, {i: pod(f"web-{i}", "new") for i in range(3)}, "new") == ("done", None)


def test_revision_hashes_are_fnv32_of_the_data_spelled_safely() -> None:
    assert fnv1_32(b"a") == 0x050C5D7E and fnv1_32(b"foobar") == 0x31F0B262  # the FNV-1 test vectors
    data = template_patch(stateful_set())
    first = revision_hash(data, 0)
    assert first == revision_hash(data, 0) and set(first) <= ALPHABET and 1 <= len(first) <= 10
    assert revision_hash(data, 1) != first  # a collision hashes again with the count
    assert revision_hash(template_patch(stateful_set(image="nginx:1.28")), 0) != first


def test_the_revision_data_is_the_patch_kubectl_rollout_undo_sends() -> None:
    sts = stateful_set()
    data = template_patch(sts)
    assert list(data) == ["spec"] and list(data["spec"]) == ["template"]
    template = data["spec"]["template"]
    assert template["$patch"] == "replace" and template["metadata"] == {"creationTimestamp": None, "labels": {"app": "web"}}
    assert list(template) == sorted(template)  # Go's encoder sorts map keys: kubectl compares the bytes
    assert template_of({"data": data}) == sts["spec"]["template"]
    assert go_json({"b": "<&>", "a": 1}) == b'{"a":1,"b":"\\u003c\\u0026\\u003e"}'
    assert equal_revisions([{"data": data}, {"data": template_patch(stateful_set(image="x"))}], data) == [{"data": data}]


def test_old_revisions_beyond_the_limit_go_unless_a_pod_uses_them() -> None:
    revisions = [{"metadata": {"name": f"web-{i}"}, "revision": i} for i in range(1, 6)]
    gone = dead_history(revisions, {"web-5", "web-1"}, limit=1)
    assert [r["metadata"]["name"] for r in gone] == ["web-2", "web-3"]
    assert dead_history(revisions, set(), limit=10) == []


def test_a_pod_gets_its_identity_and_its_claims() -> None:
    sts = stateful_set()
    sts["metadata"] |= {"uid": "u1", "namespace": NS}
    sts["spec"]["template"]["spec"]["volumes"] = [{"name": "config", "configMap": {"name": "c"}}, {"name": "www", "emptyDir": {}}]
    made = new_pod(sts, sts["spec"]["template"], 3, "web-abc")
    meta, spec = made["metadata"], made["spec"]
    assert meta["name"] == "web-3" and (spec["hostname"], spec["subdomain"]) == ("web-3", "nginx")
    assert meta["labels"] == {
        "app": "web", "statefulset.kubernetes.io/pod-name": "web-3", "apps.kubernetes.io/pod-index": "3",
        "controller-revision-hash": "web-abc",
    }
    assert meta["ownerReferences"][0] | {"uid": "u1"} == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u1", "controller": True, "blockOwnerDeletion": True}
    # the claim replaces the template's volume of the same name, and comes first
    assert spec["volumes"] == [{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-3"}}, {"name": "config", "configMap": {"name": "c"}}]
    claim = new_claim(sts, sts["spec"]["volumeClaimTemplates"][0], 3)
    assert claim["metadata"] == {"name": "www-web-3", "namespace": NS, "labels": {"app": "web"}}


def test_claims_name_their_owners_as_the_retention_policy_says() -> None:
    sts: dict[str, Any] = {"metadata": {"name": "web", "uid": "set"}, "spec": {}}
    web_1: dict[str, Any] = {"metadata": {"name": "web-1", "uid": "pod"}}
    other: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "x"}

    def owners(deleted: str, scaled: str, in_range: bool) -> list[str]:
        sts["spec"] = {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": deleted, "whenScaled": scaled}}
        return [r["uid"] for r in claim_owners([other], sts, web_1, in_range)]

    assert owners("Retain", "Retain", True) == owners("Retain", "Retain", False) == ["x"]
    assert owners("Delete", "Retain", True) == owners("Delete", "Retain", False) == ["x", "set"]
    assert owners("Retain", "Delete", True) == ["x"] and owners("Retain", "Delete", False) == ["x", "pod"]
    assert owners("Delete", "Delete", True) == ["x", "set"] and owners("Delete", "Delete", False) == ["x", "pod"]


# -- the controller, in process ----------------------------------------------------------------------


@dataclass
class World:
    store: Store
    registry: Registry
    controller: StatefulSetController
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

    def get(self, rt: ResourceType, name: str) -> dict[str, Any]:
        found = self.store.get(rt.key, NS, name)
        assert found is not None, f"{rt.key} {name} not found"
        return found

    def names(self, rt: ResourceType) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.store.objects(rt.key, NS))

    def revisions(self) -> dict[str, str]:
        """pod name -> its revision"""
        return {p["metadata"]["name"]: p["metadata"]["labels"]["controller-revision-hash"] for p in self.store.objects(PODS.key, NS)}

    def set_ready(self, name: str, value: bool) -> None:
        current = self.get(PODS, name)
        for condition in current["status"]["conditions"]:
            if condition["type"] in ("Ready", "ContainersReady"):
                condition["status"] = "True" if value else "False"
                condition["lastTransitionTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.registry.update(PODS, NS, name, current, subresource="status")

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.registry.patch(STATEFUL_SETS, NS, name, STRATEGIC_MERGE_PATCH, patch)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    store = Store(MemoryBackend())
    plan = AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")
    registry = Registry(Cluster(store, plan))
    namespaces = NamespaceController(registry, 0.01)
    store.subscribe(namespaces.apply)
    w = World(store, registry, StatefulSetController(registry))
    for controller in (w.controller, GarbageCollector(registry)):
        store.subscribe(controller.apply)
        controller.queue.start()
        w.queues.append(controller.queue)
    namespaces.bootstrap("127.0.0.1", 6443)
    registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    await w.settle()
    yield w
    for queue in w.queues:
        await queue.stop()


def invalid(call: Callable[[], Any]) -> str:
    with pytest.raises(errors.StatusError) as caught:
        call()
    assert caught.value.code == 422, caught.value.message
    return caught.value.message


def test_the_kind_is_served_with_its_names_and_subresources() -> None:
    assert (STATEFUL_SETS.api_version, STATEFUL_SETS.short_names, STATEFUL_SETS.categories) == ("apps/v1", ("sts",), ("all",))
    assert {s.name for s in STATEFUL_SETS.subresources} == {"status", "scale"}
    assert CONTROLLER_REVISIONS.api_version == "apps/v1" and CONTROLLER_REVISIONS.short_names == ()


async def test_a_stateful_set_gets_the_api_servers_defaults(world: World) -> None:
    stored = world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=None)).obj
    spec = stored["spec"]
    assert stored["metadata"]["generation"] == 1
    assert (spec["replicas"], spec["podManagementPolicy"], spec["revisionHistoryLimit"]) == (1, "OrderedReady", 10)
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    claim = spec["volumeClaimTemplates"][0]
    assert (claim["apiVersion"], claim["kind"], claim["spec"]["volumeMode"], claim["status"]) == ("v1", "PersistentVolumeClaim", "Filesystem", {"phase": "Pending"})
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    on_delete = world.registry.create(STATEFUL_SETS, NS, stateful_set("od", updateStrategy={"type": "OnDelete"})).obj
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_a_stateful_set_is_validated_as_the_api_server_does(world: World) -> None:
    message = invalid(lambda: world.registry.create(STATEFUL_SETS, NS, stateful_set(podManagementPolicy="Random", updateStrategy={"type": "Sometimes"})))
    assert "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'" in message
    assert "spec.updateStrategy.type: Invalid value: \"Sometimes\": must be 'RollingUpdate' or 'OnDelete'" in message
    message = invalid(lambda: world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=-1, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": -2}})))
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in message
    assert "spec.updateStrategy.rollingUpdate.partition: Invalid value: -2: must be greater than or equal to 0" in message
    bad_claim = stateful_set()
    bad_claim["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] = []
    assert "spec.volumeClaimTemplates[0].spec.accessModes: Required value" in invalid(lambda: world.registry.create(STATEFUL_SETS, NS, bad_claim))
    unmounted = stateful_set()
    unmounted["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = "nowhere"
    assert 'volumeMounts[0].name: Not found: "nowhere"' in invalid(lambda: world.registry.create(STATEFUL_SETS, NS, unmounted))
    empty = stateful_set()
    empty["spec"]["selector"] = {}
    assert "empty selector is invalid for statefulset" in invalid(lambda: world.registry.create(STATEFUL_SETS, NS, empty))
    policy = stateful_set(persistentVolumeClaimRetentionPolicy={"whenDeleted": "Keep"})
    assert 'spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Keep"' in invalid(lambda: world.registry.create(STATEFUL_SETS, NS, policy))


async def test_only_some_of_the_spec_may_change(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set())
    message = invalid(lambda: world.patch("web", {"spec": {"serviceName": "other"}}))
    assert "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy'" in message
    world.patch("web", {"spec": {"replicas": 3, "minReadySeconds": 1, "updateStrategy": {"rollingUpdate": {"partition": 1}}}})
    assert world.get(STATEFUL_SETS, "web")["metadata"]["generation"] == 2
    await world.settle()


async def test_the_columns_are_kubectls(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=2))
    await world.settle()
    now = datetime.now(UTC)
    printer = BY_KEY[STATEFUL_SETS.key].printer
    assert [(c.name, c.priority) for c in printer.columns] == [("Name", 0), ("Ready", 0), ("Age", 0), ("Containers", 1), ("Images", 1)]
    cells = printer.cells(world.get(STATEFUL_SETS, "web"), now)
    assert cells[:2] == ["web", "2/2"] and cells[3:] == ["nginx", "nginx:1.27"]
    revision = world.get(CONTROLLER_REVISIONS, world.names(CONTROLLER_REVISIONS)[0])
    revision_printer = BY_KEY[CONTROLLER_REVISIONS.key].printer
    assert [c.name for c in revision_printer.columns] == ["Name", "Controller", "Revision", "Age"]
    assert revision_printer.cells(revision, now)[1:3] == ["statefulset.apps/web", 1]


async def test_pods_come_up_in_order_with_their_identity_and_claims(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=3))
    await world.settle()
    assert world.names(PODS) == ["web-0", "web-1", "web-2"]
    assert world.names(PERSISTENT_VOLUME_CLAIMS) == ["www-web-0", "www-web-1", "www-web-2"]
    sts = world.get(STATEFUL_SETS, "web")
    [revision] = world.names(CONTROLLER_REVISIONS)
    assert world.get(CONTROLLER_REVISIONS, revision)["revision"] == 1
    assert sts["status"] == {
        "observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
        "currentRevision": revision, "updateRevision": revision, "collisionCount": 0, "availableReplicas": 3,
    }
    messages = [e["message"] for e in world.store.objects(EVENTS.key, NS)]
    assert "create Claim www-web-0 Pod web-0 in StatefulSet web success" in messages
    assert "create Pod web-2 in StatefulSet web successful" in messages


async def test_ordered_ready_waits_for_each_pod_and_parallel_does_not(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=1))
    await world.settle()
    world.set_ready("web-0", False)
    world.patch("web", {"spec": {"replicas": 3}})
    await world.settle()
    assert world.names(PODS) == ["web-0"]  # web-1 waits for web-0 to be ready
    world.set_ready("web-0", True)
    await world.settle()
    assert world.names(PODS) == ["web-0", "web-1", "web-2"]
    # scale-down: the highest ordinal first, and only once the others are healthy
    world.set_ready("web-0", False)
    world.patch("web", {"spec": {"replicas": 1}})
    await world.settle()
    assert world.names(PODS) == ["web-0", "web-1", "web-2"]
    world.set_ready("web-0", True)
    await world.settle()
    assert world.names(PODS) == ["web-0"]
    assert world.names(PERSISTENT_VOLUME_CLAIMS) == ["www-web-0", "www-web-1", "www-web-2"]  # claims are retained
    world.registry.create(STATEFUL_SETS, NS, stateful_set("par", replicas=1, podManagementPolicy="Parallel"))
    await world.settle()
    world.set_ready("par-0", False)
    world.patch("par", {"spec": {"replicas": 3}})
    await world.settle()
    assert [n for n in world.names(PODS) if n.startswith("par")] == ["par-0", "par-1", "par-2"]


async def test_a_template_change_rolls_through_the_pods_and_respects_the_partition(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=3, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}))
    await world.settle()
    first = world.get(STATEFUL_SETS, "web")["status"]["updateRevision"]
    world.patch("web", {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.28"}]}}}})
    await world.settle()
    status = world.get(STATEFUL_SETS, "web")["status"]
    second = status["updateRevision"]
    assert second != first and status["currentRevision"] == first
    assert world.revisions() == {"web-0": first, "web-1": second, "web-2": second}
    assert (status["updatedReplicas"], status["currentReplicas"]) == (2, 1)
    assert world.get(PODS, "web-1")["spec"]["containers"][0]["image"] == "nginx:1.28"
    # a deleted pod below the partition comes back at the current revision
    world.registry.delete(PODS, NS, "web-0")
    await world.settle()
    assert world.revisions()["web-0"] == first and world.get(PODS, "web-0")["spec"]["containers"][0]["image"] == "nginx:1.27"
    world.patch("web", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})
    await world.settle()
    status = world.get(STATEFUL_SETS, "web")["status"]
    assert set(world.revisions().values()) == {second} and status["currentRevision"] == second
    assert [world.get(CONTROLLER_REVISIONS, n)["revision"] for n in (first, second)] == [1, 2]


async def test_on_delete_only_uses_the_new_template_for_deleted_pods(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=2, updateStrategy={"type": "OnDelete"}))
    await world.settle()
    first = world.get(STATEFUL_SETS, "web")["status"]["updateRevision"]
    world.patch("web", {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.28"}]}}}})
    await world.settle()
    second = world.get(STATEFUL_SETS, "web")["status"]["updateRevision"]
    assert world.revisions() == {"web-0": first, "web-1": first}
    world.registry.delete(PODS, NS, "web-1")
    await world.settle()
    assert world.revisions() == {"web-0": first, "web-1": second}


async def test_going_back_renumbers_the_old_revision_and_the_history_is_limited(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=1, revisionHistoryLimit=1))
    await world.settle()
    for image in ("nginx:1.28", "nginx:1.29", "nginx:1.27"):
        world.patch("web", {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": image}]}}}})
        await world.settle()
    revisions = {world.get(CONTROLLER_REVISIONS, n)["revision"]: n for n in world.names(CONTROLLER_REVISIONS)}
    assert sorted(revisions) == [3, 4]  # 1.27 came back as revision 4; one old revision is kept
    assert world.get(STATEFUL_SETS, "web")["status"]["updateRevision"] == revisions[4]


async def test_failed_pods_are_replaced(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=1))
    await world.settle()
    uid = world.get(PODS, "web-0")["metadata"]["uid"]
    failed = world.get(PODS, "web-0")
    failed["status"]["phase"] = "Failed"
    world.registry.update(PODS, NS, "web-0", failed, subresource="status")
    await world.settle()
    assert world.get(PODS, "web-0")["metadata"]["uid"] != uid


async def test_deleting_the_set_keeps_its_claims_unless_the_policy_says_delete(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=2))
    await world.settle()
    world.registry.delete(STATEFUL_SETS, NS, "web")
    await world.settle()
    assert world.names(PODS) == [] and world.names(PERSISTENT_VOLUME_CLAIMS) == ["www-web-0", "www-web-1"]
    policy = {"whenDeleted": "Delete", "whenScaled": "Delete"}
    world.registry.create(STATEFUL_SETS, NS, stateful_set("db", replicas=3, persistentVolumeClaimRetentionPolicy=policy))
    await world.settle()
    world.patch("db", {"spec": {"replicas": 1}})
    await world.settle()
    assert [n for n in world.names(PERSISTENT_VOLUME_CLAIMS) if "db" in n] == ["www-db-0"]  # the scaled-down ones went
    world.registry.delete(STATEFUL_SETS, NS, "db")
    await world.settle()
    assert world.names(PERSISTENT_VOLUME_CLAIMS) == ["www-web-0", "www-web-1"]


async def test_orphaned_pods_are_adopted_by_a_new_set(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=2))
    await world.settle()
    uids = {n: world.get(PODS, n)["metadata"]["uid"] for n in ("web-0", "web-1")}
    world.registry.delete(STATEFUL_SETS, NS, "web", propagation="Orphan")
    await world.settle()
    assert world.names(PODS) == ["web-0", "web-1"] and "ownerReferences" not in world.get(PODS, "web-0")["metadata"]
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=2))
    await world.settle()
    new_uid = world.get(STATEFUL_SETS, "web")["metadata"]["uid"]
    assert {n: world.get(PODS, n)["metadata"]["uid"] for n in ("web-0", "web-1")} == uids  # the same pods
    assert all(world.get(PODS, n)["metadata"]["ownerReferences"][0]["uid"] == new_uid for n in uids)


async def test_available_replicas_wait_for_min_ready_seconds(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=1, minReadySeconds=1))
    await world.settle()
    assert world.get(STATEFUL_SETS, "web")["status"]["availableReplicas"] == 0
    deadline = time.monotonic() + 5
    while world.get(STATEFUL_SETS, "web")["status"]["availableReplicas"] != 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await world.settle()
    assert world.names(PODS) == ["web-0"]


async def test_a_controller_revision_needs_data_that_never_changes(world: World) -> None:
    assert "data: Required value: data is mandatory" in invalid(lambda: world.registry.create(CONTROLLER_REVISIONS, NS, {"metadata": {"name": "r"}}))
    assert "revision: Invalid value: -1" in invalid(lambda: world.registry.create(CONTROLLER_REVISIONS, NS, {"metadata": {"name": "r"}, "data": {}, "revision": -1}))
    stored = world.registry.create(CONTROLLER_REVISIONS, NS, {"metadata": {"name": "r"}, "data": {"a": 1}}).obj
    assert stored["revision"] == 0
    changed = {**stored, "data": {"a": 2}}
    assert "data: Forbidden: field is immutable" in invalid(lambda: world.registry.update(CONTROLLER_REVISIONS, NS, "r", changed))
    renumbered = world.registry.update(CONTROLLER_REVISIONS, NS, "r", {**stored, "revision": 7}).obj
    assert renumbered["revision"] == 7


async def test_ordinals_may_start_elsewhere(world: World) -> None:
    world.registry.create(STATEFUL_SETS, NS, stateful_set(replicas=2, ordinals={"start": 3}))
    await world.settle()
    assert world.names(PODS) == ["web-3", "web-4"]
    assert world.get(PODS, "web-3")["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "3"
    world.patch("web", {"spec": {"ordinals": {"start": 4}}})
    await world.settle()
    assert world.names(PODS) == ["web-4", "web-5"]
    assert world.names(PERSISTENT_VOLUME_CLAIMS) == ["www-web-3", "www-web-4", "www-web-5"]
