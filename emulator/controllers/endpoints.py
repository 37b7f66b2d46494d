"""The endpoints controller: turns pod and service events into Endpoints, and Endpoints into EndpointSlices.

Membership is kept per service (which pods its selector picks), so a pod event touches only the
services of its namespace whose selector matches it before or after the change, and a service is
re-derived from its members, never from a scan of every pod. Only a new or re-selected service
scans the pods of its namespace once.

Rules (the Kubernetes endpoints controller's): a pod counts when it has an IP and is not finished;
ready pods go to `addresses`, others to `notReadyAddresses` (all to `addresses` with
`publishNotReadyAddresses`); `hostname` is set when the pod's hostname is set and its subdomain is
the service's name; a named targetPort resolves per pod by container-port name and protocol, and a
pod without such a port is left out for that port. Services without a selector keep the Endpoints
users write; every Endpoints object is mirrored into EndpointSlices (what `kubectl describe` reads).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from emulator import errors
from emulator.kinds import ENDPOINT_SLICES, ENDPOINTS, PODS, SERVICES, ResourceType
from emulator.kinds.pod import pod_port_containers
from emulator.kinds.service import ServicePortView, ServiceView
from emulator.labels import Selector, selector_from_map
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "endpointslice-controller.k8s.io"
MIRROR_MANAGER = "endpointslicemirroring-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"

Key = tuple[str, str]  # (namespace, name)


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
    def of(cls, pod: dict[str, Any]) -> PodInfo | None:
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if not ip or status.get("phase") in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
            return None
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        spec = pod.get("spec") or {}
        ports = tuple(
            (p.get("name", ""), p.get("protocol", "TCP"), p["containerPort"])
            for _, container in pod_port_containers(spec)
            for p in container.get("ports") or []
        )
        return cls(pod["metadata"]["name"], pod["metadata"].get("uid", ""), ip, ready,
                   spec.get("hostname"), spec.get("subdomain"), spec.get("nodeName"), ports)

    def resolve(self, target: int | str, protocol: str) -> int | None:
        if isinstance(target, int):
            return target
        for name, proto, number in self.ports:
            if name == target and proto == protocol:
                return number
        return None


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
    labels: dict[str, str]  # the service's, which its Endpoints carry (as the endpoints controller copies them)
    members: dict[str, PodInfo]


class EndpointsController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self._services: dict[str, dict[str, ServiceInfo]] = {}  # namespace -> service name -> info
        self._start_pods: dict[str, list[tuple[dict[str, str], PodInfo]]] | None = None  # during start() only

    def apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            self._on_pod(event)
        elif event.resource == SERVICES.key:
            self._on_service(event)
        elif event.resource == ENDPOINTS.key:
            self._mirror(event)

    # -- pods ----------------------------------------------------------------------------------------

    def _on_pod(self, event: Event) -> None:
        services = self._services.get(event.namespace)
        if not services:
            return
        pod = event.obj
        labels = pod["metadata"].get("labels") or {}
        info = None if event.type == DELETED else PodInfo.of(pod)
        for name, service in services.items():
            selected = info is not None and service.selector.matches(labels)
            before = service.members.get(event.name)
            if selected:
                if before != info:
                    service.members[event.name] = info  # type: ignore[assignment]
                    self._sync(event.namespace, name, service)
            elif before is not None:
                del service.members[event.name]
                self._sync(event.namespace, name, service)

    # -- services ------------------------------------------------------------------------------------

    def _on_service(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        services = self._services.setdefault(ns, {})
        if event.type == DELETED:
            # the Endpoints go with their service, also those a user wrote for a selectorless one
            services.pop(name, None)
            if self.store.get_raw(ENDPOINTS.key, ns, name) is not None:
                self._delete(ENDPOINTS, ns, name)
            return
        svc = event.view(ServiceView.of)
        selector = svc.selector
        if not selector:
            # selectorless (or ExternalName): users own the Endpoints; stop managing them if we did
            services.pop(name, None)
            return
        old = services.get(name)
        info = ServiceInfo(
            ns, name, selector_from_map(selector), selector, svc.uid, svc.ports, svc.publish_not_ready, svc.headless,
            svc.labels,
            old.members if old is not None and old.selector_map == selector else self._scan(ns, selector_from_map(selector)),
        )
        services[name] = info
        self._sync(ns, name, info)

    def start(self) -> None:
        """Take over the stored services: each pod of a namespace with selector services is decoded
        once, however many services select it (and not at all where no service selects)."""
        self._start_pods = {}
        try:
            self.store.replay(self.apply, (SERVICES.key,))
        finally:
            self._start_pods = None
        # slices an earlier version wrote under other names, or for Endpoints that are gone, go;
        # the others are written again from their Endpoints (a no-op when they agree)
        for ns, name, _, raw in list(self.store.entries(ENDPOINT_SLICES.key)):
            labels = orjson.loads(raw)["metadata"].get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) not in (SLICE_MANAGER, MIRROR_MANAGER):
                continue
            service = labels.get(SERVICE_NAME_LABEL, "")
            ours = name.startswith(f"{service}-") and name[len(service) + 1:].isdigit()
            if not ours or self.store.get_raw(ENDPOINTS.key, ns, service) is None:
                self._delete(ENDPOINT_SLICES, ns, name)
        self.store.replay(self.apply, (ENDPOINTS.key,))

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

    # -- writing Endpoints ---------------------------------------------------------------------------

    def _sync(self, namespace: str, name: str, service: ServiceInfo) -> None:
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        labels = {**service.labels, **({HEADLESS_LABEL: ""} if service.headless else {})}
        if labels:
            metadata["labels"] = labels
        endpoints: dict[str, Any] = {"metadata": metadata}
        subsets = endpoints_subsets(service)
        if subsets:
            endpoints["subsets"] = subsets
        self._write(ENDPOINTS, endpoints)

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

    # -- mirroring Endpoints into EndpointSlices -----------------------------------------------------

    def _mirror(self, event: Event) -> None:
        ns, name = event.namespace, event.name
        wanted: list[dict[str, Any]] = []
        if event.type != DELETED:
            managed = name in self._services.get(ns, {})
            wanted = endpoint_slices(event.obj, SLICE_MANAGER if managed else MIRROR_MANAGER)
        for slice_ in wanted:
            if self._ours(ns, slice_["metadata"]["name"], name) is not False:
                self._write(ENDPOINT_SLICES, slice_)
        # slices are named name-0, name-1...: drop ours past the current count
        index = len(wanted)
        while (ours := self._ours(ns, slice_name(name, index), name)) is not None:
            if ours:
                self._delete(ENDPOINT_SLICES, ns, slice_name(name, index))
            index += 1

    def _ours(self, namespace: str, slice_: str, service: str) -> bool | None:
        """Whether a slice of that name is one this controller wrote for `service` (None: no such slice).
        A slice a user wrote under the same name is left alone."""
        found = self.store.get(ENDPOINT_SLICES.key, namespace, slice_)
        if found is None:
            return None
        labels = found["metadata"].get("labels") or {}
        return labels.get(SERVICE_NAME_LABEL) == service and labels.get(MANAGED_BY_LABEL) in (SLICE_MANAGER, MIRROR_MANAGER)


def endpoints_subsets(service: ServiceInfo) -> list[dict[str, Any]]:
    """The `subsets` of a selector service's Endpoints: pods grouped by their resolved port list."""
    groups: dict[tuple[tuple[str, int, str, str], ...], dict[str, list[dict[str, Any]]]] = {}
    for pod in sorted(service.members.values(), key=lambda p: p.ip):
        resolved: list[tuple[str, int, str, str]] = []
        for port in service.ports:
            number = pod.resolve(port.target_port, port.protocol)
            if number is not None:
                resolved.append((port.name, number, port.protocol, port.app_protocol))
        if service.ports and not resolved:
            continue
        address: dict[str, Any] = {"ip": pod.ip}
        if pod.hostname and pod.subdomain and pod.subdomain == service.name:
            address["hostname"] = pod.hostname
        if pod.node:
            address["nodeName"] = pod.node
        address["targetRef"] = {"kind": "Pod", "namespace": service.namespace, "name": pod.name, "uid": pod.uid}
        bucket = groups.setdefault(tuple(resolved), {"addresses": [], "notReadyAddresses": []})
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


def endpoint_slices(endpoints: dict[str, Any], manager: str) -> list[dict[str, Any]]:
    """One EndpointSlice per Endpoints subset (at least one, empty, so `describe` sees the service)."""
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
                for field in ("hostname", "nodeName", "targetRef"):
                    if address.get(field):
                        entry[field] = address[field]
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
