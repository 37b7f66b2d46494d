"""What a request asks for, parsed once: the kind, namespace, name and subresource of a resource URL
and its Kubernetes verb. The auth middleware and the resource handler share the one `RequestInfo`
(the API server's RequestInfo idea), so a URL is never interpreted twice, or two ways.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from api.http import flag
from emulator import errors
from emulator.kinds import BY_PATH, ResourceType


@dataclass(slots=True)
class Target:
    rt: ResourceType
    namespace: str | None  # None = all namespaces (collection) / cluster-scoped
    name: str | None
    subresource: str | None


def parse_target(group: str, version: str, parts: list[str]) -> Target:
    """The rest of the path after the group-version, as a Target; 404 for paths that name nothing."""
    namespace: str | None = None
    if len(parts) >= 3 and parts[0] == "namespaces" and (group, version, parts[2]) in BY_PATH:
        namespace, parts = parts[1], parts[2:]
    if not parts or (group, version, parts[0]) not in BY_PATH or len(parts) > 3:
        raise errors.no_such_path()
    rt = BY_PATH[(group, version, parts[0])]
    if namespace is not None and not rt.namespaced:
        raise errors.no_such_path()
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if sub is not None and sub not in {s.name for s in rt.subresources}:
        raise errors.no_such_path(f"{rt.key}/{sub}")
    if rt.namespaced and name is not None and namespace is None:
        raise errors.no_such_path()
    return Target(rt, namespace if rt.namespaced else None, name, sub)


# pods/exec, attach and portforward: streams opened with a GET (WebSocket) or a POST (SPDY), both `create`
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})


def request_verb(method: str, target: Target, watch: bool) -> str | None:
    """The Kubernetes verb of a request (as discovery and RBAC name it); None when the method names none."""
    if target.name is None:
        return {"GET": "watch" if watch else "list", "POST": "create", "DELETE": "deletecollection"}.get(method)
    if target.subresource in CONNECT_SUBRESOURCES and target.rt.plural == "pods" and method in ("GET", "POST"):
        return "create"  # kubectl's WebSocket upgrade is a GET: the API server authorizes it as create too (1.30+)
    verbs = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    return verbs.get(method) or ("create" if method == "POST" and target.subresource else None)


def verbs_of(target: Target) -> tuple[str, ...]:
    if target.subresource is None:
        return target.rt.verbs
    return next((s.verbs for s in target.rt.subresources if s.name == target.subresource), ())


@dataclass(frozen=True, slots=True)
class RequestInfo:
    group: str
    target: Target | None  # None: not a resource URL, or one that names nothing (then `error` says so)
    verb: str | None  # get, list, watch, create, update, patch, delete, deletecollection
    error: errors.StatusError | None = None


INFO = web.RequestKey("request_info", RequestInfo)


def request_info(request: web.Request) -> RequestInfo:
    """The request's RequestInfo, parsed on first use and kept on the request."""
    try:
        return request[INFO]  # (one lookup: `in` and then [] would be two, through the Mapping ABC)
    except KeyError:
        pass
    info = _parse(request)
    request[INFO] = info
    return info


def _parse(request: web.Request) -> RequestInfo:
    parts = [p for p in request.path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis") or len(parts) <= (2 if parts[0] == "api" else 3):
        return RequestInfo("", None, None)
    group, version, rest = ("", parts[1], parts[2:]) if parts[0] == "api" else (parts[1], parts[2], parts[3:])
    try:
        target = parse_target(group, version, rest)
    except errors.StatusError as exc:
        return RequestInfo(group, None, None, exc)
    # HEAD is GET without the body (Kubernetes authorizes it as get/list/watch): the same verb.
    method = "GET" if request.method == "HEAD" else request.method
    return RequestInfo(group, target, request_verb(method, target, flag(request, "watch")))
