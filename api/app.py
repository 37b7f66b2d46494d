"""The aiohttp application: routes, the error middleware, discovery, OpenAPI and health endpoints.

Every failure leaves as a Kubernetes `Status`. Access logging is one line per request at INFO.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from api import connections, discovery, prometheus
from api.http import BODY_BROKEN, MAX_BODY, json_response, status_response
from api.rest import ResourceHandler
from emulator import errors, kinds
from emulator.logs import ACCESS
from emulator.registry.registry import Registry

log = logging.getLogger("emulator.api")

HANDLER = web.AppKey("resource_handler", ResourceHandler)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FrontDoor(Protocol):
    """Checks the error middleware runs around every request (api/guard.py's `Guard`): `before` the handler
    (raise a StatusError to refuse, or return a response to answer without the handler), `after` it on a
    normal answer. Plain calls: each would otherwise be a middleware, a coroutine layer per request."""

    def before(self, request: web.Request) -> web.StreamResponse | None: ...

    def after(self, request: web.Request, response: web.StreamResponse) -> None: ...


def error_middleware(front: FrontDoor | None = None) -> Middleware:
    """The outermost middleware: `front`'s checks, then the handler; every failure leaves as a Status,
    every request is counted (api/prometheus.py) and logged."""

    @web.middleware
    async def status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        running: Callable[[], None] | None = None  # a long-running request (watch, exec, logs) is counted while it runs
        try:
            running = prometheus.longrunning(request)
            if front is None:
                response = await handler(request)
            else:
                answered = front.before(request)
                if answered is not None:
                    status = answered.status
                    return answered
                response = await handler(request)
                front.after(request, response)
            status = response.status
            return response
        except errors.StatusError as exc:
            status = exc.code
            response = status_response(exc)
            if request.body_exists and (request.get(BODY_BROKEN) or not request.content.at_eof()):
                response.force_close()  # the rest of the body is unread or unreadable: no next request on it
            return response
        except web.HTTPException as exc:
            status = exc.status
            if exc.status == 404:
                return status_response(errors.no_such_path())
            reason = {405: "MethodNotAllowed", 413: "RequestEntityTooLarge"}.get(exc.status, "BadRequest")
            return status_response(errors.StatusError(exc.status, reason, exc.reason))
        except Exception as exc:  # a bug must still answer as a Status, and be visible in the log
            log.exception("internal error on %s %s", request.method, request.path_qs)
            return status_response(errors.internal(f"internal error: {exc.__class__.__name__}: {exc}"))
        except asyncio.CancelledError:  # the client went away (aiohttp cancels its handler): not a server error
            status = 200 if request.writer.output_size else 499  # a stream under way had answered; else nginx's 499
            raise
        finally:
            connections.response_done(request)
            elapsed = time.perf_counter() - started
            if running is not None:
                running()
            prometheus.observe(request, status, elapsed)
            if ACCESS.enabled():
                ACCESS.line(f"{request.method} {request.path_qs} {status} {elapsed * 1000:.1f}ms")

    return status_errors


status_errors = error_middleware()  # with no front-door checks (tests, tools)


def _server_address(request: web.Request) -> str:
    return request.host or "127.0.0.1"


async def version(request: web.Request) -> web.Response:
    return json_response(discovery.version_info())


# The documents below depend only on the resource table (and the Accept header's version): each is
# encoded once and served as bytes. kubectl asks for them on every `apply`.


@functools.lru_cache(maxsize=128)  # bounded: some arguments come from request paths
def _encoded(name: str, generation: int, *args: str) -> bytes | None:
    """(`generation`: the kinds served, emulator.kinds.generation(): custom resources change them.)"""
    doc = _DOCUMENTS[name](*args)
    return None if doc is None else orjson.dumps(doc)


_DOCUMENTS: dict[str, Callable[..., dict[str, Any] | None]] = {
    "aggregated_core": discovery.aggregated_core,
    "aggregated_groups": discovery.aggregated_groups,
    "api_group_list": discovery.api_group_list,
    "api_resource_list": discovery.api_resource_list,
    "api_group": discovery.api_group,
}


def _cached(name: str, *args: str, content_type: str = "application/json") -> web.Response:
    body = _encoded(name, kinds.generation(), *args)
    if body is None:
        raise errors.no_such_path()
    return json_response(body, content_type=content_type)


async def core_discovery(request: web.Request) -> web.Response:
    wanted = discovery.aggregated_discovery_version(request.headers.get("Accept"))
    if wanted:
        return _cached("aggregated_core", wanted, content_type=discovery.aggregated_content_type(wanted))
    return json_response(discovery.api_versions(_server_address(request)))  # names the address asked for


async def group_discovery(request: web.Request) -> web.Response:
    wanted = discovery.aggregated_discovery_version(request.headers.get("Accept"))
    if wanted:
        return _cached("aggregated_groups", wanted, content_type=discovery.aggregated_content_type(wanted))
    return _cached("api_group_list")


async def core_resources(request: web.Request) -> web.Response:
    return _cached("api_resource_list", "", request.match_info["version"])


async def group_resources(request: web.Request) -> web.Response:
    return _cached("api_resource_list", request.match_info["group"], request.match_info["version"])


async def group_info(request: web.Request) -> web.Response:
    return _cached("api_group", request.match_info["group"])


# The OpenAPI documents carry the 1.32 schemas: api/openapi.py builds and encodes them once, on the first
# OpenAPI request rather than at start-up, in a worker thread so that DNS and the proxy keep being served.
# The module itself loads then too: `kubectl get` never asks for it.


async def _openapi_ready() -> None:
    from api import openapi

    if not openapi.prepared():
        await asyncio.to_thread(openapi.prepare)


async def openapi_root(request: web.Request) -> web.Response:
    from api import openapi

    await _openapi_ready()
    return json_response(openapi.v3_root_json())


async def openapi_doc(request: web.Request) -> web.Response:
    from api import openapi

    await _openapi_ready()
    body = openapi.v3_document_json(request.match_info["path"])
    if body is None:
        raise errors.no_such_path()
    return json_response(body)


async def openapi_v2(request: web.Request) -> web.Response:
    """JSON, or the protobuf kubectl asks for (it cannot read anything else there: KUBECTL.md §4)."""
    from api import openapi

    await _openapi_ready()
    if openapi.wants_protobuf(request.headers.get("Accept")):
        return json_response(openapi.v2_protobuf(), content_type=openapi.V2_PROTOBUF)
    return json_response(openapi.v2_json())


async def healthy(request: web.Request) -> web.Response:
    if "verbose" in request.query:
        return web.Response(text=f"[+]ping ok\n[+]store ok\n{request.path.strip('/')} check passed\n")
    return web.Response(text="ok")


async def resource(request: web.Request) -> web.StreamResponse:
    return await request.app[HANDLER].handle(request)


class DeferredRoutes(web.AbstractResource):
    """Routes built on the first request that may need them, not at start: `build` imports their module
    (the streaming subresources pull in SPDY and the kubelet's exec sessions and logs, metrics.k8s.io
    psutil), which an empty start does not need. Requests under `prefix` are offered to `wanted`, a cheap
    test of the path; those it takes are resolved by the built routes, with aiohttp's own rules (a path
    that matches with another method falls through, its allowed methods kept for a 405)."""

    def __init__(self, prefix: str, wanted: Callable[[str], bool], build: Callable[[], list[web.RouteDef]]) -> None:
        super().__init__()
        self._prefix = prefix
        self._wanted = wanted
        self._build: Callable[[], list[web.RouteDef]] | None = build
        self._router = web.UrlDispatcher()

    @property
    def canonical(self) -> str:
        return self._prefix  # the router offers this resource the requests under it

    async def resolve(self, request: web.Request) -> tuple[web.UrlMappingMatchInfo | None, set[str]]:
        if not self._wanted(request.rel_url.path):
            return None, set()
        if self._build is not None:
            self._router.add_routes(self._build())
            self._build = None
        allowed: set[str] = set()
        for resource in self._router.resources():
            match, methods = await resource.resolve(request)
            if match is not None:
                return match, methods
            allowed |= methods
        return None, allowed

    def url_for(self, **kwargs: str) -> Any:
        raise NotImplementedError("deferred routes build no URLs")

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("deferred routes are not mounted in sub-applications")

    def get_info(self) -> Any:
        return {"prefix": self._prefix}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return len(self._router.routes())

    def __iter__(self) -> Any:
        return iter(self._router.routes())


def create_app(
    registry: Registry, routes: list[web.RouteDef] | None = None, middlewares: list[Any] | None = None,
    deferred: list[DeferredRoutes] | None = None, front: FrontDoor | None = None,
) -> web.Application:
    """The API application. `routes` lets other parts (e.g. pod environment) add their endpoints, and
    `deferred` those whose modules load on first use; `front` is checked by the error middleware before
    anything else (api/guard.py); `middlewares` run inside it (so their errors are Status answers), e.g.
    api/auth.py's."""
    app = web.Application(middlewares=[error_middleware(front), *(middlewares or ())], client_max_size=MAX_BODY + 1)
    app[HANDLER] = ResourceHandler(registry)
    app.router.add_get("/version", version)
    for path in ("/healthz", "/readyz", "/livez"):
        app.router.add_get(path, healthy)
    app.router.add_get("/api", core_discovery)
    app.router.add_get("/apis", group_discovery)
    app.router.add_get("/openapi/v2", openapi_v2)
    app.router.add_get("/openapi/v3", openapi_root)
    app.router.add_get("/openapi/v3/{path:.+}", openapi_doc)
    app.router.add_get("/api/{version}", core_resources)
    app.router.add_get("/apis/{group}", group_info)
    app.router.add_get("/apis/{group}/{version}", group_resources)
    if routes:
        app.router.add_routes(routes)
    # The core namespaced collections and objects (and the namespaces themselves), ahead of the deferred
    # routes under the same prefix: those serve only pods' subresources (one segment more), and would
    # otherwise be asked about every request, before the generic routes below.
    for path in ("", "/{name}", "/{namespace}/{plural}", "/{namespace}/{plural}/{name}"):
        app.router.add_route("*", "/api/v1/namespaces" + path, resource)
    for routes_later in deferred or ():
        app.router.register_resource(routes_later)
    app.router.add_route("*", "/api/{version}/{rest:.+}", resource)
    app.router.add_route("*", "/apis/{group}/{version}/{rest:.+}", resource)
    return app
