"""OpenAPI v2 and v3 with the 1.32 field schemas (api/openapi.py), and the schemas themselves
(emulator/schemas.py): what kubectl's validation, client-side apply and explain read (KUBECTL.md §4)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from api import openapi
from api.openapi import gv_path, openapi_v2, openapi_v3_doc, openapi_v3_root, schema_name
from emulator import schemas
from emulator.kinds import RESOURCE_TYPES, ResourceType, custom, groups

HTTP_METHODS = ("get", "put", "post", "patch", "delete")
SMP = "application/strategic-merge-patch+json"


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, item[m]) for path, item in doc["paths"].items() for m in HTTP_METHODS if m in item]


def v3_doc(path: str) -> dict[str, Any]:
    doc = openapi_v3_doc(path)
    assert doc is not None, path
    return doc


def served_gv_paths() -> set[str]:
    return {gv_path(g, v) for g, versions in groups().items() for v in versions}


def supports_field_validation(doc: dict[str, Any], group: str, version: str, kind: str) -> bool:
    """What kubectl checks: a PATCH op for the GVK whose parameters include the fieldValidation query param.
    kubectl stops at the first matching PATCH it meets (map order), so every one of them must have it."""
    gvk = {"group": group, "version": version, "kind": kind}
    patches = [op for _, m, op in operations(doc) if m == "patch" and op["x-kubernetes-group-version-kind"] == gvk]
    return bool(patches) and all(
        any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op["parameters"]) for op in patches
    )


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for key, value in node.items():
            if key == "properties":  # field names are not keywords: a field may be called "$ref"
                for sub in value.values():
                    yield from refs_in(sub)
            elif key != "$ref":
                yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


# --- v3: the root and the group-version documents ----------------------------------------------------


def test_root_lists_every_served_group_version_with_the_hash_of_its_document() -> None:
    root = openapi_v3_root()
    assert set(root["paths"]) == served_gv_paths()
    assert {"api/v1", "apis/networking.k8s.io/v1", "apis/discovery.k8s.io/v1"} <= set(root["paths"])
    for path, entry in root["paths"].items():
        prefix, _, digest = entry["serverRelativeURL"].partition("?hash=")
        assert prefix == f"/openapi/v3/{path}"
        body = openapi.v3_document_json(path)
        assert body is not None
        assert digest == hashlib.sha512(body).hexdigest()[:16].upper()
    hashes = [e["serverRelativeURL"].split("=")[1] for e in root["paths"].values()]
    assert len(set(hashes)) == len(hashes)


# Create-only kinds (TokenReview) have no PATCH, as on a real server: kubectl validates those client-side.
@pytest.mark.parametrize("resource", [r for r in RESOURCE_TYPES if "patch" in r.verbs], ids=lambda r: r.key)
def test_every_kind_passes_kubectls_field_validation_check(resource: ResourceType) -> None:
    doc = v3_doc(gv_path(resource.group, resource.version))
    assert supports_field_validation(doc, resource.group, resource.version, resource.kind)


@pytest.mark.parametrize("resource", RESOURCE_TYPES, ids=lambda r: r.key)
def test_every_kind_has_its_real_schema_and_list(resource: ResourceType) -> None:
    r = resource
    name = schema_name(r.group, r.version, r.kind)
    components = v3_doc(gv_path(r.group, r.version))["components"]["schemas"]
    schema = components[name]
    assert {"group": r.group, "version": r.version, "kind": r.kind} in schema["x-kubernetes-group-version-kind"]
    if schemas.definition_name(r.group, r.version, r.kind) is None:  # a kind 1.32 does not define
        published = custom.published_schema(r.group, r.version, r.kind)  # the Gateway API's: its definition's
        if published is None:
            assert schema[schemas.PRESERVE_UNKNOWN] is True
        else:
            assert set(schema["properties"]) == set(published["properties"]) and not schema.get(schemas.PRESERVE_UNKNOWN)
        return
    real = schemas.definitions()[name]
    assert schema["description"] == real["description"]
    assert set(schema["properties"]) == set(real["properties"]) >= {"apiVersion", "kind", "metadata"}
    assert schema.get("required") == real.get("required")
    assert not schema.get(schemas.PRESERVE_UNKNOWN)
    if "list" in r.verbs:
        list_name = schema_name(r.group, r.version, r.list_kind)
        assert list_name in components
        assert components[list_name]["properties"]["items"]["items"] == {"$ref": f"#/components/schemas/{name}"}
    # the shared meta types are real too
    meta = components["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
    assert {"name", "namespace", "labels", "annotations", "ownerReferences"} <= set(meta["properties"])


def test_pod_schema_carries_what_explain_and_client_side_apply_read() -> None:
    components = v3_doc("api/v1")["components"]["schemas"]
    pod = components["io.k8s.api.core.v1.Pod"]
    # a $ref with a description is wrapped in allOf, as the API server publishes it
    assert pod["properties"]["spec"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    assert pod["properties"]["spec"]["description"].startswith("Specification of the desired behavior of the pod.")
    containers = components["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["type"] == "array"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    container = components["io.k8s.api.core.v1.Container"]
    assert container["required"] == ["name"]
    assert container["properties"]["image"]["type"] == "string"  # no ["string", "null"]
    assert container["properties"]["ports"]["x-kubernetes-patch-merge-key"] == "containerPort"
    assert "enum" not in pod["properties"]["kind"]  # the JSON Schema generator's pin is gone
    # IntOrString and Quantity are oneOf their JSON types in v3 (explain names them <IntOrString>, <Quantity>)
    assert components["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["oneOf"] == [
        {"type": "string"}, {"type": "integer"}
    ]
    assert components["io.k8s.apimachinery.pkg.api.resource.Quantity"] == {"oneOf": [{"type": "string"}, {"type": "number"}]}
    service_ports = components["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert service_ports["x-kubernetes-patch-merge-key"] == "port"
    assert service_ports["x-kubernetes-list-map-keys"] == ["port", "protocol"]


@pytest.mark.parametrize("path", sorted(served_gv_paths()))
def test_every_reference_resolves(path: str) -> None:
    doc = v3_doc(path)
    components = doc["components"]["schemas"]
    for ref in refs_in(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in components, ref


def test_every_v2_reference_resolves() -> None:
    doc = openapi_v2()
    for ref in refs_in(doc):
        assert ref.startswith("#/definitions/"), ref
        assert ref.removeprefix("#/definitions/") in doc["definitions"], ref


def test_namespace_is_in_the_v1_document() -> None:
    doc = v3_doc("api/v1")
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["version"] == "v1.32.0"
    patch = doc["paths"]["/api/v1/namespaces/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Namespace"}
    assert patch["x-kubernetes-action"] == "patch"
    schema = doc["components"]["schemas"]["io.k8s.api.core.v1.Namespace"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Namespace", "version": "v1"}]
    assert {"spec", "status"} <= set(schema["properties"])


def test_item_operations_for_a_namespaced_kind() -> None:
    doc = v3_doc("apis/networking.k8s.io/v1")
    item = doc["paths"]["/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}"]
    assert {m for m in HTTP_METHODS if m in item} == {"get", "put", "patch", "delete"}
    assert {op: item[op]["x-kubernetes-action"] for op in ("get", "put", "patch", "delete")} == {
        "get": "get", "put": "put", "patch": "patch", "delete": "delete",
    }  # fmt: skip
    assert item["patch"]["operationId"] == "patchNetworkingV1NamespacedNetworkPolicy"
    assert {p["name"] for p in item["parameters"]} == {"name", "namespace"}
    assert any(p["name"] == "fieldValidation" for p in item["put"]["parameters"])
    ok = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/io.k8s.api.networking.v1.NetworkPolicy"}
    collection = doc["paths"]["/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"]
    assert collection["get"]["x-kubernetes-action"] == "list"
    assert collection["post"]["x-kubernetes-action"] == "post"
    assert "/apis/networking.k8s.io/v1/networkpolicies" in doc["paths"]  # kubectl get -A


def test_patch_offers_strategic_merge_patch_for_kinds_with_a_real_schema() -> None:
    # kubectl's client-side apply then takes the merge keys from these schemas, as from a real server
    for path in served_gv_paths():
        for route, method, op in operations(v3_doc(path)):
            if method == "patch" and "/gateway.networking.k8s.io/" not in route:  # (served from definitions: no SMP, as CRDs)
                content = op["requestBody"]["content"]
                assert {SMP, "application/apply-patch+yaml", "application/merge-patch+json"} <= set(content)


def test_subresources_have_their_own_paths() -> None:
    doc = v3_doc("api/v1")
    status = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/status"]
    assert set(status) >= {"get", "put", "patch"}
    token = doc["paths"]["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]
    assert token["post"]["x-kubernetes-group-version-kind"]["kind"] == "TokenRequest"
    assert "expirationSeconds" in doc["components"]["schemas"]["io.k8s.api.authentication.v1.TokenRequestSpec"][
        "properties"
    ]


def test_unknown_documents_and_tolerated_spellings() -> None:
    assert openapi_v3_doc("apis/example.com/v1") is None
    assert openapi_v3_doc("api/v2") is None
    assert openapi_v3_doc("/api/v1?hash=ABC") == openapi_v3_doc("api/v1")


def test_returned_documents_are_copies() -> None:
    doc = v3_doc("api/v1")
    doc["paths"].clear()
    assert v3_doc("api/v1")["paths"]


# --- a kind that 1.32 does not define --------------------------------------------------------------

WIDGETS = ResourceType(
    group="example.com", version="v1", plural="widgets", kind="Widget", namespaced=True, singular="widget"
)


def test_a_kind_without_a_real_schema_gets_a_permissive_one() -> None:
    names = openapi._Definitions()
    items = openapi._paths_for(WIDGETS, names)
    assert set(names.permissive) == {"com.example.v1.Widget", "com.example.v1.WidgetList"}
    widget = names.permissive["com.example.v1.Widget"]
    assert widget[schemas.PRESERVE_UNKNOWN] is True
    assert widget["x-kubernetes-group-version-kind"] == [{"group": "example.com", "kind": "Widget", "version": "v1"}]
    assert widget["properties"]["metadata"]["$ref"] == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    patch = next(op for i in items for op in i.operations if op.method == "patch")
    assert SMP not in patch.consumes  # no merge keys to compute a strategic merge patch from
    assert openapi.FIELD_VALIDATION in patch.query
    # v2 cannot say "these fields and any other": kubectl's client-side validation must accept anything
    assert "properties" not in openapi._v2_definition(widget)
    definitions = schemas.closure(openapi._used_definitions(items), names.permissive)
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in definitions
    assert schemas.unknown_fields_in(widget, {"spec": {"anything": [1]}, "data": {"x": 1}}) == []


# --- encoded once, loaded lazily ---------------------------------------------------------------------


def test_each_document_is_encoded_once() -> None:
    first = openapi.prepare()
    assert openapi.prepare() is first
    for path in served_gv_paths():
        assert openapi.v3_document_json(path) is first.v3[path]
    assert openapi.v3_root_json() is first.v3_root
    assert openapi.v2_json() is openapi.v2_json()
    assert openapi.v2_protobuf() is openapi.v2_protobuf()


def test_start_up_loads_no_schema() -> None:
    code = (
        "import api.app, api.openapi, emulator.schemas;"
        "assert not api.openapi.prepared() and not emulator.schemas.loaded();"
        "api.openapi.prepare();"
        "assert emulator.schemas.loaded()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_v2_is_protobuf_only_when_asked_for() -> None:
    assert openapi.wants_protobuf("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")  # kubectl
    assert openapi.wants_protobuf("application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json")
    assert not openapi.wants_protobuf("application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert not openapi.wants_protobuf("application/json")
    assert not openapi.wants_protobuf("application/vnd.kubernetes.protobuf, */*")
    assert not openapi.wants_protobuf(None)
    # Go's mime parser refuses "@" in a Content-Type: the answer uses the dotted spelling
    assert "@" not in openapi.V2_PROTOBUF


# --- the v2 protobuf says what the v2 JSON says --------------------------------------------------------


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints and length-delimited fields only."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
            yield number, value
        elif wire == 2:
            size, i = varint(data, i)
            yield number, data[i : i + size]
            i += size
        else:
            raise AssertionError(f"unexpected wire type {wire}")


def varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def message(data: int | bytes) -> list[tuple[int, int | bytes]]:
    assert isinstance(data, bytes)
    return list(fields(data))


def text(data: int | bytes) -> str:
    assert isinstance(data, bytes)
    return data.decode()


def named(data: int | bytes) -> tuple[str, bytes]:
    """A Named* message: name = 1, value = 2."""
    parts = dict(message(data))
    value = parts.get(2, b"")
    assert isinstance(value, bytes)
    return text(parts[1]), value


def decode_schema(data: bytes) -> dict[str, Any]:
    """openapi.v2.Schema back to its JSON form (the keywords the encoder writes)."""
    out: dict[str, Any] = {}
    for number, value in fields(data):
        if number == 1:
            out["$ref"] = text(value)
        elif number == 2:
            out["format"] = text(value)
        elif number == 4:
            out["description"] = text(value)
        elif number == 5:
            out["default"] = orjson.loads(dict(message(value))[2])
        elif number == 19:
            out.setdefault("required", []).append(text(value))
        elif number == 20:
            out.setdefault("enum", []).append(orjson.loads(dict(message(value))[2]))
        elif number == 21:
            ((kind, inner),) = message(value)
            out["additionalProperties"] = decode_schema(inner) if kind == 1 else bool(inner)  # type: ignore[arg-type]
        elif number == 22:
            types = [text(v) for _, v in message(value)]
            out["type"] = types[0] if len(types) == 1 else types
        elif number == 23:
            ((_, inner),) = message(value)
            out["items"] = decode_schema(inner)  # type: ignore[arg-type]
        elif number == 24:
            out.setdefault("allOf", []).append(decode_schema(value))  # type: ignore[arg-type]
        elif number == 25:
            out["properties"] = {n: decode_schema(s) for n, s in (named(v) for _, v in message(value))}
        elif number == 31:
            name, any_value = named(value)
            out[name] = orjson.loads(dict(message(any_value))[2])  # the YAML text, here JSON
        else:
            raise AssertionError(f"unexpected Schema field {number}")
    return out


def test_v2_protobuf_carries_the_json_documents_definitions_and_paths() -> None:
    doc = openapi_v2()
    top = message(openapi.v2_protobuf())
    by_number: dict[int, list[int | bytes]] = {}
    for number, value in top:
        by_number.setdefault(number, []).append(value)
    assert text(by_number[1][0]) == "2.0"
    assert [text(v) for _, v in message(by_number[2][0])] == ["Kubernetes", "v1.32.0"]
    definitions = dict(named(v) for _, v in message(by_number[9][0]))
    assert list(definitions) == list(doc["definitions"])
    for name, schema in doc["definitions"].items():
        assert decode_schema(definitions[name]) == schema, name
    paths = dict(named(v) for n, v in message(by_number[8][0]) if n == 2)
    assert list(paths) == list(doc["paths"])
    # the PATCH of pods: its GVK extension and fieldValidation, what kubectl's v2 verifier reads
    pod_item = dict(message(paths["/api/v1/namespaces/{namespace}/pods/{name}"]))
    patch = message(pod_item[8])
    extensions = dict(named(v) for n, v in patch if n == 13)
    gvk = orjson.loads(dict(message(extensions["x-kubernetes-group-version-kind"]))[2])
    assert gvk == {"group": "", "kind": "Pod", "version": "v1"}
    query_names = []
    for number, item in patch:
        if number == 8:
            ((_, parameter),) = message(item)
            ((kind, inner),) = message(parameter)
            if kind == 2:  # non-body
                ((where, sub),) = message(inner)
                assert where == 3  # query
                query_names.append(text(dict(message(sub))[4]))
    assert "fieldValidation" in query_names


def test_v2_definitions_are_the_swagger_spelling() -> None:
    definitions = openapi_v2()["definitions"]
    assert definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {"type": "string", "format": "int-or-string"}
    assert definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] == {"type": "string"}
    metadata = definitions["io.k8s.api.core.v1.Pod"]["properties"]["metadata"]
    assert metadata["$ref"] == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    # only what the served kinds use
    assert "io.k8s.api.apps.v1.Deployment" not in definitions or any(r.kind == "Deployment" for r in RESOURCE_TYPES)


# --- emulator/schemas.py: lookups and unknown fields -------------------------------------------------


def test_definitions_are_indexed_by_group_version_kind() -> None:
    assert schemas.definition_name("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert schemas.definition_name("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert schemas.definition_name("", "v1", "ConfigMapList") == "io.k8s.api.core.v1.ConfigMapList"
    assert schemas.definition_name("example.com", "v1", "Widget") is None
    strategy = schemas.definitions()["io.k8s.api.apps.v1.DeploymentStrategy"]
    assert set(strategy["properties"]) == {"type", "rollingUpdate"}
    assert strategy["properties"]["rollingUpdate"]["$ref"] == "#/definitions/io.k8s.api.apps.v1.RollingUpdateDeployment"


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}, "annotations": {"a": "b"},
                 "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
    "spec": {
        "containers": [{
            "name": "app", "image": "nginx", "env": [{"name": "A", "value": "1"}],
            "ports": [{"containerPort": 80, "name": "http"}],
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
        }],
        "nodeSelector": {"disk": "ssd"},
        "volumes": None,
    },
    "status": {"phase": "Running", "podIP": "10.0.0.1"},
}  # fmt: skip


def test_a_correct_object_has_no_unknown_fields() -> None:
    assert schemas.unknown_fields("v1", "Pod", POD) == []
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "web"}}}  # fmt: skip
    assert schemas.unknown_fields("v1", "Service", service) == []


def test_unknown_fields_are_named_as_the_api_servers_strict_decoding_does() -> None:
    pod = orjson.loads(orjson.dumps(POD))
    pod["specc"] = {}
    pod["metadata"]["labelz"] = {}
    container = pod["spec"]["containers"][0]
    container["imagee"] = "x"
    container["ports"][0]["protocoll"] = "TCP"
    container["resources"]["limits"]["gpu"] = "1"  # a map: any key
    container["readinessProbe"]["httpGet"]["pathh"] = "/"
    assert sorted(schemas.unknown_fields("v1", "Pod", pod)) == [  # in the object's order
        "metadata.labelz",
        "spec.containers[0].imagee",
        "spec.containers[0].ports[0].protocoll",
        "spec.containers[0].readinessProbe.httpGet.pathh",
        "specc",
    ]


def test_unknown_fields_of_other_groups_and_kinds() -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailabel": 1}},
                 "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "img": "x"}]}}},
    }  # fmt: skip
    assert schemas.unknown_fields("apps/v1", "Deployment", deployment) == [
        "spec.strategy.rollingUpdate.maxUnavailabel",
        "spec.template.spec.containers[0].img",
    ]
    assert schemas.unknown_fields("v1", "ConfigMap", {"data": {"any.key": "v"}, "binaryData": {}, "dataa": {}}) == [
        "dataa"
    ]
    # a kind that 1.32 does not define knows every field
    assert schemas.unknown_fields("example.com/v1", "Widget", {"spec": {"x": 1}, "y": 2}) == []


def test_preserve_unknown_fields_and_maps_of_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"known": {"type": "string"}, "free": {"type": "object", schemas.PRESERVE_UNKNOWN: True}},
            },
            "byName": {"type": "object", "additionalProperties": {"type": "object", "properties": {"a": {"type": "integer"}}}},
            "anyValues": {"type": "object", "additionalProperties": True},
            "closed": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
            "meta": schemas.ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
        },
    }
    value = {
        "spec": {"known": "k", "free": {"whatever": {"deep": [1, 2]}}, "other": 1},
        "byName": {"x": {"a": 1}, "y": {"b": 2}},
        "anyValues": {"z": {"q": 1}},
        "closed": {"b": 1},
        "meta": {"name": "n", "nam": "typo"},
    }
    assert schemas.unknown_fields_in(schema, value) == ["spec.other", "byName.y.b", "closed.b", "meta.nam"]
    assert schemas.unknown_fields_in({schemas.PRESERVE_UNKNOWN: True, "properties": {}}, {"a": 1}) == []


def test_the_shipped_definitions_are_converted_to_the_swagger_spelling() -> None:
    for name, schema in schemas.definitions().items():
        for ref in refs_in(schema):
            assert ref.startswith("#/definitions/") and ref.removeprefix("#/definitions/") in schemas.definitions()
        if isinstance(schema.get("properties"), dict):
            for field in ("apiVersion", "kind"):
                assert "enum" not in schema["properties"].get(field, {}), name
        assert not isinstance(schema.get("type"), list), name


def test_every_132_definition_can_be_served() -> None:
    """Kinds added later bring other definitions into the documents: each of 1.32's encodes in both forms."""
    for name, schema in schemas.definitions().items():
        assert decode_schema(openapi._pb_schema(schema)) == schema, name
        refs_v3 = list(refs_in(openapi._v3_definition(name, schema)))
        assert all(r.startswith("#/components/schemas/") for r in refs_v3), name
