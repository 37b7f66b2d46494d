"""`RoutingIndex`: the store listener that keeps the objects routing reads and compiles them, lazily, into
one `Compiled` (Ingresses and the Gateway API merged), for the gateway and the status controllers.

    idx = RoutingIndex(RoutingSettings(...))
    changed = idx.apply(event)          # True when a routing-relevant object changed
    store.subscribe(idx.listen)         # or as a plain listener
    store.replay(idx.listen, idx.watched)
    idx.compiled()                      # recompiled on first use after a change, shared until the next

Only what can change routing counts as a change: the spec, labels, annotations and creationTimestamp of an
Ingress, IngressClass or Gateway API object (not its status: the status controllers' own writes cost no
recompilation); a Service's type and ports (not its status or annotations); a Secret of type kubernetes.io/tls
(others are not kept); a Namespace's labels (Gateway allowedRoutes selectors). It imports neither the
proxy nor DNS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from emulator.kinds import (
    GATEWAY_CLASSES,
    GATEWAYS,
    GRPC_ROUTES,
    HTTP_ROUTES,
    INGRESS_CLASSES,
    NAMESPACES,
    REFERENCE_GRANTS,
    SECRETS,
    SERVICES,
)
from emulator.kinds.ingress import INGRESSES
from emulator.kinds.secret import TLS
from emulator.routing.gatewayapi import compile_gateway_api
from emulator.routing.ingress import compile_ingresses
from emulator.routing.model import Compiled, HostRoutes, ListenerKey, ListenerRoutes, ObjectRef, RoutingConfig
from emulator.routing.sources import Objects, RoutingObjects, RoutingSettings
from emulator.store.events import DELETED, Event

log = logging.getLogger(__name__)

Compiler = Callable[[RoutingObjects, RoutingSettings], Compiled]


def _service_shape(obj: dict[str, Any]) -> tuple[Any, Any]:
    spec = obj.get("spec") or {}
    return spec.get("type"), spec.get("ports")


def _namespace_labels(obj: dict[str, Any]) -> Any:
    return (obj.get("metadata") or {}).get("labels")


def _spec_shape(obj: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    meta = obj.get("metadata") or {}
    return meta.get("labels"), meta.get("annotations"), meta.get("creationTimestamp"), obj.get("spec")


# what of an object routing reads: a change elsewhere (a status, a resourceVersion, managedFields) is none
_SHAPES: dict[str, Callable[[dict[str, Any]], Any]] = {
    SERVICES.key: _service_shape, NAMESPACES.key: _namespace_labels,
    **{rt.key: _spec_shape for rt in (INGRESSES, INGRESS_CLASSES, GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, GRPC_ROUTES, REFERENCE_GRANTS)},
}


class RoutingIndex:
    def __init__(self, settings: RoutingSettings, compilers: tuple[Compiler, ...] | None = None) -> None:
        self.settings = settings
        self.objects = RoutingObjects()
        fields = {
            INGRESSES.key: "ingresses", INGRESS_CLASSES.key: "ingress_classes", SERVICES.key: "services",
            SECRETS.key: "tls_secrets", NAMESPACES.key: "namespaces", GATEWAY_CLASSES.key: "gateway_classes",
            GATEWAYS.key: "gateways", HTTP_ROUTES.key: "http_routes", GRPC_ROUTES.key: "grpc_routes",
            REFERENCE_GRANTS.key: "reference_grants",
        }
        self._targets: dict[str, Objects] = {key: getattr(self.objects, attr) for key, attr in fields.items()}
        self.watched: tuple[str, ...] = tuple(fields)
        self._compilers = compilers  # None: Ingress and the Gateway API
        self._compiled: Compiled | None = None
        self._last: dict[int, Compiled] = {}  # each compiler's last good output (by position)
        self.version = 0  # counts the routing-relevant changes

    def apply(self, event: Event) -> bool:
        """Keep the object; True when routing may have changed."""
        target = self._targets.get(event.resource)
        if target is None:
            return False
        key = (event.namespace, event.name)
        if event.type == DELETED:
            changed = target.pop(key, None) is not None
        else:
            obj = event.obj
            if event.resource == SECRETS.key and obj.get("type") != TLS:
                changed = target.pop(key, None) is not None
            else:
                old = target.get(key)
                target[key] = obj
                shape = _SHAPES.get(event.resource)
                changed = old is None or shape is None or shape(old) != shape(obj)
        if changed:
            self._compiled = None
            self.version += 1
        return changed

    def listen(self, event: Event) -> None:
        """`apply` as a store listener (`store.subscribe(idx.listen)`: listeners return None)."""
        self.apply(event)

    def compiled(self) -> Compiled:
        """The current routing, compiled once per change."""
        if self._compiled is None:
            self._compiled = self._compile()
        return self._compiled

    def _compile(self) -> Compiled:
        compilers = self._compilers if self._compilers is not None else (compile_gateway_api, compile_ingresses)
        result = Compiled(config=RoutingConfig())
        for i, compiler in enumerate(compilers):
            try:
                part = self._last[i] = compiler(self.objects, self.settings)
            except Exception:  # a bug in one compiler must not take the other's routes (or the gateway) down
                log.exception("routing: %s failed; its previous output stays", getattr(compiler, "__name__", compiler))
                if i not in self._last:
                    continue
                part = self._last[i]
            result = merge(result, part)
        return result


# -- merging two compilers' output --------------------------------------------------------------------


def _join(first: HostRoutes | None, second: HostRoutes | None) -> HostRoutes | None:
    if first is None:
        return second
    if second is None:
        return first
    return HostRoutes(
        entries=first.entries + second.entries,
        uses_headers=first.uses_headers or second.uses_headers,
        uses_query=first.uses_query or second.uses_query,
    )


def merge_listeners(first: ListenerRoutes, second: ListenerRoutes) -> ListenerRoutes:
    """`first`'s routes before `second`'s for the same host (Gateway API before Ingress)."""
    exact = dict(first.exact)
    for host, routes in second.exact.items():
        exact[host] = _join(exact.get(host), routes) or routes
    wildcards: dict[tuple[str, bool], HostRoutes] = {}
    for suffix, single_label, routes in (*first.wildcards, *second.wildcards):
        key = (suffix, single_label)
        wildcards[key] = _join(wildcards.get(key), routes) or routes
    # most specific first: longer suffix; for one suffix, `first`'s (the Gateway API's) before `second`'s
    # (the contract's order: Gateway API routes before Ingress rules; a stable sort keeps it)
    ordered = sorted(wildcards.items(), key=lambda item: -len(item[0][0]))
    return ListenerRoutes(
        exact=exact,
        wildcards=tuple((suffix, single, routes) for (suffix, single), routes in ordered),
        any_host=_join(first.any_host, second.any_host),
        certificates=first.certificates + second.certificates,
    )


def merge(first: Compiled, second: Compiled) -> Compiled:
    """One configuration from two compilers' outputs (`first` wins the ties, as Gateway API routes
    come before Ingress rules for one host)."""
    if not first.config.listeners and not first.statuses and not first.problems:
        return second
    if not second.config.listeners and not second.statuses and not second.problems:
        return first
    listeners: dict[ListenerKey, ListenerRoutes] = dict(first.config.listeners)
    for key, routes in second.config.listeners.items():
        existing = listeners.get(key)
        listeners[key] = routes if existing is None else merge_listeners(existing, routes)
    statuses: dict[ObjectRef, dict[str, Any]] = {**first.statuses, **second.statuses}
    return Compiled(
        config=RoutingConfig(listeners=listeners, hostnames=first.config.hostnames | second.config.hostnames),
        statuses=statuses,
        problems=first.problems + second.problems,
    )
