"""The Gateway API's standard-channel definitions (gateway.networking.k8s.io), vendored as JSON, and what
the five kind modules built from them share (gatewayclass.py, gateway.py, httproute.py, grpcroute.py,
referencegrant.py).

A real cluster gets these kinds by installing the project's CustomResourceDefinitions; here they are
served built in (discovery, OpenAPI, `kubectl explain`, tables) with no definition to install, through
the custom-resource machinery of emulator/kinds/custom.py: the upstream schema prunes, defaults and
validates every write, the upstream printer columns make `kubectl get`, and the status subresource is
served. The definitions' CEL rules (x-kubernetes-validations) are not evaluated by that machinery; the
kind modules check the ones users meet most by hand.

Loading the five files takes about a millisecond (orjson, ~460 kB), so they are read at import.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

from emulator.errors import FieldError, invalid
from emulator.kinds import custom
from emulator.kinds.base import Kind, ResourceType

GROUP = "gateway.networking.k8s.io"
SOURCE_TAG = "v1.6.1"  # the release the JSON files come from (README.md says how to regenerate them)
HERE = Path(__file__).resolve().parent
DEFINITIONS = ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants")


@cache
def definition(plural: str) -> dict[str, Any]:
    """The upstream CustomResourceDefinition of `plural` (never modified: callers copy what they change)."""
    crd: dict[str, Any] = orjson.loads((HERE / f"{plural}.json").read_bytes())
    return crd


def version_of(plural: str, version: str) -> dict[str, Any]:
    versions: list[dict[str, Any]] = definition(plural)["spec"]["versions"]
    found = next((v for v in versions if v["name"] == version), None)
    if found is None:
        raise KeyError(f"{plural}.{GROUP} has no version {version}")
    return found


def resource_type(plural: str, version: str) -> ResourceType:
    return custom.resource_type(definition(plural), version_of(plural, version))


def schema_of(resource: ResourceType) -> custom.Schema:
    return custom.version_schema(version_of(resource.plural, resource.version))


def has_status(resource: ResourceType) -> bool:
    return "status" in (version_of(resource.plural, resource.version).get("subresources") or {})


class GatewayApiStrategy(custom.CustomResourceStrategy):
    """The write path of a Gateway API kind: the custom-resource one (prune, default, validate by the
    schema, generation bumped on spec changes); a kind module adds the CEL rules it checks in `rules`,
    which run only on an object the schema accepted (as the API server runs CEL after the schema)."""

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems = super().validate(obj)
        return problems or self.rules(obj)

    def rules(self, obj: dict[str, Any]) -> list[FieldError]:
        return []


def rule_failed(path: str, value: Any, message: str) -> FieldError:
    """A failed x-kubernetes-validations rule, as the API server words it: the value's JSON type, then
    the rule's message (`spec.listeners: Invalid value: "array": Listener name must be unique ...`)."""
    return invalid(path, custom.json_type(value), message)


def _printer(version: dict[str, Any]) -> Any:
    # the API server's column printer shows a path's first value: `[*]` (Gateway's ADDRESS) reads as `[0]`
    columns = [{**c, "jsonPath": c["jsonPath"].replace("[*]", "[0]")} for c in version.get("additionalPrinterColumns") or []]
    return custom.printer_for(columns)


def kind(strategy: type[custom.CustomResourceStrategy]) -> Kind:
    """The Kind of the version a kind module serves (its objects are stored in it), every served version's
    OpenAPI definition published for /openapi and `kubectl explain`."""
    r = strategy.resource
    custom.publish(definition(r.plural))
    return Kind(r, strategy, _printer(version_of(r.plural, r.version)))


def other_versions(main: Kind) -> tuple[Kind, ...]:
    """The definition's other served versions (v1beta1 of Gateway and HTTPRoute, v1 of ReferenceGrant):
    the same objects under another apiVersion, as the upstream definitions serve them (`conversion: None`),
    stored in `main`'s version and checked by its strategy's rules."""
    r, strategy = main.resource, main.strategy
    assert strategy is not None and issubclass(strategy, custom.CustomResourceStrategy)
    out: list[Kind] = []
    for version in definition(r.plural)["spec"]["versions"]:
        if not version.get("served") or version["name"] == r.version:
            continue
        other = resource_type(r.plural, version["name"])
        attributes = {"resource": other, "schema": custom.version_schema(version), "storage_api_version": r.api_version}
        served = type(f"{r.kind}{version['name'].capitalize()}Strategy", (strategy,), attributes)
        out.append(Kind(other, served, _printer(version)))
    return tuple(out)


# -- the CEL rules both route kinds have ------------------------------------------------------------

_FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier", "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestMirror": "requestMirror", "RequestRedirect": "requestRedirect", "URLRewrite": "urlRewrite",
    "ExtensionRef": "extensionRef", "CORS": "cors",
}
_NOT_REPEATED = ("CORS", "RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite")


def _same_parent(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("group", "kind", "name")) and (a.get("namespace") or "") == (b.get("namespace") or "")


def parent_ref_errors(refs: list[dict[str, Any]]) -> list[FieldError]:
    path = "spec.parentRefs"
    problems: list[FieldError] = []
    if any(_same_parent(a, b) and bool(a.get("sectionName")) != bool(b.get("sectionName")) for a in refs for b in refs):
        problems.append(rule_failed(path, refs, "sectionName must be specified when parentRefs includes 2 or more references to the same parent"))
    if any(sum(1 for b in refs if _same_parent(a, b) and (a.get("sectionName") or "") == (b.get("sectionName") or "")) != 1 for a in refs):
        problems.append(rule_failed(path, refs, "sectionName must be unique when parentRefs includes 2 or more references to the same parent"))
    return problems


def backend_ref_errors(ref: dict[str, Any], path: str) -> list[FieldError]:
    if not ref.get("group") and ref.get("kind", "Service") == "Service" and "port" not in ref:
        return [rule_failed(path, ref, "Must have port for Service reference")]
    return []


def filter_errors(filters: list[dict[str, Any]], path: str) -> list[FieldError]:
    """A filter's type and its one configuration field agree; no filter type twice; not both redirect and rewrite."""
    problems: list[FieldError] = []
    types = [f.get("type") for f in filters]
    if "RequestRedirect" in types and "URLRewrite" in types:
        problems.append(rule_failed(path, filters, "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both"))
    for kind in _NOT_REPEATED:
        if types.count(kind) > 1:
            problems.append(rule_failed(path, filters, f"{kind} filter cannot be repeated"))
    for i, item in enumerate(filters):
        for kind, name in _FILTER_FIELDS.items():
            if name in item and item.get("type") != kind:
                problems.append(rule_failed(f"{path}[{i}]", item, f"filter.{name} must be nil if the filter.type is not {kind}"))
            if name not in item and item.get("type") == kind:
                problems.append(rule_failed(f"{path}[{i}]", item, f"filter.{name} must be specified for {kind} filter.type"))
        mirror = item.get("requestMirror")
        if isinstance(mirror, dict):
            problems += backend_ref_errors(mirror.get("backendRef") or {}, f"{path}[{i}].requestMirror.backendRef")
    return problems


def route_errors(spec: dict[str, Any]) -> list[FieldError]:
    """The rules HTTPRoute and GRPCRoute share: parentRefs, backendRefs' ports, filters."""
    problems = parent_ref_errors(spec.get("parentRefs") or [])
    for i, rule in enumerate(spec.get("rules") or []):
        where = f"spec.rules[{i}]"
        problems += filter_errors(rule.get("filters") or [], f"{where}.filters")
        for j, ref in enumerate(rule.get("backendRefs") or []):
            problems += backend_ref_errors(ref, f"{where}.backendRefs[{j}]")
            problems += filter_errors(ref.get("filters") or [], f"{where}.backendRefs[{j}].filters")
    return problems
