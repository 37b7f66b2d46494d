"""Jobs and CronJobs in process: the kinds (defaults, selector generation, validation, columns), the pure
decisions of the Job and CronJob controllers (which pods to start, when a Job is finished, which
schedule is due, which Jobs to delete), and the controllers' syncs run by hand on a real in-memory
`Store` and `Registry` with a clock the test sets — no waiting for real minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from emulator import errors
from emulator.controllers.cronjob import (
    CronJobController,
    earliest_time,
    go_rfc3339,
    job_from_template,
    job_name,
    jobs_to_delete,
    most_recent_schedule,
)
from emulator.controllers.job import (
    JobController,
    failure_backoff,
    format_indexes,
    parse_indexes,
    plan_job,
    pod_from_template,
    ttl_remaining,
)
from emulator.kinds import CRON_JOBS, EVENTS, JOBS, NAMESPACES, PODS, SERVICE_ACCOUNTS
from emulator.kinds.cronjob import PRINTER as CRON_JOB_PRINTER
from emulator.kinds.cronjob import ScheduleError, parse_schedule
from emulator.kinds.job import PRINTER as JOB_PRINTER
from emulator.kinds.job import finished_condition
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store
from emulator.timestamps import rfc3339

NS = "batch"
# the controllers' clock: an hour boundary a day from now (objects are created at the real time, and a
# CronJob runs no schedule from before its creation), plus 30 s
BASE = (int(time.time()) // 3600 + 24) * 3600
T0 = BASE + 30.0


def moment(minute: int, second: int = 0) -> datetime:
    return datetime.fromtimestamp(BASE + minute * 60 + second, UTC)


# -- objects -----------------------------------------------------------------------------------------


def job(name: str = "pi", **spec: Any) -> dict[str, Any]:
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox"}]}}
    return {"metadata": {"name": name}, "spec": {"template": template, **spec}}


def cron_job(name: str = "tick", schedule: str = "* * * * *", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"schedule": schedule, "jobTemplate": {"metadata": {"labels": {"team": "data"}}, "spec": job()["spec"]}, **spec}}


def pod(name: str, phase: str = "Running", index: int | None = None, ready: bool = True, counted: bool = False) -> dict[str, Any]:
    """A pod of the Job; `counted`: the controller counted it already (its finalizer is gone)."""
    meta: dict[str, Any] = {"name": name, "namespace": NS, "uid": f"uid-{name}", "creationTimestamp": rfc3339(T0)}
    if not counted:
        meta["finalizers"] = ["batch.kubernetes.io/job-tracking"]
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    conditions = [{"type": "Ready", "status": "True" if ready and phase == "Running" else "False"}]
    return {"metadata": meta, "spec": {}, "status": {"phase": phase, "conditions": conditions}}


def stored_job(**spec: Any) -> dict[str, Any]:
    """A Job as the API server stores it (defaults applied), for the pure decisions."""
    body = job(**spec)
    body["metadata"].update(uid="job-uid", namespace=NS)
    body["spec"].setdefault("completions", 1)
    body["spec"].setdefault("parallelism", 1)
    body["spec"].setdefault("backoffLimit", 6)
    body["spec"].setdefault("completionMode", "NonIndexed")
    return body


def types(status: dict[str, Any]) -> list[str]:
    return [c["type"] for c in status.get("conditions") or [] if c["status"] == "True"]


# -- the kinds ---------------------------------------------------------------------------------------


@dataclass
class World:
    store: Store
    registry: Registry
    now: list[float]
    jobs: JobController
    cron_jobs: CronJobController

    async def settle(self) -> None:
        await self.store.settled(self.store.rv)

    def get(self, rt: Any, name: str) -> dict[str, Any]:
        found = self.store.get(rt.key, NS, name)
        assert found is not None, name
        return found

    def objects(self, rt: Any) -> list[dict[str, Any]]:
        return list(self.store.objects(rt.key, NS))

    def set_phase(self, name: str, phase: str) -> None:
        current = self.get(PODS, name)
        self.registry.replace_object(PODS, current, {**current, "status": {**current["status"], "phase": phase}}, subresource="status")

    def finish_job(self, name: str, kind: str = "Complete", started: float | None = None) -> None:
        current = self.get(JOBS, name)
        stamp = rfc3339(self.now[0])
        status = {"conditions": [{"type": kind, "status": "True", "lastTransitionTime": stamp}], "startTime": rfc3339(started or self.now[0])}
        if kind == "Complete":
            status["completionTime"] = stamp
        self.registry.replace_object(JOBS, current, {**current, "status": status}, subresource="status")

    def create_cron_job(self, body: dict[str, Any]) -> None:
        """Created now, but scheduled as if it had last run at BASE (the clock's day)."""
        stored = self.registry.create(CRON_JOBS, NS, body).obj
        self.registry.replace_object(CRON_JOBS, stored, {**stored, "status": {"lastScheduleTime": rfc3339(BASE)}}, subresource="status")

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.objects(EVENTS)]


@pytest.fixture
async def world() -> World:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")))
    now = [T0]
    w = World(store, registry, now, JobController(registry, clock=lambda: now[0], backoff=10.0), CronJobController(registry, clock=lambda: now[0]))
    store.subscribe(w.jobs.apply)
    store.subscribe(w.cron_jobs.apply)
    registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    registry.create(SERVICE_ACCOUNTS, NS, {"metadata": {"name": "default"}})
    await w.settle()
    return w


def invalid(call: Callable[[], Any]) -> str:
    with pytest.raises(errors.StatusError) as caught:
        call()
    assert caught.value.code == 422, caught.value.message
    return caught.value.message


async def test_a_job_gets_a_generated_selector_labels_and_defaults(world: World) -> None:
    stored = world.registry.create(JOBS, NS, job()).obj
    uid, spec = stored["metadata"]["uid"], stored["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid, "batch.kubernetes.io/job-name": "pi", "job-name": "pi"}
    assert spec["template"]["metadata"]["labels"] == labels
    assert stored["metadata"]["labels"] == labels  # the Job takes its template's labels when it has none
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"], spec["completionMode"], spec["suspend"]) == (1, 1, 6, "NonIndexed", False)
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert stored["metadata"]["generation"] == 1 and "status" not in stored


async def test_parallelism_alone_leaves_completions_unset(world: World) -> None:
    spec = world.registry.create(JOBS, NS, job(parallelism=3)).obj["spec"]
    assert spec["parallelism"] == 3 and "completions" not in spec


async def test_a_job_selector_is_generated_unless_manual(world: World) -> None:
    message = invalid(lambda: world.registry.create(JOBS, NS, job(selector={"matchLabels": {"app": "x"}})))
    assert "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"" in message
    assert "`selector` not auto-generated" in message
    body = job("manual", manualSelector=True, selector={"matchLabels": {"app": "x"}})
    body["spec"]["template"]["metadata"] = {"labels": {"app": "x"}}
    stored = world.registry.create(JOBS, NS, body).obj
    assert stored["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert stored["spec"]["template"]["metadata"]["labels"] == {"app": "x"}
    missing = job("nosel", manualSelector=True)
    assert "spec.selector: Required value" in invalid(lambda: world.registry.create(JOBS, NS, missing))


async def test_job_validation_messages(world: World) -> None:
    body = job(completions=-1, completionMode="Indexed", parallelism=2)
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    message = invalid(lambda: world.registry.create(JOBS, NS, body))
    assert "spec.completions: Invalid value: -1: must be greater than or equal to 0" in message
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"' in message
    indexed = job(completionMode="Indexed", parallelism=2)
    assert "spec.completions: Required value: when completion mode is Indexed" in invalid(lambda: world.registry.create(JOBS, NS, indexed))


async def test_a_jobs_template_is_immutable_but_its_parallelism_is_not(world: World) -> None:
    stored = world.registry.create(JOBS, NS, job(completions=4, parallelism=1)).obj
    changed = {**stored, "spec": {**stored["spec"], "parallelism": 3}}
    updated = world.registry.replace_object(JOBS, stored, changed).obj
    assert updated["spec"]["parallelism"] == 3 and updated["metadata"]["generation"] == 2
    template = {**updated["spec"]["template"], "spec": {**updated["spec"]["template"]["spec"], "activeDeadlineSeconds": 5}}
    message = invalid(lambda: world.registry.replace_object(JOBS, updated, {**updated, "spec": {**updated["spec"], "template": template}}))
    assert "spec.template: Invalid value" in message and "field is immutable" in message
    message = invalid(lambda: world.registry.replace_object(JOBS, updated, {**updated, "spec": {**updated["spec"], "completions": 5}}))
    assert "spec.completions: Invalid value: 5: field is immutable" in message


async def test_a_cron_job_gets_defaults(world: World) -> None:
    spec = world.registry.create(CRON_JOBS, NS, cron_job()).obj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert "backoffLimit" not in spec["jobTemplate"]["spec"]  # a job template is not defaulted as a Job


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schedule": ""}, "spec.schedule: Required value"),
        ({"schedule": "* * *"}, 'spec.schedule: Invalid value: "* * *": expected exactly 5 fields, found 3: [* * *]'),
        ({"schedule": "61 * * * *"}, 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61'),
        ({"schedule": "0 0 * * 7"}, 'spec.schedule: Invalid value: "0 0 * * 7": end of range (7) above maximum (6): 7'),
        ({"schedule": "x * * * *"}, 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ({"schedule": "@fortnightly"}, 'spec.schedule: Invalid value: "@fortnightly": unrecognized descriptor: @fortnightly'),
        ({"schedule": "CRON_TZ=UTC 0 * * * *"}, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        ({"timeZone": "Local"}, 'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones'),
        ({"timeZone": "Nowhere/Town"}, 'spec.timeZone: Invalid value: "Nowhere/Town": unknown time zone Nowhere/Town'),
        ({"concurrencyPolicy": "Never"}, 'spec.concurrencyPolicy: Unsupported value: "Never": supported values: "Allow", "Forbid", "Replace"'),
        ({"startingDeadlineSeconds": -5}, "spec.startingDeadlineSeconds: Invalid value: -5: must be greater than or equal to 0"),
        ({"successfulJobsHistoryLimit": -1}, "spec.successfulJobsHistoryLimit: Invalid value: -1"),
    ],
)
async def test_cron_job_validation_messages(world: World, change: dict[str, Any], message: str) -> None:
    body = cron_job()
    body["spec"].update(change)
    assert message in invalid(lambda: world.registry.create(CRON_JOBS, NS, body))
    assert world.objects(CRON_JOBS) == []


async def test_a_cron_job_name_leaves_room_for_the_job_suffix(world: World) -> None:
    assert "must be no more than 52 characters" in invalid(lambda: world.registry.create(CRON_JOBS, NS, cron_job("x" * 53)))
    world.registry.create(CRON_JOBS, NS, cron_job("x" * 52))


async def test_a_cron_job_template_must_restart_never_or_on_failure(world: World) -> None:
    body = cron_job()
    body["spec"]["jobTemplate"]["spec"]["template"]["spec"].pop("restartPolicy")
    message = invalid(lambda: world.registry.create(CRON_JOBS, NS, body))
    assert 'spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: "Always"' in message


def test_schedules_as_robfig_cron_reads_them() -> None:
    assert parse_schedule("@hourly") == "0 * * * *"
    assert parse_schedule(" */5 * * * 1-5 ") == "*/5 * * * 1-5"
    assert parse_schedule("0 9 ? JAN-MAR mon-fri") == "0 9 * JAN-MAR mon-fri"
    for bad in ("", "* * * * * *", "@reboot", "a b c d e"):
        with pytest.raises(ScheduleError):
            parse_schedule(bad)


# -- columns -----------------------------------------------------------------------------------------


def test_job_columns() -> None:
    now = datetime.fromtimestamp(T0 + 90, UTC)
    running = stored_job(completions=3)
    running["metadata"]["creationTimestamp"] = rfc3339(T0)
    running["status"] = {"startTime": rfc3339(T0), "succeeded": 1}
    assert [c.name for c in JOB_PRINTER.columns] == ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]
    cells = JOB_PRINTER.cells(running, now)
    assert cells[:5] == ["pi", "Running", "1/3", "90s", "90s"]
    done = {**running, "status": {**running["status"], "completionTime": rfc3339(T0 + 12), "conditions": [{"type": "Complete", "status": "True"}]}}
    assert JOB_PRINTER.cells(done, now)[1:4] == ["Complete", "1/3", "12s"]
    queue = stored_job(parallelism=4)
    queue["spec"].pop("completions")
    assert JOB_PRINTER.cells(queue, now)[1:4] == ["Running", "0/1 of 4", ""]
    suspended = {**queue, "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}
    assert JOB_PRINTER.cells(suspended, now)[1] == "Suspended"


def test_cron_job_columns() -> None:
    now = datetime.fromtimestamp(T0 + 90, UTC)
    cj = cron_job(timeZone="Europe/Berlin", suspend=True)
    cj["metadata"]["creationTimestamp"] = rfc3339(T0)
    assert [c.name for c in CRON_JOB_PRINTER.columns] == ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age", "Containers", "Images", "Selector"]
    assert CRON_JOB_PRINTER.cells(cj, now)[:7] == ["tick", "* * * * *", "Europe/Berlin", "True", 0, "<none>", "90s"]
    cj["status"] = {"active": [{"name": "tick-1"}], "lastScheduleTime": rfc3339(T0 + 30)}
    cj["spec"].pop("timeZone")
    assert CRON_JOB_PRINTER.cells(cj, now)[2:6] == ["<none>", "True", 1, "60s"]


# -- the Job controller's decisions --------------------------------------------------------------------


def test_a_new_job_starts_parallelism_pods() -> None:
    plan = plan_job(stored_job(completions=3, parallelism=2), [], T0)
    assert plan.create == [None, None] and plan.delete == []
    assert plan.status["active"] == 2 and plan.status["startTime"] == rfc3339(T0)
    assert plan.status["uncountedTerminatedPods"] == {} and plan.status["terminating"] == 0


def test_only_the_remaining_completions_are_started() -> None:
    pods = [pod("a", "Succeeded"), pod("b", "Succeeded"), pod("c")]
    plan = plan_job(stored_job(completions=3, parallelism=2), pods, T0)
    assert plan.create == [] and plan.status["succeeded"] == 2 and plan.status["active"] == 1 and plan.status["ready"] == 1


def test_enough_successes_complete_the_job_in_two_conditions() -> None:
    pods = [pod(n, "Succeeded") for n in "abc"]
    plan = plan_job(stored_job(completions=3, parallelism=2), pods, T0)
    assert types(plan.status) == ["SuccessCriteriaMet", "Complete"]
    assert {c["reason"] for c in plan.status["conditions"]} == {"CompletionsReached"}
    assert plan.status["completionTime"] == rfc3339(T0) and "active" not in plan.status
    assert plan.events == [("Normal", "Completed", "Job completed")]
    assert finished_condition({"status": plan.status}) == plan.status["conditions"][1]


def test_counts_never_go_down_when_finished_pods_are_deleted() -> None:
    job = stored_job(completions=3, parallelism=1)
    job["status"] = {"succeeded": 2, "failed": 1}
    plan = plan_job(job, [], T0)
    assert plan.status["succeeded"] == 2 and plan.status["failed"] == 1 and plan.create == [None]


def test_more_failures_than_the_backoff_limit_fail_the_job() -> None:
    pods = [pod("a", "Failed"), pod("b", "Failed"), pod("c")]
    plan = plan_job(stored_job(completions=2, parallelism=2, backoffLimit=1), pods, T0)
    assert types(plan.status) == ["FailureTarget", "Failed"]
    assert plan.status["conditions"][1]["reason"] == "BackoffLimitExceeded"
    assert [p["metadata"]["name"] for p in plan.delete] == ["c"] and "active" not in plan.status
    assert plan.events == [("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]


def test_new_pods_wait_out_the_failure_backoff() -> None:
    assert [failure_backoff(n) for n in (0, 1, 2, 3)] == [0.0, 10.0, 20.0, 40.0]
    assert failure_backoff(10) == 360.0
    failed_once = stored_job()
    failed_once["status"] = {"failed": 1}
    plan = plan_job(failed_once, [pod("a", "Failed", counted=True)], T0 + 4, last_failure=T0)
    assert plan.create == [] and plan.recheck == pytest.approx(6.0)
    assert plan_job(failed_once, [pod("a", "Failed", counted=True)], T0 + 10, last_failure=T0).create == [None]
    # a failure seen now starts the wait now
    fresh = plan_job(stored_job(), [pod("a", "Failed")], T0 + 4, last_failure=T0)
    assert fresh.create == [] and fresh.recheck == pytest.approx(10.0) and fresh.new_failures == 1


def test_finished_pods_are_listed_as_uncounted_then_released_then_counted() -> None:
    pods = [pod("a", "Succeeded"), pod("b", "Failed"), pod("c")]
    plan = plan_job(stored_job(completions=3, parallelism=1), pods, T0)
    assert plan.interim is not None
    assert plan.interim["uncountedTerminatedPods"] == {"succeeded": ["uid-a"], "failed": ["uid-b"]}
    assert "succeeded" not in plan.interim and "failed" not in plan.interim  # not counted yet
    assert [p["metadata"]["name"] for p in plan.release] == ["a", "b"]
    assert plan.status["succeeded"] == 1 and plan.status["failed"] == 1 and plan.status["uncountedTerminatedPods"] == {}


def test_a_counted_pod_is_not_counted_again() -> None:
    job = stored_job(completions=3, parallelism=1)
    job["status"] = {"succeeded": 1}
    plan = plan_job(job, [pod("a", "Succeeded", counted=True), pod("b")], T0)
    assert plan.interim is None and plan.release == [] and plan.status["succeeded"] == 1 and plan.create == []


def test_uncounted_uids_of_pods_gone_meanwhile_are_counted_once() -> None:
    """A restart between the steps: the uids on record are counted, their pods' finalizers go."""
    job = stored_job(completions=3, parallelism=1)
    job["status"] = {"succeeded": 1, "uncountedTerminatedPods": {"succeeded": ["uid-a", "uid-gone"]}}
    plan = plan_job(job, [pod("a", "Succeeded"), pod("b")], T0)
    assert plan.interim is None and [p["metadata"]["name"] for p in plan.release] == ["a"]
    assert plan.status["succeeded"] == 3 and types(plan.status) == ["SuccessCriteriaMet", "Complete"]


def test_at_most_500_finished_pods_are_taken_per_sync() -> None:
    pods = [pod(f"p{i}", "Succeeded") for i in range(502)]
    plan = plan_job(stored_job(completions=1000, parallelism=1), pods, T0)
    assert plan.interim is not None and len(plan.interim["uncountedTerminatedPods"]["succeeded"]) == 500
    assert plan.status["succeeded"] == 500 and plan.recheck == 0


def test_a_deleted_running_pod_counts_as_failed() -> None:
    deleted = pod("a")
    deleted["metadata"]["deletionTimestamp"] = rfc3339(T0)
    plan = plan_job(stored_job(completions=2, parallelism=1), [deleted], T0)
    assert plan.status["failed"] == 1 and plan.status["terminating"] == 1 and plan.new_failures == 1
    assert plan.release == [deleted]
    # with podReplacementPolicy Failed, a pod a kubelet runs counts once it failed, and keeps its place
    deleted["status"]["conditions"].append({"type": "emulator.local/Runnable", "status": "True"})
    waiting = plan_job(stored_job(completions=2, parallelism=1, podReplacementPolicy="Failed"), [deleted], T0)
    assert "failed" not in waiting.status and waiting.release == [] and waiting.create == []


def test_indexed_successes_are_recorded_as_completed_indexes_before_release() -> None:
    job = stored_job(completions=3, parallelism=3, completionMode="Indexed")
    job["status"] = {"succeeded": 1, "completedIndexes": "0"}
    pods = [pod("p0", "Succeeded", index=0, counted=True), pod("p1", "Succeeded", index=1), pod("p2", index=2)]
    plan = plan_job(job, pods, T0)
    assert plan.interim is not None and plan.interim["completedIndexes"] == "0-1" and plan.interim["succeeded"] == 2
    assert [p["metadata"]["name"] for p in plan.release] == ["p1"]
    assert plan.status["completedIndexes"] == "0-1" and plan.status["succeeded"] == 2 and plan.create == []


def test_the_active_deadline_fails_the_job_and_stops_its_pods() -> None:
    job = stored_job(activeDeadlineSeconds=30)
    job["status"] = {"startTime": rfc3339(T0)}
    early = plan_job(job, [pod("a")], T0 + 10)
    assert early.create == [] and early.recheck == pytest.approx(20.0)
    late = plan_job(job, [pod("a")], T0 + 30)
    assert late.status["conditions"][-1]["reason"] == "DeadlineExceeded" and [p["metadata"]["name"] for p in late.delete] == ["a"]


def test_suspending_stops_the_pods_and_resuming_restarts_the_clock() -> None:
    job = stored_job(suspend=True)
    job["status"] = {"startTime": rfc3339(T0)}
    plan = plan_job(job, [pod("a")], T0 + 5)
    assert [p["metadata"]["name"] for p in plan.delete] == ["a"] and "startTime" not in plan.status
    assert types(plan.status) == ["Suspended"] and plan.events == [("Normal", "Suspended", "Job suspended")]
    resumed = {**job, "spec": {**job["spec"], "suspend": False}, "status": plan.status}
    again = plan_job(resumed, [], T0 + 50)
    assert again.create == [None] and again.status["startTime"] == rfc3339(T0 + 50)
    assert again.status["conditions"][0]["status"] == "False" and again.status["conditions"][0]["reason"] == "JobResumed"


def test_a_work_queue_job_finishes_when_one_pod_succeeded_and_none_runs() -> None:
    job = stored_job(parallelism=3)
    job["spec"].pop("completions")
    assert plan_job(job, [], T0).create == [None] * 3
    partly = plan_job(job, [pod("a", "Succeeded"), pod("b")], T0)
    assert partly.create == [] and partly.delete == [] and types(partly.status) == []
    assert types(plan_job(job, [pod("a", "Succeeded"), pod("b", "Succeeded")], T0).status) == ["SuccessCriteriaMet", "Complete"]


def test_an_indexed_job_starts_the_missing_indexes() -> None:
    job = stored_job(completions=5, parallelism=2, completionMode="Indexed")
    assert plan_job(job, [], T0).create == [0, 1]
    pods = [pod("a", "Succeeded", index=0), pod("b", index=1), pod("c", index=1)]
    plan = plan_job(job, pods, T0)
    assert plan.create == [2] and [p["metadata"]["name"] for p in plan.delete] == ["c"]  # a duplicate index
    assert plan.status["completedIndexes"] == "0" and plan.status["succeeded"] == 1
    assert format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7" and parse_indexes("0-2,4,9", 5) == {0, 1, 2, 4}


def test_indexed_pods_carry_their_index() -> None:
    job = stored_job(completionMode="Indexed")
    job["spec"]["template"]["metadata"] = {"labels": {"job-name": "pi"}}
    made = pod_from_template(job, 3)
    assert made["metadata"]["generateName"] == "pi-3-"
    assert made["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "3"
    assert made["metadata"]["labels"] == {"job-name": "pi", "batch.kubernetes.io/job-completion-index": "3"}
    assert made["spec"]["hostname"] == "pi-3"
    env = made["spec"]["containers"][0]["env"]
    assert env == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]
    assert made["metadata"]["ownerReferences"][0] == {"apiVersion": "batch/v1", "kind": "Job", "name": "pi", "uid": "job-uid", "controller": True, "blockOwnerDeletion": True}
    assert pod_from_template(stored_job(), None)["metadata"]["generateName"] == "pi-"


def test_the_ttl_counts_from_the_finish() -> None:
    job = stored_job(ttlSecondsAfterFinished=60)
    assert ttl_remaining(job, T0) is None
    job["status"] = {"completionTime": rfc3339(T0), "conditions": [{"type": "Complete", "status": "True"}]}
    assert ttl_remaining(job, T0 + 15) == pytest.approx(45)
    failed = stored_job(ttlSecondsAfterFinished=0)
    failed["status"] = {"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": rfc3339(T0)}]}
    assert ttl_remaining(failed, T0) == 0


# -- the CronJob controller's decisions ----------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_most_recent_missed_schedule_is_the_one_to_run() -> None:
    utc = ZoneInfo("UTC")
    assert most_recent_schedule("* * * * *", utc, at("2026-01-15T10:00:30"), at("2026-01-15T10:00:59")) == (None, 0)
    assert most_recent_schedule("* * * * *", utc, at("2026-01-15T10:00:30"), at("2026-01-15T10:01:00")) == (at("2026-01-15T10:01:00"), 1)
    assert most_recent_schedule("* * * * *", utc, at("2026-01-15T10:00:30"), at("2026-01-15T10:05:10")) == (at("2026-01-15T10:05:00"), 5)
    many = most_recent_schedule("* * * * *", utc, at("2026-01-15T00:00:00"), at("2026-01-15T10:05:10"))
    assert many[0] == at("2026-01-15T10:05:00") and many[1] > 100


def test_schedules_run_in_the_cron_jobs_time_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    due, _ = most_recent_schedule("0 3 * * *", berlin, at("2026-01-14T12:00:00"), at("2026-01-15T12:00:00"))
    assert due == at("2026-01-15T02:00:00")  # 03:00 in Berlin, UTC+1 in January
    assert due is not None and go_rfc3339(due.astimezone(berlin)) == "2026-01-15T03:00:00+01:00"
    assert go_rfc3339(at("2026-01-15T02:00:00")) == "2026-01-15T02:00:00Z"


def test_the_starting_deadline_limits_how_far_back_schedules_run() -> None:
    cj = cron_job(startingDeadlineSeconds=120)
    cj["metadata"]["creationTimestamp"] = "2026-01-15T09:00:00Z"
    now = at("2026-01-15T10:00:30")
    assert earliest_time(cj, now) == at("2026-01-15T09:58:30")
    cj["spec"].pop("startingDeadlineSeconds")
    cj["status"] = {"lastScheduleTime": "2026-01-15T09:30:00Z"}
    assert earliest_time(cj, now) == at("2026-01-15T09:30:00")


def test_jobs_are_named_by_their_minute() -> None:
    assert job_name("tick", at("2026-01-15T10:05:00")) == f"tick-{int(at('2026-01-15T10:05:00').timestamp()) // 60}"


def test_the_oldest_finished_jobs_beyond_the_limits_are_deleted() -> None:
    def finished(name: str, kind: str, start: int | None) -> dict[str, Any]:
        status: dict[str, Any] = {"conditions": [{"type": kind, "status": "True"}]}
        if start is not None:
            status["startTime"] = rfc3339(T0 + start)
        return {"metadata": {"name": name}, "status": status}

    jobs = [finished("s4", "Complete", 40), finished("s1", "Complete", 10), finished("s3", "Complete", 30), finished("s2", "Complete", 20),
            finished("f1", "Failed", 10), finished("f2", "Failed", None), {"metadata": {"name": "running"}, "status": {}}]
    assert [j["metadata"]["name"] for j in jobs_to_delete(jobs, 3, 1)] == ["s1", "f1"]
    assert [j["metadata"]["name"] for j in jobs_to_delete(jobs, 0, None)] == ["s1", "s2", "s3", "s4"]


def test_a_scheduled_job_is_made_from_the_template() -> None:
    cj = cron_job()
    cj["metadata"].update(uid="cj-uid", namespace=NS)
    made = job_from_template(cj, at("2026-01-15T10:05:00"), ZoneInfo("UTC"))
    assert made["metadata"]["name"] == job_name("tick", at("2026-01-15T10:05:00"))
    assert made["metadata"]["labels"] == {"team": "data"}
    assert made["metadata"]["annotations"] == {"batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-01-15T10:05:00Z"}
    assert made["metadata"]["ownerReferences"][0]["kind"] == "CronJob" and made["metadata"]["ownerReferences"][0]["uid"] == "cj-uid"


# -- the controllers, synced by hand with a set clock ---------------------------------------------------


async def test_the_job_controller_runs_pods_to_completion(world: World) -> None:
    world.registry.create(JOBS, NS, job(completions=2, parallelism=2))
    await world.settle()
    assert world.jobs.sync((NS, "pi")) is None
    await world.settle()
    pods = world.objects(PODS)
    assert len(pods) == 2 and all(p["metadata"]["name"].startswith("pi-") for p in pods)
    assert world.get(JOBS, "pi")["status"]["active"] == 2
    for p in pods:
        world.set_phase(p["metadata"]["name"], "Succeeded")
    await world.settle()
    world.now[0] += 7
    world.jobs.sync((NS, "pi"))
    status = world.get(JOBS, "pi")["status"]
    assert types(status) == ["SuccessCriteriaMet", "Complete"] and status["succeeded"] == 2
    assert status["startTime"] == rfc3339(T0) and status["completionTime"] == rfc3339(T0 + 7)
    assert world.reasons().count("SuccessfulCreate") == 2 and "Completed" in world.reasons()


async def test_the_job_controller_deletes_an_expired_job(world: World) -> None:
    world.registry.create(JOBS, NS, job(ttlSecondsAfterFinished=30))
    await world.settle()
    world.jobs.sync((NS, "pi"))
    await world.settle()
    world.set_phase(world.objects(PODS)[0]["metadata"]["name"], "Succeeded")
    await world.settle()
    assert world.jobs.sync((NS, "pi")) == pytest.approx(30.05)
    world.now[0] += 30
    assert world.jobs.sync((NS, "pi")) is None
    gone = world.store.get(JOBS.key, NS, "pi")
    # Foreground: the Job waits, marked, for the garbage collector to delete its pods
    assert gone is None or gone["metadata"].get("deletionTimestamp")


async def test_the_cron_job_controller_starts_the_due_schedule_once(world: World) -> None:
    world.create_cron_job(cron_job())
    await world.settle()
    assert world.cron_jobs.sync((NS, "tick")) == pytest.approx(30.1)  # nothing due before the next minute
    assert world.objects(JOBS) == []
    world.now[0] = moment(1, 2).timestamp()
    recheck = world.cron_jobs.sync((NS, "tick"))
    assert recheck == pytest.approx(58.1, abs=0.2)
    await world.settle()
    name = job_name("tick", moment(1, 0))
    made = world.get(JOBS, name)
    assert made["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == rfc3339(BASE + 60)
    status = world.get(CRON_JOBS, "tick")["status"]
    assert status["lastScheduleTime"] == rfc3339(BASE + 60)
    assert [ref["name"] for ref in status["active"]] == [name] and status["active"][0]["uid"] == made["metadata"]["uid"]
    world.cron_jobs.sync((NS, "tick"))  # the same minute again: nothing new
    await world.settle()
    assert len(world.objects(JOBS)) == 1 and world.reasons().count("SuccessfulCreate") == 1


async def test_a_finished_job_leaves_the_active_list_and_sets_the_last_success(world: World) -> None:
    world.create_cron_job(cron_job())
    await world.settle()
    world.now[0] = moment(1, 2).timestamp()
    world.cron_jobs.sync((NS, "tick"))
    await world.settle()
    name = world.objects(JOBS)[0]["metadata"]["name"]
    world.now[0] += 20
    world.finish_job(name)
    await world.settle()
    world.cron_jobs.sync((NS, "tick"))
    status = world.get(CRON_JOBS, "tick")["status"]
    assert "active" not in status and status["lastSuccessfulTime"] == rfc3339(world.now[0])
    assert "SawCompletedJob" in world.reasons()


async def test_forbid_skips_while_a_job_runs_and_replace_replaces_it(world: World) -> None:
    world.create_cron_job(cron_job(concurrencyPolicy="Forbid"))
    await world.settle()
    world.now[0] = moment(1, 2).timestamp()
    world.cron_jobs.sync((NS, "tick"))
    await world.settle()
    world.now[0] = moment(2, 2).timestamp()
    world.cron_jobs.sync((NS, "tick"))
    await world.settle()
    assert len(world.objects(JOBS)) == 1 and world.get(CRON_JOBS, "tick")["status"]["lastScheduleTime"] == rfc3339(BASE + 60)

    current = world.get(CRON_JOBS, "tick")
    world.registry.replace_object(CRON_JOBS, current, {**current, "spec": {**current["spec"], "concurrencyPolicy": "Replace"}})
    await world.settle()
    world.cron_jobs.sync((NS, "tick"))
    await world.settle()
    names = [j["metadata"]["name"] for j in world.objects(JOBS)]
    assert names == [job_name("tick", moment(2, 0))]
    assert [r["name"] for r in world.get(CRON_JOBS, "tick")["status"]["active"]] == names
    assert "SuccessfulDelete" in world.reasons()


async def test_a_suspended_cron_job_starts_nothing(world: World) -> None:
    world.create_cron_job(cron_job(suspend=True))
    await world.settle()
    world.now[0] = moment(9, 2).timestamp()
    assert world.cron_jobs.sync((NS, "tick")) is None
    assert world.objects(JOBS) == []


async def test_the_history_limits_delete_the_oldest_finished_jobs(world: World) -> None:
    world.create_cron_job(cron_job(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0))
    await world.settle()
    for minute in (1, 2, 3):
        world.now[0] = moment(minute, 2).timestamp()
        world.cron_jobs.sync((NS, "tick"))
        await world.settle()
    first, second, third = sorted(j["metadata"]["name"] for j in world.objects(JOBS))
    world.finish_job(first, started=world.now[0] - 100)
    world.finish_job(second, started=world.now[0] - 50)
    world.finish_job(third, "Failed")
    await world.settle()
    world.cron_jobs.sync((NS, "tick"))
    await world.settle()
    assert [j["metadata"]["name"] for j in world.objects(JOBS)] == [second]
    assert world.reasons().count("SuccessfulDelete") == 2


async def test_a_missing_active_job_is_dropped(world: World) -> None:
    world.create_cron_job(cron_job(concurrencyPolicy="Forbid"))
    await world.settle()
    world.now[0] = moment(1, 2).timestamp()
    world.cron_jobs.sync((NS, "tick"))
    await world.settle()
    world.registry.delete(JOBS, NS, world.objects(JOBS)[0]["metadata"]["name"])
    await world.settle()
    world.now[0] = moment(1, 30).timestamp()
    world.cron_jobs.sync((NS, "tick"))
    assert "active" not in world.get(CRON_JOBS, "tick")["status"]
    assert "MissingJob" in world.reasons()


async def test_a_job_made_by_hand_is_noticed_but_not_listed_as_active(world: World) -> None:
    world.create_cron_job(cron_job(schedule="0 0 1 1 *"))
    await world.settle()
    cj = world.get(CRON_JOBS, "tick")
    manual = {"metadata": {"name": "by-hand", "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                           "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick", "uid": cj["metadata"]["uid"], "controller": True}]},
              "spec": cj["spec"]["jobTemplate"]["spec"]}
    world.registry.create(JOBS, NS, manual)
    await world.settle()
    world.cron_jobs.sync((NS, "tick"))
    await world.settle()
    assert "active" not in world.get(CRON_JOBS, "tick")["status"]
    assert "UnexpectedJob" in world.reasons()


async def test_a_job_managed_by_another_controller_is_left_alone(world: World) -> None:
    world.registry.create(JOBS, NS, job(managedBy="example.com/queue"))
    await world.settle()
    assert world.jobs.sync((NS, "pi")) is None
    assert world.objects(PODS) == [] and "status" not in world.get(JOBS, "pi")


# -- counting with the job-tracking finalizer ------------------------------------------------------------


def pod_names(world: World) -> list[str]:
    return sorted(p["metadata"]["name"] for p in world.objects(PODS))


async def sync_job(world: World) -> dict[str, Any]:
    world.jobs.sync((NS, "pi"))
    await world.settle()
    return world.get(JOBS, "pi")


async def test_deleting_succeeded_pods_does_not_lose_their_count(world: World) -> None:
    world.registry.create(JOBS, NS, job(completions=3, parallelism=1))
    await world.settle()
    await sync_job(world)
    created = 1
    for n in range(3):
        (first,) = pod_names(world)
        assert world.get(PODS, first)["metadata"]["finalizers"] == ["batch.kubernetes.io/job-tracking"]
        world.set_phase(first, "Succeeded")
        await world.settle()
        status = (await sync_job(world))["status"]
        assert status["succeeded"] == n + 1 and status["uncountedTerminatedPods"] == {}
        assert "finalizers" not in world.get(PODS, first)["metadata"]
        world.registry.delete(PODS, NS, first)  # no finalizer left: gone at once
        await world.settle()
        status = (await sync_job(world))["status"]
        assert status["succeeded"] == n + 1
        created += 0 if n == 2 else 1
    assert types(world.get(JOBS, "pi")["status"]) == ["SuccessCriteriaMet", "Complete"]
    assert world.reasons().count("SuccessfulCreate") == 3 == created and world.objects(PODS) == []


async def test_deleting_failed_pods_still_reaches_the_backoff_limit(world: World) -> None:
    world.registry.create(JOBS, NS, job(completions=1, parallelism=1, backoffLimit=1))
    await world.settle()
    await sync_job(world)
    for n in range(2):
        (current,) = pod_names(world)
        world.set_phase(current, "Failed")
        await world.settle()
        assert (await sync_job(world))["status"]["failed"] == n + 1
        world.registry.delete(PODS, NS, current)
        await world.settle()
        world.now[0] += 60  # past the failure backoff
        status = (await sync_job(world))["status"]
    assert status["failed"] == 2 and types(status) == ["FailureTarget", "Failed"]
    assert world.objects(PODS) == []


async def test_a_deleted_running_pod_is_held_until_counted_as_failed(world: World) -> None:
    world.registry.create(JOBS, NS, job(completions=1, parallelism=1))
    await world.settle()
    await sync_job(world)
    (first,) = pod_names(world)
    world.registry.delete(PODS, NS, first)
    await world.settle()
    assert world.get(PODS, first)["metadata"]["deletionTimestamp"]  # Terminating: the finalizer holds it
    status = (await sync_job(world))["status"]
    assert status["failed"] == 1 and status["uncountedTerminatedPods"] == {}
    assert first not in pod_names(world) and len(pod_names(world)) == 0  # the replacement waits out the backoff
    world.now[0] += 11
    status = (await sync_job(world))["status"]
    assert len(pod_names(world)) == 1 and status["failed"] == 1  # its removal (finalizer shown) is no second failure
    assert world.jobs._released == {} and world.jobs._gone == {}


async def test_a_restart_between_the_steps_counts_each_pod_once(world: World) -> None:
    world.registry.create(JOBS, NS, job(completions=2, parallelism=2))
    await world.settle()
    await sync_job(world)
    a, b = pod_names(world)
    world.set_phase(a, "Succeeded")
    # step 1 done by a controller that stopped then: the uid is on record, the finalizer still there
    current = world.get(JOBS, "pi")
    interim = {**current["status"], "uncountedTerminatedPods": {"succeeded": [world.get(PODS, a)["metadata"]["uid"]]}}
    world.registry.replace_object(JOBS, current, {**current, "status": interim}, subresource="status")
    await world.settle()
    world.store.unsubscribe(world.jobs.apply)
    world.jobs = JobController(world.registry, clock=lambda: world.now[0], backoff=10.0)  # nothing kept in memory
    world.store.replay(world.jobs.apply, (JOBS.key, PODS.key))
    world.store.subscribe(world.jobs.apply)
    status = (await sync_job(world))["status"]
    assert status["succeeded"] == 1 and status["uncountedTerminatedPods"] == {}
    assert "finalizers" not in world.get(PODS, a)["metadata"]
    status = (await sync_job(world))["status"]
    assert status["succeeded"] == 1 and pod_names(world) == [a, b]


async def test_a_pod_removed_with_its_finalizer_is_still_counted(world: World) -> None:
    world.registry.create(JOBS, NS, job(completions=2, parallelism=1))
    await world.settle()
    await sync_job(world)
    (first,) = pod_names(world)
    world.set_phase(first, "Succeeded")
    world.registry.finalize(PODS, NS, first)  # forced away before the controller saw it finish
    await world.settle()
    status = (await sync_job(world))["status"]
    assert status["succeeded"] == 1 and len(pod_names(world)) == 1
    assert (await sync_job(world))["status"]["succeeded"] == 1


async def test_the_pods_of_a_deleted_job_lose_the_finalizer(world: World) -> None:
    world.registry.create(JOBS, NS, job(completions=2, parallelism=2))
    await world.settle()
    await sync_job(world)
    a, b = pod_names(world)
    world.registry.delete(PODS, NS, a)  # as the garbage collector does: marked, held by the finalizer
    world.registry.delete(JOBS, NS, "pi")
    await world.settle()
    world.registry.delete(PODS, NS, b)
    await world.settle()
    for name in (a, b):
        assert world.get(PODS, name)["metadata"]["deletionTimestamp"]
        world.jobs.sync_orphan(NS, name)
    await world.settle()
    assert world.objects(PODS) == []


async def test_a_job_being_deleted_in_the_foreground_releases_its_pods(world: World) -> None:
    world.registry.create(JOBS, NS, job(completions=1, parallelism=1))
    await world.settle()
    await sync_job(world)
    (first,) = pod_names(world)
    world.registry.delete(JOBS, NS, "pi", propagation="Foreground")
    world.registry.delete(PODS, NS, first)
    await world.settle()
    assert world.get(PODS, first)["metadata"]["deletionTimestamp"]
    world.jobs.sync((NS, "pi"))
    await world.settle()
    assert world.objects(PODS) == []
