"""The Gateway API (gateway.networking.k8s.io/v1) compiled to routes: what the emulator serves as the
implementation of its GatewayClasses (pure: stored objects in, `Compiled` out), and the statuses a
conformant implementation writes. The conformance cases (conformance/tests/*.go upstream) are the guide;
the unit tests are named after them.

- Classes: a GatewayClass whose `controllerName` is ours is Accepted; Gateways of such classes are ours.
- Listeners: HTTP and HTTPS only (others: Accepted False, UnsupportedProtocol). Port 80 HTTP and 443
  HTTPS are served on the gateway's own HTTP and HTTPS ports (`SHARED_HTTP`, `SHARED_HTTPS`), other
  ports on their own `ListenerKey`. HTTPS certificates come from `kubernetes.io/tls` Secrets
  (cross-namespace only with a ReferenceGrant from the Gateway).
- Attachment: a route's parentRef names a Gateway of ours, optionally a listener (sectionName) and a
  port; the listener must allow the route's namespace (allowedRoutes.namespaces: Same, All, Selector)
  and kind, and its hostname must intersect the route's. Route status per parentRef: Accepted
  (NoMatchingParent, NotAllowedByListeners, NoMatchingListenerHostname, UnsupportedValue) and
  ResolvedRefs (RefNotPermitted, InvalidKind, BackendNotFound).
- Hosts: a listener's routes serve the intersection of its hostname and theirs. A request belongs to
  the most specific listener hostname that matches it (listener isolation); among that listener's
  routes, more specific route hostnames go first, then the HTTPRoute match precedence: Exact path,
  longest path, method, most header matches, most query matches, oldest route, namespace/name, rule
  order.
- Backends: Services by port number, weighted (0 allowed); a reference that cannot be used stays in the
  split with a `problem` (its share is answered 500, as the specification requires).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from emulator.kinds.gateway import GATEWAYS
from emulator.kinds.gatewayapi import GROUP, SOURCE_TAG
from emulator.kinds.gatewayclass import GATEWAY_CLASSES
from emulator.kinds.grpcroute import GRPC_ROUTES
from emulator.kinds.httproute import HEADER_VALUE_BAD, HTTP_ROUTES, PATH_CHARS
from emulator.labels import SelectorError, selector_from_label_selector
from emulator.routing.ingress import tls_pair
from emulator.routing.match import valid_regex
from emulator.routing.model import (
    HTTP,
    HTTPS,
    Action,
    Certificate,
    Compiled,
    Entry,
    HeaderChanges,
    HeaderMatch,
    HostRoutes,
    ListenerKey,
    ListenerRoutes,
    Match,
    Mirror,
    ObjectRef,
    PathModifier,
    QueryMatch,
    Redirect,
    Rewrite,
    RoutingConfig,
    ServiceBackend,
)
from emulator.routing.sources import Objects, RoutingObjects, RoutingSettings

HTTP_ROUTE = "HTTPRoute"
GRPC_ROUTE = "GRPCRoute"
ROUTE_KINDS = (HTTP_ROUTE, GRPC_ROUTE)  # what HTTP and HTTPS listeners accept
# the features this implementation supports (GatewayClass status.supportedFeatures, sorted)
SUPPORTED_FEATURES = (
    "GRPCRoute", "GRPCRouteNamedRouteRule", "Gateway", "GatewayHTTPListenerIsolation", "GatewayPort8080",
    "HTTPRoute", "HTTPRoute303RedirectStatusCode", "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode", "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification", "HTTPRouteDestinationPortMatching", "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching", "HTTPRouteNamedRouteRule", "HTTPRouteParentRefPort", "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite", "HTTPRoutePortRedirect", "HTTPRouteQueryParamMatching", "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors", "HTTPRouteRequestPercentageMirror", "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect", "ReferenceGrant",
)
log = logging.getLogger(__name__)

_HEADER_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier")
_RULE_FILTERS = (*_HEADER_FILTERS, "RequestRedirect", "URLRewrite", "RequestMirror")
# RegularExpression is implementation-specific: ranked after Exact and before every PathPrefix (as Envoy
# Gateway ranks it), so a regex rule beside a catch-all "/" can win
_PATH_RANK = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}


# -- conditions ----------------------------------------------------------------------------------------


def condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    """A metav1.Condition without lastTransitionTime (the status controller keeps or sets it)."""
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message, "observedGeneration": generation}


def _generation(obj: dict[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 1)


def _age_key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta.get("name") or ""


# -- hostnames -----------------------------------------------------------------------------------------


def host_matches(pattern: str, host: str) -> bool:
    """Whether a hostname pattern covers a hostname or a narrower pattern: exact equality, or a
    `*.example.com` wildcard covering any name (or wildcard) ending in `.example.com`, at any depth."""
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[1:]
    name = host[1:] if host.startswith("*.") else host
    return name.endswith(suffix) and len(name) > len(suffix)


def intersect_hostnames(listener: str | None, route: list[str]) -> list[str]:
    """The hostnames a route serves on a listener ("" for every host): the route's that the listener's
    covers, narrowed to the listener's where the route's is the wider wildcard. Empty: none."""
    if not route:
        return [listener or ""]
    if not listener:
        return list(dict.fromkeys(route))
    out: list[str] = []
    for host in route:
        if host_matches(listener, host):
            out.append(host)
        elif host_matches(host, listener):
            out.append(listener)
    return list(dict.fromkeys(out))


def _specificity(pattern: str) -> tuple[int, int]:
    """Sort key: exact names first, then wildcards by length (longest first), then "" (every host)."""
    if not pattern:
        return (2, 0)
    if pattern.startswith("*."):
        return (1, -len(pattern))
    return (0, 0)


# -- working state -------------------------------------------------------------------------------------


@dataclass
class _Listener:
    gateway: dict[str, Any]
    spec: dict[str, Any]
    key: ListenerKey | None  # None: not accepted (nothing is served for it)
    kinds: tuple[str, ...]
    conditions: list[dict[str, Any]] = field(default_factory=list)
    programmed: bool = False
    certificates: list[Certificate] = field(default_factory=list)
    attached: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, namespace, name) of routes
    # (hostname pattern the entry serves, sort key, entry)
    entries: list[tuple[str, tuple[Any, ...], Entry]] = field(default_factory=list)
    # the hostnames ("" for every one) routes of each kind serve here: HTTPRoutes and GRPCRoutes are not
    # merged on one hostname (the older route's kind keeps it)
    claims: dict[str, set[str]] = field(default_factory=dict)

    def claimed_by_other(self, kind: str, hosts: list[str]) -> bool:
        claimed = self.claims.get(GRPC_ROUTE if kind == HTTP_ROUTE else HTTP_ROUTE)
        if not claimed:
            return False
        if "" in claimed or "" in hosts:
            return True
        wild = [c for c in claimed if c.startswith("*.")]
        for host in hosts:
            if host in claimed or any(host_matches(c, host) for c in wild):
                return True
            if host.startswith("*.") and any(host_matches(host, c) for c in claimed):
                return True
        return False

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or "")

    @property
    def port(self) -> int:
        return int(self.spec.get("port") or 0)

    @property
    def hostname(self) -> str:
        return str(self.spec.get("hostname") or "")


@dataclass
class _Build:
    objs: RoutingObjects
    s: RoutingSettings
    gateways: dict[tuple[str, str], list[_Listener]] = field(default_factory=dict)
    statuses: dict[ObjectRef, dict[str, Any]] = field(default_factory=dict)


def granted(grants: Objects, from_kind: str, from_namespace: str, to_group: str, to_kind: str, to_namespace: str, to_name: str) -> bool:
    """Whether a ReferenceGrant in `to_namespace` lets a `from_kind` (of the Gateway API group) in
    `from_namespace` refer to the object."""
    for (namespace, _), grant in grants.items():
        if namespace != to_namespace:
            continue
        spec = grant.get("spec") or {}
        allowed_from = any(
            (f.get("group") or "") == GROUP and f.get("kind") == from_kind and f.get("namespace") == from_namespace
            for f in spec.get("from") or []
        )
        allowed_to = any(
            (t.get("group") or "") == to_group and t.get("kind") == to_kind and (not t.get("name") or t.get("name") == to_name)
            for t in spec.get("to") or []
        )
        if allowed_from and allowed_to:
            return True
    return False


# -- classes and gateways ------------------------------------------------------------------------------


def _our_classes(build: _Build) -> set[str]:
    ours: set[str] = set()
    for (_, name), gc in build.objs.gateway_classes.items():
        if (gc.get("spec") or {}).get("controllerName") != build.s.controller:
            continue
        ours.add(name)
        generation = _generation(gc)
        build.statuses[ObjectRef(GATEWAY_CLASSES.key, "", name)] = {
            "conditions": [
                condition("Accepted", True, "Accepted", "Handled by the emulator's gateway", generation),
                condition("SupportedVersion", True, "SupportedVersion", f"Gateway API {SOURCE_TAG} is served built in", generation),
            ],
            "supportedFeatures": [{"name": n} for n in SUPPORTED_FEATURES],
        }
    return ours


def _route_kinds(spec: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    """The route kinds a listener accepts and whether every kind it names is one we support."""
    asked = ((spec.get("allowedRoutes") or {}).get("kinds")) or None
    if asked is None:
        return ROUTE_KINDS, True
    kinds = [k.get("kind") for k in asked if (k.get("group") if "group" in k else GROUP) == GROUP and k.get("kind") in ROUTE_KINDS]
    return tuple(dict.fromkeys(k for k in kinds if k)), len(kinds) == len(asked)


def _certificates(build: _Build, gw: dict[str, Any], spec: dict[str, Any]) -> tuple[list[Certificate], tuple[str, str] | None]:
    """The listener's certificates, or (reason, message) why its references cannot be used."""
    meta = gw["metadata"]
    found: list[Certificate] = []
    hostnames = (spec["hostname"],) if spec.get("hostname") else ()
    refs = (spec.get("tls") or {}).get("certificateRefs") or []
    if not refs:
        return [], ("InvalidCertificateRef", "an HTTPS listener needs tls.certificateRefs")
    for ref in refs:
        group, kind, name = ref.get("group") or "", ref.get("kind") or "Secret", ref.get("name") or ""
        namespace = ref.get("namespace") or meta["namespace"]
        if group != "" or kind != "Secret":
            return [], ("InvalidCertificateRef", f"certificateRef {group}/{kind} {name}: only Secrets are supported")
        if namespace != meta["namespace"] and not granted(build.objs.reference_grants, "Gateway", meta["namespace"], "", "Secret", namespace, name):
            return [], ("RefNotPermitted", f"certificateRef to Secret {namespace}/{name} is not permitted by any ReferenceGrant")
        secret = build.objs.tls_secrets.get((namespace, name))
        if secret is None:
            return [], ("InvalidCertificateRef", f"Secret {namespace}/{name} of type kubernetes.io/tls does not exist")
        pair = tls_pair(secret)
        if isinstance(pair, str):
            return [], ("InvalidCertificateRef", f"Secret {namespace}/{name}: {pair}")
        found.append(Certificate(namespace, name, pair[0], pair[1], hostnames))
    return found, None


def _listeners(build: _Build, gw: dict[str, Any]) -> list[_Listener]:
    generation = _generation(gw)
    specs = (gw.get("spec") or {}).get("listeners") or []
    protocols_by_port: dict[int, set[str]] = {}
    for spec in specs:
        protocols_by_port.setdefault(int(spec.get("port") or 0), set()).add(str(spec.get("protocol")))
    out: list[_Listener] = []
    for spec in specs:
        protocol, port = str(spec.get("protocol")), int(spec.get("port") or 0)
        listener = _Listener(gw, spec, None, ())
        conflicted = len(protocols_by_port[port]) > 1
        if protocol not in (HTTP, HTTPS):
            accepted: tuple[bool, str, str] = (False, "UnsupportedProtocol", f"protocol {protocol} is not supported: use HTTP or HTTPS")
        elif conflicted:
            accepted = (False, "ProtocolConflict", f"another listener uses port {port} with another protocol")
        elif protocol == HTTPS and port == 443 and build.s.https_port is None:
            accepted = (False, "PortUnavailable", "the emulator's gateway has no HTTPS port (--gateway-https-port -1)")
        elif port not in (80, 443) and port in (build.s.http_port, build.s.https_port):
            accepted = (False, "PortUnavailable", f"port {port} is the emulator's gateway's own: use port 80 (HTTP) or 443 (HTTPS) to be served there")
        else:
            accepted = (True, "Accepted", "Listener is valid")
        resolved: tuple[bool, str, str] = (True, "ResolvedRefs", "All references resolved")
        if accepted[0]:
            listener.key = (port, protocol)  # (80, HTTP) and (443, HTTPS): SHARED_HTTP and SHARED_HTTPS
            kinds, all_known = _route_kinds(spec)
            listener.kinds = kinds
            if not all_known:
                resolved = (False, "InvalidRouteKinds", f"only {' and '.join(ROUTE_KINDS)} of group {GROUP} are supported")
            if protocol == HTTPS:
                listener.certificates, failed = _certificates(build, gw, spec)
                if failed is not None:
                    resolved = (False, *failed)
        listener.programmed = accepted[0] and (resolved[0] or resolved[1] == "InvalidRouteKinds") and bool(listener.kinds)
        listener.conditions = [
            condition("Accepted", *accepted, generation),
            condition("Conflicted", conflicted, "ProtocolConflict" if conflicted else "NoConflicts",
                      f"port {port} is used with several protocols" if conflicted else "No conflicts", generation),
            condition("Programmed", listener.programmed, "Programmed" if listener.programmed else "Invalid",
                      "Served by the emulator's gateway" if listener.programmed else "Not served: see the other conditions", generation),
            condition("ResolvedRefs", *resolved, generation),
        ]
        out.append(listener)
    return out


def _cross_gateway_conflicts(build: _Build, gateways: list[dict[str, Any]]) -> None:
    """Our Gateways share one address: a port is served with one protocol, the oldest Gateway's (by
    creationTimestamp, then namespace/name); a younger Gateway's listener on that port with another
    protocol is Conflicted (ProtocolConflict) and not served."""
    protocols: dict[int, tuple[str, str]] = {}  # port -> (protocol, the Gateway that has it)
    for gw in gateways:
        meta = gw["metadata"]
        for item in build.gateways.get((meta["namespace"], meta["name"])) or []:
            if item.key is None:
                continue
            port, protocol = item.key
            owner = protocols.setdefault(port, (protocol, f"{meta['namespace']}/{meta['name']}"))
            if owner[0] == protocol:
                continue
            message = f"port {port} is served with protocol {owner[0]} for Gateway {owner[1]}"
            generation = _generation(gw)
            item.key, item.kinds, item.programmed = None, (), False
            resolved = next((c for c in item.conditions if c["type"] == "ResolvedRefs"), None)
            item.conditions = [
                condition("Accepted", False, "ProtocolConflict", message, generation),
                condition("Conflicted", True, "ProtocolConflict", message, generation),
                condition("Programmed", False, "Invalid", "Not served: see the other conditions", generation),
                *([resolved] if resolved is not None else []),
            ]


def _gateway_status(build: _Build, gw: dict[str, Any], listeners: list[_Listener]) -> dict[str, Any]:
    generation = _generation(gw)
    accepted = [item for item in listeners if item.key is not None]
    requested = (gw.get("spec") or {}).get("addresses") or []
    unusable = [a for a in requested if a.get("value") and a.get("value") != build.s.gateway_host]
    if unusable:
        gateway_accepted = condition("Accepted", False, "UnsupportedAddress",
                                     f"the emulator's gateway has one address, {build.s.gateway_host}", generation)
    elif len(accepted) == len(listeners):
        gateway_accepted = condition("Accepted", True, "Accepted", "Gateway is valid", generation)
    else:
        gateway_accepted = condition("Accepted", bool(accepted), "ListenersNotValid", "Some listeners are not valid", generation)
    programmed = any(item.programmed for item in listeners) and not unusable
    if programmed:
        programmed_condition = condition("Programmed", True, "Programmed", "Served by the emulator's gateway", generation)
    elif unusable:
        programmed_condition = condition("Programmed", False, "AddressNotUsable", f"only {build.s.gateway_host} can be used", generation)
    else:
        programmed_condition = condition("Programmed", False, "Invalid", "No listener is programmed", generation)
    try:
        kind = "IPAddress" if ipaddress.ip_address(build.s.gateway_host) else "Hostname"
    except ValueError:
        kind = "Hostname"
    return {
        "addresses": [{"type": kind, "value": build.s.gateway_host}],
        "conditions": [gateway_accepted, programmed_condition],
        "listeners": [
            {
                "name": item.name,
                "supportedKinds": [{"group": GROUP, "kind": k} for k in item.kinds],
                "attachedRoutes": len(item.attached),
                "conditions": item.conditions,
            }
            for item in listeners
        ],
    }


def with_unbound_ports(gw: dict[str, Any], status: dict[str, Any], unbound: Mapping[ListenerKey, str]) -> dict[str, Any]:
    """A Gateway's desired `status` once the gateway has tried to bind: a listener whose port could not
    be bound (`unbound`: (port, protocol) -> why; another process holds the port, say) is not Accepted
    (PortUnavailable) and not Programmed, and the Gateway is Programmed only while a listener is."""
    if not unbound:
        return status
    generation = _generation(gw)
    ports = {
        str(spec.get("name")): (int(spec.get("port") or 0), str(spec.get("protocol")))
        for spec in (gw.get("spec") or {}).get("listeners") or []
    }
    listeners = []
    for item in status.get("listeners") or []:
        why = unbound.get(ports.get(item["name"], (0, "")))
        if why is None or not _true(item["conditions"], "Programmed"):
            listeners.append(item)
            continue
        replaced = {
            "Accepted": condition("Accepted", False, "PortUnavailable", why, generation),
            "Programmed": condition("Programmed", False, "Invalid", "Not served: see the other conditions", generation),
        }
        listeners.append({**item, "conditions": [replaced.get(c["type"], c) for c in item["conditions"]]})
    if listeners == status.get("listeners"):
        return status
    conditions = []
    accepted = sum(_true(item["conditions"], "Accepted") for item in listeners)
    for cond in status["conditions"]:
        if cond["type"] == "Accepted" and cond["reason"] in ("Accepted", "ListenersNotValid"):
            cond = condition("Accepted", True, "Accepted", "Gateway is valid", generation) if accepted == len(listeners) else (
                condition("Accepted", accepted > 0, "ListenersNotValid", "Some listeners are not valid", generation))
        elif cond["type"] == "Programmed" and cond["status"] == "True" and not any(_true(i["conditions"], "Programmed") for i in listeners):
            cond = condition("Programmed", False, "Invalid", "No listener is programmed", generation)
        conditions.append(cond)
    return {**status, "conditions": conditions, "listeners": listeners}


def _true(conditions: list[dict[str, Any]], kind: str) -> bool:
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


# -- routes --------------------------------------------------------------------------------------------


class _Unsupported(Exception):
    """A route uses something this implementation does not support (Accepted False, UnsupportedValue)."""


@dataclass
class _Refs:
    """The first reference of a route that could not be resolved, for its ResolvedRefs condition."""

    reason: str = "ResolvedRefs"
    message: str = "All references resolved"

    def failed(self, reason: str, message: str) -> None:
        if self.reason == "ResolvedRefs":
            self.reason, self.message = reason, message


def _header_value(item: dict[str, Any]) -> str:
    value = str(item.get("value", ""))
    if HEADER_VALUE_BAD.search(value) or not _latin1(value):
        raise _Unsupported(f"header {item.get('name')!r}: value {value!r} holds a control character or is not latin-1")
    return value


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _header_changes(config: dict[str, Any] | None) -> HeaderChanges | None:
    if not config:
        return None
    return HeaderChanges(
        set=tuple((h["name"].lower(), _header_value(h)) for h in config.get("set") or []),
        add=tuple((h["name"].lower(), _header_value(h)) for h in config.get("add") or []),
        remove=tuple(n.lower() for n in config.get("remove") or []),
    )


def _backend(build: _Build, route: dict[str, Any], kind: str, ref: dict[str, Any], refs: _Refs) -> ServiceBackend:
    route_ns = route["metadata"]["namespace"]
    group, ref_kind, name = ref.get("group") or "", ref.get("kind") or "Service", ref.get("name") or ""
    namespace = ref.get("namespace") or route_ns
    port = ref.get("port")
    weight = int(ref.get("weight", 1))
    headers = {f.get("type"): f for f in ref.get("filters") or []}
    for f in headers:
        if f not in _HEADER_FILTERS:
            raise _Unsupported(f"filter {f} on a backendRef is not supported by the emulator's gateway")
    request_headers = _header_changes((headers.get("RequestHeaderModifier") or {}).get("requestHeaderModifier"))
    response_headers = _header_changes((headers.get("ResponseHeaderModifier") or {}).get("responseHeaderModifier"))
    problem: str | None = None
    if group != "" or ref_kind != "Service":
        problem = f"backendRef {group or 'core'}/{ref_kind} {name}: only Services are supported"
        refs.failed("InvalidKind", problem)
    elif namespace != route_ns and not granted(build.objs.reference_grants, kind, route_ns, "", "Service", namespace, name):
        problem = f"backendRef to Service {namespace}/{name} is not permitted by any ReferenceGrant"
        refs.failed("RefNotPermitted", problem)
    else:
        service = build.objs.services.get((namespace, name))
        if service is None:
            problem = f"Service {namespace}/{name} not found"
            refs.failed("BackendNotFound", problem)
        else:
            spec = service.get("spec") or {}
            ports = [p.get("port") for p in spec.get("ports") or []]
            if spec.get("type") != "ExternalName" and port not in ports:
                problem = f"Service {namespace}/{name} has no port {port}"
                refs.failed("BackendNotFound", problem)
    return ServiceBackend(namespace, name, port if isinstance(port, int) else None, None, weight, problem, request_headers, response_headers)


def _path_modifier(config: dict[str, Any] | None) -> PathModifier | None:
    if not config:
        return None
    kind = config.get("type") or ""
    value = config.get("replaceFullPath") if kind == "ReplaceFullPath" else config.get("replacePrefixMatch")
    if value and not PATH_CHARS.fullmatch(str(value)):
        raise _Unsupported(f"{kind} path {value!r} holds characters a path may not hold")
    return PathModifier(kind, value or "")


def _mirror(build: _Build, route: dict[str, Any], kind: str, config: dict[str, Any], refs: _Refs) -> Mirror | None:
    backend = _backend(build, route, kind, config.get("backendRef") or {}, refs)
    if backend.problem is not None:
        return None
    percent = 100.0
    if "percent" in config:
        percent = float(config["percent"])
    elif isinstance(config.get("fraction"), dict):
        fraction = config["fraction"]
        percent = 100.0 * float(fraction.get("numerator", 0)) / float(fraction.get("denominator") or 100)
    return Mirror(backend, percent)


def _action(build: _Build, route: dict[str, Any], kind: str, index: int, rule: dict[str, Any], refs: _Refs) -> Action:
    meta = route["metadata"]
    source = f"{kind.lower()} {meta['namespace']}/{meta['name']} rule {index}"
    filters = rule.get("filters") or []
    request_headers = response_headers = None
    redirect = rewrite = None
    mirrors: list[Mirror] = []
    for f in filters:
        kind_of_filter = f.get("type")
        if kind_of_filter not in _RULE_FILTERS or (kind == GRPC_ROUTE and kind_of_filter not in (*_HEADER_FILTERS, "RequestMirror")):
            raise _Unsupported(f"filter {kind_of_filter} is not supported by the emulator's gateway")
        if kind_of_filter == "RequestHeaderModifier":
            request_headers = _header_changes(f.get("requestHeaderModifier"))
        elif kind_of_filter == "ResponseHeaderModifier":
            response_headers = _header_changes(f.get("responseHeaderModifier"))
        elif kind_of_filter == "RequestRedirect":
            config = f.get("requestRedirect") or {}
            redirect = Redirect(config.get("scheme"), config.get("hostname"), _path_modifier(config.get("path")),
                                config.get("port"), int(config.get("statusCode") or 302))
        elif kind_of_filter == "URLRewrite":
            config = f.get("urlRewrite") or {}
            rewrite = Rewrite(config.get("hostname"), _path_modifier(config.get("path")))
        else:
            mirror = _mirror(build, route, kind, f.get("requestMirror") or {}, refs)
            if mirror is not None:
                mirrors.append(mirror)
    backends = tuple(_backend(build, route, kind, ref, refs) for ref in rule.get("backendRefs") or [])
    problem = None
    if redirect is None and not backends:
        problem = f"{source} has no backendRefs"
    elif redirect is None and all(b.weight == 0 for b in backends):
        problem = f"{source}: every backendRef has weight 0"
    return Action(backends, request_headers, response_headers, redirect, rewrite, tuple(mirrors), source, problem)


def _http_matches(rule: dict[str, Any]) -> list[Match]:
    out: list[Match] = []
    for m in rule.get("matches") or [{}]:
        path = m.get("path") or {}
        path_type, value = path.get("type") or "PathPrefix", path.get("value") or "/"
        if path_type == "RegularExpression" and not valid_regex(value):
            raise _Unsupported(f"path regular expression {value!r} is not valid RE2")
        headers = _header_matches(m.get("headers") or [])
        query: dict[str, QueryMatch] = {}
        for q in m.get("queryParams") or []:
            q_type = q.get("type") or "Exact"
            if q_type == "RegularExpression" and not valid_regex(q.get("value") or ""):
                raise _Unsupported(f"query parameter regular expression {q.get('value')!r} is not valid RE2")
            query.setdefault(q["name"], QueryMatch(q["name"], q.get("value") or "", q_type))
        out.append(Match(path_type, value, m.get("method"), headers, tuple(query.values())))
    return out


def _header_matches(items: Iterable[dict[str, Any]]) -> tuple[HeaderMatch, ...]:
    """Header matches, the first per name (names are case-insensitive, later duplicates ignored)."""
    found: dict[str, HeaderMatch] = {}
    for h in items:
        kind = h.get("type") or "Exact"
        if kind == "RegularExpression" and not valid_regex(h.get("value") or ""):
            raise _Unsupported(f"header regular expression {h.get('value')!r} is not valid RE2")
        found.setdefault(h["name"].lower(), HeaderMatch(h["name"].lower(), h.get("value") or "", kind))
    return tuple(found.values())


def _grpc_matches(rule: dict[str, Any]) -> list[Match]:
    """A method match as the HTTP/2 path gRPC sends (`/package.Service/Method`)."""
    out: list[Match] = []
    for m in rule.get("matches") or [{}]:
        method = m.get("method") or {}
        service, name = method.get("service"), method.get("method")
        if (method.get("type") or "Exact") == "RegularExpression":
            pattern = f"/{service or '[^/]+'}/{name or '[^/]+'}"
            if not valid_regex(pattern):
                raise _Unsupported(f"method regular expression {pattern!r} is not valid RE2")
            path = ("RegularExpression", pattern)
        elif service and name:
            path = ("Exact", f"/{service}/{name}")
        elif service:
            path = ("PathPrefix", f"/{service}")
        elif name:
            path = ("RegularExpression", f"/[^/]+/{name}")
        else:
            path = ("PathPrefix", "/")
        out.append(Match(path[0], path[1], None, _header_matches(m.get("headers") or [])))
    return out


def _match_key(match: Match) -> tuple[int, int, int, int, int]:
    return (_PATH_RANK.get(match.path_type, 3), -len(match.path), 0 if match.method else 1, -len(match.headers), -len(match.query))


def _compile_route(build: _Build, route: dict[str, Any], kind: str) -> tuple[list[tuple[Match, Action, tuple[Any, ...]]], _Refs]:
    """The route's (match, action, sort key) triples and how its references resolved."""
    refs = _Refs()
    out: list[tuple[Match, Action, tuple[Any, ...]]] = []
    age = _age_key(route)
    for i, rule in enumerate((route.get("spec") or {}).get("rules") or [{}]):
        action = _action(build, route, kind, i, rule, refs)
        matches = _grpc_matches(rule) if kind == GRPC_ROUTE else _http_matches(rule)
        for j, match in enumerate(matches):
            prefix = match.path if match.path_type == "PathPrefix" else None
            out.append((match, replace(action, matched_prefix=prefix), (*_match_key(match), *age, i, j)))
    return out, refs


def _namespace_allowed(build: _Build, listener: _Listener, namespace: str) -> bool:
    config = (listener.spec.get("allowedRoutes") or {}).get("namespaces") or {}
    origin = config.get("from") or "Same"
    if origin == "All":
        return True
    if origin == "Same":
        return namespace == listener.gateway["metadata"]["namespace"]
    if origin == "Selector":
        ns = build.objs.namespaces.get(("", namespace))
        try:
            selector = selector_from_label_selector(config.get("selector"))
        except SelectorError:
            return False
        return ns is not None and selector.matches((ns.get("metadata") or {}).get("labels"))
    return False


def _parent_status(ref: dict[str, Any], s: RoutingSettings, accepted: tuple[bool, str, str], refs: _Refs, generation: int) -> dict[str, Any]:
    return {
        "parentRef": ref,
        "controllerName": s.controller,
        "conditions": [
            condition("Accepted", *accepted, generation),
            condition("ResolvedRefs", refs.reason == "ResolvedRefs", refs.reason, refs.message, generation),
        ],
    }


def _attach_route(build: _Build, route: dict[str, Any], kind: str) -> None:
    meta = route["metadata"]
    spec = route.get("spec") or {}
    generation = _generation(route)
    parents: list[dict[str, Any]] = []
    try:
        compiled, refs = _compile_route(build, route, kind)
        unsupported: str | None = None
    except _Unsupported as exc:
        compiled, refs, unsupported = [], _Refs(), str(exc)
    except Exception as exc:  # (the schema admitted it; a bug here must not take down every other route)
        log.exception("could not compile %s %s/%s", kind, meta["namespace"], meta["name"])
        compiled, refs, unsupported = [], _Refs(), f"the emulator could not compile this route: {exc}"
    hostnames = [str(h) for h in spec.get("hostnames") or []]
    for ref in spec.get("parentRefs") or []:
        if (ref.get("group") or GROUP) != GROUP or (ref.get("kind") or "Gateway") != "Gateway":
            continue  # a parent of another kind (a Service: a mesh) is another implementation's
        listeners = build.gateways.get((ref.get("namespace") or meta["namespace"], ref.get("name") or ""))
        if listeners is None:
            continue  # not a Gateway of ours
        if unsupported is not None:
            parents.append(_parent_status(ref, build.s, (False, "UnsupportedValue", unsupported), refs, generation))
            continue
        section, port = ref.get("sectionName"), ref.get("port")
        candidates = [item for item in listeners if (not section or item.name == section) and (port is None or item.port == port)]
        allowed = [item for item in candidates if kind in item.kinds and _namespace_allowed(build, item, meta["namespace"])]
        hosted = [(item, hosts) for item in allowed if (hosts := intersect_hostnames(item.hostname, hostnames))]
        free = [(item, hosts) for item, hosts in hosted if not item.claimed_by_other(kind, hosts)]
        if not candidates:
            wanted = [f"named {section}"] if section else []
            wanted += [f"on port {port}"] if port is not None else []
            accepted = (False, "NoMatchingParent", f"the Gateway has no listener {' '.join(wanted)}".rstrip())
        elif not allowed:
            accepted = (False, "NotAllowedByListeners", f"no listener allows {kind}s from namespace {meta['namespace']}")
        elif not hosted:
            accepted = (False, "NoMatchingListenerHostname", "no listener hostname matches the route's hostnames")
        elif not free:
            other = GRPC_ROUTE if kind == HTTP_ROUTE else HTTP_ROUTE
            accepted = (False, "NotAllowedByListeners",
                        f"an older {other} serves these hostnames on the listener ({kind}s and {other}s are not merged)")
        else:
            accepted = (True, "Accepted", "Route is accepted")
            for item, hosts in free:
                identity = (kind, meta["namespace"], meta["name"])
                if identity in item.attached:
                    continue
                item.attached.add(identity)
                item.claims.setdefault(kind, set()).update(hosts)
                for host in hosts:
                    item.entries += [(host, key, Entry(match, action)) for match, action, key in compiled]
        parents.append(_parent_status(ref, build.s, accepted, refs, generation))
    if parents:
        rt = GRPC_ROUTES if kind == GRPC_ROUTE else HTTP_ROUTES
        build.statuses[ObjectRef(rt.key, meta["namespace"], meta["name"])] = {"parents": parents}


# -- the routing tables --------------------------------------------------------------------------------


def _owner(patterns: Iterable[str], hostname: str) -> str | None:
    """The most specific listener hostname ("" for none) covering a hostname or pattern."""
    covering = [p for p in patterns if not p or host_matches(p, hostname)]
    return min(covering, key=_specificity) if covering else None


def _host_routes(entries: list[tuple[str, tuple[Any, ...], Entry]]) -> HostRoutes:
    ordered = tuple(e for _, _, e in sorted(entries, key=lambda item: (_specificity(item[0]), item[1])))
    return HostRoutes(ordered, any(e.match.headers for e in ordered), any(e.match.query for e in ordered))


def _listener_routes(listeners: list[_Listener]) -> tuple[ListenerRoutes, set[str]]:
    """One port's routes: every hostname a route serves (and every listener's own, so that a request for
    a listener without routes stays there: 404), with the entries of the most specific listener
    hostname covering it."""
    # listener hostname -> the hostname an entry serves -> entries (bucketed: a host's entries are found
    # without testing every entry of the listener against it)
    by_hostname: dict[str, dict[str, list[tuple[str, tuple[Any, ...], Entry]]]] = {}
    for item in listeners:
        buckets = by_hostname.setdefault(item.hostname, {})
        for entry in item.entries:
            buckets.setdefault(entry[0], []).append(entry)
    patterns = set(by_hostname) | {host for buckets in by_hostname.values() for host in buckets}
    wild = {owner: [host for host in buckets if host.startswith("*.")] for owner, buckets in by_hostname.items()}
    exact: dict[str, HostRoutes] = {}
    wildcards: list[tuple[str, bool, HostRoutes]] = []
    any_host: HostRoutes | None = None
    for pattern in sorted(patterns):
        owner = _owner(by_hostname, pattern) if pattern else ""
        if owner is None:
            continue
        buckets = by_hostname[owner]
        entries = [*buckets.get("", ()), *(buckets.get(pattern, ()) if pattern else ())]
        entries += [e for host in wild[owner] if host != pattern and host_matches(host, pattern) for e in buckets[host]]
        routes = _host_routes(entries)
        if not pattern:
            if entries:
                any_host = routes
        elif pattern.startswith("*."):
            wildcards.append((pattern[1:], False, routes))
        else:
            exact[pattern] = routes
    wildcards.sort(key=lambda w: -len(w[0]))
    certificates = tuple(c for item in listeners for c in item.certificates)
    return ListenerRoutes(exact, tuple(wildcards), any_host, certificates), set(exact)


# -- the compiler --------------------------------------------------------------------------------------


def compile_gateway_api(objs: RoutingObjects, s: RoutingSettings) -> Compiled:
    build = _Build(objs, s)
    classes = _our_classes(build)
    gateways = sorted(
        (gw for gw in objs.gateways.values() if (gw.get("spec") or {}).get("gatewayClassName") in classes), key=_age_key,
    )
    failed: dict[tuple[str, str], str] = {}
    for gw in gateways:
        key = (gw["metadata"]["namespace"], gw["metadata"]["name"])
        try:
            build.gateways[key] = _listeners(build, gw)
        except Exception as exc:  # a bug on one Gateway must not take every other one down
            log.exception("could not compile gateway %s/%s", *key)
            build.gateways[key], failed[key] = [], f"the emulator could not compile this Gateway: {exc}"
    _cross_gateway_conflicts(build, gateways)
    # oldest first, both kinds together: an HTTPRoute and a GRPCRoute for one hostname, the older wins
    every = [(route, HTTP_ROUTE) for route in objs.http_routes.values()] + [(route, GRPC_ROUTE) for route in objs.grpc_routes.values()]
    for route, kind in sorted(every, key=lambda item: _age_key(item[0])):
        _attach_route(build, route, kind)
    by_key: dict[ListenerKey, list[_Listener]] = {}
    for gw in gateways:
        meta = gw["metadata"]
        listeners = build.gateways[(meta["namespace"], meta["name"])]
        if (meta["namespace"], meta["name"]) in failed:
            why, generation = failed[(meta["namespace"], meta["name"])], _generation(gw)
            build.statuses[ObjectRef(GATEWAYS.key, meta["namespace"], meta["name"])] = {
                "conditions": [condition("Accepted", False, "Invalid", why, generation), condition("Programmed", False, "Invalid", why, generation)],
            }
            continue
        status = build.statuses[ObjectRef(GATEWAYS.key, meta["namespace"], meta["name"])] = _gateway_status(build, gw, listeners)
        if status["conditions"][1]["status"] != "True":
            continue  # not Programmed: nothing of it is served
        for item in listeners:
            if item.key is not None and item.programmed:
                by_key.setdefault(item.key, []).append(item)
    config: dict[ListenerKey, ListenerRoutes] = {}
    hostnames: set[str] = set()
    for key, listeners in by_key.items():
        config[key], names = _listener_routes(listeners)
        hostnames |= names
    return Compiled(RoutingConfig(config, frozenset(hostnames)), build.statuses)
