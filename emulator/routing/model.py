"""What Ingresses and Gateway API routes mean, compiled: the shapes the gateway routes by.

`emulator/routing/ingress.py` and `emulator/routing/gatewayapi.py` turn stored objects into these values
(pure functions); `emulator/routing/index.py` keeps them current from store events; the proxy's gateway
(`emulator/proxy/`) asks `RoutingConfig.find` once per request and carries out the `Action`; the status
controllers write what `Compiled.statuses` says. Nothing here touches a socket or the store.

Frozen dataclasses with slots: a compiled configuration is shared by reference and swapped whole when
an object changes, so a request in flight keeps the configuration it started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Where a request arrived: the gateway's plain-HTTP port, its HTTPS port, or a port a Gateway listener
# asked for (bound on the gateway's address). Gateway listeners on port 80 (HTTP) and 443 (HTTPS) are
# served on the gateway's own HTTP and HTTPS ports; Ingresses are served on those two as well.
HTTP = "HTTP"
HTTPS = "HTTPS"
ListenerKey = tuple[int, str]  # (listener port as the Gateway spec says it; 80/443 for the shared ports, protocol)
SHARED_HTTP: ListenerKey = (80, HTTP)
SHARED_HTTPS: ListenerKey = (443, HTTPS)


@dataclass(frozen=True, slots=True)
class ServiceBackend:
    """A resolved backendRef: one port of one Service, with its share of the traffic. `port` is the
    service port number; an Ingress backend that names its port by name has `port_name` instead.
    `problem` is set when the reference cannot be used (no such service or port, not allowed by a
    ReferenceGrant, unsupported kind): its share of the requests is answered 500 by the gateway, as the
    Gateway API requires, and the message says why."""

    namespace: str
    service: str
    port: int | None = None
    port_name: str | None = None
    weight: int = 1
    problem: str | None = None
    # filters set on the backendRef itself (Gateway API), applied after the rule's own
    request_headers: HeaderChanges | None = None
    response_headers: HeaderChanges | None = None


@dataclass(frozen=True, slots=True)
class HeaderChanges:
    """RequestHeaderModifier / ResponseHeaderModifier. Names are lower case; `set` replaces every
    value of a header, `add` appends one (a comma-joined value when the header is already there, as the
    conformance cases expect), `remove` drops it; applied in that order."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathModifier:
    """ReplaceFullPath (`value` is the whole new path) or ReplacePrefixMatch (`value` replaces the part
    of the path the rule's PathPrefix matched, element-wise)."""

    type: str  # "ReplaceFullPath" | "ReplacePrefixMatch"
    value: str


@dataclass(frozen=True, slots=True)
class Redirect:
    """RequestRedirect: the gateway answers it itself (Location built from the request and these)."""

    scheme: str | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: int | None = None
    status_code: int = 302


@dataclass(frozen=True, slots=True)
class Rewrite:
    """URLRewrite: the request goes upstream with this Host and/or path."""

    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True)
class Mirror:
    """RequestMirror: a copy of each request (fire and forget; its response is dropped) goes to
    `backend`, for `percent` out of 100 requests."""

    backend: ServiceBackend
    percent: float = 100.0


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: str  # lower case
    value: str
    type: str = "Exact"  # "Exact" | "RegularExpression" (RE2 syntax; google-re2)


@dataclass(frozen=True, slots=True)
class QueryMatch:
    name: str  # exact, case-sensitive
    value: str
    type: str = "Exact"  # "Exact" | "RegularExpression"


@dataclass(frozen=True, slots=True)
class Match:
    """One way a request can match a rule. `path_type`:
    - "Exact": the path equals `path` (case-sensitive);
    - "PathPrefix": element-wise prefix, as both Ingress `Prefix` and Gateway API `PathPrefix` define it
      (`/foo` matches `/foo`, `/foo/`, `/foo/bar`, not `/foobar`; a trailing `/` in `path` is ignored);
    - "RegularExpression": RE2 full match of the path (Gateway API, implementation-specific).
    Ingress `ImplementationSpecific` compiles to "PathPrefix". Every condition given must hold."""

    path_type: str = "PathPrefix"
    path: str = "/"
    method: str | None = None
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[QueryMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class Action:
    """What a matching request gets. With `redirect`, the gateway answers; otherwise one backend is
    picked by weight (all weights 0, or no backends: 500 with `problem`), the rule's filters, then the
    chosen backend's, are applied. `source` names the object and rule for logs, flows and errors,
    e.g. "httproute default/web rule 1" or "ingress default/web"."""

    backends: tuple[ServiceBackend, ...] = ()
    request_headers: HeaderChanges | None = None
    response_headers: HeaderChanges | None = None
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    source: str = ""
    problem: str | None = None  # why every request here fails (e.g. "no backendRefs"); answered 500
    # the PathPrefix the request matched (for ReplacePrefixMatch), filled per entry by the compiler
    matched_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One (match, action) pair of a host, in precedence order."""

    match: Match
    action: Action


@dataclass(frozen=True, slots=True)
class HostRoutes:
    """Everything one hostname pattern routes, entries sorted by precedence (first match wins)."""

    entries: tuple[Entry, ...]
    uses_headers: bool = False  # some entry matches on headers (else the caller need not collect them)
    uses_query: bool = False


@dataclass(frozen=True, slots=True)
class Certificate:
    """A TLS certificate for one or more hostnames, from a `kubernetes.io/tls` Secret (PEM)."""

    namespace: str
    secret: str
    cert_pem: bytes
    key_pem: bytes
    hostnames: tuple[str, ...]  # exact or "*." patterns; () = the listener's default certificate


@dataclass(frozen=True, slots=True)
class ListenerRoutes:
    """The routes of one listener (port, protocol). Host lookup order:
    1. `exact[host]`;
    2. wildcard patterns, most specific (longest suffix) first: `wildcards` holds (suffix, single_label,
       routes), where suffix is ".example.com"; single_label=True is Ingress' rule (`*.foo.com` matches
       `bar.foo.com` only), False the Gateway API's (`*.foo.com` matches any subdomain depth);
    3. `any_host` (rules with no host, Ingress defaultBackend last).
    Within the host found, the first entry whose match holds wins; when none holds, lookup does NOT
    fall through to less specific hosts (the request is a 404), as Gateway API and ingress-nginx do."""

    exact: dict[str, HostRoutes] = field(default_factory=dict)
    wildcards: tuple[tuple[str, bool, HostRoutes], ...] = ()
    any_host: HostRoutes | None = None
    certificates: tuple[Certificate, ...] = ()  # HTTPS listeners: chosen by SNI


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Every listener's routes. The gateway's shared ports are SHARED_HTTP and SHARED_HTTPS."""

    listeners: dict[ListenerKey, ListenerRoutes] = field(default_factory=dict)
    hostnames: frozenset[str] = frozenset()  # every exact hostname routed (for DNS answers)

    def served_names(self) -> tuple[frozenset[str], tuple[tuple[str, bool], ...]]:
        """Every exact hostname and every wildcard (suffix, single_label) some listener routes: what the
        DNS server answers with the gateway's address."""
        exact = set(self.hostnames)
        wildcards: set[tuple[str, bool]] = set()
        for routes in self.listeners.values():
            exact.update(routes.exact)
            wildcards.update((suffix, single) for suffix, single, _ in routes.wildcards)
        return frozenset(exact), tuple(sorted(wildcards))


@dataclass(frozen=True, slots=True)
class ObjectRef:
    resource: str  # the store key of the kind, e.g. INGRESSES.key
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Problem:
    """A bad reference worth an Event on the object (reason is CamelCase, message says what to fix)."""

    ref: ObjectRef
    reason: str
    message: str
    type: str = "Warning"


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiler's output: the routing, the `status` each object should have (only objects this
    implementation owns: Ingresses of its class, Gateways of its GatewayClass, routes attached to
    them), and the problems to report."""

    config: RoutingConfig
    statuses: dict[ObjectRef, dict[str, Any]] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
