"""The Kubernetes 1.32 API schemas: every built-in type's OpenAPI definition, loaded on first use, indexed by
group-version-kind, and the unknown-field check they allow.

The definitions are not written here: the `kubernetes-validate` package ships those of 1.32, generated
from the API server's own OpenAPI, as one JSON Schema file. That generator changed their spelling (a
nullable `type: [T, "null"]`, `$ref`s into `#/$defs/`, an `enum` naming the apiVersion and kind, `oneOf`
for IntOrString and Quantity); `_swagger` spells them back as the API server publishes them in
`/openapi/v2` (`#/definitions/` references, `type: T`, IntOrString a string of format `int-or-string`).
Everything else is kept as shipped: descriptions, `required`, `x-kubernetes-group-version-kind`, the
patch strategies and merge keys, list types and map types.

Loading takes a moment (about 1.3 MB of JSON, ~10 ms), so nothing happens at import: the first caller (the first
OpenAPI request, or a validation) pays for it, once. The result is never modified afterwards.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

Schema = dict[str, Any]
GVK = tuple[str, str, str]  # (group, version, kind), core group ""

SOURCE_PACKAGE = "kubernetes_validate"
SOURCE_PATH = ("kubernetes-json-schema", "v1.32.0-local", "_definitions.json")
REF_PREFIX = "#/definitions/"
GVK_EXTENSION = "x-kubernetes-group-version-kind"
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"

_SOURCE_REF_PREFIX = "#/$defs/"
# Keywords whose value is a schema, a list of schemas, or a map of field name -> schema.
_SUBSCHEMA = ("items", "additionalProperties", "not")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


@dataclass(frozen=True, slots=True)
class Definitions:
    schemas: Mapping[str, Schema]  # definition name (io.k8s.api.core.v1.Pod) -> swagger schema
    by_gvk: Mapping[GVK, str]  # from each definition's x-kubernetes-group-version-kind
    # the definitions that are one of several JSON types (IntOrString, Quantity): strings in swagger,
    # `oneOf` these types in OpenAPI v3
    one_of: Mapping[str, tuple[str, ...]]


_lock = threading.Lock()
_loaded: Definitions | None = None


def loaded() -> bool:
    """Whether the definitions are in memory already (tests check that start-up does not load them)."""
    return _loaded is not None


def load() -> Definitions:
    """The 1.32 definitions, read and converted on the first call (thread-safe: the API loads them off
    the event loop)."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _read()
    return _loaded


def _source() -> Path:
    """The shipped file, found without importing the package: importing it loads jsonschema and its
    friends (~70 ms) for nothing, as only the data is read here."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    places = list(spec.submodule_search_locations or []) if spec is not None else []
    if not places:
        raise RuntimeError(f"{SOURCE_PACKAGE} is not installed: it ships the Kubernetes 1.32 schemas (pip install {SOURCE_PACKAGE.replace('_', '-')})")
    return Path(places[0]).joinpath(*SOURCE_PATH)


def _read() -> Definitions:
    source = _source()
    if not source.is_file():  # each release of the package ships a window of Kubernetes versions
        raise RuntimeError(f"{SOURCE_PACKAGE} no longer ships {'/'.join(SOURCE_PATH)}: pin an older release")
    raw = orjson.loads(source.read_bytes())["$defs"]
    schemas = {name: _swagger(schema, top=True) for name, schema in raw.items()}
    by_gvk: dict[GVK, str] = {}
    for name, schema in schemas.items():
        for gvk in schema.get(GVK_EXTENSION, ()):
            by_gvk.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    one_of = {
        name: tuple(t for alt in schema["oneOf"] for t in _types(alt))
        for name, schema in raw.items()
        if _primitive_alternatives(schema.get("oneOf"))
    }
    return Definitions(schemas, by_gvk, one_of)


def _types(schema: Schema) -> list[str]:
    value = schema.get("type")
    return [t for t in ([value] if isinstance(value, str) else value or []) if t != "null"]


def _primitive_alternatives(alternatives: Any) -> bool:
    return bool(alternatives) and all(isinstance(alt, dict) and set(alt) == {"type"} for alt in alternatives)


def _swagger(node: Any, top: bool = False) -> Any:
    """One JSON Schema node of the shipped file, spelt as the API server's swagger definition."""
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = REF_PREFIX + value.removeprefix(_SOURCE_REF_PREFIX)
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            out[key] = kinds[0] if len(kinds) == 1 else kinds
        elif key == "properties":
            out[key] = {field: _swagger(sub) for field, sub in value.items()}
            if top:  # the generator pinned apiVersion and kind with an enum; the API server does not
                for field in ("apiVersion", "kind"):
                    if isinstance(out[key].get(field), dict):
                        out[key][field].pop("enum", None)
        elif key in _SUBSCHEMA:
            out[key] = _swagger(value)
        elif key in _SUBSCHEMA_LISTS:
            out[key] = [_swagger(sub) for sub in value]
        else:
            out[key] = value
    alternatives = out.get("oneOf") or []
    if _primitive_alternatives(alternatives):
        # IntOrString ([string, integer]) and Quantity ([string, number]): strings in the API server's swagger
        types = {alt["type"] for alt in alternatives}
        del out["oneOf"]
        out["type"] = "string"
        if "integer" in types:
            out["format"] = "int-or-string"
    return out


# --- lookups -------------------------------------------------------------------------------------


def definitions() -> Mapping[str, Schema]:
    return load().schemas


def one_of(name: str) -> tuple[str, ...]:
    """The JSON types a definition may be, when it is one of several (IntOrString, Quantity); else ()."""
    return load().one_of.get(name, ())


def definition_name(group: str, version: str, kind: str) -> str | None:
    """The 1.32 definition of a group-version-kind (`io.k8s.api.apps.v1.Deployment`), None if 1.32 has none."""
    return load().by_gvk.get((group, version, kind))


def conventional_name(group: str, version: str, kind: str) -> str:
    """The name the API server gives a kind's definition: io.k8s.api.<package>.<version>.<Kind> for the
    built-in groups (package: the group's first label, "core" for the core group), the reversed group
    for others, as for a custom resource (com.example.v1.Widget)."""
    if "." in group and not group.endswith(".k8s.io"):
        return f"{'.'.join(reversed(group.split('.')))}.{version}.{kind}"
    package = group.split(".")[0] if group else "core"
    return f"io.k8s.api.{package}.{version}.{kind}"


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def ref(name: str) -> Schema:
    return {"$ref": REF_PREFIX + name}


def ref_name(reference: str) -> str:
    return reference.removeprefix(REF_PREFIX)


def references(schema: Any) -> Iterator[str]:
    """The definition names one schema refers to directly (not through the definitions it names)."""
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("$ref"), str):
        yield ref_name(schema["$ref"])
    for field in (schema.get("properties") or {}).values():
        yield from references(field)
    for key in _SUBSCHEMA:
        yield from references(schema.get(key))
    for key in _SUBSCHEMA_LISTS:
        for sub in schema.get(key) or ():
            yield from references(sub)


def closure(names: Iterable[str], extra: Mapping[str, Schema] | None = None) -> dict[str, Schema]:
    """The named definitions and every definition they refer to, transitively: what a document that
    names them must carry. `extra` holds definitions that are not 1.32's (permissive kinds); a name found
    in neither is left out (tests check that every reference resolves)."""
    known = definitions()
    extra = extra or {}
    out: dict[str, Schema] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in out:
            continue
        schema = extra.get(name) or known.get(name)
        if schema is None:
            continue
        out[name] = schema
        pending.extend(references(schema))
    return dict(sorted(out.items()))


# --- kinds that 1.32 does not define -------------------------------------------------------------


def gvk_extension(group: str, version: str, kind: str) -> list[dict[str, str]]:
    return [{"group": group, "kind": kind, "version": version}]


def _type_meta_properties() -> Schema:
    return {
        "apiVersion": {
            "description": "APIVersion defines the versioned schema of this representation of an object.",
            "type": "string",
        },
        "kind": {
            "description": "Kind is a string value representing the REST resource this object represents.",
            "type": "string",
        },
    }


def permissive_kind(group: str, version: str, kind: str) -> Schema:
    """The schema of a served kind that 1.32 does not define: its metadata is a real ObjectMeta, any other
    field is accepted (x-kubernetes-preserve-unknown-fields), like a custom resource without a schema."""
    open_object = {"type": "object", PRESERVE_UNKNOWN: True}
    return {
        "description": f"{kind} ({f'{group}/' if group else ''}{version}): fields are not checked.",
        "type": "object",
        "properties": {
            **_type_meta_properties(),
            "metadata": {**ref(f"{META}.ObjectMeta"), "description": "Standard object's metadata."},
            "spec": dict(open_object),
            "status": dict(open_object),
        },
        PRESERVE_UNKNOWN: True,
        GVK_EXTENSION: gvk_extension(group, version, kind),
    }


def permissive_list(group: str, version: str, kind: str, item_name: str) -> Schema:
    """`<Kind>List` of a kind that 1.32 does not define."""
    return {
        "description": f"{kind}List is a list of {kind} objects.",
        "type": "object",
        "required": ["items"],
        "properties": {
            **_type_meta_properties(),
            "items": {"description": f"List of {kind} objects.", "type": "array", "items": ref(item_name)},
            "metadata": {**ref(f"{META}.ListMeta"), "description": "Standard list metadata."},
        },
        GVK_EXTENSION: gvk_extension(group, version, f"{kind}List"),
    }


# --- unknown fields ------------------------------------------------------------------------------


def unknown_fields(api_version: str, kind: str, obj: Mapping[str, Any]) -> list[str]:
    """The paths of the fields of `obj` that the 1.32 schema of (apiVersion, kind) does not know, spelt as
    the API server's strict decoding error does: `spec.containers[0].imagePullPolicyy`, `metadata.labelz`.

    Maps (`additionalProperties`: labels, resource limits, ConfigMap data) take any key; a subtree marked
    `x-kubernetes-preserve-unknown-fields`, or an object with neither properties nor a value schema
    (RawExtension, FieldsV1), takes anything. Only field names are checked, not types or values. A kind
    that 1.32 does not define knows every field: the answer is []."""
    name = definition_name(*split_api_version(api_version), kind)
    return [] if name is None else unknown_fields_in(definitions()[name], obj)


def unknown_fields_in(schema: Schema, value: Any) -> list[str]:
    """`unknown_fields` against any swagger schema (its `$ref`s name 1.32 definitions): a custom kind's own."""
    found: list[str] = []
    _unknown(schema, value, "", found)
    return found


def _resolve(schema: Schema) -> Schema:
    known = definitions()
    seen = 0
    while "$ref" in schema and seen < 32:  # $ref chains are short; the bound only guards a broken file
        target = known.get(ref_name(schema["$ref"]))
        if target is None:
            return {}
        schema, seen = target, seen + 1
    return schema


def _unknown(schema: Schema, value: Any, path: str, found: list[str]) -> None:
    schema = _resolve(schema)
    if schema.get(PRESERVE_UNKNOWN):
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        values = schema.get("additionalProperties")
        for key, sub in value.items():
            where = f"{path}.{key}" if path else str(key)
            if properties is not None and key in properties:
                _unknown(properties[key], sub, where, found)
            elif isinstance(values, dict):
                _unknown(values, sub, where, found)
            elif values is False or (properties is not None and values is None):
                found.append(where)
            # else an open object: neither properties nor a value schema, or additionalProperties: true
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _unknown(schema["items"], item, f"{path}[{index}]", found)


# -- the fields a model leaves open, checked as the API server's decoder would -------------------------


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A JSON value the 1.32 type does not take: what encoding/json's UnmarshalTypeError names."""

    value: Any
    struct: str  # the Go struct holding the field (`NodeAffinity`)
    fields: tuple[str, ...]  # JSON field names from the object's root (`spec`, `affinity`, ...)
    go_type: str  # `v1.NodeSelector`, `[]v1.Toleration`, `string`, `int32`


# Where a model keeps fields as they come (`Any`): a trie of JSON field names, ANY at an open field,
# ITEMS for the items of a list of models (emulator/models/base.py `open_fields` builds it).
ANY = "*"
ITEMS = "[]"
Trie = Mapping[str, Any]  # field -> Trie, or ANY


def check_open_fields(api_version: str, kind: str, obj: Mapping[str, Any], trie: Trie) -> tuple[list[str], Mismatch | None]:
    """Check the parts of `obj` its model left open (`trie`) against the 1.32 schema of (apiVersion,
    kind): the paths of their unknown fields (as `unknown_fields` spells them), which are removed from
    `obj` (Go's decoder drops them: `fieldValidation` only decides whether that is an error, a warning or
    nothing), and the first value, in document order, whose JSON type the field's Go type cannot take.
    A kind 1.32 does not define: ([], None)."""
    if not trie or not _has_open(trie, obj):
        return [], None  # (nothing to check: the definitions are not even loaded for it)
    name = definition_name(*split_api_version(api_version), kind)
    if name is None:
        return [], None
    unknown: list[str] = []
    found: list[Mismatch] = []
    _walk_open(trie, definitions()[name], obj, "", (), _short(name), unknown, found)
    return unknown, (found[0] if found else None)


def _has_open(trie: Any, value: Any) -> bool:
    """Whether `value` has anything at an open place of `trie` (most objects have nothing there: every
    write asks, so plain loops, and the keys both have intersected in C)."""
    if value is None:
        return False
    if trie == ANY:
        return True
    if ITEMS in trie:
        if isinstance(value, list):
            inner = trie[ITEMS]
            for item in value:
                if _has_open(inner, item):
                    return True
        return False
    if isinstance(value, dict):
        for key in value.keys() & trie.keys():
            if _has_open(trie[key], value[key]):
                return True
    return False


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _resolve_named(schema: Schema) -> tuple[Schema, str | None]:
    known, name, seen = definitions(), None, 0
    while "$ref" in schema and seen < 32:
        name = ref_name(schema["$ref"])
        target = known.get(name)
        if target is None:
            return {}, None
        schema, seen = target, seen + 1
    return schema, name


def _walk_open(trie: Any, schema: Schema, value: Any, path: str, fields: tuple[str, ...], struct: str,
               unknown: list[str], found: list[Mismatch]) -> None:
    if value is None or found:
        return
    if trie == ANY:
        _check(schema, value, path, fields, struct, unknown, found)
        return
    schema, name = _resolve_named(schema)
    if ITEMS in trie:
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                _walk_open(trie[ITEMS], schema["items"], item, f"{path}[{index}]", fields, struct, unknown, found)
        return
    properties = schema.get("properties") or {}
    if not isinstance(value, dict):
        return  # (the model decoded this part: its type is right)
    holder = _short(name) if name else struct
    for key, sub in value.items():
        if key in trie and key in properties:
            _walk_open(trie[key], properties[key], sub, f"{path}.{key}" if path else key, (*fields, key), holder, unknown, found)


def _check(schema: Schema, value: Any, path: str, fields: tuple[str, ...], struct: str,
           unknown: list[str], found: list[Mismatch]) -> None:
    """`value` against a swagger schema: unknown fields into `unknown`, the first wrong JSON type into `found`."""
    if value is None or found:
        return  # JSON null decodes to Go's zero value
    declared = schema
    schema, name = _resolve_named(schema)
    if name is not None and name in load().one_of:
        allowed = load().one_of[name]
        if not _json_type_in(value, allowed):
            found.append(Mismatch(value, struct, fields, go_type(declared)))
        return
    if schema.get(PRESERVE_UNKNOWN):
        return
    kind = schema.get("type") or ("object" if "properties" in schema or "additionalProperties" in schema else None)
    if kind == "object" and "properties" not in schema and "additionalProperties" not in schema:
        return  # an open object (RawExtension, FieldsV1): any JSON at all, kept as it comes
    if kind == "object":
        if not isinstance(value, dict):
            found.append(Mismatch(value, struct, fields, go_type(declared)))
            return
        properties, values = schema.get("properties"), schema.get("additionalProperties")
        holder = _short(name) if name else struct
        dropped = []
        for key, sub in value.items():
            where = f"{path}.{key}" if path else str(key)
            if properties is not None and key in properties:
                _check(properties[key], sub, where, (*fields, key), holder, unknown, found)
            elif isinstance(values, dict):
                _check(values, sub, where, fields, holder, unknown, found)
            elif values is False or (properties is not None and values is None):
                unknown.append(where)
                dropped.append(key)
        for key in dropped:
            del value[key]
    elif kind == "array":
        if not isinstance(value, list):
            found.append(Mismatch(value, struct, fields, go_type(declared)))
            return
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                _check(schema["items"], item, f"{path}[{index}]", fields, struct, unknown, found)
    elif kind is not None and not _json_type_in(value, (kind,), schema.get("format")):
        found.append(Mismatch(value, struct, fields, go_type(declared)))


def _json_type_in(value: Any, types: Iterable[str], fmt: str | None = None) -> bool:
    for kind in types:
        if kind == "string" and (isinstance(value, str) or (fmt == "int-or-string" and isinstance(value, int) and not isinstance(value, bool))):
            return True
        if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if kind == "boolean" and isinstance(value, bool):
            return True
        if kind == "object" and isinstance(value, dict):
            return True
        if kind == "array" and isinstance(value, list):
            return True
    return False


def go_type(schema: Schema) -> str:
    """How Go names the type a swagger schema stands for (`v1.NodeSelector`, `[]v1.Toleration`,
    `map[string]string`, `int32`): the package's last element and the type for a definition."""
    if "$ref" in schema:
        parts = ref_name(schema["$ref"]).split(".")
        return f"{parts[-2]}.{parts[-1]}" if len(parts) > 1 else parts[-1]
    kind = schema.get("type")
    if kind == "array":
        return "[]" + go_type(schema.get("items") or {})
    if kind == "object" or (kind is None and "additionalProperties" in schema):
        values = schema.get("additionalProperties")
        return "map[string]" + go_type(values) if isinstance(values, dict) else "map[string]interface {}"
    if kind == "integer":
        return str(schema.get("format") or "int64")
    return {"boolean": "bool", "number": "float64", "string": "string"}.get(str(kind), "interface {}")
