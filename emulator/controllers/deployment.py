"""The Deployment controller (kube-controller-manager's pkg/controller/deployment, rule for rule): rolls a
Deployment's pod template out through ReplicaSets.

- Each template gets a ReplicaSet `<deployment>-<pod-template-hash>` (a hash of the template, spelled with
  the API server's safe alphabet), whose selector and template carry the `pod-template-hash` label and
  whose `deployment.kubernetes.io/revision` annotation numbers the rollouts; the Deployment carries the
  revision of its current ReplicaSet. Going back to an older template (`kubectl rollout undo`) finds its
  ReplicaSet again and gives it the next revision.
- RollingUpdate scales the new ReplicaSet up and the old ones down within maxSurge/maxUnavailable,
  counting pods that are available (ready for minReadySeconds); Recreate scales the old ones to zero
  first. A paused Deployment is only scaled; scaling (`kubectl scale`) is spread over the active
  ReplicaSets in proportion. Old ReplicaSets at zero beyond revisionHistoryLimit are deleted.
- status: replicas, updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas,
  observedGeneration, and the conditions Available (MinimumReplicasAvailable /
  MinimumReplicasUnavailable) and Progressing (NewReplicaSetCreated, FoundNewReplicaSet,
  ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused,
  DeploymentResumed); a ScalingReplicaSet event for every scaling.

As the other workload controllers, it reacts to events through a work queue (emulator/controllers/
workqueue.py): Deployment and ReplicaSet events mark a Deployment dirty, and `sync` reads the Deployment
and its ReplicaSets (found through an index by controller uid, never a scan) and writes the difference.
"""

from __future__ import annotations

import logging
import math
import struct
import time
from collections.abc import Sequence
from typing import Any

import orjson

from emulator import errors
from emulator.controllers.events import EventRecorder
from emulator.controllers.replicaset import (
    OwnedIndex,
    controller_ref,
    copy_json,
    owner_reference,
    owner_selector,
)
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import DEPLOYMENTS, REPLICA_SETS
from emulator.kinds.deployment import (
    CONTROLLER_ANNOTATIONS,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
)
from emulator.kinds.replicaset import POD_TEMPLATE_HASH_LABEL, semantic
from emulator.labels import Selector
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.timestamps import now_rfc3339, parse_rfc3339
from emulator.validation import GENERATE_ALPHABET

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
Obj = dict[str, Any]

COMPONENT = "deployment-controller"
PROGRESSING, AVAILABLE, REPLICA_FAILURE = "Progressing", "Available", "ReplicaFailure"
# condition reasons (deploymentutil)
REPLICA_SET_UPDATED = "ReplicaSetUpdated"
NEW_REPLICA_SET_CREATED = "NewReplicaSetCreated"
FOUND_NEW_REPLICA_SET = "FoundNewReplicaSet"
NEW_REPLICA_SET_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
REVISION_HISTORY_LIMIT_CHARS = 2000


# -- pure helpers (deploymentutil) ---------------------------------------------------------------------


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """controller.ComputeHash: FNV-32a of the template (with the collision count, when set), as the
    decimal string spelled in the API server's safe alphabet (up to 10 characters)."""
    h = 0x811C9DC5
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0\0\0\0"
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(GENERATE_ALPHABET[ord(c) % len(GENERATE_ALPHABET)] for c in str(h))


def _spec(obj: Obj | None) -> Obj:
    return (obj or {}).get("spec") or {}


def _status(obj: Obj | None) -> Obj:
    return (obj or {}).get("status") or {}


def replicas_of(obj: Obj | None) -> int:
    value = _spec(obj).get("replicas")
    return 1 if value is None else int(value)


def _status_int(obj: Obj | None, field: str) -> int:
    return int(_status(obj).get(field) or 0)


def _annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def _created(obj: Obj) -> tuple[float, str]:
    parsed = parse_rfc3339(obj["metadata"].get("creationTimestamp"))
    return (parsed.timestamp() if parsed else 0.0, obj["metadata"]["name"])


def revision_of(obj: Obj) -> int:
    try:
        return int(_annotations(obj).get(REVISION_ANNOTATION) or 0)
    except ValueError:
        return 0


def max_revision(sets: list[Obj]) -> int:
    return max((revision_of(rs) for rs in sets), default=0)


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value or 0)


def is_rolling(d: Obj) -> bool:
    return (_spec(d).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(d: Obj) -> tuple[int, int]:
    rolling = (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas_of(d)
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # a rollout must be able to make progress
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return resolve_fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas_of(d) == 0:
        return 0
    return min(resolve_fenceposts(d)[1], replicas_of(d))


def has_progress_deadline(d: Obj) -> bool:
    deadline = _spec(d).get("progressDeadlineSeconds")
    return deadline is not None and deadline != 2**31 - 1


def template_without_hash(template: Obj | None) -> Any:
    copied = copy_json(template or {})
    labels = (copied.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return semantic(copied)


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    return bool(template_without_hash(a) == template_without_hash(b))


def by_creation(sets: list[Obj]) -> list[Obj]:
    return sorted(sets, key=_created)


def active(sets: Sequence[Obj | None]) -> list[Obj]:
    return [rs for rs in sets if rs is not None and replicas_of(rs) > 0]


def spec_total(sets: Sequence[Obj | None]) -> int:
    return sum(replicas_of(rs) for rs in sets if rs is not None)


def status_total(sets: Sequence[Obj | None], field: str) -> int:
    return sum(_status_int(rs, field) for rs in sets if rs is not None)


def get_condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def new_condition(kind: str, status: str, reason: str, message: str) -> Obj:
    now = now_rfc3339()
    return {"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message}


def set_condition(status: Obj, condition: Obj) -> None:
    """SetDeploymentCondition: same status and reason is no change; same status keeps the transition time."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"] and current.get("reason") == condition.get("reason"):
        return
    if current is not None and current.get("status") == condition["status"]:
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != condition["type"]] + [condition]


def remove_condition(status: Obj, kind: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = replicas_of(d)
    return (
        int(status.get("updatedReplicas") or 0) == want and int(status.get("replicas") or 0) == want
        and int(status.get("availableReplicas") or 0) == want
        and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0)
    )


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = _status(d)

    def get(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)

    return (
        get(status, "updatedReplicas") > get(old, "updatedReplicas")
        or get(status, "replicas") - get(status, "updatedReplicas") < get(old, "replicas") - get(old, "updatedReplicas")
        or get(status, "readyReplicas") > get(old, "readyReplicas")
        or get(status, "availableReplicas") > get(old, "availableReplicas")
    )


def deployment_timed_out(d: Obj, status: Obj) -> bool:
    if not has_progress_deadline(d):
        return False
    condition = get_condition(status, PROGRESSING)
    if condition is None or condition.get("reason") == NEW_REPLICA_SET_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    since = parse_rfc3339(condition.get("lastUpdateTime"))
    return since is not None and since.timestamp() + int(_spec(d)["progressDeadlineSeconds"]) < time.time()


def new_rs_new_replicas(d: Obj, all_sets: Sequence[Obj | None], new: Obj) -> int:
    """NewRSNewReplicas: how far the new ReplicaSet may grow now."""
    if not is_rolling(d):
        return replicas_of(d)
    total = spec_total(all_sets)
    allowed = replicas_of(d) + max_surge(d)
    if total >= allowed:
        return replicas_of(new)
    return replicas_of(new) + min(allowed - total, replicas_of(d) - replicas_of(new))


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    annotations = _annotations(rs)
    return annotations.get(DESIRED_REPLICAS_ANNOTATION) != str(desired) or annotations.get(MAX_REPLICAS_ANNOTATION) != str(maximum)


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS_ANNOTATION, str(desired)), (MAX_REPLICAS_ANNOTATION, str(maximum))):
        if annotations.get(key) != value:
            annotations[key] = value
            changed = True
    return changed


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: str, exists: bool) -> bool:
    """SetNewReplicaSetAnnotations: the Deployment's annotations (not the controller's own), the new
    revision (the replaced one joins revision-history), and for a new ReplicaSet the replica counts."""
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in _annotations(d).items():
        if key in CONTROLLER_ANNOTATIONS or annotations.get(key) == value:
            continue
        annotations[key] = value
        changed = True
    old_revision = annotations.get(REVISION_ANNOTATION, "")
    try:
        old_int = int(old_revision) if old_revision else 0
    except ValueError:
        return changed
    if old_int < int(new_revision):
        annotations[REVISION_ANNOTATION] = new_revision
        changed = True
        if old_revision:
            history = annotations.get(REVISION_HISTORY_ANNOTATION, "")
            revisions = [r for r in history.split(",") if r] + [old_revision]
            while len(revisions) > 1 and len(",".join(revisions)) > REVISION_HISTORY_LIMIT_CHARS:
                revisions.pop(0)
            annotations[REVISION_HISTORY_ANNOTATION] = ",".join(revisions)
    if not exists and set_replicas_annotations(rs, replicas_of(d), replicas_of(d) + max_surge(d)):
        changed = True
    return changed


def proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    """GetProportion: this ReplicaSet's share of a scaling, within what is left to add (or remove)."""
    if replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    if replicas_of(d) == 0:
        fraction = -replicas_of(rs)
    else:
        deployment_replicas = replicas_of(d) + max_surge(d)
        try:
            annotated = int(_annotations(rs).get(MAX_REPLICAS_ANNOTATION, ""))
        except ValueError:
            annotated = _status_int(d, "replicas")
        size = replicas_of(rs) * deployment_replicas / annotated if annotated else float(replicas_of(rs))
        fraction = int(math.floor(size + 0.5) if size >= 0 else -math.floor(-size + 0.5)) - replicas_of(rs)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# -- the controller ------------------------------------------------------------------------------------


class DeploymentController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.queue: WorkQueue[Key] = WorkQueue("deployment", self.sync)
        self.sets = OwnedIndex()
        self._by_uid: dict[str, Key] = {}
        self._uid_of: dict[Key, str] = {}
        self._selectors: dict[str, dict[Key, Selector]] = {}  # namespace -> deployment -> its selector
        self.events = EventRecorder(registry, COMPONENT)

    # -- events ------------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.resource == REPLICA_SETS.key:
            self._on_replica_set(event)
        elif event.resource == DEPLOYMENTS.key:
            self._on_deployment(event)

    def _enqueue_uid(self, uid: str) -> None:
        key = self._by_uid.get(uid)
        if key is not None:
            self.queue.add(key)

    def _on_replica_set(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        if event.type == DELETED:
            previous = self.sets.remove(ns, name)
            if previous:
                self._enqueue_uid(previous)
            return
        ref = controller_ref(event.obj)
        uid = ref.get("uid") if ref else None
        labels = event.obj["metadata"].get("labels") or {}
        previous = self.sets.set(ns, name, uid, labels if uid is None else None)
        if uid:
            self._enqueue_uid(uid)
        if previous and previous != uid:
            self._enqueue_uid(previous)
        if uid is None:
            for key, selector in self._selectors.get(ns, {}).items():
                if selector.matches(labels):
                    self.queue.add(key)

    def _on_deployment(self, event: Event) -> None:
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
        obj = event.obj
        uid = obj["metadata"].get("uid", "")
        self._uid_of[key] = uid
        self._by_uid[uid] = key
        self._selectors.setdefault(event.namespace, {})[key] = owner_selector(DEPLOYMENTS, _spec(obj))
        self.queue.add(key)

    # -- sync --------------------------------------------------------------------------------------

    def sync(self, key: Key) -> float | None:
        ns, name = key
        stored = self.store.get(DEPLOYMENTS.key, ns, name)
        if stored is None:
            return None
        try:
            return _Sync(self, stored).run()
        except _StaleStatus:
            return STALE_RETRY

    def record_event(self, d: Obj, reason: str, message: str, kind: str = "Normal") -> None:
        """A core/v1 Event about the Deployment (what `kubectl describe deployment` lists)."""
        self.events.record(DEPLOYMENTS, d, kind, reason, message)


class _StaleStatus(Exception):
    """A ReplicaSet's status is older than its spec: the sync stops and runs again shortly."""


STALE_RETRY = 0.01  # seconds


class _Sync:
    """One sync of one Deployment (syncDeployment and the functions it calls). `d` is the Deployment as
    last stored: every write replaces it, so that the next write's precondition holds."""

    def __init__(self, controller: DeploymentController, d: Obj) -> None:
        self.c = controller
        self.registry = controller.registry
        self.store = controller.store
        self.d = d
        self.requeue: float | None = None
        self.written: dict[str, Obj] = {}  # ReplicaSets this sync wrote, as stored: later steps start from them

    # -- writes ------------------------------------------------------------------------------------

    def write_status(self, status: Obj) -> None:
        if status == self.d.get("status"):
            return
        self.d = self.registry.replace_object(DEPLOYMENTS, self.d, {**self.d, "status": status}, subresource="status").obj

    def write_revision(self, revision: str) -> bool:
        """SetDeploymentRevision (the API server stores it with the status update; here a metadata update
        that does not count as a spec change)."""
        if _annotations(self.d).get(REVISION_ANNOTATION) == revision:
            return False
        new = copy_json(self.d)
        new["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = revision
        self.d = self.registry.replace_object(DEPLOYMENTS, self.d, new).obj
        return True

    def update_rs(self, old: Obj, new: Obj) -> Obj:
        stored = self.registry.replace_object(REPLICA_SETS, old, new).obj
        self.written[stored["metadata"]["name"]] = stored
        return stored

    # -- the steps -----------------------------------------------------------------------------------

    def run(self) -> float | None:
        d = self.d
        selector = owner_selector(DEPLOYMENTS, _spec(d))
        if selector.is_everything:
            # an empty selector would select every pod: the controller only records that it saw it
            status = copy_json(_status(d))
            status["observedGeneration"] = d["metadata"].get("generation")
            self.write_status(status)
            return None
        sets = self.claim(selector)
        if d["metadata"].get("deletionTimestamp"):
            self.sync_status_only(sets)
            return None
        self.check_paused_conditions()
        if _spec(self.d).get("paused"):
            self.sync_scaling(sets)
            return None
        if self.is_scaling_event(sets):
            self.sync_scaling(sets)
            return None
        if is_rolling(self.d):
            self.rollout_rolling(sets)
        else:
            self.rollout_recreate(sets)
        return self.requeue

    def claim(self, selector: Selector) -> list[Obj]:
        """getReplicaSetsForDeployment: its ReplicaSets, after adopting matching orphans and releasing
        the ones that stopped matching."""
        meta = self.d["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        deleting = bool(meta.get("deletionTimestamp"))
        index = self.c.sets
        claimed: list[Obj] = []
        for name in index.owned(uid):
            rs = self.store.get(REPLICA_SETS.key, ns, name)
            if rs is None:
                index.remove(ns, name)
                continue
            ref = controller_ref(rs)
            if ref is None or ref.get("uid") != uid:
                index.set(ns, name, ref.get("uid") if ref else None, rs["metadata"].get("labels") or {})
                continue
            if selector.matches(rs["metadata"].get("labels")):
                claimed.append(rs)
            elif not deleting and not rs["metadata"].get("deletionTimestamp"):
                new = copy_json(rs)
                refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                if refs:
                    new["metadata"]["ownerReferences"] = refs
                else:
                    new["metadata"].pop("ownerReferences", None)
                self.update_rs(rs, new)
                index.set(ns, name, None, rs["metadata"].get("labels") or {})
        if deleting:
            return claimed
        for name, labels in index.orphans(ns):
            if labels is not None and not selector.matches(labels):
                continue
            rs = self.store.get(REPLICA_SETS.key, ns, name)
            if rs is None:
                index.remove(ns, name)
                continue
            if controller_ref(rs) is not None or rs["metadata"].get("deletionTimestamp"):
                continue
            if not selector.matches(rs["metadata"].get("labels")):
                continue
            new = copy_json(rs)
            new["metadata"].setdefault("ownerReferences", []).append(owner_reference(DEPLOYMENTS, self.d))
            adopted = self.update_rs(rs, new)
            index.set(ns, name, uid)
            claimed.append(adopted)
        return claimed

    # -- new and old ReplicaSets ---------------------------------------------------------------------

    def find_new(self, sets: list[Obj]) -> Obj | None:
        template = _spec(self.d).get("template")
        for rs in by_creation(sets):
            if equal_ignore_hash(_spec(rs).get("template"), template):
                return rs
        return None

    def get_all(self, sets: list[Obj], create: bool) -> tuple[Obj | None, list[Obj]]:
        """getAllReplicaSetsAndSyncRevision: (the new ReplicaSet, every old one)."""
        sets = [self.written.get(rs["metadata"]["name"], rs) for rs in sets]
        new = self.find_new(sets)
        olds = [rs for rs in sets if rs is not new]
        return self.get_new(new, olds, create), olds

    def get_new(self, existing: Obj | None, olds: list[Obj], create: bool) -> Obj | None:
        d = self.d
        new_revision = str(max_revision(olds) + 1)
        if existing is not None:
            copied = copy_json(existing)
            annotations_changed = set_new_rs_annotations(d, copied, new_revision, True)
            min_ready = _spec(d).get("minReadySeconds")
            if annotations_changed or _spec(copied).get("minReadySeconds") != min_ready:
                if min_ready is None:
                    copied["spec"].pop("minReadySeconds", None)
                else:
                    copied["spec"]["minReadySeconds"] = min_ready
                existing = self.update_rs(existing, copied)
            self.write_revision(_annotations(existing).get(REVISION_ANNOTATION, ""))
            if has_progress_deadline(self.d) and get_condition(_status(self.d), PROGRESSING) is None:
                status = copy_json(_status(self.d))
                set_condition(status, new_condition(PROGRESSING, "True", FOUND_NEW_REPLICA_SET, f'Found new replica set "{existing["metadata"]["name"]}"'))
                self.write_status(status)
            return existing
        if not create:
            return None
        collisions = _status(d).get("collisionCount")
        template = copy_json(_spec(d).get("template") or {})
        pod_hash = compute_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH_LABEL] = pod_hash
        selector = copy_json(_spec(d).get("selector") or {})
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH_LABEL] = pod_hash
        meta = d["metadata"]
        rs: Obj = {
            "apiVersion": REPLICA_SETS.api_version, "kind": REPLICA_SETS.kind,
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}", "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]), "ownerReferences": [owner_reference(DEPLOYMENTS, d)],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }
        if _spec(d).get("minReadySeconds") is not None:
            rs["spec"]["minReadySeconds"] = _spec(d)["minReadySeconds"]
        rs["spec"]["replicas"] = new_rs_new_replicas(d, [*olds, rs], rs)
        set_new_rs_annotations(d, rs, new_revision, False)
        created = True
        try:
            stored = self.registry.create(REPLICA_SETS, meta["namespace"], rs).obj
        except errors.StatusError as exc:
            if exc.code != 409 or exc.reason != "AlreadyExists":
                if has_progress_deadline(d):
                    status = copy_json(_status(d))
                    set_condition(status, new_condition(PROGRESSING, "False", "ReplicaSetCreateError", f'Failed to create new replica set "{rs["metadata"]["name"]}": {exc.message}'))
                    self.write_status(status)
                raise
            found = self.store.get(REPLICA_SETS.key, meta["namespace"], rs["metadata"]["name"])
            ref = controller_ref(found) if found else None
            if found is None or ref is None or ref.get("uid") != meta["uid"] or not equal_ignore_hash(_spec(found).get("template"), _spec(d).get("template")):
                # a hash collision: another template has this name; the next hash includes a count
                status = copy_json(_status(d))
                status["collisionCount"] = int(collisions or 0) + 1
                self.write_status(status)
                raise errors.conflict(REPLICA_SETS.key, rs["metadata"]["name"], "hash collision; retrying with collisionCount") from None
            stored, created = found, False
        self.c.sets.set(meta["namespace"], stored["metadata"]["name"], meta["uid"])
        if created and replicas_of(stored) > 0:
            self.c.record_event(self.d, "ScalingReplicaSet", f"Scaled up replica set {stored['metadata']['name']} from 0 to {replicas_of(stored)}")
        self.write_revision(new_revision)
        if created and has_progress_deadline(self.d):
            status = copy_json(_status(self.d))
            set_condition(status, new_condition(PROGRESSING, "True", NEW_REPLICA_SET_CREATED, f'Created new replica set "{stored["metadata"]["name"]}"'))
            self.write_status(status)
        return stored

    # -- scaling -------------------------------------------------------------------------------------

    def scale_rs(self, rs: Obj, new_scale: int, operation: str) -> tuple[bool, Obj]:
        """scaleReplicaSet: spec.replicas and the replica annotations; a ScalingReplicaSet event."""
        d = self.d
        desired, maximum = replicas_of(d), replicas_of(d) + max_surge(d)
        old_scale = replicas_of(rs)
        size_changes = old_scale != new_scale
        if not size_changes and not replicas_annotations_need_update(rs, desired, maximum):
            return False, rs
        copied = copy_json(rs)
        copied["spec"]["replicas"] = new_scale
        set_replicas_annotations(copied, desired, maximum)
        rs = self.update_rs(rs, copied)
        if size_changes:
            self.c.record_event(d, "ScalingReplicaSet", f"Scaled {operation} replica set {rs['metadata']['name']} from {old_scale} to {new_scale}")
        return size_changes, rs

    def scale_and_record(self, rs: Obj, new_scale: int) -> tuple[bool, Obj]:
        if replicas_of(rs) == new_scale:
            return False, rs
        return self.scale_rs(rs, new_scale, "up" if replicas_of(rs) < new_scale else "down")

    def is_scaling_event(self, sets: list[Obj]) -> bool:
        new, olds = self.get_all(sets, False)
        for rs in active([*olds, new]):
            try:
                desired = int(_annotations(rs)[DESIRED_REPLICAS_ANNOTATION])
            except (KeyError, ValueError):
                continue
            if desired != replicas_of(self.d):
                return True
        return False

    def sync_scaling(self, sets: list[Obj]) -> None:
        """sync: scale the ReplicaSets to a new size (and, when paused, clean up) without rolling out."""
        new, olds = self.get_all(sets, False)
        new, olds = self.scale(new, olds)
        if _spec(self.d).get("paused"):
            self.cleanup(olds)
        self.sync_deployment_status([*olds, new], new)

    def scale(self, new: Obj | None, olds: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        d = self.d
        want = replicas_of(d)
        latest = self.find_active_or_latest(new, olds)
        if latest is not None:
            if replicas_of(latest) != want:
                _, scaled = self.scale_and_record(latest, want)
                return self._replace(new, olds, latest, scaled)
            return new, olds
        if new is not None and self.is_saturated(new):
            for old in active(list(olds)):
                _, scaled = self.scale_and_record(old, 0)
                new, olds = self._replace(new, olds, old, scaled)
            return new, olds
        if not is_rolling(d):
            return new, olds
        sets = active([*olds, new])
        allowed = want + max_surge(d) if want > 0 else 0
        to_add = allowed - spec_total(sets)
        if to_add > 0:  # ReplicaSetsBySizeNewer: larger first, then newer first
            sets = sorted(sets, key=lambda rs: (replicas_of(rs), *_created(rs)), reverse=True)
            operation = "up"
        elif to_add < 0:  # ReplicaSetsBySizeOlder: larger first, then older first
            sets = sorted(sets, key=lambda rs: (-replicas_of(rs), *_created(rs)))
            operation = "down"
        else:
            operation = ""
        sizes: dict[str, int] = {}
        added = 0
        for rs in sets:
            if to_add != 0:
                share = proportion(rs, d, to_add, added)
                sizes[rs["metadata"]["name"]] = replicas_of(rs) + share
                added += share
            else:
                sizes[rs["metadata"]["name"]] = replicas_of(rs)
        for i, rs in enumerate(sets):
            name = rs["metadata"]["name"]
            if i == 0 and to_add != 0:
                sizes[name] = max(sizes[name] + to_add - added, 0)
            _, scaled = self.scale_rs(rs, sizes[name], operation)
            new, olds = self._replace(new, olds, rs, scaled)
        return new, olds

    @staticmethod
    def _replace(new: Obj | None, olds: list[Obj], before: Obj, after: Obj) -> tuple[Obj | None, list[Obj]]:
        if new is before:
            return after, olds
        return new, [after if rs is before else rs for rs in olds]

    def find_active_or_latest(self, new: Obj | None, olds: list[Obj]) -> Obj | None:
        if new is None and not olds:
            return None
        newest_first = sorted(olds, key=_created, reverse=True)
        sets = active([*newest_first, new])
        if not sets:
            return new if new is not None else newest_first[0]
        return sets[0] if len(sets) == 1 else None

    def is_saturated(self, rs: Obj) -> bool:
        want = replicas_of(self.d)
        desired = _annotations(rs).get(DESIRED_REPLICAS_ANNOTATION)
        return desired == str(want) and replicas_of(rs) == want and _status_int(rs, "availableReplicas") == want

    # -- rolling update ------------------------------------------------------------------------------

    def rollout_rolling(self, sets: list[Obj]) -> None:
        new, olds = self.get_all(sets, True)
        assert new is not None
        scaled_up, new = self.reconcile_new([*olds, new], new)
        if scaled_up:
            self.sync_rollout_status([*olds, new], new)
            return
        scaled_down, olds = self.reconcile_olds(olds, new)
        if scaled_down:
            self.sync_rollout_status([*olds, new], new)
            return
        if deployment_complete(self.d, _status(self.d)):
            self.cleanup(olds)
        self.sync_rollout_status([*olds, new], new)

    def reconcile_new(self, all_sets: list[Obj], new: Obj) -> tuple[bool, Obj]:
        want = replicas_of(self.d)
        if replicas_of(new) == want:
            return False, new
        if replicas_of(new) > want:
            return self.scale_and_record(new, want)
        return self.scale_and_record(new, new_rs_new_replicas(self.d, all_sets, new))

    def reconcile_olds(self, olds: list[Obj], new: Obj) -> tuple[bool, list[Obj]]:
        d = self.d
        old_active = active(list(olds))
        if spec_total(old_active) == 0:
            return False, olds
        all_pods = spec_total([*old_active, new])
        min_available = replicas_of(d) - max_unavailable(d)
        new_unavailable = replicas_of(new) - _status_int(new, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False, olds
        updated: dict[str, Obj] = {}
        # unhealthy replicas first: they would block the rollout
        cleaned = 0
        for rs in by_creation(old_active):
            if cleaned >= max_scaled_down:
                break
            current = updated.get(rs["metadata"]["name"], rs)
            if replicas_of(current) == 0 or replicas_of(current) == _status_int(current, "availableReplicas"):
                continue
            count = min(max_scaled_down - cleaned, replicas_of(current) - _status_int(current, "availableReplicas"))
            if count < 0:
                # its status predates its last scaling (more available than desired): look again once
                # the ReplicaSet controller caught up (the Go controller returns an error here)
                raise _StaleStatus(rs["metadata"]["name"])
            _, updated[rs["metadata"]["name"]] = self.scale_and_record(current, replicas_of(current) - count)
            cleaned += count
        old_active = [updated.get(rs["metadata"]["name"], rs) for rs in old_active]
        # then as many as keep the available pods at or above minAvailable
        available = status_total([*old_active, new], "availableReplicas")
        scaled = 0
        if available > min_available:
            target = available - min_available
            for rs in by_creation(old_active):
                if scaled >= target:
                    break
                if replicas_of(rs) == 0:
                    continue
                count = min(replicas_of(rs), target - scaled)
                _, updated[rs["metadata"]["name"]] = self.scale_and_record(rs, replicas_of(rs) - count)
                scaled += count
        return cleaned + scaled > 0, [updated.get(rs["metadata"]["name"], rs) for rs in olds]

    # -- recreate ------------------------------------------------------------------------------------

    def rollout_recreate(self, sets: list[Obj]) -> None:
        new, olds = self.get_all(sets, False)
        scaled_down = False
        for rs in active(list(olds)):
            changed, after = self.scale_and_record(rs, 0)
            new, olds = self._replace(new, olds, rs, after)
            scaled_down = scaled_down or changed
        if scaled_down:
            self.sync_rollout_status([*olds, new], new)
            return
        if status_total(olds, "replicas") > 0:
            self.sync_rollout_status([*olds, new], new)  # old pods still running: wait for them
            return
        if new is None:
            new, olds = self.get_all(olds, True)
        assert new is not None
        _, new = self.scale_and_record(new, replicas_of(self.d))
        if deployment_complete(self.d, _status(self.d)):
            self.cleanup(olds)
        self.sync_rollout_status([*olds, new], new)

    # -- history, status -----------------------------------------------------------------------------

    def cleanup(self, olds: list[Obj]) -> None:
        """cleanupDeployment: delete the oldest ReplicaSets at zero beyond revisionHistoryLimit."""
        limit = _spec(self.d).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
        excess = len(alive) - int(limit)
        if excess <= 0:
            return
        for rs in sorted(alive, key=lambda rs: (revision_of(rs), _created(rs)))[:excess]:
            meta = rs["metadata"]
            if _status_int(rs, "replicas") != 0 or replicas_of(rs) != 0 or int(meta.get("generation") or 0) > _status_int(rs, "observedGeneration"):
                continue
            try:
                self.registry.delete(REPLICA_SETS, meta["namespace"], meta["name"], preconditions={"uid": meta["uid"]})
            except errors.StatusError as exc:
                if exc.code != 404:
                    raise

    def calculate_status(self, all_sets: list[Obj | None], new: Obj | None) -> Obj:
        d = self.d
        available = status_total(all_sets, "availableReplicas")
        counts = {
            "replicas": status_total(all_sets, "replicas"),
            "updatedReplicas": status_total([new], "replicas"),
            "readyReplicas": status_total(all_sets, "readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": max(spec_total(all_sets) - available, 0),
        }
        status: Obj = {"observedGeneration": d["metadata"].get("generation")}
        status.update({k: v for k, v in counts.items() if v})
        old = _status(d)
        if old.get("conditions"):
            status["conditions"] = [dict(c) for c in old["conditions"]]
        if old.get("collisionCount") is not None:
            status["collisionCount"] = old["collisionCount"]
        if available >= replicas_of(d) - max_unavailable(d):
            set_condition(status, new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE, "Deployment has minimum availability."))
        else:
            set_condition(status, new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE, "Deployment does not have minimum availability."))
        return status

    def sync_deployment_status(self, all_sets: list[Obj | None], new: Obj | None) -> None:
        self.write_status(self.calculate_status(all_sets, new))

    def sync_status_only(self, sets: list[Obj]) -> None:
        new, olds = self.get_all(sets, False)
        self.sync_deployment_status([*olds, new], new)

    def sync_rollout_status(self, all_sets: list[Obj | None], new: Obj | None) -> None:
        d = self.d
        status = self.calculate_status(all_sets, new)
        if not has_progress_deadline(d):
            remove_condition(status, PROGRESSING)
        current = get_condition(_status(d), PROGRESSING)
        complete = (
            status.get("replicas", 0) == status.get("updatedReplicas", 0)
            and current is not None and current.get("reason") == NEW_REPLICA_SET_AVAILABLE
        )
        if has_progress_deadline(d) and not complete:
            subject = f'ReplicaSet "{new["metadata"]["name"]}"' if new is not None else f'Deployment "{d["metadata"]["name"]}"'
            if deployment_complete(d, status):
                set_condition(status, new_condition(PROGRESSING, "True", NEW_REPLICA_SET_AVAILABLE, f"{subject} has successfully progressed."))
            elif deployment_progressing(d, status):
                condition = new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, f"{subject} is progressing.")
                if current is not None:
                    if current.get("status") == "True":
                        condition["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_condition(status, PROGRESSING)
                set_condition(status, condition)
            elif deployment_timed_out(d, status):
                set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, f"{subject} has timed out progressing."))
        failure = self.replica_failure(all_sets)
        if failure is not None:
            set_condition(status, failure)
        else:
            remove_condition(status, REPLICA_FAILURE)
        if status == _status(d):
            self.requeue = self.stuck_requeue(status)
            return
        self.write_status(status)

    def replica_failure(self, all_sets: list[Obj | None]) -> Obj | None:
        for rs in all_sets:
            condition = get_condition(_status(rs), REPLICA_FAILURE) if rs is not None else None
            if condition is not None:
                return {
                    "type": REPLICA_FAILURE, "status": condition.get("status"),
                    "lastUpdateTime": condition.get("lastTransitionTime"), "lastTransitionTime": condition.get("lastTransitionTime"),
                    "reason": condition.get("reason"), "message": condition.get("message"),
                }
        return None

    def stuck_requeue(self, status: Obj) -> float | None:
        """requeueStuckDeployment: when to look again to see whether the rollout ran out of time."""
        d = self.d
        current = get_condition(_status(d), PROGRESSING)
        if not has_progress_deadline(d) or current is None:
            return None
        if deployment_complete(d, status) or current.get("reason") == TIMED_OUT:
            return None
        since = parse_rfc3339(current.get("lastUpdateTime"))
        if since is None:
            return None
        after = since.timestamp() + int(_spec(d)["progressDeadlineSeconds"]) - time.time()
        return 0.1 if after < 1 else after + 1

    def check_paused_conditions(self) -> None:
        d = self.d
        if not has_progress_deadline(d):
            return
        current = get_condition(_status(d), PROGRESSING)
        if current is not None and current.get("reason") == TIMED_OUT:
            return
        paused = bool(_spec(d).get("paused"))
        shown = current is not None and current.get("reason") == PAUSED
        status = copy_json(_status(d))
        if paused and not shown:
            set_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused"))
        elif not paused and shown:
            set_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed"))
        else:
            return
        self.write_status(status)
