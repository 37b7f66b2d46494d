"""OpenAPI documents with the Kubernetes 1.32 field schemas: `/openapi/v3` (the root and one document per
group-version) and `/openapi/v2` (JSON, or the gnostic protobuf that kubectl asks for).

What kubectl 1.32 does with them (KUBECTL.md §4):
- `apply` (default `--validate=strict`) looks in the v3 GV document for a PATCH operation of the object's
  GVK that takes `fieldValidation`; if there is one it sends fieldValidation=Strict and the server checks
  the fields. Otherwise (a `kind: List` manifest; a kind without PATCH, such as TokenReview) kubectl
  validates the object itself against the v2 document, which it reads only as protobuf (a JSON answer
  fails to parse, a 404 or 406 fails the command).
- client-side `apply` computes its strategic merge patch from the v3 schemas' merge keys when the PATCH
  operation accepts application/strategic-merge-patch+json (advertised for kinds with a 1.32 schema).
- `explain` reads the v3 document: the schema whose x-kubernetes-group-version-kind matches, then the
  properties along the field path.

Paths and operations are derived from KINDS; the schemas are 1.32's (emulator/schemas.py), and a served
kind that 1.32 does not define gets a permissive one. Operations are described once (`Operation`) and
rendered for v3 and v2; the v2 protobuf is encoded from the v2 JSON document, so they say the same.
Every document is built and encoded once, on the first OpenAPI request (`prepare`, which api/app.py
runs off the event loop); start-up loads no schema.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from emulator import schemas
from emulator.kinds import RESOURCE_TYPES, ResourceType, Subresource, custom, generation
from emulator.registry.registry import PATCH_TYPES, STRATEGIC_MERGE_PATCH
from emulator.schemas import META, PRESERVE_UNKNOWN, Schema

from .discovery import KUBERNETES_VERSION
from .http import JSON

# The protobuf v2 document's media type. kubectl asks for it with an "@" in Accept (the old spelling)
# but cannot parse that in a Content-Type (Go's mime parser refuses "@"): the API server answers with
# the dotted spelling, so does this.
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_V2_PROTOBUF_TYPES = (V2_PROTOBUF, "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
# A PATCH of a kind without a 1.32 schema does not offer strategic merge patch (as for a custom
# resource): kubectl would compute it from a schema that has no merge keys.
PATCH_TYPES_WITHOUT_SMP = tuple(t for t in PATCH_TYPES if t != STRATEGIC_MERGE_PATCH)
_V3_REF = "#/components/schemas/"
# what a swagger 2.0 schema carries in the v2 documents (the protobuf encoder below knows these)
_V2_KEYWORDS = frozenset({"$ref", "format", "title", "description", "default", "required", "enum", "type", "readOnly"})
_RESPONSE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}


def gv_path(group: str, version: str) -> str:
    """ "api/v1" for the core group, "apis/<group>/<version>" otherwise: the key under /openapi/v3."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(group: str, version: str, kind: str) -> str:
    """The definition name of a kind: 1.32's (io.k8s.api.core.v1.Pod), or the API server's convention for
    a kind that 1.32 does not define."""
    return schemas.definition_name(group, version, kind) or schemas.conventional_name(group, version, kind)


# --- the operations, described once --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    type: str = "string"


@dataclass(frozen=True, slots=True)
class Operation:
    method: str  # get, put, post, patch, delete
    operation_id: str
    description: str
    action: str  # x-kubernetes-action
    gvk: tuple[str, str, str]
    response: str  # definition name of the answer
    codes: tuple[str, ...]
    query: tuple[Param, ...] = ()
    body: str | None = None  # definition name of the request body
    consumes: tuple[str, ...] = (JSON,)


@dataclass(frozen=True, slots=True)
class PathItem:
    path: str
    operations: tuple[Operation, ...]
    params: tuple[Param, ...] = ()  # path parameters


DRY_RUN = Param("dryRun", "When present, indicates that modifications should not be persisted. Valid value: All.")
FIELD_MANAGER = Param("fieldManager", "A name associated with the actor or entity that is making these changes.")
FIELD_VALIDATION = Param(
    "fieldValidation",
    "How the server treats unknown and duplicate fields in the request body: Ignore, Warn (default) or Strict.",
)
FORCE = Param("force", 'Force is going to "force" Apply requests; it must be unset for non-apply patch requests.', "boolean")
WRITE_PARAMS = (DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION)
LIST_PARAMS = tuple(
    Param(n, d)
    for n, d in (
        ("labelSelector", "A selector to restrict the list of returned objects by their labels."),
        ("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
        ("limit", "Maximum number of responses to return for a list call."),
        ("continue", "Continue token from a previous paged list call."),
        ("resourceVersion", "Which resource versions the request may be served from."),
        ("timeoutSeconds", "Timeout for the list/watch call."),
        ("watch", "Watch for changes to the described resources."),
    )
)
NAME = Param("name", "name of the object")
NAMESPACE = Param("namespace", "object name and auth scope, such as for teams and projects")


def _operation_prefix(group: str, version: str) -> str:
    """ "CoreV1", "NetworkingV1", "DiscoveryV1": the Go client's operationId infix."""
    package = group.split(".")[0] if group else "core"
    return f"{package[:1].upper()}{package[1:]}{version[:1].upper()}{version[1:]}"


class _Definitions:
    """The definition names a set of paths uses, and the permissive schemas of kinds 1.32 does not define."""

    def __init__(self) -> None:
        self.permissive: dict[str, Schema] = {}

    def kind(self, group: str, version: str, kind: str) -> str:
        name = schemas.definition_name(group, version, kind)
        if name is None:
            name = schemas.conventional_name(group, version, kind)
            # a custom resource's own schema (its definition's), else one that takes any field
            self.permissive[name] = custom.published_schema(group, version, kind) or schemas.permissive_kind(group, version, kind)
        return name

    def list_of(self, r: ResourceType, item: str) -> str:
        name = schemas.definition_name(r.group, r.version, r.list_kind)
        if name is None:
            name = schemas.conventional_name(r.group, r.version, r.list_kind)
            self.permissive[name] = schemas.permissive_list(r.group, r.version, r.kind, item)
        return name

    def patch_types(self, name: str) -> tuple[str, ...]:
        return PATCH_TYPES_WITHOUT_SMP if name in self.permissive else PATCH_TYPES


def _create(gvk: tuple[str, str, str], op_id: str, obj: str, what: str) -> Operation:
    """POST of a new object: on a collection, or on a subresource such as serviceaccounts/token."""
    return Operation("post", f"create{op_id}", f"create {what}", "post", gvk, obj, ("200", "201", "202"),
                     WRITE_PARAMS, body=obj)  # fmt: skip


def _item_ops(r: ResourceType, op_id: str, names: _Definitions, sub: Subresource | None = None) -> list[Operation]:
    """GET/PUT/PATCH/DELETE on one object (or one subresource), limited to the verbs the kind grants."""
    group, version, kind = (
        (sub.group or "", sub.version or r.version, sub.kind) if sub and sub.kind else (r.group, r.version, r.kind)
    )
    gvk = (group, version, kind)
    obj = names.kind(group, version, kind)
    what = f"the specified {r.kind}" if sub is None else f"{sub.name} of the specified {r.kind}"
    verbs = set(sub.verbs if sub else r.verbs)
    ops: list[Operation] = []
    if "get" in verbs:
        ops.append(Operation("get", f"read{op_id}", f"read {what}", "get", gvk, obj, ("200",)))
    if "update" in verbs:
        ops.append(Operation("put", f"replace{op_id}", f"replace {what}", "put", gvk, obj, ("200", "201"),
                             WRITE_PARAMS, body=obj))  # fmt: skip
    if "patch" in verbs:
        ops.append(Operation("patch", f"patch{op_id}", f"partially update {what}", "patch", gvk, obj, ("200", "201"),
                             (*WRITE_PARAMS, FORCE), body=f"{META}.Patch", consumes=names.patch_types(obj)))  # fmt: skip
    if "delete" in verbs and sub is None:
        ops.append(Operation("delete", f"delete{op_id}", f"delete a {r.kind}", "delete", gvk, f"{META}.Status",
                             ("200", "202"), (DRY_RUN,), body=f"{META}.DeleteOptions"))  # fmt: skip
    if "create" in verbs and sub is not None:
        ops.append(_create(gvk, op_id, obj, what))
    return ops


def _paths_for(r: ResourceType, names: _Definitions) -> list[PathItem]:
    prefix = f"/{gv_path(r.group, r.version)}"
    scope = "Namespaced" if r.namespaced else ""
    op_id = f"{_operation_prefix(r.group, r.version)}{scope}{r.kind}"
    collection = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
    item = f"{collection}/{{name}}"
    scope_params = (NAMESPACE,) if r.namespaced else ()
    gvk = (r.group, r.version, r.kind)
    obj = names.kind(r.group, r.version, r.kind)

    collection_ops: list[Operation] = []
    list_name = names.list_of(r, obj) if "list" in r.verbs else None
    if list_name:
        collection_ops.append(Operation("get", f"list{op_id}", f"list or watch objects of kind {r.kind}", "list",
                                        gvk, list_name, ("200",), LIST_PARAMS))  # fmt: skip
    if "create" in r.verbs:
        collection_ops.append(_create(gvk, op_id, obj, f"a {r.kind}"))
    if "deletecollection" in r.verbs:
        collection_ops.append(Operation("delete", f"deletecollection{op_id}", f"delete collection of {r.kind}",
                                        "deletecollection", gvk, f"{META}.Status", ("200",), LIST_PARAMS))  # fmt: skip

    items = [
        PathItem(collection, tuple(collection_ops), scope_params),
        PathItem(item, tuple(_item_ops(r, op_id, names)), (NAME, *scope_params)),
    ]
    for sub in r.subresources:
        sub_id = f"{op_id}{sub.name[:1].upper()}{sub.name[1:]}"
        items.append(PathItem(f"{item}/{sub.name}", tuple(_item_ops(r, sub_id, names, sub)), (NAME, *scope_params)))
    if r.namespaced and list_name:  # kubectl get -A lists across namespaces
        all_id = f"{_operation_prefix(r.group, r.version)}{r.kind}ForAllNamespaces"
        items.append(PathItem(f"{prefix}/{r.plural}", (
            Operation("get", f"list{all_id}", f"list or watch objects of kind {r.kind}", "list", gvk, list_name,
                      ("200",), LIST_PARAMS),
        )))  # fmt: skip
    return [i for i in items if i.operations]


def _used_definitions(items: Iterable[PathItem]) -> list[str]:
    return [name for i in items for op in i.operations for name in (op.response, op.body) if name]


# --- OpenAPI v3 ----------------------------------------------------------------------------------


def _v3_ref(name: str) -> Schema:
    return {"$ref": _V3_REF + name}


def _v3_schema(node: Any) -> Any:
    """A swagger schema as an OpenAPI 3 component: references point into components/schemas, and a
    reference with sibling keywords (a description) is wrapped in allOf, as the API server does (siblings
    of a bare $ref are ignored in OpenAPI 3.0)."""
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "properties":
            out[key] = {field: _v3_schema(sub) for field, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _v3_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_v3_schema(sub) for sub in value]
        else:
            out[key] = value
    if "$ref" in node:
        target = _v3_ref(schemas.ref_name(node["$ref"]))
        return {"allOf": [target], **out} if out else target
    return out


def _v3_definition(name: str, schema: Schema) -> Schema:
    """A definition as an OpenAPI 3 component. IntOrString and Quantity, strings in swagger, are `oneOf`
    their JSON types in v3 (as the API server publishes them: explain then names them by type name)."""
    types = schemas.one_of(name)
    if not types:
        return _v3_schema(schema)
    out: Schema = {k: v for k, v in schema.items() if k != "type"}
    out["oneOf"] = [{"type": t} for t in types]
    return out


def _v3_param(p: Param, where: str) -> dict[str, Any]:
    param: dict[str, Any] = {"name": p.name, "in": where, "description": p.description}
    if where == "path":
        param["required"] = True
    param["schema"] = {"type": p.type, "uniqueItems": True}
    return param


def _v3_operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"description": op.description, "operationId": op.operation_id}
    if op.query:
        out["parameters"] = [_v3_param(p, "query") for p in op.query]
    if op.body:
        out["requestBody"] = {"content": {ct: {"schema": _v3_ref(op.body)} for ct in op.consumes}, "required": True}
    out["responses"] = {
        code: {"description": _RESPONSE_TEXT[code], "content": {JSON: {"schema": _v3_ref(op.response)}}}
        for code in op.codes
    }
    out["x-kubernetes-action"] = op.action
    out["x-kubernetes-group-version-kind"] = _gvk(op.gvk)
    return out


def _gvk(gvk: tuple[str, str, str]) -> dict[str, str]:
    return {"group": gvk[0], "kind": gvk[2], "version": gvk[1]}


def _paths(
    items: list[PathItem], operation: Callable[[Any], dict[str, Any]], param: Callable[[Any, str], dict[str, Any]]
) -> dict[str, Any]:
    """The `paths` of a document, with the operations and path parameters in that document's format."""
    paths: dict[str, Any] = {}
    for item in items:
        entry: dict[str, Any] = {op.method: operation(op) for op in item.operations}
        if item.params:
            entry["parameters"] = [param(p, "path") for p in item.params]
        paths[item.path] = entry
    return paths


def _v3_document(items: list[PathItem], definitions: dict[str, Schema]) -> dict[str, Any]:
    paths = _paths(items, _v3_operation, _v3_param)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": definitions},
    }


# --- OpenAPI v2 (swagger) ------------------------------------------------------------------------


def _v2_param(p: Param, where: str) -> dict[str, Any]:
    param: dict[str, Any] = {"description": p.description, "in": where, "name": p.name}
    if where == "path":
        param["required"] = True
    param["type"] = p.type
    param["uniqueItems"] = True
    return param


def _v2_operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"description": op.description}
    if op.body:
        out["consumes"] = list(op.consumes)
    out["produces"] = [JSON]
    out["schemes"] = ["https"]
    out["operationId"] = op.operation_id
    params = [{"in": "body", "name": "body", "required": True, "schema": schemas.ref(op.body)}] if op.body else []
    params += [_v2_param(p, "query") for p in op.query]
    if params:
        out["parameters"] = params
    out["responses"] = {
        code: {"description": _RESPONSE_TEXT[code], "schema": schemas.ref(op.response)} for code in op.codes
    }
    out["x-kubernetes-action"] = op.action
    out["x-kubernetes-group-version-kind"] = _gvk(op.gvk)
    return out


def _v2_definition(schema: Schema) -> Schema:
    """v2 cannot say "these properties, and any other field": an object that preserves unknown fields
    keeps no properties there (what the API server does for such custom resources), or kubectl's
    client-side validation would refuse the fields it accepts. A custom resource's schema keeps only
    what swagger 2.0 can say (no nullable, anyOf, oneOf, not, bounds), as the API server publishes it."""
    if not isinstance(schema, dict):
        return schema
    out: Schema = {}
    for key, value in schema.items():
        if key == "properties":
            if not schema.get(PRESERVE_UNKNOWN):
                out[key] = {field: _v2_definition(sub) for field, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _v2_definition(value)
        elif key == "allOf":
            out[key] = [_v2_definition(sub) for sub in value]
        elif key in _V2_KEYWORDS or key.startswith("x-"):
            out[key] = value
    return out


def _v2_document(items: list[PathItem], definitions: dict[str, Schema]) -> dict[str, Any]:
    paths = _paths(items, _v2_operation, _v2_param)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "definitions": {name: _v2_definition(schema) for name, schema in definitions.items()},
    }


# --- the v2 document as gnostic protobuf (github.com/google/gnostic openapiv2/OpenAPIv2.proto) -----
# kube-openapi reads only what is encoded here: paths and operations (for the fieldValidation check),
# definitions (for validation and merge keys), vendor extensions as YAML text (JSON is YAML).


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _pb(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a string or an embedded message)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _pb_str(number: int, text: str) -> bytes:
    return _pb(number, text.encode()) if text else b""


def _pb_bool(number: int, flag: bool) -> bytes:
    return _varint(number << 3) + b"\x01" if flag else b""


def _pb_any(number: int, value: Any) -> bytes:
    """gnostic's Any: the value as YAML text (field 2)."""
    return _pb(number, _pb_str(2, orjson.dumps(value).decode()))


def _pb_extension(number: int, name: str, value: Any) -> bytes:
    """A NamedAny vendor extension."""
    return _pb(number, _pb_str(1, name) + _pb_any(2, value))


def _pb_schema(schema: Schema) -> bytes:
    out = bytearray()
    for key, value in schema.items():
        if key == "$ref":
            out += _pb_str(1, value)
        elif key == "format":
            out += _pb_str(2, value)
        elif key == "title":
            out += _pb_str(3, value)
        elif key == "description":
            out += _pb_str(4, value)
        elif key == "default":
            out += _pb_any(5, value)
        elif key == "required":
            out += b"".join(_pb_str(19, name) for name in value)
        elif key == "enum":
            out += b"".join(_pb_any(20, v) for v in value)
        elif key == "additionalProperties":  # AdditionalPropertiesItem: schema = 1 | boolean = 2
            out += _pb(21, _pb(1, _pb_schema(value)) if isinstance(value, dict) else _pb_bool(2, value))
        elif key == "type":  # TypeItem
            out += _pb(22, b"".join(_pb_str(1, t) for t in ([value] if isinstance(value, str) else value)))
        elif key == "items":  # ItemsItem
            out += _pb(23, b"".join(_pb(1, _pb_schema(s)) for s in ([value] if isinstance(value, dict) else value)))
        elif key == "allOf":
            out += b"".join(_pb(24, _pb_schema(s)) for s in value)
        elif key == "properties":  # Properties of NamedSchema
            out += _pb(25, b"".join(_pb(1, _pb_str(1, n) + _pb(2, _pb_schema(s))) for n, s in value.items()))
        elif key == "readOnly":
            out += _pb_bool(27, value)
        elif key.startswith("x-"):
            out += _pb_extension(31, key, value)
        else:
            raise ValueError(f"OpenAPI v2 protobuf: schema keyword {key!r} is not encoded")
    return bytes(out)


def _pb_parameter(param: dict[str, Any]) -> bytes:
    """ParametersItem{parameter = 1: Parameter{body_parameter = 1 | non_body_parameter = 2}}."""
    if param["in"] == "body":  # BodyParameter
        body = (_pb_str(1, param.get("description", "")) + _pb_str(2, param["name"]) + _pb_str(3, "body")
                + _pb_bool(4, param.get("required", False)) + _pb(5, _pb_schema(param["schema"])))  # fmt: skip
        return _pb(1, _pb(1, body))
    if param["in"] == "query":  # NonBodyParameter.query_parameter_sub_schema = 3
        sub = (_pb_bool(1, param.get("required", False)) + _pb_str(2, "query") + _pb_str(3, param["description"])
               + _pb_str(4, param["name"]) + _pb_str(6, param["type"]) + _pb_bool(20, param["uniqueItems"]))  # fmt: skip
        return _pb(1, _pb(2, _pb(3, sub)))
    # path: NonBodyParameter.path_parameter_sub_schema = 4
    sub = (_pb_bool(1, param.get("required", False)) + _pb_str(2, "path") + _pb_str(3, param["description"])
           + _pb_str(4, param["name"]) + _pb_str(5, param["type"]) + _pb_bool(19, param["uniqueItems"]))  # fmt: skip
    return _pb(1, _pb(2, _pb(4, sub)))


def _pb_operation(op: dict[str, Any]) -> bytes:
    out = bytearray(_pb_str(3, op["description"]) + _pb_str(5, op["operationId"]))
    out += b"".join(_pb_str(6, t) for t in op.get("produces", ()))
    out += b"".join(_pb_str(7, t) for t in op.get("consumes", ()))
    out += b"".join(_pb(8, _pb_parameter(p)) for p in op.get("parameters", ()))
    responses = b"".join(  # Responses{response_code = 1: NamedResponseValue{name, ResponseValue{response = 1}}}
        _pb(1, _pb_str(1, code) + _pb(2, _pb(1, _pb_str(1, r["description"]) + _pb(2, _pb(1, _pb_schema(r["schema"]))))))
        for code, r in op["responses"].items()
    )
    out += _pb(9, responses)
    out += b"".join(_pb_str(10, s) for s in op.get("schemes", ()))
    out += b"".join(_pb_extension(13, k, v) for k, v in op.items() if k.startswith("x-"))
    return bytes(out)


_PATH_ITEM_FIELDS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _pb_path_item(item: dict[str, Any]) -> bytes:
    out = bytearray()
    for key, value in item.items():
        if key == "parameters":
            out += b"".join(_pb(9, _pb_parameter(p)) for p in value)
        else:
            out += _pb(_PATH_ITEM_FIELDS[key], _pb_operation(value))
    return bytes(out)


def encode_v2_protobuf(doc: dict[str, Any]) -> bytes:
    """The swagger document as an openapi.v2.Document message."""
    info = _pb_str(1, doc["info"]["title"]) + _pb_str(2, doc["info"]["version"])
    paths = b"".join(_pb(2, _pb_str(1, p) + _pb(2, _pb_path_item(item))) for p, item in doc["paths"].items())
    definitions = b"".join(_pb(1, _pb_str(1, n) + _pb(2, _pb_schema(s))) for n, s in doc["definitions"].items())
    return _pb_str(1, doc["swagger"]) + _pb(2, info) + _pb(8, paths) + _pb(9, definitions)


# --- built once ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Encoded:
    v3_root: bytes
    v3: dict[str, bytes]  # "api/v1", "apis/<group>/<version>" -> document
    v2_json: bytes
    v2_protobuf: bytes


def document_hash(body: bytes) -> str:
    """A content hash: kubectl caches each GV document under its `?hash=`, so it must change exactly
    when the document does."""
    return hashlib.sha512(body).hexdigest()[:16].upper()


def _build() -> Encoded:
    names = _Definitions()
    by_gv: dict[str, list[PathItem]] = {}
    for r in RESOURCE_TYPES:
        by_gv.setdefault(gv_path(r.group, r.version), []).extend(_paths_for(r, names))

    converted: dict[str, Schema] = {}  # one v3 form per definition, shared by the documents that carry it
    v3: dict[str, bytes] = {}
    for gv, items in by_gv.items():
        definitions = schemas.closure(_used_definitions(items), names.permissive)
        components = {n: converted.get(n) or converted.setdefault(n, _v3_definition(n, s)) for n, s in definitions.items()}
        v3[gv] = orjson.dumps(_v3_document(items, components))
    root = {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={document_hash(body)}"}
                      for gv, body in v3.items()}}  # fmt: skip

    every = [i for items in by_gv.values() for i in items]
    v2 = _v2_document(every, schemas.closure(_used_definitions(every), names.permissive))
    return Encoded(orjson.dumps(root), v3, orjson.dumps(v2), encode_v2_protobuf(v2))


_lock = threading.Lock()
_encoded: Encoded | None = None
_built_for = -1  # the generation of the kinds the documents describe (custom resources change them)


def prepared() -> bool:
    return _encoded is not None and _built_for == generation()


def prepare() -> Encoded:
    """Build and encode every document, once per set of kinds served (thread-safe: api/app.py calls it
    from a worker thread)."""
    global _encoded, _built_for
    wanted = generation()
    if _encoded is None or _built_for != wanted:
        with _lock:
            if _encoded is None or _built_for != wanted:
                _encoded, _built_for = _build(), wanted
    return _encoded


def v3_root_json() -> bytes:
    """`GET /openapi/v3`: every served group-version with the URL (and content hash) of its document."""
    return prepare().v3_root


def v3_document_json(path: str) -> bytes | None:
    """`GET /openapi/v3/<path>` for "api/v1" or "apis/<group>/<version>"; None when not served.
    A leading slash and the `?hash=` query are tolerated."""
    return prepare().v3.get(path.split("?", 1)[0].strip("/"))


def v2_json() -> bytes:
    return prepare().v2_json


def v2_protobuf() -> bytes:
    return prepare().v2_protobuf


def wants_protobuf(accept: str | None) -> bool:
    """Whether `GET /openapi/v2`'s Accept header prefers the protobuf document to JSON (first listed wins)."""
    for part in (accept or "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _V2_PROTOBUF_TYPES:
            return True
        if media in (JSON, "application/*", "*/*"):
            return False
    return False


# Decoded copies, for tests and tools: the served bytes are never handed out as mutable objects.


def openapi_v3_root() -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(v3_root_json())
    return result


def openapi_v3_doc(path: str) -> dict[str, Any] | None:
    body = v3_document_json(path)
    return None if body is None else orjson.loads(body)


def openapi_v2() -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(v2_json())
    return result
