"""`GET /metrics`: the emulator's metrics in Prometheus' text format (emulator/observability/, docs/metrics.md),
and the API's own request metrics, recorded by the error middleware (api/app.py) from each request's
RequestInfo, with the API server's names, labels and verbs (GET, LIST, WATCH, POST, PUT, PATCH, APPLY,
DELETE, DELETECOLLECTION, CONNECT).

/metrics tells what the cluster does (which resources are used, how often, every service's traffic), so it
is guarded as the API server guards it: open when the API is; when tokens are required, only for a user
RBAC lets `get` the non-resource URL /metrics (the default `system:monitoring` role and group, or the admin).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.requestinfo import CONNECT_SUBRESOURCES, request_info
from emulator.observability import metrics

log = logging.getLogger("emulator.api")

PATH = "/metrics"
COMPONENT = "apiserver"
# the request verbs as the API server's metrics name them (its handlers' HTTP verbs, LIST and WATCH apart)
REPORTED_VERBS = {
    "get": "GET", "list": "LIST", "watch": "WATCH", "create": "POST", "update": "PUT", "patch": "PATCH",
    "delete": "DELETE", "deletecollection": "DELETECOLLECTION",
}
RESOURCE_ROUTES = ("/api/{version}/", "/apis/{group}/{version}/", "/api/v1/namespaces")

Labels = tuple[str, ...]  # metrics.API_LABELS' values
Recorders = tuple[Callable[[], None], Callable[[float], None]]

# (labels, code) -> the counter's and the histogram's children: a request pays a dictionary lookup, not two
# label lookups under prometheus_client's lock. Bounded: every label takes a bounded set of values.
_recorders: dict[tuple[Labels, int], Recorders] = {}


def routes() -> list[web.RouteDef]:
    async def scrape(request: web.Request) -> web.Response:
        # on the event loop, as the data paths that bump the plain counters: nothing moves while it reads
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get(PATH, scrape)]


def request_labels(request: web.Request) -> Labels:
    """verb, dry_run, group, version, resource, subresource, scope, component: as the API server labels a request."""
    info = request_info(request)
    target = info.target
    dry_run = _dry_run(request) if "dryRun" in request.query_string else ""
    if target is None:  # discovery, OpenAPI, health, /emulator/v1, /metrics: the path (its route's), as the API server
        return (request.method, dry_run, "", "", "", _route_path(request), "", COMPONENT)
    verb = REPORTED_VERBS.get(info.verb or "") or request.method
    if target.subresource in CONNECT_SUBRESOURCES:
        verb = "CONNECT"
    elif verb == "PATCH" and request.content_type.startswith("application/apply-patch"):
        verb = "APPLY"
    scope = "resource" if target.name or info.verb == "create" else "namespace" if target.namespace else "cluster"
    rt = target.rt
    return (verb, dry_run, rt.group, rt.version, rt.plural, target.subresource or "", scope, COMPONENT)


def _dry_run(request: web.Request) -> str:
    values = set(request.query.getall("dryRun", ()))
    return "" if not values else "All" if values == {"All"} else "invalid"


def _route_path(request: web.Request) -> str:
    """The route's template, never the raw path: a label's values stay few whatever paths clients try."""
    resource = request.match_info.route.resource
    if resource is None or resource.canonical.startswith(RESOURCE_ROUTES):
        return "other"  # no route (404), or an API path that names no resource
    return resource.canonical


def longrunning(request: web.Request) -> Callable[[], None] | None:
    """A watch, exec, attach, port-forward or logs request is counted in apiserver_longrunning_requests
    while it runs: counted now; what this returns uncounts it (None: not a long-running request)."""
    if not request.path.startswith(("/api/", "/apis/")):
        return None
    info = request_info(request)
    target = info.target
    if target is None or not (info.verb in metrics.LONGRUNNING_VERBS or target.subresource in metrics.LONGRUNNING_SUBRESOURCES):
        return None
    verb, _, group, version, resource, subresource, scope, component = request_labels(request)
    gauge = metrics.APISERVER_LONGRUNNING.labels(verb, group, version, resource, subresource, scope, component)
    gauge.inc()
    return gauge.dec


def observe(request: web.Request, status: int, seconds: float) -> None:
    """Count a finished request and its duration (the error middleware calls it for every request, its
    answer already decided: nothing here may fail it)."""
    try:
        labels = request_labels(request)
        recorders = _recorders.get((labels, status))
        if recorders is None:
            recorders = _recorders[(labels, status)] = (
                metrics.APISERVER_REQUESTS.labels(*labels, str(status)).inc,
                metrics.APISERVER_REQUEST_DURATION.labels(*labels).observe,
            )
        count, duration = recorders
        count()
        duration(seconds)
    except Exception:
        log.exception("request metrics not recorded for %s %s", request.method, request.path)
