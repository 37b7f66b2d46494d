"""The HorizontalPodAutoscaler controller (kube-controller-manager's podautoscaler, autoscaling/v2).

Every sync period (`--hpa-sync-period`, 15 s as kube-controller-manager's default) and whenever an HPA
changes, each HPA is looked at as the real controller does (`reconcileAutoscaler`):
- the target is read through its `scale` subresource (Deployment, ReplicaSet, StatefulSet,
  ReplicationController, or a custom resource that has one); a target scaled to 0 is left alone
  (ScalingDisabled);
- below minReplicas or above maxReplicas it is brought within them at once, metrics or not;
- otherwise each metric proposes a replica count and the largest wins. Resource and ContainerResource
  metrics (cpu, memory; `Utilization` of the pods' requests or `AverageValue`) come from what the local
  kubelet measures of its processes (the numbers `kubectl top` shows, emulator/kubelet/stats.py); pods
  that do not run (no `--kubelet`) have none, and the HPA says so in its conditions. Pods, Object and
  External metrics need a custom metrics API the emulator does not serve: those say so too;
- the proposal goes through the behavior (`spec.behavior`, defaulted by the API server): the
  stabilization windows (the highest recommendation of the last 300 s before scaling down) and the
  scaling policies (by default at most +4 pods or +100 % per 15 s up, -100 % per 15 s down);
- the new size is written to the target's `scale` through the registry (event `SuccessfulRescale`), and
  the HPA's status (currentReplicas, desiredReplicas, currentMetrics, lastScaleTime and the AbleToScale,
  ScalingActive and ScalingLimited conditions) with the real controller's reasons and messages.

The decisions are pure functions (`resource_replicas`, `stabilized`, `rate_limited`, ...) tested
directly; the metrics are measured off the event loop (psutil in a thread), once per period, for every
HPA at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from emulator import errors
from emulator.controllers.events import EventRecorder
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import BY_KIND, PODS
from emulator.kinds.horizontalpodautoscaler import HORIZONTAL_POD_AUTOSCALERS as HPAS
from emulator.kinds.values import DECIMAL_SI, Quantity, Undecodable, quantity_of
from emulator.labels import SelectorError, parse_selector
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.timestamps import rfc3339

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)

TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance: no change while usage is within 10 % of the target
DEFAULT_SYNC_PERIOD = 15.0  # --horizontal-pod-autoscaler-sync-period
DEFAULT_DOWNSCALE_WINDOW = 300  # --horizontal-pod-autoscaler-downscale-stabilization (an unset window)
NO_METRICS_API = "the emulator serves no custom or external metrics API (only resource metrics of running pods)"


class RunningContainers(Protocol):
    """What this needs of the kubelet (emulator/kubelet/kubelet.py's `Kubelet` is one)."""

    def running_pids(self) -> dict[tuple[str, str, str], int]: ...


class UsageSource(Protocol):
    """What this needs of emulator/kubelet/stats.py's `Stats`."""

    def collect(self, containers: dict[tuple[str, str, str], int]) -> dict[tuple[str, str, str], Any]: ...


# -- pure decisions: one metric ------------------------------------------------------------------------


class MetricError(Exception):
    """A metric that gives no proposal: its condition reason (FailedGetResourceMetric, ...) and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class PodView:
    """What the replica calculation reads of a pod."""

    name: str
    phase: str
    ready: bool
    deleting: bool
    requests: dict[str, dict[str, int]]  # container -> resource -> request in milli-units


def pod_view(pod: dict[str, Any]) -> PodView:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    requests: dict[str, dict[str, int]] = {}
    for container in spec.get("containers") or []:
        wanted = ((container.get("resources") or {}).get("requests")) or {}
        parsed = {}
        for resource, value in wanted.items():
            try:
                parsed[resource] = quantity_of(value).milli_value()
            except Undecodable:
                continue
        requests[container.get("name", "")] = parsed
    return PodView(meta["name"], status.get("phase") or "Pending", ready, bool(meta.get("deletionTimestamp")), requests)


def group_pods(pods: Iterable[PodView], usage: dict[str, int], resource: str) -> tuple[int, set[str], set[str], set[str]]:
    """groupPods: (how many are ready with a metric, the unready, those with no metric, the ignored). Pods
    being deleted or failed are ignored; pending ones are unready; for cpu, so is a pod not Ready (its
    usage while starting says little)."""
    ready_count, unready, missing, ignored = 0, set(), set(), set()
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            ignored.add(pod.name)
        elif pod.phase == "Pending":
            unready.add(pod.name)
        elif pod.name not in usage:
            missing.add(pod.name)
        elif resource == "cpu" and not pod.ready:
            unready.add(pod.name)
        else:
            ready_count += 1
    return ready_count, unready, missing, ignored


def pod_request(pod: PodView, resource: str, container: str | None) -> int:
    """calculatePodRequests: the sum of the containers' requests (or the one container's); a container
    without one makes utilization meaningless (MetricError, as the real controller says)."""
    total = 0
    for name, requests in pod.requests.items():
        if container is not None and name != container:
            continue
        if resource not in requests:
            raise MetricError("FailedGetResourceMetric", f"missing request for {resource} in container {name} of Pod {pod.name}")
        total += requests[resource]
    return total


def _proposal(current: int, ready_count: int, unready: set[str], missing: set[str], metrics: dict[str, int],
              ratio_of: Callable[[dict[str, int]], float], fill_low: Callable[[str], int], tolerance: float) -> int:
    """The shared core of GetResourceReplicas and the plain-value one: the proposal from the usage ratio,
    with pods that have no metric or are not ready counted conservatively (no scale-up on the strength of
    pods that are starting, no scale-down on the strength of pods not measured)."""
    ratio = ratio_of(metrics)
    up_with_unready = bool(unready) and ratio > 1.0
    if not up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * ready_count)
    filled = dict(metrics)
    for name in missing:  # as if at the target (scaling down) or idle (scaling up)
        filled[name] = fill_low(name) if ratio < 1.0 else 0
    if up_with_unready:
        for name in unready:
            filled[name] = 0
    new_ratio = ratio_of(filled)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current
    replicas = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


@dataclass(frozen=True, slots=True)
class ResourceProposal:
    replicas: int
    utilization: int | None  # percent of the requests (a Utilization target)
    average: int  # milli-units per pod


def resource_replicas(current: int, pods: list[PodView], usage: dict[str, int], resource: str, target: dict[str, Any],
                      container: str | None = None, tolerance: float = TOLERANCE) -> ResourceProposal:
    """A Resource (or ContainerResource) metric's proposal from the pods' usage (pod name -> milli-units),
    for a target of `averageUtilization` (percent of the requests) or `averageValue`."""
    ready_count, unready, missing, ignored = group_pods(pods, usage, resource)
    measured = {name: value for name, value in usage.items() if name not in ignored and name not in unready
                and any(p.name == name for p in pods)}
    if not measured:
        raise MetricError("FailedGetResourceMetric", f"unable to get metrics for resource {resource}: no metrics returned from resource metrics API")
    average = sum(measured.values()) // len(measured)
    if target.get("type") == "Utilization" or target.get("averageUtilization") is not None:
        goal = int(target.get("averageUtilization") or 0)
        by_name = {p.name: p for p in pods}
        requests = {name: pod_request(by_name[name], resource, container) for name in [*measured, *missing, *unready]}
        if any(requests[name] == 0 for name in measured):
            raise MetricError("FailedGetResourceMetric", f"missing request for {resource}")

        def utilization(values: dict[str, int]) -> int:
            asked = sum(requests[name] for name in values)
            return int(sum(values.values()) * 100 / asked) if asked else 0

        current_utilization = utilization(measured)
        replicas = _proposal(current, ready_count, unready, missing, measured, lambda v: utilization(v) / goal if goal else 0.0,
                             lambda name: requests[name] * max(100, goal) // 100, tolerance)
        return ResourceProposal(replicas, current_utilization, average)
    goal_value = quantity_of(target.get("averageValue")).milli_value()
    replicas = _proposal(current, ready_count, unready, missing, measured,
                         lambda v: (sum(v.values()) / len(v)) / goal_value if goal_value else 0.0, lambda name: goal_value, tolerance)
    return ResourceProposal(replicas, None, average)


def milli_quantity(milli: int) -> str:
    """resource.NewMilliQuantity(value, DecimalSI).String(): `250m`, `2`, `12M`."""
    return str(Quantity(Fraction(milli, 1000), DECIMAL_SI))


# -- pure decisions: the behavior ----------------------------------------------------------------------


@dataclass
class History:
    """What one HPA's behavior remembers: recent recommendations, recent scale changes (monotonic times)."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_ups: list[tuple[float, int]] = field(default_factory=list)
    scale_downs: list[tuple[float, int]] = field(default_factory=list)


def _window(rules: dict[str, Any], default: int) -> int:
    value = rules.get("stabilizationWindowSeconds")
    return default if value is None else int(value)


def stabilized(current: int, desired: int, behavior: dict[str, Any], history: History, now: float) -> int:
    """stabilizeRecommendationWithBehaviors: no higher than the lowest recommendation within the scale-up
    window, no lower than the highest within the scale-down window (the current size when between).
    Records `desired` and forgets what lies beyond both windows."""
    up_window = _window(behavior.get("scaleUp") or {}, 0)
    down_window = _window(behavior.get("scaleDown") or {}, DEFAULT_DOWNSCALE_WINDOW)
    up, down = desired, desired
    for at, recommendation in history.recommendations:
        if at > now - up_window:
            up = min(up, recommendation)
        if at > now - down_window:
            down = max(down, recommendation)
    longest = max(up_window, down_window)
    history.recommendations = [(at, r) for at, r in history.recommendations if at > now - longest]
    history.recommendations.append((now, desired))
    return min(max(current, up), down)


def legacy_stabilized(desired: int, history: History, now: float, window: int = DEFAULT_DOWNSCALE_WINDOW) -> int:
    """stabilizeRecommendation, for an HPA without `spec.behavior`: the highest recommendation of the last
    `window` seconds, this one included (it is recorded)."""
    recent = [(at, r) for at, r in history.recommendations if at > now - window]
    history.recommendations = [*recent, (now, desired)]
    return max([desired, *(r for _, r in recent)])


def legacy_bounded(current: int, desired: int, low: int, high: int) -> tuple[int, str, str]:
    """convertDesiredReplicasWithRules, for an HPA without `spec.behavior`: within the bounds, and up by
    at most twice the current size (or to 4)."""
    scale_up_limit = max(2 * current, 4)
    if high > scale_up_limit:
        highest, reason, message = scale_up_limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
    else:
        highest, reason, message = high, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
    if desired < low:
        return low, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    if desired > highest:
        return highest, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def _changed_within(events: list[tuple[float, int]], seconds: int, now: float) -> int:
    return sum(change for at, change in events if at > now - seconds)


def rate_limited(current: int, desired: int, low: int, high: int, behavior: dict[str, Any], history: History,
                 now: float) -> tuple[int, str, str]:
    """convertDesiredReplicasWithBehaviorRate: the size allowed by the scaling policies and the bounds,
    with the ScalingLimited reason and message."""
    if desired > current:
        rules = behavior.get("scaleUp") or {}
        limit = _scale_up_limit(current, rules, history, now)
        limit = max(limit, current)  # scaling up never scales down
        if high > limit:
            allowed, reason, message = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
        else:
            allowed, reason, message = high, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
        if desired > allowed:
            return allowed, reason, message
    elif desired < current:
        rules = behavior.get("scaleDown") or {}
        limit = min(_scale_down_limit(current, rules, history, now), current)
        if low < limit:
            allowed, reason, message = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            allowed, reason, message = low, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
        if desired < allowed:
            return allowed, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def _scale_up_limit(current: int, rules: dict[str, Any], history: History, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules: each policy's size from the size at its period's start."""
    return _policy_limit(current, rules, history, now, up=True)


def _scale_down_limit(current: int, rules: dict[str, Any], history: History, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors."""
    return _policy_limit(current, rules, history, now, up=False)


def _policy_limit(current: int, rules: dict[str, Any], history: History, now: float, up: bool) -> int:
    """The size the scaling policies allow in one direction: `selectPolicy` Max takes the policy that
    allows the biggest change, Min the smallest, Disabled none."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    proposals = []
    for policy in rules.get("policies") or []:
        period = int(policy.get("periodSeconds") or 0)
        # the size when the period began: what was added since taken off, what was removed put back
        start = current - _changed_within(history.scale_ups, period, now) + _changed_within(history.scale_downs, period, now)
        value = int(policy.get("value") or 0)
        if up:
            proposals.append(start + value if policy.get("type") == "Pods" else math.ceil(start * (1 + value / 100)))
        else:
            proposals.append(start - value if policy.get("type") == "Pods" else int(start * (1 - value / 100)))
    if not proposals:
        return current
    biggest_change = max(proposals) if up else min(proposals)
    smallest_change = min(proposals) if up else max(proposals)
    return smallest_change if select == "Min" else biggest_change


def condition(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if status else "False", "reason": reason, "message": message}


def with_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """The conditions in the order AbleToScale, ScalingActive, ScalingLimited; a condition keeps its
    lastTransitionTime while its status does not change."""
    by_type = {c.get("type"): c for c in old}
    merged = {c["type"]: c for c in old}
    for c in new:
        before = by_type.get(c["type"])
        since = before.get("lastTransitionTime") if before is not None and before.get("status") == c["status"] else now
        merged[c["type"]] = {**c, "lastTransitionTime": since or now}
    order = ("AbleToScale", "ScalingActive", "ScalingLimited")
    return [merged[t] for t in order if t in merged] + [c for t, c in merged.items() if t not in order]


# -- the controller ------------------------------------------------------------------------------------


class HorizontalPodAutoscalerController:
    def __init__(self, registry: Registry, kubelet: Callable[[], RunningContainers | None] = lambda: None,
                 usage: Callable[[], UsageSource] | None = None, period: float = DEFAULT_SYNC_PERIOD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.store = registry.store
        self.kubelet = kubelet
        self.usage_source = usage
        self.period = period
        self.clock = clock
        self.queue: WorkQueue[Key] = WorkQueue("horizontalpodautoscaler", self.sync)
        self.events = EventRecorder(registry, "horizontal-pod-autoscaler")
        self.keys: dict[Key, int] = {}  # -> the generation last synced (a status write alone is no news)
        self.history: dict[Key, History] = {}
        self.usage: dict[tuple[str, str, str], Any] = {}  # (namespace, pod, container) -> Usage, of the last look
        self._task: asyncio.Task[None] | None = None

    # -- events ------------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.resource != HPAS.key:
            return
        key = (event.namespace, event.name)
        if event.type == DELETED:
            self.keys.pop(key, None)
            self.history.pop(key, None)
            self.queue.forget(key)
            return
        generation = int(event.obj["metadata"].get("generation") or 0)
        if self.keys.get(key) != generation:
            self.keys[key] = generation
            self.queue.add(key)

    # -- the period ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.queue.start()
        self._task = asyncio.get_running_loop().create_task(self._every_period(), name="hpa-metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.queue.stop()

    async def _every_period(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            if not self.keys:
                continue
            try:
                await self.measure()
            except Exception:  # a failed look is the next period's to retry; the HPAs say what they miss
                log.exception("could not measure the pods' resource usage")
            for key in list(self.keys):
                self.queue.add(key)

    async def measure(self) -> None:
        """The running containers' usage, measured in a thread (psutil reads /proc)."""
        kubelet = self.kubelet()
        running = kubelet.running_pids() if kubelet is not None else {}
        if not running or self.usage_source is None:
            self.usage = {}
            return
        source = self.usage_source()
        self.usage = await asyncio.to_thread(source.collect, running)

    # -- sync --------------------------------------------------------------------------------------

    def sync(self, key: Key) -> float | None:
        ns, name = key
        hpa = self.store.get(HPAS.key, ns, name)
        if hpa is None or hpa["metadata"].get("deletionTimestamp"):
            return None
        spec = hpa.get("spec") or {}
        status = dict(hpa.get("status") or {})
        now_text = rfc3339(time.time())
        ref = spec.get("scaleTargetRef") or {}
        reference = f"{ref.get('kind')}/{ref.get('name')}"
        rt = BY_KIND.get((ref.get("apiVersion") or "", ref.get("kind") or ""))
        conditions: list[dict[str, Any]] = []
        try:
            if rt is None:
                raise errors.not_found(f"{ref.get('kind')}.{ref.get('apiVersion')}", ref.get("name") or "")
            scale = self.registry.get_scale(rt, ns, ref.get("name") or "")
        except errors.StatusError as exc:
            message = f"the HPA controller was unable to get the target's current scale: {exc.message}"
            self.events.record(HPAS, hpa, "Warning", "FailedGetScale", message)
            self._write_status(hpa, status, [condition("AbleToScale", False, "FailedGetScale", message)], now_text)
            return None
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        status_replicas = int((scale.get("status") or {}).get("replicas") or 0)
        low, high = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        desired, rescale_reason, metric_statuses = current, "", status.get("currentMetrics")
        if current == 0 and low != 0:
            desired = 0
            conditions.append(condition("ScalingActive", False, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero"))
        elif current > high:
            desired, rescale_reason = high, "Current number of replicas above Spec.MaxReplicas"
        elif current < low:
            desired, rescale_reason = low, "Current number of replicas below Spec.MinReplicas"
        else:
            proposed, metric_statuses, problem, metric_name = self._metrics_proposal(hpa, scale, current)
            if problem is not None:
                conditions.append(condition("ScalingActive", False, problem.reason, f"the HPA was unable to compute the replica count: {problem.message}"))
                self.events.record(HPAS, hpa, "Warning", problem.reason, problem.message)
            if proposed is None:
                conditions.append(condition("AbleToScale", True, "SucceededGetScale", "the HPA controller was able to get the target's current scale"))
                status.update(currentMetrics=metric_statuses or None)
                self._write_status(hpa, {**status, "currentReplicas": status_replicas, "desiredReplicas": current}, conditions, now_text)
                return None
            if problem is None:
                conditions.append(condition("ScalingActive", True, "ValidMetricFound", f"the HPA was able to successfully calculate a replica count from {metric_name}"))
            desired, able, limited = self._normalized(key, spec, current, proposed, low, high)
            conditions += [able, limited]
            if desired > current:
                rescale_reason = f"{metric_name} above target"
            elif desired < current:
                rescale_reason = "All metrics below target"
        if desired != current:
            try:
                self.registry.update(rt, ns, ref.get("name") or "", {**scale, "spec": {**(scale.get("spec") or {}), "replicas": desired}}, subresource="scale")
            except errors.StatusError as exc:
                message = f"the HPA controller was unable to update the target scale: {exc.message}"
                self.events.record(HPAS, hpa, "Warning", "FailedRescale", f"New size: {desired}; reason: {rescale_reason}; error: {exc.message}")
                self._write_status(hpa, status, [condition("AbleToScale", False, "FailedUpdateScale", message)], now_text)
                return None
            history = self.history.setdefault(key, History())
            (history.scale_ups if desired > current else history.scale_downs).append((self.clock(), abs(desired - current)))
            self.events.record(HPAS, hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {rescale_reason}")
            log.info("horizontalpodautoscaler %s/%s: %s scaled from %d to %d (%s)", ns, name, reference, current, desired, rescale_reason)
            status["lastScaleTime"] = now_text
            # (last: it stands over the normalization's AbleToScale, as the controller sets it after)
            conditions.append(condition("AbleToScale", True, "SucceededRescale", f"the HPA controller was able to update the target scale to {desired}"))
        status.update(currentReplicas=status_replicas, desiredReplicas=desired, currentMetrics=metric_statuses or None)
        self._write_status(hpa, status, conditions, now_text)
        return None

    def _normalized(self, key: Key, spec: dict[str, Any], current: int, proposed: int, low: int, high: int) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """normalizeDesiredReplicas(WithBehaviors): stabilized, then rate-limited and bounded (as the real
        controller, by the rules of `spec.behavior`, or by the older fixed ones when it has none)."""
        behavior = spec.get("behavior")
        history = self.history.setdefault(key, History())
        now = self.clock()
        if behavior is None:
            steady = legacy_stabilized(proposed, history, now)
        else:
            steady = stabilized(current, proposed, behavior, history, now)
        if steady != proposed:
            way = "ScaleUpStabilized" if steady < proposed else "ScaleDownStabilized"
            able = condition("AbleToScale", True, way, "recent recommendations were " + ("lower" if way == "ScaleUpStabilized" else "higher") + " than current one, applying the " + ("lowest" if way == "ScaleUpStabilized" else "highest") + " recent recommendation")
        else:
            able = condition("AbleToScale", True, "ReadyForNewScale", "recommended size matches current size")
        if behavior is None:
            desired, reason, message = legacy_bounded(current, steady, low, high)
        else:
            desired, reason, message = rate_limited(current, steady, low, high, behavior, history, now)
        limited = condition("ScalingLimited", desired != steady, reason, message)
        return desired, able, limited

    def _metrics_proposal(self, hpa: dict[str, Any], scale: dict[str, Any], current: int) -> tuple[int | None, list[dict[str, Any]], MetricError | None, str]:
        """computeReplicasForMetrics: the largest proposal of the metrics; (None, ...) when none could be
        computed, or when one failed and the others would scale down."""
        ns = hpa["metadata"]["namespace"]
        text = (scale.get("status") or {}).get("selector") or ""
        if not text:  # (a custom resource whose scale has no labelSelectorPath): not every pod of the namespace
            return None, [], MetricError("InvalidSelector", "selector is required"), ""
        try:
            selector = parse_selector(text)
        except SelectorError as exc:
            return None, [], MetricError("InvalidSelector", f"couldn't convert selector into a corresponding internal selector object: {exc}"), ""
        pods = [pod_view(p) for p in self.store.objects(PODS.key, ns) if selector.matches(p["metadata"].get("labels") or {})]
        best: int | None = None
        best_name = ""
        statuses: list[dict[str, Any]] = []
        problem: MetricError | None = None
        specs = (hpa.get("spec") or {}).get("metrics") or []
        invalid = 0
        for metric in specs:
            kind = metric.get("type")
            try:
                if kind not in ("Resource", "ContainerResource"):
                    raise MetricError(f"FailedGet{kind}Metric", f"unable to get {kind} metric: {NO_METRICS_API}")
                field_name = "resource" if kind == "Resource" else "containerResource"
                source = metric.get(field_name) or {}
                resource, container = source.get("name") or "", source.get("container") if kind == "ContainerResource" else None
                usage = self._pod_usage(ns, resource, container)
                if not usage and self.kubelet() is None:
                    raise MetricError("FailedGetResourceMetric", f"unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
                                      " (the emulator runs pods, and so measures them, only with --kubelet)")
                proposal = resource_replicas(current, pods, usage, resource, source.get("target") or {}, container)
            except MetricError as exc:
                invalid += 1
                problem = problem or exc
                continue
            current_value: dict[str, Any] = {"averageValue": milli_quantity(proposal.average)}
            if proposal.utilization is not None:
                current_value["averageUtilization"] = proposal.utilization
            named = {"name": resource, "current": current_value, **({"container": container} if container else {})}
            statuses.append({"type": kind, field_name: named})
            if best is None or proposal.replicas > best:
                best, best_name = proposal.replicas, f"{resource} {'container ' if container else ''}resource" + (
                    " utilization (percentage of request)" if proposal.utilization is not None else "")
        if best is None or (invalid and best < current):
            if problem is None:
                problem = MetricError("FailedGetResourceMetric", "no metrics to compute a replica count from")
            return None, statuses, problem, best_name
        return best, statuses, problem, best_name

    def _pod_usage(self, ns: str, resource: str, container: str | None) -> dict[str, int]:
        """Pod name -> its containers' usage of `resource` (or one container's), in milli-units."""
        if resource not in ("cpu", "memory"):
            raise MetricError("FailedGetResourceMetric", f"unable to get metrics for resource {resource}: only cpu and memory are measured")
        usage: dict[str, int] = {}
        for (namespace, pod, name), measured in self.usage.items():
            if namespace != ns or (container is not None and name != container):
                continue
            value = measured.cpu_nanocores // 1_000_000 if resource == "cpu" else measured.memory_bytes * 1000
            usage[pod] = usage.get(pod, 0) + value
        return usage

    def _write_status(self, hpa: dict[str, Any], status: dict[str, Any], conditions: list[dict[str, Any]], now: str) -> None:
        new_status = {k: v for k, v in status.items() if v is not None}
        new_status["conditions"] = with_conditions((hpa.get("status") or {}).get("conditions") or [], conditions, now)
        if new_status == (hpa.get("status") or {}):
            return
        try:
            self.registry.replace_object(HPAS, hpa, {**hpa, "status": new_status}, subresource="status")
        except errors.StatusError as exc:
            if exc.code != 409:  # a newer HPA is synced next
                raise
            self.queue.add((hpa["metadata"]["namespace"], hpa["metadata"]["name"]))
