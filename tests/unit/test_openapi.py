"""OpenAPI v3: enough for kubectl's default `--validate=strict` (cli-runtime query_param_verifier_v3, KUBECTL.md §4)."""

from __future__ import annotations

from typing import Any

import pytest

from api.openapi import gv_path, openapi_v3_doc, openapi_v3_root, schema_name
from emulator.kinds import RESOURCE_TYPES, ResourceType

HTTP_METHODS = ("get", "put", "post", "patch", "delete")


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, item[m]) for path, item in doc["paths"].items() for m in HTTP_METHODS if m in item]


def supports_field_validation(doc: dict[str, Any], group: str, version: str, kind: str) -> bool:
    """What kubectl checks: a PATCH op for the GVK whose parameters include the fieldValidation query param.
    kubectl stops at the first matching PATCH it meets (map order), so every one of them must have it."""
    gvk = {"group": group, "version": version, "kind": kind}
    patches = [op for _, m, op in operations(doc) if m == "patch" and op["x-kubernetes-group-version-kind"] == gvk]
    return bool(patches) and all(
        any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op["parameters"]) for op in patches
    )


def test_root_lists_every_served_group_version_with_a_hash() -> None:
    root = openapi_v3_root()
    assert set(root["paths"]) == {
        "api/v1", "apis/networking.k8s.io/v1", "apis/discovery.k8s.io/v1", "apis/authentication.k8s.io/v1"
    }
    for path, entry in root["paths"].items():
        url = entry["serverRelativeURL"]
        prefix, _, digest = url.partition("?hash=")
        assert prefix == f"/openapi/v3/{path}"
        assert len(digest) == 16 and digest == digest.upper()


def test_hash_is_stable_and_distinct_per_document() -> None:
    first, second = openapi_v3_root(), openapi_v3_root()
    assert first == second
    hashes = [e["serverRelativeURL"].split("=")[1] for e in first["paths"].values()]
    assert len(set(hashes)) == len(hashes)


# Create-only kinds (TokenReview) have no PATCH, as on a real server: kubectl validates those client-side.
@pytest.mark.parametrize("resource", [r for r in RESOURCE_TYPES if "patch" in r.verbs], ids=lambda r: r.key)
def test_every_kind_passes_kubectls_field_validation_check(resource: ResourceType) -> None:
    doc = openapi_v3_doc(gv_path(resource.group, resource.version))
    assert doc is not None
    assert supports_field_validation(doc, resource.group, resource.version, resource.kind)


def test_namespace_is_in_the_v1_document() -> None:
    doc = openapi_v3_doc("api/v1")
    assert doc is not None
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["version"] == "v1.32.0"
    patch = doc["paths"]["/api/v1/namespaces/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Namespace"}
    assert patch["x-kubernetes-action"] == "patch"
    schema = doc["components"]["schemas"]["io.k8s.api.core.v1.Namespace"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Namespace"}]


def test_item_operations_for_a_namespaced_kind() -> None:
    doc = openapi_v3_doc("apis/networking.k8s.io/v1")
    assert doc is not None
    item = doc["paths"]["/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}"]
    assert {m for m in HTTP_METHODS if m in item} == {"get", "put", "patch", "delete"}
    assert {op: item[op]["x-kubernetes-action"] for op in ("get", "put", "patch", "delete")} == {
        "get": "get", "put": "put", "patch": "patch", "delete": "delete",
    }  # fmt: skip
    assert item["patch"]["operationId"] == "patchNetworkingV1NamespacedNetworkPolicy"
    assert {p["name"] for p in item["parameters"]} == {"name", "namespace"}
    assert any(p["name"] == "fieldValidation" for p in item["put"]["parameters"])
    collection = doc["paths"]["/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"]
    assert collection["get"]["x-kubernetes-action"] == "list"
    assert collection["post"]["x-kubernetes-action"] == "post"
    assert "/apis/networking.k8s.io/v1/networkpolicies" in doc["paths"]  # kubectl get -A


def test_patch_does_not_advertise_strategic_merge_patch() -> None:
    # Advertising it would make kubectl compute client-side apply patches from these key-less schemas.
    doc = openapi_v3_doc("api/v1")
    assert doc is not None
    for _, method, op in operations(doc):
        if method == "patch":
            content = op["requestBody"]["content"]
            assert "application/strategic-merge-patch+json" not in content
            assert "application/apply-patch+yaml" in content


def test_subresources_have_their_own_paths() -> None:
    doc = openapi_v3_doc("api/v1")
    assert doc is not None
    status = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/status"]
    assert set(status) >= {"get", "put", "patch"}
    token = doc["paths"]["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]
    assert token["post"]["x-kubernetes-group-version-kind"]["kind"] == "TokenRequest"
    assert "io.k8s.api.authentication.v1.TokenRequest" in doc["components"]["schemas"]


def refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for value in node.values() for r in refs_in(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs_in(value)]
    return []


def test_every_ref_resolves() -> None:
    for path in openapi_v3_root()["paths"]:
        doc = openapi_v3_doc(path)
        assert doc is not None
        schemas = doc["components"]["schemas"]
        for ref in refs_in(doc):
            assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_schema_per_kind_and_list() -> None:
    for r in RESOURCE_TYPES:
        doc = openapi_v3_doc(gv_path(r.group, r.version))
        assert doc is not None
        schemas = doc["components"]["schemas"]
        gvk = [{"group": r.group, "version": r.version, "kind": r.kind}]
        assert schemas[schema_name(r.group, r.version, r.kind)]["x-kubernetes-group-version-kind"] == gvk
        assert schema_name(r.group, r.version, r.list_kind) in schemas


def test_unknown_documents_and_tolerated_spellings() -> None:
    assert openapi_v3_doc("apis/apps/v1") is None
    assert openapi_v3_doc("api/v2") is None
    assert openapi_v3_doc("/api/v1?hash=ABC") == openapi_v3_doc("api/v1")


def test_returned_documents_are_copies() -> None:
    doc = openapi_v3_doc("api/v1")
    assert doc is not None
    doc["paths"].clear()
    again = openapi_v3_doc("api/v1")
    assert again is not None and again["paths"]
