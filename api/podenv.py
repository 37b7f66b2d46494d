"""The environment the kubelet would give a pod's container, served over HTTP for local processes.

    GET /emulator/v1/namespaces/{namespace}/pods/{name}/env?container=C&format=json|dotenv|shell

Kubernetes has no such subresource (the kubelet computes the variables on the node), so the path lives
under `/emulator/v1` rather than pretending to be part of the core API. The semantics are
emulator/envvars.py's; this module only reads the store and writes the answer:

- `container`: defaults to the one named by the `kubectl.kubernetes.io/default-container` annotation,
  else the first container (what `kubectl exec` picks).
- `format=json` (default): `{"kind": "PodEnvironment", ..., "env": {NAME: value, ...}}`, in the order
  the variables would be set; `dotenv`: `NAME=value` lines; `shell`: `export NAME='value'` lines.
- `valueFrom.fieldRef` entries are resolved from the pod (the downward API's pod fields); other
  `valueFrom` sources (ConfigMaps, Secrets, resources) do not exist here and are left out.

Errors are Kubernetes `Status` objects: 404 for an unknown pod or container, 400 for an unknown format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from api.http import json_response
from emulator import envvars, errors
from emulator.registry.registry import Registry
from emulator.resources import PODS, SERVICES

PATH = "/emulator/v1/namespaces/{namespace}/pods/{name}/env"
FORMATS = ("json", "dotenv", "shell")
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
TEXT = "text/plain; charset=utf-8"

# `metadata.labels['app']`, `metadata.annotations['x']`: the downward API's subscripted field paths.
_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['([^']*)'\]")


def routes(registry: Registry) -> list[web.RouteDef]:
    """The routes to hand to `create_app(registry, routes=...)`."""
    return [web.get(PATH, PodEnvironment(registry).get)]


class PodEnvironment:
    def __init__(self, registry: Registry) -> None:
        self.store = registry.store

    async def get(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        wanted = request.query.get("format", "json") or "json"
        if wanted not in FORMATS:
            raise errors.bad_request(f'unsupported format "{wanted}": use one of {", ".join(FORMATS)}')
        pod = self.store.get(PODS.key, namespace, name)
        if pod is None:
            raise errors.not_found(PODS.key, name)
        container = request.query.get("container") or default_container(pod)
        if container is None:
            raise errors.StatusError(404, "NotFound", f'pod "{name}" has no containers')
        # Sorted by name so that the output is stable; the kubelet's own order is random.
        services = sorted(self.store.objects(SERVICES.key, namespace), key=lambda s: s["metadata"]["name"])
        kubernetes = self.store.get(SERVICES.key, "default", "kubernetes")
        try:
            env = envvars.container_env(pod, container, services, kubernetes, lambda source: field_ref(pod, source))
        except KeyError:
            raise errors.StatusError(
                404, "NotFound", f'container "{container}" not found in pod "{name}"', {"kind": "pods", "name": name}
            ) from None
        if wanted == "dotenv":
            return web.Response(text=envvars.to_dotenv(env), content_type="text/plain", charset="utf-8")
        if wanted == "shell":
            return web.Response(text=envvars.to_shell_exports(env), content_type="text/plain", charset="utf-8")
        return json_response(
            {
                "kind": "PodEnvironment",
                "apiVersion": "emulator/v1",
                "metadata": {"name": name, "namespace": namespace},
                "container": container,
                "env": env,
            }
        )


def default_container(pod: Mapping[str, Any]) -> str | None:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    named = annotations.get(DEFAULT_CONTAINER_ANNOTATION)
    if named and any(c.get("name") == named for c in containers):
        return str(named)
    return str(containers[0]["name"]) if containers else None


def field_ref(pod: Mapping[str, Any], source: Mapping[str, Any]) -> str | None:
    """The value of a `valueFrom.fieldRef`, for the pod fields the downward API exposes; None otherwise."""
    ref = source.get("fieldRef")
    if not isinstance(ref, Mapping):
        return None
    path = ref.get("fieldPath") or ""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    subscript = _SUBSCRIPT.fullmatch(path)
    if subscript:
        # a missing key reads as empty, as in the kubelet
        return str((meta.get(subscript.group(1)) or {}).get(subscript.group(2)) or "")
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(a["ip"] for a in status.get("hostIPs") or [] if a.get("ip")),
        "status.podIPs": ",".join(a["ip"] for a in status.get("podIPs") or [] if a.get("ip")),
    }
    if path not in simple:
        return None
    value = simple[path]
    return "" if value is None else str(value)
