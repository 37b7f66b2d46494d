"""GRPCRoute (gateway.networking.k8s.io/v1, namespaced): served built in from the upstream definition
(emulator/kinds/gatewayapi/), with the CEL rules on method matches, filters, backendRefs' ports and
parentRefs checked by hand. emulator/routing/gatewayapi.py compiles it (a method match is the HTTP/2
path `/service/method`).
"""

from __future__ import annotations

import re
from typing import Any

from emulator.errors import FieldError
from emulator.kinds import gatewayapi
from emulator.kinds.custom import CustomObject
from emulator.kinds.httproute import filter_value_errors

GRPC_ROUTES = gatewayapi.resource_type("grpcroutes", "v1")
_SERVICE_RE = re.compile(r"\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*", re.I)
_METHOD_RE = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


class GRPCRoute(CustomObject):
    """Every field but metadata is the upstream schema's."""


def method_errors(method: dict[str, Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    if "type" in method and "service" not in method and "method" not in method:
        problems.append(gatewayapi.rule_failed(path, method, "One or both of 'service' or 'method' must be specified"))
    if method.get("type", "Exact") == "Exact":
        service, name = method.get("service"), method.get("method")
        if isinstance(service, str) and not _SERVICE_RE.fullmatch(service):
            problems.append(gatewayapi.rule_failed(
                path, method, "service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)"))
        if isinstance(name, str) and not _METHOD_RE.fullmatch(name):
            problems.append(gatewayapi.rule_failed(path, method, "method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)"))
    return problems


class GRPCRouteStrategy(gatewayapi.GatewayApiStrategy):
    resource = GRPC_ROUTES
    model = GRPCRoute
    schema = gatewayapi.schema_of(GRPC_ROUTES)
    has_status = gatewayapi.has_status(GRPC_ROUTES)

    def rules(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        problems: list[FieldError] = []
        for i, rule in enumerate(spec.get("rules") or []):
            for j, match in enumerate(rule.get("matches") or []):
                if isinstance(match.get("method"), dict):
                    problems += method_errors(match["method"], f"spec.rules[{i}].matches[{j}].method")
            problems += filter_value_errors(rule.get("filters") or [], f"spec.rules[{i}].filters")
            for j, ref in enumerate(rule.get("backendRefs") or []):
                if isinstance(ref, dict):
                    problems += filter_value_errors(ref.get("filters") or [], f"spec.rules[{i}].backendRefs[{j}].filters")
        return problems + gatewayapi.route_errors(spec)


KIND = gatewayapi.kind(GRPCRouteStrategy)
OTHER_VERSIONS = gatewayapi.other_versions(KIND)
