"""The endpoints controller: Endpoints and EndpointSlices for selector services, slices mirrored from
the Endpoints users write for selectorless ones.

What a pod event costs. A per-namespace index (one label pair of each service's selector → services)
finds the services that may select the pod, and `_member_of` the services that held it before; only
those are touched. Each service keeps its members (pod → `PodInfo`) and which slice holds each member,
so a pod change rewrites the one slice that holds it (≤ 100 endpoints), never all of them.

Coalescing. A pod event only records the change; the writes happen once per store batch (`call_soon`
from the delivery, so every pod change delivered in one batch is in it): per service one Endpoints
write and one write per slice that changed. The acknowledgement semantics are kept: the writes are
attributed to the changes that caused them (`Store.delivering`/`Store.reacted`), so a request is acknowledged only once the
Endpoints and slices reflecting it are on disk and delivered, as if they had been written in reaction.

Rules (the Kubernetes endpoints and endpointslice controllers'): a pod counts when it has an IP, is not
finished and not terminating; ready pods go to `addresses`, others to `notReadyAddresses` (all to
`addresses` with `publishNotReadyAddresses`); `hostname` is set when the pod's hostname is set and its
subdomain is the service's name; a named targetPort resolves per pod by container-port name and
protocol, and a pod without such a port is left out for that port (and left out altogether when none
of the service's ports resolve). Endpoints hold at most 1,000 addresses (truncated as Kubernetes does,
annotated `endpoints.kubernetes.io/over-capacity: truncated`); slices hold at most 100 endpoints each,
are packed as the endpointslice controller packs them and carry its labels, `generateName: <svc>-`
and an ownerReference to the Service. Services without a selector keep the Endpoints users write; those
are mirrored into slices named `<name>-<index>` (what `kubectl describe` reads).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from emulator import errors
from emulator.kinds import ENDPOINT_SLICES, ENDPOINTS, PODS, SERVICES, ResourceType
from emulator.kinds.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from emulator.kinds.pod import pod_port_containers
from emulator.kinds.service import ServicePortView, ServiceView
from emulator.labels import Selector, selector_from_map
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.timestamps import now_rfc3339

log = logging.getLogger(__name__)

SLICE_MANAGER = "endpointslice-controller.k8s.io"
MIRROR_MANAGER = "endpointslicemirroring-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"

MAX_ENDPOINTS_PER_SLICE = 100  # kube-controller-manager's --max-endpoints-per-slice default
MAX_ENDPOINT_ADDRESSES = 1000  # the endpoints controller's maxCapacity

Key = tuple[str, str]  # (namespace, name)
Port = tuple[str, int, str, str]  # (name, port, protocol, appProtocol) of one resolved service port
PortKey = tuple[Port, ...]  # a pod's resolved ports: pods with the same ones share subsets and slices


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What an endpoint needs from a pod (kept only for pods that some service selects)."""

    name: str
    uid: str
    ip: str
    ready: bool
    hostname: str | None
    subdomain: str | None
    node: str | None
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, containerPort)

    @classmethod
    def of(cls, pod: dict[str, Any], name: str | None = None) -> PodInfo | None:
        """`name`: the event's copy of the pod's name, shared with the dicts keyed by it (memory per pod)."""
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if not ip or status.get("phase") in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
            return None
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        spec = pod.get("spec") or {}
        ports = _shared(tuple(
            (p.get("name", ""), p.get("protocol", "TCP"), p["containerPort"])
            for _, container in pod_port_containers(spec)
            for p in container.get("ports") or []
        ))
        node = spec.get("nodeName")
        return cls(name or pod["metadata"]["name"], pod["metadata"].get("uid", ""), ip, ready,
                   spec.get("hostname"), spec.get("subdomain"), _shared(node) if node else None, ports)

    def resolve(self, target: int | str, protocol: str) -> int | None:
        if isinstance(target, int):
            return target
        for name, proto, number in self.ports:
            if name == target and proto == protocol:
                return number
        return None


_SHARED: dict[Any, Any] = {}


def _shared(value: Any) -> Any:
    """One copy of values most pods repeat (their port lists, the node's name), not one per pod."""
    found = _SHARED.get(value)
    if found is None:
        if len(_SHARED) > 10_000:  # bounded, whatever pods say
            _SHARED.clear()
        found = _SHARED[value] = value
    return found


@dataclass(eq=False, slots=True)
class SliceState:
    """One EndpointSlice this controller keeps for a service: which members it holds."""

    ports: PortKey
    pods: dict[str, None] = field(default_factory=dict)  # member names, in the order they were added
    name: str | None = None  # None until created (the API generates it from `<service>-`)
    rv: int = 0  # the resourceVersion this controller last wrote (a later one is somebody else's)
    dirty: bool = True


@dataclass(slots=True)
class ServiceInfo:
    namespace: str
    name: str
    selector: Selector
    selector_map: dict[str, str]
    uid: str
    ports: tuple[ServicePortView, ...]
    publish_not_ready: bool
    headless: bool
    labels: dict[str, str]  # the service's, which its Endpoints and slices carry (as the controllers copy them)
    members: dict[str, PodInfo]
    slices: list[SliceState] = field(default_factory=list)
    placement: dict[str, SliceState] = field(default_factory=dict)  # member → the slice holding it
    changed: set[str] = field(default_factory=set)  # pods changed since the last reconcile
    all_changed: bool = True  # the service itself changed: every slice and the Endpoints are looked at
    endpoints_rv: int = 0  # the resourceVersion of the Endpoints this controller last wrote
    endpoints_digest: int | None = None  # what they said (without the trigger time): unchanged → no write
    trigger: str = ""  # the latest change time since the last write (last-change-trigger-time)

    def port_key(self, pod: PodInfo) -> PortKey | None:
        """The pod's resolved ports; None when the service has ports and none resolves (left out)."""
        resolved: list[Port] = []
        for port in self.ports:
            number = pod.resolve(port.target_port, port.protocol)
            if number is not None:
                resolved.append((port.name, number, port.protocol, port.app_protocol))
        if self.ports and not resolved:
            return None
        return tuple(resolved)

    def object_labels(self) -> dict[str, str]:
        return {**self.labels, **({HEADLESS_LABEL: ""} if self.headless else {})}


class SelectorIndex:
    """Per namespace: one label pair of each service's selector → those services. A pod can only be
    selected by services filed under one of its own label pairs, so a pod event looks at those (and
    checks their whole selector), never at every service of the namespace."""

    def __init__(self) -> None:
        self._by_pair: dict[tuple[str, str], set[str]] = {}
        self._pair_of: dict[str, tuple[str, str]] = {}

    def add(self, service: str, selector: dict[str, str]) -> None:
        self.remove(service)
        pair = min(selector.items())
        self._pair_of[service] = pair
        self._by_pair.setdefault(pair, set()).add(service)

    def remove(self, service: str) -> None:
        pair = self._pair_of.pop(service, None)
        if pair is not None:
            filed = self._by_pair[pair]
            filed.discard(service)
            if not filed:
                del self._by_pair[pair]

    def candidates(self, labels: dict[str, str]) -> set[str]:
        found: set[str] = set()
        by_pair = self._by_pair
        for pair in labels.items():
            filed = by_pair.get(pair)
            if filed:
                found |= filed
        return found


class EndpointsController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self._services: dict[str, dict[str, ServiceInfo]] = {}  # namespace -> service name -> info
        self._index: dict[str, SelectorIndex] = {}  # namespace -> its services by selector
        self._member_of: dict[str, dict[str, tuple[str, ...]]] = {}  # namespace -> pod -> the services holding it
        self._start_pods: dict[str, list[tuple[dict[str, str], PodInfo]]] | None = None  # during start() only
        self._pending: dict[Key, None] = {}  # services to reconcile at the end of the batch
        self._roots: set[int] = set()  # the changes those reconciles answer (their requests wait for them)
        self._scheduled = False
        self._starting = False
        self._writing = False  # a reconcile is writing (without an event loop its events arrive meanwhile)
        self.reconciles = 0  # how many service reconciles ran (tests and benchmarks read it)

    def apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            self._on_pod(event)
        elif event.resource == SERVICES.key:
            self._on_service(event)
        elif event.resource == ENDPOINTS.key:
            self._on_endpoints(event)
        elif event.resource == ENDPOINT_SLICES.key:
            self._on_slice(event)

    # -- pods ----------------------------------------------------------------------------------------

    def _on_pod(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        services = self._services.get(ns)
        if not services:
            return
        pod = event.obj
        labels = pod["metadata"].get("labels") or {}
        info = None if event.type == DELETED else PodInfo.of(pod, name)
        member_of = self._member_of.setdefault(ns, {})
        held = member_of.get(name, ())
        candidates = self._index[ns].candidates(labels) if info is not None else set()
        candidates.update(held)
        if not candidates:
            return
        trigger = _trigger_time(pod) if event.type != DELETED else now_rfc3339()
        holding = []
        for service_name in candidates:
            service = services.get(service_name)
            if service is None:
                continue
            before = service.members.get(name)
            if info is not None and service.selector.matches(labels):
                holding.append(service_name)
                if before == info:
                    continue
                service.members[name] = info
            elif before is not None:
                del service.members[name]
            else:
                continue
            service.changed.add(name)
            service.trigger = max(service.trigger, trigger)
            self._schedule(ns, service_name)
        if holding:
            member_of[name] = tuple(sorted(holding))
        else:
            member_of.pop(name, None)

    # -- services ------------------------------------------------------------------------------------

    def _on_service(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        services = self._services.setdefault(ns, {})
        index = self._index.setdefault(ns, SelectorIndex())
        if event.type == DELETED:
            # the Endpoints and slices go with their service, also those a user wrote for a selectorless one
            gone = services.pop(name, None)
            index.remove(name)
            if gone is not None:
                self._forget(gone)
                for slice_ in gone.slices:
                    if slice_.name is not None:
                        self._delete(ENDPOINT_SLICES, ns, slice_.name)
            if self.store.get_raw(ENDPOINTS.key, ns, name) is not None:
                self._delete(ENDPOINTS, ns, name)
            return
        svc = event.view(ServiceView.of)
        selector = svc.selector
        if not selector:
            # selectorless (or ExternalName): users own the Endpoints; stop managing them if we did,
            # and mirror what they hold now
            old = services.pop(name, None)
            index.remove(name)
            if old is not None:
                self._forget(old)
                for slice_ in old.slices:
                    if slice_.name is not None:
                        self._delete(ENDPOINT_SLICES, ns, slice_.name)
                current = self.store.get_raw(ENDPOINTS.key, ns, name)
                if current is not None:
                    self._mirror(ns, name, orjson.loads(current[1]))
            return
        old = services.get(name)
        if old is None:
            self._drop_mirrored(ns, name)  # a selectorless service got a selector: its slices are ours now
        same_pods = old is not None and old.selector_map == selector
        if old is not None and same_pods and (old.uid, old.ports, old.publish_not_ready, old.headless, old.labels) == (
            svc.uid, svc.ports, svc.publish_not_ready, svc.headless, svc.labels
        ):
            return  # nothing its endpoints depend on changed (a status update, an annotation)
        info = ServiceInfo(
            ns, name, selector_from_map(selector), selector, svc.uid, svc.ports, svc.publish_not_ready, svc.headless,
            svc.labels, old.members if old is not None and same_pods else self._members(ns, selector),
        )
        if old is not None:
            info.slices, info.placement = old.slices, old.placement
            info.endpoints_rv, info.endpoints_digest = old.endpoints_rv, old.endpoints_digest
            if not same_pods:
                for pod in old.members:
                    self._leave(ns, pod, name)
        if old is None or not same_pods:
            member_of = self._member_of.setdefault(ns, {})
            for pod in info.members:
                member_of[pod] = (*member_of.get(pod, ()), name)
        info.trigger = now_rfc3339()
        services[name] = info
        index.add(name, selector)
        self._schedule(ns, name)

    def _forget(self, service: ServiceInfo | None) -> None:
        if service is not None:
            for pod in service.members:
                self._leave(service.namespace, pod, service.name)
            self._pending.pop((service.namespace, service.name), None)

    def _leave(self, ns: str, pod: str, service: str) -> None:
        member_of = self._member_of.get(ns, {})
        held = tuple(s for s in member_of.get(pod, ()) if s != service)
        if held:
            member_of[pod] = held
        else:
            member_of.pop(pod, None)

    def _members(self, namespace: str, selector: dict[str, str]) -> dict[str, PodInfo]:
        """The pods a new selector selects. A service whose selector is part of it already holds every
        one of them: its members are checked (the same selector: taken as they are), not the namespace's
        pods (a service created beside another with the same selector decodes no pod at all)."""
        match = selector_from_map(selector)
        index = self._index.get(namespace)
        if self._start_pods is None and index is not None:
            services = self._services.get(namespace, {})
            narrowest: ServiceInfo | None = None
            for name in index.candidates(selector):
                other = services.get(name)
                if other is not None and other.selector_map.items() <= selector.items() and (
                    narrowest is None or len(other.members) < len(narrowest.members)
                ):
                    narrowest = other
            if narrowest is not None:
                if narrowest.selector_map == selector:
                    return dict(narrowest.members)
                members: dict[str, PodInfo] = {}
                for pod_name, info in narrowest.members.items():
                    pod = self.store.get(PODS.key, namespace, pod_name)
                    if pod is not None and match.matches(pod["metadata"].get("labels") or {}):
                        members[pod_name] = info
                return members
        return self._scan(namespace, match)

    def _scan(self, namespace: str, selector: Selector) -> dict[str, PodInfo]:
        if self._start_pods is not None:
            pods = self._start_pods.get(namespace)
            if pods is None:
                pods = self._start_pods[namespace] = [
                    (pod["metadata"].get("labels") or {}, info)
                    for pod in self.store.objects(PODS.key, namespace)
                    if (info := PodInfo.of(pod)) is not None
                ]
            return {info.name: info for labels, info in pods if selector.matches(labels)}
        members: dict[str, PodInfo] = {}
        for pod in self.store.objects(PODS.key, namespace):
            if selector.matches(pod["metadata"].get("labels") or {}):
                info = PodInfo.of(pod)
                if info is not None:
                    members[info.name] = info
        return members

    def start(self) -> None:
        """Take over the stored services: each pod of a namespace with selector services is decoded
        once, however many services select it (and not at all where no service selects). The slices
        stored for them are adopted (so a restart with nothing changed writes nothing); slices of
        services that are gone, or mirrored for Endpoints that are gone, are deleted."""
        self._start_pods = {}
        self._starting = True
        try:
            self.store.replay(self.apply, (SERVICES.key,))
            for ns, name, rv, raw in list(self.store.entries(ENDPOINT_SLICES.key)):
                obj = orjson.loads(raw)
                labels = obj["metadata"].get("labels") or {}
                manager, owner = labels.get(MANAGED_BY_LABEL), labels.get(SERVICE_NAME_LABEL, "")
                service = self._services.get(ns, {}).get(owner)
                if manager == SLICE_MANAGER and service is not None:
                    self._adopt(service, name, rv, obj)
                elif manager == SLICE_MANAGER or (
                    manager == MIRROR_MANAGER and (service is not None or self.store.get_raw(ENDPOINTS.key, ns, owner) is None)
                ):
                    self._delete(ENDPOINT_SLICES, ns, name)
            for ns, services in self._services.items():
                for name, service in services.items():
                    stored = self.store.get_raw(ENDPOINTS.key, ns, name)
                    if stored is not None:
                        service.endpoints_rv = stored[0]
                        service.endpoints_digest = _endpoints_digest(orjson.loads(stored[1]))
        finally:
            self._start_pods = None
            self._starting = False
        self._flush()
        self.store.replay(self.apply, (ENDPOINTS.key,))

    def _adopt(self, service: ServiceInfo, name: str, rv: int, obj: dict[str, Any]) -> None:
        """A stored slice becomes one of the service's: it keeps the members it lists that are still
        members and not already held by another slice (the reconcile fixes the rest)."""
        ports = tuple(
            (p.get("name") or "", p.get("port") or 0, p.get("protocol") or "TCP", p.get("appProtocol") or "")
            for p in obj.get("ports") or []
        )
        slice_ = SliceState(ports, name=name, rv=rv, dirty=False)
        for endpoint in obj.get("endpoints") or []:
            pod = (endpoint.get("targetRef") or {}).get("name")
            if pod in service.members and pod not in service.placement and len(slice_.pods) < MAX_ENDPOINTS_PER_SLICE:
                slice_.pods[pod] = None
                service.placement[pod] = slice_
            else:
                slice_.dirty = True
        service.slices.append(slice_)

    # -- Endpoints and slices written by others ------------------------------------------------------

    def _on_endpoints(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        service = self._services.get(ns, {}).get(name)
        if service is None:
            self._mirror(ns, name, None if event.type == DELETED else event.obj)
        elif event.rv > service.endpoints_rv and not self._writing:
            # somebody else wrote (or deleted) the Endpoints of a selector service: written again
            service.endpoints_digest = None
            self._schedule(ns, name)

    def _on_slice(self, event: Event) -> None:
        if self._writing:
            return  # our own write (without an event loop, delivered while we write)
        ns = event.namespace
        labels = event.obj["metadata"].get("labels") or {}
        service = self._services.get(ns, {}).get(labels.get(SERVICE_NAME_LABEL, ""))
        if service is None:
            return
        for slice_ in service.slices:
            if slice_.name == event.name:
                if event.rv > slice_.rv:  # not our write: ours again (re-created when deleted)
                    slice_.dirty = True
                    if event.type == DELETED:
                        slice_.name, slice_.rv = None, 0
                    self._schedule(ns, service.name)
                return

    # -- coalescing ----------------------------------------------------------------------------------

    def _schedule(self, namespace: str, name: str) -> None:
        """Reconcile the service once the current store batch is delivered; the change being delivered
        (whose request waits) is remembered, so that its acknowledgement waits for these writes."""
        self._pending[(namespace, name)] = None
        root = self.store.delivering()
        if root is not None:
            self._roots.add(root)
        if self._scheduled or self._starting:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (tools, direct use): write at once, in reaction
            self._flush()
            return
        self._scheduled = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        roots, self._roots = self._roots, set()
        first = self.store.rv
        self._writing = True
        try:
            for ns, name in pending:
                service = self._services.get(ns, {}).get(name)
                if service is not None:
                    try:
                        self._reconcile(service)
                    except Exception:  # one service's failure must not keep the others' writes back
                        log.exception("could not write the endpoints of %s/%s", ns, name)
        finally:
            self._writing = False
        if roots and self.store.rv > first:
            self.store.reacted(roots, self.store.rv)

    # -- writing slices and Endpoints ----------------------------------------------------------------

    def _reconcile(self, service: ServiceInfo) -> None:
        self.reconciles += 1
        changed = set(service.members) | set(service.placement) if service.all_changed else service.changed
        if service.all_changed:
            for slice_ in service.slices:
                slice_.dirty = True
        wanted = {pod: service.port_key(info) for pod in changed if (info := service.members.get(pod)) is not None}
        deletions = reconcile_slices(service.slices, service.placement, changed, wanted, MAX_ENDPOINTS_PER_SLICE)
        service.changed = set()
        for slice_ in service.slices:
            if slice_.dirty:
                self._write_slice(service, slice_)
        for slice_ in deletions:
            if slice_.name is not None:
                self._delete(ENDPOINT_SLICES, service.namespace, slice_.name)
        if changed or service.all_changed or service.endpoints_digest is None:
            self._write_endpoints(service)
        service.all_changed = False

    def _write_slice(self, service: ServiceInfo, slice_: SliceState) -> None:
        labels = {**service.object_labels(), SERVICE_NAME_LABEL: service.name, MANAGED_BY_LABEL: SLICE_MANAGER}
        metadata: dict[str, Any] = {
            "generateName": f"{service.name}-", "namespace": service.namespace, "labels": labels,
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Service", "name": service.name, "uid": service.uid,
                "controller": True, "blockOwnerDeletion": True,
            }],
        }
        body: dict[str, Any] = {
            "metadata": metadata,
            "addressType": "IPv4",
            "endpoints": [slice_endpoint(service, service.members[pod]) for pod in slice_.pods],
        }
        if slice_.ports:
            body["ports"] = [_port_object(port) for port in slice_.ports]
        try:
            if slice_.name is None:
                stored: dict[str, Any] | None = self.registry.create(ENDPOINT_SLICES, service.namespace, body).obj
            else:
                metadata["name"] = slice_.name
                stored = self.registry.ensure(ENDPOINT_SLICES, body)
        except errors.StatusError as exc:
            log.debug("could not write a slice of %s/%s: %s", service.namespace, service.name, exc)
            return
        slice_.dirty = False
        if stored is not None:
            slice_.name = stored["metadata"]["name"]
            slice_.rv = int(stored["metadata"]["resourceVersion"])

    def _write_endpoints(self, service: ServiceInfo) -> None:
        body = endpoints_object(service)
        digest = _endpoints_digest(body)
        if digest == service.endpoints_digest:
            return
        body["metadata"].setdefault("annotations", {})[TRIGGER_TIME_ANNOTATION] = service.trigger or now_rfc3339()
        try:
            stored = self.registry.ensure(ENDPOINTS, body)
        except errors.StatusError as exc:
            log.debug("could not write endpoints %s/%s: %s", service.namespace, service.name, exc)
            return
        service.endpoints_digest = digest
        service.trigger = ""
        if stored is not None:
            service.endpoints_rv = int(stored["metadata"]["resourceVersion"])

    def _write(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Through the registry, validated like any writer; a refusal (a namespace being deleted takes
        no new objects) is logged, never raised into the store's event delivery."""
        try:
            self.registry.ensure(rt, obj)
        except errors.StatusError as exc:
            log.debug("could not write %s %s/%s: %s", rt.key, obj["metadata"]["namespace"], obj["metadata"]["name"], exc)

    def _delete(self, rt: ResourceType, namespace: str, name: str) -> None:
        try:
            self.registry.delete(rt, namespace, name)
        except errors.StatusError as exc:
            if exc.code != 404:
                log.debug("could not delete %s %s/%s: %s", rt.key, namespace, name, exc)

    # -- mirroring user-written Endpoints into EndpointSlices ----------------------------------------

    def _mirror(self, ns: str, name: str, endpoints: dict[str, Any] | None) -> None:
        wanted = [] if endpoints is None else endpoint_slices(endpoints, MIRROR_MANAGER)
        for slice_ in wanted:
            if self._ours(ns, slice_["metadata"]["name"], name) is not False:
                self._write(ENDPOINT_SLICES, slice_)
        # mirrored slices are named name-0, name-1...: drop ours past the current count
        index = len(wanted)
        while (ours := self._ours(ns, slice_name(name, index), name)) is not None:
            if ours:
                self._delete(ENDPOINT_SLICES, ns, slice_name(name, index))
            index += 1

    def _drop_mirrored(self, ns: str, name: str) -> None:
        index = 0
        while (ours := self._ours(ns, slice_name(name, index), name)) is not None:
            if ours:
                self._delete(ENDPOINT_SLICES, ns, slice_name(name, index))
            index += 1

    def _ours(self, namespace: str, slice_: str, service: str) -> bool | None:
        """Whether a slice of that name is one this controller mirrored for `service` (None: no such
        slice). A slice a user wrote under the same name is left alone."""
        found = self.store.get(ENDPOINT_SLICES.key, namespace, slice_)
        if found is None:
            return None
        labels = found["metadata"].get("labels") or {}
        return labels.get(SERVICE_NAME_LABEL) == service and labels.get(MANAGED_BY_LABEL) == MIRROR_MANAGER


# -- pure parts ----------------------------------------------------------------------------------------


def _trigger_time(pod: dict[str, Any]) -> str:
    """When the pod last changed in a way endpoints care about: its Ready transition, else its creation."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("lastTransitionTime"):
            return str(condition["lastTransitionTime"])
    return str(pod["metadata"].get("creationTimestamp") or now_rfc3339())


def reconcile_slices(
    slices: list[SliceState], placement: dict[str, SliceState], changed: set[str],
    wanted: dict[str, PortKey | None], limit: int,
) -> list[SliceState]:
    """Place the `changed` pods (the endpointslice controller's packing), in place; returns the slices
    to delete. `wanted` maps each changed pod that is still a member to its ports (None: in no slice).

    1. A pod whose slice has its ports stays there (that slice is rewritten); others leave their slice.
    2. New endpoints go first into slices that are rewritten anyway, fullest first, up to `limit`.
    3. The rest fill the fullest unchanged slice that has room for all of them, else new slices.
    Slices left empty are deleted, except one placeholder when the service has no endpoints at all."""
    adds: dict[PortKey, list[str]] = {}
    for pod in sorted(changed):
        ports = wanted.get(pod)
        current = placement.get(pod)
        if current is not None:
            current.dirty = True
            if ports is not None and current.ports == ports:
                continue
            del current.pods[pod]
            del placement[pod]
        if ports is not None:
            adds.setdefault(ports, []).append(pod)
    for ports, pods in adds.items():
        # an empty slice (a placeholder, or one just emptied) is taken for any ports before a new one is made
        for slice_ in slices:
            if not slice_.pods and slice_.ports != ports and not any(s.ports == ports for s in slices if s.pods):
                slice_.ports, slice_.dirty = ports, True
                break
        same = [s for s in slices if s.ports == ports]
        for slice_ in sorted((s for s in same if s.dirty), key=lambda s: -len(s.pods)):
            pods = _fill(slice_, pods, placement, limit)
        while pods:
            target = None
            if len(pods) < limit:
                roomy = [s for s in same if not s.dirty and len(s.pods) + len(pods) <= limit]
                target = max(roomy, key=lambda s: len(s.pods), default=None)
            if target is None:
                target = SliceState(ports)
                slices.append(target)
                same.append(target)
            target.dirty = True
            pods = _fill(target, pods, placement, limit)
    empty = [s for s in slices if not s.pods]
    keep_placeholder = len(empty) == len(slices)
    deletions = []
    for slice_ in empty:
        if keep_placeholder and slice_ is empty[0]:
            if slice_.ports:
                slice_.ports, slice_.dirty = (), True
            continue
        deletions.append(slice_)
        slices.remove(slice_)
    if not slices:
        slices.append(SliceState(()))  # a service without endpoints still has one (empty) slice
    return deletions


def _fill(slice_: SliceState, pods: list[str], placement: dict[str, SliceState], limit: int) -> list[str]:
    room = max(limit - len(slice_.pods), 0)
    for pod in pods[:room]:
        slice_.pods[pod] = None
        placement[pod] = slice_
    if room and pods:
        slice_.dirty = True
    return pods[room:]


def slice_endpoint(service: ServiceInfo, pod: PodInfo) -> dict[str, Any]:
    """One endpoint of a slice: ready means ready to receive traffic (or published while not ready)."""
    entry: dict[str, Any] = {
        "addresses": [pod.ip],
        "conditions": {"ready": pod.ready or service.publish_not_ready, "serving": pod.ready, "terminating": False},
    }
    if pod.hostname and pod.subdomain and pod.subdomain == service.name:
        entry["hostname"] = pod.hostname
    if pod.node:
        entry["nodeName"] = pod.node
    entry["targetRef"] = {"kind": "Pod", "namespace": service.namespace, "name": pod.name, "uid": pod.uid}
    return entry


def _port_object(port: Port) -> dict[str, Any]:
    name, number, protocol, app = port
    return {"name": name, "port": number, "protocol": protocol, **({"appProtocol": app} if app else {})}


def endpoints_object(service: ServiceInfo) -> dict[str, Any]:
    """The Endpoints of a selector service, truncated to 1,000 addresses (and then annotated)."""
    metadata: dict[str, Any] = {"name": service.name, "namespace": service.namespace}
    labels = service.object_labels()
    if labels:
        metadata["labels"] = labels
    endpoints: dict[str, Any] = {"metadata": metadata}
    subsets = endpoints_subsets(service)
    if truncate_subsets(subsets, MAX_ENDPOINT_ADDRESSES):
        metadata["annotations"] = {OVER_CAPACITY_ANNOTATION: "truncated"}
    if subsets:
        endpoints["subsets"] = subsets
    return endpoints


def _endpoints_digest(endpoints: dict[str, Any]) -> int:
    """What an Endpoints object says, whoever wrote it: labels, the capacity annotation, subsets."""
    meta = endpoints.get("metadata") or {}
    said = {
        "labels": meta.get("labels") or {},
        "over": (meta.get("annotations") or {}).get(OVER_CAPACITY_ANNOTATION),
        "subsets": endpoints.get("subsets") or [],
    }
    return hash(orjson.dumps(said, option=orjson.OPT_SORT_KEYS))


def endpoints_subsets(service: ServiceInfo) -> list[dict[str, Any]]:
    """The `subsets` of a selector service's Endpoints: pods grouped by their resolved port list."""
    groups: dict[PortKey, dict[str, list[dict[str, Any]]]] = {}
    for pod in sorted(service.members.values(), key=lambda p: p.ip):
        resolved = service.port_key(pod)
        if resolved is None:
            continue
        address: dict[str, Any] = {"ip": pod.ip}
        if pod.hostname and pod.subdomain and pod.subdomain == service.name:
            address["hostname"] = pod.hostname
        if pod.node:
            address["nodeName"] = pod.node
        address["targetRef"] = {"kind": "Pod", "namespace": service.namespace, "name": pod.name, "uid": pod.uid}
        bucket = groups.setdefault(resolved, {"addresses": [], "notReadyAddresses": []})
        ready = pod.ready or service.publish_not_ready
        bucket["addresses" if ready else "notReadyAddresses"].append(address)
    subsets = []
    for ports, bucket in groups.items():
        subset: dict[str, Any] = {k: v for k, v in bucket.items() if v}
        if ports:
            subset["ports"] = [
                {**({"name": n} if n else {}), "port": number, "protocol": proto, **({"appProtocol": app} if app else {})}
                for n, number, proto, app in ports
            ]
        subsets.append(subset)
    return subsets


def truncate_subsets(subsets: list[dict[str, Any]], capacity: int) -> bool:
    """Kubernetes' truncateEndpoints: past `capacity` addresses, each subset keeps its proportional share
    (rounded up, the last one gets what is left) — of the ready addresses when those alone exceed it
    (then no not-ready ones are kept), else all ready ones and a share of the not-ready. True if cut."""
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if ready + not_ready <= capacity:
        return False
    cut_ready = ready > capacity
    limit, total = (capacity, ready) if cut_ready else (capacity - ready, not_ready)
    room = limit
    for subset in subsets:
        group = "addresses" if cut_ready else "notReadyAddresses"
        count = len(subset.get(group) or [])
        share = min(math.ceil(count / total * limit) if total else 0, room)
        kept = (subset.get(group) or [])[:share]
        if kept:
            subset[group] = kept
        else:
            subset.pop(group, None)
        if cut_ready:
            subset.pop("notReadyAddresses", None)
        room -= len(kept)
    subsets[:] = [s for s in subsets if s.get("addresses") or s.get("notReadyAddresses")]
    return True


def endpoint_slices(endpoints: dict[str, Any], manager: str) -> list[dict[str, Any]]:
    """Mirrored slices: one per Endpoints subset (at least one, empty, so `describe` sees the service)."""
    meta = endpoints["metadata"]
    ns, name = meta.get("namespace", ""), meta["name"]
    subsets = endpoints.get("subsets") or [{}]
    slices = []
    for index, subset in enumerate(subsets):
        entries = []
        for group, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(group) or []:
                entry: dict[str, Any] = {
                    "addresses": [address["ip"]],
                    "conditions": {"ready": ready, "serving": ready, "terminating": False},
                }
                for field_name in ("hostname", "nodeName", "targetRef"):
                    if address.get(field_name):
                        entry[field_name] = address[field_name]
                entries.append(entry)
        slice_ = {
            "metadata": {
                "name": slice_name(name, index),
                "namespace": ns,
                "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: manager},
            },
            "addressType": "IPv4",
            "endpoints": entries,
        }
        if subset.get("ports"):
            # discovery/v1 defaults a port's name to "": `kubectl describe svc` dereferences it
            slice_["ports"] = [{"name": "", **port} for port in subset["ports"]]
        slices.append(slice_)
    return slices


def slice_name(endpoints_name: str, index: int) -> str:
    # always an integer suffix: then `api`'s second slice (api-1) can never be `api-1`'s first (api-1-0)
    return f"{endpoints_name}-{index}"
