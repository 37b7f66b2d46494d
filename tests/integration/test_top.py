"""`kubectl top` and the Python client's metrics helpers against a real `emulator serve --kubelet`: usage
measured from the containers' real processes (metrics.k8s.io/v1beta1, as metrics-server serves it)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config, utils

from emulator.security import kubeconfig
from tests.conftest import Emulator, require_tool, start_emulator
from tests.integration.kubectl_support import Kubectl, manifest

pytestmark = pytest.mark.timeout(120)

BURNER = """
apiVersion: v1
kind: Pod
metadata: {name: burner, labels: {app: burn}}
spec:
  containers:
  - name: spin
    image: busybox
    command: ["python3", "-c", "import time\\nx = bytearray(40 * 1024 * 1024)\\nwhile True:\\n    t = time.time()\\n    while time.time() - t < 0.05: pass\\n    time.sleep(0.05)"]
  - name: idle
    image: busybox
    command: ["sleep", "3600"]
"""


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("top-data"), "--kubelet", "--allow-anonymous")
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
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def millicores(text: str) -> float:
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def mebibytes(text: str) -> float:
    return float(text[:-2]) if text.endswith("Mi") else float(text[:-2]) * 1024


def test_top_pod_and_node_measure_the_processes(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, BURNER))
    wait_for(lambda: "burner" in kubectl.run("top", "pod", "-n", ns, ok=False).stdout, what="the pod's metrics")
    time.sleep(1.5)  # a window of real samples
    rows = kubectl.out("top", "pod", "burner", "-n", ns, "--containers").splitlines()
    assert re.split(r"\s{2,}", rows[0].strip()) == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    usage = {cells[1]: (millicores(cells[2]), mebibytes(cells[3])) for cells in (r.split() for r in rows[1:])}
    assert set(usage) == {"spin", "idle"}
    assert 200 <= usage["spin"][0] <= 800, usage  # busy half the time
    assert usage["spin"][1] >= 40 and usage["idle"][1] < 20, usage
    assert usage["idle"][0] < 100, usage
    selected = kubectl.out("top", "pod", "-n", ns, "-l", "app=burn").splitlines()
    assert [r.split()[0] for r in selected[1:]] == ["burner"]
    assert "No resources found" in kubectl.run("top", "pod", "-n", ns, "-l", "app=other", ok=False).stderr
    node = kubectl.out("top", "node").splitlines()
    assert node[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert node[1].split()[0] == "emulator"
    missing = kubectl.run("top", "pod", "nope", "-n", ns, ok=False)
    assert f'podmetrics.metrics.k8s.io "{ns}/nope" not found' in missing.stderr


def test_python_client_metrics_helpers(emu: Emulator, kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, BURNER))
    api = config.new_client_from_config(str(kubectl.config), context=kubeconfig.NAME)
    try:
        nodes = utils.get_nodes_metrics(api)
        assert nodes["kind"] == "NodeMetricsList" and "usage" in nodes["items"][0]
        # both containers: they start side by side, and a container is in the metrics once its process runs
        pods = wait_for(
            lambda: (items := utils.get_pods_metrics(api, ns, "app=burn")["items"]) and len(items[0]["containers"]) == 2 and items,
            what="pod metrics of both containers",
        )
        assert pods[0]["metadata"]["name"] == "burner"
        assert {c["name"] for c in pods[0]["containers"]} == {"spin", "idle"}
        assert re.fullmatch(r"\d+n", pods[0]["containers"][0]["usage"]["cpu"])
    finally:
        api.close()


def test_metrics_are_read_only_and_discoverable(kubectl: Kubectl) -> None:
    resources = kubectl.out("api-resources", "--api-group=metrics.k8s.io", "-o", "wide")
    assert re.search(r"nodes\s+metrics.k8s.io/v1beta1\s+false\s+NodeMetrics\s+get,list", resources)
    assert re.search(r"pods\s+metrics.k8s.io/v1beta1\s+true\s+PodMetrics\s+get,list", resources)
    refused = kubectl.run("delete", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/emulator", ok=False)
    assert refused.returncode != 0 and "MethodNotAllowed" in refused.stderr, refused.stderr
