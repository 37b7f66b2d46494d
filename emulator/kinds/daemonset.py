"""DaemonSet (apps/v1): the model, the API server's defaults (RollingUpdate with maxUnavailable 1 and
maxSurge 0, revisionHistoryLimit 10, the `deprecated.daemonset.template.generation` annotation counting
template changes) and validation, the columns of `kubectl get daemonsets` and its merge keys.

The DaemonSet controller (emulator/controllers/daemonset.py) keeps one pod per node that should run it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from emulator import errors
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.deployment import go_int_or_string
from emulator.kinds.pod import PodStrategy
from emulator.kinds.podwarnings import template_warnings
from emulator.kinds.printing import (
    AGE,
    NAME,
    Column,
    Printer,
    format_label_selector,
    format_labels,
    name_age,
    spec_of,
    status_of,
)
from emulator.kinds.protobuf_layout import LABEL_SELECTOR, OBJECT_META, POD_TEMPLATE_SPEC, WORKLOAD_CONDITION, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.replicaset import (
    CONDITIONS_RULE,
    CONTAINERS,
    IMAGES,
    IMMUTABLE,
    PodTemplateSpec,
    TemplateRules,
    WorkloadCondition,
    bump_generation,
    container_cells,
    default_pod_template,
    go_invalid,
    go_label_selector,
    nonnegative,
    semantic,
    template_merge_rules,
    validate_selector_and_template,
)
from emulator.kinds.statefulset import ON_DELETE, ROLLING_UPDATE, own_selector_messages
from emulator.models.base import GoType, Int32, Int64, IntOrString
from emulator.models.meta import ApiModel, LabelSelector, TypedObject
from emulator.registry.patch import ListRules
from emulator.registry.strategy import Strategy

DAEMON_SETS = ResourceType(
    "apps", "v1", "daemonsets", "DaemonSet", True, "daemonset", ("ds",), ("all",),
    subresources=(Subresource("status"),),
)

TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
POD_TEMPLATE_GENERATION_LABEL = "pod-template-generation"


# -- model -------------------------------------------------------------------------------------------


class RollingUpdateDaemonSet(ApiModel):
    max_unavailable: IntOrString | None = None
    max_surge: IntOrString | None = None


class DaemonSetUpdateStrategy(ApiModel):
    type: Annotated[str, GoType("v1.DaemonSetUpdateStrategyType")] | None = None
    rolling_update: RollingUpdateDaemonSet | None = None


class DaemonSetSpec(ApiModel):
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None
    update_strategy: DaemonSetUpdateStrategy | None = None
    min_ready_seconds: Int32 | None = None
    revision_history_limit: Int32 | None = None


class DaemonSetStatus(ApiModel):
    current_number_scheduled: Int32 | None = None
    number_misscheduled: Int32 | None = None
    desired_number_scheduled: Int32 | None = None
    number_ready: Int32 | None = None
    observed_generation: Int64 | None = None
    updated_number_scheduled: Int32 | None = None
    number_available: Int32 | None = None
    number_unavailable: Int32 | None = None
    collision_count: Int32 | None = None
    conditions: list[WorkloadCondition] | None = None


class DaemonSet(TypedObject):
    spec: DaemonSetSpec = Field(default_factory=DaemonSetSpec)
    status: DaemonSetStatus | None = None


# -- write path --------------------------------------------------------------------------------------


def default_daemon_set_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_DaemonSet (apps/v1)."""
    strategy = spec.setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = ROLLING_UPDATE
    if strategy["type"] == ROLLING_UPDATE:
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    default_pod_template(spec.get("template"))


def int_or_percent(value: int | str | None) -> int:
    """getIntOrPercentValue: the number, or the percentage's number (validation only asks: zero or not)."""
    if isinstance(value, str):
        try:
            return int(value.rstrip("%"))
        except ValueError:
            return 0
    return value or 0


def _validate_int_or_percent(value: int | str | None, path: str) -> list[FieldError]:
    if isinstance(value, str):
        if not value.endswith("%") or not value[:-1].isdigit():
            return [go_invalid(path, go_int_or_string(value), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]
        if int(value[:-1]) > 100:
            return [go_invalid(path, go_int_or_string(value), "must not be greater than 100%")]
    elif isinstance(value, int) and value < 0:
        return [go_invalid(path, go_int_or_string(value), "must be greater than or equal to 0")]
    return []


def _validate_strategy(strategy: dict[str, Any]) -> list[FieldError]:
    """ValidateDaemonSetUpdateStrategy and ValidateRollingUpdateDaemonSet."""
    kind, path = strategy.get("type"), "spec.updateStrategy"
    if kind == ON_DELETE:
        return []
    if kind != ROLLING_UPDATE:
        return [errors.not_supported(f"{path}.type", kind or "", [ON_DELETE, ROLLING_UPDATE])]
    rolling = strategy.get("rollingUpdate")
    if rolling is None:
        return [errors.required(f"{path}.rollingUpdate")]
    path = f"{path}.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    problems = _validate_int_or_percent(unavailable, f"{path}.maxUnavailable") + _validate_int_or_percent(surge, f"{path}.maxSurge")
    has_unavailable, has_surge = int_or_percent(unavailable) != 0, int_or_percent(surge) != 0
    if has_unavailable and has_surge:
        problems.append(go_invalid(f"{path}.maxSurge", go_int_or_string(surge), "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        problems.append(FieldError(f"{path}.maxUnavailable", "FieldValueRequired", "Required value: cannot be 0 when maxSurge is 0"))
    return problems


def template_generation(obj: dict[str, Any]) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION) or 0)
    except ValueError:
        return 0


def _set_template_generation(obj: dict[str, Any], value: int) -> None:
    obj["metadata"].setdefault("annotations", {})[TEMPLATE_GENERATION_ANNOTATION] = str(value)


class DaemonSetStrategy(Strategy):
    resource = DAEMON_SETS
    model = DaemonSet
    has_status = True

    def __init__(self, cluster: Any) -> None:
        super().__init__(cluster)
        self.template = TemplateRules(PodStrategy(cluster), "DaemonSet")

    def warnings(self, obj: dict[str, Any]) -> list[str]:
        return template_warnings(obj["spec"].get("template"))

    def prepare_create(self, obj: dict[str, Any]) -> None:
        default_daemon_set_spec(obj.setdefault("spec", {}))
        obj["metadata"]["generation"] = 1
        _set_template_generation(obj, 1)
        obj.pop("status", None)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        spec = new.setdefault("spec", {})
        default_daemon_set_spec(spec)
        bump_generation(new, old, semantic(spec) != semantic(old.get("spec")))
        # the template generation counts template changes; clients cannot set it
        previous = template_generation(old) or 1
        changed = semantic(spec.get("template")) != semantic((old.get("spec") or {}).get("template"))
        _set_template_generation(new, previous + 1 if changed else previous)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        problems = own_selector_messages(validate_selector_and_template(spec, self.template), "daemonset")
        problems += _validate_strategy(spec.get("updateStrategy") or {})
        problems += nonnegative(spec, "minReadySeconds") + nonnegative(spec, "revisionHistoryLimit")
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        selector = new.get("spec", {}).get("selector")
        if semantic(selector) != semantic(old.get("spec", {}).get("selector")):
            return [go_invalid("spec.selector", go_label_selector(selector), IMMUTABLE)]
        return []


# -- merge keys, columns -----------------------------------------------------------------------------

MERGE_RULES: ListRules = {**template_merge_rules(("spec", "template")), **CONDITIONS_RULE}


def _daemon_set_cells(ds: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = spec_of(ds), status_of(ds)
    name, created = name_age(ds, now)
    node_selector = (((spec.get("template") or {}).get("spec")) or {}).get("nodeSelector")
    counts = ("desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled", "numberAvailable")
    return [
        name, *(int(status.get(c) or 0) for c in counts), format_labels(node_selector), created,
        *container_cells(spec.get("template")), format_label_selector(spec.get("selector")),
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Desired", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/", type="integer"),
        Column("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/", type="integer"),
        Column("Ready", "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.", type="integer"),
        Column("Up-to-date", "The total number of nodes that are running updated daemon pod", type="integer"),
        Column("Available", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)", type="integer"),
        Column("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"),
        AGE,
        CONTAINERS,
        IMAGES,
        Column("Selector", "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", priority=1),
    ),
    _daemon_set_cells,
)

# what a client sending protobuf (a Go program with client-go's protobuf content type) writes: apps/v1 generated.proto
ROLLING_UPDATE_DAEMON_SET: Message = {  # RollingUpdateDaemonSet
    1: ProtoField("maxUnavailable", "int_or_string", optional=True),
    2: ProtoField("maxSurge", "int_or_string", optional=True),
}

DAEMON_SET_UPDATE_STRATEGY: Message = {  # DaemonSetUpdateStrategy
    1: ProtoField("type", "string"),
    2: ProtoField("rollingUpdate", "message", ROLLING_UPDATE_DAEMON_SET, optional=True),
}

DAEMON_SET_SPEC: Message = {  # DaemonSetSpec
    1: ProtoField("selector", "message", LABEL_SELECTOR, optional=True),
    2: ProtoField("template", "message", POD_TEMPLATE_SPEC),
    3: ProtoField("updateStrategy", "message", DAEMON_SET_UPDATE_STRATEGY),
    4: ProtoField("minReadySeconds", "int"),
    6: ProtoField("revisionHistoryLimit", "int", optional=True),
}

DAEMON_SET_STATUS: Message = {  # DaemonSetStatus
    1: ProtoField("currentNumberScheduled", "int", optional=True),
    2: ProtoField("numberMisscheduled", "int", optional=True),
    3: ProtoField("desiredNumberScheduled", "int", optional=True),
    4: ProtoField("numberReady", "int", optional=True),
    5: ProtoField("observedGeneration", "int"),
    6: ProtoField("updatedNumberScheduled", "int"),
    7: ProtoField("numberAvailable", "int"),
    8: ProtoField("numberUnavailable", "int"),
    9: ProtoField("collisionCount", "int", optional=True),
    10: ProtoField("conditions", "message", WORKLOAD_CONDITION, repeated=True),
}

DAEMON_SET_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", DAEMON_SET_SPEC),
    3: ProtoField("status", "message", DAEMON_SET_STATUS),
}

KIND = Kind(DAEMON_SETS, DaemonSetStrategy, PRINTER, MERGE_RULES, {("apps/v1", "DaemonSet"): DAEMON_SET_PROTOBUF})
