"""ReplicationController (core/v1): the model, the API server's defaults (the selector and the labels from
the template's labels, replicas 1) and validation, the columns of `kubectl get replicationcontrollers`
and its merge keys. The ReplicaSet controller (emulator/controllers/replicaset.py) runs them too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from emulator import errors
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.pod import PodStrategy
from emulator.kinds.podwarnings import template_warnings
from emulator.kinds.printing import AGE, NAME, Column, Printer, format_labels, name_age, spec_of, status_of
from emulator.kinds.protobuf_layout import OBJECT_META, POD_TEMPLATE_SPEC, WORKLOAD_CONDITION, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.replicaset import (
    CONDITIONS_RULE,
    CONTAINERS,
    IMAGES,
    SCALE,
    PodTemplateSpec,
    TemplateRules,
    WorkloadCondition,
    bump_generation,
    container_cells,
    default_pod_template,
    nonnegative,
    semantic,
    template_merge_rules,
)
from emulator.labels import selector_from_map
from emulator.models.base import Int32, Int64
from emulator.models.meta import ApiModel, TypedObject
from emulator.registry.patch import ListRules
from emulator.registry.strategy import Strategy

REPLICATION_CONTROLLERS = ResourceType(
    "", "v1", "replicationcontrollers", "ReplicationController", True, "replicationcontroller", ("rc",), ("all",),
    subresources=(Subresource("status"), SCALE),
)


class ReplicationControllerSpec(ApiModel):
    replicas: Int32 | None = None
    min_ready_seconds: Int32 | None = None
    selector: dict[str, str] | None = None
    template: PodTemplateSpec | None = None


class ReplicationControllerStatus(ApiModel):
    replicas: Int32 | None = None
    fully_labeled_replicas: Int32 | None = None
    ready_replicas: Int32 | None = None
    available_replicas: Int32 | None = None
    observed_generation: Int64 | None = None
    conditions: list[WorkloadCondition] | None = None


class ReplicationController(TypedObject):
    spec: ReplicationControllerSpec = Field(default_factory=ReplicationControllerSpec)
    status: ReplicationControllerStatus | None = None


def _defaults(obj: dict[str, Any]) -> None:
    """SetDefaults_ReplicationController: selector and labels from the template's labels, replicas 1."""
    spec = obj.setdefault("spec", {})
    template = spec.get("template")
    labels = ((template or {}).get("metadata") or {}).get("labels") if isinstance(template, dict) else None
    if labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        if not obj["metadata"].get("labels"):
            obj["metadata"]["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    default_pod_template(template)


class ReplicationControllerStrategy(Strategy):
    resource = REPLICATION_CONTROLLERS
    model = ReplicationController
    has_status = True

    def __init__(self, cluster: Any) -> None:
        super().__init__(cluster)
        self.template = TemplateRules(PodStrategy(cluster), "ReplicationController")

    def warnings(self, obj: dict[str, Any]) -> list[str]:
        return template_warnings((obj.get("spec") or {}).get("template"))

    def prepare_create(self, obj: dict[str, Any]) -> None:
        _defaults(obj)
        obj["metadata"]["generation"] = 1
        obj.pop("status", None)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        _defaults(new)
        bump_generation(new, old, semantic(new.get("spec")) != semantic(old.get("spec")))

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        problems = nonnegative(spec, "minReadySeconds")
        selector = spec.get("selector")
        if not selector:
            problems.append(errors.required("spec.selector"))
        problems += nonnegative(spec, "replicas")
        problems += self.template.validate(spec.get("template"), selector_from_map(selector).matches if selector else None)
        return problems


MERGE_RULES: ListRules = {**template_merge_rules(("spec", "template")), **CONDITIONS_RULE}


def _rc_cells(rc: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = spec_of(rc), status_of(rc)
    name, created = name_age(rc, now)
    return [
        name, int(spec.get("replicas") or 0), int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0),
        created, *container_cells(spec.get("template")), format_labels(spec.get("selector")),
    ]


PRINTER = Printer(
    (
        NAME,
        Column(
            "Desired",
            "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
            type="integer",
        ),
        Column(
            "Current",
            "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
            type="integer",
        ),
        Column("Ready", "The number of ready replicas for this replication controller.", type="integer"),
        AGE,
        CONTAINERS,
        IMAGES,
        Column(
            "Selector",
            "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
            priority=1,
        ),
    ),
    _rc_cells,
)

REPLICATION_CONTROLLER_SPEC: Message = {  # ReplicationControllerSpec
    1: ProtoField("replicas", "int", optional=True),
    4: ProtoField("minReadySeconds", "int"),
    2: ProtoField("selector", "map"),
    3: ProtoField("template", "message", POD_TEMPLATE_SPEC, optional=True),
}

REPLICATION_CONTROLLER_STATUS: Message = {  # ReplicationControllerStatus
    1: ProtoField("replicas", "int", optional=True),
    2: ProtoField("fullyLabeledReplicas", "int"),
    4: ProtoField("readyReplicas", "int"),
    5: ProtoField("availableReplicas", "int"),
    3: ProtoField("observedGeneration", "int"),
    6: ProtoField("conditions", "message", WORKLOAD_CONDITION, repeated=True),
}

REPLICATION_CONTROLLER_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", REPLICATION_CONTROLLER_SPEC),
    3: ProtoField("status", "message", REPLICATION_CONTROLLER_STATUS),
}

KIND = Kind(
    REPLICATION_CONTROLLERS, ReplicationControllerStrategy, PRINTER, MERGE_RULES,
    {("v1", "ReplicationController"): REPLICATION_CONTROLLER_PROTOBUF},
)
