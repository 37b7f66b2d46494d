"""The compilers' inputs: the gateway's settings and the raw stored objects routing reads.

`RoutingIndex` (emulator/routing/index.py) keeps a `RoutingObjects` current from store events and hands it,
with the `RoutingSettings`, to `compile_ingresses` (routing/ingress.py) and `compile_gateway_api`
(routing/gatewayapi.py). Objects are the stored dicts as they are (never mutated by a compiler), keyed
(namespace, name), with "" as the namespace of cluster-scoped objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Objects = dict[ObjectKey, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """Where the gateway listens and who it is: `controller` is the GatewayClass controllerName it
    implements, `ingress_class` the IngressClass name (controller `emulator.local/ingress`) it serves."""

    gateway_host: str = "127.0.0.1"
    http_port: int = 8081
    https_port: int | None = 8443
    zone: str = "cluster.local"
    controller: str = "emulator.local/gateway"
    ingress_class: str = "emulator"


@dataclass(slots=True)
class RoutingObjects:
    """Raw stored objects by (namespace, name). `tls_secrets` holds only Secrets of type
    kubernetes.io/tls."""

    ingresses: Objects = field(default_factory=dict)
    ingress_classes: Objects = field(default_factory=dict)
    services: Objects = field(default_factory=dict)
    tls_secrets: Objects = field(default_factory=dict)
    namespaces: Objects = field(default_factory=dict)
    gateway_classes: Objects = field(default_factory=dict)
    gateways: Objects = field(default_factory=dict)
    http_routes: Objects = field(default_factory=dict)
    grpc_routes: Objects = field(default_factory=dict)
    reference_grants: Objects = field(default_factory=dict)
