"""HorizontalPodAutoscaler (autoscaling/v2): the model, the API server's defaults (minReplicas 1, a CPU
target of 80%, the scaling behavior's policies) and validation (replica bounds, the target reference,
metric sources and targets, scaling rules), and the columns of `kubectl get hpa`.

Stored only: there is no metrics pipeline, so nothing scales and the targets show `<unknown>`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, spec_of, status_of
from emulator.kinds.values import (
    GoDecodedObject,
    QuantityValue,
    path_segment_errors,
    quantity_of,
    validate_container_resource_name,
)
from emulator.labels import validate_label_selector
from emulator.models.base import Int32
from emulator.models.meta import ApiModel, LabelSelector
from emulator.registry.patch import ListRule, ListRules
from emulator.registry.strategy import Strategy

HORIZONTAL_POD_AUTOSCALERS = ResourceType(
    "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, "horizontalpodautoscaler",
    ("hpa",), ("all",), subresources=(Subresource("status"),),
)
DEFAULT_CPU_UTILIZATION = 80
MAX_STABILIZATION_WINDOW_SECONDS = 3600
MAX_PERIOD_SECONDS = 1800
METRIC_SOURCE_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")  # sorted, as listed in errors
METRIC_TARGET_TYPES = ("Utilization", "Value", "AverageValue")
SELECT_POLICIES = ("Disabled", "Max", "Min")
SCALING_POLICY_TYPES = ("Percent", "Pods")
# the member of MetricSpec each source type fills
SOURCE_FIELDS = {"Object": "object", "Pods": "pods", "Resource": "resource", "External": "external", "ContainerResource": "containerResource"}


class CrossVersionObjectReference(ApiModel):
    kind: str | None = None
    name: str | None = None
    api_version: str | None = None


class MetricIdentifier(ApiModel):
    name: str | None = None
    selector: LabelSelector | None = None


class MetricTarget(ApiModel):
    type: str | None = None
    value: QuantityValue | None = None
    average_value: QuantityValue | None = None
    average_utilization: Int32 | None = None


class ObjectMetricSource(ApiModel):
    described_object: CrossVersionObjectReference = Field(default_factory=CrossVersionObjectReference)
    target: MetricTarget = Field(default_factory=MetricTarget)
    metric: MetricIdentifier = Field(default_factory=MetricIdentifier)


class PodsMetricSource(ApiModel):
    metric: MetricIdentifier = Field(default_factory=MetricIdentifier)
    target: MetricTarget = Field(default_factory=MetricTarget)


class ResourceMetricSource(ApiModel):
    name: str | None = None
    target: MetricTarget = Field(default_factory=MetricTarget)


class ContainerResourceMetricSource(ApiModel):
    name: str | None = None
    target: MetricTarget = Field(default_factory=MetricTarget)
    container: str | None = None


class ExternalMetricSource(ApiModel):
    metric: MetricIdentifier = Field(default_factory=MetricIdentifier)
    target: MetricTarget = Field(default_factory=MetricTarget)


class MetricSpec(ApiModel):
    type: str | None = None
    object: ObjectMetricSource | None = None
    pods: PodsMetricSource | None = None
    resource: ResourceMetricSource | None = None
    container_resource: ContainerResourceMetricSource | None = None
    external: ExternalMetricSource | None = None


class HPAScalingPolicy(ApiModel):
    type: str | None = None
    value: Int32 | None = None
    period_seconds: Int32 | None = None


class HPAScalingRules(ApiModel):
    stabilization_window_seconds: Int32 | None = None
    select_policy: str | None = None
    policies: list[HPAScalingPolicy] | None = None


class HorizontalPodAutoscalerBehavior(ApiModel):
    scale_up: HPAScalingRules | None = None
    scale_down: HPAScalingRules | None = None


class HorizontalPodAutoscalerSpec(ApiModel):
    scale_target_ref: CrossVersionObjectReference = Field(default_factory=CrossVersionObjectReference)
    min_replicas: Int32 | None = None
    max_replicas: Int32 | None = None
    metrics: list[MetricSpec] | None = None
    behavior: HorizontalPodAutoscalerBehavior | None = None


class HorizontalPodAutoscaler(GoDecodedObject):
    spec: HorizontalPodAutoscalerSpec = Field(default_factory=HorizontalPodAutoscalerSpec)
    status: Any = None


# -- defaults ----------------------------------------------------------------------------------------

def _scale_up_defaults() -> dict[str, Any]:
    return {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]}


def _scale_down_defaults() -> dict[str, Any]:
    return {"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]}


def _defaults(spec: dict[str, Any]) -> None:
    """SetDefaults_HorizontalPodAutoscaler (autoscaling/v2)."""
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION},
        }}]
    behavior = spec.get("behavior")
    if behavior is not None:
        for field, defaults in (("scaleUp", _scale_up_defaults()), ("scaleDown", _scale_down_defaults())):
            given = behavior.get(field) or {}
            behavior[field] = {**defaults, **{k: v for k, v in given.items() if v is not None}}


# -- validation --------------------------------------------------------------------------------------

def _validate_reference(ref: dict[str, Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    for field in ("kind", "name"):
        value = ref.get(field) or ""
        if not value:
            problems.append(errors.required(f"{path}.{field}"))
        else:
            problems += [invalid(f"{path}.{field}", value, m) for m in path_segment_errors(value)]
    return problems


def _validate_identifier(metric: dict[str, Any], path: str) -> list[FieldError]:
    name = metric.get("name") or ""
    if not name:
        return [_required(f"{path}.name", "must specify a metric name")]
    problems = [invalid(f"{path}.name", name, m) for m in path_segment_errors(name)]
    if metric.get("selector") is not None:
        problems += validate_label_selector(metric["selector"], f"{path}.selector")
    return problems


def _required(path: str, detail: str) -> FieldError:
    return FieldError(path, "FieldValueRequired", f"Required value: {detail}")


def _plain(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {value}: {detail}")


def _validate_target(target: dict[str, Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    kind = target.get("type") or ""
    if not kind:
        problems.append(_required(f"{path}.type", "must specify a metric target type"))
    if kind not in METRIC_TARGET_TYPES:
        problems.append(invalid(f"{path}.type", kind, "must be either Utilization, Value, or AverageValue"))
    for field in ("value", "averageValue"):
        if target.get(field) is not None and quantity_of(target[field]).sign() != 1:
            problems.append(_plain(f"{path}.{field}", target[field], "must be positive"))
    utilization = target.get("averageUtilization")
    if utilization is not None and utilization < 1:
        problems.append(_plain(f"{path}.averageUtilization", utilization, "must be greater than 0"))
    return problems


def _validate_resource_target(source: dict[str, Any], path: str) -> list[FieldError]:
    target = source.get("target") or {}
    problems = _validate_target(target, f"{path}.target")
    if target.get("averageUtilization") is None and target.get("averageValue") is None:
        problems.append(_required(f"{path}.target.averageUtilization", "must set either a target raw value or a target utilization"))
    if target.get("averageUtilization") is not None and target.get("averageValue") is not None:
        problems.append(errors.forbidden(f"{path}.target.averageValue", "may not set both a target raw value and a target utilization"))
    return problems


def _validate_source(kind: str, source: dict[str, Any], path: str) -> list[FieldError]:
    target = source.get("target") or {}
    if kind == "Object":
        problems = _validate_reference(source.get("describedObject") or {}, f"{path}.describedObject")
        problems += _validate_identifier(source.get("metric") or {}, f"{path}.metric")
        problems += _validate_target(target, f"{path}.target")
        if target.get("value") is None and target.get("averageValue") is None:
            problems.append(_required(f"{path}.target.averageValue", "must set either a target value or averageValue"))
        return problems
    if kind == "External":
        problems = _validate_identifier(source.get("metric") or {}, f"{path}.metric")
        problems += _validate_target(target, f"{path}.target")
        if target.get("value") is None and target.get("averageValue") is None:
            problems.append(_required(f"{path}.target.averageValue", "must set either a target value for metric or a per-pod target"))
        if target.get("value") is not None and target.get("averageValue") is not None:
            problems.append(errors.forbidden(f"{path}.target.value", "may not set both a target value for metric and a per-pod target"))
        return problems
    if kind == "Pods":
        problems = _validate_identifier(source.get("metric") or {}, f"{path}.metric")
        problems += _validate_target(target, f"{path}.target")
        if target.get("averageValue") is None:
            problems.append(_required(f"{path}.target.averageValue", "must specify a positive target averageValue"))
        return problems
    problems = []
    name = source.get("name") or ""
    if not name:
        problems.append(_required(f"{path}.name", "must specify a resource name"))
    else:
        problems += validate_container_resource_name(name, f"{path}.name")
    if kind == "ContainerResource":
        container = source.get("container") or ""
        if not container:
            problems.append(_required(f"{path}.container", "must specify a container"))
        else:
            problems += [invalid(f"{path}.container", container, m) for m in validation.dns1123_label_errors(container)]
    return problems + _validate_resource_target(source, path)


def _validate_metric(metric: dict[str, Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    kind = metric.get("type") or ""
    if not kind:
        problems.append(_required(f"{path}.type", "must specify a metric source type"))
    if kind not in METRIC_SOURCE_TYPES:
        problems.append(errors.not_supported(f"{path}.type", kind, list(METRIC_SOURCE_TYPES)))
    present = [f for f in SOURCE_FIELDS.values() if metric.get(f) is not None]
    if len(present) == 1:
        member = present[0]
        source_kind = next(k for k, f in SOURCE_FIELDS.items() if f == member)
        problems += _validate_source(source_kind, metric[member], f"{path}.{member}")
    expected = SOURCE_FIELDS.get(kind)
    if expected is not None and metric.get(expected) is None:
        problems.append(_required(f"{path}.{expected}", "must populate information for the given metric source"))
    if len(present) != 1:
        problems += [errors.forbidden(f"{path}.{f}", "must populate the given metric source only") for f in present if f != expected]
    return problems


def _validate_rules(rules: dict[str, Any] | None, path: str) -> list[FieldError]:
    if rules is None:
        return []
    problems: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if window is not None and window < 0:
        problems.append(invalid(f"{path}.stabilizationWindowSeconds", window, "must be greater than or equal to zero"))
    if window is not None and window > MAX_STABILIZATION_WINDOW_SECONDS:
        problems.append(invalid(f"{path}.stabilizationWindowSeconds", window, f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"))
    select = rules.get("selectPolicy")
    if select is not None and select not in SELECT_POLICIES:
        problems.append(errors.not_supported(f"{path}.selectPolicy", select, list(SELECT_POLICIES)))
    policies = rules.get("policies") or []
    if not policies:
        problems.append(_required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        at = f"{path}.policies[{i}]"
        if policy.get("type") not in SCALING_POLICY_TYPES:
            problems.append(errors.not_supported(f"{at}.type", policy.get("type") or "", list(SCALING_POLICY_TYPES)))
        value, period = policy.get("value") or 0, policy.get("periodSeconds") or 0
        if value <= 0:
            problems.append(invalid(f"{at}.value", value, "must be greater than zero"))
        if period <= 0:
            problems.append(invalid(f"{at}.periodSeconds", period, "must be greater than zero"))
        if period > MAX_PERIOD_SECONDS:
            problems.append(invalid(f"{at}.periodSeconds", period, f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return problems


class HorizontalPodAutoscalerStrategy(Strategy):
    resource = HORIZONTAL_POD_AUTOSCALERS
    model = HorizontalPodAutoscaler
    has_status = True

    def prepare_create(self, obj: dict[str, Any]) -> None:
        _defaults(obj["spec"])
        obj["status"] = {"desiredReplicas": 0}

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        _defaults(new["spec"])

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        problems: list[FieldError] = []
        low, high = spec.get("minReplicas"), spec.get("maxReplicas") or 0
        if low is not None and low < 1:
            problems.append(invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
        if high < 1:
            problems.append(invalid("spec.maxReplicas", high, "must be greater than 0"))
        if low is not None and high < low:
            problems.append(invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
        problems += _validate_reference(spec.get("scaleTargetRef") or {}, "spec.scaleTargetRef")
        for i, metric in enumerate(spec.get("metrics") or []):
            problems += _validate_metric(metric, f"spec.metrics[{i}]")
        behavior = spec.get("behavior") or {}
        problems += _validate_rules(behavior.get("scaleUp"), "spec.behavior.scaleUp")
        problems += _validate_rules(behavior.get("scaleDown"), "spec.behavior.scaleDown")
        return problems


MERGE_RULES: ListRules = {("status", "conditions"): ListRule("type", ("type",))}


def _target_text(name: str, target: dict[str, Any], current: str) -> str:
    if target.get("averageValue") is not None:
        return f"{name}: {current}/{quantity_of(target['averageValue'])}"
    goal = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None else "<auto>"
    return f"{name}: {current}/{goal}"


def format_metrics(specs: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> str:
    """formatHPAMetrics: "cpu: 12%/80%", "<unknown>/10 (avg)"; two at most, then "+ N more..."."""
    if not specs:
        return "<none>"
    shown: list[str] = []
    for i, spec in enumerate(specs):
        status = statuses[i] if i < len(statuses) else {}
        kind = spec.get("type")
        source = spec.get(SOURCE_FIELDS.get(kind or "", "")) or {}
        target = source.get("target") or {}
        current_of = status.get(SOURCE_FIELDS.get(kind or "", "")) or {}
        current = current_of.get("current") or {}
        if kind in ("External", "Object"):
            if target.get("averageValue") is not None:
                now = str(quantity_of(current["averageValue"])) if current.get("averageValue") is not None else "<unknown>"
                shown.append(f"{now}/{quantity_of(target['averageValue'])} (avg)")
            else:
                now = str(quantity_of(current.get("value"))) if current_of else "<unknown>"
                shown.append(f"{now}/{quantity_of(target.get('value'))}")
        elif kind == "Pods":
            now = str(quantity_of(current.get("averageValue"))) if current_of else "<unknown>"
            shown.append(f"{now}/{quantity_of(target.get('averageValue'))}")
        elif kind in ("Resource", "ContainerResource"):
            name = source.get("name") or ""
            if target.get("averageValue") is not None:
                now = str(quantity_of(current.get("averageValue"))) if current_of else "<unknown>"
            else:
                now = f"{current['averageUtilization']}%" if current.get("averageUtilization") is not None else "<unknown>"
            shown.append(_target_text(name, target, now))
        else:
            shown.append("<unknown type>")
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


def _hpa_cells(hpa: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(hpa, now)
    spec, status = spec_of(hpa), status_of(hpa)
    ref = spec.get("scaleTargetRef") or {}
    low = spec.get("minReplicas")
    return [
        name,
        f"{ref.get('kind') or ''}/{ref.get('name') or ''}",
        format_metrics(spec.get("metrics") or [], status.get("currentMetrics") or []),
        str(low) if low is not None else "<unset>",
        spec.get("maxReplicas") or 0,
        status.get("currentReplicas") or 0,
        created,
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Reference", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
        Column("Targets", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond."),
        Column("MinPods", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available."),
        Column("MaxPods", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas."),
        Column("Replicas", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
        AGE,
    ),
    _hpa_cells,
)


KIND = Kind(HORIZONTAL_POD_AUTOSCALERS, HorizontalPodAutoscalerStrategy, PRINTER, MERGE_RULES)
