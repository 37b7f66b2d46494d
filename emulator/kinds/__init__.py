"""The kinds the emulator serves: one module each, registered in `KINDS`.

Adding a kind is one new module here (its `ResourceType`, model, strategy, columns, merge keys and
protobuf layouts, gathered in a `Kind`), one line in `KINDS`, and its tests. Routing, discovery, OpenAPI,
tables, patching, protobuf decoding and the registry all read this list; nothing else names kinds.
"""

from __future__ import annotations

from collections.abc import Mapping

from emulator.kinds import (
    configmap,
    deployment,
    endpoints,
    endpointslice,
    event,
    horizontalpodautoscaler,
    ingress,
    ingressclass,
    limitrange,
    namespace,
    networkpolicy,
    node,
    persistentvolume,
    persistentvolumeclaim,
    pod,
    poddisruptionbudget,
    replicaset,
    replicationcontroller,
    resourcequota,
    secret,
    service,
    serviceaccount,
    tokenreview,
)
from emulator.kinds.base import ALL_VERBS, Kind, ResourceType, Subresource
from emulator.kinds.protobuf_layout import Message
from emulator.registry.patch import ListRules

KINDS: tuple[Kind, ...] = (
    namespace.KIND,
    pod.KIND,
    service.KIND,
    endpoints.KIND,
    serviceaccount.KIND,
    event.KIND,
    endpointslice.KIND,
    networkpolicy.KIND,
    tokenreview.KIND,
    configmap.KIND,
    secret.KIND,
    node.KIND,
    persistentvolume.KIND,
    persistentvolumeclaim.KIND,
    limitrange.KIND,
    resourcequota.KIND,
    horizontalpodautoscaler.KIND,
    poddisruptionbudget.KIND,
    ingressclass.KIND,
    ingress.KIND,
    deployment.KIND,
    replicaset.KIND,
    replicationcontroller.KIND,
)

# The resource types, for the modules that name one (store keys, event filters).
NAMESPACES = namespace.NAMESPACES
PODS = pod.PODS
SERVICES = service.SERVICES
ENDPOINTS = endpoints.ENDPOINTS
SERVICE_ACCOUNTS = serviceaccount.SERVICE_ACCOUNTS
EVENTS = event.EVENTS
ENDPOINT_SLICES = endpointslice.ENDPOINT_SLICES
NETWORK_POLICIES = networkpolicy.NETWORK_POLICIES
TOKEN_REVIEWS = tokenreview.TOKEN_REVIEWS
CONFIG_MAPS = configmap.CONFIG_MAPS
SECRETS = secret.SECRETS
NODES = node.NODES
PERSISTENT_VOLUMES = persistentvolume.PERSISTENT_VOLUMES
PERSISTENT_VOLUME_CLAIMS = persistentvolumeclaim.PERSISTENT_VOLUME_CLAIMS
INGRESS_CLASSES = ingressclass.INGRESS_CLASSES
DEPLOYMENTS = deployment.DEPLOYMENTS
REPLICA_SETS = replicaset.REPLICA_SETS
REPLICATION_CONTROLLERS = replicationcontroller.REPLICATION_CONTROLLERS

RESOURCE_TYPES: tuple[ResourceType, ...] = tuple(k.resource for k in KINDS)
# (group, version, plural) -> ResourceType: what URL routing needs.
BY_PATH: dict[tuple[str, str, str], ResourceType] = {(r.group, r.version, r.plural): r for r in RESOURCE_TYPES}
BY_KEY: dict[str, Kind] = {k.resource.key: k for k in KINDS}
# (apiVersion, kind) -> ResourceType: what manifests need.
BY_KIND: dict[tuple[str, str], ResourceType] = {(r.api_version, r.kind): r for r in RESOURCE_TYPES}
# Every protobuf layout a kind declares, by (apiVersion, kind): what api/protobuf.py decodes.
PROTOBUF_LAYOUTS: Mapping[tuple[str, str], Message] = {key: m for k in KINDS for key, m in k.protobuf.items()}


def kind_of(resource: ResourceType) -> Kind:
    return BY_KEY[resource.key]


def merge_rules(resource: ResourceType) -> ListRules:
    """The strategic-merge / apply list rules of a kind (ObjectMeta's own are added by the merger)."""
    return BY_KEY[resource.key].merge_rules


def groups() -> dict[str, list[str]]:
    """API group name -> versions served, core group under ""."""
    out: dict[str, list[str]] = {}
    for r in RESOURCE_TYPES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


__all__ = [
    "ALL_VERBS", "BY_KEY", "BY_KIND", "BY_PATH", "ENDPOINTS", "ENDPOINT_SLICES", "EVENTS", "KINDS", "Kind",
    "NAMESPACES", "NETWORK_POLICIES", "PODS", "PROTOBUF_LAYOUTS", "RESOURCE_TYPES", "ResourceType", "SERVICES",
    "SERVICE_ACCOUNTS", "Subresource", "TOKEN_REVIEWS", "groups", "kind_of", "merge_rules",
    "CONFIG_MAPS", "INGRESS_CLASSES", "NODES", "PERSISTENT_VOLUMES", "PERSISTENT_VOLUME_CLAIMS", "SECRETS",
    "DEPLOYMENTS", "REPLICA_SETS", "REPLICATION_CONTROLLERS",
]
