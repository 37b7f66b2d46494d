"""The resource types the emulator serves: one table that the store, the API and discovery all read.

Each row names a kind the way the Kubernetes API does (group, version, plural, kind, scope) so that URL
routing, discovery documents, Status messages and store keys are all derived from the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Subresource:
    name: str
    verbs: tuple[str, ...] = ("get", "patch", "update")
    # kind the subresource answers with when it is not the parent kind (e.g. TokenRequest)
    kind: str | None = None
    group: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = field(default=())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def key(self) -> str:
        """Store key and the 'qualified resource' used in Kubernetes messages: `pods`,
        `networkpolicies.networking.k8s.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


NAMESPACES = ResourceType(
    "", "v1", "namespaces", "Namespace", False, "namespace", ("ns",),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    subresources=(Subresource("status"), Subresource("finalize", ("update",))),
)
PODS = ResourceType(
    "", "v1", "pods", "Pod", True, "pod", ("po",), ("all",), subresources=(Subresource("status"),)
)
SERVICES = ResourceType(
    "", "v1", "services", "Service", True, "service", ("svc",), ("all",), subresources=(Subresource("status"),)
)
ENDPOINTS = ResourceType("", "v1", "endpoints", "Endpoints", True, "endpoints", ("ep",))
SERVICE_ACCOUNTS = ResourceType(
    "", "v1", "serviceaccounts", "ServiceAccount", True, "serviceaccount", ("sa",),
    subresources=(Subresource("token", ("create",), "TokenRequest", "authentication.k8s.io", "v1"),),
)
EVENTS = ResourceType("", "v1", "events", "Event", True, "event", ("ev",))
ENDPOINT_SLICES = ResourceType(
    "discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, "endpointslice"
)
NETWORK_POLICIES = ResourceType(
    "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, "networkpolicy", ("netpol",)
)
# Create-only and never stored: the API answers a TokenReview at once (api/tokens.py), as Kubernetes does.
TOKEN_REVIEWS = ResourceType(
    "authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, "", verbs=("create",)
)

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    NAMESPACES, PODS, SERVICES, ENDPOINTS, SERVICE_ACCOUNTS, EVENTS, ENDPOINT_SLICES, NETWORK_POLICIES,
    TOKEN_REVIEWS,
)

# (group, version, plural) -> ResourceType: what URL routing needs.
BY_PATH: dict[tuple[str, str, str], ResourceType] = {
    (r.group, r.version, r.plural): r for r in RESOURCE_TYPES
}
BY_KEY: dict[str, ResourceType] = {r.key: r for r in RESOURCE_TYPES}
# (apiVersion, kind) -> ResourceType: what manifests and protobuf envelopes need.
BY_KIND: dict[tuple[str, str], ResourceType] = {(r.api_version, r.kind): r for r in RESOURCE_TYPES}


def groups() -> dict[str, list[str]]:
    """API group name -> versions served, core group under ""."""
    out: dict[str, list[str]] = {}
    for r in RESOURCE_TYPES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out
