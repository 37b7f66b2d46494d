"""The CronJob controller (kube-controller-manager's cronjob controller, v2): creates a Job from the
template at each scheduled time, named `<cronjob>-<scheduled time in minutes since the epoch>`, with
the annotation `batch.kubernetes.io/cronjob-scheduled-timestamp`.

Events only mark a CronJob dirty; `sync` reads it and its Jobs and:
- keeps `status.active` (Jobs it started that have not finished: SawCompletedJob when one finishes,
  MissingJob when one is gone) and `status.lastSuccessfulTime`;
- deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit`;
- unless suspended, starts the most recent missed schedule (no earlier than `lastScheduleTime`, the
  creation time, or `startingDeadlineSeconds` ago), obeying `concurrencyPolicy` (Forbid skips while a
  Job is active, Replace deletes the active ones first), then looks again at the next scheduled time.

The schedule is computed with `croniter` in the CronJob's `timeZone` (UTC when unset, as a
kube-controller-manager on UTC). The decisions are pure functions of the time (`most_recent_schedule`,
`jobs_to_delete`, `job_name`); the controller's clock is injectable.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import orjson

from emulator import errors
from emulator.controllers.replicaset import EventRecorder, OwnedIndex, controller_ref, owner_reference
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import CRON_JOBS, JOBS
from emulator.kinds.cronjob import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    ScheduleError,
    location,
    next_schedule_after,
    parse_schedule,
)
from emulator.kinds.job import COMPLETE, FAILED, finished_condition
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.timestamps import parse_rfc3339, rfc3339

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)

MAX_MISSED = 100  # more missed start times than this is reported (TooManyMissedTimes)
NEVER = 3600.0  # how long to wait when a schedule never fires again ("30 2 31 2 *")


# -- pure decisions ----------------------------------------------------------------------------------


def most_recent_schedule(schedule: str, zone: tzinfo, earliest: datetime, now: datetime) -> tuple[datetime | None, int]:
    """The latest scheduled time in (earliest, now], and how many there are (counted up to MAX_MISSED + 1):
    getMostRecentScheduleTime. (None, 0) when nothing is due."""
    from croniter import croniter  # (loaded with the first CronJob, as in emulator/kinds/cronjob.py)

    expression = parse_schedule(schedule)
    times = croniter(expression, earliest.astimezone(zone))
    first: datetime = times.get_next(datetime)
    if first > now:
        return None, 0
    missed = 1
    while missed <= MAX_MISSED:
        following: datetime = times.get_next(datetime)
        if following > now:
            return first if missed == 1 else previous_at_or_before(expression, zone, now), missed
        missed += 1
    return previous_at_or_before(expression, zone, now), missed


def previous_at_or_before(expression: str, zone: tzinfo, now: datetime) -> datetime:
    from croniter import croniter

    result: datetime = croniter(expression, (now + timedelta(microseconds=1)).astimezone(zone)).get_prev(datetime)
    return result


def earliest_time(cron_job: dict[str, Any], now: datetime) -> datetime:
    """Where missed schedules start: the last scheduled time (else the creation), but no earlier than
    startingDeadlineSeconds ago."""
    status, meta, spec = cron_job.get("status") or {}, cron_job["metadata"], cron_job.get("spec") or {}
    earliest = parse_rfc3339(status.get("lastScheduleTime")) or parse_rfc3339(meta.get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=int(deadline)))
    return earliest


def job_name(cron_job_name: str, scheduled: datetime) -> str:
    """getJobName: the scheduled time in minutes since the epoch."""
    return f"{cron_job_name}-{int(scheduled.timestamp()) // 60}"


def go_rfc3339(moment: datetime) -> str:
    """time.RFC3339 as Go formats it: `Z` for a zero offset, `+hh:mm` otherwise."""
    offset = moment.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.isoformat(timespec="seconds")


def _by_start_time(a: dict[str, Any], b: dict[str, Any]) -> int:
    """byJobStartTime: jobs without a start time last; ties by name."""
    ta, tb = (a.get("status") or {}).get("startTime"), (b.get("status") or {}).get("startTime")
    if ta != tb:
        if ta is None or tb is None:
            return 1 if ta is None else -1
        pa, pb = parse_rfc3339(ta), parse_rfc3339(tb)
        if pa is not None and pb is not None and pa != pb:
            return -1 if pa < pb else 1
    na, nb = a["metadata"]["name"], b["metadata"]["name"]
    return -1 if na < nb else 1 if na > nb else 0


def jobs_to_delete(jobs: list[dict[str, Any]], successful_limit: int | None, failed_limit: int | None) -> list[dict[str, Any]]:
    """cleanupFinishedJobs: the oldest finished Jobs beyond each history limit."""
    doomed: list[dict[str, Any]] = []
    for kind, limit in ((COMPLETE, successful_limit), (FAILED, failed_limit)):
        if limit is None:
            continue
        finished = [j for j in jobs if (finished_condition(j) or {}).get("type") == kind]
        if len(finished) > limit:
            finished.sort(key=functools.cmp_to_key(_by_start_time))
            doomed += finished[: len(finished) - limit]
    return doomed


def job_from_template(cron_job: dict[str, Any], scheduled: datetime, zone: tzinfo) -> dict[str, Any]:
    """getJobFromTemplate2: the template's labels, annotations (plus the scheduled time) and spec."""
    template = orjson.loads(orjson.dumps((cron_job.get("spec") or {}).get("jobTemplate") or {}))
    meta = template.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = go_rfc3339(scheduled.astimezone(zone))
    job_meta: dict[str, Any] = {
        "name": job_name(cron_job["metadata"]["name"], scheduled),
        "annotations": annotations,
        "ownerReferences": [owner_reference(CRON_JOBS, cron_job)],
    }
    if meta.get("labels"):
        job_meta["labels"] = dict(meta["labels"])
    return {"apiVersion": JOBS.api_version, "kind": JOBS.kind, "metadata": job_meta, "spec": template.get("spec") or {}}


def job_reference(job: dict[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "apiVersion": JOBS.api_version, "kind": JOBS.kind, "name": meta["name"], "namespace": meta["namespace"],
        "resourceVersion": meta.get("resourceVersion", ""), "uid": meta["uid"],
    }


# -- the controller ----------------------------------------------------------------------------------


class CronJobController:
    def __init__(self, registry: Registry, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.store = registry.store
        self.clock = clock
        self.queue: WorkQueue[Key] = WorkQueue("cronjob", self.sync)
        self.jobs = OwnedIndex()
        self.events = EventRecorder(registry, "cronjob-controller")
        self._by_uid: dict[str, Key] = {}
        self._uid_of: dict[Key, str] = {}

    # -- events ------------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.resource == JOBS.key:
            self._on_job(event)
        elif event.resource == CRON_JOBS.key:
            self._on_cron_job(event)

    def _on_job(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        if event.type == DELETED:
            previous = self.jobs.remove(ns, name)
        else:
            ref = controller_ref(event.obj) if b'"ownerReferences"' in event.raw else None
            if ref is None or ref.get("kind") != CRON_JOBS.kind or ref.get("apiVersion") != CRON_JOBS.api_version:
                previous = self.jobs.remove(ns, name)
            else:
                uid = ref.get("uid", "")
                previous = self.jobs.set(ns, name, uid)
                self._enqueue(uid)
        if previous:
            self._enqueue(previous)

    def _enqueue(self, uid: str) -> None:
        key = self._by_uid.get(uid)
        if key is not None:
            self.queue.add(key)

    def _on_cron_job(self, event: Event) -> None:
        key: Key = (event.namespace, event.name)
        old = self._uid_of.pop(key, None)
        if old is not None:
            self._by_uid.pop(old, None)
        if event.type == DELETED:
            self.queue.forget(key)
            if old is not None:
                self.events.forget(old)
            return
        uid = event.obj["metadata"].get("uid", "")
        self._uid_of[key] = uid
        self._by_uid[uid] = key
        self.queue.add(key)

    # -- sync --------------------------------------------------------------------------------------

    def sync(self, key: Key) -> float | None:
        ns, name = key
        cron_job = self.store.get(CRON_JOBS.key, ns, name)
        if cron_job is None or cron_job["metadata"].get("deletionTimestamp"):
            return None
        spec = cron_job.get("spec") or {}
        uid = cron_job["metadata"]["uid"]
        now = datetime.fromtimestamp(self.clock(), UTC)
        jobs = self._jobs_of(ns, uid)
        status = dict(cron_job.get("status") or {})
        active = self._reconcile_active(cron_job, jobs, status)
        for job in jobs_to_delete(jobs, spec.get("successfulJobsHistoryLimit"), spec.get("failedJobsHistoryLimit")):
            self._delete_job(cron_job, job)
        recheck: float | None = None
        problem: errors.StatusError | None = None
        if not spec.get("suspend"):
            try:
                zone = location(spec.get("timeZone"))
                parse_schedule(spec.get("schedule") or "")
            except (ScheduleError, ValueError, KeyError) as exc:
                reason = "UnknownTimeZone" if spec.get("timeZone") else "UnparseableSchedule"
                self.events.record(CRON_JOBS, cron_job, "Warning", reason, str(exc))
                return None
            problem = self._run_due(cron_job, now, zone, active, status)
            from croniter import CroniterBadDateError

            try:
                recheck = (next_schedule_after(spec["schedule"], zone, now) - now).total_seconds() + 0.1
            except CroniterBadDateError:  # a schedule that never fires ("0 0 30 2 *")
                recheck = NEVER
        if active:
            status["active"] = active
        else:
            status.pop("active", None)
        if status != (cron_job.get("status") or {}):
            self.registry.replace_object(CRON_JOBS, cron_job, {**cron_job, "status": status}, subresource="status")
        if problem is not None:
            raise problem
        return recheck

    def _jobs_of(self, ns: str, uid: str) -> list[dict[str, Any]]:
        jobs = []
        for name in self.jobs.owned(uid):
            job = self.store.get(JOBS.key, ns, name)
            if job is None:
                self.jobs.remove(ns, name)
                continue
            ref = controller_ref(job)
            if ref is not None and ref.get("uid") == uid:
                jobs.append(job)
        return jobs

    def _reconcile_active(self, cron_job: dict[str, Any], jobs: list[dict[str, Any]], status: dict[str, Any]) -> list[dict[str, Any]]:
        """status.active less the finished and the missing Jobs; lastSuccessfulTime from the finished."""
        active = [dict(ref) for ref in status.get("active") or []]
        children = {job["metadata"]["uid"] for job in jobs}
        last_success = parse_rfc3339(status.get("lastSuccessfulTime"))
        for job in jobs:
            condition = finished_condition(job)
            job_uid = job["metadata"]["uid"]
            if condition is None:
                if not any(ref.get("uid") == job_uid for ref in active):
                    # (a Job made by `kubectl create job --from=cronjob/...`, or lost from the status)
                    self.events.record(CRON_JOBS, cron_job, "Warning", "UnexpectedJob", f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}")
                continue
            if any(ref.get("uid") == job_uid for ref in active):
                active = [ref for ref in active if ref.get("uid") != job_uid]
                self.events.record(CRON_JOBS, cron_job, "Normal", "SawCompletedJob", f"Saw completed job: {job['metadata']['name']}, condition: {condition.get('type')}")
            completed = parse_rfc3339((job.get("status") or {}).get("completionTime"))
            if condition.get("type") == COMPLETE and completed is not None and (last_success is None or completed > last_success):
                last_success = completed
                status["lastSuccessfulTime"] = (job.get("status") or {})["completionTime"]
        for ref in list(active):
            if ref.get("uid") in children:
                continue
            found = self.store.get(JOBS.key, ref.get("namespace") or cron_job["metadata"]["namespace"], ref.get("name", ""))
            if found is None or found["metadata"].get("uid") != ref.get("uid"):
                active.remove(ref)
                self.events.record(CRON_JOBS, cron_job, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
        return active

    def _run_due(self, cron_job: dict[str, Any], now: datetime, zone: tzinfo, active: list[dict[str, Any]],
                 status: dict[str, Any]) -> errors.StatusError | None:
        """Start the most recent missed schedule, if any and if the concurrency policy allows."""
        spec = cron_job.get("spec") or {}
        scheduled, missed = most_recent_schedule(spec["schedule"], zone, earliest_time(cron_job, now), now)
        if scheduled is None:
            return None
        if missed > MAX_MISSED:
            self.events.record(CRON_JOBS, cron_job, "Warning", "TooManyMissedTimes",
                               f"too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew")
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            log.debug("cronjob %s/%s: not starting a job while one is active", cron_job["metadata"]["namespace"], cron_job["metadata"]["name"])
            return None
        if policy == "Replace":
            for ref in list(active):
                current = self.store.get(JOBS.key, ref.get("namespace") or cron_job["metadata"]["namespace"], ref.get("name", ""))
                if current is not None and self._delete_job(cron_job, current) is not None:
                    return None
                active.remove(ref)
        body = job_from_template(cron_job, scheduled, zone)
        ns = cron_job["metadata"]["namespace"]
        try:
            job = self.registry.create(JOBS, ns, body).obj
        except errors.StatusError as exc:
            existing = self.store.get(JOBS.key, ns, body["metadata"]["name"]) if exc.code == 409 else None
            owner = controller_ref(existing) if existing is not None else None
            if existing is None or owner is None or owner.get("uid") != cron_job["metadata"]["uid"]:
                self.events.record(CRON_JOBS, cron_job, "Warning", "FailedCreate", f"Error creating job: {exc.message}")
                return exc
            job = existing  # created by an earlier sync whose status write failed
        else:
            self.jobs.set(ns, job["metadata"]["name"], cron_job["metadata"]["uid"])
            self.events.record(CRON_JOBS, cron_job, "Normal", "SuccessfulCreate", f"Created job {job['metadata']['name']}")
        if finished_condition(job) is None and not any(r.get("uid") == job["metadata"]["uid"] for r in active):
            active.append(job_reference(job))
        status["lastScheduleTime"] = rfc3339(scheduled.timestamp())
        return None

    def _delete_job(self, cron_job: dict[str, Any], job: dict[str, Any]) -> errors.StatusError | None:
        meta = job["metadata"]
        try:
            self.registry.delete(JOBS, meta["namespace"], meta["name"], preconditions={"uid": meta["uid"]}, propagation="Background")
        except errors.StatusError as exc:
            if exc.code != 404:
                self.events.record(CRON_JOBS, cron_job, "Warning", "FailedDelete", f"Deleted job: {exc.message}")
                return exc
            return None
        self.jobs.remove(meta["namespace"], meta["name"])
        self.events.record(CRON_JOBS, cron_job, "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}")
        return None
