"""The API's door: a middleware that lets a request through only with a bearer token that allows it.

Installed only when authentication is required (emulator/auth.py `auth_required`). Then:
- health (`/healthz`, `/readyz`, `/livez`) and `/version` stay open, as they are to anonymous users on
  a real API server, so that probes and `kubectl version` work;
- no `Authorization: Bearer` token, or one that is not valid → 401 Unauthorized;
- a valid token whose user may not do this → 403 Forbidden, worded like the API server;
- discovery (`/api`, `/apis`, `/openapi/...`) is readable by every authenticated user.

The check happens before any handler runs, so a refused request changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from api.requestinfo import request_info
from emulator import errors
from emulator.security.auth import Authenticator, User, forbidden_message, may

log = logging.getLogger("emulator.api.auth")

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version"})
USER = web.RequestKey("user", User)

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
        if path in OPEN_PATHS or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return await handler(request)
        token = bearer_token(request)
        if token is None:
            raise errors.unauthorized()
        review = authenticator.review(token)
        if not review.authenticated or review.user is None:
            log.info("refused %s %s: %s", request.method, path, review.error)
            raise errors.unauthorized()
        user = review.user
        if not user.admin:
            check_access(request, user)
        request[USER] = user
        return await handler(request)

    return authenticate


def check_access(request: web.Request, user: User) -> None:
    """403 unless `user` may do this request (see emulator/security/auth.py `may`)."""
    parts = [p for p in request.path.split("/") if p]
    method = request.method
    info = request_info(request)
    if info.error is not None:
        return  # names nothing: let the handler answer 404, which reveals nothing
    target = info.target
    if target is not None:
        verb = info.verb or method.lower()
        resource = target.rt.plural + (f"/{target.subresource}" if target.subresource else "")
        namespace = target.namespace
        if target.rt.plural == "namespaces" and target.name:
            namespace = target.name  # as in Kubernetes: a namespace object is part of its own namespace
        if not may(user, verb, namespace):
            raise errors.forbidden_request(forbidden_message(user, verb, resource, info.group, namespace))
        return
    if method in ("GET", "HEAD") and (not parts or parts[0] in ("api", "apis", "openapi")):
        return  # discovery: every authenticated user may read it
    # /emulator/v1/namespaces/NS/...: namespaced reads follow the same rule as the API's
    if len(parts) >= 4 and parts[:3] == ["emulator", "v1", "namespaces"]:
        if may(user, "get" if method in ("GET", "HEAD") else method.lower(), parts[3]):
            return
    raise errors.forbidden_request(f'forbidden: User "{user.username}" cannot {method.lower()} path "{request.path}"')
