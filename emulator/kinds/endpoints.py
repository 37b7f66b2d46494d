"""Endpoints (core/v1): the model, validation and the columns of `kubectl get endpoints`. The
endpoints controller writes them for selector services; users own those of selectorless services."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator import validation
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import AGE, NAME, NONE, Column, Printer, host_port, join_with_more, name_age
from emulator.models.base import Int32
from emulator.models.meta import ApiModel, ObjectReference, Protocol, TypedObject
from emulator.registry.strategy import Strategy

ENDPOINTS = ResourceType("", "v1", "endpoints", "Endpoints", True, "endpoints", ("ep",))


class EndpointAddress(ApiModel):
    ip: str
    hostname: str | None = None
    node_name: str | None = None
    target_ref: ObjectReference | None = None


class EndpointPort(ApiModel):
    name: str | None = None
    port: Int32
    protocol: Protocol = "TCP"
    app_protocol: str | None = None


class EndpointSubset(ApiModel):
    addresses: list[EndpointAddress] | None = None
    not_ready_addresses: list[EndpointAddress] | None = None
    ports: list[EndpointPort] | None = None


class Endpoints(TypedObject):
    subsets: list[EndpointSubset] | None = None


class EndpointsStrategy(Strategy):
    resource = ENDPOINTS
    model = Endpoints

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems: list[FieldError] = []
        for i, subset in enumerate(obj.get("subsets") or []):
            for group in ("addresses", "notReadyAddresses"):
                for j, address in enumerate(subset.get(group) or []):
                    problems += validation.validate_ip(address["ip"], f"subsets[{i}].{group}[{j}].ip")
            for j, port in enumerate(subset.get("ports") or []):
                problems += validation.validate_port_number(port["port"], f"subsets[{i}].ports[{j}].port")
        return problems


def format_endpoints(endpoints: dict[str, Any]) -> str:
    """Ready addresses as ip:port for every port of each subset (bare IPs for port-less headless
    subsets), abbreviated after three; "<none>" when there are no subsets."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return NONE
    entries: list[str] = []
    for subset in subsets:
        ips = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            entries.extend(ips)
        for port in ports:
            entries.extend(host_port(ip, port.get("port")) for ip in ips)
    return join_with_more(entries, empty="")


def _endpoints_cells(ep: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(ep, now)
    return [name, format_endpoints(ep), created]


PRINTER = Printer(
    (NAME, Column("Endpoints", "The set of all endpoints is the union of all subsets."), AGE),
    _endpoints_cells,
)


# Endpoints.subsets has no merge strategy: it is replaced wholesale.
KIND = Kind(ENDPOINTS, EndpointsStrategy, PRINTER)
