"""The NetworkPolicy check endpoint: "may A reach B on port P?", answered with the reasons.

    GET /emulator/v1/networkpolicy/check?from=SOURCE&to=DESTINATION&port=PORT&protocol=TCP

- `from` / `to`: `namespace/pod`, a bare `pod` (in `namespace`, default `default`), or an IP address.
  An address that belongs to a pod is that pod, exactly as the proxy sees a connection from it; any
  other address (127.0.0.1, the host) is matched by `ipBlock` rules only.
- `port`: the destination pod's port (a Service's targetPort), as a number or a container-port name.
- `protocol`: TCP (default), UDP or SCTP.

The answer comes from the same index and the same pure decision the proxy enforces (emulator/policy.py):
`{"kind": "NetworkPolicyCheck", "allowed": ..., "reasons": [...], "policies": [...], "deniedBy": [...]}`.
Kubernetes has no such API, hence the `/emulator/v1` prefix. Errors are `Status` objects: 400 for
missing or malformed parameters, 404 for a pod that does not exist.
"""

from __future__ import annotations

from aiohttp import web

from api.http import json_response
from emulator import errors
from emulator.kinds import PODS
from emulator.netpol.engine import PolicyEngine, is_address, resolve_port
from emulator.netpol.semantics import PodRef
from emulator.netpol.validation import PROTOCOLS

PATH = "/emulator/v1/networkpolicy/check"


def routes(engine: PolicyEngine) -> list[web.RouteDef]:
    """The routes to hand to `create_app(registry, routes=...)`."""
    return [web.get(PATH, PolicyCheck(engine).get)]


class PolicyCheck:
    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine

    async def get(self, request: web.Request) -> web.Response:
        query = request.query
        default_namespace = query.get("namespace") or "default"
        self.engine.refresh_pods()
        source = self._endpoint("from", query.get("from"), default_namespace)
        destination = self._endpoint("to", query.get("to"), default_namespace)
        port_text = query.get("port")
        if not port_text:
            raise errors.bad_request("port is required: the destination pod's port, e.g. port=8080 or port=http")
        if isinstance(destination, str):
            destination = self.engine.pod_at(destination) or destination
        try:
            port = resolve_port(port_text, destination)
        except ValueError as exc:
            raise errors.bad_request(f"invalid port: {exc}") from None
        protocol = (query.get("protocol") or "TCP").upper()
        if protocol not in PROTOCOLS:
            raise errors.bad_request(f'unsupported protocol "{protocol}": use one of {", ".join(PROTOCOLS)}')
        return json_response(self.engine.explain(source, destination, port, protocol))

    def _endpoint(self, param: str, text: str | None, default_namespace: str) -> PodRef | str:
        if not text:
            raise errors.bad_request(
                f"{param} is required: a pod as namespace/name (or name, in ?namespace=), or an IP address"
            )
        text = text.strip()
        if is_address(text):
            return text
        namespace, _, name = text.rpartition("/")
        namespace = namespace or default_namespace
        if not name or "/" in namespace:
            raise errors.bad_request(f'{param}="{text}" is neither namespace/name nor an IP address')
        found = self.engine.pod(namespace, name)
        if found is None:
            raise errors.StatusError(
                404,
                "NotFound",
                f'pods "{name}" not found in namespace "{namespace}" (or it has no IP yet)',
                {"kind": PODS.plural, "name": name},
            )
        return found
