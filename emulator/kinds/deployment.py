"""Deployment (apps/v1): the model, the API server's defaults (replicas 1, RollingUpdate 25%/25%,
revisionHistoryLimit 10, progressDeadlineSeconds 600) and validation, the columns of `kubectl get
deployments`, its merge keys and the protobuf layout `kubectl create deployment` sends.

The Deployment controller (emulator/controllers/deployment.py) rolls the template out through
ReplicaSets; the annotations and condition reasons it writes are named here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from emulator import errors
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.pod import PodStrategy
from emulator.kinds.podwarnings import template_warnings
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, spec_of, status_of
from emulator.kinds.protobuf_layout import LABEL_SELECTOR, OBJECT_META, POD_TEMPLATE_SPEC, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.replicaset import (
    CONDITIONS_RULE,
    CONTAINERS,
    IMAGES,
    IMMUTABLE,
    SCALE,
    PodTemplateSpec,
    TemplateRules,
    bump_generation,
    container_cells,
    default_pod_template,
    go_invalid,
    go_label_selector,
    nonnegative,
    selector_cell,
    semantic,
    template_merge_rules,
    validate_selector_and_template,
)
from emulator.models.base import GoType, Int32, Int64, IntOrString
from emulator.models.meta import ApiModel, LabelSelector, TypedObject
from emulator.registry.patch import ListRules
from emulator.registry.strategy import Strategy

DEPLOYMENTS = ResourceType(
    "apps", "v1", "deployments", "Deployment", True, "deployment", ("deploy",), ("all",),
    subresources=(Subresource("status"), SCALE),
)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
# what the controller keeps for itself: never copied from a Deployment to its ReplicaSets
CONTROLLER_ANNOTATIONS = frozenset({
    LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION, ROLLBACK_TO_ANNOTATION,
})
_PERCENT = re.compile(r"^[0-9]+%$")


# -- model -------------------------------------------------------------------------------------------


class RollingUpdateDeployment(ApiModel):
    max_unavailable: IntOrString | None = None
    max_surge: IntOrString | None = None


class StrategySpec(ApiModel):
    go_name: ClassVar[str | None] = "DeploymentStrategy"

    type: Annotated[Literal["Recreate", "RollingUpdate"], GoType("v1.DeploymentStrategyType")] | None = None
    rolling_update: RollingUpdateDeployment | None = None


class DeploymentSpec(ApiModel):
    replicas: Int32 | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None
    strategy: StrategySpec | None = None
    min_ready_seconds: Int32 | None = None
    revision_history_limit: Int32 | None = None
    paused: bool | None = None
    progress_deadline_seconds: Int32 | None = None


class DeploymentCondition(ApiModel):
    type: str
    status: str
    last_update_time: str | None = None
    last_transition_time: str | None = None
    reason: str | None = None
    message: str | None = None


class DeploymentStatus(ApiModel):
    observed_generation: Int64 | None = None
    replicas: Int32 | None = None
    updated_replicas: Int32 | None = None
    ready_replicas: Int32 | None = None
    available_replicas: Int32 | None = None
    unavailable_replicas: Int32 | None = None
    terminating_replicas: Int32 | None = None
    conditions: list[DeploymentCondition] | None = None
    collision_count: Int32 | None = None


class Deployment(TypedObject):
    spec: DeploymentSpec = Field(default_factory=DeploymentSpec)
    status: DeploymentStatus | None = None


# -- write path --------------------------------------------------------------------------------------


def go_int_or_string(value: int | str) -> str:
    """intstr.IntOrString as %#v prints it (validation quotes it so)."""
    if isinstance(value, str):
        return f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:"{value}"}}'
    return f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}'


def _int_or_percent_value(value: int | str | None) -> int:
    if isinstance(value, str):
        return int(value[:-1]) if _PERCENT.match(value) else 0
    return value or 0


def _validate_int_or_percent(value: int | str | None, path: str) -> list[FieldError]:
    """ValidatePositiveIntOrPercent and IsNotMoreThan100Percent (for maxUnavailable)."""
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [go_invalid(path, go_int_or_string(value), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]
    elif isinstance(value, int) and value < 0:
        return [go_invalid(path, go_int_or_string(value), "must be greater than or equal to 0")]
    return []


def _validate_strategy(strategy: dict[str, Any]) -> list[FieldError]:
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [errors.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if rolling is None:
        return [errors.FieldError("spec.strategy.rollingUpdate", "FieldValueRequired", "Required value: this should be defaulted and never be nil")]
    path = "spec.strategy.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    problems = _validate_int_or_percent(unavailable, f"{path}.maxUnavailable") + _validate_int_or_percent(surge, f"{path}.maxSurge")
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        problems.append(go_invalid(f"{path}.maxUnavailable", go_int_or_string(unavailable or 0), "may not be 0 when `maxSurge` is 0"))
    if isinstance(unavailable, str) and _PERCENT.match(unavailable) and _int_or_percent_value(unavailable) > 100:
        problems.append(go_invalid(f"{path}.maxUnavailable", go_int_or_string(unavailable), "must not be greater than 100%"))
    return problems


def default_deployment_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_Deployment (apps/v1)."""
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    default_pod_template(spec.get("template"))


def _generation_inputs(obj: dict[str, Any]) -> Any:
    """What bumps a Deployment's generation: its spec, and its annotations (they are copied to the
    ReplicaSets) except the revision the controller itself writes there."""
    annotations = {k: v for k, v in (obj["metadata"].get("annotations") or {}).items() if k not in (REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION)}
    return semantic({"spec": obj.get("spec"), "annotations": annotations})


class DeploymentStrategy(Strategy):
    resource = DEPLOYMENTS
    model = Deployment
    has_status = True

    def __init__(self, cluster: Any) -> None:
        super().__init__(cluster)
        self.template = TemplateRules(PodStrategy(cluster), "Deployment")

    def warnings(self, obj: dict[str, Any]) -> list[str]:
        return template_warnings(obj["spec"].get("template"))

    def prepare_create(self, obj: dict[str, Any]) -> None:
        default_deployment_spec(obj.setdefault("spec", {}))
        obj["metadata"]["generation"] = 1
        obj.pop("status", None)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        default_deployment_spec(new.setdefault("spec", {}))
        bump_generation(new, old, _generation_inputs(new) != _generation_inputs(old))

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        problems = nonnegative(spec, "replicas") + validate_selector_and_template(spec, self.template)
        problems += _validate_strategy(spec.get("strategy") or {})
        problems += nonnegative(spec, "minReadySeconds") + nonnegative(spec, "revisionHistoryLimit")
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None:
            problems += nonnegative(spec, "progressDeadlineSeconds")
            if deadline <= (spec.get("minReadySeconds") or 0):
                problems.append(errors.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        selector = new.get("spec", {}).get("selector")
        if semantic(selector) != semantic(old.get("spec", {}).get("selector")):
            return [go_invalid("spec.selector", go_label_selector(selector), IMMUTABLE)]
        return []


# -- merge keys, columns, protobuf -------------------------------------------------------------------

MERGE_RULES: ListRules = {**template_merge_rules(("spec", "template")), **CONDITIONS_RULE}


def _deployment_cells(d: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = spec_of(d), status_of(d)
    name, created = name_age(d, now)
    return [
        name,
        f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas') or 0)}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        created,
        *container_cells(spec.get("template")),
        selector_cell(spec.get("selector")),
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Ready", "Number of the pod with ready state"),
        Column("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
        Column("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column(
            "Selector",
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.",
            priority=1,
        ),
    ),
    _deployment_cells,
)

# `kubectl create deployment` sends protobuf (k8s.io/api apps/v1 generated.proto)
ROLLING_UPDATE_DEPLOYMENT: Message = {  # RollingUpdateDeployment
    1: ProtoField("maxUnavailable", "int_or_string", optional=True),
    2: ProtoField("maxSurge", "int_or_string", optional=True),
}

DEPLOYMENT_STRATEGY: Message = {  # DeploymentStrategy
    1: ProtoField("type", "string"),
    2: ProtoField("rollingUpdate", "message", ROLLING_UPDATE_DEPLOYMENT, optional=True),
}

DEPLOYMENT_SPEC: Message = {  # DeploymentSpec
    1: ProtoField("replicas", "int", optional=True),
    2: ProtoField("selector", "message", LABEL_SELECTOR, optional=True),
    3: ProtoField("template", "message", POD_TEMPLATE_SPEC),
    4: ProtoField("strategy", "message", DEPLOYMENT_STRATEGY),
    5: ProtoField("minReadySeconds", "int"),
    6: ProtoField("revisionHistoryLimit", "int", optional=True),
    7: ProtoField("paused", "bool"),
    9: ProtoField("progressDeadlineSeconds", "int", optional=True),
}

DEPLOYMENT_CONDITION: Message = {  # DeploymentCondition
    1: ProtoField("type", "string", optional=True),
    2: ProtoField("status", "string", optional=True),
    6: ProtoField("lastUpdateTime", "time"),
    7: ProtoField("lastTransitionTime", "time"),
    4: ProtoField("reason", "string"),
    5: ProtoField("message", "string"),
}

DEPLOYMENT_STATUS: Message = {  # DeploymentStatus
    1: ProtoField("observedGeneration", "int"),
    2: ProtoField("replicas", "int"),
    3: ProtoField("updatedReplicas", "int"),
    7: ProtoField("readyReplicas", "int"),
    4: ProtoField("availableReplicas", "int"),
    5: ProtoField("unavailableReplicas", "int"),
    6: ProtoField("conditions", "message", DEPLOYMENT_CONDITION, repeated=True),
    8: ProtoField("collisionCount", "int", optional=True),
}

DEPLOYMENT_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", DEPLOYMENT_SPEC),
    3: ProtoField("status", "message", DEPLOYMENT_STATUS),
}

KIND = Kind(DEPLOYMENTS, DeploymentStrategy, PRINTER, MERGE_RULES, {("apps/v1", "Deployment"): DEPLOYMENT_PROTOBUF})
