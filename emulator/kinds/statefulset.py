"""StatefulSet (apps/v1): the model, the API server's defaults (podManagementPolicy OrderedReady,
RollingUpdate with partition 0, revisionHistoryLimit 10, claims retained when deleted and when scaled)
and validation (the spec frozen but for replicas, ordinals, template, updateStrategy,
revisionHistoryLimit, persistentVolumeClaimRetentionPolicy and minReadySeconds), the columns of `kubectl
get statefulsets` and its merge keys.

The StatefulSet controller (emulator/controllers/statefulset.py) keeps pods `<name>-<ordinal>` and their
claims `<template>-<name>-<ordinal>`; the labels it puts on them are named here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from emulator import errors
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.persistentvolumeclaim import (
    PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus,
    PersistentVolumeClaimStrategy,
)
from emulator.kinds.pod import PodStrategy
from emulator.kinds.podwarnings import template_warnings
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, spec_of, status_of
from emulator.kinds.protobuf_layout import (
    LABEL_SELECTOR,
    OBJECT_META,
    PERSISTENT_VOLUME_CLAIM,
    POD_TEMPLATE_SPEC,
    WORKLOAD_CONDITION,
    Message,
)
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
    go_invalid,
    go_label_selector,
    nonnegative,
    semantic,
    template_merge_rules,
    validate_selector_and_template,
)
from emulator.kinds.values import GoDecodedObject
from emulator.models.base import GoType, Int32, Int64, IntOrString
from emulator.models.meta import ApiModel, LabelSelector, ObjectMeta
from emulator.registry.patch import ListRules
from emulator.registry.strategy import Strategy

STATEFUL_SETS = ResourceType(
    "apps", "v1", "statefulsets", "StatefulSet", True, "statefulset", ("sts",), ("all",),
    subresources=(Subresource("status"), SCALE),
)

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
ORDERED_READY, PARALLEL = "OrderedReady", "Parallel"
ROLLING_UPDATE, ON_DELETE = "RollingUpdate", "OnDelete"
RETAIN, DELETE = "Retain", "Delete"
# what may change in a StatefulSet's spec (ValidateStatefulSetUpdate)
MUTABLE_FIELDS = (
    "replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy", "minReadySeconds",
)
FROZEN_SPEC = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)


# -- model -------------------------------------------------------------------------------------------


class ClaimTemplate(ApiModel):
    """A PersistentVolumeClaim as a StatefulSet's volumeClaimTemplates hold it."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PersistentVolumeClaimSpec = Field(default_factory=PersistentVolumeClaimSpec)
    status: PersistentVolumeClaimStatus | None = None


class RollingUpdateStatefulSetStrategy(ApiModel):
    partition: Int32 | None = None
    max_unavailable: IntOrString | None = None


class StatefulSetUpdateStrategy(ApiModel):
    type: Annotated[str, GoType("v1.StatefulSetUpdateStrategyType")] | None = None
    rolling_update: RollingUpdateStatefulSetStrategy | None = None


class RetentionPolicy(ApiModel):
    when_deleted: Annotated[str, GoType("v1.PersistentVolumeClaimRetentionPolicyType")] | None = None
    when_scaled: Annotated[str, GoType("v1.PersistentVolumeClaimRetentionPolicyType")] | None = None


class StatefulSetOrdinals(ApiModel):
    start: Int32 | None = None


class StatefulSetSpec(ApiModel):
    replicas: Int32 | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None
    volume_claim_templates: list[ClaimTemplate] | None = None
    service_name: str | None = None
    pod_management_policy: Annotated[str, GoType("v1.PodManagementPolicyType")] | None = None
    update_strategy: StatefulSetUpdateStrategy | None = None
    revision_history_limit: Int32 | None = None
    min_ready_seconds: Int32 | None = None
    persistent_volume_claim_retention_policy: RetentionPolicy | None = None
    ordinals: StatefulSetOrdinals | None = None


class StatefulSetStatus(ApiModel):
    observed_generation: Int64 | None = None
    replicas: Int32 | None = None
    ready_replicas: Int32 | None = None
    current_replicas: Int32 | None = None
    updated_replicas: Int32 | None = None
    current_revision: str | None = None
    update_revision: str | None = None
    collision_count: Int32 | None = None
    conditions: list[WorkloadCondition] | None = None
    available_replicas: Int32 | None = None


class StatefulSet(GoDecodedObject):
    spec: StatefulSetSpec = Field(default_factory=StatefulSetSpec)
    status: StatefulSetStatus | None = None


# -- write path --------------------------------------------------------------------------------------


def default_stateful_set_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_StatefulSet (apps/v1), and the claim templates' own (SetDefaults_PersistentVolumeClaim)."""
    spec.setdefault("podManagementPolicy", ORDERED_READY)
    strategy = spec.setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = ROLLING_UPDATE
        strategy.setdefault("rollingUpdate", {})
    if strategy["type"] == ROLLING_UPDATE and isinstance(strategy.get("rollingUpdate"), dict):
        strategy["rollingUpdate"].setdefault("partition", 0)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    retention.setdefault("whenDeleted", RETAIN)
    retention.setdefault("whenScaled", RETAIN)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    spec.setdefault("revisionHistoryLimit", 10)
    default_pod_template(spec.get("template"))
    for claim in spec.get("volumeClaimTemplates") or []:
        claim.setdefault("apiVersion", "v1")
        claim.setdefault("kind", "PersistentVolumeClaim")
        claim.setdefault("metadata", {})
        claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        claim.setdefault("status", {}).setdefault("phase", "Pending")


def own_selector_messages(problems: list[FieldError], kind: str) -> list[FieldError]:
    """The shared selector check words an empty selector for deployments; these kinds name themselves."""
    said = "empty selector is invalid for deployment"
    return [FieldError(p.field, p.reason, p.message.replace(said, f"empty selector is invalid for {kind}")) for p in problems]


def claim_template_names(spec: dict[str, Any]) -> list[str]:
    return [str((c.get("metadata") or {}).get("name") or "") for c in spec.get("volumeClaimTemplates") or []]


def _validate_strategy(spec: dict[str, Any]) -> list[FieldError]:
    strategy = spec.get("updateStrategy") or {}
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    path = "spec.updateStrategy"
    if kind == ON_DELETE:
        if rolling is not None:
            return [errors.invalid(f"{path}.rollingUpdate", "", "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if kind == ROLLING_UPDATE:
        return nonnegative(rolling or {}, "partition", f"{path}.rollingUpdate")
    if not kind:
        return [errors.required(f"{path}.type")]
    return [errors.invalid(f"{path}.type", kind, f"must be '{ROLLING_UPDATE}' or '{ON_DELETE}'")]


def _validate_retention(spec: dict[str, Any]) -> list[FieldError]:
    policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    problems: list[FieldError] = []
    for field in ("whenDeleted", "whenScaled"):
        value = policy.get(field)
        if value not in (RETAIN, DELETE):
            problems.append(errors.not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{field}", value or "", [RETAIN, DELETE]))
    return problems


class StatefulSetStrategy(Strategy):
    resource = STATEFUL_SETS
    model = StatefulSet
    has_status = True

    def __init__(self, cluster: Any) -> None:
        super().__init__(cluster)
        self.template = TemplateRules(PodStrategy(cluster), "StatefulSet")
        self.claims = PersistentVolumeClaimStrategy(cluster)

    def warnings(self, obj: dict[str, Any]) -> list[str]:
        return template_warnings(obj["spec"].get("template"))

    def prepare_create(self, obj: dict[str, Any]) -> None:
        default_stateful_set_spec(obj.setdefault("spec", {}))
        obj["metadata"]["generation"] = 1
        obj.pop("status", None)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        default_stateful_set_spec(new.setdefault("spec", {}))
        bump_generation(new, old, semantic(new.get("spec")) != semantic(old.get("spec")))

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        policy = spec.get("podManagementPolicy")
        problems: list[FieldError] = []
        if not policy:
            problems.append(errors.required("spec.podManagementPolicy"))
        elif policy not in (ORDERED_READY, PARALLEL):
            problems.append(errors.invalid("spec.podManagementPolicy", policy, f"must be '{ORDERED_READY}' or '{PARALLEL}'"))
        problems += _validate_strategy(spec) + _validate_retention(spec)
        problems += nonnegative(spec, "replicas") + nonnegative(spec, "minReadySeconds")
        problems += nonnegative(spec.get("ordinals") or {}, "start", "spec.ordinals")
        problems += own_selector_messages(validate_selector_and_template(spec, self.template), "statefulset")
        # the pods get a volume per claim template: the template's mounts may name them
        problems = [p for p in problems if not _claim_mount(p, claim_template_names(spec))]
        for i, claim in enumerate(spec.get("volumeClaimTemplates") or []):
            for problem in self.claims.validate({"metadata": claim.get("metadata") or {}, "spec": claim.get("spec") or {}}):
                problems.append(FieldError(f"spec.volumeClaimTemplates[{i}].{problem.field}", problem.reason, problem.message))
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        frozen_new = {k: v for k, v in (new.get("spec") or {}).items() if k not in MUTABLE_FIELDS}
        frozen_old = {k: v for k, v in (old.get("spec") or {}).items() if k not in MUTABLE_FIELDS}
        if semantic(frozen_new) != semantic(frozen_old):
            selector = new.get("spec", {}).get("selector")
            if semantic(selector) != semantic(old.get("spec", {}).get("selector")):
                return [go_invalid("spec.selector", go_label_selector(selector), "field is immutable"), errors.forbidden("spec", FROZEN_SPEC)]
            return [errors.forbidden("spec", FROZEN_SPEC)]
        return []


def _claim_mount(problem: FieldError, claims: list[str]) -> bool:
    """A volumeMount naming a claim template is not missing its volume: the controller adds it."""
    return (
        problem.reason == "FieldValueNotFound" and ".volumeMounts[" in problem.field
        and any(f"Not found: \"{name}\"" in problem.message for name in claims)
    )


# -- merge keys, columns, protobuf -------------------------------------------------------------------

MERGE_RULES: ListRules = {**template_merge_rules(("spec", "template")), **CONDITIONS_RULE}


def _stateful_set_cells(sts: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = spec_of(sts), status_of(sts)
    name, created = name_age(sts, now)
    ready = f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas') or 0)}"
    return [name, ready, created, *container_cells(spec.get("template"))]


PRINTER = Printer(
    (NAME, Column("Ready", "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES),
    _stateful_set_cells,
)

# what a client sending protobuf (a Go program with client-go's protobuf content type) writes: apps/v1 generated.proto
ROLLING_UPDATE_STATEFUL_SET_STRATEGY: Message = {  # RollingUpdateStatefulSetStrategy
    1: ProtoField("partition", "int", optional=True),
    2: ProtoField("maxUnavailable", "int_or_string", optional=True),
}

STATEFUL_SET_UPDATE_STRATEGY: Message = {  # StatefulSetUpdateStrategy
    1: ProtoField("type", "string"),
    2: ProtoField("rollingUpdate", "message", ROLLING_UPDATE_STATEFUL_SET_STRATEGY, optional=True),
}

STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY: Message = {  # StatefulSetPersistentVolumeClaimRetentionPolicy
    1: ProtoField("whenDeleted", "string"),
    2: ProtoField("whenScaled", "string"),
}

STATEFUL_SET_ORDINALS: Message = {  # StatefulSetOrdinals
    1: ProtoField("start", "int", optional=True),
}

STATEFUL_SET_SPEC: Message = {  # StatefulSetSpec
    1: ProtoField("replicas", "int", optional=True),
    2: ProtoField("selector", "message", LABEL_SELECTOR, optional=True),
    3: ProtoField("template", "message", POD_TEMPLATE_SPEC),
    4: ProtoField("volumeClaimTemplates", "message", PERSISTENT_VOLUME_CLAIM, repeated=True),
    5: ProtoField("serviceName", "string", optional=True),
    6: ProtoField("podManagementPolicy", "string"),
    7: ProtoField("updateStrategy", "message", STATEFUL_SET_UPDATE_STRATEGY),
    8: ProtoField("revisionHistoryLimit", "int", optional=True),
    9: ProtoField("minReadySeconds", "int"),
    10: ProtoField("persistentVolumeClaimRetentionPolicy", "message", STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY, optional=True),
    11: ProtoField("ordinals", "message", STATEFUL_SET_ORDINALS, optional=True),
}

STATEFUL_SET_STATUS: Message = {  # StatefulSetStatus
    1: ProtoField("observedGeneration", "int"),
    2: ProtoField("replicas", "int", optional=True),
    3: ProtoField("readyReplicas", "int"),
    4: ProtoField("currentReplicas", "int"),
    5: ProtoField("updatedReplicas", "int"),
    6: ProtoField("currentRevision", "string"),
    7: ProtoField("updateRevision", "string"),
    9: ProtoField("collisionCount", "int", optional=True),
    10: ProtoField("conditions", "message", WORKLOAD_CONDITION, repeated=True),
    11: ProtoField("availableReplicas", "int", optional=True),
}

STATEFUL_SET_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", STATEFUL_SET_SPEC),
    3: ProtoField("status", "message", STATEFUL_SET_STATUS),
}

KIND = Kind(STATEFUL_SETS, StatefulSetStrategy, PRINTER, MERGE_RULES, {("apps/v1", "StatefulSet"): STATEFUL_SET_PROTOBUF})
