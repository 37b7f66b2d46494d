"""Discovery documents: `/version`, aggregated discovery (`/api`, `/apis` as APIGroupDiscoveryList) and the
legacy `/api`, `/apis`, `/apis/<g>`, `/api/v1`, `/apis/<g>/<v>` lists, plus the Accept-header negotiation
that decides which of them (and whether a Table) a client gets.

Everything is derived from `emulator.resources.RESOURCE_TYPES`, so adding a row there is enough for kubectl
to find the new kind. Pure functions returning dicts; the HTTP handlers live elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator.kinds import RESOURCE_TYPES, ResourceType, Subresource, groups

# The minor version decides which kubectl binary the gcloud dispatcher runs (KUBECTL.md §1): stay on 1.32.
KUBERNETES_VERSION = "v1.32.0"

DISCOVERY_GROUP = "apidiscovery.k8s.io"
DISCOVERY_KIND = "APIGroupDiscoveryList"
# Preferred first: a client that lists both gets v2.
AGGREGATED_VERSIONS = ("v2", "v2beta1")
TABLE_VERSIONS = ("v1", "v1beta1")


def version_info() -> dict[str, str]:
    """The `/version` document (KUBECTL.md §3.1)."""
    major, minor, _patch = KUBERNETES_VERSION.lstrip("v").split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.4",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


# --------------------------------------------------------------------------------------------------------
# Accept negotiation


@dataclass(frozen=True, slots=True)
class MediaType:
    """One entry of an Accept header: `application/json;g=meta.k8s.io;v=v1;as=Table`."""

    type: str  # "application"
    subtype: str  # "json"
    params: dict[str, str] = field(default_factory=dict)  # lower-cased keys, q removed
    q: float = 1.0

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"

    def accepts_json(self) -> bool:
        return self.essence in ("application/json", "application/*", "*/*")

    def is_plain(self) -> bool:
        """True for an entry without Kubernetes conversion params (g, v, as): "send me the ordinary object"."""
        return not ({"g", "v", "as"} & self.params.keys())


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_accept(accept: str | None) -> list[MediaType]:
    """Parse an Accept header into media types, best first: by `q` descending, then in the client's order
    (a stable sort, so equal-q entries keep the order the client wrote them in, which is how kubectl
    states its preference). Malformed entries are skipped rather than failing the request."""
    out: list[MediaType] = []
    for entry in _split_outside_quotes(accept or "", ","):
        pieces = _split_outside_quotes(entry, ";")
        essence = pieces[0].strip().lower()
        type_, slash, subtype = essence.partition("/")
        if not slash or not type_ or not subtype:
            continue
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            key, eq, value = piece.partition("=")
            key = key.strip().lower()
            if not eq or not key:
                continue
            value = value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            else:
                params[key] = value
        if q > 0:
            out.append(MediaType(type_, subtype, params, q))
    out.sort(key=lambda m: -m.q)
    return out


def _negotiate(accept: str | None, group: str, kind: str, versions: tuple[str, ...]) -> str | None:
    """Walk the client's preferences: the first entry that asks for `kind` in `group` at a version we serve
    wins; a plain JSON entry met first means the client prefers the ordinary document (None). Entries we
    cannot serve (protobuf, unknown versions) are skipped, as the real server does."""
    for media in parse_accept(accept):
        if not media.accepts_json():
            continue
        if media.is_plain():
            return None
        p = media.params
        if p.get("g") == group and p.get("as") == kind and p.get("v") in versions:
            return p["v"]
    return None


def aggregated_discovery_version(accept: str | None) -> str | None:
    """ "v2", "v2beta1" or None (serve the legacy document). Only a version the client named is ever chosen:
    an older kubectl that asks for v2beta1 alone breaks on a v2 answer (KUBECTL.md §12.2)."""
    return _negotiate(accept, DISCOVERY_GROUP, DISCOVERY_KIND, AGGREGATED_VERSIONS)


def table_version(accept: str | None) -> str | None:
    """The meta.k8s.io Table version the client asked for ("v1" or "v1beta1"), or None for plain objects."""
    return _negotiate(accept, "meta.k8s.io", "Table", TABLE_VERSIONS)


def wants_table(accept: str | None) -> bool:
    return table_version(accept) is not None


def aggregated_content_type(version: str = "v2") -> str:
    """The exact Content-Type kubectl requires on aggregated discovery; plain application/json makes it
    report "the server doesn't have a resource type" (KUBECTL.md §3.2)."""
    return f"application/json;g={DISCOVERY_GROUP};v={version};as={DISCOVERY_KIND}"


AGGREGATED_CONTENT_TYPE = aggregated_content_type("v2")


def table_content_type(version: str = "v1") -> str:
    return f"application/json;as=Table;v={version};g=meta.k8s.io"


# --------------------------------------------------------------------------------------------------------
# Aggregated discovery


def _resources_in(group: str, version: str) -> list[ResourceType]:
    return [r for r in RESOURCE_TYPES if r.group == group and r.version == version]


def _response_kind(resource: ResourceType, sub: Subresource | None = None) -> dict[str, str]:
    if sub is not None and sub.kind:
        return {"group": sub.group or "", "version": sub.version or resource.version, "kind": sub.kind}
    return {"group": resource.group, "version": resource.version, "kind": resource.kind}


def _names_and_categories(out: dict[str, Any], r: ResourceType) -> None:
    """shortNames and categories, both discovery forms; empty lists are omitted, as Go's omitempty does."""
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)


def _aggregated_resource(r: ResourceType) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": _response_kind(r),
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": sorted(r.verbs),
    }
    _names_and_categories(out, r)
    if r.subresources:
        out["subresources"] = [
            {"subresource": s.name, "responseKind": _response_kind(r, s), "verbs": sorted(s.verbs)}
            for s in r.subresources
        ]
    return out


def _aggregated_group(group: str, versions: list[str]) -> dict[str, Any]:
    # The core group has no name in aggregated discovery; creationTimestamp null mirrors the Go encoder.
    metadata: dict[str, Any] = {"name": group, "creationTimestamp": None} if group else {"creationTimestamp": None}
    return {
        "metadata": metadata,
        "versions": [
            {
                "version": v,
                "resources": [_aggregated_resource(r) for r in _resources_in(group, v)],
                "freshness": "Current",
            }
            for v in versions
        ],
    }


def _discovery_list(version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    if version not in AGGREGATED_VERSIONS:
        raise ValueError(f"unsupported aggregated discovery version {version!r}")
    return {"kind": DISCOVERY_KIND, "apiVersion": f"{DISCOVERY_GROUP}/{version}", "metadata": {}, "items": items}


def aggregated_core(version: str = "v2") -> dict[str, Any]:
    """`GET /api` as an APIGroupDiscoveryList (v2 and v2beta1 share the shape)."""
    return _discovery_list(version, [_aggregated_group("", groups().get("", []))])


def aggregated_groups(version: str = "v2") -> dict[str, Any]:
    """`GET /apis` as an APIGroupDiscoveryList: one item per named group."""
    return _discovery_list(version, [_aggregated_group(g, vs) for g, vs in groups().items() if g])


# --------------------------------------------------------------------------------------------------------
# Legacy discovery


def api_versions(server_address: str) -> dict[str, Any]:
    """`GET /api`: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": groups().get("", []),
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list() -> dict[str, Any]:
    """`GET /apis`: every named group, versions in order of preference."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_doc(g, vs) for g, vs in groups().items() if g],
    }


def api_group(group: str) -> dict[str, Any] | None:
    """`GET /apis/<group>`, or None when the group is not served (the core group is never under /apis)."""
    versions = groups().get(group) if group else None
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def _legacy_resource(r: ResourceType) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": sorted(r.verbs),
    }
    _names_and_categories(out, r)
    return out


def _legacy_subresource(r: ResourceType, sub: Subresource) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": f"{r.plural}/{sub.name}",
        "singularName": "",
        "namespaced": r.namespaced,
    }
    # group/version appear only when the subresource answers with a kind from another group-version
    # (serviceaccounts/token -> authentication.k8s.io/v1 TokenRequest).
    kind = _response_kind(r, sub)
    if (kind["group"], kind["version"]) != (r.group, r.version):
        out["group"] = kind["group"]
        out["version"] = kind["version"]
    out["kind"] = kind["kind"]
    out["verbs"] = sorted(sub.verbs)
    return out


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """`GET /api/v1` (group "") or `GET /apis/<group>/<version>`; None when not served. Subresources
    (`pods/status`, `serviceaccounts/token`) follow their parent, as on a real server."""
    served = _resources_in(group, version)
    if not served:
        return None
    resources: list[dict[str, Any]] = []
    for r in served:
        resources.append(_legacy_resource(r))
        resources.extend(_legacy_subresource(r, s) for s in r.subresources)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
