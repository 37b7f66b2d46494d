"""The DNS index: services, endpoints and namespaces as dicts kept current by store events, plus the
cache of packed answers, invalidated precisely by the events that change what an answer read.

Every answer is computed while the index records what it looked at (a service, a namespace's
existence, the owner of an address); an event invalidates exactly the cached answers that read what
it changed. The hot path never computes anything: it finds the packed bytes by question.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import orjson

from emulator.dns.names import endpoint_label
from emulator.dns.records import (
    Answer,
    EndpointRecord,
    GatewayNames,
    PortRecord,
    ServiceRecord,
    Zone,
    answer_query,
    encodable_name,
    normalize_ip,
)
from emulator.dns.settings import DnsSettings
from emulator.kinds.endpointslice import ENDPOINT_SLICES, SERVICE_NAME_LABEL
from emulator.kinds.service import ServiceView
from emulator.store.events import DELETED, Event

log = logging.getLogger("emulator.dns")

ServiceKey = tuple[str, str]  # (namespace, name)


class DnsIndex:
    """Implements `records.ClusterView`; `apply` is a store listener."""

    def __init__(self, settings: DnsSettings | None = None) -> None:
        self.settings = settings or DnsSettings()
        s = self.settings
        self.zone = Zone(s.zone.strip(".").lower(), s.ttl, s.default_namespace.lower(), int(time.time()) & 0xFFFFFFFF)
        self._services: dict[ServiceKey, ServiceRecord] = {}
        self._endpoints: dict[ServiceKey, tuple[EndpointRecord, ...]] = {}
        # A service's endpoints come from its EndpointSlices (Endpoints hold at most 1,000 addresses);
        # its Endpoints are read only while it has no slice (kept as stored bytes until then).
        self._slice_records: dict[ServiceKey, dict[str, tuple[EndpointRecord, ...]]] = {}
        self._endpoints_raw: dict[ServiceKey, bytes] = {}
        self._namespaces: set[str] = set()
        self._services_per_namespace: Counter[str] = Counter()
        self._cluster_ip_owner: dict[str, ServiceKey] = {}
        self._endpoint_ip_owners: dict[str, set[ServiceKey]] = {}
        # Packed answers by question bytes (lower-cased name + type + class): read by the server's hot path.
        self.cache: dict[bytes, Any] = {}
        self._readers: dict[Hashable, set[bytes]] = {}  # what an answer read → the cached answers that read it
        self._reads: set[Hashable] | None = None
        self.gateway_names = GatewayNames(domains=s.gateway_domains)

    # -- store events ------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Store listener: update the index and drop the cached answers the change makes stale."""
        handler = _HANDLERS.get(event.resource)
        if handler is None:
            return
        try:
            handler(self, event)
        except Exception:  # a malformed object must not break the store's event delivery
            log.exception("could not index %r", event)

    def _apply_service(self, event: Event) -> None:
        key = (event.namespace.lower(), event.name.lower())
        old = self._services.get(key)
        new = None if event.type == DELETED else service_record(event.view(ServiceView.of))
        if old == new:
            return
        if new is not None and new.unanswerable:
            # Once per change, not per query: its name answers SERVFAIL until the service is fixed.
            log.warning(
                "service %s/%s: externalName %r is not a DNS name (a label over 63 characters, an empty label, "
                "or over 253 in all); its DNS name answers SERVFAIL",
                key[0], key[1], _shortened(new.external_name),
            )
        existed = self.namespace_exists(key[0])
        changed: list[Hashable] = [("svc", *key)]
        if old is not None:
            self._services_per_namespace[key[0]] -= 1
            for ip in old.cluster_ips:
                if self._cluster_ip_owner.get(ip) == key:
                    del self._cluster_ip_owner[ip]
                changed.append(("ip", ip))
        if new is None:
            self._services.pop(key, None)
        else:
            self._services[key] = new
            self._services_per_namespace[key[0]] += 1
            for ip in new.cluster_ips:
                self._cluster_ip_owner[ip] = key
                changed.append(("ip", ip))
        if existed != self.namespace_exists(key[0]):
            changed.append(("ns", key[0]))
        self._invalidate(changed)

    def _apply_endpoints(self, event: Event) -> None:
        key = (event.namespace.lower(), event.name.lower())
        if event.type == DELETED:
            self._endpoints_raw.pop(key, None)
        else:
            self._endpoints_raw[key] = event.raw
        if key in self._slice_records:
            return  # its slices say it (and say all of it: Endpoints stop at 1,000 addresses)
        old = self._endpoints.get(key, ())
        new = () if event.type == DELETED else endpoint_records(event.obj)
        if old != new:
            self._replace_records(key, {ep.ip for ep in old}, {ep.ip for ep in new}, new)

    def _apply_slice(self, event: Event) -> None:
        service = ((event.obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not service:
            return
        key = (event.namespace.lower(), str(service).lower())
        slices = self._slice_records.get(key)
        if slices is None:
            if event.type == DELETED:
                return
            # the first slice: it replaces what the Endpoints said
            slices = self._slice_records[key] = {}
            old = self._endpoints.get(key, ())
        else:
            old = slices.get(event.name, ())
        new = () if event.type == DELETED else slice_records(event.obj)
        if event.type == DELETED:
            slices.pop(event.name, None)
        else:
            if old == new and event.name in slices:
                return
            slices[event.name] = new
        if slices:
            effective = tuple(ep for records in slices.values() for ep in records)
        else:  # no slice left: back to the Endpoints, if any
            del self._slice_records[key]
            raw = self._endpoints_raw.get(key)
            effective = new = endpoint_records(orjson.loads(raw)) if raw is not None else ()
        self._replace_records(key, {ep.ip for ep in old}, {ep.ip for ep in new}, effective)

    def _replace_records(self, key: ServiceKey, before: set[str], after: set[str], records: tuple[EndpointRecord, ...]) -> None:
        """The service's endpoints are now `records`; the addresses in `before` and `after` changed."""
        changed: list[Hashable] = [("svc", *key)]
        still = {ep.ip for ep in records} if before - after else after
        for ip in before - still:
            owners = self._endpoint_ip_owners.get(ip)
            if owners is not None:
                owners.discard(key)
                if not owners:
                    del self._endpoint_ip_owners[ip]
        if records:
            self._endpoints[key] = records
        else:
            self._endpoints.pop(key, None)
        for ip in after:
            self._endpoint_ip_owners.setdefault(ip, set()).add(key)
        changed += [("ip", ip) for ip in before | after]
        self._invalidate(changed)

    def _apply_namespace(self, event: Event) -> None:
        name = event.name.lower()
        existed = self.namespace_exists(name)
        if event.type == DELETED:
            self._namespaces.discard(name)
        else:
            self._namespaces.add(name)
        if existed != self.namespace_exists(name):
            self._invalidate([("ns", name)])

    def _invalidate(self, changed: list[Hashable]) -> None:
        cache, readers = self.cache, self._readers
        for fact in changed:
            for question in readers.pop(fact, ()):
                cache.pop(question, None)

    # -- answers -----------------------------------------------------------------------------------

    def answer(self, labels: tuple[str, ...], qtype: int) -> tuple[Answer | None, frozenset[Hashable]]:
        """The answer for a lower-case name, and what it read (to pass to `remember`)."""
        reads: set[Hashable] = set()
        self._reads = reads
        try:
            return answer_query(labels, qtype, self, self.zone), frozenset(reads)
        finally:
            self._reads = None

    def remember(self, question: bytes, packed: Any, reads: frozenset[Hashable]) -> None:
        """Cache a packed answer until an event changes something it read."""
        if len(self.cache) >= self.settings.max_cached_answers:
            # Bounded memory under floods of distinct names; starting over is cheaper than LRU upkeep.
            self.cache.clear()
            self._readers.clear()
        self.cache[question] = packed
        for fact in reads:
            self._readers.setdefault(fact, set()).add(question)

    # -- records.ClusterView -------------------------------------------------------------------------

    def service(self, namespace: str, name: str) -> ServiceRecord | None:
        if self._reads is not None:
            self._reads.add(("svc", namespace, name))
        return self._services.get((namespace, name))

    def ready_endpoints(self, namespace: str, name: str) -> Sequence[EndpointRecord]:
        if self._reads is not None:
            self._reads.add(("svc", namespace, name))
        return self._endpoints.get((namespace, name), ())

    def namespace_exists(self, namespace: str) -> bool:
        if self._reads is not None:
            self._reads.add(("ns", namespace))
        # A service implies its namespace, even when namespace events are not delivered (tests, replays).
        return namespace in self._namespaces or self._services_per_namespace[namespace] > 0

    def service_with_cluster_ip(self, ip: str) -> ServiceRecord | None:
        if self._reads is not None:
            self._reads.add(("ip", ip))
        key = self._cluster_ip_owner.get(ip)
        return None if key is None else self._services.get(key)

    def endpoint_names_for(self, ip: str) -> list[tuple[str, str, str]]:
        if self._reads is not None:
            self._reads.add(("ip", ip))
        names = []
        for key in sorted(self._endpoint_ip_owners.get(ip, ())):
            for ep in self._endpoints.get(key, ()):
                if ep.ip == ip:
                    names.append((key[0], key[1], ep.label))
        return names

    def gateway_address(self, name: str) -> str | None:
        return self.gateway_names.address_for(name, self.zone.name)

    def set_gateway_names(self, address: str, exact: frozenset[str], wildcards: tuple[tuple[str, bool], ...]) -> None:
        """The hostnames Ingresses and routes serve now (from the routing index), and the gateway's address.
        Every cached answer read them (any name may become one), so a change starts the cache over."""
        names = GatewayNames(address, exact, wildcards, self.settings.gateway_domains)
        if names != self.gateway_names:
            self.gateway_names = names
            self.cache.clear()
            self._readers.clear()

    def __len__(self) -> int:
        return len(self._services)


def service_record(service: ServiceView) -> ServiceRecord:
    namespace = (service.namespace or "default").lower()
    name = service.name.lower()
    ports = tuple(PortRecord(p.name.lower(), p.protocol.lower(), p.port) for p in service.ports)
    if service.external:
        target = service.external_name
        return ServiceRecord(
            namespace, name, "external", external_name=target, ports=ports,
            unanswerable=bool(target) and not encodable_name(target),
        )
    if service.headless:
        return ServiceRecord(namespace, name, "headless", ports=ports)
    ips = tuple(ip for ip in (normalize_ip(t) for t in service.cluster_ips) if ip)
    return ServiceRecord(namespace, name, "cluster", cluster_ips=ips, ports=ports)


def _shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_RECORDS: dict[tuple[Any, str, tuple[PortRecord, ...]], EndpointRecord | None] = {}


def _record(address: Any, hostname: str, ports: tuple[PortRecord, ...]) -> EndpointRecord | None:
    """One endpoint's record, or None for an address that is not one. The same endpoint comes back with
    every rewrite of its Endpoints and slices (one readiness flip rewrites all of them): its parse and
    label are made once and shared, in a bounded memo."""
    key = (address, hostname, ports)
    try:
        return _RECORDS[key]
    except (KeyError, TypeError):  # TypeError: an address that is not a string (made, not memoized)
        pass
    ip = normalize_ip(str(address or ""))
    record = None if ip is None else EndpointRecord(ip, endpoint_label(ip, hostname), ports)
    if isinstance(address, str):
        if len(_RECORDS) >= 50_000:
            _RECORDS.clear()
        _RECORDS[key] = record
    return record


def _ports(specs: Any) -> tuple[PortRecord, ...]:
    return tuple(_port(p) for p in specs or ())


def endpoint_records(obj: dict[str, Any]) -> tuple[EndpointRecord, ...]:
    """The ready addresses of an Endpoints object (not-ready ones are never answered)."""
    records = []
    for subset in obj.get("subsets") or ():
        ports = _ports(subset.get("ports"))
        for address in subset.get("addresses") or ():
            record = _record(address.get("ip"), str(address.get("hostname") or "").lower(), ports)
            if record is not None:
                records.append(record)
    return tuple(records)


def slice_records(obj: dict[str, Any]) -> tuple[EndpointRecord, ...]:
    """The ready endpoints of an EndpointSlice (ready unset counts as ready, as in discovery/v1)."""
    records = []
    ports = _ports(obj.get("ports"))
    for endpoint in obj.get("endpoints") or ():
        if (endpoint.get("conditions") or {}).get("ready") is False:
            continue
        hostname = str(endpoint.get("hostname") or "").lower()
        for address in endpoint.get("addresses") or ():
            record = _record(address, hostname, ports)
            if record is not None:
                records.append(record)
    return tuple(records)


def _port(spec: dict[str, Any]) -> PortRecord:
    port = spec.get("port")
    return PortRecord(
        str(spec.get("name") or "").lower(),
        str(spec.get("protocol") or "TCP").lower(),
        port if isinstance(port, int) else -1,
    )


_HANDLERS = {
    "services": DnsIndex._apply_service,
    "endpoints": DnsIndex._apply_endpoints,
    ENDPOINT_SLICES.key: DnsIndex._apply_slice,
    "namespaces": DnsIndex._apply_namespace,
}
