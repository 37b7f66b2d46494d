"""CronJob (batch/v1): the model, the API server's defaults (concurrencyPolicy Allow, suspend false,
successfulJobsHistoryLimit 3, failedJobsHistoryLimit 1) and validation (the schedule as robfig/cron's
standard parser reads it, checked here with `croniter`; the time zone against the IANA database with
`zoneinfo`; the job template as a Job's spec), the columns of `kubectl get cronjobs`, merge keys and the
protobuf layout `kubectl create cronjob` sends; and `parse_schedule`, which the CronJob controller
(emulator/controllers/cronjob.py) schedules with.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.job import JOB_TEMPLATE_SPEC, SELECTOR, JobSpecRules, JobTemplateSpec
from emulator.kinds.pod import PodStrategy
from emulator.kinds.podwarnings import template_warnings
from emulator.kinds.printing import (
    AGE,
    NAME,
    NONE,
    Column,
    Printer,
    age,
    format_label_selector,
    name_age,
    spec_of,
    status_of,
)
from emulator.kinds.protobuf_layout import OBJECT_META, OBJECT_REFERENCE, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.replicaset import (
    CONTAINERS,
    IMAGES,
    bump_generation,
    container_cells,
    default_pod_template,
    semantic,
    template_merge_rules,
)
from emulator.models.base import Int32, Int64
from emulator.models.meta import ApiModel, ObjectReference, TypedObject
from emulator.registry.patch import ListRules
from emulator.registry.strategy import Strategy

CRON_JOBS = ResourceType(
    "batch", "v1", "cronjobs", "CronJob", True, "cronjob", ("cj",), ("all",), subresources=(Subresource("status"),),
)

CONCURRENCY_POLICIES = ["Allow", "Forbid", "Replace"]
# the annotation on each Job the controller creates: its scheduled time, in the CronJob's time zone
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# `kubectl create job --from=cronjob/x` marks the Jobs it makes so
INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
# a Job is named `<cronjob>-<minutes since the epoch>` (up to 11 characters), within a 63-character label
MAX_NAME_LENGTH = 52
# robfig/cron's descriptors, as its standard parser accepts them
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_TIME_ZONE_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")


# -- model -------------------------------------------------------------------------------------------


class CronJobSpec(ApiModel):
    schedule: str | None = None
    time_zone: str | None = None
    starting_deadline_seconds: Int64 | None = None
    concurrency_policy: str | None = None
    suspend: bool | None = None
    job_template: JobTemplateSpec | None = None
    successful_jobs_history_limit: Int32 | None = None
    failed_jobs_history_limit: Int32 | None = None


class CronJobStatus(ApiModel):
    active: list[ObjectReference] | None = None
    last_schedule_time: str | None = None
    last_successful_time: str | None = None


class CronJob(TypedObject):
    spec: CronJobSpec = Field(default_factory=CronJobSpec)
    status: CronJobStatus | None = None


# -- schedules ---------------------------------------------------------------------------------------


class ScheduleError(ValueError):
    """A schedule robfig/cron would refuse; the message is what the API server quotes."""


# the five fields robfig/cron's standard parser reads: (minimum, maximum, names)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    (0, 6, {name: i for i, name in enumerate(_DAYS)}),
)


def _number(text: str) -> int:
    """mustParseInt, with Go's strconv.Atoi wording."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ScheduleError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if value < 0:
        raise ScheduleError(f"negative number ({value}) not allowed: {text}")
    return value


def _check_range(expr: str, low: int, high: int, names: dict[str, int]) -> None:
    """robfig/cron's getRange: `*`, `N`, `N-M`, each optionally `/step`, within the field's bounds."""

    def value(text: str) -> int:
        return names[text.lower()] if text.lower() in names else _number(text)

    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = value(low_and_high[0])
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = value(low_and_high[1])
        else:
            raise ScheduleError(f"too many hyphens: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _number(range_and_step[1])
        if len(low_and_high) == 1:
            end = high  # "N/step" means N-max/step
    elif len(range_and_step) > 2:
        raise ScheduleError(f"too many slashes: {expr}")
    if start < low:
        raise ScheduleError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise ScheduleError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ScheduleError(f"step of range should be a positive number: {expr}")


def parse_schedule(schedule: str) -> str:
    """The five-field expression of a schedule (descriptors expanded), or ScheduleError worded as
    robfig/cron's standard parser words it. A `TZ=` / `CRON_TZ=` prefix is read past (the API server
    refuses it separately)."""
    text = schedule.strip()
    if not text:
        raise ScheduleError("empty spec string")
    if text.startswith(("TZ=", "CRON_TZ=")):
        zone, _, text = text.partition(" ")
        try:
            ZoneInfo(zone.split("=", 1)[1])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(f"provided bad location {zone.split('=', 1)[1]}: unknown time zone {zone.split('=', 1)[1]}") from exc
        text = text.strip()
    if text.startswith("@"):
        if text in DESCRIPTORS:
            return DESCRIPTORS[text]
        if text.startswith("@every "):
            raise ScheduleError(f"@every schedules are not supported by the emulator: {text}")
        raise ScheduleError(f"unrecognized descriptor: {text}")
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    for field, (low, high, names) in zip(fields, _FIELDS, strict=True):
        for expr in field.split(","):
            _check_range(expr, low, high, names)
    expression = " ".join("*" if field == "?" else field for field in fields)
    from croniter import croniter  # (loaded with the first CronJob: croniter and dateutil cost ~5 ms of a start)

    try:
        croniter(expression)
    except (ValueError, KeyError) as exc:  # what the parser accepts and croniter cannot compute
        raise ScheduleError(f"failed to parse schedule: {exc}") from exc
    return expression


def location(time_zone: str | None) -> tzinfo:
    """The zone a schedule runs in: the CronJob's timeZone, else the controller's (UTC here)."""
    return ZoneInfo(time_zone) if time_zone else ZoneInfo("UTC")


def next_schedule_after(schedule: str, zone: tzinfo, after: datetime) -> datetime:
    """The first scheduled time strictly after `after`."""
    from croniter import croniter

    result: datetime = croniter(parse_schedule(schedule), after.astimezone(zone)).get_next(datetime)
    return result


def _validate_time_zone(time_zone: str | None) -> list[FieldError]:
    if time_zone is None:
        return []
    path = "spec.timeZone"
    if time_zone == "":
        return [errors.invalid(path, time_zone, "timeZone must be nil or non-empty string")]
    for part in time_zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.match(part):
            return [errors.invalid(path, time_zone, f"unknown time zone {time_zone}")]
    if time_zone.lower() == "local":
        return [errors.invalid(path, time_zone, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")]
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [errors.invalid(path, time_zone, f"unknown time zone {time_zone}")]
    return []


# -- write path --------------------------------------------------------------------------------------


def default_cron_job_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_CronJob (the job template's pod template gets the pod defaults; its job spec none)."""
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_spec = (spec.get("jobTemplate") or {}).get("spec")
    if isinstance(job_spec, dict):
        default_pod_template(job_spec.get("template"))


class CronJobStrategy(Strategy):
    resource = CRON_JOBS
    model = CronJob
    has_status = True

    def __init__(self, cluster: Any) -> None:
        super().__init__(cluster)
        self.jobs = JobSpecRules(PodStrategy(cluster))

    def warnings(self, obj: dict[str, Any]) -> list[str]:
        return template_warnings(((obj["spec"].get("jobTemplate") or {}).get("spec") or {}).get("template"), "spec.jobTemplate.spec.template")

    def prepare_create(self, obj: dict[str, Any]) -> None:
        default_cron_job_spec(obj.setdefault("spec", {}))
        obj["metadata"]["generation"] = 1
        obj.pop("status", None)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        default_cron_job_spec(new.setdefault("spec", {}))
        bump_generation(new, old, semantic(new.get("spec")) != semantic(old.get("spec")))

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        problems: list[FieldError] = []
        name = obj["metadata"].get("name") or ""
        if len(name) > MAX_NAME_LENGTH:
            problems.append(errors.invalid("metadata.name", name, f"must be no more than {MAX_NAME_LENGTH} characters"))
        schedule = spec.get("schedule") or ""
        if not schedule:
            problems.append(errors.required("spec.schedule"))
        else:
            try:
                parse_schedule(schedule)
            except ScheduleError as exc:
                problems.append(errors.invalid("spec.schedule", schedule, str(exc)))
            if "TZ" in schedule:
                problems.append(errors.invalid("spec.schedule", schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
        problems += _validate_time_zone(spec.get("timeZone"))
        policy = spec.get("concurrencyPolicy") or ""
        if not policy:
            problems.append(errors.required("spec.concurrencyPolicy"))
        elif policy not in CONCURRENCY_POLICIES:
            problems.append(errors.not_supported("spec.concurrencyPolicy", policy, CONCURRENCY_POLICIES))
        for field in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            value = spec.get(field)
            if isinstance(value, int) and value < 0:
                problems.append(errors.invalid(f"spec.{field}", value, "must be greater than or equal to 0"))
        template = spec.get("jobTemplate") or {}
        meta = template.get("metadata") or {}
        problems += validation.validate_labels(meta.get("labels"), "spec.jobTemplate.metadata.labels")
        problems += validation.validate_annotations(meta.get("annotations"), "spec.jobTemplate.metadata.annotations")
        return problems + self.jobs.validate(template.get("spec") or {}, "spec.jobTemplate.spec", selector_required=False)


# -- merge keys, columns, protobuf -------------------------------------------------------------------

MERGE_RULES: ListRules = template_merge_rules(("spec", "jobTemplate", "spec", "template"))


def _bool_cell(value: Any) -> str:
    """printBoolPtr."""
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def _cron_job_cells(cj: dict[str, Any], now: datetime) -> list[Any]:
    spec, status = spec_of(cj), status_of(cj)
    name, created = name_age(cj, now)
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return [
        name, spec.get("schedule", ""), spec.get("timeZone") or NONE, _bool_cell(spec.get("suspend")),
        len(status.get("active") or []), age(last, now) if last else NONE, created,
        *container_cells(job_spec.get("template")), format_label_selector(job_spec.get("selector")),
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Schedule", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        Column("Timezone", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process."),
        Column("Suspend", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.", type="boolean"),
        Column("Active", "A list of pointers to currently running jobs.", type="integer"),
        Column("Last Schedule", "Information when was the last time the job was successfully scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ),
    _cron_job_cells,
)

CRON_JOB_SPEC: Message = {  # CronJobSpec
    1: ProtoField("schedule", "string", optional=True),
    8: ProtoField("timeZone", "string", optional=True),
    2: ProtoField("startingDeadlineSeconds", "int", optional=True),
    3: ProtoField("concurrencyPolicy", "string"),
    4: ProtoField("suspend", "bool", optional=True),
    5: ProtoField("jobTemplate", "message", JOB_TEMPLATE_SPEC),
    6: ProtoField("successfulJobsHistoryLimit", "int", optional=True),
    7: ProtoField("failedJobsHistoryLimit", "int", optional=True),
}

CRON_JOB_STATUS: Message = {  # CronJobStatus
    1: ProtoField("active", "message", OBJECT_REFERENCE, repeated=True),
    4: ProtoField("lastScheduleTime", "time", optional=True),
    5: ProtoField("lastSuccessfulTime", "time", optional=True),
}

CRON_JOB_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", CRON_JOB_SPEC),
    3: ProtoField("status", "message", CRON_JOB_STATUS),
}

KIND = Kind(CRON_JOBS, CronJobStrategy, PRINTER, MERGE_RULES, {("batch/v1", "CronJob"): CRON_JOB_PROTOBUF})
