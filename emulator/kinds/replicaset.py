"""ReplicaSet (apps/v1): the model, the write-path rules, the columns of `kubectl get replicasets`, its merge
keys; and the parts every pod-owning workload shares (Deployment, ReplicationController): the pod template
(model, the API server's defaults, its validation), the `status` conditions model, the Go renderings of
bad values that validation messages quote, the template columns (CONTAINERS, IMAGES) and merge keys.

The ReplicaSet controller (emulator/controllers/replicaset.py) keeps `spec.replicas` pods from the
template; `metadata.generation` counts spec changes so that `status.observedGeneration` can say which
spec the status describes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.pod import MERGE_RULES as POD_MERGE_RULES
from emulator.kinds.pod import PodSpec, PodStrategy, default_pod_spec
from emulator.kinds.podwarnings import template_warnings
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, spec_of, status_of
from emulator.kinds.protobuf_layout import LABEL_SELECTOR, OBJECT_META, POD_TEMPLATE_SPEC, WORKLOAD_CONDITION, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.labels import SelectorError, selector_from_label_selector, validate_label_selector
from emulator.models.base import Int32, Int64
from emulator.models.meta import ApiModel, LabelSelector, ObjectMeta, TypedObject
from emulator.registry.patch import ListRule, ListRules
from emulator.registry.strategy import Strategy

SCALE = Subresource("scale", kind="Scale", group="autoscaling", version="v1")
REPLICA_SETS = ResourceType(
    "apps", "v1", "replicasets", "ReplicaSet", True, "replicaset", ("rs",), ("all",),
    subresources=(Subresource("status"), SCALE),
)

# the label the Deployment controller adds to its ReplicaSets' selectors and templates
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
IMMUTABLE = "field is immutable"
SELECTOR_MISMATCH = "`selector` does not match template `labels`"


# -- model -------------------------------------------------------------------------------------------


class PodTemplateSpec(ApiModel):
    metadata: ObjectMeta | None = None
    spec: PodSpec | None = None


class WorkloadCondition(ApiModel):
    """ReplicaSetCondition / ReplicationControllerCondition."""

    type: str
    status: str
    last_transition_time: str | None = None
    reason: str | None = None
    message: str | None = None


class ReplicaSetSpec(ApiModel):
    replicas: Int32 | None = None
    min_ready_seconds: Int32 | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None


class ReplicaSetStatus(ApiModel):
    replicas: Int32 | None = None
    fully_labeled_replicas: Int32 | None = None
    ready_replicas: Int32 | None = None
    available_replicas: Int32 | None = None
    terminating_replicas: Int32 | None = None
    observed_generation: Int64 | None = None
    conditions: list[WorkloadCondition] | None = None


class ReplicaSet(TypedObject):
    spec: ReplicaSetSpec = Field(default_factory=ReplicaSetSpec)
    status: ReplicaSetStatus | None = None


# -- Go renderings of bad values (field.Invalid prints non-scalar values with %#v) -----------------------


def go_string_map(value: dict[str, str] | None) -> str:
    """A map[string]string as Go's %#v prints it: keys sorted, `map[string]string(nil)` for none."""
    if value is None:
        return "map[string]string(nil)"
    return "map[string]string{" + ", ".join(f'"{k}":"{value[k]}"' for k in sorted(value)) + "}"


def go_label_selector(selector: dict[str, Any] | None) -> str:
    """A metav1.LabelSelector as %#v prints it (what `spec.selector: Invalid value: ...` quotes)."""
    if selector is None:
        return "null"
    exprs = selector.get("matchExpressions")
    if exprs is None:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    else:
        items = []
        for e in exprs:
            values = e.get("values")
            vals = "[]string(nil)" if values is None else "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"
            items.append(f'v1.LabelSelectorRequirement{{Key:"{e.get("key", "")}", Operator:"{e.get("operator", "")}", Values:{vals}}}')
        rendered = "[]v1.LabelSelectorRequirement{" + ", ".join(items) + "}"
    return f"v1.LabelSelector{{MatchLabels:{go_string_map(selector.get('matchLabels'))}, MatchExpressions:{rendered}}}"


def go_invalid(path: str, shown: str, detail: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")


def semantic(value: Any) -> Any:
    """A value with empty maps and lists dropped: apimachinery's Semantic.DeepEqual treats them as unset."""
    if isinstance(value, dict):
        return {k: semantic(v) for k, v in value.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


# -- the pod template: defaults and validation ----------------------------------------------------------


def default_pod_template(template: dict[str, Any] | None) -> None:
    """The API server's defaults for a pod template (SetDefaults_PodSpec, _Container, _Probe, _Volume):
    what `kubectl get deployment -o yaml` shows in `spec.template`, and what pods created from it carry."""
    if not isinstance(template, dict):
        return
    spec = template.get("spec")
    if isinstance(spec, dict):
        default_pod_spec(spec)


class TemplateRules:
    """ValidatePodTemplateSpecForReplicaSet / ...ForRC: the template's labels against the selector, the
    pod rules (the pod strategy's, under `spec.template.`), restartPolicy Always, no activeDeadlineSeconds."""

    def __init__(self, pods: PodStrategy, owner_kind: str) -> None:
        self.pods = pods
        self.owner_kind = owner_kind

    def validate(self, template: dict[str, Any] | None, matches: Any, path: str = "spec.template") -> list[FieldError]:
        """`matches(labels) -> bool` is the owner's selector (None: empty, nothing to check)."""
        if not isinstance(template, dict) or not template:
            return [errors.required(path)]
        problems: list[FieldError] = []
        meta = template.get("metadata") or {}
        labels = meta.get("labels")
        if matches is not None and not matches(labels or {}):
            problems.append(go_invalid(f"{path}.metadata.labels", go_string_map(labels), SELECTOR_MISMATCH))
        problems += validation.validate_labels(labels, f"{path}.metadata.labels")
        problems += validation.validate_annotations(meta.get("annotations"), f"{path}.metadata.annotations")
        spec = template.get("spec")
        if not isinstance(spec, dict):
            return [*problems, errors.required(f"{path}.spec.containers")]
        for problem in self.pods.validate({"metadata": meta, "spec": spec}):
            if problem.field.startswith("spec."):
                problem = FieldError(f"{path}.{problem.field}", problem.reason, problem.message)
            problems.append(problem)
        policy = spec.get("restartPolicy", "Always")
        if policy != "Always":
            problems.append(errors.not_supported(f"{path}.spec.restartPolicy", policy, ["Always"]))
        if spec.get("activeDeadlineSeconds") is not None:
            problems.append(errors.forbidden(f"{path}.spec.activeDeadlineSeconds", f"activeDeadlineSeconds in {self.owner_kind} is not Supported"))
        return problems


def nonnegative(spec: dict[str, Any], field: str, path: str = "spec") -> list[FieldError]:
    value = spec.get(field)
    if isinstance(value, int) and value < 0:
        return [errors.invalid(f"{path}.{field}", value, "must be greater than or equal to 0")]
    return []


def _never(labels: Any) -> bool:
    return False


def validate_selector_and_template(spec: dict[str, Any], rules: TemplateRules) -> list[FieldError]:
    """ValidateReplicaSetSpec / ValidateDeploymentSpec's selector and template: the selector is required,
    valid and not empty; the template's labels must match it (a missing selector matches nothing, so a
    manifest without one hears about both, as from the API server)."""
    selector = spec.get("selector")
    problems: list[FieldError] = []
    if selector is None:
        problems.append(errors.required("spec.selector"))
        return problems + rules.validate(spec.get("template"), _never)
    problems += validate_label_selector(selector, "spec.selector")
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        # (the API server says "deployment" for ReplicaSets too)
        problems.append(go_invalid("spec.selector", go_label_selector(selector), "empty selector is invalid for deployment"))
    try:
        compiled = selector_from_label_selector(selector)
    except SelectorError:
        return [*problems, go_invalid("spec.selector", go_label_selector(selector), "invalid label selector")]
    return problems + rules.validate(spec.get("template"), None if compiled.is_everything else compiled.matches)


def bump_generation(new: dict[str, Any], old: dict[str, Any], changed: bool) -> None:
    """metadata.generation: 1 at creation, +1 with every change of what the controller acts on."""
    previous = int(old["metadata"].get("generation") or 1)
    new["metadata"]["generation"] = previous + 1 if changed else previous


# -- write path --------------------------------------------------------------------------------------


def _default_replicas(spec: dict[str, Any]) -> None:
    if spec.get("replicas") is None:
        spec["replicas"] = 1


class ReplicaSetStrategy(Strategy):
    resource = REPLICA_SETS
    model = ReplicaSet
    has_status = True

    def __init__(self, cluster: Any) -> None:
        super().__init__(cluster)
        self.template = TemplateRules(PodStrategy(cluster), "ReplicaSet")

    def warnings(self, obj: dict[str, Any]) -> list[str]:
        return template_warnings(obj["spec"].get("template"))

    def _defaults(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        _default_replicas(spec)
        default_pod_template(spec.get("template"))

    def prepare_create(self, obj: dict[str, Any]) -> None:
        self._defaults(obj)
        obj["metadata"]["generation"] = 1
        obj.pop("status", None)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self._defaults(new)
        bump_generation(new, old, semantic(new.get("spec")) != semantic(old.get("spec")))

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        return nonnegative(spec, "replicas") + nonnegative(spec, "minReadySeconds") + validate_selector_and_template(spec, self.template)

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        selector = new.get("spec", {}).get("selector")
        if semantic(selector) != semantic(old.get("spec", {}).get("selector")):
            return [go_invalid("spec.selector", go_label_selector(selector), IMMUTABLE)]
        return []


# -- merge keys, columns, protobuf -------------------------------------------------------------------


def template_merge_rules(prefix: tuple[str, ...]) -> ListRules:
    """The pod's list merge keys under a template at `prefix` (`spec.template`)."""
    return {(*prefix, *path): rule for path, rule in POD_MERGE_RULES.items() if path[0] == "spec"}


CONDITIONS_RULE: ListRules = {("status", "conditions"): ListRule("type", ("type",))}
MERGE_RULES: ListRules = {**template_merge_rules(("spec", "template")), **CONDITIONS_RULE}

CONTAINERS = Column("Containers", "Names of each container in the template.", priority=1)
IMAGES = Column("Images", "Images referenced by each container in the template.", priority=1)


def container_cells(template: dict[str, Any] | None) -> list[str]:
    """CONTAINERS and IMAGES of the wide output (layoutContainerCells)."""
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)]


def selector_cell(selector: dict[str, Any] | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String(), "<invalid>" when it does not compile."""
    try:
        return str(selector_from_label_selector(selector))
    except SelectorError:
        return "<invalid>"


def _replica_set_cells(rs: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = spec_of(rs), status_of(rs)
    name, created = name_age(rs, now)
    selector = selector_cell(spec.get("selector"))
    return [
        name, int(spec.get("replicas") or 0), int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0),
        created, *container_cells(spec.get("template")), selector,
    ]


PRINTER = Printer(
    (
        NAME,
        Column(
            "Desired",
            "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
            type="integer",
        ),
        Column(
            "Current",
            "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
            type="integer",
        ),
        Column("Ready", "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition.", type="integer"),
        AGE,
        CONTAINERS,
        IMAGES,
        Column(
            "Selector",
            "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
            priority=1,
        ),
    ),
    _replica_set_cells,
)

REPLICA_SET_SPEC: Message = {  # ReplicaSetSpec
    1: ProtoField("replicas", "int", optional=True),
    4: ProtoField("minReadySeconds", "int"),
    2: ProtoField("selector", "message", LABEL_SELECTOR, optional=True),
    3: ProtoField("template", "message", POD_TEMPLATE_SPEC),
}

REPLICA_SET_STATUS: Message = {  # ReplicaSetStatus
    1: ProtoField("replicas", "int", optional=True),
    2: ProtoField("fullyLabeledReplicas", "int"),
    4: ProtoField("readyReplicas", "int"),
    5: ProtoField("availableReplicas", "int"),
    3: ProtoField("observedGeneration", "int"),
    6: ProtoField("conditions", "message", WORKLOAD_CONDITION, repeated=True),
}

REPLICA_SET_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", REPLICA_SET_SPEC),
    3: ProtoField("status", "message", REPLICA_SET_STATUS),
}

KIND = Kind(REPLICA_SETS, ReplicaSetStrategy, PRINTER, MERGE_RULES, {("apps/v1", "ReplicaSet"): REPLICA_SET_PROTOBUF})
