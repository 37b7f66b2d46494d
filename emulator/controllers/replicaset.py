"""The ReplicaSet controller, for apps/v1 ReplicaSets and core/v1 ReplicationControllers alike (as in
kube-controller-manager, where the ReplicationController manager is the ReplicaSet controller run on
ReplicationControllers): keeps `spec.replicas` active pods from the template and reports on them.

Events only mark an owner dirty (emulator/controllers/workqueue.py); `sync` reads the owner and its pods
from the store and writes the difference through the registry:

- claim: pods whose controller reference names the owner are its own while its selector matches their
  labels, and are released (the reference removed) when it stops matching; orphans in its namespace
  that match are adopted (a controller reference with blockOwnerDeletion). An owner being deleted
  neither adopts nor releases.
- scale: missing pods are created from the template as `<owner>-<5 random chars>` (the API server's
  generateName), in slow-start batches (1, 2, 4, ... stopping at the first refusal), at most
  BURST_REPLICAS per sync; surplus pods are deleted in the order Kubernetes ranks them (unscheduled,
  pending, not ready, lower deletion cost, ready for less time, more restarts, newer first).
- status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready for minReadySeconds),
  observedGeneration, and a ReplicaFailure condition while pods cannot be created or deleted.

Pods are found through an index by controller uid (and orphans per namespace), kept from pod events and
from the controller's own writes, so a sync never scans a namespace and a 1,000-replica owner costs
one decode per pod per sync. The index only proposes candidates: the store decides.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import orjson

from emulator import errors
from emulator.controllers.events import EventRecorder
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import PODS, REPLICA_SETS, REPLICATION_CONTROLLERS, ResourceType
from emulator.labels import NOTHING, Selector, SelectorError, selector_from_label_selector, selector_from_map
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.timestamps import now_rfc3339, parse_rfc3339

log = logging.getLogger(__name__)

BURST_REPLICAS = 500  # creations or deletions per sync (the controller's burstReplicas)
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
OWNER_KINDS = {REPLICA_SETS.key: REPLICA_SETS, REPLICATION_CONTROLLERS.key: REPLICATION_CONTROLLERS}

Key = tuple[str, str, str]  # (resource key, namespace, name)


# -- helpers shared with the deployment controller and the garbage collector --------------------------


def controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The owner reference with `controller: true`, if any (metav1.GetControllerOf)."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_reference(rt: ResourceType, owner: dict[str, Any]) -> dict[str, Any]:
    """A controller reference to `owner` (metav1.NewControllerRef)."""
    meta = owner["metadata"]
    return {
        "apiVersion": rt.api_version, "kind": rt.kind, "name": meta["name"], "uid": meta["uid"],
        "controller": True, "blockOwnerDeletion": True,
    }


def copy_json(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def owner_selector(rt: ResourceType, spec: dict[str, Any]) -> Selector:
    """The selector of a ReplicaSet/Deployment (a LabelSelector) or of a ReplicationController (a map)."""
    selector = spec.get("selector")
    if rt is REPLICATION_CONTROLLERS:
        return selector_from_map(selector) if selector else NOTHING
    try:
        return selector_from_label_selector(selector)
    except SelectorError:
        return NOTHING


class OwnedIndex:
    """Objects of one kind in the namespaces, by the uid of their controller (`owned`) or without one
    (`orphans`, with their labels when known). Fed by events and by the controller's own writes."""

    _MISSING = object()

    def __init__(self) -> None:
        self._owner_of: dict[tuple[str, str], str | None] = {}
        self._owned: dict[str, set[str]] = {}
        self._orphans: dict[str, dict[str, dict[str, str] | None]] = {}

    def set(self, namespace: str, name: str, uid: str | None, labels: dict[str, str] | None = None) -> str | None:
        """Record the controller of an object; returns the previous one (None for an orphan or unknown)."""
        key = (namespace, name)
        previous = self._owner_of.get(key, self._MISSING)
        if previous is not self._MISSING and previous == uid:
            if uid is None:
                self._orphans[namespace][name] = labels
            return uid
        if previous is not self._MISSING:
            self._unlink(namespace, name, previous)  # type: ignore[arg-type]
        self._owner_of[key] = uid
        if uid is not None:
            self._owned.setdefault(uid, set()).add(name)
        else:
            self._orphans.setdefault(namespace, {})[name] = labels
        return None if previous is self._MISSING else previous  # type: ignore[return-value]

    def remove(self, namespace: str, name: str) -> str | None:
        previous = self._owner_of.pop((namespace, name), self._MISSING)
        if previous is self._MISSING:
            return None
        self._unlink(namespace, name, previous)  # type: ignore[arg-type]
        return previous  # type: ignore[return-value]

    def _unlink(self, namespace: str, name: str, uid: str | None) -> None:
        if uid is not None:
            names = self._owned.get(uid)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._owned[uid]
        else:
            orphans = self._orphans.get(namespace)
            if orphans is not None:
                orphans.pop(name, None)
                if not orphans:
                    del self._orphans[namespace]

    def owned(self, uid: str) -> list[str]:
        return list(self._owned.get(uid, ()))

    def orphans(self, namespace: str) -> list[tuple[str, dict[str, str] | None]]:
        return list(self._orphans.get(namespace, {}).items())

    def count(self, uid: str) -> int:
        return len(self._owned.get(uid, ()))


@dataclass(slots=True)
class OwnerInfo:
    key: Key
    uid: str
    selector: Selector


# -- pods --------------------------------------------------------------------------------------------


def is_active(pod: dict[str, Any]) -> bool:
    """controller.IsPodActive: not finished, not being deleted."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def ready_condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    condition = ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def available_in(pod: dict[str, Any], min_ready_seconds: int, now: float) -> float | None:
    """0 when the pod is available (ready for minReadySeconds), the seconds until it will be when it is
    ready but not for long enough, None when it is not ready."""
    condition = ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = parse_rfc3339(condition.get("lastTransitionTime"))
    if since is None:
        return None
    remaining = since.timestamp() + min_ready_seconds - now
    return 0.0 if remaining < 0 else remaining


def _timestamp(value: str | None) -> float | None:
    parsed = parse_rfc3339(value)
    return parsed.timestamp() if parsed is not None else None


def _deletion_cost(pod: dict[str, Any]) -> int:
    try:
        return int((pod["metadata"].get("annotations") or {}).get(DELETION_COST_ANNOTATION, 0))
    except ValueError:
        return 0


def _restarts(pod: dict[str, Any]) -> int:
    return max((int(cs.get("restartCount") or 0) for cs in (pod.get("status") or {}).get("containerStatuses") or []), default=0)


def _newer_first(a: dict[str, Any], b: dict[str, Any], ta: float | None, tb: float | None, now: float) -> int:
    """Order two pods by a time (unset first, then the more recent, in logarithmic buckets), ties by uid."""
    if ta is None or tb is None:
        return -1 if ta is None else 1
    da, db = _log_rank(ta, now), _log_rank(tb, now)
    if da != db:
        return -1 if da < db else 1
    return -1 if a["metadata"].get("uid", "") < b["metadata"].get("uid", "") else 1


def _log_rank(then: float, now: float) -> int:
    """logarithmicRankDiff's bucket: timestamps within the same power of two of age rank the same."""
    age = max(now - then, 0.0) * 1e9
    return int(math.log2(age)) if age >= 1 else 0


def rank_for_deletion(pods: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """The pods in the order the controller deletes them (controller.ActivePodsWithRanks, with the
    LogarithmicScaleDown feature on as in 1.32): the first ones go first."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}

    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        # 1. unassigned < assigned
        a_node, b_node = bool(a["spec"].get("nodeName")), bool(b["spec"].get("nodeName"))
        if a_node != b_node:
            return -1 if not a_node else 1
        # 2. Pending < Unknown < Running
        pa = phase_rank.get((a.get("status") or {}).get("phase", ""), 0)
        pb = phase_rank.get((b.get("status") or {}).get("phase", ""), 0)
        if pa != pb:
            return -1 if pa < pb else 1
        # 3. not ready < ready
        ra, rb = is_ready(a), is_ready(b)
        if ra != rb:
            return -1 if not ra else 1
        # 4. lower pod-deletion-cost < higher
        ca, cb = _deletion_cost(a), _deletion_cost(b)
        if ca != cb:
            return -1 if ca < cb else 1
        # 6. ready for less time < more time (in logarithmic buckets, ties broken by uid)
        if ra and rb:
            ta = _timestamp((ready_condition(a) or {}).get("lastTransitionTime"))
            tb = _timestamp((ready_condition(b) or {}).get("lastTransitionTime"))
            if ta != tb:
                return _newer_first(a, b, ta, tb, now)
        # 7. more restarts < fewer
        xa, xb = _restarts(a), _restarts(b)
        if xa != xb:
            return -1 if xa > xb else 1
        # 8. newer < older (logarithmic buckets, ties broken by uid)
        ta, tb = _timestamp(a["metadata"].get("creationTimestamp")), _timestamp(b["metadata"].get("creationTimestamp"))
        if ta != tb:
            return _newer_first(a, b, ta, tb, now)
        return 0

    return sorted(pods, key=functools.cmp_to_key(compare))


# -- the controller ----------------------------------------------------------------------------------


class ReplicaSetController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.queue: WorkQueue[Key] = WorkQueue("replicaset", self.sync)
        self.pods = OwnedIndex()
        self._by_uid: dict[str, Key] = {}
        self._by_namespace: dict[str, dict[Key, OwnerInfo]] = {}
        self._info: dict[Key, OwnerInfo] = {}
        self.events = {
            REPLICA_SETS.key: EventRecorder(registry, "replicaset-controller"),
            REPLICATION_CONTROLLERS.key: EventRecorder(registry, "replication-controller"),
        }

    # -- events ------------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            self._on_pod(event)
        elif event.resource in OWNER_KINDS:
            self._on_owner(event, OWNER_KINDS[event.resource])

    def _enqueue_uid(self, uid: str) -> None:
        key = self._by_uid.get(uid)
        if key is not None:
            self.queue.add(key)

    def _on_pod(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        if event.type == DELETED:
            previous = self.pods.remove(ns, name)
            if previous:
                self._enqueue_uid(previous)
            return
        uid: str | None = None
        if b'"ownerReferences"' in event.raw:
            ref = controller_ref(event.obj)
            uid = ref.get("uid") if ref else None
        owners = self._by_namespace.get(ns) if uid is None else None
        labels = (event.obj["metadata"].get("labels") or {}) if owners else None
        previous = self.pods.set(ns, name, uid, labels)
        if uid:
            self._enqueue_uid(uid)
        if previous and previous != uid:
            self._enqueue_uid(previous)
        if owners and labels is not None:
            # an orphan: the owners whose selector matches may adopt it
            for info in owners.values():
                if info.selector.matches(labels):
                    self.queue.add(info.key)

    def _on_owner(self, event: Event, rt: ResourceType) -> None:
        key: Key = (event.resource, event.namespace, event.name)
        old = self._info.pop(key, None)
        if old is not None:
            self._by_uid.pop(old.uid, None)
            self._by_namespace.get(event.namespace, {}).pop(key, None)
        if event.type == DELETED:
            self.queue.forget(key)
            if old is not None:
                self.events[event.resource].forget(old.uid)
            return
        obj = event.obj
        info = OwnerInfo(key, obj["metadata"].get("uid", ""), owner_selector(rt, obj.get("spec") or {}))
        self._info[key] = info
        self._by_uid[info.uid] = key
        self._by_namespace.setdefault(event.namespace, {})[key] = info
        self.queue.add(key)

    # -- sync --------------------------------------------------------------------------------------

    def sync(self, key: Key) -> float | None:
        resource, ns, name = key
        rt = OWNER_KINDS[resource]
        owner = self.store.get(resource, ns, name)
        if owner is None:
            return None
        meta, spec = owner["metadata"], owner.get("spec") or {}
        deleting = bool(meta.get("deletionTimestamp"))
        selector = owner_selector(rt, spec)
        pods = self._claim(rt, owner, selector, deleting)
        active = [p for p in pods if is_active(p)]
        problem: errors.StatusError | None = None
        if not deleting:
            problem = self._manage(rt, owner, active)
        status, recheck = self._status(owner, active, problem)
        if status != owner.get("status"):
            self.registry.replace_object(rt, owner, {**owner, "status": status}, subresource="status")
        if problem is not None:
            raise problem  # retried with backoff by the queue
        return recheck

    def _claim(self, rt: ResourceType, owner: dict[str, Any], selector: Selector, deleting: bool) -> list[dict[str, Any]]:
        """ClaimPods: the owner's pods, after adopting matching orphans and releasing non-matching pods."""
        meta = owner["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        claimed: list[dict[str, Any]] = []
        for name in self.pods.owned(uid):
            pod = self.store.get(PODS.key, ns, name)
            if pod is None:
                self.pods.remove(ns, name)
                continue
            ref = controller_ref(pod)
            if ref is None or ref.get("uid") != uid:
                self.pods.set(ns, name, ref.get("uid") if ref else None, pod["metadata"].get("labels") or {})
                continue
            if selector.matches(pod["metadata"].get("labels")):
                claimed.append(pod)
            elif not deleting and not pod["metadata"].get("deletionTimestamp"):
                self._release(pod, uid)
        if deleting or selector.is_nothing:
            return claimed
        for name, labels in self.pods.orphans(ns):
            if labels is not None and not selector.matches(labels):
                continue
            pod = self.store.get(PODS.key, ns, name)
            if pod is None:
                self.pods.remove(ns, name)
                continue
            ref = controller_ref(pod)
            labels = pod["metadata"].get("labels") or {}
            if ref is not None:
                self.pods.set(ns, name, ref.get("uid"))
                continue
            self.pods.set(ns, name, None, labels)
            if pod["metadata"].get("deletionTimestamp") or not selector.matches(labels):
                continue
            adopted = self._adopt(rt, owner, pod)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    def _adopt(self, rt: ResourceType, owner: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any] | None:
        new = copy_json(pod)
        new["metadata"].setdefault("ownerReferences", []).append(owner_reference(rt, owner))
        try:
            stored = self.registry.replace_object(PODS, pod, new).obj
        except errors.StatusError as exc:
            log.debug("could not adopt pod %s/%s: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], exc)
            return None
        self.pods.set(stored["metadata"]["namespace"], stored["metadata"]["name"], owner["metadata"]["uid"])
        return stored

    def _release(self, pod: dict[str, Any], uid: str) -> None:
        new = copy_json(pod)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        try:
            self.registry.replace_object(PODS, pod, new)
        except errors.StatusError as exc:
            log.debug("could not release pod %s/%s: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], exc)
            return
        self.pods.set(pod["metadata"]["namespace"], pod["metadata"]["name"], None, pod["metadata"].get("labels") or {})

    def _manage(self, rt: ResourceType, owner: dict[str, Any], active: list[dict[str, Any]]) -> errors.StatusError | None:
        """manageReplicas: create or delete pods (at most BURST_REPLICAS per sync); the first refusal
        stops the sync and is reported."""
        meta, spec = owner["metadata"], owner.get("spec") or {}
        ns, uid = meta["namespace"], meta["uid"]
        replicas = spec.get("replicas")
        diff = len(active) - (1 if replicas is None else int(replicas))
        if diff < 0:
            wanted = min(-diff, BURST_REPLICAS)
            template = spec.get("template") or {}
            template_meta = template.get("metadata") or {}
            pod_meta: dict[str, Any] = {"generateName": f"{meta['name']}-", "labels": dict(template_meta.get("labels") or {})}
            for field in ("annotations", "finalizers"):
                if template_meta.get(field):
                    pod_meta[field] = template_meta[field]
            pod_meta["ownerReferences"] = [owner_reference(rt, owner)]
            body = orjson.dumps({"metadata": pod_meta, "spec": template.get("spec") or {}})
            events = self.events[rt.key]
            created, batch = 0, 1
            while created < wanted:  # slow start: 1, 2, 4, ... stopping at the first refusal
                for _ in range(min(batch, wanted - created)):
                    try:
                        pod = self.registry.create(PODS, ns, orjson.loads(body)).obj
                    except errors.StatusError as exc:
                        events.record(rt, owner, "Warning", "FailedCreate", f"Error creating: {exc.message}")
                        return exc
                    self.pods.set(ns, pod["metadata"]["name"], uid)
                    events.record(rt, owner, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
                    created += 1
                batch *= 2
        elif diff > 0:
            for pod in rank_for_deletion(active, time.time())[: min(diff, BURST_REPLICAS)]:
                pod_meta = pod["metadata"]
                try:
                    self.registry.delete(PODS, ns, pod_meta["name"], preconditions={"uid": pod_meta["uid"]})
                except errors.StatusError as exc:
                    if exc.code != 404:
                        self.events[rt.key].record(rt, owner, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
                        return exc
                else:
                    self.events[rt.key].record(rt, owner, "Normal", "SuccessfulDelete", f"Deleted pod: {pod_meta['name']}")
                self.pods.remove(ns, pod_meta["name"])
        return None

    def _status(
        self, owner: dict[str, Any], active: list[dict[str, Any]], problem: errors.StatusError | None
    ) -> tuple[dict[str, Any], float | None]:
        """calculateStatus; and when to look again for pods that become available later."""
        meta, spec = owner["metadata"], owner.get("spec") or {}
        old = owner.get("status") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = selector_from_map(((spec.get("template") or {}).get("metadata") or {}).get("labels"))
        now = time.time()
        fully = ready = available = 0
        recheck: float | None = None
        for pod in active:
            if template_labels.matches(pod["metadata"].get("labels")):
                fully += 1
            wait = available_in(pod, min_ready, now)
            if wait is None:
                continue
            ready += 1
            if wait == 0:
                available += 1
            else:
                recheck = wait if recheck is None else min(recheck, wait)
        status: dict[str, Any] = {"replicas": len(active)}
        for field, value in (("fullyLabeledReplicas", fully), ("readyReplicas", ready), ("availableReplicas", available)):
            if value:
                status[field] = value
        if meta.get("generation"):
            status["observedGeneration"] = meta["generation"]
        conditions = [dict(c) for c in old.get("conditions") or []]
        failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
        if problem is not None and failure is None:
            diff = len(active) - int(spec.get("replicas") or 0)
            reason = "FailedCreate" if diff < 0 else "FailedDelete"
            conditions.append({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": now_rfc3339(), "reason": reason, "message": problem.message})
        elif problem is None and failure is not None:
            conditions.remove(failure)
        if conditions:
            status["conditions"] = conditions
        return status, (recheck + 0.05 if recheck is not None else None)
