"""compile_gateway_api as tables: the Gateway API conformance cases (conformance/tests/*.go of
kubernetes-sigs/gateway-api v1.6.1) the emulator follows, each test named after its case, checked on the
statuses the compiler asks for and on where requests go (`routing.match.find` over the compiled
routes). Objects are given as a user writes them, with the schema's defaults applied as the API server
would."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.kinds.custom import apply_defaults
from emulator.kinds.gateway import GATEWAYS, GatewayStrategy
from emulator.kinds.gatewayclass import GATEWAY_CLASSES, GATEWAY_CONTROLLER, GatewayClassStrategy
from emulator.kinds.grpcroute import GRPC_ROUTES, GRPCRouteStrategy
from emulator.kinds.httproute import HTTP_ROUTES, HTTPRouteStrategy
from emulator.kinds.referencegrant import ReferenceGrantStrategy
from emulator.routing.gatewayapi import compile_gateway_api, host_matches, intersect_hostnames, with_unbound_ports
from emulator.routing.match import find
from emulator.routing.model import SHARED_HTTP, SHARED_HTTPS, Compiled, ListenerRoutes, ObjectRef
from emulator.routing.sources import RoutingObjects, RoutingSettings
from emulator.security import tls

INFRA = "gateway-conformance-infra"
APP = "gateway-conformance-app-backend"
WEB = "gateway-conformance-web-backend"
SETTINGS = RoutingSettings()
STAMP = "2030-01-01T00:00:{:02d}Z"

_counter = [0]


def _meta(name: str, namespace: str | None, **extra: Any) -> dict[str, Any]:
    _counter[0] += 1
    meta: dict[str, Any] = {"name": name, "generation": 1, "creationTimestamp": STAMP.format(_counter[0] % 60), **extra}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def gateway_class(name: str = "emulator", controller: str = GATEWAY_CONTROLLER) -> dict[str, Any]:
    obj = {"kind": "GatewayClass", "metadata": _meta(name, None), "spec": {"controllerName": controller}}
    apply_defaults(GatewayClassStrategy.schema, obj)
    return obj


def listener(name: str, port: int = 80, protocol: str = "HTTP", hostname: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "port": port, "protocol": protocol, **extra}
    if hostname is not None:
        out["hostname"] = hostname
    return out


def gateway(name: str, *listeners: dict[str, Any], namespace: str = INFRA, cls: str = "emulator", **spec: Any) -> dict[str, Any]:
    obj = {"kind": "Gateway", "metadata": _meta(name, namespace), "spec": {"gatewayClassName": cls, "listeners": list(listeners), **spec}}
    apply_defaults(GatewayStrategy.schema, obj)
    return obj


def backend(name: str, port: int = 8080, **extra: Any) -> dict[str, Any]:
    return {"name": name, "port": port, **extra}


def rule(*backends: dict[str, Any], path: str | None = None, path_type: str = "PathPrefix", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"backendRefs": list(backends), **extra}
    if path is not None:
        out["matches"] = [{"path": {"type": path_type, "value": path}}]
    return out


def http_route(name: str, parents: list[dict[str, Any]], *rules: dict[str, Any], hostnames: tuple[str, ...] = (), namespace: str = INFRA) -> dict[str, Any]:
    spec: dict[str, Any] = {"parentRefs": parents, "rules": list(rules)}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    obj = {"kind": "HTTPRoute", "metadata": _meta(name, namespace), "spec": spec}
    apply_defaults(HTTPRouteStrategy.schema, obj)
    return obj


def grpc_route(name: str, parents: list[dict[str, Any]], *rules: dict[str, Any], namespace: str = INFRA) -> dict[str, Any]:
    obj = {"kind": "GRPCRoute", "metadata": _meta(name, namespace), "spec": {"parentRefs": parents, "rules": list(rules)}}
    apply_defaults(GRPCRouteStrategy.schema, obj)
    return obj


def service(name: str, namespace: str = INFRA, *ports: int) -> dict[str, Any]:
    return {"kind": "Service", "metadata": _meta(name, namespace), "spec": {"type": "ClusterIP", "ports": [{"port": p} for p in ports or (8080,)]}}


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": _meta(name, None, labels={"kubernetes.io/metadata.name": name, **labels})}


def reference_grant(name: str, namespace: str, from_kind: str, from_namespace: str, to_kind: str = "Service", to_name: str | None = None) -> dict[str, Any]:
    to: dict[str, Any] = {"group": "", "kind": to_kind}
    if to_name:
        to["name"] = to_name
    obj = {
        "kind": "ReferenceGrant", "metadata": _meta(name, namespace),
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": from_kind, "namespace": from_namespace}], "to": [to]},
    }
    apply_defaults(ReferenceGrantStrategy.schema, obj)
    return obj


def tls_secret(name: str, namespace: str = INFRA, host: str = "example.org") -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = tls.self_signed_certificate(key, [host]).encode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "kind": "Secret", "type": "kubernetes.io/tls", "metadata": _meta(name, namespace),
        "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key_pem).decode()},
    }


_FIELDS = {
    "GatewayClass": "gateway_classes", "Gateway": "gateways", "HTTPRoute": "http_routes", "GRPCRoute": "grpc_routes",
    "ReferenceGrant": "reference_grants", "Service": "services", "Namespace": "namespaces", "Secret": "tls_secrets",
}


def compile_all(*objs: dict[str, Any], settings: RoutingSettings = SETTINGS) -> Compiled:
    """Compile the objects, with the class `emulator` and the namespaces the cases use."""
    found = RoutingObjects()
    everything = [gateway_class(), namespace(INFRA), namespace(APP), namespace(WEB), *objs]
    for obj in everything:
        meta = obj["metadata"]
        getattr(found, _FIELDS[obj["kind"]])[(meta.get("namespace", ""), meta["name"])] = copy.deepcopy(obj)
    return compile_gateway_api(found, settings)


def gw_status(result: Compiled, name: str, namespace: str = INFRA) -> dict[str, Any]:
    return result.statuses[ObjectRef(GATEWAYS.key, namespace, name)]


def listener_status(result: Compiled, gw: str, name: str) -> dict[str, Any]:
    return next(item for item in gw_status(result, gw)["listeners"] if item["name"] == name)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def parents(result: Compiled, name: str, namespace: str = INFRA, resource: str = HTTP_ROUTES.key) -> list[dict[str, Any]]:
    status = result.statuses.get(ObjectRef(resource, namespace, name))
    return status["parents"] if status else []


def route_conditions(result: Compiled, name: str, namespace: str = INFRA, resource: str = HTTP_ROUTES.key) -> dict[str, tuple[str, str]]:
    found = parents(result, name, namespace, resource)
    assert len(found) == 1, found
    return conditions(found[0])


def goes_to(routes: ListenerRoutes, host: str, path: str = "/", **request: Any) -> str | int:
    """Where a request goes: the backend service `ns/name` (one backend), or 404 / 500."""
    found = find(routes, host, path, **request)
    if found is None:
        return 404
    action = found[0].action
    if action.problem or not action.backends or action.backends[0].problem:
        return 500
    return f"{action.backends[0].namespace}/{action.backends[0].service}"


def to_gw(name: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": name, "namespace": INFRA, **extra}]


BACKENDS = [service("infra-backend-v1"), service("infra-backend-v2"), service("infra-backend-v3")]


# -- hostnames (pure) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("very.specific.com", "very.specific.com", True),
        ("*.wildcard.io", "foo.wildcard.io", True),
        ("*.wildcard.io", "foo.bar.wildcard.io", True),
        ("*.wildcard.io", "wildcard.io", False),
        ("*.example.com", "*.foo.example.com", True),
        ("*.foo.example.com", "*.example.com", False),
    ],
)
def test_host_matches_covers_any_depth_under_a_wildcard(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("listener_host", "route_hosts", "expected"),
    [
        (None, [], [""]),
        (None, ["a.com"], ["a.com"]),
        ("very.specific.com", [], ["very.specific.com"]),
        ("very.specific.com", ["non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com"], ["very.specific.com"]),
        ("*.wildcard.io", ["non.matching.com", "wildcard.io", "foo.wildcard.io"], ["foo.wildcard.io"]),
        ("very.specific.com", ["*.specific.com"], ["very.specific.com"]),
        ("*.anotherwildcard.io", ["*.anotherwildcard.io"], ["*.anotherwildcard.io"]),
        ("*.example.com", ["*.foo.example.com"], ["*.foo.example.com"]),
        ("*.foo.example.com", ["*.example.com"], ["*.foo.example.com"]),
        ("very.specific.com", ["other.com"], []),
    ],
)
def test_intersect_hostnames(listener_host: str | None, route_hosts: list[str], expected: list[str]) -> None:
    assert intersect_hostnames(listener_host, route_hosts) == expected


# -- GatewayClass ----------------------------------------------------------------------------------


def test_gatewayclass_of_our_controller_is_accepted_with_observed_generation() -> None:  # GatewayClassObservedGenerationBump
    other = gateway_class("other", "example.com/other")
    bumped = gateway_class("bumped")
    bumped["metadata"]["generation"] = 3
    result = compile_all(other, bumped)
    status = result.statuses[ObjectRef(GATEWAY_CLASSES.key, "", "bumped")]
    assert conditions(status) == {"Accepted": ("True", "Accepted"), "SupportedVersion": ("True", "SupportedVersion")}
    assert {c["observedGeneration"] for c in status["conditions"]} == {3}
    assert {"name": "HTTPRoute"} in status["supportedFeatures"]
    assert ObjectRef(GATEWAY_CLASSES.key, "", "other") not in result.statuses


def test_gateway_of_another_class_is_left_alone() -> None:
    result = compile_all(gateway_class("other", "example.com/other"), gateway("theirs", listener("http"), cls="other"))
    assert ObjectRef(GATEWAYS.key, INFRA, "theirs") not in result.statuses
    assert result.config.listeners == {}


# -- Gateway and listeners -------------------------------------------------------------------------


def test_gateway_with_attached_routes() -> None:  # GatewayWithAttachedRoutes
    gw1 = gateway("gateway-with-one-attached-route", listener("http", hostname="foo.example.com"))
    gw2 = gateway("gateway-with-two-attached-routes", listener("http"))
    routes = [
        http_route("http-route-1", to_gw("gateway-with-one-attached-route"), rule(backend("infra-backend-v1"))),
        http_route("http-route-2", to_gw("gateway-with-two-attached-routes"), rule(backend("infra-backend-v1"))),
        http_route("http-route-3", to_gw("gateway-with-two-attached-routes"), rule(backend("infra-backend-v1"))),
        http_route("http-route-not-accepted", to_gw("gateway-with-one-attached-route"), rule(backend("infra-backend-v1")), hostnames=("bar.example.com",)),
    ]
    result = compile_all(gw1, gw2, *routes, *BACKENDS)
    one = listener_status(result, "gateway-with-one-attached-route", "http")
    assert one["attachedRoutes"] == 1
    assert one["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}, {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}]
    assert conditions(one) == {
        "Accepted": ("True", "Accepted"), "Conflicted": ("False", "NoConflicts"),
        "Programmed": ("True", "Programmed"), "ResolvedRefs": ("True", "ResolvedRefs"),
    }
    assert listener_status(result, "gateway-with-two-attached-routes", "http")["attachedRoutes"] == 2
    assert route_conditions(result, "http-route-not-accepted")["Accepted"] == ("False", "NoMatchingListenerHostname")
    status = gw_status(result, "gateway-with-two-attached-routes")
    assert conditions(status) == {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
    assert status["addresses"] == [{"type": "IPAddress", "value": "127.0.0.1"}]


def test_gateway_with_attached_routes_with_port_8080() -> None:  # GatewayWithAttachedRoutesWithPort8080
    gw = gateway("gateway-with-two-listeners-and-one-attached-route", listener("http-unattached", 80), listener("http", 8080))
    route = http_route("http-route-4", to_gw("gateway-with-two-listeners-and-one-attached-route", sectionName="http"), rule(backend("infra-backend-v1")))
    result = compile_all(gw, route, *BACKENDS)
    assert listener_status(result, gw["metadata"]["name"], "http")["attachedRoutes"] == 1
    assert listener_status(result, gw["metadata"]["name"], "http-unattached")["attachedRoutes"] == 0
    assert goes_to(result.config.listeners[(8080, "HTTP")], "anything.example") == f"{INFRA}/infra-backend-v1"
    assert goes_to(result.config.listeners[SHARED_HTTP], "anything.example") == 404


def test_gateway_invalid_listeners_unsupported_protocol() -> None:  # GatewayInvalidListenersUnsupportedProtocol
    only = gateway("gateway-only-unsupported-protocols", listener("invalid", 80, "TCP"))
    mixed = gateway("gateway-supported-and-unsupported-protocols", listener("http", 80), listener("invalid", 81, "UDP"))
    result = compile_all(only, mixed)
    assert conditions(gw_status(result, "gateway-only-unsupported-protocols"))["Accepted"] == ("False", "ListenersNotValid")
    invalid = listener_status(result, "gateway-only-unsupported-protocols", "invalid")
    assert invalid["supportedKinds"] == [] and invalid["attachedRoutes"] == 0
    assert conditions(invalid)["Accepted"] == ("False", "UnsupportedProtocol")
    assert conditions(gw_status(result, "gateway-supported-and-unsupported-protocols"))["Accepted"] == ("True", "ListenersNotValid")
    assert conditions(listener_status(result, "gateway-supported-and-unsupported-protocols", "http"))["Accepted"] == ("True", "Accepted")


def test_gateway_invalid_route_kind() -> None:  # GatewayInvalidRouteKind
    only = gateway("gateway-only-invalid-route-kind", listener("http", allowedRoutes={"kinds": [{"kind": "InvalidRoute"}]}))
    mixed = gateway("gateway-supported-and-invalid-route-kind", listener("http", allowedRoutes={"kinds": [{"kind": "InvalidRoute"}, {"kind": "HTTPRoute"}]}))
    result = compile_all(only, mixed)
    first = listener_status(result, "gateway-only-invalid-route-kind", "http")
    assert first["supportedKinds"] == [] and conditions(first)["ResolvedRefs"] == ("False", "InvalidRouteKinds")
    second = listener_status(result, "gateway-supported-and-invalid-route-kind", "http")
    assert second["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]
    assert conditions(second)["ResolvedRefs"] == ("False", "InvalidRouteKinds")


def https_listener(name: str = "https", secret: str = "certificate", namespace: str | None = None, hostname: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret}
    if namespace:
        ref["namespace"] = namespace
    return listener(name, 443, "HTTPS", hostname, tls={"certificateRefs": [ref]})


def test_gateway_secret_missing_reference_grant() -> None:  # GatewaySecretMissingReferenceGrant
    gw = gateway("gateway-secret-missing-reference-grant", https_listener(namespace=WEB))
    result = compile_all(gw, tls_secret("certificate", WEB))
    https = listener_status(result, gw["metadata"]["name"], "https")
    assert conditions(https)["ResolvedRefs"] == ("False", "RefNotPermitted")
    assert conditions(https)["Programmed"] == ("False", "Invalid")
    assert SHARED_HTTPS not in result.config.listeners


def test_gateway_secret_reference_grant_specific() -> None:  # GatewaySecretReferenceGrantSpecific, ...AllInNamespace
    gw = gateway("gateway-secret-reference-grant", https_listener(namespace=WEB, hostname="secure.example.com"))
    grant = reference_grant("reference-grant", WEB, "Gateway", INFRA, "Secret", "certificate")
    result = compile_all(gw, grant, tls_secret("certificate", WEB))
    assert conditions(listener_status(result, gw["metadata"]["name"], "https"))["ResolvedRefs"] == ("True", "ResolvedRefs")
    (certificate,) = result.config.listeners[SHARED_HTTPS].certificates
    assert (certificate.namespace, certificate.secret, certificate.hostnames) == (WEB, "certificate", ("secure.example.com",))
    assert certificate.cert_pem.startswith(b"-----BEGIN CERTIFICATE")


def test_gateway_invalid_tls_configuration() -> None:  # GatewayInvalidTLSConfiguration
    gws = [
        gateway("gateway-certificate-nonexistent-secret", https_listener(secret="nonexistent")),
        gateway("gateway-certificate-unsupported-group", listener("https", 443, "HTTPS", tls={"certificateRefs": [{"group": "wrong.group", "kind": "Secret", "name": "certificate"}]})),
        gateway("gateway-certificate-unsupported-kind", listener("https", 443, "HTTPS", tls={"certificateRefs": [{"kind": "WrongKind", "name": "certificate"}]})),
        gateway("gateway-certificate-malformed-secret", https_listener(secret="malformed")),
    ]
    malformed = tls_secret("malformed")
    malformed["data"]["tls.crt"] = base64.b64encode(b"not a certificate").decode()
    result = compile_all(*gws, tls_secret("certificate"), malformed)
    for gw in gws:
        assert conditions(listener_status(result, gw["metadata"]["name"], "https"))["ResolvedRefs"] == ("False", "InvalidCertificateRef"), gw["metadata"]["name"]


def test_gateway_observed_generation_bump() -> None:  # GatewayObservedGenerationBump
    gw = gateway("gateway-observed-generation-bump", listener("http"))
    gw["metadata"]["generation"] = 2
    status = gw_status(compile_all(gw), gw["metadata"]["name"])
    assert {c["observedGeneration"] for c in status["conditions"]} == {2}
    assert {c["observedGeneration"] for c in status["listeners"][0]["conditions"]} == {2}


def test_listeners_of_one_port_with_two_protocols_conflict() -> None:
    gw = gateway("conflicted", listener("http", 8080), https_listener("https") | {"port": 8080})
    result = compile_all(gw, tls_secret("certificate"))
    for name in ("http", "https"):
        assert conditions(listener_status(result, "conflicted", name))["Conflicted"] == ("True", "ProtocolConflict")
    assert result.config.listeners == {}


def test_ports_the_gateway_cannot_serve_are_unavailable() -> None:
    gw = gateway("ports", listener("own-port", 8081), https_listener("https"))
    result = compile_all(gw, tls_secret("certificate"), settings=RoutingSettings(http_port=8081, https_port=None))
    assert conditions(listener_status(result, "ports", "own-port"))["Accepted"] == ("False", "PortUnavailable")
    assert conditions(listener_status(result, "ports", "https"))["Accepted"] == ("False", "PortUnavailable")
    assert conditions(gw_status(result, "ports")) == {"Accepted": ("False", "ListenersNotValid"), "Programmed": ("False", "Invalid")}


def test_a_requested_address_other_than_the_gateways_is_not_accepted() -> None:
    gw = gateway("static", listener("http"), addresses=[{"type": "IPAddress", "value": "10.0.0.1"}])
    result = compile_all(gw)
    assert conditions(gw_status(result, "static")) == {"Accepted": ("False", "UnsupportedAddress"), "Programmed": ("False", "AddressNotUsable")}
    assert result.config.listeners == {}
    assert conditions(gw_status(compile_all(gateway("static", listener("http"), addresses=[{"type": "IPAddress", "value": "127.0.0.1"}])), "static"))["Accepted"] == ("True", "Accepted")


def test_http_listener_isolation() -> None:  # GatewayHTTPListenerIsolation
    gw = gateway(
        "http-listener-isolation",
        listener("empty-hostname"), listener("wildcard-example-com", hostname="*.example.com"),
        listener("wildcard-foo-example-com", hostname="*.foo.example.com"), listener("abc-foo-example-com", hostname="abc.foo.example.com"),
        listener("no-routes", hostname="*.bar.example.com"),
    )
    routes = [
        http_route(f"attaches-to-{section}", to_gw("http-listener-isolation", sectionName=section), rule(backend(f"{section}"), path=f"/{section}"))
        for section in ("empty-hostname", "wildcard-example-com", "wildcard-foo-example-com", "abc-foo-example-com")
    ]
    services = [service(s) for s in ("empty-hostname", "wildcard-example-com", "wildcard-foo-example-com", "abc-foo-example-com")]
    routing = compile_all(gw, *routes, *services).config.listeners[SHARED_HTTP]
    cases = [
        ("bar.com", "/empty-hostname", "empty-hostname"), ("bar.com", "/wildcard-example-com", 404),
        ("bar.example.com", "/wildcard-example-com", "wildcard-example-com"), ("bar.example.com", "/empty-hostname", 404),
        ("bar.foo.example.com", "/wildcard-foo-example-com", "wildcard-foo-example-com"), ("bar.foo.example.com", "/wildcard-example-com", 404),
        ("abc.foo.example.com", "/abc-foo-example-com", "abc-foo-example-com"), ("abc.foo.example.com", "/wildcard-foo-example-com", 404),
        ("x.bar.example.com", "/wildcard-example-com", 404),  # its own listener has no routes: no fall-through
    ]
    for host, path, expected in cases:
        want = expected if isinstance(expected, int) else f"{INFRA}/{expected}"
        assert goes_to(routing, host, path) == want, (host, path)


# -- route attachment ------------------------------------------------------------------------------


def test_httproute_simple_same_namespace() -> None:  # HTTPRouteSimpleSameNamespace
    gw = gateway("same-namespace", listener("http"))
    route = http_route("gateway-conformance-infra-test", to_gw("same-namespace"), rule(backend("infra-backend-v1")))
    result = compile_all(gw, route, *BACKENDS)
    (parent,) = parents(result, "gateway-conformance-infra-test")
    assert parent["controllerName"] == GATEWAY_CONTROLLER
    assert parent["parentRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "same-namespace", "namespace": INFRA}
    assert conditions(parent) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    assert goes_to(result.config.listeners[SHARED_HTTP], "anything") == f"{INFRA}/infra-backend-v1"
    assert "anything" not in result.config.hostnames


@pytest.mark.parametrize(
    ("parent", "reason"),
    [
        ({"port": 81}, "NoMatchingParent"),  # HTTPRouteInvalidParentRefNotMatchingListenerPort
        ({"sectionName": "nonexistent"}, "NoMatchingParent"),  # HTTPRouteInvalidParentRefNotMatchingSectionName
        ({"sectionName": "http", "port": 81}, "NoMatchingParent"),  # HTTPRouteInvalidParentRefSectionNameNotMatchingPort
    ],
)
def test_httproute_invalid_parentref(parent: dict[str, Any], reason: str) -> None:
    gw = gateway("same-namespace", listener("http"))
    result = compile_all(gw, http_route("route", to_gw("same-namespace", **parent), rule(backend("infra-backend-v1"))), *BACKENDS)
    assert route_conditions(result, "route") == {"Accepted": ("False", reason), "ResolvedRefs": ("True", "ResolvedRefs")}
    assert listener_status(result, "same-namespace", "http")["attachedRoutes"] == 0


def test_httproute_invalid_cross_namespace_parent_ref() -> None:  # HTTPRouteInvalidCrossNamespaceParentRef
    gw = gateway("same-namespace", listener("http"))
    route = http_route("invalid-cross-namespace-parent-ref", to_gw("same-namespace"), rule(backend("web-backend")), namespace=WEB)
    result = compile_all(gw, route, service("web-backend", WEB))
    assert route_conditions(result, "invalid-cross-namespace-parent-ref", WEB)["Accepted"] == ("False", "NotAllowedByListeners")
    assert listener_status(result, "same-namespace", "http")["attachedRoutes"] == 0


def test_httproute_disallowed_kind() -> None:  # HTTPRouteDisallowedKind
    gw = gateway("tlsroutes-only", listener("http", allowedRoutes={"kinds": [{"kind": "GRPCRoute"}]}))
    result = compile_all(gw, http_route("disallowed-kind", to_gw("tlsroutes-only"), rule(backend("infra-backend-v1"))), *BACKENDS)
    assert route_conditions(result, "disallowed-kind")["Accepted"] == ("False", "NotAllowedByListeners")


def test_allowed_routes_namespace_selector() -> None:  # GatewayModifyListeners / allowedRoutes.namespaces.from Selector
    selector = {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"gateway-conformance": "backend"}}}}
    gw = gateway("selecting", listener("http", allowedRoutes=selector))
    in_app = http_route("app-route", to_gw("selecting"), rule(backend("app")), namespace=APP)
    in_web = http_route("web-route", to_gw("selecting"), rule(backend("web")), namespace=WEB)
    labelled = namespace(APP, **{"gateway-conformance": "backend"})
    result = compile_all(gw, in_app, in_web, labelled, service("app", APP), service("web", WEB))
    assert route_conditions(result, "app-route", APP)["Accepted"] == ("True", "Accepted")
    assert route_conditions(result, "web-route", WEB)["Accepted"] == ("False", "NotAllowedByListeners")


def test_httproute_multiple_gateways_get_one_parent_status_each() -> None:  # HTTPRouteMultipleGateways
    gw1, gw2 = gateway("gateway-1", listener("http")), gateway("gateway-2", listener("http", 8080))
    route = http_route("route", [*to_gw("gateway-1"), *to_gw("gateway-2"), {"name": "not-ours"}], rule(backend("infra-backend-v1")))
    result = compile_all(gw1, gw2, route, *BACKENDS)
    assert [p["parentRef"]["name"] for p in parents(result, "route")] == ["gateway-1", "gateway-2"]
    assert goes_to(result.config.listeners[(8080, "HTTP")], "x") == goes_to(result.config.listeners[SHARED_HTTP], "x") == f"{INFRA}/infra-backend-v1"


# -- backend references ----------------------------------------------------------------------------


def test_httproute_invalid_backendref_unknown_kind() -> None:  # HTTPRouteInvalidBackendRefUnknownKind
    gw = gateway("same-namespace", listener("http"))
    route = http_route("invalid-backend-ref-unknown-kind", to_gw("same-namespace"), rule(backend("infra-backend-v1", group="unknownkind.example.com", kind="NonExistent")))
    result = compile_all(gw, route, *BACKENDS)
    assert route_conditions(result, "invalid-backend-ref-unknown-kind") == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("False", "InvalidKind")}
    assert goes_to(result.config.listeners[SHARED_HTTP], "x") == 500


def test_httproute_invalid_nonexistent_backendref() -> None:  # HTTPRouteInvalidNonExistentBackendRef
    gw = gateway("same-namespace", listener("http"))
    result = compile_all(gw, http_route("invalid-nonexistent-backend-ref", to_gw("same-namespace"), rule(backend("nonexistent"))))
    assert route_conditions(result, "invalid-nonexistent-backend-ref")["ResolvedRefs"] == ("False", "BackendNotFound")
    assert goes_to(result.config.listeners[SHARED_HTTP], "x") == 500


def test_a_backend_port_the_service_does_not_have_is_not_found() -> None:
    gw = gateway("same-namespace", listener("http"))
    result = compile_all(gw, http_route("route", to_gw("same-namespace"), rule(backend("infra-backend-v1", port=9999))), *BACKENDS)
    assert route_conditions(result, "route")["ResolvedRefs"] == ("False", "BackendNotFound")


def test_httproute_invalid_cross_namespace_backend_ref_and_reference_grant() -> None:
    # HTTPRouteInvalidCrossNamespaceBackendRef, then HTTPRouteReferenceGrant: the grant flips it
    gw = gateway("same-namespace", listener("http"))
    route = http_route("reference-grant", to_gw("same-namespace"), rule(backend("web-backend", namespace=WEB)))
    denied = compile_all(gw, route, service("web-backend", WEB))
    assert route_conditions(denied, "reference-grant")["ResolvedRefs"] == ("False", "RefNotPermitted")
    assert goes_to(denied.config.listeners[SHARED_HTTP], "x") == 500
    wrong_kind = reference_grant("reference-grant", WEB, "GRPCRoute", INFRA)
    assert route_conditions(compile_all(gw, route, service("web-backend", WEB), wrong_kind), "reference-grant")["ResolvedRefs"][0] == "False"
    grant = reference_grant("reference-grant", WEB, "HTTPRoute", INFRA, to_name="web-backend")
    allowed = compile_all(gw, route, service("web-backend", WEB), grant)
    assert route_conditions(allowed, "reference-grant")["ResolvedRefs"] == ("True", "ResolvedRefs")
    assert goes_to(allowed.config.listeners[SHARED_HTTP], "x") == f"{WEB}/web-backend"


def test_httproute_partially_invalid_via_invalid_reference_grant() -> None:  # HTTPRoutePartiallyInvalidViaInvalidReferenceGrant
    gw = gateway("same-namespace", listener("http"))
    route = http_route(
        "invalid-reference-grant", to_gw("same-namespace"),
        rule(backend("app-backend-v2", namespace=APP), path="/v2"), rule(backend("infra-backend-v1"), path="/"),
    )
    grant = reference_grant("not-for-this-service", APP, "HTTPRoute", INFRA, to_name="other")
    result = compile_all(gw, route, grant, service("app-backend-v2", APP), *BACKENDS)
    assert route_conditions(result, "invalid-reference-grant") == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("False", "RefNotPermitted")}
    routing = result.config.listeners[SHARED_HTTP]
    assert goes_to(routing, "x", "/v2") == 500
    assert goes_to(routing, "x", "/") == f"{INFRA}/infra-backend-v1"


def test_httproute_omitted_backendrefs() -> None:  # HTTPRouteOmittedBackendRefs
    gw = gateway("same-namespace", listener("http"))
    route = http_route("no-backends", to_gw("same-namespace"), {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]})
    result = compile_all(gw, route)
    assert route_conditions(result, "no-backends") == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    assert goes_to(result.config.listeners[SHARED_HTTP], "x") == 500


def test_httproute_weight() -> None:  # HTTPRouteWeight
    gw = gateway("same-namespace", listener("http"))
    weights = rule(backend("infra-backend-v1", weight=70), backend("infra-backend-v2", weight=30), backend("infra-backend-v3", weight=0))
    result = compile_all(gw, http_route("weighted-backends", to_gw("same-namespace"), weights), *BACKENDS)
    action = find(result.config.listeners[SHARED_HTTP], "x", "/")[0].action  # type: ignore[index]
    assert [(b.service, b.weight, b.port) for b in action.backends] == [("infra-backend-v1", 70, 8080), ("infra-backend-v2", 30, 8080), ("infra-backend-v3", 0, 8080)]


# -- hosts and matches -----------------------------------------------------------------------------


def test_httproute_hostname_intersection() -> None:  # HTTPRouteHostnameIntersection
    gw = gateway(
        "httproute-hostname-intersection",
        listener("listener-1", hostname="very.specific.com"), listener("listener-2", hostname="*.wildcard.io"),
        listener("listener-3", hostname="*.anotherwildcard.io"),
    )
    ref = to_gw("httproute-hostname-intersection")
    routes = [
        http_route("r1", ref, rule(backend("infra-backend-v1"), path="/s1"), hostnames=("non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com")),
        http_route("r2", ref, rule(backend("infra-backend-v2"), path="/s2"), hostnames=("non.matching.com", "wildcard.io", "foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io")),
        http_route("r3", ref, rule(backend("infra-backend-v3"), path="/s3"), hostnames=("non.matching.com", "*.specific.com")),
        http_route("r4", ref, rule(backend("infra-backend-v1"), path="/s4"), hostnames=("*.anotherwildcard.io",)),
        http_route("no-intersecting-hosts", ref, rule(backend("infra-backend-v1"), path="/s5"), hostnames=("specific.but.wrong.com", "wildcard.io")),
    ]
    result = compile_all(gw, *routes, *BACKENDS)
    routing = result.config.listeners[SHARED_HTTP]
    v1, v2, v3 = (f"{INFRA}/infra-backend-v{i}" for i in (1, 2, 3))
    cases = [
        ("very.specific.com", "/s1", v1), ("very.specific.com:1234", "/s1", v1), ("non.matching.com", "/s1", 404),
        ("foo.nonmatchingwildcard.io", "/s1", 404), ("foo.wildcard.io", "/s1", 404), ("very.specific.com", "/non-matching-prefix", 404),
        ("foo.wildcard.io", "/s2", v2), ("bar.wildcard.io", "/s2", v2), ("foo.bar.wildcard.io", "/s2", v2),
        ("wildcard.io", "/s2", 404), ("very.specific.com", "/s2", 404), ("foo.wildcard.io", "/non-matching-prefix", 404),
        ("very.specific.com", "/s3", v3), ("foo.specific.com", "/s3", 404), ("foo.wildcard.io", "/s3", 404),
        ("foo.anotherwildcard.io", "/s4", v1), ("foo.bar.anotherwildcard.io", "/s4", v1), ("anotherwildcard.io", "/s4", 404),
        ("very.specific.com", "/s4", 404),
    ]
    for host, path, expected in cases:
        assert goes_to(routing, host, path) == expected, (host, path)
    assert route_conditions(result, "no-intersecting-hosts")["Accepted"] == ("False", "NoMatchingListenerHostname")
    assert {"very.specific.com", "foo.wildcard.io"} <= result.config.hostnames


def test_httproute_listener_hostname_matching() -> None:  # HTTPRouteListenerHostnameMatching
    gw = gateway(
        "httproute-listener-hostname-matching",
        listener("listener-1", hostname="bar.com"), listener("listener-2", hostname="foo.bar.com"),
        listener("listener-3", hostname="*.bar.com"), listener("listener-4", hostname="*.foo.com"),
    )
    routes = [
        http_route("backend-v1", to_gw(gw["metadata"]["name"], sectionName="listener-1"), rule(backend("infra-backend-v1"))),
        http_route("backend-v2", to_gw(gw["metadata"]["name"], sectionName="listener-2"), rule(backend("infra-backend-v2"))),
        http_route("backend-v3", [*to_gw(gw["metadata"]["name"], sectionName="listener-3"), *to_gw(gw["metadata"]["name"], sectionName="listener-4")], rule(backend("infra-backend-v3"))),
    ]
    routing = compile_all(gw, *routes, *BACKENDS).config.listeners[SHARED_HTTP]
    v1, v2, v3 = (f"{INFRA}/infra-backend-v{i}" for i in (1, 2, 3))
    for host, expected in [("bar.com", v1), ("foo.bar.com", v2), ("baz.bar.com", v3), ("boo.bar.com", v3), ("multiple.prefixes.bar.com", v3),
                           ("multiple.prefixes.foo.com", v3), ("foo.com", 404), ("no.matching.host", 404)]:
        assert goes_to(routing, host) == expected, host


def test_httproute_matching_across_routes() -> None:  # HTTPRouteMatchingAcrossRoutes
    gw = gateway("same-namespace", listener("http"))
    ref = to_gw("same-namespace")
    r1 = http_route("matching-part1", ref, rule(backend("infra-backend-v1"), path="/"), rule(backend("infra-backend-v1"), path="/example"),
                    hostnames=("example.com", "example.net"))
    r2 = http_route("matching-part2", ref, {"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}, "headers": [{"name": "version", "value": "two"}]}],
                                            "backendRefs": [backend("infra-backend-v2")]}, hostnames=("example.com",))
    routing = compile_all(gw, r1, r2, *BACKENDS).config.listeners[SHARED_HTTP]
    v1, v2 = f"{INFRA}/infra-backend-v1", f"{INFRA}/infra-backend-v2"
    assert goes_to(routing, "example.com", "/") == v1
    assert goes_to(routing, "example.net", "/example") == v1
    assert goes_to(routing, "example.com", "/v2", headers={"version": "two"}) == v2
    assert goes_to(routing, "example.com", "/v2") == v1
    assert goes_to(routing, "example.net", "/v2", headers={"version": "two"}) == v1
    assert goes_to(routing, "example.org", "/") == 404


def test_httproute_path_match_order() -> None:  # HTTPRoutePathMatchOrder
    gw = gateway("same-namespace", listener("http"))
    rules = [
        rule(backend("infra-backend-v1"), path="/match"),
        rule(backend("infra-backend-v2"), path="/match/exact", path_type="Exact"),
        rule(backend("infra-backend-v3"), path="/match/exact/one", path_type="Exact"),
        rule(backend("infra-backend-v2"), path="/match/prefix"),
        rule(backend("infra-backend-v3"), path="/match/prefix/one"),
    ]
    routing = compile_all(gw, http_route("path-matching-order", to_gw("same-namespace"), *rules), *BACKENDS).config.listeners[SHARED_HTTP]
    v1, v2, v3 = (f"{INFRA}/infra-backend-v{i}" for i in (1, 2, 3))
    for path, expected in [("/match/exact/one", v3), ("/match/exact", v2), ("/match/exact/two", v1), ("/match/prefix/one/x", v3),
                           ("/match/prefix/two", v2), ("/match/prefixfoo", v1), ("/matchfoo", 404)]:
        assert goes_to(routing, "x", path) == expected, path


def test_httproute_method_header_and_query_precedence() -> None:  # HTTPRouteMethodMatching, HTTPRouteQueryParamMatching
    gw = gateway("same-namespace", listener("http"))
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [backend("infra-backend-v1")]},
        {"matches": [{"method": "POST"}], "backendRefs": [backend("infra-backend-v2")]},
        {"matches": [{"queryParams": [{"name": "animal", "value": "whale"}]}], "backendRefs": [backend("infra-backend-v3")]},
    ]
    routing = compile_all(gw, http_route("method-matching", to_gw("same-namespace"), *rules), *BACKENDS).config.listeners[SHARED_HTTP]
    assert goes_to(routing, "x", "/", method="POST") == f"{INFRA}/infra-backend-v2"
    assert goes_to(routing, "x", "/", query="animal=whale") == f"{INFRA}/infra-backend-v3"
    assert goes_to(routing, "x", "/") == f"{INFRA}/infra-backend-v1"
    assert routing.any_host is not None and routing.any_host.uses_query


def test_a_regular_expression_path_ranks_after_exact_and_before_every_prefix() -> None:
    gw = gateway("same-namespace", listener("http"))
    rules = [
        rule(backend("infra-backend-v1"), path="/"),
        rule(backend("infra-backend-v2"), path="/v[0-9]+/items", path_type="RegularExpression"),
        rule(backend("infra-backend-v3"), path="/v2/items", path_type="Exact"),
    ]
    routing = compile_all(gw, http_route("regex", to_gw("same-namespace"), *rules), *BACKENDS).config.listeners[SHARED_HTTP]
    assert goes_to(routing, "x", "/v1/items") == f"{INFRA}/infra-backend-v2"
    assert goes_to(routing, "x", "/v2/items") == f"{INFRA}/infra-backend-v3"
    assert goes_to(routing, "x", "/v1/items/more") == f"{INFRA}/infra-backend-v1"  # RE2 full match only


def test_older_route_wins_a_tie() -> None:
    gw = gateway("same-namespace", listener("http"))
    older = http_route("zzz-older", to_gw("same-namespace"), rule(backend("infra-backend-v1"), path="/same"))
    newer = http_route("aaa-newer", to_gw("same-namespace"), rule(backend("infra-backend-v2"), path="/same"))
    routing = compile_all(gw, newer, older, *BACKENDS).config.listeners[SHARED_HTTP]
    assert goes_to(routing, "x", "/same") == f"{INFRA}/infra-backend-v1"


# -- filters ---------------------------------------------------------------------------------------


def only_action(result: Compiled, path: str = "/") -> Any:
    found = find(result.config.listeners[SHARED_HTTP], "x", path)
    assert found is not None
    return found[0].action


def test_httproute_request_and_response_header_modifier() -> None:  # HTTPRouteRequestHeaderModifier, HTTPRouteResponseHeaderModifier
    gw = gateway("same-namespace", listener("http"))
    filters = [
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}],
                                                                     "add": [{"name": "X-Header-Add", "value": "add-appends-values"}], "remove": ["X-Header-Remove"]}},
        {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "X-Header-Add-1", "value": "header-add-1"}]}},
    ]
    result = compile_all(gw, http_route("request-header-modifier", to_gw("same-namespace"), rule(backend("infra-backend-v1"), filters=filters)), *BACKENDS)
    action = only_action(result)
    assert action.request_headers.set == (("x-header-set", "set-overwrites-values"),)
    assert action.request_headers.add == (("x-header-add", "add-appends-values"),)
    assert action.request_headers.remove == ("x-header-remove",)
    assert action.response_headers.add == (("x-header-add-1", "header-add-1"),)


def test_httproute_request_header_modifier_backend_weights() -> None:  # HTTPRouteRequestHeaderModifierBackendWeights
    gw = gateway("same-namespace", listener("http"))
    header = [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "Backend", "value": "v1"}]}}]
    result = compile_all(gw, http_route("r", to_gw("same-namespace"), rule(backend("infra-backend-v1", filters=header), backend("infra-backend-v2"))), *BACKENDS)
    first, second = only_action(result).backends
    assert first.request_headers.set == (("backend", "v1"),) and second.request_headers is None


def test_httproute_redirect_path_and_rewrite_path() -> None:  # HTTPRouteRedirectPath, HTTPRouteRewritePath
    gw = gateway("same-namespace", listener("http"))
    redirect = {"matches": [{"path": {"type": "PathPrefix", "value": "/original-prefix"}}],
                "filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/replacement-prefix"}, "statusCode": 301}}]}
    rewrite = rule(backend("infra-backend-v1"), path="/prefix/one",
                   filters=[{"type": "URLRewrite", "urlRewrite": {"hostname": "one.example.org", "path": {"type": "ReplaceFullPath", "replaceFullPath": "/one"}}}])
    result = compile_all(gw, http_route("redirect-path", to_gw("same-namespace"), redirect, rewrite), *BACKENDS)
    redirected = only_action(result, "/original-prefix/lemon")
    assert redirected.redirect.status_code == 301 and redirected.redirect.path.value == "/replacement-prefix"
    assert redirected.matched_prefix == "/original-prefix" and redirected.problem is None
    rewritten = only_action(result, "/prefix/one/two")
    assert (rewritten.rewrite.hostname, rewritten.rewrite.path.type, rewritten.rewrite.path.value) == ("one.example.org", "ReplaceFullPath", "/one")


def test_httproute_request_mirror() -> None:  # HTTPRouteRequestMirror, HTTPRouteRequestMultipleMirrors, HTTPRouteRequestPercentageMirror
    gw = gateway("same-namespace", listener("http"))
    mirrors = [
        {"type": "RequestMirror", "requestMirror": {"backendRef": backend("infra-backend-v2")}},
        {"type": "RequestMirror", "requestMirror": {"backendRef": backend("infra-backend-v3"), "percent": 35}},
        {"type": "RequestMirror", "requestMirror": {"backendRef": backend("infra-backend-v3"), "fraction": {"numerator": 1, "denominator": 4}}},
    ]
    result = compile_all(gw, http_route("request-mirror", to_gw("same-namespace"), rule(backend("infra-backend-v1"), filters=mirrors)), *BACKENDS)
    assert [(m.backend.service, m.percent) for m in only_action(result).mirrors] == [("infra-backend-v2", 100.0), ("infra-backend-v3", 35.0), ("infra-backend-v3", 25.0)]


def test_an_unsupported_filter_is_not_accepted() -> None:
    gw = gateway("same-namespace", listener("http"))
    extension = rule(backend("infra-backend-v1"), filters=[{"type": "ExtensionRef", "extensionRef": {"group": "x.io", "kind": "Filter", "name": "f"}}])
    result = compile_all(gw, http_route("extension", to_gw("same-namespace"), extension), *BACKENDS)
    assert route_conditions(result, "extension")["Accepted"] == ("False", "UnsupportedValue")
    assert listener_status(result, "same-namespace", "http")["attachedRoutes"] == 0


# -- GRPCRoute -------------------------------------------------------------------------------------


def test_grpcroute_exact_method_matching() -> None:  # GRPCExactMethodMatching
    gw = gateway("same-namespace", listener("http"))
    rules = [
        {"matches": [{"method": {"service": "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho", "method": "Echo"}}], "backendRefs": [backend("grpc-infra-backend-v1")]},
        {"matches": [{"method": {"service": "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho", "method": "EchoTwo"}}], "backendRefs": [backend("grpc-infra-backend-v2")]},
        {"matches": [{"method": {"service": "other.Service"}}], "backendRefs": [backend("grpc-infra-backend-v3")]},
    ]
    result = compile_all(gw, grpc_route("exact-matching", to_gw("same-namespace"), *rules),
                         service("grpc-infra-backend-v1"), service("grpc-infra-backend-v2"), service("grpc-infra-backend-v3"))
    assert route_conditions(result, "exact-matching", resource=GRPC_ROUTES.key) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    routing = result.config.listeners[SHARED_HTTP]
    echo = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"
    assert goes_to(routing, "x", f"{echo}/Echo", method="POST") == f"{INFRA}/grpc-infra-backend-v1"
    assert goes_to(routing, "x", f"{echo}/EchoTwo", method="POST") == f"{INFRA}/grpc-infra-backend-v2"
    assert goes_to(routing, "x", f"{echo}/EchoThree", method="POST") == 404
    assert goes_to(routing, "x", "/other.Service/Any", method="POST") == f"{INFRA}/grpc-infra-backend-v3"
    found = find(routing, "x", f"{echo}/Echo", method="POST")
    assert found is not None and found[0].action.source.startswith("grpcroute ")


def test_grpcroute_header_matching() -> None:  # GRPCRouteHeaderMatching
    gw = gateway("same-namespace", listener("http"))
    rules = [{"matches": [{"headers": [{"name": "Version", "value": "one"}]}], "backendRefs": [backend("grpc-infra-backend-v1")]}]
    routing = compile_all(gw, grpc_route("grpc-header-matching", to_gw("same-namespace"), *rules), service("grpc-infra-backend-v1")).config.listeners[SHARED_HTTP]
    assert goes_to(routing, "x", "/any.Service/Method", method="POST", headers={"version": "one"}) == f"{INFRA}/grpc-infra-backend-v1"
    assert goes_to(routing, "x", "/any.Service/Method", method="POST", headers={"version": "two"}) == 404


def test_httproute_listener_port_matching() -> None:  # HTTPRouteListenerPortMatching
    name = "httproute-listener-port-matching"
    gw = gateway(
        name, listener("listener-1", 80, hostname="foo.com"), listener("listener-2", 8080, hostname="foo.com"),
        listener("listener-3", 8080, hostname="bar.com"), listener("listener-4", 8090, hostname="foo.com"),
        listener("listener-5", 8090, hostname="bar.com"),
    )
    routes = [
        http_route("backend-v1", to_gw(name, port=80), rule(backend("infra-backend-v1"))),
        http_route("backend-v2", to_gw(name, port=8080), rule(backend("infra-backend-v2"))),
        http_route("backend-v3", to_gw(name, port=8090, sectionName="listener-4"), rule(backend("infra-backend-v3"))),
    ]
    listeners = compile_all(gw, *routes, *BACKENDS).config.listeners
    assert goes_to(listeners[SHARED_HTTP], "foo.com") == f"{INFRA}/infra-backend-v1"
    assert goes_to(listeners[(8080, "HTTP")], "foo.com:8080") == goes_to(listeners[(8080, "HTTP")], "bar.com:8080") == f"{INFRA}/infra-backend-v2"
    assert goes_to(listeners[(8090, "HTTP")], "foo.com:8090") == f"{INFRA}/infra-backend-v3"
    assert goes_to(listeners[(8090, "HTTP")], "bar.com:8090") == 404


# -- ports the gateway could not bind (what the proxy reports, laid over the compiled status) ---------------


def test_a_listener_whose_port_cannot_be_bound_is_port_unavailable() -> None:
    gw = gateway("gw", listener("http"), listener("extra", port=9999))
    status = gw_status(compile_all(gw), "gw")
    unbound = with_unbound_ports(gw, status, {(9999, "HTTP"): "port 9999 is in use by another process"})
    extra = next(item for item in unbound["listeners"] if item["name"] == "extra")
    assert conditions(extra)["Accepted"] == ("False", "PortUnavailable")
    assert conditions(extra)["Programmed"] == ("False", "Invalid")
    assert next(c for c in extra["conditions"] if c["type"] == "Accepted")["message"] == "port 9999 is in use by another process"
    http = next(item for item in unbound["listeners"] if item["name"] == "http")
    assert http == next(item for item in status["listeners"] if item["name"] == "http")
    assert conditions(unbound)["Accepted"] == ("True", "ListenersNotValid")
    assert conditions(unbound)["Programmed"] == ("True", "Programmed")  # one listener is still served
    assert [item["name"] for item in unbound["listeners"]] == ["http", "extra"]


def test_a_gateway_with_no_port_bound_is_not_programmed() -> None:
    gw = gateway("gw", listener("extra", port=9999))
    status = gw_status(compile_all(gw), "gw")
    unbound = with_unbound_ports(gw, status, {(9999, "HTTP"): "in use"})
    assert conditions(unbound)["Accepted"] == ("False", "ListenersNotValid")
    assert conditions(unbound)["Programmed"] == ("False", "Invalid")
    assert with_unbound_ports(gw, status, {}) is status
    assert with_unbound_ports(gw, status, {(9999, "HTTPS"): "in use"}) == status  # another protocol's port
