"""The Gateway API status controller: what the emulator, as the implementation of its GatewayClasses,
writes back (emulator/routing/gatewayapi.py decides what; this writes it).

- GatewayClasses of our controllerName: Accepted, SupportedVersion, supportedFeatures.
- Gateways of those classes: addresses (the gateway's), Accepted and Programmed, and per listener
  supportedKinds, attachedRoutes and its conditions.
- HTTPRoutes and GRPCRoutes: our entries of `status.parents` (one per parentRef naming a Gateway of
  ours); entries other controllers wrote are kept, ours for parents no longer referenced are removed.

A status is written only when it differs from the stored one, and a condition whose status did not
change keeps its lastTransitionTime (as meta.SetStatusCondition does), so a quiet cluster sees no writes.
Its own `RoutingIndex` (store events) compiles the Gateway API objects. As the Ingress status controller
does, a routing change marks one key, EVERY, BATCH_DELAY seconds later, whose sync marks the objects whose
desired status changed since their last sync (a burst of changes, `kubectl apply` of 600 routes, costs
one compilation per batch, not one per object per change); a status write of our own marks that object.
"""

from __future__ import annotations

import logging
from typing import Any

from emulator import errors
from emulator.controllers.ingressstatus import BATCH_DELAY
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import GATEWAY_CLASSES, GATEWAYS, GRPC_ROUTES, HTTP_ROUTES, ResourceType
from emulator.registry.registry import Registry
from emulator.routing.gatewayapi import compile_gateway_api, with_unbound_ports
from emulator.routing.index import RoutingIndex
from emulator.routing.model import ListenerKey, ObjectRef
from emulator.routing.sources import RoutingSettings
from emulator.store.events import DELETED, Event
from emulator.timestamps import now_rfc3339

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (store key, namespace, name)
STATUS_KINDS: dict[str, ResourceType] = {rt.key: rt for rt in (GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, GRPC_ROUTES)}
_FIELDS = {GATEWAY_CLASSES.key: "gateway_classes", GATEWAYS.key: "gateways", HTTP_ROUTES.key: "http_routes", GRPC_ROUTES.key: "grpc_routes"}
EVERY: Key = ("*", "*", "*")  # "routing changed: find the objects whose desired status did" (no object has it)


def merge_conditions(old: list[dict[str, Any]] | None, new: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """`new` conditions with lastTransitionTime: the old one's when the condition's status is unchanged."""
    before = {c.get("type"): c for c in old or []}
    out: list[dict[str, Any]] = []
    for cond in new:
        previous = before.get(cond["type"]) or {}
        since = previous.get("lastTransitionTime") if previous.get("status") == cond["status"] else None
        out.append({**cond, "lastTransitionTime": since or now})
    return out


def gateway_status(old: dict[str, Any], desired: dict[str, Any], now: str) -> dict[str, Any]:
    listeners_before = {item.get("name"): item for item in old.get("listeners") or []}
    return {
        **old,
        **desired,
        "conditions": merge_conditions(old.get("conditions"), desired["conditions"], now),
        "listeners": [
            {**item, "conditions": merge_conditions((listeners_before.get(item["name"]) or {}).get("conditions"), item["conditions"], now)}
            for item in desired["listeners"]
        ],
    }


def route_status(old: dict[str, Any], desired: dict[str, Any] | None, controller: str, now: str) -> dict[str, Any]:
    """The route's parents: other controllers' entries as they are, then ours."""
    parents = old.get("parents") or []
    theirs = [p for p in parents if p.get("controllerName") != controller]
    ours_before = [p for p in parents if p.get("controllerName") == controller]
    ours: list[dict[str, Any]] = []
    for entry in (desired or {}).get("parents") or []:
        previous: dict[str, Any] = next((p for p in ours_before if p.get("parentRef") == entry["parentRef"]), {})
        ours.append({**entry, "conditions": merge_conditions(previous.get("conditions"), entry["conditions"], now)})
    return {**old, "parents": theirs + ours}


class GatewayApiStatusController:
    def __init__(self, registry: Registry, settings: RoutingSettings) -> None:
        self.registry = registry
        self.settings = settings
        self.index = RoutingIndex(settings, compilers=(compile_gateway_api,))
        self.watched = self.index.watched
        self.queue: WorkQueue[Key] = WorkQueue("gateway-api-status", self.sync)
        self._shapes: dict[Key, Any] = {}  # what of our kinds' objects routing reads (not their status)
        self._settled: dict[Key, dict[str, Any] | None] = {}  # the desired status each last sync saw
        self._unbound: dict[ListenerKey, str] = {}  # listener ports the gateway could not bind (the proxy says)

    def set_unbound(self, unbound: dict[ListenerKey, str]) -> None:
        """The proxy could not bind these Gateway listener ports ((port, protocol) -> why), or bound them
        since: their listeners are PortUnavailable until it can."""
        self._unbound = unbound
        self.queue.add(EVERY)

    def _desired(self, compiled: Any, key: Key) -> dict[str, Any] | None:
        desired = compiled.statuses.get(ObjectRef(*key))
        if desired is not None and key[0] == GATEWAYS.key and self._unbound:
            gw = self.index.objects.gateways.get((key[1], key[2]))
            if gw is not None:
                desired = with_unbound_ports(gw, desired, self._unbound)
        return desired

    def apply(self, event: Event) -> None:
        key = (event.resource, event.namespace, event.name)
        ours = event.resource in STATUS_KINDS
        if ours and event.type != DELETED:
            shape = _shape(event.obj)
            if self._shapes.get(key) == shape:
                self.queue.add(key)
                return  # a status write (ours, say): nothing routing reads changed
            self._shapes[key] = shape
        elif ours:
            self.queue.forget(key)
            self._shapes.pop(key, None)
            self._settled.pop(key, None)
        if self.index.apply(event):
            self.queue.add_after(EVERY, BATCH_DELAY)
        elif ours and event.type != DELETED:
            self.queue.add(key)

    def sync(self, key: Key) -> float | None:
        compiled = self.index.compiled()
        if key == EVERY:
            for resource, attribute in _FIELDS.items():
                for namespace, name in getattr(self.index.objects, attribute):
                    item = (resource, namespace, name)
                    if item not in self._settled or self._settled[item] != self._desired(compiled, item):
                        self.queue.add(item)
            return None
        resource, namespace, name = key
        rt = STATUS_KINDS[resource]
        obj = self.registry.store.get(resource, namespace, name)
        if obj is None:
            return None
        desired = self._desired(compiled, key)
        self._settled[key] = desired
        old = obj.get("status") or {}
        now = now_rfc3339()
        if rt in (HTTP_ROUTES, GRPC_ROUTES):
            if desired is None and not any(p.get("controllerName") == self.settings.controller for p in old.get("parents") or []):
                return None
            new = route_status(old, desired, self.settings.controller, now)
        elif desired is None:
            return None  # a class or Gateway of another implementation
        elif rt is GATEWAYS:
            new = gateway_status(old, desired, now)
        else:
            new = {**old, **desired, "conditions": merge_conditions(old.get("conditions"), desired["conditions"], now)}
        if new == old:
            return None
        try:
            self.registry.replace_object(rt, obj, {**obj, "status": new}, subresource="status")
        except errors.StatusError as exc:
            if exc.code == 404:
                return None
            raise  # a conflict: retried with backoff, reading the object again
        return None


def _shape(obj: dict[str, Any]) -> Any:
    meta = obj.get("metadata") or {}
    return meta.get("generation"), meta.get("creationTimestamp"), obj.get("spec")
