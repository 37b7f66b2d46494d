"""Job (batch/v1): the model, the API server's defaults (completions and parallelism 1, backoffLimit 6,
completionMode NonIndexed, suspend false, podReplacementPolicy TerminatingOrFailed) and its selector
generation (the `controller-uid` and `job-name` labels), the validation of the job spec (shared with
the CronJob's `jobTemplate`), the columns of `kubectl get jobs`, merge keys and the protobuf layout
`kubectl create job` sends; and the reading of a Job's status that the Job and CronJob controllers
and the columns share (`finished_condition`).

The Job controller (emulator/controllers/job.py) runs the pods and writes the status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.pod import PodStrategy
from emulator.kinds.podwarnings import template_warnings
from emulator.kinds.printing import (
    AGE,
    NAME,
    Column,
    Printer,
    format_label_selector,
    human_duration,
    name_age,
    spec_of,
    status_of,
)
from emulator.kinds.protobuf_layout import LABEL_SELECTOR, OBJECT_META, POD_TEMPLATE_SPEC, PROBED_CONDITION, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.replicaset import (
    CONDITIONS_RULE,
    CONTAINERS,
    IMAGES,
    IMMUTABLE,
    PodTemplateSpec,
    bump_generation,
    container_cells,
    default_pod_template,
    go_invalid,
    go_label_selector,
    go_string_map,
    semantic,
    template_merge_rules,
)
from emulator.labels import SelectorError, selector_from_label_selector, validate_label_selector
from emulator.models.base import Int32, Int64
from emulator.models.meta import ApiModel, LabelSelector, ObjectMeta, TypedObject
from emulator.registry.patch import ListRules
from emulator.registry.strategy import Strategy
from emulator.timestamps import parse_rfc3339

JOBS = ResourceType("batch", "v1", "jobs", "Job", True, "job", (), ("all",), subresources=(Subresource("status"),))

# the labels the API server puts on the template of a Job with a generated selector (and so on its pods)
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
# Indexed jobs: each pod's index, as an annotation and a label (and JOB_COMPLETION_INDEX in its env)
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
# on every pod the Job controller creates, until it has counted the pod (in status.uncountedTerminatedPods,
# then succeeded/failed): a finished or deleted pod cannot vanish before it is counted
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"

NON_INDEXED, INDEXED = "NonIndexed", "Indexed"
RESTART_POLICIES = ["OnFailure", "Never"]
REPLACEMENT_POLICIES = ["TerminatingOrFailed", "Failed"]
# condition types (JobConditionType)
COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
MAX_INDEXED_COMPLETIONS = 100_000


# -- model -------------------------------------------------------------------------------------------


class JobSpec(ApiModel):
    parallelism: Int32 | None = None
    completions: Int32 | None = None
    active_deadline_seconds: Int64 | None = None
    pod_failure_policy: Any = None
    success_policy: Any = None
    backoff_limit: Int32 | None = None
    backoff_limit_per_index: Int32 | None = None
    max_failed_indexes: Int32 | None = None
    selector: LabelSelector | None = None
    manual_selector: bool | None = None
    template: PodTemplateSpec | None = None
    ttl_seconds_after_finished: Int32 | None = None
    completion_mode: str | None = None
    suspend: bool | None = None
    pod_replacement_policy: str | None = None
    managed_by: str | None = None


class JobCondition(ApiModel):
    type: str
    status: str
    last_probe_time: str | None = None
    last_transition_time: str | None = None
    reason: str | None = None
    message: str | None = None


class UncountedTerminatedPods(ApiModel):
    succeeded: list[str] | None = None
    failed: list[str] | None = None


class JobStatus(ApiModel):
    conditions: list[JobCondition] | None = None
    start_time: str | None = None
    completion_time: str | None = None
    active: Int32 | None = None
    succeeded: Int32 | None = None
    failed: Int32 | None = None
    terminating: Int32 | None = None
    completed_indexes: str | None = None
    failed_indexes: str | None = None
    uncounted_terminated_pods: UncountedTerminatedPods | None = None
    ready: Int32 | None = None


class Job(TypedObject):
    spec: JobSpec = Field(default_factory=JobSpec)
    status: JobStatus | None = None


class JobTemplateSpec(ApiModel):
    """What a CronJob keeps in `spec.jobTemplate` (and what its Jobs are made of)."""

    metadata: ObjectMeta | None = None
    spec: JobSpec | None = None


# -- reading a Job's status (controllers and columns) ------------------------------------------------


def has_condition(job: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status_of(job).get("conditions") or [])


def finished_condition(job: dict[str, Any]) -> dict[str, Any] | None:
    """The Complete or Failed condition that is True, if any (IsJobFinished)."""
    conditions: list[dict[str, Any]] = status_of(job).get("conditions") or []
    for condition in conditions:
        if condition.get("type") in (COMPLETE, FAILED) and condition.get("status") == "True":
            return condition
    return None


def finished_at(job: dict[str, Any]) -> datetime | None:
    """When the job finished (the TTL counts from there): its completionTime, else the condition's time."""
    condition = finished_condition(job)
    if condition is None:
        return None
    return parse_rfc3339(status_of(job).get("completionTime")) or parse_rfc3339(condition.get("lastTransitionTime"))


# -- write path --------------------------------------------------------------------------------------


def default_job_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_Job (the spec part; a CronJob's jobTemplate is not defaulted so)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    if spec.get("completionMode") is None:
        spec["completionMode"] = NON_INDEXED
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed"


def generate_selector(obj: dict[str, Any]) -> None:
    """generateSelector: the job-name and controller-uid labels on the template (those the user did not
    set), and a selector on the controller uid."""
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    template_meta = template.get("metadata")
    if not isinstance(template_meta, dict):
        template_meta = template["metadata"] = {}
    labels = template_meta.get("labels")
    if not isinstance(labels, dict):
        labels = template_meta["labels"] = {}
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, meta.get("name", ""))
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, meta.get("uid", ""))
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match = selector.get("matchLabels")
    if not isinstance(match, dict):
        match = selector["matchLabels"] = {}
    match.setdefault(CONTROLLER_UID_LABEL, meta.get("uid", ""))


def _nonnegative(spec: dict[str, Any], field: str, path: str) -> list[FieldError]:
    value = spec.get(field)
    if isinstance(value, int) and value < 0:
        return [errors.invalid(f"{path}.{field}", value, "must be greater than or equal to 0")]
    return []


class JobSpecRules:
    """validateJobSpec (for Jobs and for CronJobs' job templates, under `path`): counts, completion mode,
    the pod template (pod rules, restartPolicy OnFailure or Never) and, when a selector is given, that
    it matches the template's labels."""

    def __init__(self, pods: PodStrategy) -> None:
        self.pods = pods

    def validate(self, spec: dict[str, Any], path: str, selector_required: bool) -> list[FieldError]:
        problems: list[FieldError] = []
        for field in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
                      "backoffLimitPerIndex", "maxFailedIndexes"):
            problems += _nonnegative(spec, field, path)
        mode = spec.get("completionMode")
        if mode is not None and mode not in (NON_INDEXED, INDEXED):
            problems.append(errors.not_supported(f"{path}.completionMode", mode, [NON_INDEXED, INDEXED]))
        if mode == INDEXED:
            completions = spec.get("completions")
            if completions is None:
                problems.append(FieldError(f"{path}.completions", "FieldValueRequired", "Required value: when completion mode is Indexed"))
            elif completions > MAX_INDEXED_COMPLETIONS and spec.get("backoffLimitPerIndex") is None:
                problems.append(errors.invalid(f"{path}.completions", completions, f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed"))
        policy = spec.get("podReplacementPolicy")
        if policy is not None and policy not in REPLACEMENT_POLICIES:
            problems.append(errors.not_supported(f"{path}.podReplacementPolicy", policy, REPLACEMENT_POLICIES))
        selector = spec.get("selector")
        if selector is None:
            if selector_required:
                problems.append(errors.required(f"{path}.selector"))
            return problems + self._template(spec.get("template"), f"{path}.template", None)
        problems += validate_label_selector(selector, f"{path}.selector")
        try:
            compiled = selector_from_label_selector(selector)
        except SelectorError:
            return [*problems, go_invalid(f"{path}.selector", go_label_selector(selector), "invalid label selector")]
        return problems + self._template(spec.get("template"), f"{path}.template", compiled.matches)

    def _template(self, template: Any, path: str, matches: Any) -> list[FieldError]:
        if not isinstance(template, dict) or not template:
            return [errors.required(path)]
        problems: list[FieldError] = []
        meta = template.get("metadata") or {}
        labels = meta.get("labels")
        if matches is not None and not matches(labels or {}):
            problems.append(go_invalid(f"{path}.metadata.labels", go_string_map(labels), "`selector` does not match template `labels`"))
        problems += validation.validate_labels(labels, f"{path}.metadata.labels")
        problems += validation.validate_annotations(meta.get("annotations"), f"{path}.metadata.annotations")
        spec = template.get("spec")
        if not isinstance(spec, dict):
            return [*problems, errors.required(f"{path}.spec.containers")]
        for problem in self.pods.validate({"metadata": meta, "spec": spec}):
            if problem.field.startswith("spec."):
                problem = FieldError(f"{path}.{problem.field}", problem.reason, problem.message)
            problems.append(problem)
        restart = spec.get("restartPolicy")
        if restart not in RESTART_POLICIES:
            if restart is None or restart == "":
                problems.append(FieldError(f"{path}.spec.restartPolicy", "FieldValueRequired", 'Required value: valid values: "OnFailure", "Never"'))
            else:
                problems.append(errors.not_supported(f"{path}.spec.restartPolicy", restart, RESTART_POLICIES))
        return problems


def _validate_generated_selector(obj: dict[str, Any]) -> list[FieldError]:
    """validateGeneratedSelector: without manualSelector the selector must be the generated one and the
    template must carry the job's own name and uid labels."""
    spec = obj.get("spec") or {}
    if spec.get("manualSelector") is True:
        return []
    meta = obj["metadata"]
    labels = (((spec.get("template") or {}).get("metadata") or {}).get("labels")) or {}
    problems: list[FieldError] = []
    for key, want in ((CONTROLLER_UID_LABEL, meta.get("uid", "")), (JOB_NAME_LABEL, meta.get("name", ""))):
        if key in labels and labels[key] != want:
            problems.append(errors.invalid(f"spec.template.metadata.labels[{key}]", labels[key], f"must be '{want}'"))
    selector = spec.get("selector")
    if selector is not None and semantic(selector) != {"matchLabels": {CONTROLLER_UID_LABEL: meta.get("uid", "")}}:
        problems.append(go_invalid("spec.selector", go_label_selector(selector), "`selector` not auto-generated"))
    return problems


class JobStrategy(Strategy):
    resource = JOBS
    model = Job
    has_status = True

    def __init__(self, cluster: Any) -> None:
        super().__init__(cluster)
        self.rules = JobSpecRules(PodStrategy(cluster))

    def warnings(self, obj: dict[str, Any]) -> list[str]:
        return template_warnings(obj["spec"].get("template"))

    def _defaults(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        default_job_spec(spec)
        default_pod_template(spec.get("template"))
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if labels and not obj["metadata"].get("labels"):
            obj["metadata"]["labels"] = dict(labels)

    def prepare_create(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("manualSelector") is not True:
            generate_selector(obj)
        self._defaults(obj)
        obj["metadata"]["generation"] = 1
        obj.pop("status", None)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self._defaults(new)
        bump_generation(new, old, semantic(new.get("spec")) != semantic(old.get("spec")))

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        return _validate_generated_selector(obj) + self.rules.validate(spec, "spec", selector_required=True)

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        """ValidateJobSpecUpdate: what the controller acts on may not change under it."""
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        problems: list[FieldError] = []
        if semantic(spec.get("selector")) != semantic(old_spec.get("selector")):
            problems.append(go_invalid("spec.selector", go_label_selector(spec.get("selector")), IMMUTABLE))
        if semantic(spec.get("template")) != semantic(old_spec.get("template")):
            # (the API server quotes the whole core.PodTemplateSpec here; its Go rendering is not useful)
            problems.append(go_invalid("spec.template", "core.PodTemplateSpec{...}", IMMUTABLE))
        for field in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "successPolicy", "managedBy"):
            if semantic(spec.get(field)) != semantic(old_spec.get(field)):
                problems.append(errors.invalid(f"spec.{field}", spec.get(field), IMMUTABLE))
        if spec.get("completions") != old_spec.get("completions"):
            # elastic Indexed jobs may change completions together with parallelism
            elastic = spec.get("completionMode") == INDEXED and spec.get("completions") == spec.get("parallelism")
            if not elastic:
                problems.append(errors.invalid("spec.completions", spec.get("completions"), IMMUTABLE))
        return problems


# -- merge keys, columns, protobuf -------------------------------------------------------------------

MERGE_RULES: ListRules = {**template_merge_rules(("spec", "template")), **CONDITIONS_RULE}


def job_status_cell(job: dict[str, Any]) -> str:
    """The STATUS column (printJob)."""
    if has_condition(job, COMPLETE):
        return "Complete"
    if has_condition(job, FAILED):
        return "Failed"
    if job.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    for kind in (SUSPENDED, FAILURE_TARGET, SUCCESS_CRITERIA_MET):
        if has_condition(job, kind):
            return kind
    return "Running"


def completions_cell(job: dict[str, Any]) -> str:
    spec, status = spec_of(job), status_of(job)
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = int(spec.get("parallelism") or 0)
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def duration_cell(job: dict[str, Any], now: datetime) -> str:
    status = status_of(job)
    started = parse_rfc3339(status.get("startTime"))
    if started is None:
        return ""
    ended = parse_rfc3339(status.get("completionTime")) or now
    return human_duration((ended - started).total_seconds())


def _job_cells(job: dict[str, Any], now: datetime) -> list[Any]:
    spec = spec_of(job)
    name, created = name_age(job, now)
    return [
        name, job_status_cell(job), completions_cell(job), duration_cell(job, now), created,
        *container_cells(spec.get("template")), format_label_selector(spec.get("selector")),
    ]


SELECTOR = Column(
    "Selector",
    "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    priority=1,
)

PRINTER = Printer(
    (
        NAME,
        Column("Status", "Status of the job."),
        Column("Completions", "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs."),
        Column("Duration", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ),
    _job_cells,
)

# k8s.io/api batch/v1 generated.proto
POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Message = {  # PodFailurePolicyOnExitCodesRequirement
    1: ProtoField("containerName", "string", optional=True),
    2: ProtoField("operator", "string", optional=True),
    3: ProtoField("values", "int", repeated=True),
}

POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Message = {  # PodFailurePolicyOnPodConditionsPattern
    1: ProtoField("type", "string", optional=True),
    2: ProtoField("status", "string", optional=True),
}

POD_FAILURE_POLICY_RULE: Message = {  # PodFailurePolicyRule
    1: ProtoField("action", "string", optional=True),
    2: ProtoField("onExitCodes", "message", POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT, optional=True),
    3: ProtoField("onPodConditions", "message", POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN, repeated=True),
}

POD_FAILURE_POLICY: Message = {  # PodFailurePolicy
    1: ProtoField("rules", "message", POD_FAILURE_POLICY_RULE, repeated=True),
}

SUCCESS_POLICY_RULE: Message = {  # SuccessPolicyRule
    1: ProtoField("succeededIndexes", "string", optional=True),
    2: ProtoField("succeededCount", "int", optional=True),
}

SUCCESS_POLICY: Message = {  # SuccessPolicy
    1: ProtoField("rules", "message", SUCCESS_POLICY_RULE, repeated=True),
}

JOB_SPEC: Message = {  # JobSpec
    1: ProtoField("parallelism", "int", optional=True),
    2: ProtoField("completions", "int", optional=True),
    3: ProtoField("activeDeadlineSeconds", "int", optional=True),
    11: ProtoField("podFailurePolicy", "message", POD_FAILURE_POLICY, optional=True),
    16: ProtoField("successPolicy", "message", SUCCESS_POLICY, optional=True),
    7: ProtoField("backoffLimit", "int", optional=True),
    12: ProtoField("backoffLimitPerIndex", "int", optional=True),
    13: ProtoField("maxFailedIndexes", "int", optional=True),
    4: ProtoField("selector", "message", LABEL_SELECTOR, optional=True),
    5: ProtoField("manualSelector", "bool", optional=True),
    6: ProtoField("template", "message", POD_TEMPLATE_SPEC),
    8: ProtoField("ttlSecondsAfterFinished", "int", optional=True),
    9: ProtoField("completionMode", "string", optional=True),
    10: ProtoField("suspend", "bool", optional=True),
    14: ProtoField("podReplacementPolicy", "string", optional=True),
    15: ProtoField("managedBy", "string", optional=True),
}

UNCOUNTED_TERMINATED_PODS: Message = {  # UncountedTerminatedPods
    1: ProtoField("succeeded", "string", repeated=True),
    2: ProtoField("failed", "string", repeated=True),
}

JOB_STATUS: Message = {  # JobStatus
    1: ProtoField("conditions", "message", PROBED_CONDITION, repeated=True),
    2: ProtoField("startTime", "time", optional=True),
    3: ProtoField("completionTime", "time", optional=True),
    4: ProtoField("active", "int"),
    5: ProtoField("succeeded", "int"),
    6: ProtoField("failed", "int"),
    11: ProtoField("terminating", "int", optional=True),
    7: ProtoField("completedIndexes", "string"),
    10: ProtoField("failedIndexes", "string", optional=True),
    8: ProtoField("uncountedTerminatedPods", "message", UNCOUNTED_TERMINATED_PODS, optional=True),
    9: ProtoField("ready", "int", optional=True),
}

JOB_TEMPLATE_SPEC: Message = {  # JobTemplateSpec
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", JOB_SPEC),
}

JOB_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", JOB_SPEC),
    3: ProtoField("status", "message", JOB_STATUS),
}

KIND = Kind(JOBS, JobStrategy, PRINTER, MERGE_RULES, {("batch/v1", "Job"): JOB_PROTOBUF})
