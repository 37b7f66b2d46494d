"""The names a pod's processes resolve, served for local processes that play a pod (`emulator run`).

    GET /emulator/v1/namespaces/{namespace}/pods/{name}/hosts[?format=json]

The kubelet writes each running pod's /etc/hosts itself (emulator/kubelet/hosts.py); a process started
by `emulator run` fetches the same file here and refreshes it. Kubernetes has no such subresource, hence
the `/emulator/v1` prefix. The default answer is the hosts file as text; `format=json` gives
`{"kind": "PodNames", "hosts": ..., "hostname": ..., "zone": ..., "search": [...]}` (`search`: the
cluster part of the pod's resolv.conf search list; the nameservers are the caller's own).

Errors are Kubernetes `Status` objects: 404 for an unknown pod, 400 for an unknown format.
"""

from __future__ import annotations

from aiohttp import web

from api.http import json_response
from emulator import errors
from emulator.kinds import PODS
from emulator.kubelet.hosts import ClusterHosts, pod_hostname
from emulator.registry.registry import Registry

PATH = "/emulator/v1/namespaces/{namespace}/pods/{name}/hosts"
FORMATS = ("text", "json")


def routes(registry: Registry, hosts: ClusterHosts | None) -> list[web.RouteDef]:
    """The routes to hand to `create_app(registry, routes=...)`; none without the cluster's names."""
    if hosts is None:
        return []
    return [web.get(PATH, PodHosts(registry, hosts).get)]


class PodHosts:
    def __init__(self, registry: Registry, hosts: ClusterHosts) -> None:
        self.registry = registry
        self.hosts = hosts

    async def get(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        wanted = request.query.get("format", "text") or "text"
        if wanted not in FORMATS:
            raise errors.bad_request(f'unsupported format "{wanted}": use one of {", ".join(FORMATS)}')
        pod = self.registry.get(PODS, namespace, name)
        text = self.hosts.hosts_for(pod)
        if wanted == "text":
            return web.Response(text=text, content_type="text/plain", charset="utf-8")
        zone = self.hosts.zone
        return json_response({
            "kind": "PodNames",
            "apiVersion": "emulator/v1",
            "metadata": {"name": name, "namespace": namespace},
            "hosts": text,
            "hostname": pod_hostname(pod),
            "zone": zone,
            "search": [f"{namespace}.svc.{zone}", f"svc.{zone}", zone],
        })
