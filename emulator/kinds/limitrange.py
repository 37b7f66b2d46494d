"""LimitRange (core/v1): the model, the API server's defaults (a Container item's default limit from its
max, its default request from its default limit or min) and validation (types, resource names, the order
min ≤ defaultRequest ≤ default ≤ max), and the columns of `kubectl get limits`.

Stored only: there is no admission plugin that applies the defaults to pods or refuses pods over the
limits."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import NAME, Column, Printer, meta_of
from emulator.kinds.values import (
    LIMIT_TYPES,
    GoDecodedObject,
    ResourceList,
    overcommit_allowed,
    quantity_of,
    validate_container_resource_name,
    validate_resource_name,
)
from emulator.models.meta import ApiModel
from emulator.registry.strategy import Strategy

LIMIT_RANGES = ResourceType("", "v1", "limitranges", "LimitRange", True, "limitrange", ("limits",))
BOUNDS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")


class LimitRangeItem(ApiModel):
    type: str | None = None
    max: ResourceList | None = None
    min: ResourceList | None = None
    default: ResourceList | None = None
    default_request: ResourceList | None = None
    max_limit_request_ratio: ResourceList | None = None


class LimitRangeSpec(ApiModel):
    limits: list[LimitRangeItem] | None = None


class LimitRange(GoDecodedObject):
    spec: LimitRangeSpec = Field(default_factory=LimitRangeSpec)


def _default_item(item: dict[str, Any]) -> None:
    """SetDefaults_LimitRangeItem: a Container's default limit is its max, its default request its
    default limit, else its min (empty maps are not written)."""
    if item.get("type") != "Container":
        return
    default = dict(item.get("default") or {})
    request = dict(item.get("defaultRequest") or {})
    for key, value in (item.get("max") or {}).items():
        default.setdefault(key, value)
    for key, value in default.items():
        request.setdefault(key, value)
    for key, value in (item.get("min") or {}).items():
        request.setdefault(key, value)
    for field, values in (("default", default), ("defaultRequest", request)):
        if values:
            item[field] = values


def _resource_name(kind: str, name: str, path: str) -> list[FieldError]:
    if kind in ("Pod", "Container"):
        return validate_container_resource_name(name, path)
    return validate_resource_name(name, path)


def _validate_item(item: dict[str, Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    kind = item.get("type") or ""
    type_errors = [invalid(f"{path}.type", kind, m) for m in validation.qualified_name_errors(kind)]
    if not type_errors and "/" not in kind and kind not in LIMIT_TYPES:
        type_errors.append(invalid(f"{path}.type", kind, "must be a standard limit type or fully qualified"))
    problems += type_errors
    bounds = {field: item.get(field) or {} for field in BOUNDS}
    if kind == "Pod":
        for field in ("default", "defaultRequest"):
            if bounds[field]:
                problems.append(errors.forbidden(f"{path}.{field}", "may not be specified when `type` is 'Pod'"))
        bounds["default"], bounds["defaultRequest"] = {}, {}
    for field in ("max", "min", "default", "defaultRequest"):
        for name in bounds[field]:
            problems += _resource_name(kind, name, f"{path}.{field}[{name}]")
    if kind == "PersistentVolumeClaim" and "storage" not in bounds["min"] and "storage" not in bounds["max"]:
        problems.append(errors.FieldError(f"{path}.limits", "FieldValueRequired", "Required value: either minimum or maximum storage value is required, but neither was provided"))
    for name in bounds["maxLimitRequestRatio"]:
        problems += _resource_name(kind, name, f"{path}.maxLimitRequestRatio[{name}]")
    names = {name for field in BOUNDS for name in bounds[field]}
    for name in sorted(names):
        q = {field: quantity_of(bounds[field][name]) for field in BOUNDS if name in bounds[field]}
        lo, hi, default, request, ratio = q.get("min"), q.get("max"), q.get("default"), q.get("defaultRequest"), q.get("maxLimitRequestRatio")
        if lo is not None and hi is not None and lo.value > hi.value:
            problems.append(_invalid(f"{path}.min[{name}]", lo, f"min value {lo} is greater than max value {hi}"))
        if request is not None and lo is not None and lo.value > request.value:
            problems.append(_invalid(f"{path}.defaultRequest[{name}]", request, f"min value {lo} is greater than default request value {request}"))
        if request is not None and hi is not None and request.value > hi.value:
            problems.append(_invalid(f"{path}.defaultRequest[{name}]", request, f"default request value {request} is greater than max value {hi}"))
        if request is not None and default is not None and request.value > default.value:
            problems.append(_invalid(f"{path}.defaultRequest[{name}]", request, f"default request value {request} is greater than default limit value {default}"))
        if default is not None and lo is not None and lo.value > default.value:
            problems.append(_invalid(f"{path}.default[{name}]", lo, f"min value {lo} is greater than default value {default}"))
        if default is not None and hi is not None and default.value > hi.value:
            problems.append(_invalid(f"{path}.default[{name}]", hi, f"default value {default} is greater than max value {hi}"))
        if ratio is not None and ratio.value < 1:
            problems.append(_invalid(f"{path}.maxLimitRequestRatio[{name}]", ratio, f"ratio {ratio} is less than 1"))
        if ratio is not None and lo is not None and hi is not None and lo.value > 0:
            limit = hi.value / lo.value
            if ratio.value > limit:
                problems.append(_invalid(f"{path}.maxLimitRequestRatio[{name}]", ratio, f"ratio {ratio} is greater than max/min = {float(limit):f}"))
        if not overcommit_allowed(name) and default is not None and request is not None and default.value != request.value:
            problems.append(_invalid(f"{path}.defaultRequest[{name}]", request, f"default value {default} must equal to defaultRequest value {request} in {name}"))
    return problems


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    # the API server prints these quantities unquoted
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {value}: {detail}")


class LimitRangeStrategy(Strategy):
    resource = LIMIT_RANGES
    model = LimitRange

    def prepare_create(self, obj: dict[str, Any]) -> None:
        for item in obj["spec"].get("limits") or []:
            _default_item(item)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self.prepare_create(new)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems: list[FieldError] = []
        seen: set[str] = set()
        for i, item in enumerate(obj["spec"].get("limits") or []):
            path = f"spec.limits[{i}]"
            problems += _validate_item(item, path)
            kind = item.get("type") or ""
            if kind in seen:
                problems.append(errors.duplicate(f"{path}.type", kind))
            seen.add(kind)
        return problems


def _limit_range_cells(lr: dict[str, Any], now: Any) -> list[Any]:
    meta = meta_of(lr)
    return [meta.get("name", ""), meta.get("creationTimestamp")]


PRINTER = Printer(
    (
        NAME,
        Column(
            "Created At",
            "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
            "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. "
            "It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. "
            "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            type="date",
        ),
    ),
    _limit_range_cells,
)


KIND = Kind(LIMIT_RANGES, LimitRangeStrategy, PRINTER)
