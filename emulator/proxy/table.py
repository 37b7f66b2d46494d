"""The proxy's routing index, kept up to date from store events (Service, EndpointSlice, and Endpoints
for services without slices).

Everything a connection needs is prepared here when objects change, so that accepting a connection is a
dictionary lookup: each service port becomes one `Route` (mode, balancer with the ready endpoints), and
each address the proxy must listen on (`clusterIP:port`, `nodeAddress:nodePort`, LoadBalancer ingress
and external IPs) maps to the route behind it. Routes are updated in place, so listeners that are already
bound keep serving the new endpoints without being rebound.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from emulator.kinds.endpointslice import ENDPOINT_SLICES, SERVICE_NAME_LABEL
from emulator.kinds.service import ServicePortView, ServiceView
from emulator.routing.model import ServiceBackend
from emulator.store.events import DELETED, Event

from .balancer import Backend, Balancer

log = logging.getLogger("emulator.proxy")

SERVICES = "services"
ENDPOINTS = "endpoints"

ServiceKey = tuple[str, str]  # (namespace, name)
RouteKey = tuple[str, str, int, str]  # (namespace, name, service port, protocol)
ListenerKey = tuple[str, int, str]  # (address, port, protocol)


@dataclass(slots=True, eq=False)
class Route:
    """One port of one service, as the proxy serves it."""

    namespace: str
    service: str
    port: int
    protocol: str  # "TCP" | "UDP"
    port_name: str
    mode: str  # "tcp" | "http" | "udp"
    balancer: Balancer = field(default_factory=Balancer)
    app_protocol: str = ""  # the service port's appProtocol, lower case (the gateway's HTTP/2 reads it)

    @property
    def label(self) -> str:
        """How messages name this route: `ns/name:port`."""
        return f"{self.namespace}/{self.service}:{self.port}"


def port_mode(port: ServicePortView) -> str:
    """HTTP mode for ports that declare HTTP (`appProtocol: http`, a name `http` or `http-*`), the way
    Istio and friends read port names; a byte pump for everything else."""
    if port.protocol == "UDP":
        return "udp"
    app = port.app_protocol.lower()
    name = port.name.lower()
    if app == "http" or name == "http" or name.startswith("http-"):
        return "http"
    return "tcp"


def _endpoint_groups(endpoints: dict[str, Any] | None) -> Iterator[tuple[list[dict[str, Any]], list[str]]]:
    """(ports, ready addresses) of each Endpoints subset."""
    for subset in (endpoints or {}).get("subsets") or []:
        yield subset.get("ports") or [], [addr.get("ip") for addr in subset.get("addresses") or []]


def _slice_group(slice_: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(ports, ready addresses) of an EndpointSlice (ready unset counts as ready, as in discovery/v1)."""
    ready = [
        ip for endpoint in slice_.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") is not False
        for ip in endpoint.get("addresses") or []
    ]
    return slice_.get("ports") or [], ready


def _backends(
    groups: Iterable[tuple[list[dict[str, Any]], list[str]]], port_name: str, protocol: str, single_port: bool,
) -> list[Backend]:
    """Ready endpoint addresses for one service port. The endpoints controller has already resolved named
    target ports, so the backend port is the Endpoints (or slice) port with the service port's name."""
    out: list[Backend] = []
    seen: set[Backend] = set()
    for ports, ips in groups:
        target = None
        for p in ports:
            if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol:
                target = p.get("port")
                break
        if target is None and single_port and len(ports) == 1 and (ports[0].get("protocol") or "TCP") == protocol:
            # Hand-written Endpoints for a one-port service often leave the port unnamed.
            target = ports[0].get("port")
        if not target:
            continue
        for ip in ips:
            if ip and (ip, target) not in seen:
                seen.add((ip, target))
                out.append((ip, int(target)))
    return out


class ProxyTable:
    """Service ports → routes, listen addresses → routes, gateway host names → routes."""

    def __init__(
        self, node_address: str = "127.0.0.1", zone: str = "cluster.local", default_namespace: str = "default"
    ) -> None:
        self.node_address = node_address
        self.zone = zone.strip(".").lower()
        self.default_namespace = default_namespace
        self._services: dict[ServiceKey, ServiceView] = {}
        # A service's backends come from its EndpointSlices (Endpoints hold at most 1,000 addresses); its
        # Endpoints (kept as stored bytes) are read only while it has no slice.
        self._endpoints: dict[ServiceKey, bytes] = {}
        self._slices: dict[ServiceKey, dict[str, tuple[list[dict[str, Any]], list[str]]]] = {}  # name → (ports, ready IPs)
        self._routes: dict[ServiceKey, list[Route]] = {}  # in the order of spec.ports
        self._listen_keys: dict[ServiceKey, list[ListenerKey]] = {}
        self.listeners: dict[ListenerKey, Route] = {}  # each address to the route it serves
        self._claims: dict[ListenerKey, list[Route]] = {}  # each address to every route that wants it, first wins
        # the addresses whose entry in `listeners` changed since the proxy last took them (`take_changed`):
        # a service create or delete rebinds its own addresses, not a walk over every listener
        self.changed: set[ListenerKey] = set()
        self._gateway_cache: dict[bytes, Route | None] = {}

    # -- events -------------------------------------------------------------------------------------

    def apply(self, event: Event) -> bool:
        """Take one store event into the index. True when `listeners` changed (an address appeared or
        went away, or is served by another route): only then do sockets need reconciling."""
        if event.resource == SERVICES:
            key = (event.namespace, event.name)
            if event.type == DELETED:
                self._services.pop(key, None)
            else:
                self._services[key] = event.view(ServiceView.of)
            return self._rebuild_service(key)
        if event.resource == ENDPOINTS:
            key = (event.namespace, event.name)
            if event.type == DELETED:
                self._endpoints.pop(key, None)
            else:
                self._endpoints[key] = event.raw
            if key not in self._slices:
                self._refresh_backends(key)
        elif event.resource == ENDPOINT_SLICES.key:
            service = (event.obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
            if not service:
                return False
            key = (event.namespace, str(service))
            if event.type == DELETED:
                slices = self._slices.get(key, {})
                slices.pop(event.name, None)
                if not slices:
                    self._slices.pop(key, None)
            else:
                self._slices.setdefault(key, {})[event.name] = _slice_group(event.obj)
            self._refresh_backends(key)
        return False

    def _rebuild_service(self, key: ServiceKey) -> bool:
        self._gateway_cache.clear()
        svc = self._services.get(key)
        old = {(r.port, r.protocol): r for r in self._routes.pop(key, [])}
        old_keys = self._listen_keys.pop(key, [])
        routes: list[Route] = []
        wanted: dict[ListenerKey, Route] = {}
        if svc is not None and svc.cluster_ip is not None:
            for p in svc.ports:
                protocol, port = p.protocol, p.port
                if protocol not in ("TCP", "UDP") or port <= 0:
                    continue  # SCTP: not proxied (documented)
                route = old.pop((port, protocol), None)
                if route is None:
                    route = Route(key[0], key[1], port, protocol, p.name, port_mode(p))
                else:
                    route.port_name = p.name
                    route.mode = port_mode(p)
                route.app_protocol = p.app_protocol.lower()
                route.balancer.set_affinity(svc.affinity_timeout)
                routes.append(route)
                addresses = [(svc.cluster_ip, port)]
                if svc.node_ports and p.node_port:
                    addresses.append((self.node_address, p.node_port))
                addresses += [(ip, port) for ip in svc.ingress_ips]
                for ip, lport in addresses:
                    wanted.setdefault((ip, lport, protocol), route)
        for route in old.values():
            # A port that is gone: connections that still hold its route (keep-alive HTTP clients) must
            # not keep reaching the old endpoints; with none left they answer 503.
            route.balancer.set_backends([])
        before = {lk: self.listeners.get(lk) for lk in (*old_keys, *wanted)}
        for lk in old_keys:
            if lk not in wanted:
                self._unclaim(lk, key)
        for lk, route in wanted.items():
            self._claim(lk, route)
        if routes:
            self._routes[key] = routes
            self._listen_keys[key] = list(wanted)
            self._refresh_backends(key)
        changed = [lk for lk, route in before.items() if self.listeners.get(lk) is not route]
        self.changed.update(changed)
        return bool(changed)

    def take_changed(self) -> set[ListenerKey]:
        """The addresses whose route changed (appeared, went away, or another route serves them) since
        the last call; the caller brings those sockets in line."""
        changed, self.changed = self.changed, set()
        return changed

    def _claim(self, lk: ListenerKey, route: Route) -> None:
        """`route` wants `lk`. The first service to claim an address keeps it; later ones queue behind
        it (reported by `conflicts`) and take over, in order, when it lets go."""
        claims = self._claims.setdefault(lk, [])
        for i, claim in enumerate(claims):
            if (claim.namespace, claim.service) == (route.namespace, route.service):
                claims[i] = route  # the same service again: it keeps its place
                break
        else:
            claims.append(route)
            if len(claims) > 1:
                problem = self._conflict(lk, route, claims[0])
                log.warning("%s; fix: %s", problem["message"], problem["fix"])
        self.listeners[lk] = claims[0]

    def _unclaim(self, lk: ListenerKey, key: ServiceKey) -> None:
        """Service `key` no longer wants `lk`: it goes to the next claimant, if any, else away."""
        claims = [r for r in self._claims.get(lk, ()) if (r.namespace, r.service) != key]
        if claims:
            self._claims[lk] = claims
            self.listeners[lk] = claims[0]
        else:
            self._claims.pop(lk, None)
            self.listeners.pop(lk, None)

    def conflicts(self) -> list[dict[str, Any]]:
        """Addresses more than one service asks for, one problem per service left out (for the API)."""
        return [
            self._conflict(lk, route, claims[0])
            for lk, claims in sorted(self._claims.items())
            if len(claims) > 1
            for route in claims[1:]
        ]

    @staticmethod
    def _conflict(lk: ListenerKey, route: Route, owner: Route) -> dict[str, Any]:
        address, port, protocol = lk
        return {
            "address": address,
            "port": port,
            "protocol": protocol,
            "for": f"service {route.label}",
            "reason": "AddressConflict",
            "message": f"cannot listen on {address}:{port}/{protocol} for service {route.label}: service {owner.label} already uses it",
            "fix": f"give one of the two services another address or port (spec.externalIPs, spec.ports, the load balancer's ingress IP), or delete one; {route.label} takes over when {owner.label} lets go",
        }

    def _refresh_backends(self, key: ServiceKey) -> None:
        routes = self._routes.get(key)
        if not routes:
            return
        slices = self._slices.get(key)
        if slices:
            groups = list(slices.values())
        else:
            raw = self._endpoints.get(key)
            groups = list(_endpoint_groups(orjson.loads(raw) if raw is not None else None))
        single = len(routes) == 1
        for route in routes:
            route.balancer.set_backends(_backends(groups, route.port_name, route.protocol, single))

    # -- lookups ------------------------------------------------------------------------------------

    def routes_of(self, namespace: str, name: str) -> list[Route]:
        return self._routes.get((namespace, name), [])

    def backend_route(self, backend: ServiceBackend) -> tuple[Route | None, str]:
        """The route of a Gateway API or Ingress backend's service port (by number or by name), or None and
        why not."""
        routes = self.routes_of(backend.namespace, backend.service)
        for route in routes:
            if route.protocol == "TCP" and (
                route.port == backend.port if backend.port is not None else route.port_name == backend.port_name
            ):
                return route, ""
        name = f"{backend.namespace}/{backend.service}"
        if not routes:
            return None, f"service {name} does not exist (or has no cluster IP)"
        wanted = backend.port if backend.port is not None else repr(backend.port_name)
        return None, f"service {name} has no TCP port {wanted}"

    def all_routes(self) -> list[Route]:
        return [r for routes in self._routes.values() for r in routes]

    def gateway_route(self, host: bytes) -> Route | None:
        """The route for a Host header on the gateway: `web` (default namespace), `web.ns`, `web.ns.svc`,
        `web.ns.svc.<zone>`, each optionally with `.localhost` (which every browser resolves to loopback)
        and `:port` naming a service port. Cached per raw header value, so the parse runs once per
        distinct Host."""
        try:
            return self._gateway_cache[host]
        except KeyError:
            pass
        route = self._parse_host(host)
        if len(self._gateway_cache) > 4096:
            self._gateway_cache.clear()  # bound the cache against clients sending random hosts
        self._gateway_cache[host] = route
        return route

    def _parse_host(self, host: bytes) -> Route | None:
        text = host.decode("latin-1").strip().lower()
        port: int | None = None
        if ":" in text:
            text, _, port_text = text.rpartition(":")
            port = int(port_text) if port_text.isdigit() else None
        text = text.rstrip(".")
        if text.endswith(".localhost"):
            text = text[: -len(".localhost")]
        labels = text.split(".")
        zone = self.zone.split(".") if self.zone else []
        if len(labels) >= 3 and labels[2] == "svc" and labels[3:] in ([], zone):
            labels = labels[:2]
        if len(labels) == 1:
            namespace, name = self.default_namespace, labels[0]
        elif len(labels) == 2:
            name, namespace = labels
        else:
            return None
        routes = [r for r in self._routes.get((namespace, name), []) if r.protocol == "TCP"]
        if not routes:
            return None
        if port is not None:
            for r in routes:
                if r.port == port:
                    return r
        # No port, or the gateway's own port: the service's first port, as `curl http://web.ns/` means.
        return routes[0]
