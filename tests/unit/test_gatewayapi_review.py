"""What the review of issue 14 found in the Gateway API compiler and kinds, pinned: values that reach the
wire hold no control characters (422 on write, UnsupportedValue for a stored object), the CEL rules on
replacePrefixMatch and the match path's characters, the compile's cost, one bad Secret or Gateway not
taking the others down, GRPCRoute and HTTPRoute not merged on one hostname, port/protocol conflicts
across Gateways."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.kinds.grpcroute import GRPC_ROUTES, GRPCRouteStrategy
from emulator.kinds.httproute import HTTPRouteStrategy
from emulator.routing.model import SHARED_HTTP
from tests.unit.test_gatewayapi_compile import (
    BACKENDS,
    INFRA,
    backend,
    compile_all,
    conditions,
    gateway,
    goes_to,
    grpc_route,
    http_route,
    listener,
    listener_status,
    route_conditions,
    rule,
    tls_secret,
    to_gw,
)

INJECT = "v\r\nX-Injected: 1\r\n\r\nGET /smuggled HTTP/1.1"


def header_filter(kind: str, value: str) -> dict[str, Any]:
    field = kind[0].lower() + kind[1:]
    return {"type": kind, field: {"set": [{"name": "X-A", "value": value}]}}


def path_filter(kind: str, full_path: str) -> dict[str, Any]:
    field = "requestRedirect" if kind == "RequestRedirect" else "urlRewrite"
    return {"type": kind, field: {"path": {"type": "ReplaceFullPath", "replaceFullPath": full_path}}}


def causes(strategy: type[Any], obj: dict[str, Any]) -> list[tuple[str, str]]:
    """The hand-checked rules' causes (the rules read nothing of the strategy's cluster)."""
    return [(e.field, e.describe().split(": ", 1)[1]) for e in strategy.rules(object.__new__(strategy), obj)]


# -- 1: CR/LF from route fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        [header_filter("RequestHeaderModifier", INJECT)],
        [header_filter("ResponseHeaderModifier", "a\nSet-Cookie: x=1")],
        [header_filter("RequestHeaderModifier", "nul\x00")],
        [header_filter("RequestHeaderModifier", "caf\u20ac")],
        [path_filter("URLRewrite", "/x HTTP/1.1\r\nHost: evil\r\n\r\nGET /y")],
        [path_filter("URLRewrite", "/caf\u00e9")],
        [path_filter("RequestRedirect", "/a\r\nSet-Cookie: x=1")],
    ],
    ids=["request-header", "response-header", "nul", "not-latin-1", "rewrite-path", "rewrite-non-ascii", "redirect-path"],
)
def test_a_stored_route_with_wire_breaking_values_is_not_accepted(filters: list[dict[str, Any]]) -> None:
    gw = gateway("gw", listener("http"))
    backends = [] if filters[0]["type"] == "RequestRedirect" else [backend("infra-backend-v1")]
    result = compile_all(gw, http_route("bad", to_gw("gw"), rule(*backends, filters=filters)), *BACKENDS)
    assert route_conditions(result, "bad")["Accepted"] == ("False", "UnsupportedValue")
    assert listener_status(result, "gw", "http")["attachedRoutes"] == 0


def test_a_backend_ref_filter_with_a_newline_is_not_accepted() -> None:
    gw = gateway("gw", listener("http"))
    result = compile_all(gw, http_route("bad", to_gw("gw"), rule(backend("infra-backend-v1", filters=[header_filter("RequestHeaderModifier", INJECT)]))), *BACKENDS)
    assert route_conditions(result, "bad")["Accepted"] == ("False", "UnsupportedValue")


def test_a_tab_in_a_header_value_is_fine() -> None:
    gw = gateway("gw", listener("http"))
    result = compile_all(gw, http_route("ok", to_gw("gw"), rule(backend("infra-backend-v1"), filters=[header_filter("RequestHeaderModifier", "a\tb")])), *BACKENDS)
    assert route_conditions(result, "ok")["Accepted"] == ("True", "Accepted")


def test_wire_breaking_values_are_refused_on_write() -> None:
    http = {"spec": {"rules": [
        {"filters": [header_filter("RequestHeaderModifier", INJECT)], "backendRefs": [{"name": "web", "port": 80, "filters": [header_filter("ResponseHeaderModifier", "a\rb")]}]},
        {"filters": [path_filter("URLRewrite", "/x y")]},
        {"filters": [path_filter("RequestRedirect", "/\n")]},
    ]}}
    assert causes(HTTPRouteStrategy, http) == [
        ("spec.rules[0].filters[0].requestHeaderModifier.set[0].value",
         f'Invalid value: "{INJECT}": a header value must not contain control characters other than horizontal tab'),
        ("spec.rules[0].backendRefs[0].filters[0].responseHeaderModifier.set[0].value",
         'Invalid value: "a\rb": a header value must not contain control characters other than horizontal tab'),
        ("spec.rules[1].filters[0].urlRewrite.path.replaceFullPath",
         "Invalid value: \"/x y\": must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$)"),
        ("spec.rules[2].filters[0].requestRedirect.path.replaceFullPath",
         "Invalid value: \"/\n\": must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$)"),
    ]
    grpc = {"spec": {"rules": [{"filters": [header_filter("RequestHeaderModifier", INJECT)]}]}}
    assert [c[0] for c in causes(GRPCRouteStrategy, grpc)] == ["spec.rules[0].filters[0].requestHeaderModifier.set[0].value"]


# -- 7: CEL rules -----------------------------------------------------------------------------------


def test_replace_prefix_match_needs_exactly_one_path_prefix_match() -> None:
    prefix = {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/b"}
    rewrite = {"type": "URLRewrite", "urlRewrite": {"path": prefix}}
    redirect = {"type": "RequestRedirect", "requestRedirect": {"path": prefix}}
    exact = [{"path": {"type": "Exact", "value": "/a"}}]
    obj = {"spec": {"rules": [
        {"filters": [rewrite], "matches": exact},
        {"filters": [redirect]},
        {"filters": [rewrite], "matches": [{"path": {"type": "PathPrefix", "value": "/a"}}]},
        {"backendRefs": [{"name": "web", "port": 80, "filters": [rewrite]}], "matches": exact},
    ]}}
    assert causes(HTTPRouteStrategy, obj) == [
        ("spec.rules[0]", 'Invalid value: "object": When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified'),
        ("spec.rules[1]", 'Invalid value: "object": When using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified'),
        ("spec.rules[3]", 'Invalid value: "object": Within backendRefs, When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified'),
    ]


def test_a_match_path_may_only_hold_path_characters() -> None:
    obj = {"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/a b"}}, {"path": {"type": "RegularExpression", "value": "/a b"}}]}]}}
    assert causes(HTTPRouteStrategy, obj) == [
        ("spec.rules[0].matches[0].path",
         "Invalid value: \"object\": must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']"),
    ]


# -- 5: GRPCRoutes and HTTPRoutes are not merged -------------------------------------------------------


def test_an_httproute_and_a_grpcroute_for_one_hostname_the_older_is_accepted() -> None:
    gw = gateway("gw", listener("http"))
    web = http_route("web", to_gw("gw"), rule(backend("infra-backend-v1")), hostnames=("a.test",))
    rpc = grpc_route("rpc", to_gw("gw"), {"backendRefs": [backend("infra-backend-v2")]})
    rpc["spec"]["hostnames"] = ["*.test"]  # younger, and its hostnames intersect web's
    other = grpc_route("other", to_gw("gw"), {"backendRefs": [backend("infra-backend-v3")]})
    other["spec"]["hostnames"] = ["b.example"]
    for i, route in enumerate((web, rpc, other)):
        route["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:0{i}Z"
    result = compile_all(gw, rpc, other, web, *BACKENDS)  # (the order given does not matter: age does)
    assert route_conditions(result, "web")["Accepted"] == ("True", "Accepted")
    assert route_conditions(result, "rpc", resource=GRPC_ROUTES.key)["Accepted"] == ("False", "NotAllowedByListeners")
    assert route_conditions(result, "other", resource=GRPC_ROUTES.key)["Accepted"] == ("True", "Accepted")
    routing = result.config.listeners[SHARED_HTTP]
    assert goes_to(routing, "a.test", "/x.Svc/M", method="POST") == f"{INFRA}/infra-backend-v1"
    assert goes_to(routing, "c.test", "/x.Svc/M", method="POST") == 404
    assert goes_to(routing, "b.example", "/x.Svc/M", method="POST") == f"{INFRA}/infra-backend-v3"
    assert listener_status(result, "gw", "http")["attachedRoutes"] == 2


# -- 9: one port, one protocol, across our Gateways ----------------------------------------------------


def test_two_gateways_on_one_port_with_two_protocols_conflict() -> None:
    older = gateway("older", listener("web", 9443, "HTTP"))
    younger = gateway("younger", listener("tls", 9443, "HTTPS", tls={"certificateRefs": [{"name": "cert"}]}), listener("plain", 9080, "HTTP"))
    older["metadata"]["creationTimestamp"], younger["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"
    result = compile_all(younger, older, tls_secret("cert"), *BACKENDS)
    assert conditions(listener_status(result, "older", "web"))["Conflicted"] == ("False", "NoConflicts")
    tls = conditions(listener_status(result, "younger", "tls"))
    assert tls["Accepted"] == ("False", "ProtocolConflict") and tls["Conflicted"] == ("True", "ProtocolConflict")
    assert tls["Programmed"][0] == "False"
    assert conditions(listener_status(result, "younger", "plain"))["Programmed"] == ("True", "Programmed")
    assert (9443, "HTTPS") not in result.config.listeners
