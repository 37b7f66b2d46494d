"""NetworkPolicy decisions, rule form by rule form, in both directions; and policy validation."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.netpol.semantics import (
    CompiledPolicy,
    PodRef,
    compile_policy,
    decide,
    index_by_namespace,
)
from emulator.netpol.validation import validate_network_policy

NAMESPACES = {"prod": {"env": "prod", "team": "a"}, "dev": {"env": "dev"}, "other": {}}

WEB = PodRef("prod", "web", "127.1.0.1", {"app": "web"}, {"http": (8080, "TCP"), "dns": (53, "UDP")})
DB = PodRef("prod", "db", "127.1.0.2", {"app": "db"}, {"pg": (5432, "TCP")})
CLIENT = PodRef("prod", "client", "127.1.0.3", {"app": "client"})
DEV_CLIENT = PodRef("dev", "client", "127.1.0.4", {"app": "client"})
DEV_TOOL = PodRef("dev", "tool", "127.1.0.6", {"app": "tool"})
OTHER = PodRef("other", "x", "127.1.0.5", {"app": "client"})
EXTERNAL = "203.0.113.7"


def np(
    name: str,
    ns: str = "prod",
    pods: dict[str, Any] | None = None,
    ingress: list[Any] | None = None,
    egress: list[Any] | None = None,
    types: list[str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": pods or {}}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if types is not None:
        spec["policyTypes"] = types
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def app(name: str) -> dict[str, Any]:
    return {"matchLabels": {"app": name}}


DENY_INGRESS = np("deny-in", types=["Ingress"])
DENY_EGRESS = np("deny-out", types=["Egress"])
ALLOW_ALL_INGRESS = np("allow-in", ingress=[{}])
ALLOW_ALL_EGRESS = np("allow-out", egress=[{}], types=["Egress"])


def only_web(ingress: list[Any]) -> dict[str, Any]:
    return np("web", pods=app("web"), ingress=ingress)


def client_egress(egress: list[Any]) -> dict[str, Any]:
    return np("client-out", pods=app("client"), egress=egress, types=["Egress"])


# (case, policies, source, destination, port, protocol, allowed)
CASES: list[tuple[str, list[dict[str, Any]], PodRef | str, PodRef | str, int, str, bool]] = [
    # --- isolation and the default patterns
    ("no policies allow everything", [], CLIENT, WEB, 8080, "TCP", True),
    ("default deny ingress", [DENY_INGRESS], CLIENT, WEB, 8080, "TCP", False),
    ("default deny ingress stays in its namespace", [DENY_INGRESS], WEB, DEV_CLIENT, 80, "TCP", True),
    ("default deny ingress does not isolate egress", [DENY_INGRESS], WEB, EXTERNAL, 80, "TCP", True),
    ("allow-all ingress beats default deny (union)", [DENY_INGRESS, ALLOW_ALL_INGRESS], CLIENT, WEB, 8080, "TCP", True),
    ("allow-all ingress admits external addresses", [ALLOW_ALL_INGRESS], EXTERNAL, WEB, 8080, "TCP", True),
    ("empty from list matches all", [only_web([{"from": [], "ports": []}])], DEV_CLIENT, WEB, 1, "UDP", True),
    ("non-empty podSelector isolates only its pods", [only_web([])], CLIENT, DB, 5432, "TCP", True),
    ("non-empty podSelector isolates its pods", [only_web([])], CLIENT, WEB, 8080, "TCP", False),
    (
        "policyTypes Egress with egress: [] denies egress",
        [np("e", ingress=[], egress=[], types=["Egress"])],
        CLIENT,
        WEB,
        80,
        "TCP",
        False,
    ),
    (
        "policyTypes Egress leaves ingress open",
        [np("e", pods=app("client"), ingress=[], types=["Egress"])],
        WEB,
        CLIENT,
        80,
        "TCP",
        True,
    ),
    (
        "egress rules make the default Ingress+Egress",
        [np("c", pods=app("client"), egress=[{}])],
        WEB,
        CLIENT,
        80,
        "TCP",
        False,
    ),
    ("default deny egress", [DENY_EGRESS], CLIENT, WEB, 8080, "TCP", False),
    ("default deny egress, other namespace unaffected", [DENY_EGRESS], DEV_CLIENT, WEB, 8080, "TCP", True),
    ("default deny egress to external", [DENY_EGRESS], CLIENT, EXTERNAL, 443, "TCP", False),
    ("allow-all egress beats default deny", [DENY_EGRESS, ALLOW_ALL_EGRESS], CLIENT, EXTERNAL, 443, "TCP", True),
    (
        "egress: [] with policyTypes Egress denies",
        [np("e", egress=[], types=["Egress"])],
        CLIENT,
        DB,
        5432,
        "TCP",
        False,
    ),
    (
        "egress: [] without policyTypes isolates no egress",
        [np("e", pods=app("none"), egress=[])],
        CLIENT,
        DB,
        5432,
        "TCP",
        True,
    ),
    # --- a pod reaching itself
    ("self, pod", [DENY_INGRESS, DENY_EGRESS], WEB, WEB, 8080, "TCP", True),
    ("self, by address", [DENY_INGRESS], WEB.ip, WEB, 8080, "TCP", True),
    # --- peers, ingress direction
    (
        "from podSelector, same namespace",
        [only_web([{"from": [{"podSelector": app("client")}]}])],
        CLIENT,
        WEB,
        8080,
        "TCP",
        True,
    ),
    (
        "from podSelector, other namespace",
        [only_web([{"from": [{"podSelector": app("client")}]}])],
        DEV_CLIENT,
        WEB,
        8080,
        "TCP",
        False,
    ),
    (
        "from podSelector, wrong labels",
        [only_web([{"from": [{"podSelector": app("client")}]}])],
        DB,
        WEB,
        8080,
        "TCP",
        False,
    ),
    (
        "from empty podSelector = own namespace",
        [only_web([{"from": [{"podSelector": {}}]}])],
        DB,
        WEB,
        8080,
        "TCP",
        True,
    ),
    (
        "from empty podSelector not other ns",
        [only_web([{"from": [{"podSelector": {}}]}])],
        OTHER,
        WEB,
        8080,
        "TCP",
        False,
    ),
    (
        "from namespaceSelector alone",
        [only_web([{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]}])],
        DEV_TOOL,
        WEB,
        80,
        "TCP",
        True,
    ),
    (
        "from namespaceSelector, not own ns",
        [only_web([{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]}])],
        CLIENT,
        WEB,
        80,
        "TCP",
        False,
    ),
    (
        "from empty namespaceSelector = all pods",
        [only_web([{"from": [{"namespaceSelector": {}}]}])],
        OTHER,
        WEB,
        80,
        "TCP",
        True,
    ),
    (
        "from empty namespaceSelector, not external",
        [only_web([{"from": [{"namespaceSelector": {}}]}])],
        EXTERNAL,
        WEB,
        80,
        "TCP",
        False,
    ),
    (
        "namespace by its name label",
        [only_web([{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}]}])],
        OTHER,
        WEB,
        80,
        "TCP",
        True,
    ),
    (
        "ns AND pod: both match",
        [only_web([{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}, "podSelector": app("client")}]}])],
        DEV_CLIENT,
        WEB,
        80,
        "TCP",
        True,
    ),
    (
        "ns AND pod: pod does not",
        [only_web([{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}, "podSelector": app("client")}]}])],
        DEV_TOOL,
        WEB,
        80,
        "TCP",
        False,
    ),
    (
        "ns AND pod: ns does not",
        [only_web([{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}, "podSelector": app("client")}]}])],
        CLIENT,
        WEB,
        80,
        "TCP",
        False,
    ),
    (
        "ns OR pod: ns entry",
        [
            only_web(
                [{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}, {"podSelector": app("client")}]}]
            )
        ],
        DEV_TOOL,
        WEB,
        80,
        "TCP",
        True,
    ),
    (
        "ns OR pod: pod entry",
        [
            only_web(
                [{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}, {"podSelector": app("client")}]}]
            )
        ],
        CLIENT,
        WEB,
        80,
        "TCP",
        True,
    ),
    (
        "ns OR pod: neither",
        [
            only_web(
                [{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}, {"podSelector": app("client")}]}]
            )
        ],
        OTHER,
        WEB,
        80,
        "TCP",
        False,
    ),
    (
        "from ipBlock, external inside",
        [only_web([{"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.7/32"]}}]}])],
        "203.0.113.8",
        WEB,
        80,
        "TCP",
        True,
    ),
    (
        "from ipBlock, external in except",
        [only_web([{"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.7/32"]}}]}])],
        EXTERNAL,
        WEB,
        80,
        "TCP",
        False,
    ),
    (
        "from ipBlock, external outside",
        [only_web([{"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}])],
        "198.51.100.1",
        WEB,
        80,
        "TCP",
        False,
    ),
    (
        "from ipBlock matches a pod's IP",
        [only_web([{"from": [{"ipBlock": {"cidr": "127.1.0.0/16"}}]}])],
        CLIENT,
        WEB,
        80,
        "TCP",
        True,
    ),
    (
        "from ipBlock, v6 address vs v4 block",
        [only_web([{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])],
        "::1",
        WEB,
        80,
        "TCP",
        False,
    ),
    ("from ipBlock ::/0", [only_web([{"from": [{"ipBlock": {"cidr": "::/0"}}]}])], "2001:db8::1", WEB, 80, "TCP", True),
    (
        "external source never matches podSelector",
        [only_web([{"from": [{"podSelector": {}}]}])],
        EXTERNAL,
        WEB,
        80,
        "TCP",
        False,
    ),
    # --- peers, egress direction
    ("to podSelector", [client_egress([{"to": [{"podSelector": app("db")}]}])], CLIENT, DB, 5432, "TCP", True),
    (
        "to podSelector, wrong pod",
        [client_egress([{"to": [{"podSelector": app("db")}]}])],
        CLIENT,
        WEB,
        8080,
        "TCP",
        False,
    ),
    (
        "to podSelector, other namespace",
        [client_egress([{"to": [{"podSelector": app("client")}]}])],
        CLIENT,
        DEV_CLIENT,
        80,
        "TCP",
        False,
    ),
    (
        "to namespaceSelector",
        [client_egress([{"to": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]}])],
        CLIENT,
        DEV_TOOL,
        80,
        "TCP",
        True,
    ),
    (
        "to namespaceSelector, not own ns",
        [client_egress([{"to": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]}])],
        CLIENT,
        DB,
        80,
        "TCP",
        False,
    ),
    (
        "to ns AND pod",
        [client_egress([{"to": [{"namespaceSelector": {}, "podSelector": app("tool")}]}])],
        CLIENT,
        DEV_TOOL,
        80,
        "TCP",
        True,
    ),
    (
        "to ns AND pod, pod does not",
        [client_egress([{"to": [{"namespaceSelector": {}, "podSelector": app("tool")}]}])],
        CLIENT,
        DEV_CLIENT,
        80,
        "TCP",
        False,
    ),
    (
        "to ipBlock, external",
        [client_egress([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}])],
        CLIENT,
        "8.8.8.8",
        443,
        "TCP",
        True,
    ),
    (
        "to ipBlock, except",
        [client_egress([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}])],
        CLIENT,
        "10.1.2.3",
        443,
        "TCP",
        False,
    ),
    (
        "to ipBlock covers pod IPs",
        [client_egress([{"to": [{"ipBlock": {"cidr": "127.1.0.1/32"}}]}])],
        CLIENT,
        WEB,
        8080,
        "TCP",
        True,
    ),
    (
        "to podSelector never matches external",
        [client_egress([{"to": [{"namespaceSelector": {}}]}])],
        CLIENT,
        "8.8.8.8",
        53,
        "UDP",
        False,
    ),
    (
        "egress to DNS only: DNS",
        [client_egress([{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}])],
        CLIENT,
        "10.96.0.10",
        53,
        "UDP",
        True,
    ),
    (
        "egress to DNS only: DNS over TCP",
        [client_egress([{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}])],
        CLIENT,
        "10.96.0.10",
        53,
        "TCP",
        True,
    ),
    (
        "egress to DNS only: web",
        [client_egress([{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}])],
        CLIENT,
        WEB,
        8080,
        "TCP",
        False,
    ),
    # --- ports (ingress)
    ("numeric port", [only_web([{"ports": [{"port": 8080}]}])], CLIENT, WEB, 8080, "TCP", True),
    ("numeric port, other port", [only_web([{"ports": [{"port": 8080}]}])], CLIENT, WEB, 8081, "TCP", False),
    (
        "numeric port, TCP is the default protocol",
        [only_web([{"ports": [{"port": 8080}]}])],
        CLIENT,
        WEB,
        8080,
        "UDP",
        False,
    ),
    (
        "protocol is case-insensitive in the query",
        [only_web([{"ports": [{"port": 8080}]}])],
        CLIENT,
        WEB,
        8080,
        "tcp",
        True,
    ),
    ("protocol only: any UDP port", [only_web([{"ports": [{"protocol": "UDP"}]}])], CLIENT, WEB, 9999, "UDP", True),
    ("protocol only: not TCP", [only_web([{"ports": [{"protocol": "UDP"}]}])], CLIENT, WEB, 9999, "TCP", False),
    ("SCTP", [only_web([{"ports": [{"protocol": "SCTP", "port": 9}]}])], CLIENT, WEB, 9, "SCTP", True),
    ("endPort: first", [only_web([{"ports": [{"port": 8000, "endPort": 8080}]}])], CLIENT, WEB, 8000, "TCP", True),
    (
        "endPort: last (inclusive)",
        [only_web([{"ports": [{"port": 8000, "endPort": 8080}]}])],
        CLIENT,
        WEB,
        8080,
        "TCP",
        True,
    ),
    ("endPort: after", [only_web([{"ports": [{"port": 8000, "endPort": 8080}]}])], CLIENT, WEB, 8081, "TCP", False),
    ("endPort: before", [only_web([{"ports": [{"port": 8000, "endPort": 8080}]}])], CLIENT, WEB, 7999, "TCP", False),
    ("named port", [only_web([{"ports": [{"port": "http"}]}])], CLIENT, WEB, 8080, "TCP", True),
    ("named port, other number", [only_web([{"ports": [{"port": "http"}]}])], CLIENT, WEB, 8081, "TCP", False),
    (
        "named port, pod lacks the name",
        [np("all", ingress=[{"ports": [{"port": "http"}]}])],
        CLIENT,
        DB,
        8080,
        "TCP",
        False,
    ),
    ("named UDP port", [only_web([{"ports": [{"port": "dns", "protocol": "UDP"}]}])], CLIENT, WEB, 53, "UDP", True),
    ("named UDP port needs protocol UDP", [only_web([{"ports": [{"port": "dns"}]}])], CLIENT, WEB, 53, "UDP", False),
    (
        "ports and peers both needed: port",
        [only_web([{"from": [{"podSelector": app("client")}], "ports": [{"port": 8080}]}])],
        CLIENT,
        WEB,
        8081,
        "TCP",
        False,
    ),
    (
        "ports and peers both needed: peer",
        [only_web([{"from": [{"podSelector": app("client")}], "ports": [{"port": 8080}]}])],
        DB,
        WEB,
        8080,
        "TCP",
        False,
    ),
    (
        "ports and peers both match",
        [only_web([{"from": [{"podSelector": app("client")}], "ports": [{"port": 8080}]}])],
        CLIENT,
        WEB,
        8080,
        "TCP",
        True,
    ),
    (
        "rules are OR-ed",
        [only_web([{"ports": [{"port": 1}]}, {"ports": [{"port": 8080}]}])],
        CLIENT,
        WEB,
        8080,
        "TCP",
        True,
    ),
    # --- ports (egress)
    (
        "egress named port resolves on the destination",
        [client_egress([{"ports": [{"port": "http"}]}])],
        CLIENT,
        WEB,
        8080,
        "TCP",
        True,
    ),
    (
        "egress named port never matches an address",
        [client_egress([{"ports": [{"port": "http"}]}])],
        CLIENT,
        "203.0.113.9",
        8080,
        "TCP",
        False,
    ),
    ("egress endPort", [client_egress([{"ports": [{"port": 5000, "endPort": 6000}]}])], CLIENT, DB, 5432, "TCP", True),
    # --- both sides needed
    ("egress allows, ingress denies", [ALLOW_ALL_EGRESS, DENY_INGRESS], CLIENT, WEB, 8080, "TCP", False),
    ("ingress allows, egress denies", [ALLOW_ALL_INGRESS, DENY_EGRESS], CLIENT, WEB, 8080, "TCP", False),
    (
        "egress and ingress allow",
        [DENY_EGRESS, DENY_INGRESS, ALLOW_ALL_INGRESS, ALLOW_ALL_EGRESS],
        CLIENT,
        WEB,
        8080,
        "TCP",
        True,
    ),
    ("external source: only ingress applies", [DENY_EGRESS], EXTERNAL, WEB, 8080, "TCP", True),
    ("external to external: nothing applies", [DENY_EGRESS, DENY_INGRESS], EXTERNAL, "8.8.8.8", 53, "UDP", True),
]


@pytest.mark.parametrize(
    ("policies", "source", "destination", "port", "protocol", "allowed"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(
    policies: list[dict[str, Any]],
    source: PodRef | str,
    destination: PodRef | str,
    port: int,
    protocol: str,
    allowed: bool,
) -> None:
    for policy in policies:
        assert validate_network_policy(policy) == [], policy
    compiled = [compile_policy(p) for p in policies]
    decision = decide(source, destination, port, protocol, compiled, NAMESPACES)
    assert decision.allowed is allowed, decision.reasons
    # The indexed form answers the same.
    assert decide(source, destination, port, protocol, index_by_namespace(compiled), NAMESPACES).allowed is allowed


def compiled(*policies: dict[str, Any]) -> list[CompiledPolicy]:
    return [compile_policy(p) for p in policies]


def test_denial_names_the_isolating_policies_of_the_denying_side() -> None:
    d = decide(CLIENT, WEB, 8080, "TCP", compiled(ALLOW_ALL_EGRESS, DENY_INGRESS, only_web([])), NAMESPACES)
    assert not d
    assert d.denied_by == ("ingress",)
    assert d.policies == ("prod/deny-in", "prod/web")
    assert any("isolated for ingress by prod/deny-in, prod/web" in r for r in d.reasons)


def test_denial_on_both_sides() -> None:
    d = decide(CLIENT, WEB, 8080, "TCP", compiled(DENY_EGRESS, DENY_INGRESS), NAMESPACES)
    assert d.denied_by == ("egress", "ingress")
    assert d.policies == ("prod/deny-out", "prod/deny-in")


def test_allow_names_the_allowing_policies() -> None:
    d = decide(CLIENT, WEB, 8080, "TCP", compiled(DENY_INGRESS, ALLOW_ALL_INGRESS), NAMESPACES)
    assert d.allowed
    assert d.policies == ("prod/allow-in",)
    assert d.denied_by == ()


def test_not_isolated_is_explained() -> None:
    d = decide(CLIENT, WEB, 8080, "TCP", [], NAMESPACES)
    assert d.reasons == (
        "egress: prod/client is not isolated for egress",
        "ingress: prod/web is not isolated for ingress",
    )
    assert d.policies == ()


def test_self_is_explained() -> None:
    d = decide(WEB, WEB, 1, "TCP", compiled(DENY_INGRESS), NAMESPACES)
    assert d.reasons == ("pod prod/web may always reach itself",)


def test_namespace_labels_optional_name_label_still_works() -> None:
    policy = only_web([{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dev"}}}]}])
    assert decide(DEV_CLIENT, WEB, 80, "TCP", compiled(policy)).allowed
    assert not decide(OTHER, WEB, 80, "TCP", compiled(policy)).allowed


def test_policies_may_be_a_generator() -> None:
    assert not decide(CLIENT, WEB, 80, "TCP", (p for p in compiled(DENY_INGRESS)), NAMESPACES).allowed


def test_compile_defaults_policy_types() -> None:
    assert (compile_policy(np("a")).isolates_ingress, compile_policy(np("a")).isolates_egress) == (True, False)
    p = compile_policy(np("b", egress=[{}]))
    assert (p.isolates_ingress, p.isolates_egress) == (True, True)
    p = compile_policy(np("c", ingress=[{}], types=["Egress"]))
    assert (p.isolates_ingress, p.isolates_egress, p.ingress) == (False, True, ())
    assert compile_policy(np("d")).key == "prod/d"


def test_pod_ref_from_pod() -> None:
    pod = {
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9}]}],
            "initContainers": [
                {
                    "name": "sidecar",
                    "restartPolicy": "Always",
                    "ports": [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                },
                {"name": "init", "ports": [{"name": "setup", "containerPort": 1}]},
            ],
        },
        "status": {"podIP": "127.1.0.1"},
    }
    ref = PodRef.from_pod(pod)
    assert ref == PodRef("prod", "web", "127.1.0.1", {"app": "web"}, {"http": (8080, "TCP"), "metrics": (9090, "TCP")})
    assert hash(ref) == hash(PodRef("prod", "web", "127.1.0.1"))


# --- validation


def spec_errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.field, e.reason) for e in validate_network_policy({"spec": spec})]


@pytest.mark.parametrize(
    ("spec", "causes"),
    [
        ({}, []),
        ({"podSelector": {}}, []),
        ({"podSelector": {"matchLabels": {"bad key": "x"}}}, [("spec.podSelector.matchLabels", "FieldValueInvalid")]),
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            [("spec.podSelector.matchExpressions[0].values", "FieldValueRequired")],
        ),
        ({"ingress": [{"ports": [{"port": 80, "endPort": 90}]}]}, []),
        (
            {"ingress": [{"ports": [{"port": 80, "endPort": 79}]}]},
            [("spec.ingress[0].ports[0].endPort", "FieldValueInvalid")],
        ),
        (
            {"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
            [("spec.ingress[0].ports[0].endPort", "FieldValueInvalid")],
        ),
        ({"ingress": [{"ports": [{"endPort": 90}]}]}, [("spec.ingress[0].ports[0].endPort", "FieldValueInvalid")]),
        (
            {"ingress": [{"ports": [{"port": 80, "endPort": 70000}]}]},
            [("spec.ingress[0].ports[0].endPort", "FieldValueInvalid")],
        ),
        ({"ingress": [{"ports": [{"port": 0}]}]}, [("spec.ingress[0].ports[0].port", "FieldValueInvalid")]),
        (
            {"ingress": [{"ports": [{"port": "Bad--Name"}]}]},
            [("spec.ingress[0].ports[0].port", "FieldValueInvalid")] * 2,
        ),
        (
            {"egress": [{"ports": [{"port": 53, "protocol": "ICMP"}]}]},
            [("spec.egress[0].ports[0].protocol", "FieldValueNotSupported")],
        ),
        ({"ingress": [{"from": [{}]}]}, [("spec.ingress[0].from[0]", "FieldValueRequired")]),
        (
            {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
            [("spec.ingress[0].from[0]", "FieldValueForbidden")],
        ),
        ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]}, []),
        (
            {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]},
            [("spec.egress[0].to[0].ipBlock.cidr", "FieldValueInvalid")],
        ),
        ({"egress": [{"to": [{"ipBlock": {}}]}]}, [("spec.egress[0].to[0].ipBlock.cidr", "FieldValueRequired")]),
        (
            {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]},
            [("spec.egress[0].to[0].ipBlock.except[0]", "FieldValueInvalid")],
        ),
        (
            {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}]},
            [("spec.egress[0].to[0].ipBlock.except[0]", "FieldValueInvalid")],
        ),
        (
            {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["nope"]}}]}]},
            [("spec.egress[0].to[0].ipBlock.except[0]", "FieldValueInvalid")],
        ),
        (
            {
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                                }
                            }
                        ]
                    }
                ]
            },
            [("spec.egress[0].to[0].namespaceSelector.matchExpressions[0].values", "FieldValueForbidden")],
        ),
        ({"policyTypes": ["Ingress", "Egress"]}, []),
        ({"policyTypes": ["ingress"]}, [("spec.policyTypes[0]", "FieldValueNotSupported")]),
        ({"policyTypes": ["Ingress", "Egress", "Ingress"]}, [("spec.policyTypes", "FieldValueInvalid")]),
    ],
)
def test_validate_network_policy(spec: dict[str, Any], causes: list[tuple[str, str]]) -> None:
    assert spec_errors(spec) == causes


def test_validation_messages() -> None:
    (err,) = validate_network_policy({"spec": {"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]}})
    assert err.message == "Invalid value: 90: may not be specified when `port` is non-numeric"
    (err,) = validate_network_policy({"spec": {"ingress": [{"from": [{}]}]}})
    assert err.message == "Required value: must specify a peer"
    (err,) = validate_network_policy(
        {"spec": {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]}}
    )
    assert err.message == 'Invalid value: "11.0.0.0/16": must be a strict subset of `cidr`'
    (err,) = validate_network_policy({"spec": {"policyTypes": ["Both"]}})
    assert err.message == 'Unsupported value: "Both": supported values: "Ingress", "Egress"'
