"""HorizontalPodAutoscalers against a real `emulator serve --kubelet` (looking every second): the bounds are
kept whether or not there are metrics, and pods whose real processes use more CPU than the target are
scaled up, then down, through the Deployment's scale, as kube-controller-manager's controller would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Emulator, start_emulator
from tests.integration.kubectl_support import Kubectl, manifest

pytestmark = pytest.mark.timeout(120)

# busy 20 ms in every 100: about a fifth of a core, twice a 100m request
WORKLOAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: busybox
        {command}
        resources: {{requests: {{cpu: 100m}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: {low}
  maxReplicas: {high}
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}
"""
BUSY = 'command: ["python3", "-c", "import time\\nwhile True:\\n    t = time.time()\\n    while time.time() - t < 0.02: pass\\n    time.sleep(0.08)"]'


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("hpa-data"), "--kubelet", "--allow-anonymous", "--hpa-sync-period", "1")
    yield emulator
    emulator.stop(timeout=30)


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def replicas(kubectl: Kubectl, ns: str, name: str) -> int:
    return int(kubectl.out("get", "deployment", name, "-n", ns, "-o", "jsonpath={.spec.replicas}"))


def hpa(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl.out("get", "hpa", name, "-n", ns, "-o", "json"))
    return found


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in (obj.get("status") or {}).get("conditions") or []}


def rescales(kubectl: Kubectl, ns: str) -> list[str]:
    events = json.loads(kubectl.out("get", "events", "-n", ns, "--field-selector", "reason=SuccessfulRescale", "-o", "json"))["items"]
    return [e["message"] for e in sorted(events, key=lambda e: e["metadata"]["creationTimestamp"])]


def test_the_bounds_hold_without_metrics(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    # no command: the pods are records only, so there is nothing to measure
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, WORKLOAD.format(name="idle", command="", low=2, high=3)))
    wait_for(lambda: replicas(kubectl, ns, "idle") == 2, what="the Deployment at minReplicas")
    # at the next look, within the bounds: no metric to go by, and the HPA says so
    status = wait_for(lambda: "ScalingActive" in conditions(h := hpa(kubectl, ns, "idle")) and h, what="the HPA's conditions")
    assert conditions(status)["ScalingActive"] == ("False", "FailedGetResourceMetric")
    assert status["status"]["desiredReplicas"] == status["status"]["currentReplicas"] == 2
    assert "cpu: <unknown>/50%" in kubectl.out("get", "hpa", "idle", "-n", ns)
    kubectl.run("scale", "deployment", "idle", "-n", ns, "--replicas", "6")
    wait_for(lambda: replicas(kubectl, ns, "idle") == 3, what="the Deployment back at maxReplicas")
    assert rescales(kubectl, ns) == [
        "New size: 2; reason: Current number of replicas below Spec.MinReplicas",
        "New size: 3; reason: Current number of replicas above Spec.MaxReplicas",
    ]


def test_busy_pods_are_scaled_up_then_down(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, WORKLOAD.format(name="busy", command=BUSY, low=1, high=3)))
    wait_for(lambda: replicas(kubectl, ns, "busy") == 3, timeout=40, what="the Deployment scaled up to maxReplicas")
    status = hpa(kubectl, ns, "busy")["status"]
    [metric] = status["currentMetrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["current"]["averageUtilization"] > 55, metric
    assert conditions(hpa(kubectl, ns, "busy"))["ScalingActive"] == ("True", "ValidMetricFound")
    assert all(m.endswith("reason: cpu resource utilization (percentage of request) above target") for m in rescales(kubectl, ns)), rescales(kubectl, ns)
    row = kubectl.out("get", "hpa", "busy", "-n", ns).splitlines()[1]
    assert "cpu: " in row and "%/50%" in row and "<unknown>" not in row, row
    # a target the pods are far below, and no scale-down window: back to minReplicas at the next look
    patch = {"spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 5000}}}],
                      "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}}
    kubectl.run("patch", "hpa", "busy", "-n", ns, "--type", "merge", "-p", json.dumps(patch))
    wait_for(lambda: replicas(kubectl, ns, "busy") == 1, timeout=40, what="the Deployment scaled down to minReplicas")
    assert rescales(kubectl, ns)[-1] == "New size: 1; reason: All metrics below target"
    kubectl.run("delete", "deployment", "busy", "-n", ns)  # the busy processes stop now, not at the module's end


def test_kubectl_autoscale_writes_autoscaling_v1_which_keeps_what_v2_adds(kubectl: Kubectl, emu: Emulator, ns: str) -> None:
    kubectl.run("create", "deployment", "web", "-n", ns, "--image=busybox")  # no command: records only
    kubectl.run("autoscale", "deployment", "web", "-n", ns, "--min=2", "--max=3", "--cpu-percent=60")  # autoscaling/v1, protobuf
    wait_for(lambda: replicas(kubectl, ns, "web") == 2, what="the Deployment at minReplicas")
    cpu60 = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}
    assert hpa(kubectl, ns, "web")["spec"]["metrics"] == [cpu60]
    memory = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
    kubectl.run("patch", "hpa", "web", "-n", ns, "--type", "merge", "-p", json.dumps(
        {"spec": {"metrics": [cpu60, memory], "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}}}))
    path = f"/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers/web"
    with emu.client() as api:
        v1 = api.get(path).json()
        assert v1["apiVersion"] == "autoscaling/v1"
        assert (v1["spec"]["targetCPUUtilizationPercentage"], v1["spec"]["maxReplicas"]) == (60, 3)
        assert "autoscaling.alpha.kubernetes.io/metrics" in v1["metadata"]["annotations"]
        v1["spec"]["maxReplicas"] = 4  # a read-modify-write through v1 ...
        assert api.put(path, json=v1).status_code == 200
        assert api.patch(path, json={"spec": {"targetCPUUtilizationPercentage": 70}},
                         headers={"Content-Type": "application/merge-patch+json"}).status_code == 200
        with api.stream("GET", f"/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers", params={"watch": "1", "timeoutSeconds": "1"}) as watch:
            first = json.loads(next(watch.iter_lines()))
    after = hpa(kubectl, ns, "web")["spec"]  # ... keeps the memory metric and the behavior v1 cannot say
    assert after["maxReplicas"] == 4
    assert after["metrics"] == [{**cpu60, "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}, memory]
    assert after["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30
    assert first["object"]["apiVersion"] == "autoscaling/v1" and first["object"]["spec"]["targetCPUUtilizationPercentage"] == 70
    assert "cpu: <unknown>/70%, memory: <unknown>/100Mi" in kubectl.out("get", "hpa.v1.autoscaling", "web", "-n", ns)


SCALABLE_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: workers.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: workers, singular: worker, kind: Worker}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {replicas: {type: integer}}}
          status: {type: object, properties: {replicas: {type: integer}}}
"""


def test_a_custom_resource_is_scaled_through_its_scale_subresource(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("apply", "-f", manifest(tmp_path, SCALABLE_CRD))
    wait_for(lambda: kubectl.run("get", "workers", "-n", ns, ok=False).returncode == 0, what="the CRD served")
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, """
apiVersion: example.com/v1
kind: Worker
metadata: {name: w}
spec: {replicas: 1}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: w}
spec:
  scaleTargetRef: {apiVersion: example.com/v1, kind: Worker, name: w}
  minReplicas: 3
  maxReplicas: 5
"""))
    wait_for(lambda: kubectl.out("get", "worker", "w", "-n", ns, "-o", "jsonpath={.spec.replicas}") == "3", what="the Worker at minReplicas")
    # its scale names no selector (no labelSelectorPath): no pod can be counted, and the HPA says so
    found = wait_for(lambda: "ScalingActive" in conditions(h := hpa(kubectl, ns, "w")) and h, what="the HPA's conditions")
    assert conditions(found)["ScalingActive"] == ("False", "InvalidSelector")
    kubectl.run("delete", "crd", "workers.example.com")


def test_a_v1_manifest_applies_client_and_server_side_again_and_again(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    v1 = """
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {{name: api}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: api}}
  minReplicas: 1
  maxReplicas: {high}
  targetCPUUtilizationPercentage: 40
"""
    for high, how in ((4, ()), (5, ()), (6, ("--server-side",)), (7, ("--server-side",))):
        kubectl.run("apply", *how, "-n", ns, "-f", manifest(tmp_path, v1.format(high=high)))
        spec = hpa(kubectl, ns, "api")["spec"]
        assert spec["maxReplicas"] == high
        assert spec["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 40}}}]
    assert kubectl.run("diff", "-n", ns, "-f", manifest(tmp_path, v1.format(high=7)), ok=False).returncode == 0
