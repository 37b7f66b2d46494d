"""The Job controller (kube-controller-manager's job controller, with the TTL-after-finished controller's
one duty): runs a Job's pods until enough of them succeed, or until it fails.

Events only mark a Job dirty (emulator/controllers/workqueue.py); `sync` reads the Job and its pods and
acts on what `plan_job` decides from them — a pure function of the Job, its pods and the time:

- pods: up to `parallelism` active pods while completions remain, named `<job>-<5 random chars>`; an
  Indexed Job's pods are `<job>-<index>-<5 chars>` with the completion index as annotation, label,
  hostname `<job>-<index>` and env JOB_COMPLETION_INDEX. After a failure, new pods wait 10 s, doubling
  per failure up to 6 min (the pod failure backoff).
- status: startTime (reset while suspended), active, ready, terminating, succeeded, failed (counted
  from the pods' phases and never decreasing), completedIndexes, uncountedTerminatedPods (always
  empty: the `batch.kubernetes.io/job-tracking` finalizer is not used, see docs/jobs.md).
- finishing: `succeeded` reaching `completions` adds SuccessCriteriaMet then Complete (with
  completionTime); more failures than `backoffLimit`, or running longer than `activeDeadlineSeconds`,
  add FailureTarget then Failed (BackoffLimitExceeded, DeadlineExceeded) and delete the active pods.
- `suspend: true` deletes the active pods and adds the Suspended condition; resuming restarts the clock.
- `ttlSecondsAfterFinished`: that long after it finished, the Job is deleted (Foreground propagation,
  as the TTL-after-finished controller does: its pods go first).

Pods here have no kubelet: they are Running and Ready from creation until a client sets their phase
through the `status` subresource.
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
    finished_at,
    finished_condition,
)
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.timestamps import parse_rfc3339, rfc3339

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)

FAILURE_BACKOFF = 10.0  # seconds before the pod after a first failure (DefaultJobPodFailureBackOff)
MAX_FAILURE_BACKOFF = 360.0
BURST_PODS = 500  # pod creations or deletions per sync
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


@dataclass
class JobPlan:
    """What one sync of a Job does: pods to create (their completion indexes, None when NonIndexed),
    pods to delete, the status to write, events to record and when to look again."""

    status: dict[str, Any]
    create: list[int | None] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    recheck: float | None = None

    def later(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.recheck = seconds if self.recheck is None else min(self.recheck, seconds)


def plan_job(job: dict[str, Any], pods: list[dict[str, Any]], now: float, last_failure: float | None = None,
             backoff: float = FAILURE_BACKOFF) -> JobPlan:
    """syncJob's decisions for an unfinished Job, given its pods (those it controls) and the time;
    `last_failure` is when the controller last saw one of its pods fail."""
    spec, old = job.get("spec") or {}, job.get("status") or {}
    stamp = rfc3339(now)
    conditions = [dict(c) for c in old.get("conditions") or []]
    active = [p for p in pods if is_active(p)]
    indexed = spec.get("completionMode") == INDEXED
    completions = spec.get("completions")
    parallelism = _int(spec.get("parallelism"), 1)
    failed = max(int(old.get("failed") or 0), sum(1 for p in pods if phase(p) == "Failed"))
    completed: set[int] = set()
    if indexed:
        total = int(completions or 0)
        completed = parse_indexes(old.get("completedIndexes"), total)
        completed |= {i for p in pods if phase(p) == "Succeeded" and (i := completion_index(p)) is not None and 0 <= i < total}
        succeeded = len(completed)
    else:
        succeeded = max(int(old.get("succeeded") or 0), sum(1 for p in pods if phase(p) == "Succeeded"))
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
        else:
            _manage(plan, spec, active, succeeded, completed, indexed, parallelism)
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
    status["terminating"] = sum(1 for p in pods if p["metadata"].get("deletionTimestamp") and phase(p) not in ("Succeeded", "Failed"))
    if completed:
        status["completedIndexes"] = format_indexes(completed)
    status["uncountedTerminatedPods"] = {}
    status["ready"] = sum(1 for p in remaining if is_ready(p))
    plan.status = status
    return plan


def _manage(plan: JobPlan, spec: dict[str, Any], active: list[dict[str, Any]], succeeded: int, completed: set[int],
            indexed: bool, parallelism: int) -> None:
    """manageJob: how many pods should be running, and which to start or stop."""
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
        room = parallelism - len(running)
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
    elif len(active) < want:
        plan.create = [None] * min(want - len(active), BURST_PODS)


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
    if template_meta.get("finalizers"):
        pod_meta["finalizers"] = template_meta["finalizers"]
    return {"metadata": pod_meta, "spec": pod_spec}


# -- the controller ----------------------------------------------------------------------------------


class JobController:
    def __init__(self, registry: Registry, clock: Callable[[], float] = time.time, backoff: float = FAILURE_BACKOFF) -> None:
        self.registry = registry
        self.store = registry.store
        self.clock = clock
        self.backoff = backoff
        self.queue: WorkQueue[Key] = WorkQueue("job", self.sync)
        self.pods = OwnedIndex()
        self.events = EventRecorder(registry, "job-controller")
        self._by_uid: dict[str, Key] = {}
        self._uid_of: dict[Key, str] = {}
        self._failed_pods: dict[str, set[str]] = {}  # job uid -> uids of the failed pods seen
        self._last_failure: dict[str, float] = {}  # job uid -> when the last new failure was seen

    # -- events ------------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            self._on_pod(event)
        elif event.resource == JOBS.key:
            self._on_job(event)

    def _on_pod(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        if event.type == DELETED:
            previous = self.pods.remove(ns, name)
        else:
            ref = controller_ref(event.obj) if b'"ownerReferences"' in event.raw else None
            if ref is None or ref.get("kind") != JOBS.kind or ref.get("apiVersion") != JOBS.api_version:
                previous = self.pods.remove(ns, name)
            else:
                uid = ref.get("uid", "")
                previous = self.pods.set(ns, name, uid)
                self._enqueue(uid)
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
                self._failed_pods.pop(old, None)
                self._last_failure.pop(old, None)
            return
        uid = event.obj["metadata"].get("uid", "")
        self._uid_of[key] = uid
        self._by_uid[uid] = key
        self.queue.add(key)

    # -- sync --------------------------------------------------------------------------------------

    def sync(self, key: Key) -> float | None:
        ns, name = key
        job = self.store.get(JOBS.key, ns, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return None
        if (job.get("spec") or {}).get("managedBy", MANAGED_BY) != MANAGED_BY:
            return None  # another controller's Job (spec.managedBy)
        uid = job["metadata"]["uid"]
        pods = self._pods_of(ns, uid)
        now = self.clock()
        if finished_condition(job) is not None:
            self._delete_pods(job, [p for p in pods if is_active(p)])
            return self._expire(job, now)
        self._note_failures(uid, pods, now)
        plan = plan_job(job, pods, now, self._last_failure.get(uid), self.backoff)
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
        status = plan.status
        missing = len(plan.create) - created
        if missing:
            status["active"] = int(status.get("active") or 0) - missing
            if not status["active"]:
                del status["active"]
        if status != job.get("status"):
            self.registry.replace_object(JOBS, job, {**job, "status": status}, subresource="status")
        for kind, reason, message in plan.events:
            self.events.record(JOBS, job, kind, reason, message)
        if problem is not None:
            raise problem  # retried with backoff by the queue
        if plan.recheck is not None:
            return plan.recheck + 0.05
        if finished_condition({"status": status}) is not None:
            return self._expire({**job, "status": status}, now)
        return None

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

    def _note_failures(self, uid: str, pods: list[dict[str, Any]], now: float) -> None:
        seen = self._failed_pods.setdefault(uid, set())
        for pod in pods:
            if phase(pod) == "Failed" and pod["metadata"]["uid"] not in seen:
                seen.add(pod["metadata"]["uid"])
                self._last_failure[uid] = now

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
