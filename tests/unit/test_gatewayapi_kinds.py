"""The Gateway API kinds served built in (emulator/kinds/gatewayapi/ and the five kind modules) on the
write path: the upstream schema's defaults, pruning and validation, the CEL rules checked by hand (worded
as the API server words a failed x-kubernetes-validations rule), the status subresource, the columns
of `kubectl get`, discovery and OpenAPI; the GatewayClass the emulator writes at start; a definition of
the same names applied by a user (the upstream install) never takes them over; and the status
controller's merging of conditions (lastTransitionTime kept while a condition's status holds).

A real Store (in memory), Registry, the built-ins (`NamespaceController.bootstrap`) and the CRD
controller, no event loop: each write is delivered before it returns."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from api import discovery, openapi
from api.tables import table
from emulator import errors
from emulator.controllers.crd import CrdController
from emulator.controllers.gatewayapi import merge_conditions, route_status
from emulator.controllers.namespaces import NamespaceController
from emulator.kinds import (
    BY_KEY,
    CUSTOM_RESOURCE_DEFINITIONS,
    GATEWAY_CLASSES,
    GATEWAYS,
    GRPC_ROUTES,
    HTTP_ROUTES,
    REFERENCE_GRANTS,
    ResourceType,
    gatewayapi,
)
from emulator.kinds.gatewayclass import EMULATOR_GATEWAY_CLASS, GATEWAY_CONTROLLER
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import MERGE_PATCH, Cluster, Registry, WriteOptions
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

NS = "default"
STRICT = WriteOptions(field_validation="Strict")
NOW = datetime(2030, 1, 1, tzinfo=UTC)
GROUP = "gateway.networking.k8s.io"


@pytest.fixture
def registry() -> Registry:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099"), node_address="127.0.0.9"))
    registry.claim_stored()
    namespaces = NamespaceController(registry)
    crds = CrdController(registry)
    store.subscribe(namespaces.apply)
    store.subscribe(crds.apply)
    namespaces.bootstrap("127.0.0.1", 6443)
    return registry


def create(registry: Registry, rt: ResourceType, body: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return registry.create(rt, namespace if rt.namespaced else "", copy.deepcopy(body), STRICT).obj


def refused(call: Callable[[], object]) -> errors.StatusError:
    with pytest.raises(errors.StatusError) as caught:
        call()
    return caught.value


def causes(error: errors.StatusError) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in error.details.get("causes", [])]


def cells(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    doc = table(rt, [obj], "1", now=NOW)
    return {c["name"]: cell for c, cell in zip(doc["columnDefinitions"], doc["rows"][0]["cells"], strict=True)}


GATEWAY: dict[str, Any] = {"metadata": {"name": "gw"}, "spec": {"gatewayClassName": "emulator", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
ROUTE: dict[str, Any] = {"metadata": {"name": "web"}, "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}


# -- served built in -------------------------------------------------------------------------------


def test_the_kinds_are_served_at_their_upstream_versions_with_names_and_columns() -> None:
    served = {rt.kind: (rt.api_version, rt.plural, rt.short_names, rt.namespaced) for rt in (GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, GRPC_ROUTES, REFERENCE_GRANTS)}
    assert served == {
        "GatewayClass": (f"{GROUP}/v1", "gatewayclasses", ("gc",), False),
        "Gateway": (f"{GROUP}/v1", "gateways", ("gtw",), True),
        "HTTPRoute": (f"{GROUP}/v1", "httproutes", (), True),
        "GRPCRoute": (f"{GROUP}/v1", "grpcroutes", (), True),
        "ReferenceGrant": (f"{GROUP}/v1beta1", "referencegrants", ("refgrant",), True),
    }
    assert all(rt.categories == ("gateway-api",) for rt in (GATEWAYS, HTTP_ROUTES))
    assert [s.name for s in GATEWAYS.subresources] == ["status"] and REFERENCE_GRANTS.subresources == ()
    assert [c.name for c in BY_KEY[GATEWAYS.key].printer.columns] == ["Name", "Class", "Address", "Programmed", "Age"]
    assert gatewayapi.definition("httproutes")["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == gatewayapi.SOURCE_TAG


def test_discovery_and_openapi_carry_the_upstream_schemas() -> None:
    groups = {g["name"]: g for g in discovery.api_group_list()["groups"]}
    assert {v["version"] for v in groups[GROUP]["versions"]} == {"v1", "v1beta1"}
    doc = openapi.openapi_v3_doc(f"apis/{GROUP}/v1")
    assert doc is not None
    schema = next(s for s in doc["components"]["schemas"].values() if {"group": GROUP, "version": "v1", "kind": "HTTPRoute"} in s.get("x-kubernetes-group-version-kind", []))
    spec = schema["properties"]["spec"]
    assert {"parentRefs", "hostnames", "rules"} <= set(spec["properties"])
    assert "ParentRefs references the resources" in spec["properties"]["parentRefs"]["description"]


# -- the write path --------------------------------------------------------------------------------


def test_the_emulator_gateway_class_exists_at_start_and_is_kept_as_the_user_left_it(registry: Registry) -> None:
    gc = registry.get(GATEWAY_CLASSES, "", EMULATOR_GATEWAY_CLASS)
    assert gc["spec"]["controllerName"] == GATEWAY_CONTROLLER
    assert gc["status"]["conditions"][0]["reason"] == "Pending"  # the schema's default until the controller writes
    gc["spec"]["description"] = "mine"
    registry.update(GATEWAY_CLASSES, "", EMULATOR_GATEWAY_CLASS, gc)
    NamespaceController(registry).bootstrap("127.0.0.1", 6443)
    assert registry.get(GATEWAY_CLASSES, "", EMULATOR_GATEWAY_CLASS)["spec"]["description"] == "mine"


def test_defaults_are_applied_and_unknown_fields_refused_when_strict(registry: Registry) -> None:
    route = create(registry, HTTP_ROUTES, ROUTE)
    assert route["apiVersion"] == f"{GROUP}/v1" and route["metadata"]["generation"] == 1
    assert route["spec"]["parentRefs"] == [{"group": GROUP, "kind": "Gateway", "name": "gw"}]
    assert route["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert route["spec"]["rules"][0]["backendRefs"][0] == {"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 1}
    gw = create(registry, GATEWAYS, GATEWAY)
    assert gw["spec"]["listeners"][0]["allowedRoutes"] == {"namespaces": {"from": "Same"}}
    assert [c["reason"] for c in gw["status"]["conditions"]] == ["Pending", "Pending"]
    error = refused(lambda: create(registry, HTTP_ROUTES, {"metadata": {"name": "typo"}, "spec": {"hostnamez": ["a"]}}))
    assert error.code == 400 and "spec.hostnamez" in error.message


@pytest.mark.parametrize(
    ("rt", "body", "expected"),
    [
        (GATEWAYS, {"spec": {"gatewayClassName": "emulator", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}, {"name": "http", "port": 81, "protocol": "HTTP"}]}},
         [("spec.listeners", 'Invalid value: "array": Listener name must be unique within the Gateway')]),
        (GATEWAYS, {"spec": {"gatewayClassName": "emulator", "listeners": [{"name": "a", "port": 80, "protocol": "HTTP"}, {"name": "b", "port": 80, "protocol": "HTTP"}]}},
         [("spec.listeners", 'Invalid value: "array": Combination of port, protocol and hostname must be unique for each listener')]),
        (GATEWAYS, {"spec": {"gatewayClassName": "emulator", "listeners": [{"name": "a", "port": 80, "protocol": "HTTP", "tls": {"certificateRefs": [{"name": "s"}]}}]}},
         [("spec.listeners", "Invalid value: \"array\": tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")]),
        (GATEWAYS, {"spec": {"gatewayClassName": "emulator", "listeners": [{"name": "a", "port": 443, "protocol": "HTTPS", "tls": {"mode": "Terminate"}}]}},
         [("spec.listeners[0].tls", 'Invalid value: "object": certificateRefs or options must be specified when mode is Terminate')]),
        (GATEWAYS, {"spec": {"gatewayClassName": "emulator", "listeners": [{"name": "a", "port": 0, "protocol": "HTTP"}]}},
         [("spec.listeners[0].port", "Invalid value: 0: spec.listeners[0].port in body should be greater than or equal to 1")]),
        (HTTP_ROUTES, {"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "no-slash"}}]}]}},
         [("spec.rules[0].matches[0].path", "Invalid value: \"object\": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']")]),
        (HTTP_ROUTES, {"spec": {"rules": [{"backendRefs": [{"name": "web"}]}]}},
         [("spec.rules[0].backendRefs[0]", 'Invalid value: "object": Must have port for Service reference')]),
        (HTTP_ROUTES, {"spec": {"rules": [{"backendRefs": [{"name": "web", "port": 80}], "filters": [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}}]}]}},
         [("spec.rules[0]", 'Invalid value: "object": RequestRedirect filter must not be used together with backendRefs')]),
        (HTTP_ROUTES, {"spec": {"rules": [{"filters": [{"type": "RequestHeaderModifier"}]}]}},
         [("spec.rules[0].filters[0]", 'Invalid value: "object": filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type')]),
        (HTTP_ROUTES, {"spec": {"parentRefs": [{"name": "gw"}, {"name": "gw", "sectionName": "http"}]}},
         [("spec.parentRefs", 'Invalid value: "array": sectionName must be specified when parentRefs includes 2 or more references to the same parent')]),
        (HTTP_ROUTES, {"spec": {"rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 305}}]}]}},
         [("spec.rules[0].filters[0].requestRedirect.statusCode", 'Unsupported value: \"305\": supported values: "301", "302", "303", "307", "308"')]),
        (GRPC_ROUTES, {"spec": {"rules": [{"matches": [{"method": {"service": "bad service!", "method": "Echo"}}]}]}},
         [("spec.rules[0].matches[0].method", 'Invalid value: "object": service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)')]),
        (REFERENCE_GRANTS, {"spec": {"from": [], "to": [{"group": "", "kind": "Service"}]}},
         [("spec.from", "Invalid value: 0: spec.from in body should have at least 1 items")]),
    ],
    ids=["listener-names", "listener-combination", "tls-on-http", "tls-without-certificates", "port-bounds", "path-absolute",
         "backend-port", "redirect-with-backends", "filter-config", "parent-section", "status-code-enum", "grpc-service", "grant-from"],
)
def test_invalid_objects_get_the_api_servers_422(registry: Registry, rt: ResourceType, body: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    error = refused(lambda: create(registry, rt, {"metadata": {"name": "bad"}, **body}))
    assert error.code == 422
    assert causes(error) == expected
    assert registry.store.get(rt.key, NS if rt.namespaced else "", "bad") is None


def test_the_controller_name_of_a_gateway_class_is_immutable(registry: Registry) -> None:
    gc = create(registry, GATEWAY_CLASSES, {"metadata": {"name": "mine"}, "spec": {"controllerName": "example.com/mine"}})
    gc["spec"]["controllerName"] = "example.com/other"
    error = refused(lambda: registry.update(GATEWAY_CLASSES, "", "mine", gc))
    assert causes(error) == [("spec.controllerName", 'Invalid value: "string": Value is immutable')]


def test_spec_changes_bump_the_generation_and_status_writes_do_not(registry: Registry) -> None:
    create(registry, GATEWAYS, GATEWAY)
    registry.patch(GATEWAYS, NS, "gw", MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}})
    assert registry.get(GATEWAYS, NS, "gw")["metadata"]["generation"] == 1
    registry.patch(GATEWAYS, NS, "gw", MERGE_PATCH, {"spec": {"listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}})
    gw = registry.get(GATEWAYS, NS, "gw")
    assert gw["metadata"]["generation"] == 2
    status = {"addresses": [{"type": "IPAddress", "value": "127.0.0.1"}], "conditions": [
        {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "", "lastTransitionTime": "2030-01-01T00:00:00Z", "observedGeneration": 2},
    ]}
    registry.replace_object(GATEWAYS, gw, {**gw, "status": status}, subresource="status")
    gw = registry.get(GATEWAYS, NS, "gw")
    assert gw["metadata"]["generation"] == 2 and gw["status"] == status
    shown = cells(GATEWAYS, gw)
    assert (shown["Name"], shown["Class"], shown["Address"], shown["Programmed"]) == ("gw", "emulator", "127.0.0.1", "True")


def test_route_columns(registry: Registry) -> None:
    route = create(registry, HTTP_ROUTES, {**ROUTE, "spec": {**ROUTE["spec"], "hostnames": ["a.example.com", "b.example.com"]}})
    assert cells(HTTP_ROUTES, route)["Hostnames"] == '["a.example.com","b.example.com"]'


@pytest.mark.parametrize("plural", ["httproutes", "gateways", "referencegrants"])
def test_the_upstream_definition_applied_by_a_user_does_not_take_over(registry: Registry, plural: str) -> None:
    before = (dict(BY_KEY),)
    crd = copy.deepcopy(gatewayapi.definition(plural))
    create(registry, CUSTOM_RESOURCE_DEFINITIONS, crd)
    stored = registry.get(CUSTOM_RESOURCE_DEFINITIONS, "", f"{plural}.{GROUP}")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in stored["status"]["conditions"]}
    assert conditions["NamesAccepted"] == ("False", "PluralConflict")
    assert conditions["Established"][0] == "False"
    assert (dict(BY_KEY),) == before
    create(registry, HTTP_ROUTES, ROUTE)  # still served built in


# -- the status controller's merging ---------------------------------------------------------------


def cond(kind: str, status: str, reason: str, generation: int = 1) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": "", "observedGeneration": generation}


def test_merge_conditions_keeps_the_transition_time_while_the_status_holds() -> None:
    old = [{**cond("Accepted", "True", "Accepted"), "lastTransitionTime": "then"}, {**cond("ResolvedRefs", "True", "ResolvedRefs"), "lastTransitionTime": "then"}]
    new = [cond("Accepted", "True", "Accepted", 2), cond("ResolvedRefs", "False", "RefNotPermitted", 2)]
    merged = merge_conditions(old, new, "now")
    assert [(c["type"], c["lastTransitionTime"], c["observedGeneration"]) for c in merged] == [("Accepted", "then", 2), ("ResolvedRefs", "now", 2)]


def test_route_status_keeps_other_controllers_parents_and_drops_ours_no_longer_wanted() -> None:
    theirs = {"parentRef": {"name": "other"}, "controllerName": "example.com/other", "conditions": []}
    stale = {"parentRef": {"name": "gone"}, "controllerName": GATEWAY_CONTROLLER, "conditions": []}
    kept = {"parentRef": {"name": "gw"}, "controllerName": GATEWAY_CONTROLLER, "conditions": [{**cond("Accepted", "True", "Accepted"), "lastTransitionTime": "then"}]}
    desired = {"parents": [{"parentRef": {"name": "gw"}, "controllerName": GATEWAY_CONTROLLER, "conditions": [cond("Accepted", "True", "Accepted")]}]}
    new = route_status({"parents": [theirs, stale, kept]}, desired, GATEWAY_CONTROLLER, "now")
    assert new == {"parents": [theirs, kept]}
    assert route_status({"parents": [theirs, stale]}, None, GATEWAY_CONTROLLER, "now") == {"parents": [theirs]}


def test_the_other_served_versions_store_in_the_kinds_version() -> None:
    from emulator.kinds import gateway, gatewayclass, grpcroute, httproute, referencegrant

    others = [*gatewayclass.OTHER_VERSIONS, *gateway.OTHER_VERSIONS, *httproute.OTHER_VERSIONS, *grpcroute.OTHER_VERSIONS, *referencegrant.OTHER_VERSIONS]
    assert [(k.resource.api_version, k.resource.kind) for k in others] == [
        (f"{GROUP}/v1beta1", "GatewayClass"), (f"{GROUP}/v1beta1", "Gateway"), (f"{GROUP}/v1beta1", "HTTPRoute"), (f"{GROUP}/v1", "ReferenceGrant"),
    ]
    for kind in others:
        main = BY_KEY[kind.resource.key]
        assert kind.strategy is not None and main.strategy is not None
        assert kind.strategy.storage_api_version == main.resource.api_version
        assert issubclass(kind.strategy, main.strategy)  # the same hand-checked rules
        assert kind.strategy.resource is kind.resource
        assert [c.name for c in kind.printer.columns] == [c.name for c in main.printer.columns]
