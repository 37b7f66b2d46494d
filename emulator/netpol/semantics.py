"""NetworkPolicy semantics as a pure function: may this source reach this destination on this port?

Compile each policy once (`compile_policy`), then ask `decide(source, destination, port, protocol,
policies, namespace_labels)` for every new connection. The answer (`Decision`) says allowed or not, why,
and which policies decided — the proxy logs it and puts it in a 403 body; the check endpoint shows it.

The rules (Kubernetes networking.k8s.io/v1, see docs "Network Policies"):
- A pod is isolated for ingress (egress) when some policy in its namespace selects it and lists that
  direction in `policyTypes`. Without `policyTypes` a policy has Ingress, plus Egress when it has a
  non-empty `egress` list. A direction's rules of a policy that does not list it are ignored.
- A non-isolated direction allows everything. An isolated one allows what at least one rule of the
  isolating policies allows (policies add up; there is no deny rule).
- A connection needs the source's egress *and* the destination's ingress to allow it.
- A rule matches when one of its peers matches and one of its ports matches; an empty or missing
  `from`/`to` or `ports` list matches everything.
- Peers: `podSelector` alone = pods of the policy's namespace; `namespaceSelector` alone = all pods of
  the matching namespaces; both in one entry = pods matching both (AND); separate entries = OR.
  `ipBlock {cidr, except}` matches addresses in `cidr` and in none of `except`.
- Ports: a number (with an inclusive `endPort` range) or a container-port name; `protocol` defaults to TCP.

Decisions this module makes where Kubernetes leaves room (documented for users too):
- ipBlock and pods: Kubernetes says ipBlocks are meant for cluster-external addresses and leaves their
  effect on pod IPs to the implementation. Here an address that is no pod matches ipBlocks only (never
  a pod/namespace selector), while a pod matches selectors *and* ipBlocks that contain its IP (as Calico
  does). So `ipBlock: 0.0.0.0/0` really means "anything".
- Named ports resolve against the destination pod's container ports, in both directions (for egress as
  well: that is the pod whose port has the name). A named port never matches a destination that is
  no pod. The port asked about is the destination pod's port, i.e. after a Service's port mapping.
- A pod may always reach itself (source and destination are the same pod, or the source address is
  the destination pod's IP).
- Namespaces always carry the label `kubernetes.io/metadata.name: <name>` (the API server sets it; it is
  added here too when `namespace_labels` lacks it), so `namespaceSelector` by name always works.
- A destination that is no pod (an external address) has no ingress side: only the source's egress
  applies. A source that is no pod has no egress side: only the destination's ingress applies.
- Policies apply to decisions asked for; whether existing connections are cut is the caller's choice
  (the proxy only checks new connections and requests).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from emulator.kinds.namespace import NAMESPACE_NAME_LABEL
from emulator.labels import Selector, selector_from_label_selector
from emulator.netpol.validation import EGRESS, INGRESS
from emulator.validation import (
    parse_cidr,
    parse_ip,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class PodRef:
    """What a decision needs to know about a pod. `ports` maps container-port names to (port, protocol)."""

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    ports: Mapping[str, tuple[int, str]] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any]) -> PodRef:
        """Build from a Pod object (K8s JSON). Named ports come from the containers and from sidecar init
        containers (`restartPolicy: Always`), which serve traffic like ordinary containers."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        containers = list(spec.get("containers") or [])
        containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        ports: dict[str, tuple[int, str]] = {}
        for container in containers:
            for p in container.get("ports") or []:
                if p.get("name") and isinstance(p.get("containerPort"), int):
                    ports.setdefault(p["name"], (p["containerPort"], p.get("protocol") or "TCP"))
        return cls(
            namespace=meta.get("namespace") or "default",
            name=meta.get("name") or "",
            ip=(pod.get("status") or {}).get("podIP") or "",
            labels=dict(meta.get("labels") or {}),
            ports=ports,
        )


# --- the compiled form -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledPort:
    protocol: str
    port: int | str | None  # None = every port of the protocol
    end_port: int | None = None

    def matches(self, port: int, protocol: str, destination: PodRef | None) -> bool:
        if protocol != self.protocol:
            return False
        if self.port is None:
            return True
        if isinstance(self.port, int):
            if self.end_port is not None:
                return self.port <= port <= self.end_port
            return port == self.port
        if destination is None:
            return False
        named = destination.ports.get(self.port)
        return named is not None and named[0] == port and named[1] == protocol


@dataclass(frozen=True, slots=True)
class CompiledPeer:
    # Either the selector pair or the ipBlock is set, never both (validation forbids it).
    pod_selector: Selector | None = None
    namespace_selector: Selector | None = None
    cidr: IPNetwork | None = None
    excepts: tuple[IPNetwork, ...] = ()

    def matches(
        self,
        policy_namespace: str,
        pod: PodRef | None,
        address: IPAddress | None,
        namespace_labels: _NamespaceLabels,
    ) -> bool:
        if self.cidr is not None:
            return address is not None and _in_block(address, self.cidr, self.excepts)
        if pod is None:
            return False
        if self.namespace_selector is None:
            if pod.namespace != policy_namespace:
                return False
        elif not self.namespace_selector.matches(namespace_labels.of(pod.namespace)):
            return False
        return self.pod_selector is None or self.pod_selector.matches(pod.labels)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    peers: tuple[CompiledPeer, ...] | None  # None: the rule does not restrict peers
    ports: tuple[CompiledPort, ...] | None  # None: the rule does not restrict ports


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    namespace: str
    name: str
    pod_selector: Selector
    isolates_ingress: bool
    isolates_egress: bool
    ingress: tuple[CompiledRule, ...] = ()
    egress: tuple[CompiledRule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, pod: PodRef) -> bool:
        return pod.namespace == self.namespace and self.pod_selector.matches(pod.labels)


def compile_policy(obj: Mapping[str, Any]) -> CompiledPolicy:
    """Compile a NetworkPolicy object (K8s JSON) that passed `validate_network_policy`.

    Raises ValueError (SelectorError is one) for what cannot be compiled.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    types = spec.get("policyTypes")
    if not types:
        # apiserver defaulting: Ingress always, Egress when there are egress rules.
        types = [INGRESS, EGRESS] if spec.get("egress") else [INGRESS]
    isolates_ingress, isolates_egress = INGRESS in types, EGRESS in types
    return CompiledPolicy(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name") or "",
        # podSelector is required in the type; absent means the empty selector (all pods).
        pod_selector=selector_from_label_selector(spec.get("podSelector") or {}),
        isolates_ingress=isolates_ingress,
        isolates_egress=isolates_egress,
        # A direction the policy does not isolate has its rules ignored, as in Kubernetes.
        ingress=tuple(_compile_rule(r, "from") for r in spec.get("ingress") or []) if isolates_ingress else (),
        egress=tuple(_compile_rule(r, "to") for r in spec.get("egress") or []) if isolates_egress else (),
    )


def _compile_rule(rule: Mapping[str, Any] | None, peers_key: str) -> CompiledRule:
    rule = rule or {}
    peers = rule.get(peers_key) or []
    ports = rule.get("ports") or []
    return CompiledRule(
        peers=tuple(_compile_peer(p) for p in peers) if peers else None,
        ports=tuple(_compile_port(p) for p in ports) if ports else None,
    )


def _compile_peer(peer: Mapping[str, Any]) -> CompiledPeer:
    block = peer.get("ipBlock")
    if block is not None:
        cidr = parse_cidr(block.get("cidr"))
        if cidr is None:
            raise ValueError(f"invalid ipBlock cidr {block.get('cidr')!r}")
        excepts = []
        for text in block.get("except") or []:
            net = parse_cidr(text)
            if net is None:
                raise ValueError(f"invalid ipBlock except {text!r}")
            excepts.append(net)
        return CompiledPeer(cidr=cidr, excepts=tuple(excepts))
    pods, namespaces = peer.get("podSelector"), peer.get("namespaceSelector")
    return CompiledPeer(
        pod_selector=selector_from_label_selector(pods) if pods is not None else None,
        namespace_selector=selector_from_label_selector(namespaces) if namespaces is not None else None,
    )


def _compile_port(port: Mapping[str, Any]) -> CompiledPort:
    protocol = port.get("protocol") or "TCP"
    number = port.get("port")
    end = port.get("endPort")
    return CompiledPort(protocol=protocol, port=number, end_port=end if isinstance(number, int) else None)


def _in_block(address: IPAddress, cidr: IPNetwork, excepts: tuple[IPNetwork, ...]) -> bool:
    # Python's `in` does not check the address family; a v6 address is never in a v4 block.
    if address.version != cidr.version or address not in cidr:
        return False
    return not any(address in e for e in excepts if e.version == address.version)


# --- deciding --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """`policies`: when allowed, the policies whose rules allowed it (empty if no side was isolated);
    when denied, the policies that isolated the denying side(s) without allowing."""

    allowed: bool
    reasons: tuple[str, ...]
    policies: tuple[str, ...] = ()
    denied_by: tuple[str, ...] = ()  # "egress" and/or "ingress" when denied

    def __bool__(self) -> bool:
        return self.allowed


class _NamespaceLabels:
    """Namespace labels with the well-known name label added, merged once per namespace per decision."""

    __slots__ = ("_given", "_seen")

    def __init__(self, given: Mapping[str, Mapping[str, str]]) -> None:
        self._given = given
        self._seen: dict[str, Mapping[str, str]] = {}

    def of(self, namespace: str) -> Mapping[str, str]:
        labels = self._seen.get(namespace)
        if labels is None:
            labels = self._given.get(namespace) or {}
            if labels.get(NAMESPACE_NAME_LABEL) != namespace:
                labels = {**labels, NAMESPACE_NAME_LABEL: namespace}
            self._seen[namespace] = labels
        return labels


Policies = Iterable[CompiledPolicy] | Mapping[str, Sequence[CompiledPolicy]]


def index_by_namespace(policies: Iterable[CompiledPolicy]) -> dict[str, list[CompiledPolicy]]:
    """Group policies by namespace: pass the result to `decide` to skip other namespaces' policies."""
    index: dict[str, list[CompiledPolicy]] = {}
    for policy in policies:
        index.setdefault(policy.namespace, []).append(policy)
    return index


def _policies_in(policies: Policies, namespace: str) -> Iterable[CompiledPolicy]:
    if isinstance(policies, Mapping):
        return policies.get(namespace, ())
    return (p for p in policies if p.namespace == namespace)


def decide(
    source: PodRef | str,
    destination: PodRef | str,
    port: int,
    protocol: str,
    policies: Policies,
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> Decision:
    """May `source` open a connection to `destination`:`port`/`protocol`?

    `source` and `destination` are pods, or address strings when they are no pod. `policies` are
    compiled policies (any namespaces), or `index_by_namespace(...)` of them. `namespace_labels` maps
    namespace names to their labels.
    """
    protocol = protocol.upper()
    if not isinstance(policies, Mapping) and not isinstance(policies, Sequence):
        policies = list(policies)  # iterated once per direction
    src_pod = source if isinstance(source, PodRef) else None
    dst_pod = destination if isinstance(destination, PodRef) else None
    src_ip = parse_ip(src_pod.ip if src_pod else source)
    dst_ip = parse_ip(dst_pod.ip if dst_pod else destination)
    target = f"{_describe(destination)}:{port}/{protocol}"

    if dst_pod is not None and (
        (src_pod is not None and src_pod.namespace == dst_pod.namespace and src_pod.name == dst_pod.name)
        or (src_pod is None and src_ip is not None and src_ip == dst_ip)
    ):
        return Decision(True, (f"pod {dst_pod.key} may always reach itself",))

    ns_labels = _NamespaceLabels(namespace_labels or {})
    reasons: list[str] = []
    allowing: list[str] = []  # policies whose rules allowed a side
    denying: list[str] = []  # policies that isolated a side and allowed nothing
    denied: list[str] = []

    # Egress: the source pod's policies, peers matched against the destination; ingress: the other way.
    sides = (
        ("egress", src_pod, f"source {_describe(source)}", dst_pod, dst_ip,
         f"{src_pod.key if src_pod else ''} to {target}", target),
        ("ingress", dst_pod, f"destination {_describe(destination)}", src_pod, src_ip,
         f"{_describe(source)} to {target}", f"{_describe(source)} to {target}"),
    )
    for direction, subject, absent, peer_pod, peer_ip, flow, unallowed in sides:
        reason, allows, isolating = _judge_side(
            direction, subject, absent, peer_pod, peer_ip, port, protocol, dst_pod, policies, ns_labels, flow, unallowed
        )
        reasons.append(reason)
        allowing += allows
        if isolating:
            denying += isolating
            denied.append(direction)

    deciding = denying if denied else allowing
    return Decision(not denied, tuple(reasons), tuple(dict.fromkeys(deciding)), tuple(denied))


def _judge_side(
    direction: str,
    subject: PodRef | None,
    absent: str,
    peer_pod: PodRef | None,
    peer_ip: IPAddress | None,
    port: int,
    protocol: str,
    destination: PodRef | None,
    policies: Policies,
    ns_labels: _NamespaceLabels,
    flow: str,
    unallowed: str,
) -> tuple[str, list[str], list[str]]:
    """One direction of a connection: (reason, the policies that allowed it, the isolating policies that
    allowed nothing). `subject` is the pod whose policies apply (the source for egress, the destination
    for ingress); `peer_*` is the other end, which the rules' peers are matched against."""
    if subject is None:
        return f"{direction}: {absent} is not a pod, no {direction} policy applies", [], []
    egress = direction == "egress"
    isolating = [
        p for p in _policies_in(policies, subject.namespace)
        if (p.isolates_egress if egress else p.isolates_ingress) and p.selects(subject)
    ]
    if not isolating:
        return f"{direction}: {subject.key} is not isolated for {direction}", [], []
    allows = [
        p.key for p in isolating
        if _any_rule(p, p.egress if egress else p.ingress, peer_pod, peer_ip, port, protocol, destination, ns_labels)
    ]
    if allows:
        return f"{direction}: {flow} allowed by {', '.join(allows)}", allows, []
    keys = [p.key for p in isolating]
    return (
        f"{direction}: {subject.key} is isolated for {direction} by {', '.join(keys)} and no {direction} rule allows {unallowed}",
        [], keys,
    )


def _any_rule(
    policy: CompiledPolicy,
    rules: tuple[CompiledRule, ...],
    peer_pod: PodRef | None,
    peer_ip: IPAddress | None,
    port: int,
    protocol: str,
    destination: PodRef | None,
    ns_labels: _NamespaceLabels,
) -> bool:
    for rule in rules:
        if rule.ports is not None and not any(p.matches(port, protocol, destination) for p in rule.ports):
            continue
        if rule.peers is None or any(
            peer.matches(policy.namespace, peer_pod, peer_ip, ns_labels) for peer in rule.peers
        ):
            return True
    return False


def _describe(endpoint: PodRef | str) -> str:
    if isinstance(endpoint, PodRef):
        return f"{endpoint.key} ({endpoint.ip})" if endpoint.ip else endpoint.key
    return endpoint
