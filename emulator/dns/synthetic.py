"""Store events for made-up Services, Endpoints and Namespaces: feeds a `DnsIndex` in tests and benchmarks
without an API server, in the same wire form the store delivers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import orjson

from emulator.store.events import ADDED, Event

_rv = itertools.count(1)


def event(resource: str, obj: dict[str, Any], type: str = ADDED) -> Event:
    meta = obj["metadata"]
    return Event(type, resource, meta.get("namespace", ""), meta["name"], next(_rv), orjson.dumps(obj))


def namespace(name: str, type: str = ADDED) -> Event:
    return event("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, type)


def service(
    name: str,
    namespace: str = "default",
    cluster_ip: str | None = None,
    ports: list[dict[str, Any]] | None = None,
    external_name: str | None = None,
    type: str = ADDED,
) -> Event:
    """A ClusterIP service; `cluster_ip="None"` makes it headless, `external_name` an ExternalName."""
    spec: dict[str, Any] = {"ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if external_name is not None:
        spec.update(type="ExternalName", externalName=external_name)
    else:
        spec.update(type="ClusterIP", clusterIP=cluster_ip or "None")
        if cluster_ip and cluster_ip != "None":
            spec["clusterIPs"] = [cluster_ip]
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    return event("services", obj, type)


def endpoints(
    name: str,
    namespace: str = "default",
    ready: Sequence[str | tuple[str, str]] = (),
    not_ready: Sequence[str] = (),
    ports: list[dict[str, Any]] | None = None,
    type: str = ADDED,
) -> Event:
    """Endpoints with one subset; a ready address is an IP or (IP, hostname)."""
    addresses = []
    for entry in ready:
        ip, hostname = (entry, "") if isinstance(entry, str) else entry
        address: dict[str, Any] = {"ip": ip, "targetRef": {"kind": "Pod", "namespace": namespace, "name": f"pod-{ip}"}}
        if hostname:
            address["hostname"] = hostname
        addresses.append(address)
    subset: dict[str, Any] = {
        "addresses": addresses,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace}}
    if addresses or not_ready:
        obj["subsets"] = [subset]
    return event("endpoints", obj, type)
