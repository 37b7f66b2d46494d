"""Custom resources: a `Kind` built while running from one version of a CustomResourceDefinition.

The definition's structural schema drives the write path as in the API server's apiextensions code:
unknown fields are pruned (and reported per `fieldValidation`, like the built-ins' unknown fields),
defaults are filled in from the schema, and the object is validated against it (types, required,
enum, bounds, patterns, lengths, int-or-string, embedded resources). `additionalPrinterColumns` become
the `kubectl get` columns; the status and scale subresources are served when the version declares them.

The schema functions (`prune`, `apply_defaults`, `validate_value`) are pure and tested directly.
Every version of a resource shares one store key; objects are stored in the storage version and
answered in the version asked for (`conversion: None`: only the apiVersion differs).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ConfigDict

from emulator.errors import FieldError, invalid, not_supported, required
from emulator.kinds.base import ALL_VERBS, Kind, ResourceType, Subresource
from emulator.kinds.customresourcedefinition import EMBEDDED_RESOURCE, INT_OR_STRING, go_regexp, storage_version
from emulator.kinds.printing import AGE, NAME, Column, Printer, age, name_age
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy
from emulator.schemas import PRESERVE_UNKNOWN

Schema = dict[str, Any]
TOP_LEVEL = ("apiVersion", "kind", "metadata")
OBJECT_META_REF = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def json_type(value: Any) -> str:
    """The JSON type of a value, as kube-openapi names it in its errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# -- pruning -----------------------------------------------------------------------------------------


def prune(schema: Schema, value: Any, path: str, unknown: list[str]) -> Any:
    """`value` without the fields `schema` does not specify (the API server prunes them), their paths
    appended to `unknown`. Unknown fields are kept under x-kubernetes-preserve-unknown-fields; an
    embedded resource keeps its apiVersion, kind and metadata. A null is dropped where the field's schema
    is not nullable and has no default (PruneNonNullableNullsWithoutDefaults); `nullable: true` keeps it."""
    if isinstance(value, dict):
        if schema.get(PRESERVE_UNKNOWN) is True and not schema.get("properties") and not isinstance(schema.get("additionalProperties"), dict):
            return value
        properties = schema.get("properties") or {}
        values = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, sub in value.items():
            where = f"{path}.{key}" if path else key
            field = properties.get(key) if key in properties else values if isinstance(values, dict) else None
            if sub is None and isinstance(field, dict) and field.get("nullable") is not True and field.get("default") is None:
                continue
            if key in properties:
                out[key] = prune(properties[key], sub, where, unknown)
            elif isinstance(values, dict):
                out[key] = prune(values, sub, where, unknown)
            elif values is True or schema.get(PRESERVE_UNKNOWN) is True:
                out[key] = sub
            elif schema.get(EMBEDDED_RESOURCE) is True and key in TOP_LEVEL:
                out[key] = sub
            else:
                unknown.append(where)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], item, f"{path}[{i}]", unknown) for i, item in enumerate(value)]
    return value


# -- defaulting --------------------------------------------------------------------------------------


def apply_defaults(schema: Schema, value: Any) -> None:
    """Fill in the schema's `default`s where a field is absent or null without being nullable (in place), at
    every depth the value has."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if "default" in sub and (key not in value or (value[key] is None and sub.get("nullable") is not True)):
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(sub, value[key])
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            for key in value:
                if key not in (schema.get("properties") or {}):
                    apply_defaults(values, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(schema["items"], item)


# -- validation --------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def validate_value(schema: Schema, value: Any, path: str) -> list[FieldError]:
    """The errors kube-openapi's validator reports for `value` at `path` (`spec.replicas`)."""
    if value is None:
        if schema.get("nullable") is True:
            return []
        want = schema.get("type")
        if want is None:
            return []
        return [_type_error(path, value, want)]
    want = schema.get("type")
    if schema.get(INT_OR_STRING) is True:
        if not (isinstance(value, str) or _JSON_TYPES["integer"](value)):
            return [_type_error(path, value, "integer or string")]
    elif want in _JSON_TYPES and not _JSON_TYPES[want](value):
        return [_type_error(path, value, want)]
    problems: list[FieldError] = []
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        problems.append(not_supported(path, value if isinstance(value, str) else _shown(value), [str(e) for e in schema["enum"]]))
    if isinstance(value, int | float) and not isinstance(value, bool):
        problems += _bounds(schema, value, path)
    if isinstance(value, str):
        problems += _string(schema, value, path)
    if isinstance(value, list):
        problems += _array(schema, value, path)
    if isinstance(value, dict):
        problems += _object(schema, value, path)
    problems += _combinators(schema, value, path)
    return problems


def _type_error(path: str, value: Any, want: str) -> FieldError:
    got = json_type(value)
    return FieldError(path, "FieldValueTypeInvalid", f'Invalid value: "{got}": {path} in body must be of type {want}: "{got}"')


def _bounds(schema: Schema, value: float, path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, int | float):
        if schema.get("exclusiveMinimum") is True and value <= low:
            problems.append(invalid(path, value, f"{path} in body should be greater than {low}"))
        elif value < low:
            problems.append(invalid(path, value, f"{path} in body should be greater than or equal to {low}"))
    if isinstance(high, int | float):
        if schema.get("exclusiveMaximum") is True and value >= high:
            problems.append(invalid(path, value, f"{path} in body should be less than {high}"))
        elif value > high:
            problems.append(invalid(path, value, f"{path} in body should be less than or equal to {high}"))
    factor = schema.get("multipleOf")
    if isinstance(factor, int | float) and factor > 0 and not math.isclose(value / factor, round(value / factor)):
        problems.append(invalid(path, value, f"{path} in body should be a multiple of {factor}"))
    return problems


def _string(schema: Schema, value: str, path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        problems.append(invalid(path, value, f"{path} in body should be at least {low} chars long"))
    if isinstance(high, int) and len(value) > high:
        problems.append(FieldError(path, "FieldValueTooLong", f"Too long: may not be more than {high} bytes"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern:
        try:
            compiled = go_regexp(pattern)  # (RE2: linear in the value, whatever the pattern)
        except ValueError:
            compiled = None  # (refused in new definitions; one stored before is not checked)
        if compiled is not None and compiled.search(value) is None:
            problems.append(invalid(path, value, f"{path} in body should match '{pattern}'"))
    return problems


def _array(schema: Schema, value: list[Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and len(value) < low:
        problems.append(invalid(path, len(value), f"{path} in body should have at least {low} items"))
    if isinstance(high, int) and len(value) > high:
        problems.append(FieldError(path, "FieldValueTooMany", f"Too many: {len(value)}: must have at most {high} items"))
    if schema.get("uniqueItems") is True or schema.get("x-kubernetes-list-type") == "set":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                problems.append(FieldError(f"{path}[{i}]", "FieldValueDuplicate", f"Duplicate value: {_shown(item)}"))
            seen.append(item)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            problems += validate_value(items, item, f"{path}[{i}]")
    return problems


def _object(schema: Schema, value: dict[str, Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    prefix = f"{path}." if path else ""
    for name in schema.get("required") or []:
        if name not in value:
            problems.append(required(f"{prefix}{name}"))
    if schema.get(EMBEDDED_RESOURCE) is True:
        for name in ("apiVersion", "kind"):
            if not value.get(name) and schema.get(PRESERVE_UNKNOWN) is not True:
                problems.append(required(f"{prefix}{name}"))
    low, high = schema.get("minProperties"), schema.get("maxProperties")
    if isinstance(low, int) and len(value) < low:
        problems.append(invalid(path, len(value), f"{path} in body should have at least {low} properties"))
    if isinstance(high, int) and len(value) > high:
        problems.append(FieldError(path, "FieldValueTooMany", f"Too many: {len(value)}: must have at most {high} properties"))
    properties = schema.get("properties") or {}
    values = schema.get("additionalProperties")
    for key, sub in value.items():
        if key in properties:
            problems += validate_value(properties[key], sub, f"{prefix}{key}")
        elif isinstance(values, dict):
            problems += validate_value(values, sub, f"{prefix}{key}")
    return problems


def _combinators(schema: Schema, value: Any, path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    for sub in schema.get("allOf") or []:
        problems += validate_value(sub, value, path)
    any_of = schema.get("anyOf")
    if any_of and all(validate_value(sub, value, path) for sub in any_of):
        problems.append(invalid(path, json_type(value), f'{path} in body must be of type {" or ".join(str(s.get("type", "any")) for s in any_of)}'))
    one_of = schema.get("oneOf")
    if one_of and sum(1 for sub in one_of if not validate_value(sub, value, path)) != 1:
        problems.append(invalid(path, json_type(value), f"{path} in body must match exactly one schema in oneOf"))
    negated = schema.get("not")
    if isinstance(negated, dict) and not validate_value(negated, value, path):
        problems.append(invalid(path, json_type(value), f"{path} in body must not validate the schema (not)"))
    return problems


# -- JSON paths of printer columns and the scale subresource -----------------------------------------

_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[\?\(@\.([\w.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def json_path(obj: Any, path: str) -> Any:
    """The value at a simple JSONPath (`.spec.replicas`, `.status.conditions[0].type`,
    `.status.conditions[?(@.type=="Ready")].status`); None when it leads nowhere."""
    current: Any = obj
    position = 0
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            return None
        field, index, key, wanted = match.groups()
        if field is not None:
            current = current.get(field) if isinstance(current, dict) else None
        elif index is not None:
            current = current[int(index)] if isinstance(current, list) and int(index) < len(current) else None
        else:
            found = [item for item in current if isinstance(item, dict) and str(item.get(key)) == wanted] if isinstance(current, list) else []
            current = found[0] if found else None
        if current is None:
            return None
        position = match.end()
    return current


def set_json_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path (`.spec.replicas`), making the objects on the way."""
    parts = [p for p in path.split(".") if p]
    current = obj
    for part in parts[:-1]:
        nxt = current.get(part)
        if not isinstance(nxt, dict):
            nxt = current[part] = {}
        current = nxt
    current[parts[-1]] = value


# -- printer columns ---------------------------------------------------------------------------------


def _cell(column: dict[str, Any], obj: dict[str, Any], now: datetime) -> Any:
    value = json_path(obj, str(column.get("jsonPath", "")))
    kind = column.get("type")
    if value is None:
        return None
    if kind == "date":
        return age(value, now) if isinstance(value, str) else None
    if kind == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, dict | list):
        import orjson

        return orjson.dumps(value).decode()
    return str(value).lower() if isinstance(value, bool) else str(value)


def printer_for(columns: list[dict[str, Any]] | None) -> Printer:
    """The Table of a custom resource: Name and its additionalPrinterColumns (Name and Age without them)."""
    if not columns:
        return Printer((NAME, AGE), lambda obj, now: list(name_age(obj, now)))
    defined = tuple(
        Column(c["name"], c.get("description") or "", c.get("type", "string"), c.get("format", ""), int(c.get("priority", 0)))
        for c in columns
    )

    def cells(obj: dict[str, Any], now: datetime) -> list[Any]:
        return [obj.get("metadata", {}).get("name", ""), *(_cell(c, obj, now) for c in columns)]

    return Printer((NAME, *defined), cells)


# -- the kind ----------------------------------------------------------------------------------------


class CustomObject(TypedObject):
    """Only ObjectMeta is checked by the model; every other field is the schema's (`decode_fields`)."""

    model_config = ConfigDict(extra="ignore")


class CustomResourceStrategy(Strategy):
    """The write path of one served version of a custom resource (subclassed per version, see `kind_for`)."""

    model = CustomObject
    strategic_merge = False
    schema: Schema = {}
    scale_paths: tuple[str, str, str | None] | None = None  # spec replicas, status replicas, label selector

    def decode_fields(self, body: dict[str, Any], obj: dict[str, Any]) -> list[str]:
        unknown: list[str] = []
        rest = {k: v for k, v in body.items() if k not in TOP_LEVEL}
        obj.update(prune(self.schema, rest, "", unknown))
        return unknown

    def prepare_create(self, obj: dict[str, Any]) -> None:
        obj["apiVersion"] = self.storage_api_version or obj["apiVersion"]
        if self.has_status:
            obj.pop("status", None)
        apply_defaults(self.schema, obj)
        obj["metadata"]["generation"] = 1

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        new["apiVersion"] = self.storage_api_version or new["apiVersion"]
        apply_defaults(self.schema, new)
        ignored = ("metadata", "status") if self.has_status else ("metadata",)
        changed = {k: v for k, v in new.items() if k not in ignored} != {k: v for k, v in old.items() if k not in ignored}
        previous = int(old["metadata"].get("generation") or 1)
        new["metadata"]["generation"] = previous + 1 if changed else previous

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        body = {k: v for k, v in obj.items() if k not in TOP_LEVEL}
        schema = {k: v for k, v in self.schema.items() if k != "required"}
        problems = [required(name) for name in self.schema.get("required") or [] if name not in TOP_LEVEL and name not in obj]
        return problems + validate_value(schema, body, "")

    def scale(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        if self.scale_paths is None:
            return None
        spec_path, status_path, selector_path = self.scale_paths
        meta = obj["metadata"]
        replicas = json_path(obj, spec_path)
        status: dict[str, Any] = {"replicas": int(json_path(obj, status_path) or 0)}
        selector = json_path(obj, selector_path) if selector_path else None
        if isinstance(selector, str) and selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
            "spec": {"replicas": replicas} if isinstance(replicas, int) and replicas else {},
            "status": status,
        }

    def set_replicas(self, obj: dict[str, Any], replicas: int) -> None:
        if self.scale_paths is None:
            super().set_replicas(obj, replicas)
        else:
            set_json_path(obj, self.scale_paths[0], replicas)


def version_schema(version: dict[str, Any]) -> Schema:
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    return schema if isinstance(schema, dict) else {"type": "object", PRESERVE_UNKNOWN: True}


def resource_type(crd: dict[str, Any], version: dict[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    subresources = version.get("subresources") or {}
    subs: list[Subresource] = []
    if "status" in subresources:
        subs.append(Subresource("status"))
    if "scale" in subresources:
        subs.append(Subresource("scale", kind="Scale", group="autoscaling", version="v1"))
    return ResourceType(
        spec["group"], version["name"], names["plural"], names["kind"], spec.get("scope") == "Namespaced",
        names.get("singular") or names["kind"].lower(), tuple(names.get("shortNames") or ()),
        tuple(names.get("categories") or ()), ALL_VERBS, tuple(subs),
    )


def kind_for(crd: dict[str, Any], version: dict[str, Any]) -> Kind:
    """The `Kind` that serves one version of a definition."""
    rt = resource_type(crd, version)
    stored = storage_version(crd)
    scale = (version.get("subresources") or {}).get("scale")
    attributes: dict[str, Any] = {
        "resource": rt,
        "schema": version_schema(version),
        "has_status": "status" in (version.get("subresources") or {}),
        "storage_api_version": f"{rt.group}/{stored}" if stored else None,
        "scale_paths": (scale["specReplicasPath"], scale["statusReplicasPath"], scale.get("labelSelectorPath")) if scale else None,
    }
    strategy = type(f"{rt.kind}{rt.version.capitalize()}Strategy", (CustomResourceStrategy,), attributes)
    return Kind(rt, strategy, printer_for(version.get("additionalPrinterColumns")))


def served_kinds(crd: dict[str, Any]) -> list[tuple[Kind, bool]]:
    """Every served version's Kind, most preferred first, with whether it is the storage version."""
    versions = [v for v in crd["spec"].get("versions") or [] if v.get("served")]
    versions.sort(key=lambda v: version_priority(v["name"]))
    return [(kind_for(crd, v), bool(v.get("storage"))) for v in versions]


_KUBE_VERSION = re.compile(r"v(\d+)(?:(alpha|beta)(\d+))?")


def version_priority(name: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order (v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > others alphabetically), as a
    sort key that puts the preferred version first."""
    match = _KUBE_VERSION.fullmatch(name)
    if match is None:
        return (3, 0, 0, name)
    major, stage, minor = int(match.group(1)), match.group(2), int(match.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, name)


# -- OpenAPI -----------------------------------------------------------------------------------------


def openapi_schema(crd: dict[str, Any], version: dict[str, Any]) -> Schema:
    """The definition the API server publishes for a version: its schema with apiVersion, kind and an
    ObjectMeta `metadata`, tagged with its group-version-kind."""
    spec = crd["spec"]
    schema = copy.deepcopy(version_schema(version))
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"}
    properties["kind"] = {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"}
    properties["metadata"] = {"$ref": OBJECT_META_REF, "description": "Standard object's metadata."}
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [{"group": spec["group"], "kind": spec["names"]["kind"], "version": version["name"]}]
    return schema


# Published definitions, built when /openapi first asks for them: a copy of a large schema (HTTPRoute's
# is ~240 kB of JSON) costs milliseconds, which every start would pay for the built-in Gateway API kinds.
_SCHEMAS: dict[tuple[str, str, str], Schema | tuple[dict[str, Any], dict[str, Any]]] = {}


def publish(crd: dict[str, Any]) -> None:
    """Keep the OpenAPI definitions of a definition's served versions (api/openapi.py reads them)."""
    withdraw(crd["spec"]["group"], crd["spec"]["names"]["kind"])
    for version in crd["spec"].get("versions") or []:
        if version.get("served"):
            _SCHEMAS[(crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"])] = (crd, version)


def withdraw(group: str, kind: str) -> None:
    for key in [k for k in _SCHEMAS if k[0] == group and k[2] == kind]:
        del _SCHEMAS[key]


def published_schema(group: str, version: str, kind: str) -> Schema | None:
    key = (group, version, kind)
    found = _SCHEMAS.get(key)
    if isinstance(found, tuple):
        found = _SCHEMAS[key] = openapi_schema(*found)
    return found
