"""The PolicyEngine: its index follows store events, `check` answers like `netpol.decide`, caches stay right."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from emulator.kinds import NAMESPACES, NETWORK_POLICIES, PODS, SERVICES
from emulator.netpol.engine import PolicyEngine, resolve_port
from emulator.netpol.semantics import PodRef
from emulator.store.events import ADDED, DELETED, MODIFIED, Event

_rv = 0


def event(type: str, resource: str, obj: dict[str, Any]) -> Event:
    global _rv
    _rv += 1
    meta = obj["metadata"]
    return Event(type, resource, meta.get("namespace", ""), meta["name"], _rv, orjson.dumps(obj))


def pod(name: str, ip: str, ns: str = "prod", labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}
    spec.update(extra.pop("spec", {}))
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": name}},
        "spec": spec,
        "status": {"podIP": ip, "phase": extra.pop("phase", "Running")},
    }


def policy(name: str, ns: str = "prod", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"podSelector": {}, **spec}}


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


WEB, CLIENT, OTHER = "127.244.0.10", "127.244.0.11", "127.244.0.12"


@pytest.fixture
def engine() -> PolicyEngine:
    # the pods the store holds: the engine reads them when the first policy arrives
    stored = [pod("web", WEB), pod("client", CLIENT), pod("other", OTHER, ns="dev")]
    e = PolicyEngine(stored_pods=lambda: stored)
    for obj in (namespace("prod", env="prod"), namespace("dev", env="dev")):
        e.apply(event(ADDED, NAMESPACES.key, obj))
    for obj in stored:
        e.apply(event(ADDED, PODS.key, obj))
    return e


def test_everything_is_allowed_without_policies(engine: PolicyEngine) -> None:
    assert engine.check(CLIENT, WEB, 8080, "TCP") == (True, "no network policies")


def test_deny_all_names_the_policy_and_a_pod_still_reaches_itself(engine: PolicyEngine) -> None:
    engine.apply(event(ADDED, NETWORK_POLICIES.key, policy("deny-all", policyTypes=["Ingress"])))
    allowed, reason = engine.check(CLIENT, WEB, 8080, "TCP")
    assert not allowed
    assert "prod/deny-all" in reason and reason.startswith("ingress: prod/web")
    assert engine.check(WEB, WEB, 8080, "TCP")[0]
    # the host (no pod) is denied too: it matches no peer
    assert not engine.check("127.0.0.1", WEB, 8080, "TCP")[0]


def test_policy_removal_and_change_invalidate_cached_decisions(engine: PolicyEngine) -> None:
    deny = policy("deny-all", policyTypes=["Ingress"])
    engine.apply(event(ADDED, NETWORK_POLICIES.key, deny))
    assert not engine.check(CLIENT, WEB, 8080, "TCP")[0]
    allow = policy("allow-client", podSelector={"matchLabels": {"app": "web"}},
                   ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}])
    engine.apply(event(ADDED, NETWORK_POLICIES.key, allow))
    assert engine.check(CLIENT, WEB, 8080, "TCP") == (True, "allowed by prod/allow-client")
    engine.apply(event(DELETED, NETWORK_POLICIES.key, allow))
    assert not engine.check(CLIENT, WEB, 8080, "TCP")[0]
    engine.apply(event(DELETED, NETWORK_POLICIES.key, deny))
    assert engine.check(CLIENT, WEB, 8080, "TCP")[0]
    assert engine.policy_count == 0


def test_label_and_namespace_label_changes_are_seen(engine: PolicyEngine) -> None:
    engine.apply(event(ADDED, NETWORK_POLICIES.key, policy(
        "from-prod-clients", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}},
                                                 "podSelector": {"matchLabels": {"app": "client"}}}]}],
    )))
    assert engine.check(CLIENT, WEB, 8080, "TCP")[0]
    engine.apply(event(MODIFIED, PODS.key, pod("client", CLIENT, labels={"app": "intruder"})))
    assert not engine.check(CLIENT, WEB, 8080, "TCP")[0]
    engine.apply(event(MODIFIED, PODS.key, pod("client", CLIENT)))
    assert engine.check(CLIENT, WEB, 8080, "TCP")[0]
    engine.apply(event(MODIFIED, NAMESPACES.key, namespace("prod", env="staging")))
    assert not engine.check(CLIENT, WEB, 8080, "TCP")[0]


def test_pods_are_indexed_only_while_a_policy_exists(engine: PolicyEngine) -> None:
    assert engine.pod_at(CLIENT) is None  # no policy: nothing to decide, nothing kept per pod
    engine.apply(event(ADDED, NETWORK_POLICIES.key, policy("any", ns="dev")))
    assert engine.pod_at(CLIENT).name == "client"  # the first policy loads the stored pods
    engine.apply(event(DELETED, NETWORK_POLICIES.key, policy("any", ns="dev")))
    assert engine.pod_at(CLIENT) is None
    engine.refresh_pods()  # what the check endpoint does when no policy exists
    assert engine.pod("prod", "client").name == "client"
    stored = list(engine._stored_pods())
    engine._stored_pods = lambda: [p for p in stored if p["metadata"]["name"] != "client"]  # client deleted meanwhile
    engine.apply(event(ADDED, NETWORK_POLICIES.key, policy("any", ns="dev")))
    assert engine.pod_at(CLIENT) is None  # the first policy indexes what is stored now, nothing older


def test_pod_ip_changes_and_deletion_move_the_identity(engine: PolicyEngine) -> None:
    engine.apply(event(ADDED, NETWORK_POLICIES.key, policy("any", ns="dev")))
    assert engine.pod_at(CLIENT) is not None
    engine.apply(event(MODIFIED, PODS.key, pod("client", "127.244.0.99")))
    assert engine.pod_at(CLIENT) is None and engine.pod_at("127.244.0.99").name == "client"
    engine.apply(event(DELETED, PODS.key, pod("client", "127.244.0.99")))
    assert engine.pod_at("127.244.0.99") is None and engine.pod("prod", "client") is None


def test_host_network_and_finished_pods_are_no_pods(engine: PolicyEngine) -> None:
    engine.apply(event(ADDED, NETWORK_POLICIES.key, policy("any", ns="dev")))
    engine.apply(event(ADDED, PODS.key, pod("agent", "127.0.0.1", spec={"hostNetwork": True})))
    engine.apply(event(MODIFIED, PODS.key, pod("client", CLIENT, phase="Succeeded")))
    assert engine.pod_at("127.0.0.1") is None
    assert engine.pod("prod", "agent") == "127.0.0.1"  # it counts as the node's address
    assert engine.pod_at(CLIENT) is None


def test_readiness_only_changes_keep_the_cache(engine: PolicyEngine) -> None:
    engine.apply(event(ADDED, NETWORK_POLICIES.key, policy("deny-all", policyTypes=["Ingress"])))
    engine.check(CLIENT, WEB, 8080, "TCP")
    ready = pod("web", WEB)
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    engine.apply(event(MODIFIED, PODS.key, ready))
    assert engine._cache  # nothing a decision reads changed
    engine.apply(event(ADDED, SERVICES.key, {"metadata": {"name": "s", "namespace": "prod"}}))
    assert engine._cache


def test_explain_reports_pods_addresses_and_policies(engine: PolicyEngine) -> None:
    engine.apply(event(ADDED, NETWORK_POLICIES.key, policy(
        "egress-dns-only", policyTypes=["Egress"], egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}],
    )))
    doc = engine.explain(CLIENT, "127.0.0.53", 53, "udp")
    assert doc["allowed"] and doc["protocol"] == "UDP"
    assert doc["source"] == {"pod": "prod/client", "ip": CLIENT, "labels": {"app": "client"}}
    assert doc["destination"] == {"address": "127.0.0.53"}
    assert doc["policies"] == ["prod/egress-dns-only"]
    denied = engine.explain(engine.pod("prod", "client"), engine.pod("prod", "web"), 8080, "TCP")
    assert not denied["allowed"] and denied["deniedBy"] == ["egress"]
    assert denied["policies"] == ["prod/egress-dns-only"]
    assert any("isolated for egress" in r for r in denied["reasons"])


def test_a_policy_that_cannot_compile_is_dropped_not_fatal(engine: PolicyEngine) -> None:
    bad = policy("bad", ingress=[{"from": [{"ipBlock": {"cidr": "not-a-cidr"}}]}])
    engine.apply(event(ADDED, NETWORK_POLICIES.key, bad))
    assert engine.policy_count == 0
    assert engine.check(CLIENT, WEB, 8080, "TCP")[0]


def test_resolve_port() -> None:
    web = PodRef("prod", "web", WEB, {}, {"http": (8080, "TCP")})
    assert resolve_port("8080", "10.0.0.1") == 8080
    assert resolve_port("http", web) == 8080
    with pytest.raises(ValueError, match="no container port named"):
        resolve_port("grpc", web)
    with pytest.raises(ValueError, match="no pod"):
        resolve_port("http", "10.0.0.1")
    with pytest.raises(ValueError, match="out of range"):
        resolve_port("70000", web)
