"""HTTPRoute (gateway.networking.k8s.io/v1, namespaced): served built in from the upstream definition
(emulator/kinds/gatewayapi/), with the CEL rules users meet most checked by hand (paths, filters,
backendRefs' ports, parentRefs' section names). emulator/routing/gatewayapi.py compiles it.
"""

from __future__ import annotations

from typing import Any

from emulator.errors import FieldError
from emulator.kinds import gatewayapi
from emulator.kinds.custom import CustomObject

HTTP_ROUTES = gatewayapi.resource_type("httproutes", "v1")
_BAD_IN_PATH = ("//", "/./", "/../", "%2f", "%2F", "#")


class HTTPRoute(CustomObject):
    """Every field but metadata is the upstream schema's."""


def path_errors(match_path: dict[str, Any], path: str) -> list[FieldError]:
    kind, value = match_path.get("type"), match_path.get("value")
    if kind not in ("Exact", "PathPrefix") or not isinstance(value, str):
        return []
    problems: list[FieldError] = []
    if not value.startswith("/"):
        problems.append(gatewayapi.rule_failed(path, match_path, "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"))
    problems += [
        gatewayapi.rule_failed(path, match_path, f"must not contain '{bad}' when type one of ['Exact', 'PathPrefix']")
        for bad in _BAD_IN_PATH if bad in value
    ]
    problems += [
        gatewayapi.rule_failed(path, match_path, f"must not end with '{end}' when type one of ['Exact', 'PathPrefix']")
        for end in ("/..", "/.") if value.endswith(end)
    ]
    return problems


def rule_errors(rule: dict[str, Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    filters = rule.get("filters") or []
    if rule.get("backendRefs") and any("requestRedirect" in f for f in filters):
        problems.append(gatewayapi.rule_failed(path, rule, "RequestRedirect filter must not be used together with backendRefs"))
    for i, match in enumerate(rule.get("matches") or []):
        if isinstance(match.get("path"), dict):
            problems += path_errors(match["path"], f"{path}.matches[{i}].path")
    return problems


class HTTPRouteStrategy(gatewayapi.GatewayApiStrategy):
    resource = HTTP_ROUTES
    model = HTTPRoute
    schema = gatewayapi.schema_of(HTTP_ROUTES)
    has_status = gatewayapi.has_status(HTTP_ROUTES)

    def rules(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        problems: list[FieldError] = []
        for i, rule in enumerate(spec.get("rules") or []):
            problems += rule_errors(rule, f"spec.rules[{i}]")
        return problems + gatewayapi.route_errors(spec)


KIND = gatewayapi.kind(HTTPRouteStrategy)
OTHER_VERSIONS = gatewayapi.other_versions(KIND)
