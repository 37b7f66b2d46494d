"""NetworkPolicy enforcement: the store-fed index behind the proxy's per-connection policy hook.

`PolicyEngine` is a store listener. It keeps what `netpol.decide` needs — pods by IP (as `PodRef`s),
namespace labels, and each namespace's compiled policies — up to date from events, so that the proxy's
`check(src_ip, dst_ip, dst_port, protocol)` is a few dict lookups and one pure decision, never a scan
of the store. Decisions are cached per (source, destination, port, protocol) until the next change
that could alter one (a pod's labels, ports or IP, a namespace's labels, any policy).

How traffic is identified (docs/policies.md):
- The source is the pod whose IP the connection comes from; an address that is no pod's (127.0.0.1,
  the host) is matched by `ipBlock` rules only. The destination is the endpoint the proxy chose.
- Pods on the host network share the node's address, so they are no pod for the decision: their
  traffic is the node's, as in Kubernetes where policies do not select host-network pods.
- Pods that have finished (Succeeded/Failed) no longer hold their IP and are left out.
- Pods are indexed only while at least one policy exists: a cluster without policies (the common
  case) pays nothing per pod. The first policy loads the pods from the store.

The proxy asks only for new connections, UDP flows and HTTP requests: a policy change never cuts an
established connection. Denials are logged by the proxy, one line each, with the reason built here
(which names the deciding policies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from emulator.kinds import NAMESPACES, NETWORK_POLICIES, PODS
from emulator.netpol.semantics import CompiledPolicy, Decision, PodRef, compile_policy, decide
from emulator.store.events import DELETED, Event
from emulator.validation import parse_ip

log = logging.getLogger("emulator.policy")

CACHE_LIMIT = 65536  # cached decisions; the cache is emptied when full (a burst of new clients)
FINISHED_PHASES = ("Succeeded", "Failed")

PodKey = tuple[str, str]  # (namespace, name)


class PolicyEngine:
    """The proxy's `ConnectionPolicy`, fed by store events (`apply`); `explain` answers the check endpoint."""

    def __init__(self, enforced: bool = True, stored_pods: Callable[[], Iterable[dict[str, Any]]] | None = None) -> None:
        self.enforced = enforced  # whether the proxy asks us (reported by `explain`)
        self._stored_pods = stored_pods or (lambda: ())  # every pod now, for indexing on first use
        self._pods: dict[PodKey, PodRef] = {}
        self._host_network: dict[PodKey, str] = {}  # host-network pods: their (node) address
        self._by_ip: dict[str, dict[PodKey, PodRef]] = {}
        self._namespace_labels: dict[str, dict[str, str]] = {}
        self._policies: dict[str, dict[str, CompiledPolicy]] = {}  # namespace -> name -> policy
        self._index: dict[str, list[CompiledPolicy]] = {}  # what `decide` reads: namespace -> policies
        self._cache: dict[tuple[str, str, int, str], tuple[bool, str]] = {}

    # -- store listener ------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Take a store event (pods, namespaces, network policies; others are ignored). Never raises."""
        resource = event.resource
        try:
            if resource == PODS.key:
                changed = self._apply_pod(event)
            elif resource == NETWORK_POLICIES.key:
                changed = self._apply_policy(event)
            elif resource == NAMESPACES.key:
                changed = self._apply_namespace(event)
            else:
                return
        except Exception:  # a bad object must not stop enforcement for the others
            log.exception("network policy index could not apply %r", event)
            changed = True
        if changed and self._cache:
            self._cache.clear()

    def _apply_pod(self, event: Event) -> bool:
        if not self._index:
            return False  # no policy: nothing to decide, pods are indexed when the first one comes
        if event.type == DELETED:
            return self._drop_pod((event.namespace, event.name))
        return self._index_pod(event.obj)

    def _drop_pod(self, key: PodKey) -> bool:
        self._host_network.pop(key, None)
        old = self._pods.get(key)
        if old is None:
            return False
        self._forget_pod(key, old)
        return True

    def _index_pod(self, pod: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        old = self._pods.get(key)
        self._host_network.pop(key, None)
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if spec.get("hostNetwork") or status.get("phase") in FINISHED_PHASES or not status.get("podIP"):
            if spec.get("hostNetwork") and status.get("podIP"):
                self._host_network[key] = status["podIP"]
            if old is not None:
                self._forget_pod(key, old)
                return True
            return False
        new = PodRef.from_pod(pod)
        if new == old:
            return False  # e.g. a readiness change: nothing a decision reads
        if old is not None:
            self._forget_pod(key, old)
        self._pods[key] = new
        self._by_ip.setdefault(new.ip, {})[key] = new
        return True

    def _forget_pod(self, key: PodKey, old: PodRef) -> None:
        del self._pods[key]
        at = self._by_ip.get(old.ip)
        if at is not None:
            at.pop(key, None)
            if not at:
                del self._by_ip[old.ip]

    def _apply_policy(self, event: Event) -> bool:
        was_active = bool(self._index)
        in_namespace = self._policies.setdefault(event.namespace, {})
        if event.type == DELETED:
            in_namespace.pop(event.name, None)
        else:
            try:
                in_namespace[event.name] = compile_policy(event.obj)
            except ValueError as exc:
                # The registry validates policies, so this is an old stored object at worst: enforcing
                # a stale version of it would be wrong too, so it is dropped loudly.
                in_namespace.pop(event.name, None)
                log.error("network policy %s/%s cannot be enforced: %s", event.namespace, event.name, exc)
        if in_namespace:
            self._index[event.namespace] = sorted(in_namespace.values(), key=lambda p: p.name)
        else:
            self._policies.pop(event.namespace, None)
            self._index.pop(event.namespace, None)
        if self._index and not was_active:
            self._reload_pods()
        elif was_active and not self._index:
            self._forget_pods()
        return True

    def _apply_namespace(self, event: Event) -> bool:
        if event.type == DELETED:
            return self._namespace_labels.pop(event.name, None) is not None
        labels = dict((event.obj.get("metadata") or {}).get("labels") or {})
        if self._namespace_labels.get(event.name) == labels:
            return False
        self._namespace_labels[event.name] = labels
        return True

    # -- lookups -------------------------------------------------------------------------------------

    def refresh_pods(self) -> None:
        """Without policies pods are not kept up to date; the check endpoint still wants to name them,
        so it asks for a fresh index first (a scan, fine for a debugging request)."""
        if not self._index:
            self._reload_pods()

    def _reload_pods(self) -> None:
        self._forget_pods()
        for pod in self._stored_pods():
            self._index_pod(pod)

    def _forget_pods(self) -> None:
        self._pods.clear()
        self._by_ip.clear()
        self._host_network.clear()

    def pod_at(self, ip: str) -> PodRef | None:
        """The pod that owns `ip` (None for the node's and other addresses)."""
        at = self._by_ip.get(ip)
        if not at:
            return None
        return next(iter(at.values()))

    def pod(self, namespace: str, name: str) -> PodRef | str | None:
        """A pod by name: its PodRef; its address when it is on the host network (it counts as the node);
        None when it does not exist or has no IP."""
        found = self._pods.get((namespace, name))
        if found is not None:
            return found
        return self._host_network.get((namespace, name))

    @property
    def policy_count(self) -> int:
        return sum(len(p) for p in self._index.values())

    # -- the proxy's hook ----------------------------------------------------------------------------

    def check(self, src_ip: str, dst_ip: str, dst_port: int, protocol: str) -> tuple[bool, str]:
        """`ConnectionPolicy.check`: may `src_ip` open a connection to the endpoint `dst_ip:dst_port`?"""
        if not self._index:
            return True, "no network policies"
        key = (src_ip, dst_ip, dst_port, protocol)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        decision = self._decide(self.pod_at(src_ip) or src_ip, self.pod_at(dst_ip) or dst_ip, dst_port, protocol)
        result = (decision.allowed, summary(decision))
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = result
        return result

    def _decide(self, source: PodRef | str, destination: PodRef | str, port: int, protocol: str) -> Decision:
        return decide(source, destination, port, protocol, self._index, self._namespace_labels)

    # -- the check endpoint --------------------------------------------------------------------------

    def explain(self, source: PodRef | str, destination: PodRef | str, port: int, protocol: str) -> dict[str, Any]:
        """The decision for one (source, destination, port, protocol), with everything that led to it.

        An address that belongs to a pod is that pod, as it would be for the proxy. `port` is the
        destination pod's port (a Service's targetPort, not its port).
        """
        if isinstance(source, str):
            source = self.pod_at(source) or source
        if isinstance(destination, str):
            destination = self.pod_at(destination) or destination
        protocol = protocol.upper()
        decision = self._decide(source, destination, port, protocol)
        return {
            "kind": "NetworkPolicyCheck",
            "apiVersion": "emulator/v1",
            "source": _endpoint(source),
            "destination": _endpoint(destination),
            "port": port,
            "protocol": protocol,
            "allowed": decision.allowed,
            "reasons": list(decision.reasons),
            "policies": list(decision.policies),
            "deniedBy": list(decision.denied_by),
            "enforced": self.enforced,
        }


def summary(decision: Decision) -> str:
    """One line for the proxy's log and 403 body: the denying side(s) with their policies, or what allowed."""
    if not decision.allowed:
        return "; ".join(r for r in decision.reasons if r.split(":", 1)[0] in decision.denied_by)
    if decision.policies:
        return f"allowed by {', '.join(decision.policies)}"
    return decision.reasons[0] if len(decision.reasons) == 1 else "no policy isolates either side"


def _endpoint(endpoint: PodRef | str) -> dict[str, Any]:
    if isinstance(endpoint, PodRef):
        return {"pod": endpoint.key, "ip": endpoint.ip, "labels": dict(endpoint.labels)}
    return {"address": endpoint}


def resolve_port(port: str, destination: PodRef | str) -> int:
    """A port number, or a container-port name of the destination pod (what a policy's named port means)."""
    text = port.strip()
    if text.isdigit():
        number = int(text)
        if not 1 <= number <= 65535:
            raise ValueError(f'port {number} is out of range: use 1-65535')
        return number
    if not isinstance(destination, PodRef):
        raise ValueError(f'port "{text}" is a name, but the destination is no pod, so it has no named ports')
    named = destination.ports.get(text)
    if named is None:
        known = ", ".join(sorted(destination.ports)) or "none"
        raise ValueError(f'pod {destination.key} has no container port named "{text}" (named ports: {known})')
    return named[0]


def is_address(text: str) -> bool:
    return parse_ip(text) is not None

