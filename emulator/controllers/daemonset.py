"""The DaemonSet controller (kube-controller-manager's pkg/controller/daemon): one pod per node that should
run it.

- Placement: a node runs the daemon pod when the template's nodeName (if any), nodeSelector and required
  node affinity match it and its NoSchedule/NoExecute taints are tolerated (the template's tolerations plus
  those every daemon pod gets). The emulator has one node, `emulator`; Nodes that clients create count too.
- Pods: `<set>-<5 random chars>`, pinned to their node by a required node affinity on `metadata.name` (and
  `nodeName`: there is no scheduler), with the daemon tolerations, labels `controller-revision-hash` and
  `pod-template-generation`. Failed pods are replaced; extra pods on a node and pods on nodes that should
  not run them are deleted.
- Updates: each template is a ControllerRevision `<set>-<hash>` (numbered, at most revisionHistoryLimit old
  ones kept). RollingUpdate replaces old pods within maxUnavailable (delete, then create) or maxSurge
  (create, then delete the old pod once the new one is available); OnDelete waits for pods to be deleted.
- status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
  updatedNumberScheduled, numberAvailable, numberUnavailable, observedGeneration, collisionCount.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from emulator import errors
from emulator.controllers.deployment import compute_hash
from emulator.controllers.replicaset import (
    available_in,
    copy_json,
    is_active,
    is_ready,
    owner_reference,
    owner_selector,
)
from emulator.controllers.statefulset import (
    SetController,
    equal_revisions,
    new_revision,
    revision_name,
    sort_revisions,
    template_patch,
)
from emulator.kinds import CONTROLLER_REVISIONS, DAEMON_SETS, NODES, PODS
from emulator.kinds.controllerrevision import CONTROLLER_REVISION_HASH_LABEL, revision_number
from emulator.kinds.daemonset import POD_TEMPLATE_GENERATION_LABEL, template_generation
from emulator.kinds.statefulset import ROLLING_UPDATE
from emulator.registry.registry import Registry
from emulator.scheduling import NAME_FIELD, selector_matches, untolerated_taint
from emulator.store.events import Event
from emulator.timestamps import parse_rfc3339

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
Obj = dict[str, Any]

COMPONENT = "daemonset-controller"
# AddOrUpdateDaemonPodTolerations: what every daemon pod tolerates (network-unavailable with hostNetwork)
DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", "NoSchedule")


# -- placement, pure --------------------------------------------------------------------------------


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """The pod's tolerations with the daemon ones added or replaced (AddOrUpdateTolerationInPodSpec)."""
    tolerations = [dict(t) for t in pod_spec.get("tolerations") or []]
    wanted = [*DAEMON_TOLERATIONS, *((NETWORK_UNAVAILABLE,) if pod_spec.get("hostNetwork") else ())]
    for key, effect in wanted:
        toleration = {"key": key, "operator": "Exists", "effect": effect}
        same = next((i for i, t in enumerate(tolerations) if t.get("key") == key and t.get("effect") == effect and t.get("operator") == "Exists" and not t.get("value")), None)
        if same is None:
            tolerations.append(toleration)
        else:
            tolerations[same] = toleration
    return tolerations


def node_affinity_for(affinity: Obj | None, node: str) -> Obj:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the required node terms become `metadata.name In [node]`."""
    result = copy_json(affinity or {})
    required = {"nodeSelectorTerms": [{"matchFields": [{"key": NAME_FIELD, "operator": "In", "values": [node]}]}]}
    result.setdefault("nodeAffinity", {})["requiredDuringSchedulingIgnoredDuringExecution"] = required
    return result


def should_run(pod_spec: Obj, node: Obj) -> bool:
    """NodeShouldRunDaemonPod: nodeName, nodeSelector, required node affinity and taints."""
    if pod_spec.get("nodeName") and pod_spec["nodeName"] != node["metadata"]["name"]:
        return False
    return selector_matches(pod_spec, node) and untolerated_taint(daemon_tolerations(pod_spec), node) is None


def node_of(pod: Obj) -> str | None:
    """The node a daemon pod is for: its nodeName, else its `metadata.name In [node]` affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == NAME_FIELD and field.get("operator") == "In" and len(field.get("values") or []) == 1:
                return str(field["values"][0])
    return None


def is_updated(pod: Obj, hash_: str, generation: int) -> bool:
    """IsPodUpdated: the pod carries the current template generation or revision hash."""
    labels = pod["metadata"].get("labels") or {}
    return (generation > 0 and labels.get(POD_TEMPLATE_GENERATION_LABEL) == str(generation)) or (bool(hash_) and labels.get(CONTROLLER_REVISION_HASH_LABEL) == hash_)


def scaled(value: int | str | None, total: int, default: int) -> int:
    """GetScaledValueFromIntOrPercent, rounding up."""
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return math.ceil(int(value.rstrip("%")) * total / 100)
        except ValueError:
            return default
    return int(value)


def _created(pod: Obj) -> float:
    parsed = parse_rfc3339(pod["metadata"].get("creationTimestamp"))
    return parsed.timestamp() if parsed is not None else 0.0


def oldest_first(pods: list[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: (_created(p), p["metadata"]["name"]))


def new_daemon_pod(ds: Obj, node: str, hash_: str) -> Obj:
    """CreatePodTemplate plus the node affinity: what the controller creates for `node`."""
    meta, spec = ds["metadata"], ds.get("spec") or {}
    template = spec.get("template") or {}
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {})
    labels[CONTROLLER_REVISION_HASH_LABEL] = hash_
    labels[POD_TEMPLATE_GENERATION_LABEL] = str(template_generation(ds) or 1)
    pod_meta: Obj = {"generateName": f"{meta['name']}-", "labels": labels}
    for field in ("annotations", "finalizers"):
        if template_meta.get(field):
            pod_meta[field] = copy_json(template_meta[field])
    pod_meta["ownerReferences"] = [owner_reference(DAEMON_SETS, ds)]
    pod_spec = copy_json(template.get("spec") or {})
    pod_spec["tolerations"] = daemon_tolerations(pod_spec)
    pod_spec["affinity"] = node_affinity_for(pod_spec.get("affinity"), node)
    pod_spec["nodeName"] = node  # no scheduler: the pod is bound where the affinity pins it
    return {"metadata": pod_meta, "spec": pod_spec}


def updated_and_old(pods: list[Obj], hash_: str, generation: int) -> tuple[Obj | None, Obj | None, bool]:
    """findUpdatedPodsOnNode: the node's new and old pod; False when it has two of either."""
    new: Obj | None = None
    old: Obj | None = None
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        if is_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_update_plan(ds: Obj, by_node: dict[str, list[Obj]], hash_: str, now: float) -> tuple[list[Obj], list[str]]:
    """rollingUpdate: the old pods to delete and the nodes to surge a new pod onto now."""
    spec = ds.get("spec") or {}
    rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
    desired = len(by_node)
    max_unavailable = scaled(rolling.get("maxUnavailable"), desired, 1)
    max_surge = scaled(rolling.get("maxSurge"), desired, 0)
    if max_unavailable == 0 and max_surge == 0:
        max_unavailable = 1
    min_ready = int(spec.get("minReadySeconds") or 0)
    generation = template_generation(ds)

    def available(pod: Obj) -> bool:
        return available_in(pod, min_ready, now) == 0

    to_delete: list[Obj] = []
    if max_surge == 0:
        unavailable = 0
        replacements: list[Obj] = []
        candidates: list[Obj] = []
        for node in sorted(by_node):
            new, old, ok = updated_and_old(by_node[node], hash_, generation)
            if not ok or (new is None) == (old is None):
                unavailable += 1
            elif new is not None:
                if not available(new):
                    unavailable += 1
            elif old is not None:
                if not available(old):
                    replacements.append(old)
                elif unavailable < max_unavailable:
                    candidates.append(old)
        room = min(max(max_unavailable - unavailable, 0), len(candidates))
        return replacements + candidates[:room], []
    surging = 0
    allowed: list[str] = []
    candidate_nodes: list[str] = []
    for node in sorted(by_node):
        new, old, ok = updated_and_old(by_node[node], hash_, generation)
        if not ok or old is None:
            continue
        if new is None:
            if not available(old):
                allowed.append(node)
            elif surging < max_surge:
                candidate_nodes.append(node)
        elif not available(new):
            surging += 1
        else:
            to_delete.append(old)
    room = min(max(max_surge - surging, 0), len(candidate_nodes))
    return to_delete, allowed + candidate_nodes[:room]


# -- the controller ----------------------------------------------------------------------------------


class DaemonSetController(SetController):
    kind = DAEMON_SETS

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry, "daemonset", COMPONENT)

    def apply(self, event: Event) -> None:
        if event.resource == NODES.key:
            for key in self._uid_of:  # a node came, went or changed its labels or taints
                self.queue.add(key)
        else:
            super().apply(event)

    # -- sync --------------------------------------------------------------------------------------

    def sync(self, key: Key) -> float | None:
        ns, name = key
        ds = self.store.get(DAEMON_SETS.key, ns, name)
        if ds is None:
            return None
        spec = ds.get("spec") or {}
        selector = owner_selector(DAEMON_SETS, spec)
        deleting = bool(ds["metadata"].get("deletionTimestamp"))
        revisions = sort_revisions(self.revisions.claim(ds, selector, deleting, lambda r: True))
        pods = self.pods.claim(ds, selector, deleting, lambda p: True)
        if deleting:
            return None
        current, old, collisions = self._history(ds, revisions)
        hash_ = str((current["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) or "")
        nodes = {n["metadata"]["name"]: n for n in self.store.objects(NODES.key)}
        template_spec = (spec.get("template") or {}).get("spec") or {}
        wanted = {n for n, node in nodes.items() if should_run(template_spec, node)}
        problem: errors.StatusError | None = None
        try:
            if not self._manage(ds, pods, wanted, hash_) and (spec.get("updateStrategy") or {}).get("type") == ROLLING_UPDATE:
                by_node = self._by_node(self._active_pods(ds), wanted)
                to_delete, surge_nodes = rolling_update_plan(ds, by_node, hash_, time.time())
                for pod in to_delete:
                    self._delete_pod(ds, pod)
                for node in surge_nodes:
                    self._create_pod(ds, node, hash_)
        except errors.StatusError as exc:
            problem = exc
        active = self._active_pods(ds)
        status, recheck = self._status(ds, active, nodes, wanted, hash_, collisions)
        if status != ds.get("status"):
            self.registry.replace_object(DAEMON_SETS, ds, {**ds, "status": status}, subresource="status")
        self._cleanup_history(ds, old, active)
        if problem is not None:
            raise problem
        return recheck

    def _active_pods(self, ds: Obj) -> list[Obj]:
        ns = ds["metadata"]["namespace"]
        found = (self.store.get(PODS.key, ns, n) for n in self.pods.index.owned(ds["metadata"]["uid"]))
        return [p for p in found if p is not None and is_active(p)]

    @staticmethod
    def _by_node(pods: list[Obj], nodes: set[str]) -> dict[str, list[Obj]]:
        by_node: dict[str, list[Obj]] = {n: [] for n in nodes}
        for pod in pods:
            node = node_of(pod)
            if node in by_node:
                by_node[node].append(pod)
        return by_node

    def _manage(self, ds: Obj, pods: list[Obj], wanted: set[str], hash_: str) -> bool:
        """manage: a pod on every node that should run one, none elsewhere, failed ones replaced.
        Returns whether it changed anything (the rolling update then waits for the next sync)."""
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        surge = scaled((strategy.get("rollingUpdate") or {}).get("maxSurge"), len(wanted), 0)
        rolling = strategy.get("type") == ROLLING_UPDATE
        generation = template_generation(ds)
        by_node: dict[str | None, list[Obj]] = {}
        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp"):
                by_node.setdefault(node_of(pod), []).append(pod)
        to_delete: list[Obj] = []
        to_create: list[str] = []
        for node, on_node in by_node.items():
            if node not in wanted:
                to_delete += on_node
        for node in sorted(wanted):
            on_node = by_node.get(node, [])
            running = [p for p in on_node if (p.get("status") or {}).get("phase") != "Failed"]
            to_delete += [p for p in on_node if (p.get("status") or {}).get("phase") == "Failed"]
            if not running:
                to_create.append(node)
            elif len(running) > 1:
                ordered = oldest_first(running)
                if rolling and surge > 0:
                    # keep the oldest updated pod and the oldest old one
                    keep = [next((p for p in ordered if is_updated(p, hash_, generation)), None), next((p for p in ordered if not is_updated(p, hash_, generation)), None)]
                    to_delete += [p for p in ordered if all(p is not k for k in keep)]
                else:
                    to_delete += ordered[1:]
        for pod in to_delete:
            self._delete_pod(ds, pod)
        for node in to_create:
            self._create_pod(ds, node, hash_)
        return bool(to_delete or to_create)

    def _create_pod(self, ds: Obj, node: str, hash_: str) -> None:
        ns = ds["metadata"]["namespace"]
        try:
            pod = self.registry.create(PODS, ns, new_daemon_pod(ds, node, hash_)).obj
        except errors.StatusError as exc:
            self.events.record(DAEMON_SETS, ds, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.pods.index.set(ns, pod["metadata"]["name"], ds["metadata"]["uid"])
        self.events.record(DAEMON_SETS, ds, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    def _delete_pod(self, ds: Obj, pod: Obj) -> None:
        ns, pod_meta = ds["metadata"]["namespace"], pod["metadata"]
        try:
            self.registry.delete(PODS, ns, pod_meta["name"], preconditions={"uid": pod_meta["uid"]})
        except errors.StatusError as exc:
            if exc.code == 404:
                return
            self.events.record(DAEMON_SETS, ds, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
            raise
        self.pods.index.remove(ns, pod_meta["name"])
        self.events.record(DAEMON_SETS, ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pod_meta['name']}")

    def _history(self, ds: Obj, revisions: list[Obj]) -> tuple[Obj, list[Obj], int]:
        """constructHistory: the revision of the current template (created, or renumbered to be the newest)
        and the old ones."""
        meta = ds["metadata"]
        collisions = int((ds.get("status") or {}).get("collisionCount") or 0)
        data = template_patch(ds)
        current_ones = equal_revisions(revisions, data)
        old = [r for r in revisions if all(r is not c for c in current_ones)]
        number = max((revision_number(r) for r in old), default=0) + 1
        if current_ones:
            current = current_ones[-1]  # (duplicates are left to the history limit)
            if revision_number(current) < number:
                renumbered = copy_json(current)
                renumbered["revision"] = number
                current = self.registry.replace_object(CONTROLLER_REVISIONS, current, renumbered).obj
            return current, old + current_ones[:-1], collisions
        while True:
            hash_ = compute_hash((ds.get("spec") or {}).get("template") or {}, collisions or None)
            name = revision_name(meta["name"], hash_)
            try:
                created = self.registry.create(CONTROLLER_REVISIONS, meta["namespace"], new_revision(DAEMON_SETS, ds, data, number, hash_, name)).obj
            except errors.StatusError as exc:
                if exc.code != 409:
                    raise
                existing = self.store.get(CONTROLLER_REVISIONS.key, meta["namespace"], name)
                if existing is not None and equal_revisions([existing], data):
                    return existing, old, collisions
                collisions += 1
                continue
            self.revisions.index.set(meta["namespace"], name, meta["uid"])
            return created, old, collisions

    def _cleanup_history(self, ds: Obj, old: list[Obj], pods: list[Obj]) -> None:
        """cleanupHistory: old revisions no pod uses, oldest first, beyond revisionHistoryLimit."""
        limit = int((ds.get("spec") or {}).get("revisionHistoryLimit") or 0)
        excess = len(old) - limit
        live = {(p["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) for p in pods}
        for revision in sort_revisions(old):
            if excess <= 0:
                break
            if (revision["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) in live:
                continue
            try:
                self.registry.delete(CONTROLLER_REVISIONS, ds["metadata"]["namespace"], revision["metadata"]["name"], preconditions={"uid": revision["metadata"]["uid"]})
            except errors.StatusError as exc:
                if exc.code != 404:
                    raise
            excess -= 1

    def _status(self, ds: Obj, pods: list[Obj], nodes: dict[str, Obj], wanted: set[str], hash_: str, collisions: int) -> tuple[Obj, float | None]:
        """updateDaemonSetStatus: counted per node, from its oldest pod."""
        spec = ds.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        generation = template_generation(ds)
        now = time.time()
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            node = node_of(pod)
            if node is not None:
                by_node.setdefault(node, []).append(pod)
        desired = current = misscheduled = ready = available = updated = 0
        recheck: float | None = None
        for node in nodes:
            on_node = by_node.get(node)
            if node not in wanted:
                misscheduled += bool(on_node)
                continue
            desired += 1
            if not on_node:
                continue
            current += 1
            pod = oldest_first(on_node)[0]
            if is_ready(pod):
                ready += 1
                wait = available_in(pod, min_ready, now)
                if wait == 0:
                    available += 1
                elif wait is not None:
                    recheck = wait if recheck is None else min(recheck, wait)
            updated += is_updated(pod, hash_, generation)
        status: Obj = {
            "currentNumberScheduled": current, "numberMisscheduled": misscheduled, "desiredNumberScheduled": desired,
            "numberReady": ready, "observedGeneration": ds["metadata"].get("generation") or 1,
        }
        for field, value in (("updatedNumberScheduled", updated), ("numberAvailable", available), ("numberUnavailable", desired - available), ("collisionCount", collisions)):
            if value:
                status[field] = value
        conditions = (ds.get("status") or {}).get("conditions")
        if conditions:
            status["conditions"] = conditions
        return status, (recheck + 0.05 if recheck is not None else None)

