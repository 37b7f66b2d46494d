"""EndpointSlice (discovery.k8s.io/v1): the model, defaults and the columns of `kubectl get
endpointslices`. The endpoints controller keeps the slices of selector services (at most 100
endpoints each) and mirrors the Endpoints users write for selectorless ones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.endpoints import EndpointPort
from emulator.kinds.printing import AGE, NAME, Column, Printer, join_with_more, name_age
from emulator.models.base import GoType
from emulator.models.meta import ApiModel, ObjectReference, TypedObject
from emulator.registry.strategy import Strategy

ENDPOINT_SLICES = ResourceType(
    "discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, "endpointslice"
)

# Which service a slice belongs to (what DNS and the proxy group slices by), and which controller keeps it.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MAX_SLICE_ENDPOINTS = 1000  # the API's limit per slice (the endpointslice controller fills them to 100)


class EndpointConditions(ApiModel):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class SliceEndpoint(ApiModel):
    go_name: ClassVar[str | None] = "Endpoint"  # discovery/v1.Endpoint
    addresses: list[str]
    conditions: EndpointConditions | None = None
    hostname: str | None = None
    target_ref: ObjectReference | None = None
    node_name: str | None = None
    zone: str | None = None
    hints: Any = None
    deprecated_topology: dict[str, str] | None = None


class EndpointSlice(TypedObject):
    address_type: Annotated[Literal["FQDN", "IPv4", "IPv6"], GoType("v1.AddressType")]
    endpoints: list[SliceEndpoint] | None = None
    ports: list[EndpointPort] | None = None


class EndpointSliceStrategy(Strategy):
    resource = ENDPOINT_SLICES
    model = EndpointSlice

    # discovery/v1 defaulting: a port's name is "" when unset (`kubectl describe svc` dereferences it)
    def prepare_create(self, obj: dict[str, Any]) -> None:
        for port in obj.get("ports") or []:
            port.setdefault("name", "")

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self.prepare_create(new)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        count = len(obj.get("endpoints") or [])
        if count > MAX_SLICE_ENDPOINTS:
            return [FieldError("endpoints", "FieldValueTooMany", f"Too many: {count}: must have at most {MAX_SLICE_ENDPOINTS} items")]
        return []


def _slice_cells(eps: dict[str, Any], now: datetime) -> list[Any]:
    # A port without a number matches the named target port on each pod: shown by name, or "*".
    ports = [str(p["port"]) if p.get("port") is not None else p.get("name") or "*" for p in eps.get("ports") or []]
    addresses = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    name, created = name_age(eps, now)
    return [name, eps.get("addressType", ""), join_with_more(ports), join_with_more(addresses), created]


PRINTER = Printer(
    (
        NAME,
        Column("AddressType", "addressType specifies the type of address carried by this EndpointSlice."),
        Column("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
        Column("Endpoints", "endpoints is a list of unique endpoints in this slice."),
        AGE,
    ),
    _slice_cells,
)


# every EndpointSlice list is atomic
KIND = Kind(ENDPOINT_SLICES, EndpointSliceStrategy, PRINTER)
