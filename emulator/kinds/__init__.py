"""The kinds the emulator serves: one module each, registered in `KINDS`.

Adding a kind is one new module here (its `ResourceType`, model, strategy, columns, merge keys and
protobuf layouts, gathered in a `Kind`), one line in `KINDS`, and its tests. Routing, discovery, OpenAPI,
tables, patching, protobuf decoding and the registry all read this list; nothing else names kinds.
"""

from __future__ import annotations

from collections.abc import Mapping

from emulator.kinds import (
    apiservice,
    binding,
    clusterrole,
    clusterrolebinding,
    configmap,
    controllerrevision,
    cronjob,
    customresourcedefinition,
    daemonset,
    deployment,
    endpoints,
    endpointslice,
    event,
    gateway,
    gatewayclass,
    grpcroute,
    horizontalpodautoscaler,
    httproute,
    ingress,
    ingressclass,
    job,
    lease,
    limitrange,
    localsubjectaccessreview,
    mutatingwebhookconfiguration,
    namespace,
    networkpolicy,
    node,
    nodemetrics,
    persistentvolume,
    persistentvolumeclaim,
    pod,
    poddisruptionbudget,
    podmetrics,
    priorityclass,
    referencegrant,
    replicaset,
    replicationcontroller,
    resourcequota,
    role,
    rolebinding,
    runtimeclass,
    secret,
    selfsubjectaccessreview,
    selfsubjectreview,
    selfsubjectrulesreview,
    service,
    serviceaccount,
    statefulset,
    storageclass,
    subjectaccessreview,
    tokenreview,
    validatingadmissionpolicy,
    validatingadmissionpolicybinding,
    validatingwebhookconfiguration,
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
    binding.KIND,
    role.KIND,
    clusterrole.KIND,
    rolebinding.KIND,
    clusterrolebinding.KIND,
    selfsubjectaccessreview.KIND,
    selfsubjectrulesreview.KIND,
    subjectaccessreview.KIND,
    localsubjectaccessreview.KIND,
    selfsubjectreview.KIND,
    configmap.KIND,
    secret.KIND,
    node.KIND,
    persistentvolume.KIND,
    persistentvolumeclaim.KIND,
    storageclass.KIND,
    limitrange.KIND,
    resourcequota.KIND,
    horizontalpodautoscaler.KIND,
    poddisruptionbudget.KIND,
    priorityclass.KIND,
    runtimeclass.KIND,
    ingressclass.KIND,
    ingress.KIND,
    lease.KIND,
    # (the apps group's resources in the API server's order: by name, as discovery lists them)
    controllerrevision.KIND,
    daemonset.KIND,
    deployment.KIND,
    replicaset.KIND,
    replicationcontroller.KIND,
    statefulset.KIND,
    job.KIND,
    cronjob.KIND,
    customresourcedefinition.KIND,
    apiservice.KIND,
    mutatingwebhookconfiguration.KIND,
    validatingadmissionpolicy.KIND,
    validatingadmissionpolicybinding.KIND,
    validatingwebhookconfiguration.KIND,
    # gateway.networking.k8s.io: the Gateway API, from its vendored definitions (kinds/gatewayapi/)
    gatewayclass.KIND,
    gateway.KIND,
    httproute.KIND,
    grpcroute.KIND,
    referencegrant.KIND,
    # metrics.k8s.io: read-only, answered from the processes (api/metrics.py), never stored
    nodemetrics.KIND,
    podmetrics.KIND,
)

# Other versions of built-in kinds, served at their own paths: the same objects (stored under the kind's
# key, in its version) under another apiVersion, as a definition with several versions serves them.
OTHER_VERSIONS: tuple[Kind, ...] = (
    horizontalpodautoscaler.KIND_V1,
    *gatewayclass.OTHER_VERSIONS, *gateway.OTHER_VERSIONS, *httproute.OTHER_VERSIONS, *grpcroute.OTHER_VERSIONS,
    *referencegrant.OTHER_VERSIONS,
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
BINDINGS = binding.BINDINGS
ROLES = role.ROLES
CLUSTER_ROLES = clusterrole.CLUSTER_ROLES
ROLE_BINDINGS = rolebinding.ROLE_BINDINGS
CLUSTER_ROLE_BINDINGS = clusterrolebinding.CLUSTER_ROLE_BINDINGS
CONFIG_MAPS = configmap.CONFIG_MAPS
SECRETS = secret.SECRETS
NODES = node.NODES
PERSISTENT_VOLUMES = persistentvolume.PERSISTENT_VOLUMES
PERSISTENT_VOLUME_CLAIMS = persistentvolumeclaim.PERSISTENT_VOLUME_CLAIMS
INGRESS_CLASSES = ingressclass.INGRESS_CLASSES
DEPLOYMENTS = deployment.DEPLOYMENTS
REPLICA_SETS = replicaset.REPLICA_SETS
REPLICATION_CONTROLLERS = replicationcontroller.REPLICATION_CONTROLLERS
STATEFUL_SETS = statefulset.STATEFUL_SETS
DAEMON_SETS = daemonset.DAEMON_SETS
CONTROLLER_REVISIONS = controllerrevision.CONTROLLER_REVISIONS
JOBS = job.JOBS
CRON_JOBS = cronjob.CRON_JOBS
CUSTOM_RESOURCE_DEFINITIONS = customresourcedefinition.CUSTOM_RESOURCE_DEFINITIONS
GATEWAY_CLASSES = gatewayclass.GATEWAY_CLASSES
GATEWAYS = gateway.GATEWAYS
HTTP_ROUTES = httproute.HTTP_ROUTES
GRPC_ROUTES = grpcroute.GRPC_ROUTES
REFERENCE_GRANTS = referencegrant.REFERENCE_GRANTS
NODE_METRICS = nodemetrics.NODE_METRICS
POD_METRICS = podmetrics.POD_METRICS

# Every resource served: the built-in kinds, then those registered while running (custom resources:
# `register`, from emulator/controllers/crd.py). The list and the maps change in place, so every module
# that imported them sees the kinds served now.
RESOURCE_TYPES: list[ResourceType] = [k.resource for k in (*KINDS, *OTHER_VERSIONS)]
# (group, version, plural) -> ResourceType: what URL routing needs.
BY_PATH: dict[tuple[str, str, str], ResourceType] = {(r.group, r.version, r.plural): r for r in RESOURCE_TYPES}
BY_KEY: dict[str, Kind] = {k.resource.key: k for k in KINDS}
# (apiVersion, kind) -> ResourceType: what manifests need.
BY_KIND: dict[tuple[str, str], ResourceType] = {(r.api_version, r.kind): r for r in RESOURCE_TYPES}
# Every protobuf layout a kind declares, by (apiVersion, kind): what api/protobuf.py decodes.
PROTOBUF_LAYOUTS: Mapping[tuple[str, str], Message] = {key: m for k in (*KINDS, *OTHER_VERSIONS) for key, m in k.protobuf.items()}
# The kinds registered while running, by (group, version, plural): a custom resource is served in several
# versions under one store key, each version with its own schema and columns (BY_KEY holds the storage one).
_REGISTERED: dict[tuple[str, str, str], Kind] = {}
_OTHER_VERSIONS: dict[tuple[str, str, str], Kind] = {(k.resource.group, k.resource.version, k.resource.plural): k for k in OTHER_VERSIONS}
_BUILT_IN_PATHS = frozenset(BY_PATH)
_BUILT_IN_MANIFEST_KINDS = frozenset(BY_KIND)
_BUILT_IN_KEYS = frozenset(BY_KEY)
_generation = [0]


def generation() -> int:
    """Changes whenever the kinds served change: documents derived from them (discovery, OpenAPI) are stale."""
    return _generation[0]


def register(kind: Kind, storage: bool = True) -> None:
    """Serve `kind` from now on (one version of a custom resource), in place of what was served at its path.
    `storage`: the version its objects are stored in (BY_KEY's entry for the key). A built-in resource is
    never replaced: its path, its kind and its store key are refused (ValueError)."""
    r = kind.resource
    path = (r.group, r.version, r.plural)
    if path in _BUILT_IN_PATHS or r.key in _BUILT_IN_KEYS:
        raise ValueError(f"{r.key} {r.version} is a built-in resource")
    if (r.api_version, r.kind) in _BUILT_IN_MANIFEST_KINDS:
        raise ValueError(f"{r.api_version} {r.kind} is a built-in kind")
    previous = BY_PATH.get(path)
    if previous is not None:
        RESOURCE_TYPES.remove(previous)
        if BY_KIND.get((previous.api_version, previous.kind)) is previous:
            del BY_KIND[(previous.api_version, previous.kind)]
    RESOURCE_TYPES.append(r)
    BY_PATH[path] = r
    BY_KIND[(r.api_version, r.kind)] = r
    _REGISTERED[path] = kind
    if storage or r.key not in BY_KEY:
        BY_KEY[r.key] = kind
    _generation[0] += 1


def unregister(key: str) -> None:
    """Stop serving every version of the registered resource `key` (`crontabs.stable.example.com`)."""
    for path, kind in list(_REGISTERED.items()):
        r = kind.resource
        if r.key != key:
            continue
        del _REGISTERED[path]
        if path not in _BUILT_IN_PATHS:
            BY_PATH.pop(path, None)
        if BY_KIND.get((r.api_version, r.kind)) is r and (r.api_version, r.kind) not in _BUILT_IN_MANIFEST_KINDS:
            del BY_KIND[(r.api_version, r.kind)]
        if r in RESOURCE_TYPES:
            RESOURCE_TYPES.remove(r)
    if key in BY_KEY and key not in _BUILT_IN_KEYS and BY_KEY[key].resource not in _BUILT_IN_KINDS:
        del BY_KEY[key]
    _generation[0] += 1


_BUILT_IN_KINDS = frozenset(k.resource for k in KINDS)


def registered(key: str) -> list[Kind]:
    """The versions of a registered resource served now."""
    return [k for k in _REGISTERED.values() if k.resource.key == key]


def kind_of(resource: ResourceType) -> Kind:
    path = (resource.group, resource.version, resource.plural)
    found = _REGISTERED.get(path) or _OTHER_VERSIONS.get(path)
    return found if found is not None else BY_KEY[resource.key]


def merge_rules(resource: ResourceType) -> ListRules:
    """The strategic-merge / apply list rules of a kind (ObjectMeta's own are added by the merger)."""
    return kind_of(resource).merge_rules


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
    "SERVICE_ACCOUNTS", "Subresource", "TOKEN_REVIEWS", "BINDINGS", "groups", "kind_of", "merge_rules",
    "CLUSTER_ROLES", "CLUSTER_ROLE_BINDINGS", "ROLES", "ROLE_BINDINGS",
    "CONFIG_MAPS", "INGRESS_CLASSES", "NODES", "PERSISTENT_VOLUMES", "PERSISTENT_VOLUME_CLAIMS", "SECRETS",
    "DEPLOYMENTS", "REPLICA_SETS", "REPLICATION_CONTROLLERS",
    "STATEFUL_SETS", "DAEMON_SETS", "CONTROLLER_REVISIONS",
    "JOBS", "CRON_JOBS",
    "CUSTOM_RESOURCE_DEFINITIONS", "generation",
    "GATEWAY_CLASSES", "GATEWAYS", "HTTP_ROUTES", "GRPC_ROUTES", "REFERENCE_GRANTS", "register", "registered", "unregister",
]
