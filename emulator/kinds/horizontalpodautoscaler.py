"""HorizontalPodAutoscaler (autoscaling/v2): the model, the API server's defaults (minReplicas 1, a CPU
target of 80%, the scaling behavior's policies) and validation (replica bounds, the target reference,
metric sources and targets, scaling rules), and the columns of `kubectl get hpa`.

emulator/controllers/horizontalpodautoscaler.py scales the targets (docs/workloads.md).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, spec_of, status_of
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
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
    model: type[GoDecodedObject] = HorizontalPodAutoscaler
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


# -- autoscaling/v1: the same objects, as `kubectl autoscale` writes them ---------------------------------

HORIZONTAL_POD_AUTOSCALERS_V1 = ResourceType(
    "autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, "horizontalpodautoscaler",
    ("hpa",), ("all",), subresources=(Subresource("status"),),
)
# What autoscaling/v1 cannot say is kept in annotations, as the API server's conversion does, so that an
# object read and written back through v1 loses nothing of its v2 fields.
METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
_V1_ANNOTATIONS = (METRICS_ANNOTATION, CURRENT_METRICS_ANNOTATION, CONDITIONS_ANNOTATION, BEHAVIOR_ANNOTATION)


class HorizontalPodAutoscalerSpecV1(ApiModel):
    scale_target_ref: CrossVersionObjectReference = Field(default_factory=CrossVersionObjectReference)
    min_replicas: Int32 | None = None
    max_replicas: Int32 | None = None
    target_cpu_utilization_percentage: Int32 | None = Field(default=None, alias="targetCPUUtilizationPercentage")


class HorizontalPodAutoscalerV1(GoDecodedObject):
    go_name = "HorizontalPodAutoscaler"
    spec: HorizontalPodAutoscalerSpecV1 = Field(default_factory=HorizontalPodAutoscalerSpecV1)
    status: Any = None


def _is_cpu_utilization(metric: dict[str, Any]) -> bool:
    resource = metric.get("resource") or {}
    return metric.get("type") == "Resource" and resource.get("name") == "cpu" and (resource.get("target") or {}).get("averageUtilization") is not None


def _target_to_v1(target: dict[str, Any]) -> dict[str, Any]:
    names = {"averageUtilization": "targetAverageUtilization", "averageValue": "targetAverageValue", "value": "targetValue"}
    return {names[k]: v for k, v in target.items() if k in names}


def _target_from_v1(source: dict[str, Any]) -> dict[str, Any]:
    if source.get("targetAverageUtilization") is not None:
        return {"type": "Utilization", "averageUtilization": source["targetAverageUtilization"]}
    if source.get("targetAverageValue") is not None:
        return {"type": "AverageValue", "averageValue": source["targetAverageValue"]}
    return {"type": "Value", "value": source.get("targetValue")}


def _metric_to_v1(metric: dict[str, Any]) -> dict[str, Any]:
    """An autoscaling/v2 MetricSpec in v1's annotation form (v2beta1's shape)."""
    kind = metric.get("type") or ""
    field = SOURCE_FIELDS.get(kind, "")
    source = metric.get(field) or {}
    ident = source.get("metric") or {}
    if kind in ("Resource", "ContainerResource"):
        out = {k: source[k] for k in ("name", "container") if k in source} | _target_to_v1(source.get("target") or {})
    elif kind == "Pods":
        out = {"metricName": ident.get("name"), **({"selector": ident["selector"]} if ident.get("selector") else {}), **_target_to_v1(source.get("target") or {})}
    elif kind == "Object":
        target = source.get("target") or {}
        out = {"target": source.get("describedObject") or {}, "metricName": ident.get("name"),
               **({"selector": ident["selector"]} if ident.get("selector") else {}),
               **({"targetValue": target["value"]} if target.get("value") is not None else {}),
               **({"averageValue": target["averageValue"]} if target.get("averageValue") is not None else {})}
    else:
        out = {"metricName": ident.get("name"), **({"metricSelector": ident["selector"]} if ident.get("selector") else {}), **_target_to_v1(source.get("target") or {})}
    return {"type": kind, field: out}


def _metric_from_v1(metric: dict[str, Any]) -> dict[str, Any]:
    kind = metric.get("type") or ""
    field = SOURCE_FIELDS.get(kind, "")
    source = metric.get(field) or {}
    if kind in ("Resource", "ContainerResource"):
        return {"type": kind, field: {**{k: source[k] for k in ("name", "container") if k in source}, "target": _target_from_v1(source)}}
    if kind == "Object":
        target = {"type": "AverageValue", "averageValue": source["averageValue"]} if source.get("averageValue") is not None else {"type": "Value", "value": source.get("targetValue")}
        ident = {"name": source.get("metricName"), **({"selector": source["selector"]} if source.get("selector") else {})}
        return {"type": kind, field: {"describedObject": source.get("target") or {}, "metric": ident, "target": target}}
    selector = source.get("selector" if kind == "Pods" else "metricSelector")
    ident = {"name": source.get("metricName"), **({"selector": selector} if selector else {})}
    return {"type": kind, field: {"metric": ident, "target": _target_from_v1(source)}}


def _current_to_v1(status: dict[str, Any]) -> dict[str, Any]:
    kind = status.get("type") or ""
    field = SOURCE_FIELDS.get(kind, "")
    source = status.get(field) or {}
    current = source.get("current") or {}
    names = {"averageUtilization": "currentAverageUtilization", "averageValue": "currentAverageValue", "value": "currentValue"}
    values = {names[k]: v for k, v in current.items() if k in names}
    ident = source.get("metric") or {}
    if kind in ("Resource", "ContainerResource"):
        return {"type": kind, field: {**{k: source[k] for k in ("name", "container") if k in source}, **values}}
    extra = {"target": source.get("describedObject") or {}} if kind == "Object" else {}
    return {"type": kind, field: {**extra, "metricName": ident.get("name"), **values}}


def _current_from_v1(status: dict[str, Any]) -> dict[str, Any]:
    kind = status.get("type") or ""
    field = SOURCE_FIELDS.get(kind, "")
    source = status.get(field) or {}
    names = {"currentAverageUtilization": "averageUtilization", "currentAverageValue": "averageValue", "currentValue": "value"}
    current = {names[k]: v for k, v in source.items() if k in names}
    if kind in ("Resource", "ContainerResource"):
        return {"type": kind, field: {**{k: source[k] for k in ("name", "container") if k in source}, "current": current}}
    extra = {"describedObject": source.get("target") or {}} if kind == "Object" else {}
    return {"type": kind, field: {**extra, "metric": {"name": source.get("metricName")}, "current": current}}


def hpa_to_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """A stored (autoscaling/v2) HPA as autoscaling/v1 serves it: the CPU utilization target and current
    value in their own fields, every other metric, the behavior and the conditions in annotations."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    metrics = spec.get("metrics") or []
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    others = [_metric_to_v1(m) for m in metrics if m is not cpu]
    annotations = {k: v for k, v in ((obj.get("metadata") or {}).get("annotations") or {}).items() if k not in _V1_ANNOTATIONS}
    current = status.get("currentMetrics") or []
    cpu_now = next((c for c in current if c.get("type") == "Resource" and (c.get("resource") or {}).get("name") == "cpu"
                    and ((c.get("resource") or {}).get("current") or {}).get("averageUtilization") is not None), None)
    for key, value in ((METRICS_ANNOTATION, others), (CURRENT_METRICS_ANNOTATION, [_current_to_v1(c) for c in current]),
                       (CONDITIONS_ANNOTATION, status.get("conditions")), (BEHAVIOR_ANNOTATION, spec.get("behavior"))):
        if value:
            annotations[key] = json.dumps(value, separators=(",", ":"))
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "annotations"}
    if annotations:
        meta["annotations"] = annotations
    v1_spec = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    if cpu is not None:
        v1_spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"]["averageUtilization"]
    v1_status = {k: status[k] for k in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas") if k in status}
    v1_status.setdefault("currentReplicas", 0)
    v1_status.setdefault("desiredReplicas", 0)
    if cpu_now is not None:
        v1_status["currentCPUUtilizationPercentage"] = cpu_now["resource"]["current"]["averageUtilization"]
    return {**obj, "apiVersion": HORIZONTAL_POD_AUTOSCALERS_V1.api_version, "metadata": meta, "spec": v1_spec, "status": v1_status}


def _annotation_list(annotations: dict[str, Any], key: str) -> Any:
    try:
        return json.loads(annotations.get(key) or "null")
    except ValueError:
        return None


def hpa_from_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """An autoscaling/v1 HPA as stored (autoscaling/v2): `hpa_to_v1` undone, the annotations taken back."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    annotations = dict((obj.get("metadata") or {}).get("annotations") or {})
    others, current, conditions, behavior = (_annotation_list(annotations, key) for key in _V1_ANNOTATIONS)
    metrics = []
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": spec["targetCPUUtilizationPercentage"]}}})
    metrics += [_metric_from_v1(m) for m in others or [] if isinstance(m, dict)]
    v2_spec = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    if metrics:
        v2_spec["metrics"] = metrics
    if isinstance(behavior, dict):
        v2_spec["behavior"] = behavior
    v2_status: dict[str, Any] = {k: status[k] for k in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas") if k in status}
    now = [_current_from_v1(c) for c in current or [] if isinstance(c, dict)]  # every one (the cpu one's value too)
    if status.get("currentCPUUtilizationPercentage") is not None and not any(
            c["type"] == "Resource" and c["resource"].get("name") == "cpu" for c in now):
        now.insert(0, {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": status["currentCPUUtilizationPercentage"]}}})
    if now:
        v2_status["currentMetrics"] = now
    if isinstance(conditions, list):
        v2_status["conditions"] = conditions
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "annotations"}
    kept = {k: v for k, v in annotations.items() if k not in _V1_ANNOTATIONS}
    if kept:
        meta["annotations"] = kept
    out = {**obj, "apiVersion": HORIZONTAL_POD_AUTOSCALERS.api_version, "metadata": meta, "spec": v2_spec}
    if "status" in obj:
        out["status"] = v2_status
    return out


class HorizontalPodAutoscalerV1Strategy(HorizontalPodAutoscalerStrategy):
    """autoscaling/v1 writes: decoded as v1, then converted and handled as the stored autoscaling/v2."""

    resource = HORIZONTAL_POD_AUTOSCALERS_V1
    model = HorizontalPodAutoscalerV1
    storage_api_version = HORIZONTAL_POD_AUTOSCALERS.api_version

    def to_storage(self, obj: dict[str, Any]) -> dict[str, Any]:
        return hpa_from_v1(obj)

    def served(self, obj: dict[str, Any]) -> dict[str, Any]:
        return hpa_to_v1(obj)


# `kubectl autoscale` sends protobuf (k8s.io/api autoscaling/v1 generated.proto)
HORIZONTAL_POD_AUTOSCALER_V1_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", {
        1: ProtoField("scaleTargetRef", "message", {
            1: ProtoField("kind", "string"), 2: ProtoField("name", "string"), 3: ProtoField("apiVersion", "string"),
        }),
        2: ProtoField("minReplicas", "int", optional=True),
        3: ProtoField("maxReplicas", "int"),
        4: ProtoField("targetCPUUtilizationPercentage", "int", optional=True),
    }),
}


KIND_V1 = Kind(
        # the API server prints every version from its internal object: the same columns as v2
    HORIZONTAL_POD_AUTOSCALERS_V1, HorizontalPodAutoscalerV1Strategy, Printer(PRINTER.columns, lambda hpa, now: _hpa_cells(hpa_from_v1(hpa), now)), MERGE_RULES,
    {("autoscaling/v1", "HorizontalPodAutoscaler"): HORIZONTAL_POD_AUTOSCALER_V1_PROTOBUF},
)
