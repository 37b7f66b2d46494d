"""Answers for cluster names, built as DNS records (pure: the cluster is read through a `ClusterView`).

What to answer follows the Kubernetes DNS specification 1.1.0 and CoreDNS's `kubernetes` plugin:
first the name is turned into *targets* (an address, maybe a port and the name SRV points at, or an
ExternalName), then the query type picks the records. No target at all is NXDOMAIN; a name with
targets but none of the asked type is NODATA (NOERROR, empty answer, the zone's SOA in authority).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSLabel

from emulator.dns.names import (
    ClusterName,
    address_from_dashes,
    address_from_reverse,
    expand_short_form,
    parse_cluster_name,
    relative_labels,
)

DNS_SCHEMA_VERSION = "1.1.0"
DNS_VERSION_TTL = 28800  # what CoreDNS gives the dns-version TXT record
MAX_CNAME_CHAIN = 8  # in-zone ExternalName → ExternalName hops followed, as CoreDNS does


class PortRecord(NamedTuple):
    name: str  # lower case; "" for an unnamed port
    protocol: str  # lower case: "tcp", "udp", "sctp"
    port: int  # -1: no port declared (headless services may have none)


NO_PORT = PortRecord("", "", -1)


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    namespace: str
    name: str
    kind: Literal["cluster", "headless", "external"]
    cluster_ips: tuple[str, ...] = ()
    external_name: str = ""  # lower case, no trailing dot
    ports: tuple[PortRecord, ...] = ()
    # An ExternalName that cannot be written as a DNS name (see `encodable_name`): the service's name is
    # answered SERVFAIL, since the CNAME it stands for cannot be sent.
    unanswerable: bool = False


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    ip: str
    label: str  # hostname, or the dashed IP
    ports: tuple[PortRecord, ...]


class ClusterView(Protocol):
    def service(self, namespace: str, name: str) -> ServiceRecord | None: ...
    def ready_endpoints(self, namespace: str, name: str) -> Sequence[EndpointRecord]: ...
    def namespace_exists(self, namespace: str) -> bool: ...
    def service_with_cluster_ip(self, ip: str) -> ServiceRecord | None: ...
    def endpoint_names_for(self, ip: str) -> list[tuple[str, str, str]]: ...  # (namespace, service, label)
    def gateway_address(self, name: str) -> str | None: ...  # an Ingress/Gateway API hostname: the gateway


@dataclass(frozen=True, slots=True)
class GatewayNames:
    """The hostnames Ingresses and Gateway API routes serve, answered with the gateway's address when
    they lie in the cluster zone or in one of `domains` (the others are the user's own names: forwarded).
    `wildcards` are suffixes (".apps.test") with Ingress' one-label rule or the Gateway API's any-depth rule."""

    address: str = ""
    exact: frozenset[str] = frozenset()
    wildcards: tuple[tuple[str, bool], ...] = ()  # (suffix, single_label)
    domains: tuple[str, ...] = ()  # "localhost", "test": without dots around

    def address_for(self, name: str, zone: str) -> str | None:
        """The gateway's address for a lower-case name without the trailing dot, or None."""
        if not self.address or not (_under(name, zone) or any(_under(name, d) for d in self.domains)):
            return None
        if name in self.exact:
            return self.address
        for suffix, single in self.wildcards:
            if name.endswith(suffix) and len(name) > len(suffix):
                head = name[: -len(suffix)]
                if not single or "." not in head:
                    return self.address
        return None


def _under(name: str, domain: str) -> bool:
    return bool(domain) and name.endswith("." + domain)


@dataclass(frozen=True, slots=True)
class Zone:
    name: str  # "cluster.local"
    ttl: int
    default_namespace: str
    serial: int
    labels: tuple[str, ...] = field(init=False)  # the name split once: every query compares with it

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.name.split(".")))


@dataclass(slots=True)
class Answer:
    rcode: int
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    # An ExternalName target outside the zone: whoever sends the answer may resolve it upstream and
    # append what it finds after the CNAME.
    chase: str | None = None


class Target(NamedTuple):
    ip: str | None  # None: an ExternalName
    port: int  # -1: none
    name: str  # what SRV and PTR point at; for ExternalName the CNAME target


def answer_query(labels: tuple[str, ...], qtype: int, view: ClusterView, zone: Zone) -> Answer | None:
    """The answer for a lower-case query name, or None when the cluster has nothing to say (forward it)."""
    gateway = view.gateway_address(".".join(labels))
    if gateway is not None:
        return _gateway_answer(labels, qtype, gateway, zone)
    rel = relative_labels(labels, zone.labels)
    if rel is not None:
        return _answer_in_zone(labels, rel, qtype, view, zone, 0)
    address = address_from_reverse(labels)
    if address is not None:
        # Reverse names the cluster does not own fall through to the next resolver (kubeadm's CoreDNS
        # config: `fallthrough in-addr.arpa ip6.arpa`).
        if qtype != QTYPE.PTR:
            return None
        targets = _reverse_targets(address, view, zone)
        if not targets:
            return None
        owner = _label(labels)
        return Answer(RCODE.NOERROR, [RR(owner, QTYPE.PTR, ttl=zone.ttl, rdata=PTR(t)) for t in targets])
    short = expand_short_form(labels, zone.default_namespace)
    if short is None:
        return None
    answer = _answer_in_zone(labels, short, qtype, view, zone, 0)
    # What a search path would do: a miss in the cluster goes on to the name as it was typed.
    return None if answer.rcode == RCODE.NXDOMAIN else answer


def _gateway_answer(labels: tuple[str, ...], qtype: int, address: str, zone: Zone) -> Answer:
    """An Ingress or Gateway API hostname: the gateway's address (NODATA for other types)."""
    family = QTYPE.AAAA if ":" in address else QTYPE.A
    if qtype != family:
        return _negative(RCODE.NOERROR, zone)
    rdata = AAAA(address) if family == QTYPE.AAAA else A(address)
    return Answer(RCODE.NOERROR, [RR(_label(labels), family, ttl=zone.ttl, rdata=rdata)])


def _answer_in_zone(
    labels: tuple[str, ...], rel: tuple[str, ...], qtype: int, view: ClusterView, zone: Zone, depth: int
) -> Answer:
    owner = _label(labels)
    name = parse_cluster_name(rel)
    if name.kind == "invalid":
        return _negative(RCODE.NXDOMAIN, zone)
    if name.kind == "apex":
        if qtype == QTYPE.SOA:
            return Answer(RCODE.NOERROR, [soa_record(zone)])
        if qtype == QTYPE.NS:
            return Answer(RCODE.NOERROR, [RR(owner, QTYPE.NS, ttl=zone.ttl, rdata=NS(f"ns.dns.{zone.name}"))])
        return _negative(RCODE.NOERROR, zone)
    if name.kind == "root":
        return _negative(RCODE.NOERROR, zone)
    if name.kind == "dns-version":
        if qtype == QTYPE.TXT:
            return Answer(RCODE.NOERROR, [RR(owner, QTYPE.TXT, ttl=DNS_VERSION_TTL, rdata=TXT(DNS_SCHEMA_VERSION))])
        return _negative(RCODE.NOERROR, zone)

    targets = _pod_targets(name, view) if name.kind == "pod" else _service_targets(name, view, zone)
    if targets is None:
        return _negative(RCODE.NXDOMAIN, zone)
    if targets is UNANSWERABLE:
        return Answer(RCODE.SERVFAIL)

    answer = Answer(RCODE.NOERROR)
    if qtype in (QTYPE.A, QTYPE.AAAA):
        _address_records(answer, owner, labels, targets, qtype, view, zone, depth)
        if answer.rcode != RCODE.NOERROR:  # an in-zone CNAME led to an unanswerable ExternalName
            return Answer(answer.rcode)
    elif qtype == QTYPE.SRV:
        _srv_records(answer, owner, targets, zone)
    else:
        # A CNAME stands for its owner whatever the type asked (TXT, MX, HTTPS, ...): the client
        # follows it. Only A and AAAA are followed here (above), and SRV has its own meaning.
        answer.answer = [RR(owner, QTYPE.CNAME, ttl=zone.ttl, rdata=CNAME(t.name)) for t in targets if t.ip is None]
    if not answer.answer:
        return _negative(RCODE.NOERROR, zone)
    return answer


UNANSWERABLE: list[Target] = []  # compared by identity: SERVFAIL


def _service_targets(name: ClusterName, view: ClusterView, zone: Zone) -> list[Target] | None:
    """CoreDNS findServices: None means NXDOMAIN, [] NODATA, `UNANSWERABLE` SERVFAIL."""
    if not name.service:  # `ns.svc.zone`
        return [] if view.namespace_exists(name.namespace) else None
    service = view.service(name.namespace, name.service)
    if service is None:
        return None
    fqdn = f"{service.name}.{service.namespace}.svc.{zone.name}"
    if service.kind == "external":
        if name.endpoint or not service.external_name:
            return None  # an ExternalName service has no endpoints to name
        if service.unanswerable:
            return UNANSWERABLE
        return [Target(None, -1, service.external_name)]
    targets: list[Target] = []
    if service.kind == "headless" or name.endpoint:
        # Only ready addresses: a headless service whose pods are all unready is NXDOMAIN.
        for ep in view.ready_endpoints(service.namespace, service.name):
            if name.endpoint and name.endpoint != ep.label:
                continue
            for port in ep.ports or (NO_PORT,):
                if _port_matches(name, port):
                    targets.append(Target(ep.ip, port.port, f"{ep.label}.{fqdn}"))
        return targets or None
    for port in service.ports or (NO_PORT,):
        if _port_matches(name, port):
            targets.extend(Target(ip, port.port, fqdn) for ip in service.cluster_ips)
    return targets or None


def _port_matches(name: ClusterName, port: PortRecord) -> bool:
    return (not name.port or name.port == port.name) and (not name.protocol or name.protocol == port.protocol)


def _pod_targets(name: ClusterName, view: ClusterView) -> list[Target] | None:
    """`a-b-c-d.ns.pod.zone`: the address in the name, for any existing namespace ("pods insecure")."""
    if name.endpoint or name.port:
        return None
    if not view.namespace_exists(name.namespace):
        return None
    if not name.service:
        return []
    ip = address_from_dashes(name.service)
    return None if ip is None else [Target(ip, -1, "")]


def _address_records(
    answer: Answer,
    owner: DNSLabel,
    labels: tuple[str, ...],
    targets: list[Target],
    qtype: int,
    view: ClusterView,
    zone: Zone,
    depth: int,
) -> None:
    seen: set[str] = set()
    for target in targets:
        if target.ip is None:
            _cname_records(answer, owner, labels, target.name, qtype, view, zone, depth)
        elif target.ip not in seen and _family(target.ip) == qtype:
            seen.add(target.ip)
            answer.answer.append(_address_rr(owner, target.ip, zone.ttl))


def _cname_records(
    answer: Answer,
    owner: DNSLabel,
    labels: tuple[str, ...],
    external: str,
    qtype: int,
    view: ClusterView,
    zone: Zone,
    depth: int,
) -> None:
    ext_labels = tuple(external.split("."))
    if ext_labels == labels:
        return  # `x CNAME x` is a loop; CoreDNS leaves it out
    cname = RR(owner, QTYPE.CNAME, ttl=zone.ttl, rdata=CNAME(external))
    rel = relative_labels(ext_labels, zone.labels)
    if rel is None:
        answer.answer.append(cname)
        answer.chase = external
        return
    if depth >= MAX_CNAME_CHAIN:
        return
    # A target inside the zone is followed here; like CoreDNS, the CNAME only counts if it leads somewhere.
    followed = _answer_in_zone(ext_labels, rel, qtype, view, zone, depth + 1)
    if followed.rcode == RCODE.SERVFAIL:
        answer.rcode = RCODE.SERVFAIL
    elif followed.answer:
        answer.answer.append(cname)
        answer.answer.extend(followed.answer)
        answer.chase = followed.chase


def _srv_records(answer: Answer, owner: DNSLabel, targets: list[Target], zone: Zone) -> None:
    # ExternalName services have no SRV records; ports of -1 mean "none declared".
    usable = [t for t in targets if t.ip is not None and t.port >= 0]
    if not usable:
        return
    # CoreDNS spreads weight 100 over the records of one priority (all are priority 0 here).
    weight = max(1, math.floor(100 / len(usable)))
    seen: set[tuple[int, str]] = set()
    extra_seen: set[tuple[str, str]] = set()
    for t in usable:
        if (t.port, t.name) in seen:
            continue
        seen.add((t.port, t.name))
        answer.answer.append(
            RR(owner, QTYPE.SRV, ttl=zone.ttl, rdata=SRV(priority=0, weight=weight, port=t.port, target=t.name))
        )
        assert t.ip is not None
        if (t.name, t.ip) not in extra_seen:
            extra_seen.add((t.name, t.ip))
            answer.additional.append(_address_rr(DNSLabel(t.name), t.ip, zone.ttl))


def _reverse_targets(address: str, view: ClusterView, zone: Zone) -> list[str]:
    """PTR targets (CoreDNS serviceRecordForIP): a cluster IP's service, else every endpoint with it."""
    service = view.service_with_cluster_ip(address)
    if service is not None:
        return [f"{service.name}.{service.namespace}.svc.{zone.name}"]
    return [f"{label}.{svc}.{ns}.svc.{zone.name}" for ns, svc, label in view.endpoint_names_for(address)]


def soa_record(zone: Zone) -> RR:
    # CoreDNS's SOA: refresh 7200, retry 1800, expire 86400, minimum = the record TTL.
    return RR(
        zone.name,
        QTYPE.SOA,
        ttl=zone.ttl,
        rdata=SOA(f"ns.dns.{zone.name}", f"hostmaster.{zone.name}", (zone.serial, 7200, 1800, 86400, zone.ttl)),
    )


def _negative(rcode: int, zone: Zone) -> Answer:
    return Answer(rcode, authority=[soa_record(zone)])


def _family(ip: str) -> int:
    family: int = QTYPE.AAAA if ":" in ip else QTYPE.A  # dnslib is untyped: its QTYPE values are ints
    return family


def _address_rr(owner: DNSLabel, ip: str, ttl: int) -> RR:
    if ":" in ip:
        return RR(owner, QTYPE.AAAA, ttl=ttl, rdata=AAAA(ip))
    return RR(owner, QTYPE.A, ttl=ttl, rdata=A(ip))


def _label(labels: tuple[str, ...]) -> DNSLabel:
    return DNSLabel([label.encode("latin-1") for label in labels])


def encodable_name(name: str) -> bool:
    """Whether `name` (no trailing dot) can be written in a DNS message: labels of 1 to 63 bytes (after
    IDNA for non-ASCII ones, as dnslib encodes them), 255 bytes in all on the wire (253 characters)."""
    try:
        labels = DNSLabel(name).label
    except Exception:  # dnslib raises UnicodeError for an empty or too long label, others for worse
        return False
    return bool(labels) and all(0 < len(label) <= 63 for label in labels) and sum(len(x) + 1 for x in labels) < 255


def normalize_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
