"""ResourceQuota (core/v1): the model, the API server's validation (quota resource names and values,
scopes and scope selectors, scopes fixed after creation) and the columns of `kubectl get quota`.

Stored, not enforced: `status.hard` follows `spec.hard` on every write (what the quota controller
publishes first); nothing measures `status.used` or refuses objects over the quota.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from emulator import errors
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, status_of
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.values import (
    QUANTITY_MAP_ENTRY,
    QUOTA_SCOPES,
    GoDecodedObject,
    ResourceList,
    is_standard_quota_resource,
    quantity_map_from_protobuf,
    quantity_of,
    quota_scope_fits,
    validate_quantity_value,
    validate_quota_resource_name,
)
from emulator.models.meta import ApiModel
from emulator.registry.strategy import Strategy

RESOURCE_QUOTAS = ResourceType(
    "", "v1", "resourcequotas", "ResourceQuota", True, "resourcequota", ("quota",),
    subresources=(Subresource("status"),),
)
SCOPE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_EXISTS_ONLY_SCOPES = ("BestEffort", "NotBestEffort", "Terminating", "NotTerminating", "CrossNamespacePodAffinity")
_CONFLICTING_SCOPES = (("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating"))


class ScopedResourceSelectorRequirement(ApiModel):
    scope_name: str | None = None
    operator: str | None = None
    values: list[str] | None = None


class ScopeSelector(ApiModel):
    match_expressions: list[ScopedResourceSelectorRequirement] | None = None


class ResourceQuotaSpec(ApiModel):
    hard: ResourceList | None = None
    scopes: list[str] | None = None
    scope_selector: ScopeSelector | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_protobuf(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("hard"), list):
            data = {**data, "hard": quantity_map_from_protobuf(data["hard"])}
        return data


class ResourceQuotaStatus(ApiModel):
    hard: ResourceList | None = None
    used: ResourceList | None = None


class ResourceQuota(GoDecodedObject):
    spec: ResourceQuotaSpec = Field(default_factory=ResourceQuotaSpec)
    status: ResourceQuotaStatus | None = None


def _go_strings(values: list[Any]) -> str:
    return "[]core.ResourceQuotaScope{" + ", ".join(f'"{v}"' for v in values) + "}"


def _validate_resources(resources: dict[str, Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    for name, value in resources.items():
        problems += validate_quota_resource_name(name, f"{path}[{name}]")
        problems += validate_quantity_value(name, value, f"{path}[{name}]")
    return problems


def _validate_scopes(spec: dict[str, Any]) -> list[FieldError]:
    scopes = spec.get("scopes") or []
    hard = sorted((spec.get("hard") or {}).keys())
    problems: list[FieldError] = []
    shown = _go_strings(scopes)
    for scope in scopes:
        if scope not in QUOTA_SCOPES:
            problems.append(FieldError("spec.scopes", "FieldValueInvalid", f"Invalid value: {shown}: unsupported scope"))
        for name in hard:
            if is_standard_quota_resource(name) and not quota_scope_fits(scope, name):
                problems.append(FieldError("spec.scopes", "FieldValueInvalid", f"Invalid value: {shown}: unsupported scope applied to resource"))
    for pair in _CONFLICTING_SCOPES:
        if set(pair) <= set(scopes):
            problems.append(FieldError("spec.scopes", "FieldValueInvalid", f"Invalid value: {shown}: conflicting scopes"))
    return problems


def _validate_scope_selector(spec: dict[str, Any]) -> list[FieldError]:
    selector = spec.get("scopeSelector")
    if selector is None:
        return []
    path = "spec.scopeSelector.matchExpressions"
    hard = sorted((spec.get("hard") or {}).keys())
    problems: list[FieldError] = []
    seen: set[str] = set()
    for requirement in selector.get("matchExpressions") or []:
        scope, operator, values = requirement.get("scopeName") or "", requirement.get("operator") or "", requirement.get("values") or []
        if scope not in QUOTA_SCOPES:
            problems.append(invalid(f"{path}.scopeName", scope, "unsupported scope"))
        for name in hard:
            if is_standard_quota_resource(name) and not quota_scope_fits(scope, name):
                problems.append(FieldError(path, "FieldValueInvalid", "Invalid value: ...: unsupported scope applied to resource"))
        if scope in _EXISTS_ONLY_SCOPES and operator != "Exists":
            problems.append(invalid(f"{path}.operator", operator, "must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"))
        if operator in ("In", "NotIn"):
            if not values:
                problems.append(errors.FieldError(f"{path}.values", "FieldValueRequired", "Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                problems.append(errors.invalid_strings(f"{path}.values", values, "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
        else:
            problems.append(invalid(f"{path}.operator", operator, "not a valid selector operator"))
        seen.add(scope)
    for pair in _CONFLICTING_SCOPES:
        if set(pair) <= seen:
            problems.append(FieldError(path, "FieldValueInvalid", f"Invalid value: {_go_strings(spec.get('scopes') or [])}: conflicting scopes"))
    return problems


class ResourceQuotaStrategy(Strategy):
    resource = RESOURCE_QUOTAS
    model = ResourceQuota
    has_status = True

    def prepare_create(self, obj: dict[str, Any]) -> None:
        obj.pop("status", None)
        self._publish_hard(obj)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self._publish_hard(new)

    @staticmethod
    def _publish_hard(obj: dict[str, Any]) -> None:
        hard = obj["spec"].get("hard")
        if hard:
            obj.setdefault("status", {})["hard"] = dict(hard)
        elif obj.get("status"):
            obj["status"].pop("hard", None)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        problems = _validate_resources(spec.get("hard") or {}, "spec.hard")
        problems += _validate_scopes(spec) + _validate_scope_selector(spec)
        status = obj.get("status") or {}
        hard = spec.get("hard") or {}
        # status.hard is the published copy of spec.hard: only what differs from it is checked again
        problems += _validate_resources({k: v for k, v in (status.get("hard") or {}).items() if hard.get(k) != v}, "status.hard")
        problems += _validate_resources(status.get("used") or {}, "status.used")
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        scopes, old_scopes = new["spec"].get("scopes") or [], old["spec"].get("scopes") or []
        if set(scopes) != set(old_scopes):
            return [FieldError("spec.scopes", "FieldValueInvalid", f"Invalid value: {_go_strings(scopes)}: field is immutable")]
        return []


def _quota_cells(quota: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(quota, now)
    status = status_of(quota)
    hard, used = status.get("hard") or {}, status.get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        pieces = resource.split(".")
        column = limits if len(pieces) > 1 and pieces[0] == "limits" else requests
        column.append(f"{resource}: {quantity_of(used.get(resource))}/{quantity_of(hard[resource])}")
    return [name, created, ", ".join(requests), ", ".join(limits)]


PRINTER = Printer(
    (
        NAME,
        AGE,
        Column("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
        Column("Limit", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
    ),
    _quota_cells,
)


# `kubectl create quota` sends protobuf (k8s.io/api core/v1 generated.proto)
RESOURCE_QUOTA_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", {
        1: ProtoField("hard", "message", QUANTITY_MAP_ENTRY, repeated=True),
        2: ProtoField("scopes", "string", repeated=True),
        3: ProtoField("scopeSelector", "message", {1: ProtoField("matchExpressions", "message", {
            1: ProtoField("scopeName", "string"), 2: ProtoField("operator", "string"),
            3: ProtoField("values", "string", repeated=True),
        }, repeated=True)}, optional=True),
    }),
    3: ProtoField("status", "message", {
        1: ProtoField("hard", "map", value="quantity"),
        2: ProtoField("used", "map", value="quantity"),
    }),
}


KIND = Kind(RESOURCE_QUOTAS, ResourceQuotaStrategy, PRINTER, protobuf={("v1", "ResourceQuota"): RESOURCE_QUOTA_PROTOBUF})
