"""Discovery documents and Accept negotiation, checked against what kubectl 1.32 sends and needs (KUBECTL.md §2, §3, §12)."""

from __future__ import annotations

import pytest

from api.discovery import (
    AGGREGATED_CONTENT_TYPE,
    aggregated_content_type,
    aggregated_core,
    aggregated_discovery_version,
    aggregated_groups,
    api_group,
    api_group_list,
    api_resource_list,
    api_versions,
    parse_accept,
    table_version,
    version_info,
    wants_table,
)
from emulator.kinds import RESOURCE_TYPES

KUBECTL_132_DISCOVERY = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
KUBECTL_129_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
KUBECTL_TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def resources_by_name(doc: dict) -> dict[str, dict]:
    return {r["resource"]: r for item in doc["items"] for v in item["versions"] for r in v["resources"]}


def test_version_reports_1_32_so_the_dispatcher_runs_kubectl_1_32() -> None:
    v = version_info()
    assert (v["major"], v["minor"]) == ("1", "32")
    assert v["gitVersion"].startswith("v1.32.")
    assert set(v) == {
        "major", "minor", "gitVersion", "gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform",
    }  # fmt: skip


# --- Accept negotiation -----------------------------------------------------------------------------------


def test_parse_accept_reads_params_and_keeps_client_order() -> None:
    media = parse_accept(KUBECTL_TABLE)
    assert [m.essence for m in media] == ["application/json"] * 3
    assert media[0].params == {"as": "Table", "v": "v1", "g": "meta.k8s.io"}
    assert media[1].params["v"] == "v1beta1"
    assert media[2].is_plain()


def test_parse_accept_orders_by_q_and_drops_q_zero_and_junk() -> None:
    media = parse_accept('text/plain;q=0.5, application/json;q=0, garbage, application/yaml;charset="utf-8"')
    assert [m.essence for m in media] == ["application/yaml", "text/plain"]
    assert media[0].params == {"charset": "utf-8"}


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        (KUBECTL_132_DISCOVERY, "v2"),
        (KUBECTL_129_DISCOVERY, "v2beta1"),  # never v2 to a client that did not ask for it
        ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", "v2beta1"),
        ("application/json, */*", None),  # legacy discovery / DynamicClient
        ("application/json", None),
        ("", None),
        (None, None),
        # plain JSON preferred over aggregated: the client gets what it listed first
        ("application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", None),
        # an unknown version is skipped, not matched
        ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json", None),
        # we never emit protobuf; the JSON entry behind it wins
        (
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            "v2beta1",
        ),
        # q values outrank order
        (
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList;q=0.5,"
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "v2",
        ),
    ],
)
def test_aggregated_discovery_version(accept: str | None, version: str | None) -> None:
    assert aggregated_discovery_version(accept) == version


def test_aggregated_content_type_is_exact() -> None:
    assert AGGREGATED_CONTENT_TYPE == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert (
        aggregated_content_type("v2beta1")
        == "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    )


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (KUBECTL_TABLE, "v1"),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", "v1beta1"),
        ("application/json", None),
        ("application/vnd.kubernetes.protobuf,application/json", None),
        (KUBECTL_132_DISCOVERY, None),
        ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", None),
    ],
)
def test_table_negotiation(accept: str, expected: str | None) -> None:
    assert table_version(accept) == expected
    assert wants_table(accept) is (expected is not None)


# --- aggregated discovery ---------------------------------------------------------------------------------


def test_aggregated_core_shape() -> None:
    doc = aggregated_core("v2")
    assert doc["kind"] == "APIGroupDiscoveryList"
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert doc["metadata"] == {}
    [item] = doc["items"]
    assert item["metadata"] == {"creationTimestamp": None}  # the core group has no name
    [version] = item["versions"]
    assert version["version"] == "v1" and version["freshness"] == "Current"

    pods = resources_by_name(doc)["pods"]
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["scope"] == "Namespaced"
    assert pods["singularResource"] == "pod"
    assert pods["shortNames"] == ["po"]
    assert pods["categories"] == ["all"]
    assert pods["verbs"] == ALL_VERBS
    subresources = {s["subresource"]: s for s in pods["subresources"]}
    assert subresources["status"] == {
        "subresource": "status",
        "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
        "verbs": ["get", "patch", "update"],
    }
    assert subresources["exec"] == {  # as the API server lists it (kubectl exec, cp)
        "subresource": "exec",
        "responseKind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
        "verbs": ["create", "get"],
    }
    assert {"attach", "portforward"} <= subresources.keys()


def test_aggregated_core_lists_every_core_kind_with_short_names_and_scope() -> None:
    res = resources_by_name(aggregated_core())
    assert set(res) == {r.plural for r in RESOURCE_TYPES if r.group == ""}
    assert {name: r.get("shortNames") for name, r in res.items()} == {
        "namespaces": ["ns"], "pods": ["po"], "services": ["svc"], "endpoints": ["ep"],
        "serviceaccounts": ["sa"], "events": ["ev"], "bindings": None, "configmaps": ["cm"], "secrets": None, "nodes": ["no"],
        "persistentvolumes": ["pv"], "persistentvolumeclaims": ["pvc"], "limitranges": ["limits"],
        "resourcequotas": ["quota"], "replicationcontrollers": ["rc"],
    }  # fmt: skip
    assert res["namespaces"]["scope"] == "Cluster"
    assert "deletecollection" not in res["namespaces"]["verbs"]
    # `kubectl get all`: the core kinds in it
    assert sorted(n for n, r in res.items() if "all" in r.get("categories", [])) == ["pods", "replicationcontrollers", "services"]
    # empty lists are omitted like Go's omitempty
    assert "categories" not in res["endpoints"] and "subresources" not in res["endpoints"]
    token = next(s for s in res["serviceaccounts"]["subresources"] if s["subresource"] == "token")
    assert token == {
        "subresource": "token",
        "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
        "verbs": ["create"],
    }


def test_aggregated_groups_one_item_per_named_group() -> None:
    doc = aggregated_groups("v2")
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    names = [item["metadata"]["name"] for item in doc["items"]]
    assert sorted(names) == ["admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "apps", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch", "coordination.k8s.io", "discovery.k8s.io", "gateway.networking.k8s.io", "metrics.k8s.io", "networking.k8s.io", "node.k8s.io", "policy", "rbac.authorization.k8s.io", "scheduling.k8s.io", "storage.k8s.io"]
    for item in doc["items"]:
        assert item["metadata"]["creationTimestamp"] is None
    res = resources_by_name(doc)
    assert res["networkpolicies"] == {
        "resource": "networkpolicies",
        "responseKind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
        "scope": "Namespaced",
        "singularResource": "networkpolicy",
        "shortNames": ["netpol"],
        "verbs": ALL_VERBS,
    }
    assert res["endpointslices"]["responseKind"]["group"] == "discovery.k8s.io"
    assert "shortNames" not in res["endpointslices"]


def test_v2beta1_has_the_same_shape_under_its_own_api_version() -> None:
    v2, beta = aggregated_groups("v2"), aggregated_groups("v2beta1")
    assert beta["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    assert beta["items"] == v2["items"]
    assert aggregated_core("v2beta1")["items"] == aggregated_core("v2")["items"]


def test_unknown_aggregated_version_is_refused() -> None:
    with pytest.raises(ValueError):
        aggregated_core("v3")


# --- legacy discovery -------------------------------------------------------------------------------------


def test_api_versions() -> None:
    assert api_versions("127.0.0.1:8080") == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:8080"}],
    }


def test_api_group_list_and_group() -> None:
    doc = api_group_list()
    assert doc["kind"] == "APIGroupList" and doc["apiVersion"] == "v1"
    groups = {g["name"]: g for g in doc["groups"]}
    assert set(groups) == {"apiextensions.k8s.io", "apiregistration.k8s.io", "apps", "autoscaling", "policy", "networking.k8s.io", "discovery.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "rbac.authorization.k8s.io", "batch", "metrics.k8s.io", "gateway.networking.k8s.io", "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "admissionregistration.k8s.io", "node.k8s.io"}
    assert groups["networking.k8s.io"] == {
        "name": "networking.k8s.io",
        "versions": [{"groupVersion": "networking.k8s.io/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "networking.k8s.io/v1", "version": "v1"},
    }
    assert api_group("networking.k8s.io") == {"kind": "APIGroup", "apiVersion": "v1", **groups["networking.k8s.io"]}
    assert api_group("") is None
    assert api_group("flowcontrol.apiserver.k8s.io") is None  # (a 1.32 group the emulator does not serve)


def test_core_resource_list_includes_subresources_after_their_parent() -> None:
    doc = api_resource_list("", "v1")
    assert doc is not None
    assert (doc["kind"], doc["apiVersion"], doc["groupVersion"]) == ("APIResourceList", "v1", "v1")
    names = [r["name"] for r in doc["resources"]]
    assert names.index("pods/status") == names.index("pods") + 1
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["pods"] == {
        "name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
        "verbs": ALL_VERBS, "shortNames": ["po"], "categories": ["all"],
    }  # fmt: skip
    assert by_name["pods/status"] == {
        "name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get", "patch", "update"],
    }  # fmt: skip
    assert by_name["serviceaccounts/token"] == {
        "name": "serviceaccounts/token", "singularName": "", "namespaced": True,
        "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"],
    }  # fmt: skip
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["namespaces/finalize"]["verbs"] == ["update"]
    assert by_name["services"]["shortNames"] == ["svc"]


def test_group_resource_list() -> None:
    doc = api_resource_list("networking.k8s.io", "v1")
    assert doc is not None
    assert doc["groupVersion"] == "networking.k8s.io/v1"
    assert [r["name"] for r in doc["resources"]] == ["networkpolicies", "ingressclasses", "ingresses", "ingresses/status"]
    assert doc["resources"][0]["shortNames"] == ["netpol"]
    assert api_resource_list("networking.k8s.io", "v1beta1") is None
    assert api_resource_list("batch", "v2") is None


def test_every_table_row_is_discoverable_both_ways() -> None:
    aggregated = {
        (r["responseKind"]["group"], r["resource"]): r
        for doc in (aggregated_core(), aggregated_groups()) for item in doc["items"] for v in item["versions"] for r in v["resources"]
    }  # by group too: metrics.k8s.io has its own `pods` and `nodes`
    for r in RESOURCE_TYPES:
        assert aggregated[(r.group, r.plural)]["responseKind"]["kind"] == r.kind
        legacy = api_resource_list(r.group, r.version)
        assert legacy is not None
        assert any(e["name"] == r.plural and e["kind"] == r.kind for e in legacy["resources"])
