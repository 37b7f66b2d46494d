"""The Job controller (kube-controller-manager's job controller, with the TTL-after-finished controller's
one duty): runs a Job's pods until enough of them succeed, or until it fails.

Events only mark a Job dirty (emulator/controllers/workqueue.py); `sync` reads the Job and its pods and
acts on what `plan_job` decides from them — a pure function of the Job, its pods and the time:

- pods: up to `parallelism` active pods while completions remain, named `<job>-<5 random chars>`; an
  Indexed Job's pods are `<job>-<index>-<5 chars>` with the completion index as annotation, label,
  hostname `<job>-<index>` and env JOB_COMPLETION_INDEX. After a failure, new pods wait 10 s, doubling
  per failure up to 6 min (the pod failure backoff).
- counting, as the Job controller does since 1.26: every pod it creates carries the finalizer
  `batch.kubernetes.io/job-tracking`. A pod that finished (Succeeded; Failed, or deleted before it
  succeeded) is counted in three steps: its uid goes into status.uncountedTerminatedPods (an Indexed
  Job's success straight into completedIndexes), then its finalizer is removed, then the uid moves
  into succeeded/failed. Deleting a finished pod cannot lose its count, and a restart between two steps
  neither loses nor repeats one. Pods whose Job is gone, being deleted or finished lose the finalizer
  (the orphan keys `(namespace, pod, "pod")` on the same queue).
- status: startTime (reset while suspended), active, ready, terminating, succeeded, failed,
  completedIndexes, uncountedTerminatedPods.
- finishing: `succeeded` reaching `completions` adds SuccessCriteriaMet then Complete (with
  completionTime); more failures than `backoffLimit`, or running longer than `activeDeadlineSeconds`,
  add FailureTarget then Failed (BackoffLimitExceeded, DeadlineExceeded) and delete the active pods.
- `suspend: true` deletes the active pods and adds the Suspended condition; resuming restarts the clock.
- `ttlSecondsAfterFinished`: that long after it finished, the Job is deleted (Foreground propagation,
  as the TTL-after-finished controller does: its pods go first).

Without the kubelet (emulator/kubelet/), pods are Running and Ready from creation until a client sets
their phase through the `status` subresource.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from emulator import errors
from emulator.controllers.replicaset import (
    EventRecorder,
    OwnedIndex,
    controller_ref,
    is_active,
    is_ready,
    owner_reference,
    rank_for_deletion,
)
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import JOBS, PODS
from emulator.kinds.job import (
    COMPLETE,
    COMPLETION_INDEX_ANNOTATION,
    COMPLETION_INDEX_ENV,
    FAILED,
    FAILURE_TARGET,
    INDEXED,
    SUCCESS_CRITERIA_MET,
    SUSPENDED,
    TRACKING_FINALIZER,
    finished_at,
    finished_condition,
)
from emulator.kinds.pod import RUNNABLE_CONDITION
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.timestamps import parse_rfc3339, rfc3339

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)

FAILURE_BACKOFF = 10.0  # seconds before the pod after a first failure (DefaultJobPodFailureBackOff)
MAX_FAILURE_BACKOFF = 360.0
BURST_PODS = 500  # pod creations or deletions per sync
MAX_UNCOUNTED_PODS = 500  # finished pods taken into account per sync (the Job controller's MaxUncountedPods)
DEFAULT_BACKOFF_LIMIT = 6
MANAGED_BY = "kubernetes.io/job-controller"  # the Jobs this controller manages: spec.managedBy unset or this

COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


# -- pure decisions ----------------------------------------------------------------------------------


def phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def completion_index(pod: dict[str, Any]) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def format_indexes(indexes: set[int]) -> str:
    """completedIndexes: sorted, consecutive runs as ranges ("0-2,5")."""
    runs: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(runs)


def parse_indexes(text: str | None, below: int) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            out.update(range(int(first), int(last or first) + 1))
        except ValueError:
            continue
    return {i for i in out if 0 <= i < below}


def failure_backoff(failures: int, base: float = FAILURE_BACKOFF) -> float:
    """The wait before a new pod after `failures` failed ones (10 s, 20 s, 40 s, ... at most 6 min)."""
    if failures <= 0 or base <= 0:
        return 0.0
    return min(base * 2 ** (failures - 1), MAX_FAILURE_BACKOFF)


def ttl_remaining(job: dict[str, Any], now: float) -> float | None:
    """Seconds until a finished Job with ttlSecondsAfterFinished is due for deletion (<= 0: now); None
    when it is not finished or keeps no TTL."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None:
        return None
    ended = finished_at(job)
    if ended is None:
        return None
    return ended.timestamp() + int(ttl) - now


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _condition(kind: str, reason: str, message: str, stamp: str, status: str = "True") -> dict[str, Any]:
    return {"type": kind, "status": status, "lastProbeTime": stamp, "lastTransitionTime": stamp, "reason": reason, "message": message}


def tracked(pod: dict[str, Any]) -> bool:
    """The pod still carries the Job controller's finalizer: it has not been counted yet."""
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


def only_replaces_failed(job: dict[str, Any]) -> bool:
    """podReplacementPolicy Failed (the default with a podFailurePolicy): a terminating pod is neither
    replaced nor counted until it has failed."""
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def run_by_kubelet(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == RUNNABLE_CONDITION and c.get("status") == "True" for c in conditions)


def pod_failed(pod: dict[str, Any], job: dict[str, Any]) -> bool:
    """isPodFailed: phase Failed, or (since 1.26) deleted before it succeeded — unless the Job only
    replaces failed pods and a kubelet will still report how the pod ended."""
    current = phase(pod)
    if current == "Failed":
        return True
    if current == "Succeeded" or not pod["metadata"].get("deletionTimestamp"):
        return False
    return not (only_replaces_failed(job) and run_by_kubelet(pod))


@dataclass
class JobPlan:
    """What one sync of a Job does: pods to create (their completion indexes, None when NonIndexed),
    pods to delete, the status to write, events to record and when to look again; and the finished
    pods' accounting: `interim` (the status recording their uids in uncountedTerminatedPods, None when
    nothing new finished), `release` (the pods whose finalizer then goes), `counted` (the uids `status`
    then moves into succeeded/failed)."""

    status: dict[str, Any]
    create: list[int | None] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    recheck: float | None = None
    interim: dict[str, Any] | None = None
    release: list[dict[str, Any]] = field(default_factory=list)
    counted: set[str] = field(default_factory=set)
    new_failures: int = 0

    def later(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.recheck = seconds if self.recheck is None else min(self.recheck, seconds)


@dataclass
class _Tally:
    """The finished pods' bookkeeping of one sync (trackJobStatusAndRemoveFinalizers)."""

    succeeded: list[str]  # uncountedTerminatedPods.succeeded, old then new
    failed: list[str]
    completed: set[int]  # Indexed: the completed indexes (their succeeded pods are not listed by uid)
    release: list[dict[str, Any]]
    new_failures: int = 0
    releasing: set[str] = field(default_factory=set)  # uids of `release`
    truncated: bool = False

    def let_go(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if tracked(pod) and uid not in self.releasing:
            self.releasing.add(uid)
            self.release.append(pod)

    def uncounted(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.succeeded:
            out["succeeded"] = list(self.succeeded)
        if self.failed:
            out["failed"] = list(self.failed)
        return out

    def fail(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if uid not in self.failed and uid not in self.succeeded:
            self.failed.append(uid)
            self.new_failures += 1
        self.let_go(pod)


def _tally(job: dict[str, Any], pods: list[dict[str, Any]], gone: list[dict[str, Any]], indexed: bool, total: int) -> _Tally:
    """Which finished pods are new to the count: those still carrying the finalizer (or removed with it,
    `gone`) and not yet in uncountedTerminatedPods."""
    old = job.get("status") or {}
    uncounted = old.get("uncountedTerminatedPods") or {}
    tally = _Tally(list(uncounted.get("succeeded") or []), list(uncounted.get("failed") or []),
                   parse_indexes(old.get("completedIndexes"), total) if indexed else set(), [])
    listed = set(tally.succeeded) | set(tally.failed)
    for pod in pods:
        if pod["metadata"]["uid"] in listed:
            tally.let_go(pod)  # listed by an earlier sync; its finalizer is still to go
    candidates = [(p, False) for p in pods if tracked(p)] + [(p, True) for p in gone]
    for pod, removed in candidates:
        uid = pod["metadata"]["uid"]
        if uid in listed:
            continue
        if len(tally.release) >= MAX_UNCOUNTED_PODS:
            tally.truncated = True  # the rest next time: status writes stay small, big Jobs don't starve others
            break
        if phase(pod) == "Succeeded":
            if indexed:
                index = completion_index(pod)
                if index is not None and 0 <= index < total:
                    tally.completed.add(index)
            else:
                tally.succeeded.append(uid)
            tally.let_go(pod)
        elif removed or pod_failed(pod, job):
            tally.fail(pod)
    return tally


def plan_job(job: dict[str, Any], pods: list[dict[str, Any]], now: float, last_failure: float | None = None,
             backoff: float = FAILURE_BACKOFF, gone: list[dict[str, Any]] | None = None) -> JobPlan:
    """syncJob's decisions for an unfinished Job, given its pods (those it controls), the pods removed
    while still carrying its finalizer (`gone`) and the time; `last_failure` is when the controller last
    saw one of its pods fail."""
    spec, old = job.get("spec") or {}, job.get("status") or {}
    stamp = rfc3339(now)
    conditions = [dict(c) for c in old.get("conditions") or []]
    active = [p for p in pods if is_active(p)]
    terminating = [p for p in pods if p["metadata"].get("deletionTimestamp") and phase(p) not in ("Succeeded", "Failed")]
    indexed = spec.get("completionMode") == INDEXED
    completions = spec.get("completions")
    parallelism = _int(spec.get("parallelism"), 1)
    total = int(completions or 0) if indexed else 0
    tally = _tally(job, pods, gone or [], indexed, total)
    if tally.new_failures:
        last_failure = now
    failed = int(old.get("failed") or 0) + len(tally.failed)
    completed = tally.completed
    succeeded = len(completed) if indexed else int(old.get("succeeded") or 0) + len(tally.succeeded)
    start = parse_rfc3339(old.get("startTime"))
    started: float | None = start.timestamp() if start is not None else None
    plan = JobPlan({})

    suspended_now = any(c.get("type") == SUSPENDED and c.get("status") == "True" for c in conditions)
    finish: tuple[str, str, str] | None = None
    if spec.get("suspend"):
        plan.delete = list(active)
        started = None  # the deadline's clock starts again on resume
        if not suspended_now:
            conditions = [c for c in conditions if c.get("type") != SUSPENDED]
            conditions.append(_condition(SUSPENDED, "JobSuspended", "Job suspended", stamp))
            plan.events.append(("Normal", "Suspended", "Job suspended"))
    else:
        if suspended_now:
            for c in conditions:
                if c.get("type") == SUSPENDED:
                    c.update(_condition(SUSPENDED, "JobResumed", "Job resumed", stamp, "False"))
            plan.events.append(("Normal", "Resumed", "Job resumed"))
            started = None
        if started is None:
            started = now
        deadline = spec.get("activeDeadlineSeconds")
        if failed > _int(spec.get("backoffLimit"), DEFAULT_BACKOFF_LIMIT):
            finish = (FAILED, *BACKOFF_LIMIT_EXCEEDED)
        elif deadline is not None and now >= started + int(deadline):
            finish = (FAILED, *DEADLINE_EXCEEDED)
        elif (succeeded > 0 and not active) if completions is None else succeeded >= int(completions):
            finish = (COMPLETE, *COMPLETIONS_REACHED)
        if finish is not None:
            plan.delete = list(active)
            if finish[0] == FAILED:
                for pod in active + terminating:  # a failing Job's unfinished pods count as failed
                    tally.fail(pod)
                failed = int(old.get("failed") or 0) + len(tally.failed)
        else:
            held = len(terminating) if only_replaces_failed(job) else 0
            _manage(plan, spec, active, succeeded, completed, indexed, parallelism, held)
            if plan.create and failed and last_failure is not None:
                wait = last_failure + failure_backoff(failed, backoff) - now
                if wait > 0:
                    plan.create = []
                    plan.later(wait)
            if deadline is not None:
                plan.later(started + int(deadline) - now)

    if finish is not None:
        kind, reason, message = finish
        interim = SUCCESS_CRITERIA_MET if kind == COMPLETE else FAILURE_TARGET
        conditions = [c for c in conditions if c.get("type") not in (interim, kind)]
        conditions.append(_condition(interim, reason, message, stamp))
        conditions.append(_condition(kind, reason, message, stamp))
        plan.events.append(("Normal", "Completed", "Job completed") if kind == COMPLETE else ("Warning", reason, message))

    # the three steps: list the new uids as uncounted (and the new completed indexes), remove the
    # finalizers, then count them — a restart between two steps repeats none and loses none
    uncounted = tally.uncounted()
    old_indexes = old.get("completedIndexes") or None
    new_indexes = format_indexes(completed) if completed else None
    if uncounted != (old.get("uncountedTerminatedPods") or {}) or (indexed and new_indexes != old_indexes):
        interim_status = {**old, "uncountedTerminatedPods": uncounted}
        if indexed:
            interim_status["succeeded"] = len(completed)
            if new_indexes:
                interim_status["completedIndexes"] = new_indexes
        plan.interim = interim_status
    plan.release = tally.release
    plan.counted = set(tally.succeeded) | set(tally.failed)
    plan.new_failures = tally.new_failures
    if tally.truncated:
        plan.later(0)

    deleted = {p["metadata"]["name"] for p in plan.delete}
    remaining = [p for p in active if p["metadata"]["name"] not in deleted]
    status: dict[str, Any] = {}
    if conditions:
        status["conditions"] = conditions
    if started is not None:
        status["startTime"] = rfc3339(started)
    if finish is not None and finish[0] == COMPLETE:
        status["completionTime"] = stamp
    if len(remaining) + len(plan.create):
        status["active"] = len(remaining) + len(plan.create)
    if succeeded:
        status["succeeded"] = succeeded
    if failed:
        status["failed"] = failed
    status["terminating"] = len(terminating)
    if completed:
        status["completedIndexes"] = format_indexes(completed)
    status["uncountedTerminatedPods"] = {}
    status["ready"] = sum(1 for p in remaining if is_ready(p))
    plan.status = status
    return plan


def _manage(plan: JobPlan, spec: dict[str, Any], active: list[dict[str, Any]], succeeded: int, completed: set[int],
            indexed: bool, parallelism: int, held: int = 0) -> None:
    """manageJob: how many pods should be running, and which to start or stop (`held`: terminating pods
    that still take a place, with podReplacementPolicy Failed)."""
    completions = spec.get("completions")
    if indexed:
        total = int(completions or 0)
        running: set[int] = set()
        for pod in active:
            index = completion_index(pod)
            if index is None or index in completed or index in running or not 0 <= index < total:
                plan.delete.append(pod)  # a duplicate, or an index already done
            else:
                running.add(index)
        room = parallelism - len(running) - held
        pending: list[int | None] = [i for i in range(total) if i not in completed and i not in running]
        plan.create = pending[: max(room, 0)][:BURST_PODS]
        return
    if completions is None:
        # a work queue: once one pod succeeded no new ones start, the running ones finish
        want = len(active) if succeeded > 0 else parallelism
    else:
        want = min(parallelism, int(completions) - succeeded)
    want = max(want, 0)
    if len(active) > want:
        plan.delete = rank_for_deletion(active, time.time())[: len(active) - want][:BURST_PODS]
    elif len(active) + held < want:
        plan.create = [None] * min(want - len(active) - held, BURST_PODS)


def pod_from_template(job: dict[str, Any], index: int | None) -> dict[str, Any]:
    """The pod the controller creates for `job` (for completion `index` when Indexed)."""
    meta, spec = job["metadata"], job.get("spec") or {}
    template = orjson.loads(orjson.dumps(spec.get("template") or {}))
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {})
    annotations = dict(template_meta.get("annotations") or {})
    pod_spec = template.get("spec") or {}
    name = meta["name"]
    prefix = f"{name}-"
    if index is not None:
        prefix = f"{name}-{index}-"
        annotations[COMPLETION_INDEX_ANNOTATION] = str(index)
        labels[COMPLETION_INDEX_ANNOTATION] = str(index)
        pod_spec.setdefault("hostname", f"{name}-{index}")
        for group in ("initContainers", "containers"):
            for container in pod_spec.get(group) or []:
                env = container.setdefault("env", [])
                if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                    env.append({"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
                        "apiVersion": "v1", "fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}}})
    pod_meta: dict[str, Any] = {"generateName": prefix, "labels": labels, "ownerReferences": [owner_reference(JOBS, job)]}
    if annotations:
        pod_meta["annotations"] = annotations
    pod_meta["finalizers"] = [*(f for f in template_meta.get("finalizers") or [] if f != TRACKING_FINALIZER), TRACKING_FINALIZER]
    return {"metadata": pod_meta, "spec": pod_spec}


# -- the controller ----------------------------------------------------------------------------------


PodKey = tuple[str, str, str]  # (namespace, pod name, "pod"): a pod whose finalizer may have to go
_TRACKING_MARK = TRACKING_FINALIZER.encode()


class JobController:
    def __init__(self, registry: Registry, clock: Callable[[], float] = time.time, backoff: float = FAILURE_BACKOFF) -> None:
        self.registry = registry
        self.store = registry.store
        self.clock = clock
        self.backoff = backoff
        # Jobs, and (as kube-controller-manager's orphan queue) pods whose Job is gone or going
        self.queue: WorkQueue[Key | PodKey] = WorkQueue("job", self._sync_key)
        self.pods = OwnedIndex()
        self.events = EventRecorder(registry, "job-controller")
        self._by_uid: dict[str, Key] = {}
        self._uid_of: dict[Key, str] = {}
        self._last_failure: dict[str, float] = {}  # job uid -> when the last new failure was seen
        self._gone: dict[str, dict[str, dict[str, Any]]] = {}  # job uid -> pod uid -> pod removed with the finalizer
        self._released: dict[str, set[str]] = {}  # job uid -> its pods whose finalizer this controller removed

    # -- events ------------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            self._on_pod(event)
        elif event.resource == JOBS.key:
            self._on_job(event)

    def _on_pod(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        has_finalizer = _TRACKING_MARK in event.raw  # cheaper than decoding every pod
        ref = controller_ref(event.obj) if b'"ownerReferences"' in event.raw or has_finalizer else None
        ours = ref is not None and ref.get("kind") == JOBS.kind and ref.get("apiVersion") == JOBS.api_version
        if event.type == DELETED:
            previous = self.pods.remove(ns, name)
            if ours and ref is not None:
                job_uid, uid = ref.get("uid", ""), event.obj["metadata"].get("uid", "")
                released = self._released.get(job_uid)
                if released is not None and uid in released:
                    released.discard(uid)
                    if not released:
                        del self._released[job_uid]
                elif tracked(event.obj) and job_uid in self._by_uid:
                    # removed before it was counted (a forced removal): counted from its last state
                    self._gone.setdefault(job_uid, {})[uid] = event.obj
        elif not ours or ref is None:
            previous = self.pods.remove(ns, name)
            if has_finalizer and tracked(event.obj):
                self.queue.add((ns, name, "pod"))  # released by its Job (orphaned): the finalizer goes
        else:
            uid = ref.get("uid", "")
            previous = self.pods.set(ns, name, uid)
            if uid in self._by_uid:
                self._enqueue(uid)
            elif has_finalizer:
                self.queue.add((ns, name, "pod"))  # its Job is gone, or not seen yet: the sync looks
        if previous:
            self._enqueue(previous)

    def _enqueue(self, uid: str) -> None:
        key = self._by_uid.get(uid)
        if key is not None:
            self.queue.add(key)

    def _on_job(self, event: Event) -> None:
        key: Key = (event.namespace, event.name)
        old = self._uid_of.pop(key, None)
        if old is not None:
            self._by_uid.pop(old, None)
        if event.type == DELETED:
            self.queue.forget(key)
            if old is not None:
                self.events.forget(old)
                self._last_failure.pop(old, None)
                self._gone.pop(old, None)
                self._released.pop(old, None)
                for pod in self.pods.owned(old):  # their finalizers go (cleanupPodFinalizers)
                    self.queue.add((event.namespace, pod, "pod"))
            return
        uid = event.obj["metadata"].get("uid", "")
        self._uid_of[key] = uid
        self._by_uid[uid] = key
        self.queue.add(key)

    # -- sync --------------------------------------------------------------------------------------

    def _sync_key(self, key: Key | PodKey) -> float | None:
        if len(key) == 3:
            self.sync_orphan(key[0], key[1])
            return None
        return self.sync((key[0], key[1]))

    def sync(self, key: Key) -> float | None:
        ns, name = key
        job = self.store.get(JOBS.key, ns, name)
        if job is None:
            return None
        if (job.get("spec") or {}).get("managedBy", MANAGED_BY) != MANAGED_BY:
            return None  # another controller's Job (spec.managedBy)
        uid = job["metadata"]["uid"]
        pods = self._pods_of(ns, uid)
        now = self.clock()
        if job["metadata"].get("deletionTimestamp"):
            self._release(job, pods)  # being deleted: its pods may go
            return None
        if finished_condition(job) is not None:
            self._gone.pop(uid, None)
            self._delete_pods(job, [p for p in pods if is_active(p)])
            self._release(job, pods)
            return self._expire(job, now)
        gone = list(self._gone.get(uid, {}).values())
        plan = plan_job(job, pods, now, self._last_failure.get(uid), self.backoff, gone)
        if plan.new_failures:
            self._last_failure[uid] = now
        if plan.interim is not None:
            # step 1: the newly finished pods' uids are on record before their finalizers go
            job = self.registry.replace_object(JOBS, job, {**job, "status": plan.interim}, subresource="status").obj
        problem = self._delete_pods(job, plan.delete)
        created = 0
        for index in plan.create:
            try:
                pod = self.registry.create(PODS, ns, pod_from_template(job, index)).obj
            except errors.StatusError as exc:
                self.events.record(JOBS, job, "Warning", "FailedCreate", f"Error creating: {exc.message}")
                problem = exc
                break
            self.pods.set(ns, pod["metadata"]["name"], uid)
            self.events.record(JOBS, job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
            created += 1
        # step 2: their finalizers go (a failure leaves them listed as uncounted: the retry goes on)
        self._release(job, plan.release)
        # step 3: counted, and no longer listed as uncounted
        status = plan.status
        missing = len(plan.create) - created
        if missing:
            status["active"] = int(status.get("active") or 0) - missing
            if not status["active"]:
                del status["active"]
        if status != job.get("status"):
            self.registry.replace_object(JOBS, job, {**job, "status": status}, subresource="status")
        gone_here = self._gone.get(uid)
        if gone_here is not None:
            for counted in plan.counted:
                gone_here.pop(counted, None)
            if not gone_here:
                del self._gone[uid]
        for kind, reason, message in plan.events:
            self.events.record(JOBS, job, kind, reason, message)
        if problem is not None:
            raise problem  # retried with backoff by the queue
        if plan.recheck is not None:
            return plan.recheck + 0.05
        if finished_condition({"status": status}) is not None:
            return self._expire({**job, "status": status}, now)
        return None

    def sync_orphan(self, ns: str, name: str) -> None:
        """syncOrphanPod: a pod with the finalizer whose Job is gone, being deleted, finished, or not its
        controller any more loses the finalizer; one whose Job runs is left to that Job's sync."""
        pod = self.store.get(PODS.key, ns, name)
        if pod is None or not tracked(pod):
            return
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") == JOBS.kind and ref.get("apiVersion") == JOBS.api_version:
            job = self.store.get(JOBS.key, ns, ref.get("name", ""))
            if job is not None and job["metadata"].get("uid") == ref.get("uid"):
                if not job["metadata"].get("deletionTimestamp") and finished_condition(job) is None:
                    self.queue.add((ns, job["metadata"]["name"]))  # the Job's own sync counts it
                    return
        self._release(None, [pod])

    def _pods_of(self, ns: str, uid: str) -> list[dict[str, Any]]:
        pods = []
        for name in self.pods.owned(uid):
            pod = self.store.get(PODS.key, ns, name)
            if pod is None:
                self.pods.remove(ns, name)
                continue
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") == uid:
                pods.append(pod)
        return pods

    def _release(self, job: dict[str, Any] | None, pods: list[dict[str, Any]]) -> None:
        """Remove the tracking finalizer from `pods` (a pod marked for deletion then goes)."""
        for pod in pods:
            meta = pod["metadata"]
            current = self.store.get(PODS.key, meta["namespace"], meta["name"])
            if current is None or current["metadata"].get("uid") != meta["uid"] or not tracked(current):
                continue
            finalizers = [f for f in current["metadata"].get("finalizers") or [] if f != TRACKING_FINALIZER]
            new_meta = {k: v for k, v in current["metadata"].items() if k != "finalizers"}
            if finalizers:
                new_meta["finalizers"] = finalizers
            released = self._released.setdefault(job["metadata"]["uid"], set()) if job is not None else set()
            released.add(meta["uid"])  # its DELETED event still shows the finalizer: not a forced removal
            try:
                self.registry.replace_object(PODS, current, {**current, "metadata": new_meta})
            except errors.StatusError as exc:
                released.discard(meta["uid"])
                if exc.code == 404:
                    continue
                if job is not None:
                    self.events.record(JOBS, job, "Warning", "FailedUpdate", f"Error removing the finalizer of pod {meta['name']}: {exc.message}")
                raise  # retried by the queue; the uids stay listed as uncounted meanwhile

    def _delete_pods(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> errors.StatusError | None:
        ns = job["metadata"]["namespace"]
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            try:
                self.registry.delete(PODS, ns, meta["name"], preconditions={"uid": meta["uid"]})
            except errors.StatusError as exc:
                if exc.code != 404:
                    self.events.record(JOBS, job, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
                    return exc
            else:
                self.events.record(JOBS, job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")
        return None

    def _expire(self, job: dict[str, Any], now: float) -> float | None:
        """The TTL-after-finished controller: delete the Job when its time is up, else look again then."""
        remaining = ttl_remaining(job, now)
        if remaining is None:
            return None
        if remaining > 0:
            return remaining + 0.05
        meta = job["metadata"]
        try:
            self.registry.delete(JOBS, meta["namespace"], meta["name"], preconditions={"uid": meta["uid"]}, propagation="Foreground")
        except errors.StatusError as exc:
            if exc.code != 404:
                raise
        log.debug("deleted job %s/%s: its ttlSecondsAfterFinished passed", meta["namespace"], meta["name"])
        return None
