"""PodDisruptionBudget (policy/v1): the model, the API server's validation (minAvailable or maxUnavailable,
each a count or a percentage up to 100%, the selector, the unhealthy-pod eviction policy) and the columns
of `kubectl get pdb`.

Stored only: nothing evicts pods, so the status stays as created (no disruption is allowed or counted).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, spec_of, status_of
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.values import LABEL_SELECTOR
from emulator.labels import validate_label_selector
from emulator.models.base import IntOrString
from emulator.models.meta import ApiModel, LabelSelector, TypedObject
from emulator.registry.patch import ListRule, ListRules
from emulator.registry.strategy import Strategy

POD_DISRUPTION_BUDGETS = ResourceType(
    "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, "poddisruptionbudget", ("pdb",),
    subresources=(Subresource("status"),),
)
UNHEALTHY_POD_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")
PERCENT_FMT = "[0-9]+%"
PERCENT_ERR_MSG = "a valid percent string must be a numeric string followed by an ending '%'"
_PERCENT_RE = re.compile(PERCENT_FMT)


class PodDisruptionBudgetSpec(ApiModel):
    min_available: IntOrString | None = None
    selector: LabelSelector | None = None
    max_unavailable: IntOrString | None = None
    unhealthy_pod_eviction_policy: str | None = None


class PodDisruptionBudget(TypedObject):
    spec: PodDisruptionBudgetSpec = Field(default_factory=PodDisruptionBudgetSpec)
    status: Any = None


def _go_int_or_string(value: int | str) -> str:
    """An intstr.IntOrString as the API server prints a bad one (Go's %#v)."""
    if isinstance(value, str):
        return f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:"{value}"}}'
    return f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}'


def _validate_int_or_percent(value: int | str, path: str) -> list[FieldError]:
    """ValidatePositiveIntOrPercent and IsNotMoreThan100Percent."""
    if isinstance(value, str):
        if not _PERCENT_RE.fullmatch(value):
            detail = validation.regex_error(PERCENT_ERR_MSG, PERCENT_FMT, "1%", "93%")
            return [FieldError(path, "FieldValueInvalid", f"Invalid value: {_go_int_or_string(value)}: {detail}")]
        if int(value[:-1]) > 100:
            return [errors.invalid(path, value, "must not be greater than 100%")]
        return []
    if value < 0:
        return [errors.invalid(path, value, "must be greater than or equal to 0")]
    return []


class PodDisruptionBudgetStrategy(Strategy):
    resource = POD_DISRUPTION_BUDGETS
    model = PodDisruptionBudget
    has_status = True

    def prepare_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        problems: list[FieldError] = []
        low, high = spec.get("minAvailable"), spec.get("maxUnavailable")
        if low is not None and high is not None:
            problems.append(FieldError("spec", "FieldValueInvalid", "Invalid value: policy.PodDisruptionBudgetSpec{...}: minAvailable and maxUnavailable cannot be both set"))
        if low is not None:
            problems += _validate_int_or_percent(low, "spec.minAvailable")
        if high is not None:
            problems += _validate_int_or_percent(high, "spec.maxUnavailable")
        if spec.get("selector") is not None:
            problems += validate_label_selector(spec["selector"], "spec.selector")
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
            problems.append(errors.not_supported("spec.unhealthyPodEvictionPolicy", policy, list(UNHEALTHY_POD_EVICTION_POLICIES)))
        return problems


MERGE_RULES: ListRules = {("status", "conditions"): ListRule("type", ("type",))}


def _pdb_cells(pdb: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(pdb, now)
    spec = spec_of(pdb)
    low, high = spec.get("minAvailable"), spec.get("maxUnavailable")
    return [
        name,
        "N/A" if low is None else str(low),
        "N/A" if high is None else str(high),
        status_of(pdb).get("disruptionsAllowed") or 0,
        created,
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Min Available", "The minimum number of pods that must be available."),
        Column("Max Unavailable", "The maximum number of pods that may be unavailable."),
        Column("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time.", type="integer"),
        AGE,
    ),
    _pdb_cells,
)


# `kubectl create pdb` sends protobuf (k8s.io/api policy/v1 generated.proto)
POD_DISRUPTION_BUDGET_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", {
        1: ProtoField("minAvailable", "int_or_string", optional=True),
        2: ProtoField("selector", "message", LABEL_SELECTOR, optional=True),
        3: ProtoField("maxUnavailable", "int_or_string", optional=True),
        4: ProtoField("unhealthyPodEvictionPolicy", "string", optional=True),
    }),
}


KIND = Kind(
    POD_DISRUPTION_BUDGETS, PodDisruptionBudgetStrategy, PRINTER, MERGE_RULES,
    {("policy/v1", "PodDisruptionBudget"): POD_DISRUPTION_BUDGET_PROTOBUF},
)
