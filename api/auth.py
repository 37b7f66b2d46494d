"""The API's door: a middleware that lets a request through only with a bearer token that allows it.

Installed only when authentication is required (emulator/auth.py `auth_required`). Then:
- health (`/healthz`, `/readyz`, `/livez`) and `/version` stay open, as they are to anonymous users on
  a real API server, so that probes and `kubectl version` work; so do the web page's static files
  (`/emulator/ui/`, api/ui.py: no cluster data), which then ask the user for a token;
- no `Authorization: Bearer` token, or one that is not valid → 401 Unauthorized;
- `Impersonate-User`/`Impersonate-Group`/`Impersonate-Uid`/`Impersonate-Extra-*` (kubectl --as,
  --as-group) make the request the impersonated user's, when the caller may `impersonate` each of them;
- a user RBAC does not allow this request (emulator/security/rbac.py) → 403 Forbidden, worded like the
  API server. Resource requests are checked by verb, API group, resource, subresource, name and
  namespace; other paths (discovery: `/api`, `/apis`, `/openapi/...`) by their path, against the
  roles' `nonResourceURLs` (the default `system:discovery` role lets every authenticated user read them).
  `/emulator/v1/namespaces/NS/pods/NAME/env` is checked as `get` of the subresource `pods/env`.

The check happens before any handler runs, so a refused request changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from api.oidc import OIDC_PATHS
from api.requestinfo import request_info
from emulator import errors
from emulator.security import rbac
from emulator.security.auth import Authenticator, User, attributes, forbidden_message, may
from emulator.security.tokens import SERVICE_ACCOUNT_PREFIX

log = logging.getLogger("emulator.api.auth")

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version", "/emulator/ui"})
USER = web.RequestKey("user", User)
IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA = "Impersonate-Extra-"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def middlewares(authenticator: Authenticator, required: bool) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    """What to hand to `create_app(..., middlewares=...)`: nothing when the API is open."""
    return [require_token(authenticator)] if required else []


def require_token(authenticator: Authenticator) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS or path.startswith(("/healthz/", "/readyz/", "/livez/", "/emulator/ui/")):
            return await handler(request)
        token = bearer_token(request)
        if token is None:
            raise errors.unauthorized()
        review = authenticator.review(token)
        if not review.authenticated or review.user is None:
            log.info("refused %s %s: %s", request.method, path, review.error)
            raise errors.unauthorized()
        user = impersonated(request, review.user, authenticator.policy)
        request[USER] = user
        if user.admin:
            return await handler(request)
        check_access(request, user, authenticator.policy)
        # who writes, for the RBAC kinds' escalation check (emulator/kinds/rbac_common.py)
        writer = rbac.REQUESTER.set(rbac.Requester(user.username, user.groups, authenticator.policy))
        try:
            return await handler(request)
        finally:
            rbac.REQUESTER.reset(writer)

    return authenticate


def check_access(request: web.Request, user: User, policy: rbac.Policy) -> None:
    """403 unless RBAC allows `user` this request (see emulator/security/auth.py `may`)."""
    method = "GET" if request.method == "HEAD" else request.method  # HEAD is authorized as GET
    info = request_info(request)
    target = info.target
    if info.error is not None:
        if request.path.startswith(("/api/", "/apis/")):
            # names no resource the API serves (an encoded "/" in a name, an unknown kind): never matched
            # against discovery's non-resource rules, which would let it through to a handler
            raise errors.forbidden_request(f'forbidden: User "{user.username}" cannot {method.lower()} path "{request.path}"')
        target = None  # decided as a plain path below
    parts = [p for p in request.path.split("/") if p]
    if target is not None:
        namespace = target.namespace or ""
        if target.rt.plural == "namespaces" and target.name:
            namespace = target.name  # as in Kubernetes: a namespace object is part of its own namespace
        verb = info.verb or method.lower()
        name = target.name or ""
        if not name and verb in ("list", "watch"):
            name = exact_name(request.query.get("fieldSelector", ""))
        attrs = attributes(
            user, verb, namespace=namespace, api_group=info.group, resource=target.rt.plural,
            subresource=target.subresource or "", name=name,
        )
    elif len(parts) == 7 and parts[:3] == ["emulator", "v1", "namespaces"] and parts[4] == "pods" and parts[6] in ("env", "hosts"):
        # the emulator's own pod subresources: a pod's variables (may hold Secret values) and its hosts file
        attrs = attributes(user, method.lower(), namespace=parts[3], resource="pods", subresource=parts[6], name=parts[5])
    else:
        if method == "GET" and request.path in OIDC_PATHS:
            return  # issuer discovery: the API server grants it to system:authenticated (until RBAC decides)
        attrs = attributes(user, method.lower(), path=request.path)
    if not may(user, attrs, policy).allowed:
        raise errors.forbidden_request(forbidden_message(attrs))


def exact_name(field_selector: str) -> str:
    """The name a list or watch is limited to by `fieldSelector=metadata.name=X` (as the API server's
    RequestInfo takes it, so that a role with resourceNames may list and watch its one object)."""
    for term in field_selector.split(","):
        key, op, value = term.partition("==") if "==" in term else term.partition("=")
        if op and not key.endswith("!") and key.strip() == "metadata.name":
            return value.strip()
    return ""


def impersonated(request: web.Request, user: User, policy: rbac.Policy) -> User:
    """The user a request acts as: `user` itself, or the one its Impersonate-* headers name (kubectl --as,
    --as-group), when `user` may `impersonate` that user (or service account), each group, the uid and
    each extra value; else 403. Without groups, an impersonated service account is in its own groups;
    every impersonated user but system:anonymous is in system:authenticated."""
    headers = request.headers
    name = headers.get(IMPERSONATE_USER)
    groups = list(headers.getall(IMPERSONATE_GROUP, []))
    uid = headers.get(IMPERSONATE_UID, "")
    extra: dict[str, tuple[str, ...]] = {}
    for header in headers:
        if header.lower().startswith(IMPERSONATE_EXTRA.lower()):
            extra[header[len(IMPERSONATE_EXTRA):].lower()] = tuple(headers.getall(header))
    if name is None:
        if groups or uid or extra:
            raise errors.bad_request(f"requested {IMPERSONATE_GROUP}, {IMPERSONATE_UID} or {IMPERSONATE_EXTRA}* without impersonating a user")
        return user
    namespace: str | None = None
    checks: list[rbac.Attributes] = []
    if name.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, account = name[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
        checks.append(attributes(user, "impersonate", namespace=namespace, resource="serviceaccounts", name=account))
        if not groups:
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    else:
        checks.append(attributes(user, "impersonate", resource="users", name=name))
    checks += [attributes(user, "impersonate", resource="groups", name=g) for g in headers.getall(IMPERSONATE_GROUP, [])]
    if uid:
        checks.append(attributes(user, "impersonate", api_group="authentication.k8s.io", resource="uids", name=uid))
    for key, values in extra.items():
        checks += [
            attributes(user, "impersonate", api_group="authentication.k8s.io", resource="userextras", subresource=key, name=v)
            for v in values
        ]
    for attrs in checks:
        if not may(user, attrs, policy).allowed:
            raise errors.forbidden_request(forbidden_message(attrs))
    wanted = rbac.UNAUTHENTICATED if name == rbac.ANONYMOUS else rbac.AUTHENTICATED
    if wanted not in groups:
        groups.append(wanted)
    return User(name, uid=uid, groups=tuple(groups), extra=extra, namespace=namespace)
