"""The StatefulSet controller (kube-controller-manager's pkg/controller/statefulset): pods with a stable
identity, `<set>-<ordinal>`, each with its own claims, created, replaced and removed in order.

- Identity: pod `<set>-<ordinal>` (ordinals from `spec.ordinals.start`, 0 by default) with `hostname` its
  name and `subdomain` the set's `serviceName` (so a headless Service of that name answers
  `web-0.nginx.<ns>.svc.<zone>`), labels `statefulset.kubernetes.io/pod-name`,
  `apps.kubernetes.io/pod-index` and `controller-revision-hash` (the name of its revision).
- Storage: each volumeClaimTemplate gives the pod a claim `<template>-<set>-<ordinal>`, created before the
  pod and kept after it (persistentVolumeClaimRetentionPolicy Retain/Retain). With `whenDeleted: Delete`
  the claims name the set as their owner, with `whenScaled: Delete` a pod removed by a scale-down becomes
  their owner: the garbage collector removes them then.
- OrderedReady: a pod is created only when every lower ordinal runs and is ready (and available for
  minReadySeconds); scale-down removes the highest ordinal first, one at a time, once all are healthy.
  Parallel: all at once.
- Updates: the pod template is snapshotted in ControllerRevisions `<set>-<hash>` (numbered, at most
  revisionHistoryLimit old ones kept). RollingUpdate deletes, highest ordinal first, one pod at a time,
  the pods at or above `partition` whose revision is not the update revision; the pod comes back from
  the new template. OnDelete only uses the new template for pods deleted by someone else.
- status: replicas, readyReplicas, currentReplicas, updatedReplicas, availableReplicas, currentRevision,
  updateRevision, observedGeneration, collisionCount; SuccessfulCreate / SuccessfulDelete events.

The revision history helpers (`template_patch`, `revision_hash`, ...) are shared with the DaemonSet
controller: a revision's data is the strategic merge patch `kubectl rollout undo` sends back.
As the other workload controllers, it syncs from a work queue (emulator/controllers/workqueue.py);
pods and revisions are found through indexes by controller uid, never a scan.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from emulator import errors
from emulator.controllers.replicaset import (
    EventRecorder,
    OwnedIndex,
    available_in,
    controller_ref,
    copy_json,
    is_ready,
    owner_reference,
    owner_selector,
)
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS, PODS, STATEFUL_SETS, ResourceType
from emulator.kinds.controllerrevision import CONTROLLER_REVISION_HASH_LABEL, revision_number
from emulator.kinds.statefulset import (
    DELETE,
    ON_DELETE,
    PARALLEL,
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    ROLLING_UPDATE,
)
from emulator.labels import Selector
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.validation import GENERATE_ALPHABET

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
Obj = dict[str, Any]

COMPONENT = "statefulset-controller"
MAX_PREFIX = 223  # ControllerRevisionName: `<owner>-<hash>` stays a valid name
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")
_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"), ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


# -- history (pkg/controller/history), shared with the DaemonSet controller ------------------------------


def go_json(value: Any) -> bytes:
    """encoding/json.Marshal of a decoded JSON value: map keys sorted, compact, HTML characters escaped."""
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    for raw, escaped in _GO_ESCAPES:
        data = data.replace(raw, escaped)
    return data


def template_patch(owner: Obj) -> Obj:
    """A revision's `data` (getPatch in both controllers): the patch that puts the owner's pod template back,
    keys sorted as Go writes them, the template's metadata as a typed Go object encodes it."""
    template = copy_json(((owner.get("spec") or {}).get("template")) or {})
    template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    template["$patch"] = "replace"
    result: Obj = orjson.loads(go_json({"spec": {"template": template}}))
    return result


def template_of(revision: Obj) -> Obj:
    """The pod template a revision holds (the set with the revision applied, as ApplyRevision gives it)."""
    template = copy_json((((revision.get("data") or {}).get("spec")) or {}).get("template") or {})
    template.pop("$patch", None)
    meta = template.get("metadata")
    if isinstance(meta, dict) and meta.get("creationTimestamp") is None:
        meta.pop("creationTimestamp", None)
    return template


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: every character mapped into the API server's alphabet (no vowels)."""
    return "".join(GENERATE_ALPHABET[ord(c) % len(GENERATE_ALPHABET)] for c in text)


def fnv1_32(payload: bytes) -> int:
    """hash/fnv.New32: FNV-1 (multiply, then xor), not the FNV-1a of the pod-template hash."""
    h = 0x811C9DC5
    for byte in payload:
        h = ((h * 0x01000193) & 0xFFFFFFFF) ^ byte
    return h


def revision_hash(data: Any, collision_count: int | None) -> str:
    """HashControllerRevision: FNV-32 of the data's bytes and the collision count, spelled safely."""
    payload = go_json(data)
    if collision_count is not None:
        payload += str(collision_count).encode()
    return safe_encode(str(fnv1_32(payload)))


def revision_name(owner_name: str, hash_: str) -> str:
    """ControllerRevisionName: `<owner>-<hash>`."""
    return f"{owner_name[:MAX_PREFIX]}-{hash_}"


def sort_revisions(revisions: list[Obj]) -> list[Obj]:
    """history.SortControllerRevisions: by revision number, then creation time, then name."""
    return sorted(revisions, key=lambda r: (revision_number(r), r["metadata"].get("creationTimestamp") or "", r["metadata"]["name"]))


def next_revision(revisions: list[Obj]) -> int:
    return max((revision_number(r) for r in revisions), default=0) + 1


def equal_revisions(revisions: list[Obj], data: Any) -> list[Obj]:
    """history.FindEqualRevisions: those whose data is the same (as bytes, once encoded)."""
    wanted = go_json(data)
    return [r for r in revisions if go_json(r.get("data")) == wanted]


def new_revision(owner_rt: ResourceType, owner: Obj, data: Obj, number: int, hash_: str, name: str) -> Obj:
    """A ControllerRevision of `owner` (history.NewControllerRevision): the template's labels plus the
    hash, the owner's annotations (a change-cause among them), a controller reference."""
    meta, spec = owner["metadata"], owner.get("spec") or {}
    labels = dict(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[CONTROLLER_REVISION_HASH_LABEL] = hash_
    revision_meta: Obj = {"name": name, "namespace": meta["namespace"], "labels": labels, "ownerReferences": [owner_reference(owner_rt, owner)]}
    if meta.get("annotations"):
        revision_meta["annotations"] = dict(meta["annotations"])
    return {"metadata": revision_meta, "data": data, "revision": number}


def dead_history(revisions: list[Obj], live: set[str], limit: int) -> list[Obj]:
    """truncateHistory: the oldest revisions nobody uses beyond the limit (revisions sorted oldest first)."""
    history = [r for r in revisions if r["metadata"]["name"] not in live]
    return history[: max(len(history) - limit, 0)]


# -- identity and decisions, pure ----------------------------------------------------------------------


def pod_name(set_name: str, ordinal: int) -> str:
    return f"{set_name}-{ordinal}"


def claim_name(template_name: str, set_name: str, ordinal: int) -> str:
    return f"{template_name}-{set_name}-{ordinal}"


def parent_and_ordinal(name: str) -> tuple[str, int] | None:
    """getParentNameAndOrdinal: `web-2` -> ("web", 2); None for a name without an ordinal."""
    match = _ORDINAL.match(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def ordinal_of(pod: Obj, set_name: str) -> int | None:
    found = parent_and_ordinal(pod["metadata"]["name"])
    return found[1] if found is not None and found[0] == set_name else None


def start_ordinal(spec: Obj) -> int:
    return int((spec.get("ordinals") or {}).get("start") or 0)


def replicas_of(spec: Obj) -> int:
    value = spec.get("replicas")
    return 1 if value is None else int(value)


def partition_of(spec: Obj) -> int:
    strategy = spec.get("updateStrategy") or {}
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def uses_current_revision(spec: Obj, ordinal: int) -> bool:
    """newVersionedStatefulSetPod: under RollingUpdate, a pod below the partition is made from the current
    revision; every other pod from the update revision."""
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", ROLLING_UPDATE) != ROLLING_UPDATE:
        return False
    return ordinal < start_ordinal(spec) + partition_of(spec)


def pod_revision(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) or "")


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


def is_healthy(pod: Obj) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def is_finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def rolling_update_target(spec: Obj, slots: dict[int, Obj], update_revision: str) -> tuple[str, Obj | None]:
    """Which pod the RollingUpdate strategy replaces now: ("delete", pod) for the highest ordinal at or above
    the partition not at the update revision, ("wait", None) when an unhealthy pod comes first, ("done", None)."""
    start, replicas = start_ordinal(spec), replicas_of(spec)
    for ordinal in range(start + replicas - 1, start + partition_of(spec) - 1, -1):
        pod = slots.get(ordinal)
        if pod is None:
            return "wait", None
        if pod_revision(pod) != update_revision and not is_terminating(pod):
            return "delete", pod
        if not is_healthy(pod):
            return "wait", None
    return "done", None


def new_pod(owner: Obj, template: Obj, ordinal: int, revision: str) -> Obj:
    """newStatefulSetPod: the template with the pod's identity (name, hostname, subdomain, labels), its
    claims as volumes (before the template's other volumes) and a controller reference."""
    meta, spec = owner["metadata"], owner.get("spec") or {}
    template_meta = template.get("metadata") or {}
    name = pod_name(meta["name"], ordinal)
    labels = dict(template_meta.get("labels") or {})
    labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), CONTROLLER_REVISION_HASH_LABEL: revision})
    pod_meta: Obj = {"name": name, "labels": labels}
    for field in ("annotations", "finalizers"):
        if template_meta.get(field):
            pod_meta[field] = copy_json(template_meta[field])
    pod_meta["ownerReferences"] = [owner_reference(STATEFUL_SETS, owner)]
    pod_spec = copy_json(template.get("spec") or {})
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    claims = claim_templates(spec)
    volumes = [
        {"name": template_name, "persistentVolumeClaim": {"claimName": claim_name(template_name, meta["name"], ordinal)}}
        for template_name in claims
    ]
    volumes += [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claims]
    if volumes:
        pod_spec["volumes"] = volumes
    return {"metadata": pod_meta, "spec": pod_spec}


def claim_templates(spec: Obj) -> dict[str, Obj]:
    return {str((c.get("metadata") or {}).get("name") or ""): c for c in spec.get("volumeClaimTemplates") or []}


def new_claim(owner: Obj, template: Obj, ordinal: int) -> Obj:
    """getPersistentVolumeClaims: the template named for the pod, with the set's selector labels."""
    meta, spec = owner["metadata"], owner.get("spec") or {}
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {})
    labels.update((spec.get("selector") or {}).get("matchLabels") or {})
    claim_meta: Obj = {"name": claim_name(str(template_meta.get("name") or ""), meta["name"], ordinal), "namespace": meta["namespace"]}
    if labels:
        claim_meta["labels"] = labels
    if template_meta.get("annotations"):
        claim_meta["annotations"] = dict(template_meta["annotations"])
    return {"metadata": claim_meta, "spec": copy_json(template.get("spec") or {})}


def claim_owners(refs: list[Obj], owner: Obj, pod: Obj | None, in_range: bool) -> list[Obj]:
    """updateClaimOwnerRefForSetAndPod: the claim's owner references under the set's retention policy."""
    policy = (owner.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    when_deleted, when_scaled = policy.get("whenDeleted") == DELETE, policy.get("whenScaled") == DELETE
    set_uid = owner["metadata"]["uid"]
    pod_uid = pod["metadata"].get("uid") if pod is not None else None
    kept = [r for r in refs if r.get("uid") not in (set_uid, pod_uid)]
    by_set = when_deleted and (in_range or not when_scaled)
    by_pod = when_scaled and not in_range and pod is not None
    if by_set:
        kept.append(owner_reference(STATEFUL_SETS, owner))
    if by_pod and pod is not None:
        kept.append({"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]})
    return kept


# -- claiming dependents (ClaimPods / ClaimControllerRevisions) ---------------------------------------------


class Dependents:
    """The objects of one kind a workload controls, through an OwnedIndex: adopts matching orphans (those
    `member` accepts) and releases controlled objects its selector no longer matches."""

    def __init__(self, registry: Registry, owner_rt: ResourceType, rt: ResourceType) -> None:
        self.registry = registry
        self.store = registry.store
        self.owner_rt = owner_rt
        self.rt = rt
        self.index = OwnedIndex()

    def on_event(self, event: Event, enqueue_uid: Callable[[str], None], orphan: Callable[[str, dict[str, str]], None]) -> None:
        ns, name = event.namespace, event.name
        if event.type == DELETED:
            previous = self.index.remove(ns, name)
            if previous:
                enqueue_uid(previous)
            return
        ref = controller_ref(event.obj)
        if ref is not None and (ref.get("kind"), ref.get("apiVersion")) != (self.owner_rt.kind, self.owner_rt.api_version):
            # another kind's (a ReplicaSet's pod): not indexed, so a cluster of Deployments costs nothing here
            previous = self.index.remove(ns, name)
            if previous:
                enqueue_uid(previous)
            return
        uid = ref.get("uid") if ref else None
        labels = event.obj["metadata"].get("labels") or {}
        previous = self.index.set(ns, name, uid, labels if uid is None else None)
        if uid:
            enqueue_uid(uid)
        if previous and previous != uid:
            enqueue_uid(previous)
        if uid is None:
            orphan(ns, labels)

    def claim(self, owner: Obj, selector: Selector, deleting: bool, member: Callable[[Obj], bool]) -> list[Obj]:
        meta = owner["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        claimed: list[Obj] = []
        for name in self.index.owned(uid):
            obj = self.store.get(self.rt.key, ns, name)
            if obj is None:
                self.index.remove(ns, name)
                continue
            ref = controller_ref(obj)
            if ref is None or ref.get("uid") != uid:
                self.index.set(ns, name, ref.get("uid") if ref else None, obj["metadata"].get("labels") or {})
                continue
            if selector.matches(obj["metadata"].get("labels")):
                claimed.append(obj)
            elif not deleting and not obj["metadata"].get("deletionTimestamp"):
                self._write(obj, [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid], None)
        if deleting or selector.is_nothing:
            return claimed
        for name, labels in self.index.orphans(ns):
            if labels is not None and not selector.matches(labels):
                continue
            obj = self.store.get(self.rt.key, ns, name)
            if obj is None or controller_ref(obj) is not None or obj["metadata"].get("deletionTimestamp"):
                continue
            if not selector.matches(obj["metadata"].get("labels")) or not member(obj):
                continue
            refs = [*(obj["metadata"].get("ownerReferences") or []), owner_reference(self.owner_rt, owner)]
            adopted = self._write(obj, refs, uid)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    def _write(self, obj: Obj, refs: list[Obj], uid: str | None) -> Obj | None:
        new = copy_json(obj)
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        meta = obj["metadata"]
        try:
            stored = self.registry.replace_object(self.rt, obj, new).obj
        except errors.StatusError as exc:
            log.debug("could not adopt or release %s %s/%s: %s", self.rt.key, meta["namespace"], meta["name"], exc)
            return None
        self.index.set(meta["namespace"], meta["name"], uid, None if uid else meta.get("labels") or {})
        return stored


# -- the controller ----------------------------------------------------------------------------------


class SetController:
    """What the StatefulSet and DaemonSet controllers share: the sets they run, known by key, by uid and by
    selector per namespace, so that an event of a pod or a ControllerRevision enqueues the set that owns it
    or may adopt it, and the set's own events enqueue it."""

    kind: ResourceType

    def __init__(self, registry: Registry, name: str, component: str) -> None:
        self.registry = registry
        self.store = registry.store
        self.queue: WorkQueue[Key] = WorkQueue(name, self.sync)
        self.pods = Dependents(registry, self.kind, PODS)
        self.revisions = Dependents(registry, self.kind, CONTROLLER_REVISIONS)
        self._by_uid: dict[str, Key] = {}
        self._uid_of: dict[Key, str] = {}
        self._selectors: dict[str, dict[Key, Selector]] = {}  # namespace -> set -> its selector
        self.events = EventRecorder(registry, component)

    def sync(self, key: Key) -> float | None:
        raise NotImplementedError

    # -- events ------------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            self.pods.on_event(event, self._enqueue_uid, self._enqueue_matching)
        elif event.resource == CONTROLLER_REVISIONS.key:
            self.revisions.on_event(event, self._enqueue_uid, self._enqueue_matching)
        elif event.resource == self.kind.key:
            self._on_set(event)

    def _enqueue_uid(self, uid: str) -> None:
        key = self._by_uid.get(uid)
        if key is not None:
            self.queue.add(key)

    def _enqueue_matching(self, namespace: str, labels: dict[str, str]) -> None:
        for key, selector in self._selectors.get(namespace, {}).items():
            if selector.matches(labels):
                self.queue.add(key)

    def _on_set(self, event: Event) -> None:
        key: Key = (event.namespace, event.name)
        old_uid = self._uid_of.pop(key, None)
        if old_uid is not None:
            self._by_uid.pop(old_uid, None)
            self._selectors.get(event.namespace, {}).pop(key, None)
        if event.type == DELETED:
            self.queue.forget(key)
            if old_uid is not None:
                self.events.forget(old_uid)
            return
        uid = event.obj["metadata"].get("uid", "")
        self._uid_of[key] = uid
        self._by_uid[uid] = key
        self._selectors.setdefault(event.namespace, {})[key] = owner_selector(self.kind, event.obj.get("spec") or {})
        self.queue.add(key)


class StatefulSetController(SetController):
    kind = STATEFUL_SETS

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry, "statefulset", COMPONENT)

    # -- sync --------------------------------------------------------------------------------------

    def sync(self, key: Key) -> float | None:
        ns, name = key
        sts = self.store.get(STATEFUL_SETS.key, ns, name)
        if sts is None:
            return None
        spec = sts.get("spec") or {}
        selector = owner_selector(STATEFUL_SETS, spec)
        deleting = bool(sts["metadata"].get("deletionTimestamp"))
        revisions = sort_revisions(self.revisions.claim(sts, selector, deleting, lambda r: True))
        pods = self.pods.claim(sts, selector, deleting, lambda p: ordinal_of(p, name) is not None)
        if deleting:
            return None
        current, update, collisions = self._history(sts, revisions)
        problem: errors.StatusError | None = None
        try:
            self._update_pods(sts, pods, current, update)
        except errors.StatusError as exc:
            problem = exc
        pods = [p for p in (self.store.get(PODS.key, ns, n) for n in self.pods.index.owned(sts["metadata"]["uid"])) if p is not None]
        status, recheck = self._status(sts, pods, current, update, collisions)
        if status != sts.get("status"):
            self.registry.replace_object(STATEFUL_SETS, sts, {**sts, "status": status}, subresource="status")
        live = {current["metadata"]["name"], update["metadata"]["name"], *(pod_revision(p) for p in pods)}
        revisions = sort_revisions([r for r in (self.store.get(CONTROLLER_REVISIONS.key, ns, n) for n in self.revisions.index.owned(sts["metadata"]["uid"])) if r is not None])
        for revision in dead_history(revisions, live, int(spec.get("revisionHistoryLimit") or 0)):
            try:
                self.registry.delete(CONTROLLER_REVISIONS, ns, revision["metadata"]["name"], preconditions={"uid": revision["metadata"]["uid"]})
            except errors.StatusError as exc:
                if exc.code != 404:
                    raise
        if problem is not None:
            raise problem  # retried with backoff by the queue
        return recheck

    def _history(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """getStatefulSetRevisions: the current and update revisions (created or renumbered as needed)."""
        status = sts.get("status") or {}
        collisions = int(status.get("collisionCount") or 0)
        data = template_patch(sts)
        number = next_revision(revisions)
        equal = equal_revisions(revisions, data)
        if equal and equal[-1] is revisions[-1]:
            update = revisions[-1]
        elif equal:
            # back to an older template (`rollout undo`): that revision becomes the newest
            renumbered = copy_json(equal[-1])
            renumbered["revision"] = number
            update = self.registry.replace_object(CONTROLLER_REVISIONS, equal[-1], renumbered).obj
        else:
            update, collisions = self._create_revision(sts, data, number, collisions)
        current_name = status.get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == current_name), update)
        return current, update, collisions

    def _create_revision(self, sts: Obj, data: Obj, number: int, collisions: int) -> tuple[Obj, int]:
        """A new revision named by its hash; a name taken by other data counts a collision and hashes again."""
        meta = sts["metadata"]
        while True:
            hash_ = revision_hash(data, collisions)
            name = revision_name(meta["name"], hash_)
            try:
                created = self.registry.create(CONTROLLER_REVISIONS, meta["namespace"], new_revision(STATEFUL_SETS, sts, data, number, hash_, name)).obj
            except errors.StatusError as exc:
                if exc.code != 409:
                    raise
                existing = self.store.get(CONTROLLER_REVISIONS.key, meta["namespace"], name)
                ref = controller_ref(existing) if existing is not None else None
                if existing is not None and ref is not None and ref.get("uid") == meta["uid"] and go_json(existing.get("data")) == go_json(data):
                    return existing, collisions
                collisions += 1  # a revision of that name holds something else: hash again
                continue
            self.revisions.index.set(meta["namespace"], name, meta["uid"])
            return created, collisions

    def _update_pods(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj) -> None:
        """updateStatefulSet: create, replace and remove pods, one step at a time under OrderedReady."""
        meta, spec = sts["metadata"], sts.get("spec") or {}
        name = meta["name"]
        start, replicas = start_ordinal(spec), replicas_of(spec)
        monotonic = spec.get("podManagementPolicy") != PARALLEL
        min_ready = int(spec.get("minReadySeconds") or 0)
        slots: dict[int, Obj] = {}
        condemned: list[tuple[int, Obj]] = []
        for pod in pods:
            ordinal = ordinal_of(pod, name)
            if ordinal is None:
                continue
            if start <= ordinal < start + replicas:
                slots[ordinal] = pod
            else:
                condemned.append((ordinal, pod))
        condemned.sort(key=lambda item: -item[0])
        for ordinal, pod in condemned:
            self._fix_claims(sts, pod, ordinal, in_range=False)
        now = time.time()
        for ordinal in range(start, start + replicas):
            replica = slots.get(ordinal)
            if replica is not None and is_finished(replica) and not is_terminating(replica):
                # a failed pod is replaced, once it is gone
                if not self._delete_pod(sts, replica):
                    if monotonic:
                        return
                    continue
                replica = None
            if replica is None:
                revision = current if uses_current_revision(spec, ordinal) else update
                replica = slots[ordinal] = self._create_pod(sts, template_of(revision), ordinal, revision["metadata"]["name"])
                if not monotonic:
                    continue
                # OrderedReady goes on only once this pod runs and is ready; without a kubelet it may
                # already be (then the next ordinal need not wait for another sync)
            if is_terminating(replica) or not is_running_and_ready(replica) or available_in(replica, min_ready, now) != 0:
                if monotonic:
                    return
                continue
            self._fix_claims(sts, replica, ordinal, in_range=True)
        for _, pod in condemned:
            if is_terminating(pod):
                if monotonic:
                    return
                continue
            if not self._delete_pod(sts, pod) and monotonic:
                return  # one at a time: the next once this one is gone
        if (spec.get("updateStrategy") or {}).get("type") == ON_DELETE:
            return
        while True:
            action, target = rolling_update_target(spec, slots, update["metadata"]["name"])
            if action != "delete" or target is None:
                return
            ordinal = ordinal_of(target, name)
            if not self._delete_pod(sts, target) or ordinal is None:
                return  # replaced once it is gone
            # gone at once (no kubelet): its replacement now, and the next pod once that one is healthy
            revision = current if uses_current_revision(spec, ordinal) else update
            replica = slots[ordinal] = self._create_pod(sts, template_of(revision), ordinal, revision["metadata"]["name"])
            if not is_healthy(replica) or available_in(replica, min_ready, time.time()) != 0:
                return

    def _create_pod(self, sts: Obj, template: Obj, ordinal: int, revision: str) -> Obj:
        meta = sts["metadata"]
        ns = meta["namespace"]
        body = new_pod(sts, template, ordinal, revision)
        pod_name_ = body["metadata"]["name"]
        for claim_template in claim_templates(sts.get("spec") or {}).values():
            claim = new_claim(sts, claim_template, ordinal)
            if self.store.get_raw(PERSISTENT_VOLUME_CLAIMS.key, ns, claim["metadata"]["name"]) is not None:
                continue
            refs = claim_owners([], sts, None, in_range=True)
            if refs:
                claim["metadata"]["ownerReferences"] = refs
            try:
                self.registry.create(PERSISTENT_VOLUME_CLAIMS, ns, claim)
            except errors.StatusError as exc:
                self.events.record(STATEFUL_SETS, sts, "Warning", "FailedCreate", f"create Claim {claim['metadata']['name']} for Pod {pod_name_} in StatefulSet {meta['name']} failed error: {exc.message}")
                raise
            self.events.record(STATEFUL_SETS, sts, "Normal", "SuccessfulCreate", f"create Claim {claim['metadata']['name']} Pod {pod_name_} in StatefulSet {meta['name']} success")
        try:
            pod = self.registry.create(PODS, ns, body).obj
        except errors.StatusError as exc:
            self.events.record(STATEFUL_SETS, sts, "Warning", "FailedCreate", f"create Pod {pod_name_} in StatefulSet {meta['name']} failed error: {exc.message}")
            raise
        self.pods.index.set(ns, pod_name_, meta["uid"])
        self.events.record(STATEFUL_SETS, sts, "Normal", "SuccessfulCreate", f"create Pod {pod_name_} in StatefulSet {meta['name']} successful")
        return pod

    def _delete_pod(self, sts: Obj, pod: Obj) -> bool:
        """Delete a pod; whether it is gone (a pod with finalizers stays, terminating)."""
        meta, pod_meta = sts["metadata"], pod["metadata"]
        try:
            self.registry.delete(PODS, meta["namespace"], pod_meta["name"], preconditions={"uid": pod_meta["uid"]})
        except errors.StatusError as exc:
            if exc.code == 404:
                return True
            self.events.record(STATEFUL_SETS, sts, "Warning", "FailedDelete", f"delete Pod {pod_meta['name']} in StatefulSet {meta['name']} failed error: {exc.message}")
            raise
        self.events.record(STATEFUL_SETS, sts, "Normal", "SuccessfulDelete", f"delete Pod {pod_meta['name']} in StatefulSet {meta['name']} successful")
        gone = self.store.get_raw(PODS.key, meta["namespace"], pod_meta["name"]) is None
        if gone:
            self.pods.index.remove(meta["namespace"], pod_meta["name"])
        return gone

    def _fix_claims(self, sts: Obj, pod: Obj, ordinal: int, in_range: bool) -> None:
        """The pod's claims exist (created when missing, for a pod in range) and name the owners the
        retention policy asks for."""
        ns = sts["metadata"]["namespace"]
        for claim_template in claim_templates(sts.get("spec") or {}).values():
            wanted = new_claim(sts, claim_template, ordinal)
            claim = self.store.get(PERSISTENT_VOLUME_CLAIMS.key, ns, wanted["metadata"]["name"])
            if claim is None:
                if in_range:
                    refs = claim_owners([], sts, pod, in_range)
                    if refs:
                        wanted["metadata"]["ownerReferences"] = refs
                    self.registry.create(PERSISTENT_VOLUME_CLAIMS, ns, wanted)
                continue
            if claim["metadata"].get("deletionTimestamp"):
                continue
            refs = claim.get("metadata", {}).get("ownerReferences") or []
            owners = claim_owners(refs, sts, pod, in_range)
            if owners != refs:
                new = copy_json(claim)
                if owners:
                    new["metadata"]["ownerReferences"] = owners
                else:
                    new["metadata"].pop("ownerReferences", None)
                self.registry.replace_object(PERSISTENT_VOLUME_CLAIMS, claim, new)

    def _status(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj, collisions: int) -> tuple[Obj, float | None]:
        """computeReplicaStatus and completeRollingUpdate; and when to look again for pods that become
        available later."""
        meta, spec = sts["metadata"], sts.get("spec") or {}
        current_name, update_name = current["metadata"]["name"], update["metadata"]["name"]
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = time.time()
        counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0}
        recheck: float | None = None
        for pod in pods:
            counts["replicas"] += 1
            if is_running_and_ready(pod):
                counts["readyReplicas"] += 1
                wait = available_in(pod, min_ready, now)
                if wait == 0:
                    counts["availableReplicas"] += 1
                elif wait is not None:
                    recheck = wait if recheck is None else min(recheck, wait)
            if not is_terminating(pod):
                revision = pod_revision(pod)
                counts["currentReplicas"] += revision == current_name
                counts["updatedReplicas"] += revision == update_name
        rolling = (spec.get("updateStrategy") or {}).get("type", ROLLING_UPDATE) == ROLLING_UPDATE
        if rolling and counts["updatedReplicas"] == counts["replicas"] and counts["readyReplicas"] == counts["replicas"]:
            counts["currentReplicas"] = counts["updatedReplicas"]
            current_name = update_name
        status: Obj = {"observedGeneration": meta.get("generation") or 1, "replicas": counts["replicas"]}
        for field in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if counts[field]:
                status[field] = counts[field]
        status.update({"currentRevision": current_name, "updateRevision": update_name, "collisionCount": collisions})
        status["availableReplicas"] = counts["availableReplicas"]
        conditions = (sts.get("status") or {}).get("conditions")
        if conditions:
            status["conditions"] = conditions
        return status, (recheck + 0.05 if recheck is not None else None)
