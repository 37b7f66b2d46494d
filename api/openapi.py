"""OpenAPI v3 documents: the `/openapi/v3` root and one document per group-version, just rich enough for
kubectl's default `--validate=strict` path (KUBECTL.md §4).

kubectl looks, in the GV document, for a PATCH operation whose `x-kubernetes-group-version-kind` is the
object's GVK and which takes a `fieldValidation` query parameter; then it leaves validation to the server.
The schemas are deliberately minimal (open objects tagged with their GVK): kubectl never validates against
them on that path, and `kubectl explain` is out of scope.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from typing import Any

from emulator.kinds import RESOURCE_TYPES, ResourceType, Subresource, groups

from .discovery import KUBERNETES_VERSION

META = "io.k8s.apimachinery.pkg.apis.meta.v1"

# Content types a PATCH accepts. Strategic merge patch is deliberately not advertised: if it were,
# kubectl's client-side apply would compute its three-way patch from these schemas, which carry no
# merge keys, and replace lists wholesale. Without it kubectl uses its compiled-in Go types, which
# have the right merge keys (cli-runtime apply patcher: gvkSupportsPatchOpenAPIV3).
PATCH_CONTENT_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def gv_path(group: str, version: str) -> str:
    """ "api/v1" for the core group, "apis/<group>/<version>" otherwise: the key under /openapi/v3."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(group: str, version: str, kind: str) -> str:
    """The Kubernetes OpenAPI definition name: io.k8s.api.core.v1.Pod, io.k8s.api.networking.v1.NetworkPolicy."""
    package = group.split(".")[0] if group else "core"
    return f"io.k8s.api.{package}.{version}.{kind}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _operation_prefix(group: str, version: str) -> str:
    """ "CoreV1", "NetworkingV1", "DiscoveryV1": the Go client's operationId infix."""
    package = group.split(".")[0] if group else "core"
    return f"{package[:1].upper()}{package[1:]}{version[:1].upper()}{version[1:]}"


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": True}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}


DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted. Valid value: All.")
FIELD_MANAGER = _query("fieldManager", "A name associated with the actor or entity that is making these changes.")
FIELD_VALIDATION = _query(
    "fieldValidation",
    "How the server treats unknown and duplicate fields in the request body: Ignore, Warn (default) or Strict.",
)
FORCE = {
    "name": "force",
    "in": "query",
    "description": 'Force is going to "force" Apply requests; it must be unset for non-apply patch requests.',
    "schema": {"type": "boolean", "uniqueItems": True},
}
WRITE_PARAMS = (DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION)
LIST_PARAMS = tuple(
    _query(n, d)
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


def _json_body(schema: dict[str, Any], content_types: tuple[str, ...] = ("application/json",)) -> dict[str, Any]:
    return {"content": {ct: {"schema": schema} for ct in content_types}, "required": True}


def _responses(schema: dict[str, Any], *codes: str) -> dict[str, Any]:
    text = {"200": "OK", "201": "Created", "202": "Accepted"}
    return {c: {"description": text[c], "content": {"application/json": {"schema": schema}}} for c in codes}


def _operation(
    verb: str, action: str, gvk: dict[str, str], op_id: str, response: dict[str, Any], *codes: str, **extra: Any
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{verb}{op_id}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "responses": _responses(response, *codes),
    }
    op.update(extra)
    return op


def _item_ops(r: ResourceType, op_id: str, sub: Subresource | None = None) -> dict[str, Any]:
    """GET/PUT/PATCH/DELETE on one object (or one subresource), limited to the verbs the table grants."""
    kind_group, kind_version, kind = (
        (sub.group or "", sub.version or r.version, sub.kind) if sub and sub.kind else (r.group, r.version, r.kind)
    )
    gvk = _gvk(kind_group, kind_version, kind)
    obj = _ref(schema_name(kind_group, kind_version, kind))
    verbs = set(sub.verbs if sub else r.verbs)
    ops: dict[str, Any] = {}
    if "get" in verbs:
        ops["get"] = _operation("read", "get", gvk, op_id, obj, "200")
    if "update" in verbs:
        ops["put"] = _operation(
            "replace", "put", gvk, op_id, obj, "200", "201", parameters=list(WRITE_PARAMS), requestBody=_json_body(obj)
        )
    if "patch" in verbs:
        ops["patch"] = _operation(
            "patch",
            "patch",
            gvk,
            op_id,
            obj,
            "200",
            "201",
            parameters=[*WRITE_PARAMS, FORCE],
            requestBody=_json_body(_ref(f"{META}.Patch"), PATCH_CONTENT_TYPES),
        )
    if "delete" in verbs and sub is None:
        ops["delete"] = _operation(
            "delete",
            "delete",
            gvk,
            op_id,
            _ref(f"{META}.Status"),
            "200",
            "202",
            parameters=[DRY_RUN],
            requestBody=_json_body(_ref(f"{META}.DeleteOptions")),
        )
    if "create" in verbs and sub is not None:  # serviceaccounts/token is a POST on the subresource
        ops["post"] = _create_operation(gvk, op_id, obj)
    return ops


def _create_operation(gvk: dict[str, str], op_id: str, obj: dict[str, Any]) -> dict[str, Any]:
    """POST of a new object: on a collection, or on a subresource such as serviceaccounts/token."""
    return _operation(
        "create", "post", gvk, op_id, obj, "200", "201", "202",
        parameters=list(WRITE_PARAMS), requestBody=_json_body(obj),
    )


def _collection_ops(r: ResourceType, op_id: str, plural_id: str) -> dict[str, Any]:
    gvk = _gvk(r.group, r.version, r.kind)
    obj = _ref(schema_name(r.group, r.version, r.kind))
    ops: dict[str, Any] = {}
    if "list" in r.verbs:
        ops["get"] = _operation(
            "list",
            "list",
            gvk,
            plural_id,
            _ref(schema_name(r.group, r.version, r.list_kind)),
            "200",
            parameters=list(LIST_PARAMS),
        )
    if "create" in r.verbs:
        ops["post"] = _create_operation(gvk, op_id, obj)
    if "deletecollection" in r.verbs:
        ops["delete"] = _operation(
            "deletecollection",
            "deletecollection",
            gvk,
            op_id,
            _ref(f"{META}.Status"),
            "200",
            parameters=list(LIST_PARAMS),
        )
    return ops


def _paths_for(r: ResourceType) -> dict[str, Any]:
    prefix = f"/{gv_path(r.group, r.version)}"
    scope = "Namespaced" if r.namespaced else ""
    op_id = f"{_operation_prefix(r.group, r.version)}{scope}{r.kind}"
    collection = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
    item = f"{collection}/{{name}}"
    path_params = [_path_param("namespace")] if r.namespaced else []

    paths: dict[str, Any] = {}
    paths[collection] = {**_collection_ops(r, op_id, op_id), "parameters": path_params}
    paths[item] = {**_item_ops(r, op_id), "parameters": [_path_param("name"), *path_params]}
    for sub in r.subresources:
        sub_id = f"{op_id}{sub.name[:1].upper()}{sub.name[1:]}"
        paths[f"{item}/{sub.name}"] = {**_item_ops(r, sub_id, sub), "parameters": [_path_param("name"), *path_params]}
    if r.namespaced and "list" in r.verbs:
        # kubectl get -A lists across namespaces
        all_id = f"{_operation_prefix(r.group, r.version)}{r.kind}ForAllNamespaces"
        list_schema = _ref(schema_name(r.group, r.version, r.list_kind))
        paths[f"{prefix}/{r.plural}"] = {
            "get": _operation(
                "list",
                "list",
                _gvk(r.group, r.version, r.kind),
                all_id,
                list_schema,
                "200",
                parameters=list(LIST_PARAMS),
            )
        }
    return paths


def _kind_schema(group: str, version: str, kind: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "type": "object",
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this representation of an object.",
            },
            "kind": {
                "type": "string",
                "description": "Kind is a string value representing the REST resource this object represents.",
            },
            "metadata": {"allOf": [_ref(f"{META}.ObjectMeta")], "default": {}},
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "x-kubernetes-group-version-kind": [_gvk(group, version, kind)],
    }


def _list_schema(r: ResourceType) -> dict[str, Any]:
    return {
        "description": f"{r.list_kind} is a list of {r.kind} objects.",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"allOf": [_ref(f"{META}.ListMeta")], "default": {}},
            "items": {
                "type": "array",
                "items": {"allOf": [_ref(schema_name(r.group, r.version, r.kind))], "default": {}},
            },
        },
        "x-kubernetes-group-version-kind": [_gvk(r.group, r.version, r.list_kind)],
    }


def _open_object(description: str) -> dict[str, Any]:
    return {"description": description, "type": "object", "x-kubernetes-preserve-unknown-fields": True}


META_SCHEMAS: dict[str, dict[str, Any]] = {
    f"{META}.ObjectMeta": _open_object("ObjectMeta is metadata that all persisted resources must have."),
    f"{META}.ListMeta": _open_object("ListMeta describes metadata that synthetic resources must have."),
    f"{META}.Status": _open_object("Status is a return value for calls that don't return other objects."),
    f"{META}.DeleteOptions": _open_object("DeleteOptions may be provided when deleting an API object."),
    f"{META}.Patch": _open_object(
        "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."
    ),
}


def _served_gvs() -> list[tuple[str, str]]:
    return [(g, v) for g, versions in groups().items() for v in versions]


@cache
def _documents() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for group, version in _served_gvs():
        served = [r for r in RESOURCE_TYPES if (r.group, r.version) == (group, version)]
        schemas: dict[str, Any] = dict(META_SCHEMAS)
        paths: dict[str, Any] = {}
        for r in served:
            paths.update(_paths_for(r))
            schemas[schema_name(r.group, r.version, r.kind)] = _kind_schema(
                r.group, r.version, r.kind, f"{r.kind} ({r.api_version})."
            )
            schemas[schema_name(r.group, r.version, r.list_kind)] = _list_schema(r)
            for sub in r.subresources:
                if sub.kind:  # e.g. TokenRequest, referenced by serviceaccounts/token
                    sub_group, sub_version = sub.group or "", sub.version or r.version
                    schemas[schema_name(sub_group, sub_version, sub.kind)] = _kind_schema(
                        sub_group, sub_version, sub.kind, f"{sub.kind} ({sub_group}/{sub_version})."
                    )
        docs[gv_path(group, version)] = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": paths,
            "components": {"schemas": schemas},
        }
    return docs


def document_hash(doc: dict[str, Any]) -> str:
    """A stable content hash: kubectl caches each GV document under its `?hash=`, so it must change exactly
    when the document does."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha512(canonical).hexdigest()[:16].upper()


@cache
def _root() -> dict[str, Any]:
    return {
        "paths": {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={document_hash(doc)}"}
            for path, doc in _documents().items()
        }
    }


def openapi_v3_root() -> dict[str, Any]:
    """`GET /openapi/v3`: every served group-version with the URL (and content hash) of its document."""
    return copy.deepcopy(_root())


def openapi_v3_doc(path: str) -> dict[str, Any] | None:
    """`GET /openapi/v3/<path>` for path "api/v1" or "apis/<group>/<version>"; None when not served.
    A leading slash and the `?hash=` query are tolerated."""
    doc = _documents().get(path.split("?", 1)[0].strip("/"))
    return copy.deepcopy(doc) if doc is not None else None
