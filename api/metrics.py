"""metrics.k8s.io/v1beta1, as metrics-server serves it: what `kubectl top node|pod` and the Python client's
`kubernetes.utils.get_*_metrics` read.

    GET /apis/metrics.k8s.io/v1beta1/nodes[/{name}]
    GET /apis/metrics.k8s.io/v1beta1/pods                              (all namespaces)
    GET /apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods[/{name}]

The kinds (emulator/kinds/nodemetrics.py, podmetrics.py) are in `KINDS` for discovery, RBAC and the
verbs (get, list: anything else is the generic handler's 405); they are never stored. These handlers,
registered before the generic one, answer from emulator/kubelet/stats.py: the node's usage is the
machine's, a pod's the processes of its running containers (the local kubelet's); a pod whose containers
do not run has no metrics (404 `podmetrics.metrics.k8s.io "ns/name" not found`, as metrics-server says).
Label and field selectors filter the pods and nodes as metrics-server does, from the objects themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from aiohttp import web

from api import tables
from api.discovery import table_content_type, table_version
from api.http import flag, json_response
from api.rest import include_object
from emulator import errors
from emulator.kinds import NODES, PODS, ResourceType
from emulator.kinds.node import NODE_NAME
from emulator.kinds.nodemetrics import NODE_METRICS
from emulator.kinds.podmetrics import POD_METRICS
from emulator.kubelet.stats import Stats, Usage, cpu_quantity, go_duration, memory_quantity
from emulator.registry.registry import Registry
from emulator.timestamps import rfc3339

PREFIX = "/apis/metrics.k8s.io/v1beta1"


class RunningContainers(Protocol):
    """What this needs of the kubelet (emulator/kubelet/kubelet.py's `Kubelet` is one)."""

    def running_pids(self) -> dict[tuple[str, str, str], int]: ...


def routes(registry: Registry, kubelet: Callable[[], RunningContainers | None], stats: Stats) -> list[web.RouteDef]:
    """The routes to hand to `create_app(..., routes=...)`; `kubelet()` None when pods are records only."""
    api = MetricsApi(registry, kubelet, stats)
    return [
        web.get(f"{PREFIX}/nodes", api.nodes),
        web.get(f"{PREFIX}/nodes/{{name}}", api.node),
        web.get(f"{PREFIX}/pods", api.pods),
        web.get(f"{PREFIX}/namespaces/{{namespace}}/pods", api.pods),
        web.get(f"{PREFIX}/namespaces/{{namespace}}/pods/{{name}}", api.pod),
    ]


def _usage(usage: Usage) -> dict[str, str]:
    return {"cpu": cpu_quantity(usage.cpu_nanocores), "memory": memory_quantity(usage.memory_bytes)}


def node_metrics(node: dict[str, Any], usage: Usage) -> dict[str, Any]:
    meta = node.get("metadata") or {}
    return {
        "kind": NODE_METRICS.kind, "apiVersion": NODE_METRICS.api_version,
        "metadata": {"name": meta.get("name", ""), "creationTimestamp": rfc3339(usage.timestamp),
                     **({"labels": meta["labels"]} if meta.get("labels") else {})},
        "timestamp": rfc3339(usage.timestamp), "window": go_duration(usage.window), "usage": _usage(usage),
    }


def pod_metrics(pod: dict[str, Any], containers: list[tuple[str, Usage]]) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    first = containers[0][1]
    return {
        "kind": POD_METRICS.kind, "apiVersion": POD_METRICS.api_version,
        "metadata": {"name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
                     "creationTimestamp": rfc3339(first.timestamp),
                     **({"labels": meta["labels"]} if meta.get("labels") else {})},
        "timestamp": rfc3339(first.timestamp), "window": go_duration(max(u.window for _, u in containers)),
        "containers": [{"name": name, "usage": _usage(usage)} for name, usage in containers],
    }


class MetricsApi:
    def __init__(self, registry: Registry, kubelet: Callable[[], RunningContainers | None], stats: Stats) -> None:
        self.registry = registry
        self.kubelet = kubelet
        self.stats = stats

    # -- nodes ---------------------------------------------------------------------------------------

    async def _node_items(self, request: web.Request, name: str | None) -> list[dict[str, Any]]:
        keep = self.registry.make_filter(NODES, request.query.get("labelSelector"), request.query.get("fieldSelector"))
        nodes = [orjson.loads(raw) for raw in self.registry.list_raw(NODES, "", keep)]
        # the one node a kubelet reports from: the emulator's (other Node objects are records)
        ours = [n for n in nodes if n["metadata"]["name"] == NODE_NAME and name in (None, NODE_NAME)]
        if not ours:
            return []
        usage = await asyncio.to_thread(self.stats.node)
        return [node_metrics(n, usage) for n in ours]

    async def nodes(self, request: web.Request) -> web.Response:
        _refuse_watch(request, NODE_METRICS)
        return self._answer(request, NODE_METRICS, await self._node_items(request, None), listing=True)

    async def node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        items = await self._node_items(request, name)
        if not items:
            raise errors.not_found(f"nodemetrics.{NODE_METRICS.group}", name)
        return self._answer(request, NODE_METRICS, items, listing=False)

    # -- pods ----------------------------------------------------------------------------------------

    async def _pod_items(self, request: web.Request, namespace: str | None, name: str | None) -> list[dict[str, Any]]:
        kubelet = self.kubelet()
        running = kubelet.running_pids() if kubelet is not None else {}
        wanted = {key: pid for key, pid in running.items()
                  if namespace in (None, key[0]) and name in (None, key[1])}
        if not wanted:
            return []
        keep = self.registry.make_filter(PODS, request.query.get("labelSelector"), request.query.get("fieldSelector"))
        usage = await asyncio.to_thread(self.stats.collect, wanted)
        by_pod: dict[tuple[str, str], list[tuple[str, Usage]]] = {}
        for (ns, pod_name, container), measured in sorted(usage.items()):
            by_pod.setdefault((ns, pod_name), []).append((container, measured))
        items = []
        for (ns, pod_name), containers in by_pod.items():
            try:
                pod = self.registry.get(PODS, ns, pod_name)
            except errors.StatusError:
                continue  # deleted meanwhile
            if keep is None or keep(pod):
                items.append(pod_metrics(pod, containers))
        return items

    async def pods(self, request: web.Request) -> web.Response:
        _refuse_watch(request, POD_METRICS)
        items = await self._pod_items(request, request.match_info.get("namespace"), None)
        return self._answer(request, POD_METRICS, items, listing=True)

    async def pod(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        items = await self._pod_items(request, namespace, name)
        if not items:
            raise errors.not_found(f"podmetrics.{POD_METRICS.group}", f"{namespace}/{name}")
        return self._answer(request, POD_METRICS, items, listing=False)

    # -- answers -------------------------------------------------------------------------------------

    def _answer(self, request: web.Request, rt: ResourceType, items: list[dict[str, Any]], listing: bool) -> web.Response:
        version = table_version(request.headers.get("Accept"))
        if version:
            table = tables.table(rt, items, "", include_object(request), version=version)
            return json_response(table, content_type=table_content_type(version))
        if not listing:
            return json_response(items[0])
        return json_response({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": {}, "items": items})


def _refuse_watch(request: web.Request, rt: ResourceType) -> None:
    if flag(request, "watch"):
        raise errors.method_not_allowed(
            f"the server does not allow this method on the requested resource (GET {request.path}): "
            f"{rt.key} supports get, list"
        )
