"""RBAC: rule and subject matching, the decision and its reasons, aggregation, the bootstrap policy and
the four kinds' validation and columns, without a server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from emulator import errors
from emulator.controllers.clusterroleaggregation import ClusterRoleAggregationController, ensure_bootstrap_policy
from emulator.kinds import BY_KEY, CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, NAMESPACES, ROLE_BINDINGS, ROLES
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.security import bootstrappolicy, rbac
from emulator.security.rbac import Attributes, ObjectsPolicy, Rule
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

GROUP = "rbac.authorization.k8s.io"
SA = "system:serviceaccount:shop:bot"
SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated")


def attrs(verb: str, resource: str = "pods", *, namespace: str = "shop", group: str = "", sub: str = "", name: str = "",
          user: str = SA, groups: tuple[str, ...] = SA_GROUPS) -> Attributes:
    return Attributes(user, groups, verb, namespace, group, resource, sub, name)


def path(verb: str, url: str, user: str = SA, groups: tuple[str, ...] = SA_GROUPS) -> Attributes:
    return Attributes(user, groups, verb, path=url, resource_request=False)


def role(name: str, *rules: dict[str, Any], namespace: str = "", labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {}), **({"labels": labels} if labels else {})}
    return {"kind": "Role" if namespace else "ClusterRole", "metadata": meta, "rules": list(rules)}


def binding(name: str, kind: str, role_name: str, *subjects: dict[str, Any], namespace: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding", "metadata": meta,
        "roleRef": {"apiGroup": GROUP, "kind": kind, "name": role_name}, "subjects": list(subjects),
    }


def sa(name: str = "bot", namespace: str | None = "shop") -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": name, **({"namespace": namespace} if namespace else {})}


def user(name: str) -> dict[str, Any]:
    return {"kind": "User", "apiGroup": GROUP, "name": name}


def group(name: str) -> dict[str, Any]:
    return {"kind": "Group", "apiGroup": GROUP, "name": name}


# --- rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "request_", "allowed"),
    [
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("get"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("list"), False),
        ({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}, attrs("delete"), True),
        ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}, attrs("get"), False),
        ({"verbs": ["get"], "apiGroups": ["*"], "resources": ["deployments"]}, attrs("get", "deployments", group="apps"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}, attrs("get", "secrets"), True),
        # subresources are named on their own: `pods` does not reach `pods/log`
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("get", sub="log", name="web"), False),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, attrs("get", sub="log", name="web"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, attrs("get", name="web"), False),
        ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/scale"]}, attrs("update", "deployments", group="apps", sub="scale"), True),
        ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/scale"]}, attrs("update", "deployments", group="apps"), False),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}, attrs("get", sub="status", name="web"), True),
        # resourceNames: only requests that name an object in the list
        ({"verbs": ["get", "list", "create"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]}, attrs("get", name="web"), True),
        ({"verbs": ["get", "list", "create"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]}, attrs("get", name="db"), False),
        ({"verbs": ["get", "list", "create"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]}, attrs("list"), False),
        ({"verbs": ["get", "list", "create"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]}, attrs("create"), False),
        # non-resource URLs: exact, or a prefix ending in *
        ({"verbs": ["get"], "nonResourceURLs": ["/version"]}, path("get", "/version"), True),
        ({"verbs": ["get"], "nonResourceURLs": ["/version"]}, path("get", "/version/"), False),
        ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, path("get", "/apis/apps/v1"), True),
        ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, path("get", "/apis"), False),
        ({"verbs": ["get"], "nonResourceURLs": ["*"]}, path("get", "/anything"), True),
        ({"verbs": ["get"], "nonResourceURLs": ["*"]}, path("post", "/anything"), False),
        # a resource rule says nothing about paths, and the other way round
        ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, path("get", "/version"), False),
        ({"verbs": ["*"], "nonResourceURLs": ["*"]}, attrs("get"), False),
    ],
)
def test_rule_matching(rule: dict[str, Any], request_: Attributes, allowed: bool) -> None:
    assert rbac.rule_allows(Rule.of(rule), request_) is allowed


@pytest.mark.parametrize(
    ("subject", "binding_namespace", "who", "groups", "matches"),
    [
        (user("alice"), "", "alice", (), True),
        (user("alice"), "", "bob", (), False),
        (group("devs"), "", "bob", ("devs",), True),
        (group("devs"), "", "devs", (), False),
        (sa(), "", SA, SA_GROUPS, True),
        (sa(), "", "system:serviceaccount:other:bot", (), False),
        # a RoleBinding's service account without a namespace is one of the binding's namespace
        (sa(namespace=None), "shop", SA, SA_GROUPS, True),
        (sa(namespace=None), "other", SA, SA_GROUPS, False),
        (sa(namespace=None), "", SA, SA_GROUPS, False),
        (group("system:serviceaccounts:shop"), "", SA, SA_GROUPS, True),
        ({"kind": "Robot", "name": "bot"}, "", "bot", (), False),
    ],
)
def test_subject_matching(subject: dict[str, Any], binding_namespace: str, who: str, groups: tuple[str, ...], matches: bool) -> None:
    assert rbac.subject_matches(subject, who, groups, binding_namespace) is matches


# --- decisions ------------------------------------------------------------------------------------


POLICY = ObjectsPolicy([
    role("pod-reader", {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}),
    role("nodes", {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}),
    role("web-only", {"verbs": ["get", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["web"]}, namespace="shop"),
    binding("bot-reads-pods", "ClusterRole", "pod-reader", sa(), namespace="shop"),
    binding("bot-web", "Role", "web-only", sa(namespace=None), namespace="shop"),
    binding("devs-nodes", "ClusterRole", "nodes", group("devs")),
    binding("dangling", "ClusterRole", "gone", user("carol")),
])


def test_a_role_binding_grants_a_cluster_role_in_its_namespace_only() -> None:
    allowed = rbac.authorize(POLICY, attrs("list"))
    assert allowed.allowed
    assert allowed.reason == 'RBAC: allowed by RoleBinding "bot-reads-pods/shop" of ClusterRole "pod-reader" to ServiceAccount "bot/shop"'
    assert not rbac.authorize(POLICY, attrs("list", namespace="prod")).allowed
    assert not rbac.authorize(POLICY, attrs("list", namespace="")).allowed  # all namespaces: needs a ClusterRoleBinding
    assert not rbac.authorize(POLICY, attrs("delete", name="web")).allowed


def test_a_role_with_resource_names() -> None:
    assert rbac.authorize(POLICY, attrs("update", "configmaps", name="web")).allowed
    assert not rbac.authorize(POLICY, attrs("update", "configmaps", name="db")).allowed
    assert not rbac.authorize(POLICY, attrs("list", "configmaps")).allowed


def test_a_cluster_role_binding_grants_everywhere_to_its_group() -> None:
    bob = {"user": "bob", "groups": ("devs", "system:authenticated")}
    decision = rbac.authorize(POLICY, attrs("get", "nodes", namespace="", name="n1", **bob))  # type: ignore[arg-type]
    assert decision.allowed and decision.reason == 'RBAC: allowed by ClusterRoleBinding "devs-nodes" of ClusterRole "nodes" to Group "devs"'
    assert not rbac.authorize(POLICY, attrs("get", "nodes", namespace="", user="eve", groups=())).allowed


def test_privileged_group_and_missing_roles() -> None:
    assert rbac.authorize(ObjectsPolicy(), attrs("delete", "nodes", namespace="", user="root", groups=("system:masters",))).allowed
    denied = rbac.authorize(POLICY, attrs("get", user="carol", groups=()))
    assert not denied.allowed and denied.errors == ('clusterrole.rbac.authorization.k8s.io "gone" not found',)


def test_rules_for_lists_cluster_and_namespace_rules() -> None:
    rules, problems = rbac.rules_for(POLICY, SA, SA_GROUPS, "shop")
    assert [r.resources for r in rules] == [("pods",), ("configmaps",)] and problems == []
    rules, _ = rbac.rules_for(POLICY, SA, SA_GROUPS, "prod")
    assert rules == []


def test_forbidden_messages_are_the_api_servers() -> None:
    assert rbac.forbidden_message(attrs("list", namespace="kube-system")) == (
        'pods is forbidden: User "system:serviceaccount:shop:bot" cannot list resource "pods" in API group "" '
        'in the namespace "kube-system"'
    )
    assert rbac.forbidden_message(attrs("get", "deployments", group="apps", sub="scale", name="web", namespace="")) == (
        'deployments.apps "web" is forbidden: User "system:serviceaccount:shop:bot" cannot get resource '
        '"deployments/scale" in API group "apps" at the cluster scope'
    )
    assert rbac.forbidden_message(path("get", "/metrics")) == 'forbidden: User "system:serviceaccount:shop:bot" cannot get path "/metrics"'


# --- aggregation and the bootstrap policy ---------------------------------------------------------


def aggregate_all(roles: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run aggregation to a fixed point, as the controller's repeated syncs do."""
    by_name = {r["metadata"]["name"]: dict(r) for r in roles}
    changed = True
    while changed:
        changed = False
        for name, r in by_name.items():
            rules = rbac.aggregated_rules(r, by_name.values())
            if rules is not None and rules != (r.get("rules") or []):
                by_name[name] = {**r, "rules": rules}
                changed = True
    return by_name


def test_aggregation_is_the_union_of_matching_roles_in_name_order() -> None:
    a = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
    b = {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}
    monitoring = {
        "kind": "ClusterRole", "metadata": {"name": "monitoring", "labels": {"x": "y"}},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "mon"}}, {"matchExpressions": [{"key": "extra", "operator": "Exists"}]}]},
    }
    roles = [monitoring, role("z", a, labels={"agg": "mon"}), role("y", b, a, labels={"extra": ""}), role("other", b)]
    assert rbac.aggregated_rules(monitoring, roles) == [b, a]  # y before z, a once
    assert rbac.aggregated_rules(role("plain", a), roles) is None


def test_default_roles_aggregate_view_into_edit_into_admin() -> None:
    roles = aggregate_all([dict(r) for r in bootstrappolicy.CLUSTER_ROLES])
    policy = ObjectsPolicy([*roles.values(), binding("b", "ClusterRole", "view", sa(), namespace="shop")])
    assert rbac.authorize(policy, attrs("get", "deployments", group="apps")).allowed
    assert rbac.authorize(policy, attrs("get", sub="log", name="web")).allowed
    assert not rbac.authorize(policy, attrs("get", "secrets")).allowed
    assert not rbac.authorize(policy, attrs("create")).allowed
    view, edit, admin = (roles[n]["rules"] for n in ("view", "edit", "admin"))
    assert all(r in edit for r in view) and all(r in admin for r in edit)
    assert any("secrets" in r["resources"] for r in edit) and any("rolebindings" in r.get("resources", []) for r in admin)


def test_default_bindings_grant_discovery_and_self_reviews_to_the_authenticated() -> None:
    policy = ObjectsPolicy([*bootstrappolicy.CLUSTER_ROLES, *bootstrappolicy.CLUSTER_ROLE_BINDINGS])
    for url in ("/api", "/apis/apps/v1", "/openapi/v3", "/version", "/healthz"):
        assert rbac.authorize(policy, path("get", url)).allowed, url
    assert not rbac.authorize(policy, path("get", "/metrics")).allowed
    review = attrs("create", "selfsubjectaccessreviews", group="authorization.k8s.io", namespace="")
    assert rbac.authorize(policy, review).allowed
    assert rbac.authorize(policy, path("get", "/version", user="system:anonymous", groups=("system:unauthenticated",))).allowed
    assert not rbac.authorize(policy, path("get", "/api", user="system:anonymous", groups=("system:unauthenticated",))).allowed
    assert not rbac.authorize(policy, attrs("list")).allowed  # a service account gets nothing else by default


def test_reconciling_keeps_user_additions_and_respects_autoupdate_false() -> None:
    wanted = next(r for r in bootstrappolicy.CLUSTER_ROLES if r["metadata"]["name"] == "system:basic-user")
    assert bootstrappolicy.reconcile_role(None, wanted) == wanted
    assert bootstrappolicy.reconcile_role(wanted, wanted) is None
    extra = {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}
    changed = {**wanted, "rules": [extra]}
    fixed = bootstrappolicy.reconcile_role(changed, wanted)
    assert fixed is not None and fixed["rules"] == [extra, *wanted["rules"]]
    frozen = {**changed, "metadata": {**wanted["metadata"], "annotations": {bootstrappolicy.AUTOUPDATE_ANNOTATION: "false"}}}
    assert bootstrappolicy.reconcile_role(frozen, wanted) is None

    crb = bootstrappolicy.CLUSTER_ROLE_BINDINGS[0]
    assert bootstrappolicy.reconcile_binding(crb, crb) == (None, False)
    emptied, replace = bootstrappolicy.reconcile_binding({**crb, "subjects": [user("me")]}, crb)
    assert not replace and emptied is not None and emptied["subjects"] == [user("me"), *crb["subjects"]]
    rebound, replace = bootstrappolicy.reconcile_binding({**crb, "roleRef": {**crb["roleRef"], "name": "view"}}, crb)
    assert replace and rebound is not None and rebound["roleRef"] == crb["roleRef"]


# --- through the registry: the kinds, bootstrap and the aggregation controller ---------------------


@pytest.fixture
def registry() -> Registry:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")))
    registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}})
    return registry


def causes(exc: pytest.ExceptionInfo[errors.StatusError]) -> list[tuple[str, str]]:
    assert exc.value.code == 422
    return [(c["field"], c["message"]) for c in exc.value.details["causes"]]


def test_bindings_are_defaulted_validated_and_keep_their_role_ref(registry: Registry) -> None:
    created = registry.create(ROLE_BINDINGS, "shop", {
        "metadata": {"name": "system:web"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "bot"}],
    }).obj
    assert created["roleRef"]["apiGroup"] == GROUP and created["subjects"][0]["apiGroup"] == GROUP
    assert "apiGroup" not in created["subjects"][1]
    changed = {**created, "roleRef": {**created["roleRef"], "name": "edit"}}
    with pytest.raises(errors.StatusError) as exc:
        registry.update(ROLE_BINDINGS, "shop", "system:web", changed)
    assert causes(exc) == [("roleRef", "Invalid value: {APIGroup:rbac.authorization.k8s.io Kind:ClusterRole Name:edit}: cannot change roleRef")]
    with pytest.raises(errors.StatusError) as exc:
        registry.create(CLUSTER_ROLE_BINDINGS, "", {
            "metadata": {"name": "b"}, "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot"}, {"kind": "User", "apiGroup": "x", "name": "u"}, {"kind": "Robot", "name": "r2"}],
        })
    assert causes(exc) == [
        ("roleRef.kind", 'Unsupported value: "Role": supported values: "ClusterRole"'),
        ("subjects[0].namespace", "Required value"),
        ("subjects[1].apiGroup", 'Unsupported value: "x": supported values: "rbac.authorization.k8s.io"'),
        ("subjects[2].kind", 'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"'),
    ]


def test_roles_are_validated(registry: Registry) -> None:
    with pytest.raises(errors.StatusError) as exc:
        registry.create(ROLES, "shop", {"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}, {"verbs": []}]})
    assert causes(exc) == [
        ("rules[0].nonResourceURLs", 'Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource URLs'),
        ("rules[1].verbs", "Required value: verbs must contain at least one value"),
        ("rules[1].apiGroups", "Required value: resource rules must supply at least one api group"),
        ("rules[1].resources", "Required value: resource rules must supply at least one resource"),
    ]
    with pytest.raises(errors.StatusError) as exc:
        registry.create(CLUSTER_ROLES, "", {"metadata": {"name": "a/b"}, "aggregationRule": {}})
    assert causes(exc) == [
        ("metadata.name", "Invalid value: \"a/b\": may not contain '/'"),
        ("aggregationRule.clusterRoleSelectors", "Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"),
    ]
    ok = registry.create(CLUSTER_ROLES, "", {"metadata": {"name": "system:x"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]})
    assert ok.obj["rules"] == [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]


def test_bootstrap_is_idempotent_and_keeps_what_users_froze(registry: Registry) -> None:
    ensure_bootstrap_policy(registry)
    names = {o["metadata"]["name"] for o in registry.store.objects(CLUSTER_ROLES.key)}
    assert {"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery", "system:public-info-viewer",
            "system:service-account-issuer-discovery"} <= names
    bindings = {o["metadata"]["name"]: o for o in registry.store.objects(CLUSTER_ROLE_BINDINGS.key)}
    assert bindings["cluster-admin"]["subjects"] == [group("system:masters")]
    assert bindings["system:discovery"]["metadata"]["labels"] == {"kubernetes.io/bootstrapping": "rbac-defaults"}
    rv = registry.store.rv
    ensure_bootstrap_policy(registry)
    assert registry.store.rv == rv  # nothing written the second time

    frozen = registry.store.get(CLUSTER_ROLES.key, "", "system:discovery")
    assert frozen is not None
    frozen["metadata"]["annotations"][bootstrappolicy.AUTOUPDATE_ANNOTATION] = "false"
    frozen["rules"] = [{"verbs": ["get"], "nonResourceURLs": ["/version"]}]
    registry.update(CLUSTER_ROLES, "", "system:discovery", frozen)
    trimmed = registry.store.get(CLUSTER_ROLES.key, "", "system:basic-user")
    assert trimmed is not None
    trimmed["rules"] = trimmed["rules"][:1]
    registry.update(CLUSTER_ROLES, "", "system:basic-user", trimmed)
    registry.delete(CLUSTER_ROLE_BINDINGS, "", "system:basic-user")
    ensure_bootstrap_policy(registry)
    assert registry.store.get(CLUSTER_ROLES.key, "", "system:discovery")["rules"] == frozen["rules"]  # type: ignore[index]
    assert len(registry.store.get(CLUSTER_ROLES.key, "", "system:basic-user")["rules"]) == 2  # type: ignore[index]
    assert registry.store.get(CLUSTER_ROLE_BINDINGS.key, "", "system:basic-user") is not None


async def test_the_aggregation_controller_follows_labels(registry: Registry) -> None:
    controller = ClusterRoleAggregationController(registry)
    registry.store.subscribe(controller.apply)
    controller.queue.start()
    try:
        ensure_bootstrap_policy(registry)

        async def rules_of(name: str) -> list[dict[str, Any]]:
            for _ in range(200):
                await asyncio.sleep(0.01)
                if controller.queue.idle:
                    break
            found = registry.store.get(CLUSTER_ROLES.key, "", name)
            assert found is not None
            return found.get("rules") or []

        assert {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]} in await rules_of("admin")
        crd_rule = {"verbs": ["get", "list", "watch"], "apiGroups": ["example.com"], "resources": ["widgets"]}
        registry.create(CLUSTER_ROLES, "", {
            "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [crd_rule],
        })
        assert crd_rule in await rules_of("view") and crd_rule in await rules_of("admin")
        registry.delete(CLUSTER_ROLES, "", "widgets-view")
        assert crd_rule not in await rules_of("view")
    finally:
        await controller.queue.stop()


def test_columns() -> None:
    now = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    created = "2026-01-01T00:00:00Z"
    role_printer = BY_KEY[ROLES.key].printer
    assert [c.name for c in role_printer.columns] == ["Name", "Created At"]
    assert role_printer.cells({"metadata": {"name": "r", "creationTimestamp": created}}, now) == ["r", created]
    binding_printer = BY_KEY[CLUSTER_ROLE_BINDINGS.key].printer
    assert [(c.name, c.priority) for c in binding_printer.columns] == [
        ("Name", 0), ("Role", 0), ("Age", 0), ("Users", 1), ("Groups", 1), ("ServiceAccounts", 1),
    ]
    obj = binding("b", "ClusterRole", "view", user("alice"), user("bob"), group("devs"), sa(), sa("x", None))
    obj["metadata"]["creationTimestamp"] = created
    assert binding_printer.cells(obj, now) == ["b", "ClusterRole/view", "10m", "alice, bob", "devs", "shop/bot, x"]


# --- escalation prevention ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "servant", "missing"),
    [
        ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}], [{"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]}], []),
        ([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}], [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], []),
        ([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], [{"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]}],
         ['{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}']),
        # a wildcard is only covered by a wildcard
        ([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}], [{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}],
         ['{APIGroups:[""], Resources:["pods"], Verbs:["*"]}']),
        ([{"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}], [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}], []),
        ([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}],
         [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a", "b"]}],
         ['{APIGroups:[""], Resources:["pods"], ResourceNames:["b"], Verbs:["get"]}']),
        ([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}], [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
         ['{APIGroups:[""], Resources:["pods"], Verbs:["get"]}']),
        ([{"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}], [{"verbs": ["get"], "nonResourceURLs": ["/apis/apps", "/metrics"]}],
         ['{NonResourceURLs:["/metrics"], Verbs:["get"]}']),
    ],
)
def test_covers(owner: list[dict[str, Any]], servant: list[dict[str, Any]], missing: list[str]) -> None:
    assert [rbac.compact(r) for r in rbac.uncovered([Rule.of(r) for r in owner], [Rule.of(r) for r in servant])] == missing


def test_writers_may_grant_only_what_they_hold(registry: Registry) -> None:
    ensure_bootstrap_policy(registry)
    store = registry.store
    for name in ("admin", "edit", "view"):  # what the aggregation controller would write
        stored = store.get(CLUSTER_ROLES.key, "", name)
        assert stored is not None
        stored["rules"] = aggregate_all(list(store.objects(CLUSTER_ROLES.key)))[name]["rules"]
        registry.update(CLUSTER_ROLES, "", name, stored)
    registry.create(ROLE_BINDINGS, "shop", {"metadata": {"name": "bot-admin"}, "roleRef": {"kind": "ClusterRole", "name": "admin"}, "subjects": [sa()]})
    policy = ObjectsPolicy([*store.objects(CLUSTER_ROLES.key), *store.objects(CLUSTER_ROLE_BINDINGS.key), *store.objects(ROLE_BINDINGS.key)])
    writer = rbac.REQUESTER.set(rbac.Requester(SA, SA_GROUPS, policy))
    try:
        registry.create(ROLES, "shop", {"metadata": {"name": "ok"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})
        registry.create(ROLE_BINDINGS, "shop", {"metadata": {"name": "v"}, "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [user("a")]})
        with pytest.raises(errors.StatusError) as exc:
            registry.create(ROLES, "shop", {"metadata": {"name": "nodes"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]})
        assert exc.value.code == 403 and exc.value.message == (
            'roles.rbac.authorization.k8s.io "nodes" is forbidden: user "system:serviceaccount:shop:bot" '
            '(groups=["system:serviceaccounts" "system:serviceaccounts:shop" "system:authenticated"]) is attempting to grant '
            'RBAC permissions not currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}'
        )
        with pytest.raises(errors.StatusError) as exc:
            registry.create(ROLE_BINDINGS, "shop", {"metadata": {"name": "root"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [user("a")]})
        assert exc.value.code == 403 and "is attempting to grant RBAC permissions not currently held" in exc.value.message
        with pytest.raises(errors.StatusError) as exc:
            registry.create(ROLE_BINDINGS, "shop", {"metadata": {"name": "ghost"}, "roleRef": {"kind": "Role", "name": "ghost"}, "subjects": [user("a")]})
        assert exc.value.message == 'rolebindings.rbac.authorization.k8s.io "ghost" is forbidden: roles.rbac.authorization.k8s.io "ghost" not found'
    finally:
        rbac.REQUESTER.reset(writer)
    assert store.get(ROLE_BINDINGS.key, "shop", "root") is None
    registry.create(ROLE_BINDINGS, "shop", {"metadata": {"name": "root"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [user("a")]})
