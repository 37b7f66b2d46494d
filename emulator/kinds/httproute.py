"""HTTPRoute (gateway.networking.k8s.io/v1, namespaced): served built in from the upstream definition
(emulator/kinds/gatewayapi/), with the CEL rules users meet most checked by hand (paths, filters,
backendRefs' ports, parentRefs' section names). emulator/routing/gatewayapi.py compiles it.
"""

from __future__ import annotations

import re
from typing import Any

from emulator.errors import FieldError, invalid
from emulator.kinds import gatewayapi
from emulator.kinds.custom import CustomObject

HTTP_ROUTES = gatewayapi.resource_type("httproutes", "v1")
_BAD_IN_PATH = ("//", "/./", "/../", "%2f", "%2F", "#")
# the characters a match path may hold (the upstream CEL rule); rewrite and redirect paths are held to it
# too, as they are written into a request line or a Location header
PATH_CHARS = re.compile(r"(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+")
PATH_CHARS_MESSAGE = "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$)"
# control characters other than HTAB may not be in a field value (RFC 9110 5.5): they would end the header
HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PREFIX_FILTERS = (("requestRedirect", "RequestRedirect"), ("urlRewrite", "URLRewrite"))


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
    if not PATH_CHARS.fullmatch(value):
        problems.append(gatewayapi.rule_failed(path, match_path, f"{PATH_CHARS_MESSAGE} for types ['Exact', 'PathPrefix']"))
    return problems


def header_modifier_errors(config: Any, path: str) -> list[FieldError]:
    """Header values with a control character (CR, LF, NUL...) would split the message they go into."""
    if not isinstance(config, dict):
        return []
    problems: list[FieldError] = []
    for op in ("set", "add"):
        for i, item in enumerate(config.get(op) or []):
            value = item.get("value") if isinstance(item, dict) else None
            if isinstance(value, str) and HEADER_VALUE_BAD.search(value):
                problems.append(invalid(f"{path}.{op}[{i}].value", value, "a header value must not contain control characters other than horizontal tab"))
    return problems


def path_modifier_errors(config: Any, path: str) -> list[FieldError]:
    """ReplaceFullPath / ReplacePrefixMatch values go into a request line or a Location header."""
    if not isinstance(config, dict):
        return []
    problems: list[FieldError] = []
    for name in ("replaceFullPath", "replacePrefixMatch"):
        value = config.get(name)
        if isinstance(value, str) and value and not PATH_CHARS.fullmatch(value):
            problems.append(invalid(f"{path}.{name}", value, PATH_CHARS_MESSAGE))
    return problems


def filter_value_errors(filters: list[dict[str, Any]], path: str) -> list[FieldError]:
    """The values of filters that reach the wire (header modifiers, rewrite and redirect paths)."""
    problems: list[FieldError] = []
    for i, f in enumerate(filters):
        if not isinstance(f, dict):
            continue
        for name in ("requestHeaderModifier", "responseHeaderModifier"):
            problems += header_modifier_errors(f.get(name), f"{path}[{i}].{name}")
        for name in ("requestRedirect", "urlRewrite"):
            config = f.get(name)
            if isinstance(config, dict):
                problems += path_modifier_errors(config.get("path"), f"{path}[{i}].{name}.path")
    return problems


def _uses_prefix_replacement(filters: Any, field: str) -> bool:
    count = 0
    for f in filters or []:
        config = f.get(field) if isinstance(f, dict) else None
        modifier = config.get("path") if isinstance(config, dict) else None
        if isinstance(modifier, dict) and modifier.get("type") == "ReplacePrefixMatch" and "replacePrefixMatch" in modifier:
            count += 1
    return count == 1


def _one_prefix_match(rule: dict[str, Any]) -> bool:
    matches = rule.get("matches") or []
    return len(matches) == 1 and isinstance(matches[0].get("path"), dict) and matches[0]["path"].get("type") == "PathPrefix"


def rule_errors(rule: dict[str, Any], path: str) -> list[FieldError]:
    problems: list[FieldError] = []
    filters = rule.get("filters") or []
    if rule.get("backendRefs") and any("requestRedirect" in f for f in filters):
        problems.append(gatewayapi.rule_failed(path, rule, "RequestRedirect filter must not be used together with backendRefs"))
    if not _one_prefix_match(rule):
        refs = [r for r in rule.get("backendRefs") or [] if isinstance(r, dict)]
        for field, name in _PREFIX_FILTERS:
            if _uses_prefix_replacement(filters, field):
                problems.append(gatewayapi.rule_failed(
                    path, rule, f"When using {name} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"))
            if sum(1 for r in refs if _uses_prefix_replacement(r.get("filters"), field)) == 1:
                within = "When" if name == "URLRewrite" else "when"
                problems.append(gatewayapi.rule_failed(
                    path, rule, f"Within backendRefs, {within} using {name} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"))
    problems += filter_value_errors(filters, f"{path}.filters")
    for j, ref in enumerate(rule.get("backendRefs") or []):
        if isinstance(ref, dict):
            problems += filter_value_errors(ref.get("filters") or [], f"{path}.backendRefs[{j}].filters")
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
