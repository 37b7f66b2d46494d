"""CustomResourceDefinition (apiextensions.k8s.io/v1): the model, the API server's validation of a
definition (its name, group, names, versions with exactly one storage version, scope, structural schemas,
printer columns, subresources) and the columns of `kubectl get crds`.

What a definition makes served is built by emulator/kinds/custom.py; emulator/controllers/crd.py accepts
its names, sets the NamesAccepted and Established conditions, and registers and unregisters the kinds.
Conversion webhooks are refused: every version of a resource here is the same object under another
apiVersion (`conversion: None`).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson

from emulator import schemas, validation
from emulator.errors import FieldError, forbidden, invalid, not_supported, required
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import NAME, Column, Printer, meta_of
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy
from emulator.schemas import PRESERVE_UNKNOWN

CUSTOM_RESOURCE_DEFINITIONS = ResourceType(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
    "customresourcedefinition", ("crd", "crds"), ("api-extensions",), subresources=(Subresource("status"),),
)

# deleting a definition waits for this finalizer: the controller deletes its custom resources first
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
SCOPES = ("Cluster", "Namespaced")
CONVERSION_STRATEGIES = ("None", "Webhook")
SCHEMA_TYPES = ("array", "boolean", "integer", "number", "object", "string")
COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
COLUMN_FORMATS = ("int32", "int64", "float", "double", "byte", "date", "date-time", "password")
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED_RESOURCE = "x-kubernetes-embedded-resource"
WEBHOOK_MESSAGE = "webhook conversion is not supported by the emulator: use strategy None (every version is the same object)"
_KIND_RE = re.compile(r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
_KIND_FMT = "^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
# groups under k8s.io and kubernetes.io need this annotation (a URL or "unapproved, ..."), as in the API server
APPROVAL_ANNOTATION = "api-approved.kubernetes.io"
APPROVAL_CONDITION = "KubernetesAPIApprovalPolicyConformant"
_APPROVAL_POLICY = "see https://github.com/kubernetes/enhancements/pull/1111"
# RE2's error texts in the words of Go's regexp/syntax, which the API server compiles patterns with
_GO_REGEXP_ERRORS = {
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid repetition size": "invalid repeat count",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid named capture group": "invalid named capture",
    "pattern too large - compile failed": "expression too large",
}


class CustomResourceDefinition(TypedObject):
    spec: dict[str, Any] | None = None
    status: dict[str, Any] | None = None


# -- what a definition says --------------------------------------------------------------------------


def storage_version(crd: dict[str, Any]) -> str | None:
    return next((v.get("name") for v in (crd.get("spec") or {}).get("versions") or [] if v.get("storage")), None)


def condition(crd: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (crd.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def established(crd: dict[str, Any]) -> bool:
    found = condition(crd, "Established")
    return found is not None and found.get("status") == "True"


def default_names(names: dict[str, Any]) -> None:
    """SetDefaults_CustomResourceDefinitionSpec: singular is the lower-case kind, listKind <Kind>List."""
    kind = names.get("kind")
    if isinstance(kind, str) and kind:
        if not names.get("singular"):
            names["singular"] = kind.lower()
        if not names.get("listKind"):
            names["listKind"] = f"{kind}List"


def protected_group(group: Any) -> bool:
    """IsProtectedCommunityGroup: k8s.io, kubernetes.io and their subdomains."""
    return isinstance(group, str) and any(group == d or group.endswith(f".{d}") for d in ("k8s.io", "kubernetes.io"))


def approval_state(crd: dict[str, Any]) -> tuple[str, str]:
    """GetAPIApprovalState: (the KubernetesAPIApprovalPolicyConformant reason, its message)."""
    value = (meta_of(crd).get("annotations") or {}).get(APPROVAL_ANNOTATION) or ""
    if not isinstance(value, str) or not value:
        return "MissingAnnotation", f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}", {_APPROVAL_POLICY}'
    if value.startswith("unapproved"):
        return "UnapprovedAnnotation", f'not approved: "{value}"'
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is not None and parts.scheme and parts.netloc and not any(c.isspace() for c in value):
        return "ApprovedAnnotation", f"approved in {value}"
    return "InvalidAnnotation", (
        f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}" with either a URL or a reason starting with '
        f'"unapproved", {_APPROVAL_POLICY}'
    )


@lru_cache(maxsize=512)
def go_regexp(pattern: str) -> Any:
    """`pattern` compiled with RE2: Go's regexp syntax (`\\p{L}`, no backreferences or lookarounds) and
    matching in linear time, so no pattern can stall the server. Raises ValueError with Go's message
    (`error parsing regexp: missing closing ): `(a``) when it is not a valid expression."""
    import re2  # type: ignore[import-untyped]  # (loaded with the first pattern: most servers have none)

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else b""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        code, _, argument = text.partition(": ")
        raise ValueError(f"error parsing regexp: {_GO_REGEXP_ERRORS.get(code, code)}: `{argument}`") from None


def pattern_error(pattern: str) -> str | None:
    try:
        go_regexp(pattern)
    except ValueError as exc:
        return str(exc)
    return None


# -- validation --------------------------------------------------------------------------------------


def _label_errors(path: str, value: Any, lower: bool = False) -> list[FieldError]:
    if not isinstance(value, str):
        return [invalid(path, value, "must be a string")]
    if lower:
        return [invalid(path, value, m) for m in validation.dns1035_label_errors(value)]
    if not _KIND_RE.fullmatch(value):
        return [invalid(path, value, f"may have mixed case, but should otherwise match: {_KIND_FMT}")]
    return []


def validate_names(names: Any, path: str) -> list[FieldError]:
    if not isinstance(names, dict):
        return [required(path)]
    problems: list[FieldError] = []
    for field in ("plural", "kind"):
        if not names.get(field):
            problems.append(required(f"{path}.{field}"))
    if names.get("plural"):
        problems += _label_errors(f"{path}.plural", names["plural"], lower=True)
    if names.get("singular"):
        problems += _label_errors(f"{path}.singular", names["singular"], lower=True)
    if names.get("kind"):
        problems += _label_errors(f"{path}.kind", names["kind"])
    if names.get("listKind"):
        problems += _label_errors(f"{path}.listKind", names["listKind"])
        if names["listKind"] == names.get("kind"):
            problems.append(invalid(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same or parsing become ambiguous"))
    for field in ("shortNames", "categories"):
        values = names.get(field) or []
        if not isinstance(values, list):
            problems.append(invalid(f"{path}.{field}", values, "must be a list of strings"))
            continue
        seen: set[str] = set()
        for i, value in enumerate(values):
            problems += _label_errors(f"{path}.{field}[{i}]", value, lower=True)
            if value in seen:
                problems.append(invalid(f"{path}.{field}", values, f"duplicate {field[:-1]}: {value}"))
            seen.add(value)
    return problems


def validate_schema(schema: Any, path: str, root: bool = True) -> list[FieldError]:
    """The structural schema rules (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/
    custom-resource-definitions/#specifying-a-structural-schema): every field has a type (or is
    int-or-string, or preserves unknown fields), object at the root, metadata restricted to name and
    generateName, properties and additionalProperties not together."""
    if not isinstance(schema, dict):
        return [invalid(path, schema, "must be an object")]
    problems: list[FieldError] = []
    kind = schema.get("type")
    int_or_string = schema.get(INT_OR_STRING) is True
    preserve = schema.get(PRESERVE_UNKNOWN)
    if preserve is not None and preserve is not True:
        problems.append(invalid(f"{path}.{PRESERVE_UNKNOWN}", preserve, "must be true or undefined"))
    if kind is not None and kind not in SCHEMA_TYPES:
        problems.append(not_supported(f"{path}.type", kind, list(SCHEMA_TYPES)))
    if root:
        if kind is None:
            problems.append(FieldError(f"{path}.type", "FieldValueRequired", "Required value: must not be empty at the root"))
        elif kind != "object":
            problems.append(invalid(f"{path}.type", kind, "must be object at the root"))
    if int_or_string and kind is not None:
        problems.append(invalid(f"{path}.type", kind, f"must be empty if {INT_OR_STRING} is true"))
    if schema.get(EMBEDDED_RESOURCE) is True and kind != "object":
        problems.append(invalid(f"{path}.type", kind, f"must be object if {EMBEDDED_RESOURCE} is true"))
    properties = schema.get("properties")
    if properties is not None and not isinstance(properties, dict):
        problems.append(invalid(f"{path}.properties", properties, "must be an object"))
        properties = None
    if properties and "additionalProperties" in schema and schema["additionalProperties"] is not False:
        problems.append(forbidden(f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"))
    for name, sub in (properties or {}).items():
        where = f"{path}.properties[{name}]"
        if root and name == "metadata" and isinstance(sub, dict):
            extra = set(sub.get("properties") or {}) - {"name", "generateName"}
            if extra or set(sub) - {"type", "properties", "description"}:
                problems.append(forbidden(where, "must not specify anything other than name and generateName, but metadata is implicitly specified"))
        problems += _typed(sub, where, "must not be empty for specified object fields")
        problems += validate_schema(sub, where, root=False)
    items = schema.get("items")
    if items is not None:
        if isinstance(items, list):
            problems.append(forbidden(f"{path}.items", "items must be a schema object and not an array"))
        else:
            problems += _typed(items, f"{path}.items", "must not be empty for specified array items")
            problems += validate_schema(items, f"{path}.items", root=False)
    elif kind == "array":
        problems.append(required(f"{path}.items"))
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        problems += _typed(additional, f"{path}.additionalProperties", "must not be empty for specified object fields")
        problems += validate_schema(additional, f"{path}.additionalProperties", root=False)
    required_fields = schema.get("required")
    if required_fields is not None and not (isinstance(required_fields, list) and all(isinstance(r, str) for r in required_fields)):
        problems.append(invalid(f"{path}.required", required_fields, "must be a list of field names"))
    for keyword in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(keyword) or []):
            # (int-or-string is spelt `anyOf: [{type: integer}, {type: string}]` by controller-gen)
            if isinstance(sub, dict) and sub.get("type") is not None and not int_or_string:
                problems.append(forbidden(f"{path}.{keyword}[{i}].type", "must be empty to be structural"))
    return problems + _patterns(schema, path, nested=False)


def _patterns(schema: Any, path: str, nested: bool = True) -> list[FieldError]:
    """A `pattern` that Go's regexp cannot compile, here and under allOf/anyOf/oneOf/not (and, `nested`, under
    their items and properties: the rest of the schema is walked by validate_schema)."""
    if not isinstance(schema, dict):
        return []
    problems: list[FieldError] = []
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern:
        error = pattern_error(pattern)
        if error is not None:
            problems.append(invalid(f"{path}.pattern", pattern, f"must be a valid regular expression, but isn't: {error}"))
    for keyword in ("allOf", "anyOf", "oneOf"):
        subs = schema.get(keyword)
        for i, sub in enumerate(subs if isinstance(subs, list) else []):
            problems += _patterns(sub, f"{path}.{keyword}[{i}]")
    problems += _patterns(schema.get("not"), f"{path}.not")
    if nested:
        problems += _patterns(schema.get("items"), f"{path}.items")
        problems += _patterns(schema.get("additionalProperties"), f"{path}.additionalProperties")
        properties = schema.get("properties")
        for name, sub in (properties.items() if isinstance(properties, dict) else ()):
            problems += _patterns(sub, f"{path}.properties[{name}]")
    return problems


def _typed(schema: Any, path: str, message: str) -> list[FieldError]:
    if not isinstance(schema, dict):
        return []
    if schema.get("type") or schema.get(INT_OR_STRING) is True or schema.get(PRESERVE_UNKNOWN) is True:
        return []
    return [FieldError(f"{path}.type", "FieldValueRequired", f"Required value: {message}")]


def _validate_columns(columns: Any, path: str) -> list[FieldError]:
    if columns is None:
        return []
    if not isinstance(columns, list):
        return [invalid(path, columns, "must be a list")]
    problems: list[FieldError] = []
    for i, column in enumerate(columns):
        where = f"{path}[{i}]"
        if not isinstance(column, dict):
            problems.append(invalid(where, column, "must be an object"))
            continue
        for field in ("name", "type", "jsonPath"):
            if not column.get(field):
                problems.append(required(f"{where}.{field}"))
        if column.get("type") and column["type"] not in COLUMN_TYPES:
            problems.append(not_supported(f"{where}.type", column["type"], list(COLUMN_TYPES)))
        if column.get("format") and column["format"] not in COLUMN_FORMATS:
            problems.append(not_supported(f"{where}.format", column["format"], list(COLUMN_FORMATS)))
        if column.get("jsonPath") and not str(column["jsonPath"]).startswith("."):
            problems.append(invalid(f"{where}.jsonPath", column["jsonPath"], "must be a simple json path starting with ."))
        priority = column.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
            problems.append(invalid(f"{where}.priority", priority, "must be a non-negative integer"))
    return problems


def _validate_subresources(subresources: Any, path: str) -> list[FieldError]:
    if not isinstance(subresources, dict):
        return [] if subresources is None else [invalid(path, subresources, "must be an object")]
    scale = subresources.get("scale")
    if scale is None:
        return []
    if not isinstance(scale, dict):
        return [invalid(f"{path}.scale", scale, "must be an object")]
    problems: list[FieldError] = []
    for field, under in (("specReplicasPath", (".spec.",)), ("statusReplicasPath", (".status.",)),
                         ("labelSelectorPath", (".spec.", ".status."))):  # fmt: skip
        value = scale.get(field)
        if value is None:
            if field != "labelSelectorPath":
                problems.append(required(f"{path}.scale.{field}"))
            continue
        if not isinstance(value, str) or not value.startswith(under):
            where = " or ".join(u.rstrip(".") for u in under)
            problems.append(invalid(f"{path}.scale.{field}", value, f"should be a json path under {where}"))
    return problems


def validate_crd(crd: dict[str, Any]) -> list[FieldError]:
    """ValidateCustomResourceDefinition, the parts that decide what is served. (Names a built-in resource
    of the group already has are not refused here but by the controller: NamesAccepted False.)"""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    problems: list[FieldError] = []
    group = spec.get("group")
    names: dict[str, Any] = spec["names"] if isinstance(spec.get("names"), dict) else {}
    plural = names.get("plural")
    name = meta_of(crd).get("name", "")
    if plural and group and name != f"{plural}.{group}":
        problems.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        problems.append(required("spec.group"))
    elif not isinstance(group, str):
        problems.append(invalid("spec.group", group, "must be a string"))
    else:
        problems += [invalid("spec.group", group, m) for m in validation.dns1123_subdomain_errors(group)]
        if "." not in group:
            problems.append(invalid("spec.group", group, "should be a domain with at least one dot"))
        problems += validate_approval(crd)
    scope = spec.get("scope")
    if not scope:
        problems.append(required("spec.scope"))
    elif scope not in SCOPES:
        problems.append(not_supported("spec.scope", scope, list(SCOPES)))
    problems += validate_names(spec.get("names"), "spec.names")
    problems += _validate_versions_once(spec)
    conversion = spec.get("conversion") or {}
    strategy = conversion.get("strategy", "None") if isinstance(conversion, dict) else conversion
    if strategy not in CONVERSION_STRATEGIES:
        problems.append(not_supported("spec.conversion.strategy", strategy, list(CONVERSION_STRATEGIES)))
    elif strategy == "Webhook":
        problems.append(invalid("spec.conversion.strategy", strategy, WEBHOOK_MESSAGE))
    if spec.get("preserveUnknownFields") is True:
        problems.append(invalid("spec.preserveUnknownFields", True, "must be false in order to use defaults in the schema"))
    return problems


def validate_approval(crd: dict[str, Any]) -> list[FieldError]:
    """validateAPIApproval: a definition in a protected group needs the approval annotation, unless its
    approval state is the one already recorded (the KubernetesAPIApprovalPolicyConformant condition that
    the controller keeps: an update that leaves the annotation alone is never refused; a create has none)."""
    if not protected_group((crd.get("spec") or {}).get("group")):
        return []
    reason, message = approval_state(crd)
    recorded = condition(crd, APPROVAL_CONDITION)
    if reason in ("ApprovedAnnotation", "UnapprovedAnnotation") or (recorded is not None and recorded.get("reason") == reason):
        return []
    path = f"metadata.annotations[{APPROVAL_ANNOTATION}]"
    if reason == "MissingAnnotation":
        return [FieldError(path, "FieldValueRequired", f"Required value: {message}")]
    return [invalid(path, (meta_of(crd).get("annotations") or {}).get(APPROVAL_ANNOTATION), message)]


_VERSIONS_CHECKED: dict[bytes, list[FieldError]] = {}  # sha256 of a spec's JSON -> what _validate_versions found
VERSIONS_CHECKED_MAX = 64


def _validate_versions_once(spec: dict[str, Any]) -> list[FieldError]:
    """`_validate_versions`, remembered by the spec's JSON: a definition's status writes (each carrying the
    spec it was created with) do not walk a schema of thousands of properties again (~40 ms for a 480 KB
    CRD, on the event loop)."""
    key = hashlib.sha256(orjson.dumps(spec)).digest()
    found = _VERSIONS_CHECKED.get(key)
    if found is None:
        found = _validate_versions(spec)
        if len(_VERSIONS_CHECKED) >= VERSIONS_CHECKED_MAX:
            _VERSIONS_CHECKED.clear()
        _VERSIONS_CHECKED[key] = found
    return list(found)


def _validate_versions(spec: dict[str, Any]) -> list[FieldError]:
    versions = spec.get("versions")
    if not versions:
        return [required("spec.versions")]
    if not isinstance(versions, list):
        return [invalid("spec.versions", versions, "must be a list")]
    problems: list[FieldError] = []
    seen: set[str] = set()
    for i, version in enumerate(versions):
        path = f"spec.versions[{i}]"
        if not isinstance(version, dict):
            problems.append(invalid(path, version, "must be an object"))
            continue
        name = version.get("name")
        if not name:
            problems.append(required(f"{path}.name"))
        else:
            problems += _label_errors(f"{path}.name", name, lower=True)
            if name in seen:
                problems.append(invalid("spec.versions", [v.get("name") for v in versions if isinstance(v, dict)], "must contain unique version names"))
            seen.add(name)
        for flag in ("served", "storage"):
            if not isinstance(version.get(flag, False), bool):
                problems.append(invalid(f"{path}.{flag}", version.get(flag), "must be true or false"))
        schema = (version.get("schema") or {}).get("openAPIV3Schema") if isinstance(version.get("schema"), dict) else None
        if schema is None:
            problems.append(FieldError(f"{path}.schema.openAPIV3Schema", "FieldValueRequired", "Required value: schemas are required"))
        else:
            problems += validate_schema(schema, f"{path}.schema.openAPIV3Schema")
        problems += _validate_columns(version.get("additionalPrinterColumns"), f"{path}.additionalPrinterColumns")
        problems += _validate_subresources(version.get("subresources"), f"{path}.subresources")
    dicts = [v for v in versions if isinstance(v, dict)]
    if sum(1 for v in dicts if v.get("storage") is True) != 1:
        problems.append(invalid("spec.versions", [v.get("name") for v in dicts], "must have exactly one version marked as storage version"))
    if not any(v.get("served") is True for v in dicts):
        problems.append(invalid("spec.versions", [v.get("name") for v in dicts], "must have at least one version marked as served"))
    return problems


class CustomResourceDefinitionStrategy(Strategy):
    resource = CUSTOM_RESOURCE_DEFINITIONS
    model = CustomResourceDefinition
    has_status = True
    # deleted in two steps: marked (with the cleanup finalizer), then removed by the controller once its
    # custom resources are gone
    deletes_gracefully = True

    def decode_fields(self, body: dict[str, Any], obj: dict[str, Any]) -> list[str]:
        # the model keeps spec and status as they come: their unknown fields are found with 1.32's schema
        found = schemas.unknown_fields(CUSTOM_RESOURCE_DEFINITIONS.api_version, CUSTOM_RESOURCE_DEFINITIONS.kind, body)
        return [path for path in found if path.split(".", 1)[0] in ("spec", "status")]

    def prepare_create(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            _default_spec(spec)
        stored = storage_version(obj)
        obj["status"] = {"acceptedNames": {"kind": "", "plural": ""}, "storedVersions": [stored] if stored else []}
        obj["metadata"]["generation"] = 1

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        spec = new.setdefault("spec", {})
        if isinstance(spec, dict):
            _default_spec(spec)
        status = new.setdefault("status", {})
        stored = storage_version(new)
        if isinstance(status, dict) and stored:
            versions = list(status.get("storedVersions") or [])
            if stored not in versions:
                status["storedVersions"] = [*versions, stored]
        previous = int(old["metadata"].get("generation") or 1)
        new["metadata"]["generation"] = previous + 1 if new.get("spec") != old.get("spec") else previous

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        return validate_crd(obj)

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        problems: list[FieldError] = []
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if old_spec.get("scope") and new_spec.get("scope") != old_spec.get("scope"):
            problems.append(invalid("spec.scope", new_spec.get("scope"), "field is immutable"))
        return problems

    def prepare_delete(self, obj: dict[str, Any]) -> None:
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CLEANUP_FINALIZER)


def _default_spec(spec: dict[str, Any]) -> None:
    names = spec.get("names")
    if isinstance(names, dict):
        default_names(names)
    conversion = spec.get("conversion")
    if conversion is None:
        spec["conversion"] = {"strategy": "None"}
    elif isinstance(conversion, dict) and not conversion.get("strategy"):
        conversion["strategy"] = "None"


def _crd_cells(crd: dict[str, Any], now: datetime) -> list[Any]:
    meta = meta_of(crd)
    return [meta.get("name", ""), meta.get("creationTimestamp", "")]


PRINTER = Printer(
    (
        NAME,
        Column("Created At", "CreationTimestamp is a timestamp representing the server time when this object was created.", format="date"),
    ),
    _crd_cells,
)

KIND = Kind(CUSTOM_RESOURCE_DEFINITIONS, CustomResourceDefinitionStrategy, PRINTER)
