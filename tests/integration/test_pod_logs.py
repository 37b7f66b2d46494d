"""`kubectl logs` against a real `emulator serve --kubelet`: lines as they are written (-f), the previous
instance after a crash (--previous), and the options kubectl sends (--tail, --since, --timestamps, -c,
-l, --all-containers, --prefix); the API server's and the kubelet's errors for pods that do not run."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.security import kubeconfig
from tests.conftest import Emulator, require_tool, start_emulator
from tests.integration.kubectl_support import Kubectl, manifest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    before = os.environ.get("EMULATOR_KUBELET_BACKOFF_SECONDS")
    os.environ["EMULATOR_KUBELET_BACKOFF_SECONDS"] = "0.4"  # a short CrashLoopBackOff for the test
    try:
        emulator = start_emulator(tmp_path_factory.mktemp("logs-data"), "--kubelet", "--allow-anonymous")
    finally:
        if before is None:
            os.environ.pop("EMULATOR_KUBELET_BACKOFF_SECONDS", None)
        else:
            os.environ["EMULATOR_KUBELET_BACKOFF_SECONDS"] = before
    yield emulator
    emulator.stop(timeout=30)


@pytest.fixture(scope="module")
def kubectl(emu: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    home = tmp_path_factory.mktemp("kubectl-home")
    kubeconfig.write(home / "config", emu.api_url, use=True)
    return Kubectl(require_tool("kubectl"), home / "config", home / "cache")


def wait_for(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(kubectl: Kubectl, ns: str, pod: str, container: str) -> dict[str, Any]:
    out = kubectl.out("get", "pod", pod, "-n", ns, "-o", f"jsonpath={{.status.containerStatuses[?(@.name=='{container}')]}}")
    import json

    return json.loads(out) if out.strip() else {}


def apply(kubectl: Kubectl, tmp_path: Path, ns: str, text: str) -> None:
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, text))


def test_follow_shows_lines_as_they_are_written_and_ends_with_the_container(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    apply(kubectl, tmp_path, ns, """
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  restartPolicy: Never
  containers:
  - name: tick
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.4; done"]
""")
    wait_for(lambda: "running" in (status_of(kubectl, ns, "ticker", "tick").get("state") or {}), what="running")
    follower = subprocess.Popen(kubectl.argv("logs", "-f", "ticker", "-n", ns), stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        arrivals = []
        for line in follower.stdout:
            arrivals.append((time.monotonic(), line.strip()))
        assert follower.wait(timeout=10) == 0  # the stream ended with the container
    finally:
        follower.kill()
        follower.wait()
    assert [text for _, text in arrivals] == [f"tick {i}" for i in range(1, 9)]
    # lines came one by one, as written (0.4 s apart), not all at the end
    assert arrivals[-1][0] - arrivals[2][0] > 1.0


def test_previous_after_a_crash(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    apply(kubectl, tmp_path, ns, """
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "echo life of $PPID; echo about to fail >&2; sleep 0.3; exit 3"]
""")
    wait_for(lambda: int(status_of(kubectl, ns, "crasher", "app").get("restartCount") or 0) >= 2, what="two restarts")
    previous = kubectl.out("logs", "crasher", "-n", ns, "--previous")
    assert re.fullmatch(r"life of \d+\nabout to fail\n", previous)
    current = kubectl.run("logs", "crasher", "-n", ns, ok=False)
    assert current.returncode == 0 and re.match(r"life of \d+\n", current.stdout)


def test_options_containers_and_selectors(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    apply(kubectl, tmp_path, ns, """
apiVersion: v1
kind: Pod
metadata: {name: pair, labels: {app: pair}}
spec:
  containers:
  - name: left
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo left $i; done; sleep 3600"]
  - name: right
    image: busybox
    command: ["sh", "-c", "echo right 1; echo right oops >&2; sleep 3600"]
""")
    wait_for(lambda: kubectl.out("logs", "pair", "-n", ns, "-c", "right").count("\n") == 2, what="the right container's lines")
    wait_for(lambda: kubectl.out("logs", "pair", "-n", ns, "-c", "left").count("\n") == 5, what="the left container's lines")
    assert kubectl.out("logs", "pair", "-n", ns, "-c", "left", "--tail", "2") == "left 4\nleft 5\n"
    stamped = kubectl.out("logs", "pair", "-n", ns, "-c", "right", "--timestamps")
    assert re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z right (1|oops)\n){2}", stamped)
    assert kubectl.out("logs", "pair", "-n", ns, "-c", "right", "--since", "1h") == "right 1\nright oops\n"
    time.sleep(1.2)
    assert kubectl.out("logs", "pair", "-n", ns, "-c", "right", "--since", "1s") == ""
    every = kubectl.out("logs", "-n", ns, "-l", "app=pair", "--all-containers", "--prefix")
    assert sorted(every.splitlines()) == [  # (kubectl asks for the containers side by side)
        *(f"[pod/pair/left] left {i}" for i in range(1, 6)), "[pod/pair/right] right 1", "[pod/pair/right] right oops",
    ]
    # kubectl picks the first container by itself, and says so
    first = kubectl.run("logs", "pair", "-n", ns)
    assert first.stdout.startswith("left 1\n") and 'Defaulted container "left" out of: left, right' in first.stderr
    # the API server's own answer when no container is named
    with_curl = kubectl.run("get", "--raw", f"/api/v1/namespaces/{ns}/pods/pair/log", ok=False)
    assert "a container name must be specified for pod pair, choose one of: [left right]" in with_curl.stderr
    refused = kubectl.run("logs", "pair", "-n", ns, "-c", "right", "--previous", ok=False)
    assert 'previous terminated container "right" in pod "pair" not found' in refused.stderr


def test_a_pod_that_does_not_run_has_no_lines(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    apply(kubectl, tmp_path, ns, """
apiVersion: v1
kind: Pod
metadata: {name: record}
spec:
  containers:
  - {name: web, image: example.com/unmapped/web:1.0}
""")
    done = kubectl.run("logs", "record", "-n", ns, ok=False)
    phase = kubectl.out("get", "pod", "record", "-n", ns, "-o", "jsonpath={.status.phase}")
    if phase == "Running":  # a record: no lines, and kubectl says why
        assert (done.returncode, done.stdout) == (0, "")
        assert "Warning: the emulator's kubelet does not run this pod, so its containers write no logs: no command known" in done.stderr, done.stderr
    else:  # the kubelet's words for a container that never started
        assert 'container "web" in pod "record" is waiting to start' in done.stderr


def test_pods_log_is_a_discoverable_get_only_subresource(kubectl: Kubectl, ns: str) -> None:
    assert kubectl.out("auth", "can-i", "get", "pods", "--subresource=log", "-n", ns).strip() == "yes"
    import json

    resources = json.loads(kubectl.out("get", "--raw", "/api/v1"))["resources"]
    assert {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]} in resources


def test_without_the_kubelet_logs_are_empty_and_kubectl_says_why(tmp_path: Path) -> None:
    emulator = start_emulator(tmp_path / "data")
    try:
        home = tmp_path / "home"
        kubeconfig.write(home / "config", emulator.api_url, use=True)
        kubectl = Kubectl(require_tool("kubectl"), home / "config", home / "cache")
        kubectl.run("run", "web", "--image=nginx")
        done = kubectl.run("logs", "web", ok=False)
        assert (done.returncode, done.stdout) == (0, "")
        assert "Warning: the emulator was started without --kubelet, so this pod's containers do not run" in done.stderr
        assert "emulator serve --kubelet" in done.stderr
    finally:
        emulator.stop()
