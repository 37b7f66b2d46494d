"""The environment the kubelet would give a pod's container, served over HTTP for local processes.

    GET /emulator/v1/namespaces/{namespace}/pods/{name}/env?container=C&format=json|dotenv|shell

Kubernetes has no such subresource (the kubelet computes the variables on the node), so the path lives
under `/emulator/v1` rather than pretending to be part of the core API. The semantics are
emulator/envvars.py's, read by `Registry.pod_environment`; this module only encodes the answer:

- `container`: defaults to the one named by the `kubectl.kubernetes.io/default-container` annotation,
  else the first container (what `kubectl exec` picks).
- `format=json` (default): `{"kind": "PodEnvironment", ..., "env": {NAME: value, ...}}`, in the order
  the variables would be set; `dotenv`: `NAME=value` lines; `shell`: `export NAME='value'` lines.
- `envFrom` and `valueFrom` (ConfigMaps, Secrets, the downward API's pod fields and resources) are
  resolved as the kubelet would for a container starting now (emulator/podenv.py).

Errors are Kubernetes `Status` objects: 404 for an unknown pod or container, and for a ConfigMap, Secret
or key the container needs and that is missing (what the kubelet reports as CreateContainerConfigError);
400 for an unknown format.
"""

from __future__ import annotations

from aiohttp import web

from api.http import json_response
from emulator import envvars, errors
from emulator.registry.registry import Registry

PATH = "/emulator/v1/namespaces/{namespace}/pods/{name}/env"
FORMATS = ("json", "dotenv", "shell")


def routes(registry: Registry) -> list[web.RouteDef]:
    """The routes to hand to `create_app(registry, routes=...)`."""
    return [web.get(PATH, PodEnvironment(registry).get)]


class PodEnvironment:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def get(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        wanted = request.query.get("format", "json") or "json"
        if wanted not in FORMATS:
            raise errors.bad_request(f'unsupported format "{wanted}": use one of {", ".join(FORMATS)}')
        container, env = self.registry.pod_environment(namespace, name, request.query.get("container"))
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
