"""The HorizontalPodAutoscaler controller's decisions (emulator/controllers/horizontalpodautoscaler.py), as
pure functions: the replica calculation (cases from kube-controller-manager's replica_calculator_test.go),
the stabilization windows and the scaling rules."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from emulator.controllers.horizontalpodautoscaler import (
    History,
    HorizontalPodAutoscalerController,
    MetricError,
    PodView,
    group_pods,
    legacy_bounded,
    legacy_stabilized,
    milli_quantity,
    pod_view,
    rate_limited,
    resource_replicas,
    stabilized,
    with_conditions,
)
from emulator.kinds import DEPLOYMENTS, NAMESPACES, PODS, SERVICE_ACCOUNTS
from emulator.kinds.horizontalpodautoscaler import (
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
    METRICS_ANNOTATION,
    _scale_down_defaults,
    _scale_up_defaults,
    hpa_from_v1,
    hpa_to_v1,
)
from emulator.kinds.horizontalpodautoscaler import HORIZONTAL_POD_AUTOSCALERS as HPAS
from emulator.kubelet.stats import Usage
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

UTILIZATION_30 = {"type": "Utilization", "averageUtilization": 30}


def pods(n: int, ready: list[bool] | None = None, request: int = 1000, phase: str = "Running") -> list[PodView]:
    ready = ready or [True] * n
    return [PodView(f"p{i}", phase, ready[i], False, {"c": {"cpu": request, "memory": request}}) for i in range(n)]


def usage(*values: int) -> dict[str, int]:
    return {f"p{i}": v for i, v in enumerate(values)}


def test_scale_up_by_the_usage_ratio() -> None:
    got = resource_replicas(3, pods(3), usage(300, 500, 700), "cpu", UTILIZATION_30)
    assert (got.replicas, got.utilization, got.average) == (5, 50, 500)


def test_scale_down_by_the_usage_ratio() -> None:
    got = resource_replicas(5, pods(5), usage(100, 300, 500, 250, 250), "cpu", {"type": "Utilization", "averageUtilization": 50})
    assert (got.replicas, got.utilization) == (3, 28)


def test_within_the_tolerance_nothing_changes() -> None:
    got = resource_replicas(3, pods(3), usage(320, 330, 310), "cpu", UTILIZATION_30)  # 32 % of a 30 % target
    assert (got.replicas, got.utilization) == (3, 32)


def test_unready_pods_do_not_count_towards_a_scale_up() -> None:
    got = resource_replicas(3, pods(3, ready=[False, True, True]), usage(300, 500, 700), "cpu", UTILIZATION_30)
    assert (got.replicas, got.utilization) == (4, 60)  # measured 60 % on the two ready; the unready one as idle


def test_a_pod_without_metrics_is_counted_as_idle_when_scaling_up() -> None:
    # 190 % of the request on the one measured pod, the other as 0: 95 %, within the tolerance
    got = resource_replicas(2, pods(2), {"p0": 1900}, "cpu", {"type": "Utilization", "averageUtilization": 100})
    assert got.replicas == 2


def test_a_pod_without_metrics_is_counted_at_the_target_when_scaling_down() -> None:
    # 10 % on the measured pod; the missing one at max(100, target) % keeps the proposal from shrinking
    got = resource_replicas(2, pods(2), {"p0": 100}, "cpu", {"type": "Utilization", "averageUtilization": 50})
    assert got.replicas == 2


def test_average_value_targets_compare_the_mean_usage() -> None:
    target = {"type": "AverageValue", "averageValue": "200m"}
    got = resource_replicas(2, pods(2), usage(400, 400), "cpu", target)
    assert (got.replicas, got.utilization, got.average) == (4, None, 400)


def test_memory_counts_pods_that_are_not_ready_and_cpu_does_not() -> None:
    views = pods(2, ready=[False, True])
    assert group_pods(views, usage(1, 1), "memory") == (2, set(), set(), set())
    assert group_pods(views, usage(1, 1), "cpu") == (1, {"p0"}, set(), set())
    pending = pods(1, phase="Pending") + [PodView("gone", "Running", True, True, {})]
    assert group_pods(pending, {}, "cpu") == (0, {"p0"}, set(), {"gone"})


def test_no_metrics_and_no_requests_are_errors_with_the_controllers_words() -> None:
    with pytest.raises(MetricError, match="no metrics returned from resource metrics API") as no_metrics:
        resource_replicas(2, pods(2), {}, "cpu", UTILIZATION_30)
    assert no_metrics.value.reason == "FailedGetResourceMetric"
    without_request = [PodView("p0", "Running", True, False, {"c": {}})]
    with pytest.raises(MetricError, match="missing request for cpu in container c of Pod p0"):
        resource_replicas(1, without_request, {"p0": 100}, "cpu", UTILIZATION_30)


def test_a_container_resource_reads_one_containers_request() -> None:
    pod = PodView("p0", "Running", True, False, {"app": {"cpu": 100}, "sidecar": {"cpu": 900}})
    got = resource_replicas(1, [pod], {"p0": 100}, "cpu", {"type": "Utilization", "averageUtilization": 50}, container="app")
    assert (got.replicas, got.utilization) == (2, 100)


def test_pod_view_reads_readiness_and_requests() -> None:
    pod: dict[str, Any] = {
        "metadata": {"name": "a"},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert pod_view(pod) == PodView("a", "Running", True, False, {"c": {"cpu": 250, "memory": 64 * 1024 * 1024 * 1000}})


def test_the_scale_down_window_keeps_the_highest_recent_recommendation() -> None:
    behavior = {"scaleUp": _scale_up_defaults(), "scaleDown": _scale_down_defaults()}
    history = History()
    assert stabilized(5, 5, behavior, history, now=0.0) == 5
    assert stabilized(5, 2, behavior, history, now=60.0) == 5  # 5 was recommended within 300 s
    assert stabilized(5, 2, behavior, history, now=301.0) == 2  # no longer
    assert stabilized(2, 8, behavior, history, now=302.0) == 8  # scaling up is not held back (window 0)


def test_the_default_scale_up_policy_allows_4_pods_or_double_per_15_seconds() -> None:
    behavior = {"scaleUp": _scale_up_defaults(), "scaleDown": _scale_down_defaults()}
    history = History()
    assert rate_limited(2, 20, 1, 50, behavior, history, now=0.0) == (6, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
    assert rate_limited(10, 40, 1, 50, behavior, history, now=0.0)[0] == 20  # 100 % beats 4 pods
    history.scale_ups.append((0.0, 4))  # 2 -> 6 just now: the period starts from 2
    assert rate_limited(6, 40, 1, 50, behavior, history, now=5.0)[0] == 6
    assert rate_limited(6, 40, 1, 50, behavior, history, now=16.0)[0] == 12
    assert rate_limited(6, 40, 1, 8, behavior, history, now=16.0) == (8, "TooManyReplicas", "the desired replica count is more than the maximum replica count")


def test_scale_down_policies_and_the_minimum() -> None:
    behavior = {"scaleUp": _scale_up_defaults(), "scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    history = History()
    assert rate_limited(5, 1, 1, 10, behavior, history, now=0.0) == (4, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")
    assert rate_limited(5, 1, 3, 10, {"scaleDown": _scale_down_defaults()}, history, now=0.0) == (3, "TooFewReplicas", "the desired replica count is less than the minimum replica count")
    assert rate_limited(5, 1, 1, 10, {"scaleDown": {**_scale_down_defaults(), "selectPolicy": "Disabled"}}, history, now=0.0)[0] == 5
    assert rate_limited(5, 5, 1, 10, behavior, history, now=0.0) == (5, "DesiredWithinRange", "the desired count is within the acceptable range")


def test_without_behavior_the_older_fixed_rules_apply() -> None:
    history = History()
    assert legacy_stabilized(6, history, now=0.0) == 6
    assert legacy_stabilized(2, history, now=100.0) == 6
    assert legacy_stabilized(2, history, now=400.0) == 2
    assert legacy_bounded(2, 20, 1, 10) == (4, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
    assert legacy_bounded(8, 20, 1, 10) == (10, "TooManyReplicas", "the desired replica count is more than the maximum replica count")
    assert legacy_bounded(8, 1, 2, 10) == (2, "TooFewReplicas", "the desired replica count is less than the minimum replica count")


def test_conditions_keep_their_transition_time_while_their_status_holds() -> None:
    old = [{"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "m", "lastTransitionTime": "T0"}]
    new = with_conditions(old, [{"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "m2"},
                                {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "x"}], "T1")
    assert [(c["type"], c["lastTransitionTime"], c["message"]) for c in new] == [("AbleToScale", "T1", "x"), ("ScalingActive", "T0", "m2")]
    flipped = with_conditions(new, [{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "y"}], "T2")
    assert [c["lastTransitionTime"] for c in flipped] == ["T1", "T2"]


def test_quantities_are_written_as_the_api_server_writes_them() -> None:
    assert [milli_quantity(v) for v in (250, 2000, 12_000_000_000, 11_534_336_000, 0)] == ["250m", "2", "12M", "11534336", "0"]


# -- autoscaling/v1 (emulator/kinds/horizontalpodautoscaler.py): what `kubectl autoscale` writes ---------

V2_HPA: dict[str, Any] = {
    "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 70}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {"matchLabels": {"a": "b"}}}, "target": {"type": "AverageValue", "averageValue": "10"}}},
            {"type": "Object", "object": {"describedObject": {"apiVersion": "v1", "kind": "Service", "name": "s"}, "metric": {"name": "hits"},
                                          "target": {"type": "Value", "value": "2k"}}},
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "30"}}},
        ],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}},
    },
    "status": {
        "currentReplicas": 2, "desiredReplicas": 3, "lastScaleTime": "2026-12-03T07:00:00Z",
        "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 90, "averageValue": "90m"}}},
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "50Mi"}}},
        ],
        "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "m", "lastTransitionTime": "T"}],
    },
}


def test_v1_serves_the_cpu_target_in_its_own_fields_and_the_rest_in_annotations() -> None:
    v1 = hpa_to_v1(V2_HPA)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1,
                          "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}
    assert v1["status"] == {"currentReplicas": 2, "desiredReplicas": 3, "lastScaleTime": "2026-12-03T07:00:00Z", "currentCPUUtilizationPercentage": 90}
    annotations = v1["metadata"]["annotations"]
    assert json.loads(annotations[METRICS_ANNOTATION])[:2] == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}},
        {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "targetAverageUtilization": 70}},
    ]
    assert json.loads(annotations[CONDITIONS_ANNOTATION]) == V2_HPA["status"]["conditions"]
    assert json.loads(annotations[BEHAVIOR_ANNOTATION]) == V2_HPA["spec"]["behavior"]
    assert annotations["team"] == "a"


def test_a_v1_object_written_back_loses_nothing_of_v2() -> None:
    assert hpa_from_v1(hpa_to_v1(V2_HPA)) == V2_HPA
    plain = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"},
             "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}}
    assert hpa_from_v1(plain)["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 3, "metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    assert "status" not in hpa_from_v1(plain)


# -- the controller over a real in-memory registry, with the usage it would measure given -----------------


@dataclass
class FixedUsage:
    """What the kubelet's processes would measure: (namespace, pod, container) -> Usage."""

    usage: dict[tuple[str, str, str], Usage] = field(default_factory=dict)

    def running_pids(self) -> dict[tuple[str, str, str], int]:
        return dict.fromkeys(self.usage, 1)

    def collect(self, containers: dict[tuple[str, str, str], int]) -> dict[tuple[str, str, str], Usage]:
        return {key: self.usage[key] for key in containers}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_world(kubelet: FixedUsage | None) -> tuple[Registry, HorizontalPodAutoscalerController, Clock]:
    registry = Registry(Cluster(Store(MemoryBackend()), AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    registry.create(NAMESPACES, "", {"metadata": {"name": "default"}})
    registry.create(SERVICE_ACCOUNTS, "default", {"metadata": {"name": "default"}})  # (what the namespace controller makes)
    clock = Clock()
    controller = HorizontalPodAutoscalerController(registry, lambda: kubelet, (lambda: kubelet) if kubelet else None, clock=clock)
    return registry, controller, clock


TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x", "resources": {"requests": {"cpu": "100m"}}}]}}


def deployment_and_pods(registry: Registry, replicas: int) -> None:
    registry.create(DEPLOYMENTS, "default", {"metadata": {"name": "web"}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}})
    ready_pods(registry, range(replicas))


def ready_pods(registry: Registry, numbers: range) -> None:
    """What the ReplicaSet controller and the kubelet would make of the template: running, ready pods."""
    for i in numbers:
        pod = registry.create(PODS, "default", {"metadata": {"name": f"web-{i}", "labels": {"app": "web"}}, "spec": TEMPLATE["spec"]}).obj
        registry.replace_object(PODS, pod, {**pod, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}, subresource="status")


def autoscaler(registry: Registry, **spec: Any) -> None:
    registry.create(HPAS, "default", {"metadata": {"name": "web"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}], **spec}})


def scale_of_web(registry: Registry) -> int:
    return int(registry.get(DEPLOYMENTS, "default", "web")["spec"]["replicas"])


def hpa_conditions(registry: Registry) -> dict[str, tuple[str, str, str]]:
    status = registry.get(HPAS, "default", "web")["status"]
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status.get("conditions") or []}


def busy(kubelet: FixedUsage, pods: int, millicores: int) -> None:
    kubelet.usage = {("default", f"web-{i}", "app"): Usage(millicores * 1_000_000, 1 << 20, 0.0, 15.0) for i in range(pods)}


async def test_without_the_kubelet_the_hpa_says_why_it_has_no_metrics() -> None:
    registry, controller, _ = make_world(None)
    deployment_and_pods(registry, 2)
    autoscaler(registry)
    assert controller.sync(("default", "web")) is None
    status, reason, message = hpa_conditions(registry)["ScalingActive"]
    assert (status, reason) == ("False", "FailedGetResourceMetric")
    assert message.endswith("no metrics returned from resource metrics API (the emulator runs pods, and so measures them, only with --kubelet)")
    assert scale_of_web(registry) == 2


async def test_scaled_up_by_usage_then_down_once_the_window_has_passed() -> None:
    kubelet = FixedUsage()
    registry, controller, clock = make_world(kubelet)
    deployment_and_pods(registry, 2)
    autoscaler(registry, behavior={})  # the API server's default behavior
    busy(kubelet, 2, 150)  # 150 % of the request against a 50 % target: x3
    await controller.measure()
    controller.sync(("default", "web"))
    assert scale_of_web(registry) == 6
    status = registry.get(HPAS, "default", "web")["status"]
    assert status["currentMetrics"] == [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 150, "averageValue": "150m"}}}]
    assert status["desiredReplicas"] == 6 and hpa_conditions(registry)["ScalingActive"][:2] == ("True", "ValidMetricFound")
    assert hpa_conditions(registry)["AbleToScale"][:2] == ("True", "SucceededRescale")
    ready_pods(registry, range(2, 6))
    busy(kubelet, 6, 10)  # nearly idle now: 10 % of the request, 0.2 x 6 -> 2 pods, held by the 300 s window
    await controller.measure()
    clock.now += 60
    controller.sync(("default", "web"))
    assert scale_of_web(registry) == 6
    assert hpa_conditions(registry)["AbleToScale"][:2] == ("True", "ScaleDownStabilized")
    clock.now += 300
    controller.sync(("default", "web"))
    assert scale_of_web(registry) == 2
