"""Jobs and CronJobs with the real kubectl 1.32 and the `kubernetes` client: a Job runs its pods until
enough succeed (pods are moved to Succeeded or Failed through their `status` subresource, as there is
no kubelet), fails on its backoff limit or deadline, is deleted after its TTL, `kubectl wait` sees it
complete; CronJobs are validated and `kubectl create job --from=cronjob/...` starts one at once.

One emulator serves the module; each test works in its own namespace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.conftest import Emulator
from tests.integration.kubectl_support import Kubectl, manifest

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def api(emu: Emulator, kubectl: Kubectl) -> Iterator[k8s.ApiClient]:
    client = k8s_config.new_client_from_config(config_file=str(kubectl.config))
    yield client
    client.close()


def job_manifest(name: str, completions: int | None = 1, parallelism: int | None = 1, **spec: Any) -> str:
    body: dict[str, Any] = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox"}]}}, **spec},
    }
    if completions is not None:
        body["spec"]["completions"] = completions
    if parallelism is not None:
        body["spec"]["parallelism"] = parallelism
    return json.dumps(body)


def pods_of(core: k8s.CoreV1Api, ns: str, job: str) -> list[Any]:
    return list(core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={job}").items)


def running(core: k8s.CoreV1Api, ns: str, job: str) -> list[Any]:
    return [p for p in pods_of(core, ns, job) if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]


def finish(core: k8s.CoreV1Api, ns: str, pod: str, phase: str) -> None:
    """What a kubelet would report when the pod's containers exit."""
    core.patch_namespaced_pod_status(pod, ns, {"status": {"phase": phase}})


def condition_types(job: Any) -> list[str]:
    return [c.type for c in job.status.conditions or [] if c.status == "True"]


def job_with(batch: k8s.BatchV1Api, ns: str, name: str, condition: str) -> Any:
    """The Job once `condition` is True on it (None before)."""
    job = batch.read_namespaced_job(name, ns)
    return job if condition in condition_types(job) else None


def test_a_job_with_three_completions_and_parallelism_two_completes(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    kubectl.run("-n", ns, "apply", "-f", "-", stdin=job_manifest("pi", completions=3, parallelism=2))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    first = eventually(lambda: running(core, ns, "pi") if len(running(core, ns, "pi")) == 2 else None)
    for pod in first:
        assert pod.metadata.name.startswith("pi-") and len(pod.metadata.name) == len("pi-") + 5
        assert pod.metadata.labels["job-name"] == "pi"
        assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == pod.metadata.owner_references[0].uid
        assert pod.metadata.owner_references[0].kind == "Job"
    job = batch.read_namespaced_job("pi", ns)
    assert job.status.active == 2 and job.status.ready == 2 and job.status.start_time is not None
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": job.metadata.uid}

    finish(core, ns, first[0].metadata.name, "Succeeded")
    # one done, two left: a new pod keeps two running
    eventually(lambda: len(running(core, ns, "pi")) == 2 and len(pods_of(core, ns, "pi")) == 3)
    for pod in running(core, ns, "pi"):
        finish(core, ns, pod.metadata.name, "Succeeded")
    job = eventually(lambda: job_with(batch, ns, "pi", "Complete"))
    assert condition_types(job) == ["SuccessCriteriaMet", "Complete"]
    assert job.status.succeeded == 3 and not job.status.active and job.status.completion_time is not None
    assert len(pods_of(core, ns, "pi")) == 3  # no fourth pod

    table = kubectl.out("-n", ns, "get", "jobs")
    header, row = table.splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["pi", "Complete", "3/3"]
    wide = kubectl.out("-n", ns, "get", "jobs", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[5:7] == ["work", "busybox"]
    assert wide[1].split()[7] == f"batch.kubernetes.io/controller-uid={job.metadata.uid}"
    events = kubectl.out("-n", ns, "get", "events", "--field-selector", "involvedObject.kind=Job", "-o", "json")
    reasons = [e["reason"] for e in json.loads(events)["items"]]
    assert reasons.count("SuccessfulCreate") == 3 and "Completed" in reasons


def test_kubectl_wait_sees_a_job_complete(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    kubectl.out("-n", ns, "create", "job", "once", "--image=busybox", "--", "true")
    core = k8s.CoreV1Api(api)
    pod = eventually(lambda: running(core, ns, "once"))[0]
    status = kubectl.out("-n", ns, "get", "job", "once", "-o", "jsonpath={.status.active}")
    assert status == "1"
    finish(core, ns, pod.metadata.name, "Succeeded")
    done = kubectl.run("-n", ns, "wait", "--for=condition=complete", "job/once", "--timeout=10s")
    assert done.stdout.strip() == "job.batch/once condition met"
    spec = json.loads(kubectl.out("-n", ns, "get", "job", "once", "-o", "json"))["spec"]
    assert spec["backoffLimit"] == 6 and spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_failed_pods_beyond_the_backoff_limit_fail_the_job(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    kubectl.run("-n", ns, "apply", "-f", "-", stdin=job_manifest("flaky", completions=4, parallelism=2, backoffLimit=1))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    pods = eventually(lambda: running(core, ns, "flaky") if len(running(core, ns, "flaky")) == 2 else None)
    for pod in pods:
        finish(core, ns, pod.metadata.name, "Failed")
    job = eventually(lambda: job_with(batch, ns, "flaky", "Failed"))
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert (failed.reason, failed.message) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert condition_types(job) == ["FailureTarget", "Failed"]
    assert job.status.failed == 2 and not job.status.active and job.status.completion_time is None
    assert kubectl.out("-n", ns, "get", "job", "flaky", "--no-headers").split()[1:3] == ["Failed", "0/4"]
    kubectl.run("-n", ns, "wait", "--for=condition=failed", "job/flaky", "--timeout=10s")


def test_a_job_past_its_active_deadline_fails_and_its_pods_are_deleted(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    kubectl.run("-n", ns, "apply", "-f", "-", stdin=job_manifest("slow", completions=2, parallelism=2, activeDeadlineSeconds=1))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    job = eventually(lambda: job_with(batch, ns, "slow", "Failed"), timeout=15)
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert (failed.reason, failed.message) == ("DeadlineExceeded", "Job was active longer than specified deadline")
    eventually(lambda: not pods_of(core, ns, "slow"))


def test_a_finished_job_is_deleted_after_its_ttl(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    kubectl.run("-n", ns, "apply", "-f", "-", stdin=job_manifest("brief", ttlSecondsAfterFinished=1))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    pod = eventually(lambda: running(core, ns, "brief"))[0]
    finish(core, ns, pod.metadata.name, "Succeeded")
    eventually(lambda: "Complete" in condition_types(batch.read_namespaced_job("brief", ns)))
    eventually(lambda: not batch.list_namespaced_job(ns).items, timeout=10)
    eventually(lambda: not pods_of(core, ns, "brief"))


def test_an_indexed_job_names_its_pods_by_index(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    kubectl.run("-n", ns, "apply", "-f", "-", stdin=job_manifest("shards", completions=3, parallelism=3, completionMode="Indexed"))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    pods = eventually(lambda: running(core, ns, "shards") if len(running(core, ns, "shards")) == 3 else None)
    by_index = {p.metadata.annotations["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert sorted(by_index) == ["0", "1", "2"]
    for index, pod in by_index.items():
        assert pod.metadata.name.startswith(f"shards-{index}-")
        assert pod.spec.hostname == f"shards-{index}"
        assert pod.metadata.labels["batch.kubernetes.io/job-completion-index"] == index
    finish(core, ns, by_index["1"].metadata.name, "Succeeded")
    eventually(lambda: batch.read_namespaced_job("shards", ns).status.completed_indexes == "1")
    for index in ("0", "2"):
        finish(core, ns, by_index[index].metadata.name, "Succeeded")
    job = eventually(lambda: job_with(batch, ns, "shards", "Complete"))
    assert job.status.completed_indexes == "0-2" and job.status.succeeded == 3


def test_job_validation_errors_read_like_the_api_servers(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    bad = json.loads(job_manifest("bad"))
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    bad["spec"]["completionMode"] = "Sometimes"
    done = kubectl.run("-n", ns, "apply", "-f", "-", stdin=json.dumps(bad), ok=False)
    assert done.returncode != 0
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"' in done.stderr
    assert 'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"' in done.stderr

    kubectl.run("-n", ns, "apply", "-f", "-", stdin=job_manifest("fixed"))
    changed = json.loads(job_manifest("fixed"))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "alpine"
    done = kubectl.run("-n", ns, "apply", "-f", "-", stdin=json.dumps(changed), ok=False)
    assert "spec.template: Invalid value" in done.stderr and "field is immutable" in done.stderr


CRON_JOB = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  timeZone: Europe/Berlin
  jobTemplate:
    metadata:
      labels:
        team: data
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: backup
            image: busybox
"""


def test_a_cron_job_is_stored_with_defaults_and_printed(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("-n", ns, "apply", "-f", manifest(tmp_path, CRON_JOB))
    spec = json.loads(kubectl.out("-n", ns, "get", "cronjob", "nightly", "-o", "json"))["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    header, row = kubectl.out("-n", ns, "get", "cj").splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert row.split()[:7] == ["nightly", "0", "3", "*", "*", "*", "Europe/Berlin"]
    assert row.split()[7:10] == ["False", "0", "<none>"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule", "not a schedule", 'spec.schedule: Invalid value: "not a schedule": expected exactly 5 fields, found 3: [not a schedule]'),
        ("schedule", "TZ=UTC * * * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        ("timeZone", "Mars/Olympus", 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'),
        ("concurrencyPolicy", "Sometimes", 'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"'),
    ],
)
def test_a_cron_job_with_a_bad_field_is_refused(kubectl: Kubectl, ns: str, tmp_path: Path, field: str, value: str, message: str) -> None:
    text = CRON_JOB.replace("  schedule:", f"  {field}: {json.dumps(value)}\n  schedule:") if field != "schedule" else CRON_JOB.replace('"0 3 * * *"', json.dumps(value))
    if field == "timeZone":
        text = text.replace("  timeZone: Europe/Berlin\n", "")
    done = kubectl.run("-n", ns, "apply", "-f", manifest(tmp_path, text), ok=False)
    assert done.returncode != 0
    assert message in done.stderr
    assert "nightly" not in kubectl.out("-n", ns, "get", "cronjobs")


def test_create_job_from_a_cron_job_runs_its_template_now(kubectl: Kubectl, api: k8s.ApiClient, ns: str, tmp_path: Path) -> None:
    kubectl.run("-n", ns, "apply", "-f", manifest(tmp_path, CRON_JOB))
    assert kubectl.out("-n", ns, "create", "job", "--from=cronjob/nightly", "manual-run").strip() == "job.batch/manual-run created"
    batch, core = k8s.BatchV1Api(api), k8s.CoreV1Api(api)
    job = batch.read_namespaced_job("manual-run", ns)
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job.metadata.owner_references[0].kind == "CronJob" and job.metadata.owner_references[0].name == "nightly"
    assert job.metadata.labels["team"] == "data"
    pod = eventually(lambda: running(core, ns, "manual-run"))[0]
    assert pod.spec.restart_policy == "OnFailure" and "team" not in pod.metadata.labels  # the Job's labels, not the pods'
    finish(core, ns, pod.metadata.name, "Succeeded")
    kubectl.run("-n", ns, "wait", "--for=condition=complete", "job/manual-run", "--timeout=10s")
    eventually(lambda: batch.read_namespaced_cron_job("nightly", ns).status.last_successful_time)
    cron_job = batch.read_namespaced_cron_job("nightly", ns)
    assert not cron_job.status.active  # a Job made by hand is not one the controller started
    # deleting the CronJob deletes its Jobs (the garbage collector follows the owner reference)
    kubectl.run("-n", ns, "delete", "cronjob", "nightly")
    eventually(lambda: not batch.list_namespaced_job(ns).items)


def test_kubectl_create_cronjob_and_suspend(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    # once a year (*/5 would start a Job, ACTIVE 1, when a five-minute boundary fell between create and patch)
    kubectl.out("-n", ns, "create", "cronjob", "tick", "--image=busybox", "--schedule=0 0 1 1 *", "--", "date")
    kubectl.out("-n", ns, "patch", "cronjob", "tick", "-p", '{"spec":{"suspend":true}}')
    row = kubectl.out("-n", ns, "get", "cronjob", "tick", "--no-headers").split()
    assert row[0] == "tick" and row[1:6] == ["0", "0", "1", "1", "*"] and row[6:9] == ["<none>", "True", "0"]


def test_the_batch_kinds_are_discovered_and_in_get_all(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    rows = {line.split()[0]: line.split() for line in kubectl.out("api-resources").splitlines()[1:]}
    assert rows["jobs"] == ["jobs", "batch/v1", "true", "Job"]
    assert rows["cronjobs"] == ["cronjobs", "cj", "batch/v1", "true", "CronJob"]
    assert "FIELD: timeZone <string>" in kubectl.out("explain", "cronjob.spec.timeZone")
    kubectl.out("-n", ns, "create", "job", "listed", "--image=busybox")
    kubectl.out("-n", ns, "create", "cronjob", "listed", "--image=busybox", "--schedule=0 0 * * *")
    everything = kubectl.out("-n", ns, "get", "all", "-o", "name").split()
    assert {"job.batch/listed", "cronjob.batch/listed"} <= set(everything)
    # deleting a Job deletes its pods (kubectl's default propagation: background)
    core = k8s.CoreV1Api(api)
    eventually(lambda: running(core, ns, "listed"))
    kubectl.out("-n", ns, "delete", "job", "listed")
    eventually(lambda: not pods_of(core, ns, "listed"))


def test_applying_a_job_again_changes_nothing(kubectl: Kubectl, ns: str) -> None:
    text = job_manifest("again", completions=2, parallelism=1)
    assert kubectl.out("-n", ns, "apply", "-f", "-", stdin=text).strip() == "job.batch/again created"
    assert kubectl.out("-n", ns, "apply", "-f", "-", stdin=text).strip() == "job.batch/again unchanged"
    more = json.loads(text)
    more["spec"]["parallelism"] = 2
    assert kubectl.out("-n", ns, "apply", "-f", "-", stdin=json.dumps(more)).strip() == "job.batch/again configured"
    assert kubectl.out("-n", ns, "apply", "--server-side", "-f", "-", stdin=json.dumps(more)).strip() == "job.batch/again serverside-applied"
    assert kubectl.out("-n", ns, "get", "job", "again", "-o", "jsonpath={.spec.parallelism} {.metadata.generation}") == "2 2"


def status_of(batch: k8s.BatchV1Api, ns: str, name: str) -> Any:
    return batch.read_namespaced_job(name, ns).status


def created_pods(kubectl: Kubectl, ns: str, job: str) -> int:
    events = json.loads(kubectl.out("-n", ns, "get", "events", "--field-selector", f"involvedObject.name={job},reason=SuccessfulCreate", "-o", "json"))
    return sum(int(e.get("count") or 1) for e in events["items"])


def test_deleting_finished_pods_keeps_them_counted(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    kubectl.run("-n", ns, "apply", "-f", "-", stdin=job_manifest("tally", completions=3, parallelism=1))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    for n in (1, 2):
        (pod,) = eventually(lambda: running(core, ns, "tally"))
        assert pod.metadata.finalizers == ["batch.kubernetes.io/job-tracking"]
        finish(core, ns, pod.metadata.name, "Succeeded")
        eventually(partial(lambda done: status_of(batch, ns, "tally").succeeded == done, n))
        released: Any = core.read_namespaced_pod(pod.metadata.name, ns)
        assert released.metadata.finalizers is None  # counted: released
        kubectl.run("-n", ns, "delete", "pod", pod.metadata.name)
        eventually(lambda: len(pods_of(core, ns, "tally")) == 1)
    status = status_of(batch, ns, "tally")
    assert status.succeeded == 2 and status.uncounted_terminated_pods.succeeded is None
    assert created_pods(kubectl, ns, "tally") == 3


def test_deleting_failed_pods_does_not_escape_the_backoff_limit(kubectl: Kubectl, api: k8s.ApiClient, ns: str) -> None:
    kubectl.run("-n", ns, "apply", "-f", "-", stdin=job_manifest("doomed", completions=2, parallelism=2, backoffLimit=1))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    pods = eventually(lambda: running(core, ns, "doomed") if len(running(core, ns, "doomed")) == 2 else None)
    finish(core, ns, pods[0].metadata.name, "Failed")
    eventually(lambda: status_of(batch, ns, "doomed").failed == 1)
    kubectl.run("-n", ns, "delete", "pod", pods[0].metadata.name)
    # the running one, deleted, counts as failed as well (it never succeeded): the limit is passed
    kubectl.run("-n", ns, "delete", "pod", pods[1].metadata.name, "--wait=false")
    job = eventually(lambda: job_with(batch, ns, "doomed", "Failed"))
    assert job.status.failed == 2 and next(c for c in job.status.conditions if c.type == "Failed").reason == "BackoffLimitExceeded"
    eventually(lambda: not pods_of(core, ns, "doomed"))


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_kubectl_delete_job_with_each_cascade(kubectl: Kubectl, api: k8s.ApiClient, ns: str, cascade: str) -> None:
    kubectl.run("-n", ns, "apply", "-f", "-", stdin=job_manifest("gone", completions=3, parallelism=2))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    pods = eventually(lambda: running(core, ns, "gone") if len(running(core, ns, "gone")) == 2 else None)
    finish(core, ns, pods[0].metadata.name, "Succeeded")
    eventually(lambda: status_of(batch, ns, "gone").succeeded == 1 and len(running(core, ns, "gone")) == 2)
    pods = pods_of(core, ns, "gone")
    done = kubectl.run("-n", ns, "delete", "job", "gone", f"--cascade={cascade}", timeout=20)
    assert done.stdout.strip() == 'job.batch "gone" deleted'
    eventually(lambda: not batch.list_namespaced_job(ns).items)
    if cascade == "orphan":
        left = eventually(lambda: pods_of(core, ns, "gone") if all(
            not p.metadata.owner_references and not p.metadata.finalizers for p in pods_of(core, ns, "gone")) else None)
        assert sorted(p.metadata.name for p in left) == sorted(p.metadata.name for p in pods)
        assert all(p.metadata.deletion_timestamp is None for p in left)
    else:
        eventually(lambda: not pods_of(core, ns, "gone"))
