"""RBAC over real HTTPS with real kubectl: an emulator started with --require-auth, its admin kubeconfig,
and service-account tokens that get exactly what their RoleBindings and ClusterRoleBindings grant."""

from __future__ import annotations

import base64
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Emulator, require_tool, start_emulator
from tests.integration.kubectl_support import Kubectl

RBAC = "/apis/rbac.authorization.k8s.io/v1"
AUTHORIZATION = "/apis/authorization.k8s.io/v1"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = start_emulator(tmp_path_factory.mktemp("rbac") / "data", "--require-auth")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def kubectl(secured: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(require_tool("kubectl"), Path(secured.faces["kubeconfig"]), tmp_path_factory.mktemp("rbac-cache"))


@pytest.fixture
def ns(kubectl: Kubectl, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower().removeprefix("test_"))[:50].strip("-")
    kubectl.run("create", "namespace", name)
    kubectl.run("-n", name, "create", "serviceaccount", "bot")
    return name


def token_for(kubectl: Kubectl, ns: str, account: str = "bot") -> str:
    return kubectl.out("-n", ns, "create", "token", account).strip()


def client(emu: Emulator, token: str) -> httpx.Client:
    config = yaml.safe_load(Path(emu.faces["kubeconfig"]).read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    return httpx.Client(
        base_url=emu.api_url, verify=ssl.create_default_context(cadata=ca), headers={"Authorization": f"Bearer {token}"}, timeout=10,
    )


def admin_token(emu: Emulator) -> str:
    return (emu.data_dir / "admin-token").read_text().strip()


def table(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def test_admin_may_do_everything_and_says_who_it_is(kubectl: Kubectl) -> None:
    assert kubectl.out("auth", "can-i", "create", "pods").strip() == "yes"
    assert kubectl.out("auth", "can-i", "delete", "nodes").strip() == "yes"
    assert kubectl.out("auth", "can-i", "get", "/metrics").strip() == "yes"
    assert table(kubectl.out("auth", "whoami")) == [
        ["ATTRIBUTE", "VALUE"], ["Username", "emulator:admin"], ["Groups", "[system:masters system:authenticated]"],
    ]
    listed = table(kubectl.out("auth", "can-i", "--list"))
    assert listed[0] == ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"]
    assert ["*.*", "[]", "[]", "[*]"] in listed and ["[*]", "[]", "[*]"] in listed


def test_a_service_account_is_denied_until_a_role_binding_to_view(kubectl: Kubectl, ns: str) -> None:
    token = token_for(kubectl, ns)
    denied = kubectl.run("--token", token, "-n", ns, "get", "pods", ok=False)
    assert denied.returncode != 0
    assert denied.stderr.strip() == (
        f'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:{ns}:bot" cannot list resource '
        f'"pods" in API group "" in the namespace "{ns}"'
    )
    who = f"system:serviceaccount:{ns}:bot"
    assert kubectl.run("auth", "can-i", "list", "pods", "-n", ns, "--as", who, ok=False).stdout.strip() == "no"

    kubectl.run("-n", ns, "create", "rolebinding", "bot-view", "--clusterrole=view", f"--serviceaccount={ns}:bot")
    began = time.monotonic()
    assert kubectl.run("--token", token, "-n", ns, "get", "pods").returncode == 0  # the very next request
    assert time.monotonic() - began < 5
    assert kubectl.out("auth", "can-i", "list", "pods", "-n", ns, "--as", who).strip() == "yes"
    assert kubectl.out("--token", token, "auth", "can-i", "get", "deployments.apps", "-n", ns).strip() == "yes"
    for verb, what, where in (("create", "pods", ns), ("get", "secrets", ns), ("list", "pods", "default")):
        answer = kubectl.run("--token", token, "auth", "can-i", verb, what, "-n", where, ok=False)
        assert answer.returncode == 1 and answer.stdout.strip() == "no", (verb, what, where)
    created = kubectl.run("--token", token, "-n", ns, "create", "configmap", "x", ok=False)
    assert f'cannot create resource "configmaps" in API group "" in the namespace "{ns}"' in created.stderr

    kubectl.run("-n", ns, "delete", "rolebinding", "bot-view")
    assert kubectl.run("--token", token, "-n", ns, "get", "pods", ok=False).returncode != 0


def test_a_custom_role_with_resource_names(kubectl: Kubectl, ns: str) -> None:
    kubectl.run("-n", ns, "create", "configmap", "web", "--from-literal=a=b")
    kubectl.run("-n", ns, "create", "configmap", "db", "--from-literal=a=b")
    kubectl.run("-n", ns, "create", "role", "web-config", "--verb=get,update", "--resource=configmaps", "--resource-name=web")
    kubectl.run("-n", ns, "create", "rolebinding", "web-config", "--role=web-config", f"--serviceaccount={ns}:bot")
    token = token_for(kubectl, ns)
    assert "web" in kubectl.out("--token", token, "-n", ns, "get", "configmap", "web", "-o", "name")
    db = kubectl.run("--token", token, "-n", ns, "get", "configmap", "db", ok=False)
    assert db.stderr.strip() == (
        f'Error from server (Forbidden): configmaps "db" is forbidden: User "system:serviceaccount:{ns}:bot" cannot get '
        f'resource "configmaps" in API group "" in the namespace "{ns}"'
    )
    assert kubectl.run("--token", token, "-n", ns, "get", "configmaps", ok=False).returncode != 0
    assert kubectl.out("--token", token, "auth", "can-i", "update", "configmap/web", "-n", ns).strip() == "yes"
    assert kubectl.run("--token", token, "auth", "can-i", "update", "configmap/db", "-n", ns, ok=False).stdout.strip() == "no"
    roles = table(kubectl.out("-n", ns, "get", "role"))
    assert roles[0] == ["NAME", "CREATED AT"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", roles[1][1])
    rows = table(kubectl.out("-n", ns, "get", "rolebinding", "web-config", "-o", "wide"))
    assert rows[0] == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert rows[1][:2] == ["web-config", "Role/web-config"] and rows[1][3:] == [f"{ns}/bot"]  # no users, no groups


def test_a_cluster_role_binding_grants_cluster_wide(kubectl: Kubectl, ns: str) -> None:
    token = token_for(kubectl, ns)
    assert kubectl.run("--token", token, "get", "nodes", ok=False).returncode != 0
    kubectl.run("create", "clusterrole", f"{ns}-nodes", "--verb=get,list,watch", "--resource=nodes,pods")
    kubectl.run("create", "clusterrolebinding", f"{ns}-nodes", f"--clusterrole={ns}-nodes", f"--serviceaccount={ns}:bot", "--user=alice", "--group=devs")
    assert "node/" in kubectl.out("--token", token, "get", "nodes", "-o", "name")
    assert kubectl.run("--token", token, "get", "pods", "-A").returncode == 0
    assert kubectl.out("auth", "can-i", "list", "nodes", "--as", "bob", "--as-group", "devs").strip() == "yes"
    assert kubectl.run("auth", "can-i", "list", "nodes", "--as", "bob", ok=False).stdout.strip() == "no"
    rows = table(kubectl.out("get", "clusterrolebinding", f"{ns}-nodes", "-o", "wide"))
    assert rows[0] == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert rows[1][:2] == [f"{ns}-nodes", f"ClusterRole/{ns}-nodes"] and rows[1][3:] == ["alice", "devs", f"{ns}/bot"]
    kubectl.run("delete", "clusterrolebinding", f"{ns}-nodes")
    kubectl.run("delete", "clusterrole", f"{ns}-nodes")


def test_whoami_and_rules_of_a_service_account_token(secured: Emulator, kubectl: Kubectl, ns: str) -> None:
    token = token_for(kubectl, ns)
    rows = table(kubectl.out("--token", token, "auth", "whoami"))
    assert rows[1] == ["Username", f"system:serviceaccount:{ns}:bot"]
    assert ["Groups", f"[system:serviceaccounts system:serviceaccounts:{ns} system:authenticated]"] in rows
    kubectl.run("-n", ns, "create", "role", "pod-logs", "--verb=get", "--resource=pods,pods/log")
    kubectl.run("-n", ns, "create", "rolebinding", "pod-logs", "--role=pod-logs", f"--serviceaccount={ns}:bot")

    with client(secured, token) as sa:
        response = sa.post(f"{AUTHORIZATION}/selfsubjectrulesreviews", json={
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": ns},
        })
    assert response.status_code == 201, response.text
    status: dict[str, Any] = response.json()["status"]
    assert {"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "pods/log"]} in status["resourceRules"]
    assert {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]} in status["resourceRules"]
    assert any("/api/*" in r["nonResourceURLs"] for r in status["nonResourceRules"])
    assert status["incomplete"] is False

    listed = table(kubectl.out("--token", token, "auth", "can-i", "--list", "-n", ns))
    assert ["pods/log", "[]", "[]", "[get]"] in listed and ["pods", "[]", "[]", "[get]"] in listed
    assert not any(row[0] == "pods" for row in table(kubectl.out("--token", token, "auth", "can-i", "--list", "-n", "default")))


def test_access_reviews_about_others(secured: Emulator, kubectl: Kubectl, ns: str) -> None:
    kubectl.run("-n", ns, "create", "rolebinding", "bot-edit", "--clusterrole=edit", f"--serviceaccount={ns}:bot")
    who = {"user": f"system:serviceaccount:{ns}:bot", "groups": ["system:serviceaccounts", "system:authenticated"]}
    with client(secured, admin_token(secured)) as api:
        asked = api.post(f"{AUTHORIZATION}/subjectaccessreviews", json={
            "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "spec": {**who, "resourceAttributes": {"namespace": ns, "verb": "create", "resource": "secrets"}},
        })
        assert asked.status_code == 201, asked.text
        assert asked.json()["status"] == {
            "allowed": True, "reason": f'RBAC: allowed by RoleBinding "bot-edit/{ns}" of ClusterRole "edit" to ServiceAccount "bot/{ns}"',
        }
        local = api.post(f"{AUTHORIZATION}/namespaces/{ns}/localsubjectaccessreviews", json={
            "spec": {**who, "resourceAttributes": {"namespace": ns, "verb": "create", "resource": "rolebindings", "group": "rbac.authorization.k8s.io"}},
        })
        assert local.status_code == 201 and local.json()["status"] == {"allowed": False}
        elsewhere = api.post(f"{AUTHORIZATION}/namespaces/{ns}/localsubjectaccessreviews", json={
            "spec": {**who, "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}},
        })
        assert elsewhere.status_code == 400
        nobody = api.post(f"{AUTHORIZATION}/subjectaccessreviews", json={"spec": {"resourceAttributes": {"verb": "get"}}})
        assert nobody.status_code == 422 and nobody.json()["details"]["causes"][0]["field"] == "spec.user"
        both = api.post(f"{AUTHORIZATION}/selfsubjectaccessreviews", json={"spec": {}})
        assert both.status_code == 422
        assert api.get(f"{AUTHORIZATION}/subjectaccessreviews").status_code == 405
    with client(secured, token_for(kubectl, ns)) as sa:  # a service account may ask about itself, not others
        assert sa.post(f"{AUTHORIZATION}/subjectaccessreviews", json={"spec": {**who, "nonResourceAttributes": {"path": "/x", "verb": "get"}}}).status_code == 403


def test_impersonation_needs_the_impersonate_verb(kubectl: Kubectl, ns: str) -> None:
    token = token_for(kubectl, ns)
    denied = kubectl.run("--token", token, "-n", ns, "get", "pods", "--as", "alice", ok=False)
    assert denied.stderr.strip() == (
        f'Error from server (Forbidden): users "alice" is forbidden: User "system:serviceaccount:{ns}:bot" cannot '
        'impersonate resource "users" in API group "" at the cluster scope'
    )
    rows = table(kubectl.out("auth", "whoami", "--as", "alice", "--as-group", "devs"))
    assert rows[1:] == [["Username", "alice"], ["Groups", "[devs system:authenticated]"]]


def test_a_namespace_admin_may_not_grant_more_than_it_holds(kubectl: Kubectl, ns: str) -> None:
    kubectl.run("-n", ns, "create", "rolebinding", "bot-admin", "--clusterrole=admin", f"--serviceaccount={ns}:bot")
    token = token_for(kubectl, ns)
    kubectl.run("--token", token, "-n", ns, "create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice")
    kubectl.run("--token", token, "-n", ns, "create", "role", "pod-reader", "--verb=get", "--resource=pods")
    root = kubectl.run("--token", token, "-n", ns, "create", "rolebinding", "root", "--clusterrole=cluster-admin", "--user=alice", ok=False)
    assert root.returncode != 0
    assert root.stderr.startswith(
        f'error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io "root" is forbidden: user '
        f'"system:serviceaccount:{ns}:bot" (groups=["system:serviceaccounts" "system:serviceaccounts:{ns}" "system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:"
    )
    nodes = kubectl.run("--token", token, "-n", ns, "create", "role", "nodes", "--verb=get", "--resource=nodes", ok=False)
    assert '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}' in nodes.stderr
    kubectl.run("-n", ns, "create", "rolebinding", "root", "--clusterrole=cluster-admin", "--user=alice")  # the admin may


def test_role_and_binding_validation_through_kubectl(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("-n", ns, "create", "rolebinding", "b", "--clusterrole=view", f"--serviceaccount={ns}:bot")
    changed = kubectl.run("-n", ns, "patch", "rolebinding", "b", "-p", '{"roleRef":{"name":"edit"}}', ok=False)
    assert "cannot change roleRef" in changed.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": ns},
        "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}],
    }))
    refused = kubectl.run("apply", "-f", str(bad), ok=False)
    assert "namespaced rules cannot apply to non-resource URLs" in refused.stderr


def test_default_roles_and_bindings(kubectl: Kubectl) -> None:
    roles = {row[0] for row in table(kubectl.out("get", "clusterroles"))[1:]}
    assert {"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery", "system:public-info-viewer",
            "system:service-account-issuer-discovery", "system:auth-delegator", "system:monitoring"} <= roles
    bindings = {row[0]: row for row in table(kubectl.out("get", "clusterrolebindings", "-o", "wide"))[1:]}
    assert bindings["cluster-admin"][1] == "ClusterRole/cluster-admin" and bindings["cluster-admin"][3] == "system:masters"
    view = yaml.safe_load(kubectl.out("get", "clusterrole", "view", "-o", "yaml"))
    assert view["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    assert view["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
    assert any("pods" in r.get("resources", []) for r in view["rules"])  # aggregated from system:aggregate-to-view
    # what metrics-server and aggregated API servers bind their service accounts to
    delegator = yaml.safe_load(kubectl.out("get", "clusterrole", "system:auth-delegator", "-o", "yaml"))
    assert {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]} in delegator["rules"]


def test_reviews_on_the_open_api(emulator: Emulator, api: httpx.Client) -> None:
    """Without --require-auth nobody says who calls: the caller is system:anonymous, allowed everything."""
    whoami = api.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
    assert whoami.status_code == 201
    assert whoami.json()["status"]["userInfo"] == {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
    impersonated = api.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={}, headers={"Impersonate-User": "alice"})
    assert impersonated.json()["status"]["userInfo"]["username"] == "alice"
    can = api.post(f"{AUTHORIZATION}/selfsubjectaccessreviews", json={"spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}})
    assert can.status_code == 201 and can.json()["status"]["allowed"] is True
    rules = api.post(f"{AUTHORIZATION}/selfsubjectrulesreviews", json={"spec": {"namespace": "default"}}).json()["status"]
    assert rules["resourceRules"] == [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    assert rules["nonResourceRules"] == [{"verbs": ["*"], "nonResourceURLs": ["*"]}]


def test_bootstrap_across_restarts_keeps_frozen_changes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    emu = start_emulator(data, "--require-auth", in_memory=False)
    try:
        with client(emu, admin_token(emu)) as api:
            role = api.get(f"{RBAC}/clusterroles/system:discovery").json()
            role["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false"
            role["rules"] = [{"verbs": ["get"], "nonResourceURLs": ["/version"]}]
            assert api.put(f"{RBAC}/clusterroles/system:discovery", json=role).status_code == 200
            assert api.delete(f"{RBAC}/clusterrolebindings/system:basic-user").status_code == 200
            before = api.get(f"{RBAC}/clusterroles/view").json()["metadata"]["resourceVersion"]
    finally:
        emu.stop()
    emu = start_emulator(data, "--require-auth", in_memory=False)
    try:
        with client(emu, admin_token(emu)) as api:
            assert api.get(f"{RBAC}/clusterroles/system:discovery").json()["rules"] == [{"verbs": ["get"], "nonResourceURLs": ["/version"]}]
            assert api.get(f"{RBAC}/clusterrolebindings/system:basic-user").status_code == 200
            assert api.get(f"{RBAC}/clusterroles/view").json()["metadata"]["resourceVersion"] == before
    finally:
        emu.stop()


def test_a_role_with_resource_names_may_list_and_watch_its_one_object(secured: Emulator, kubectl: Kubectl, ns: str) -> None:
    """As the API server's RequestInfo: `fieldSelector=metadata.name=X` makes a list or watch one about X."""
    kubectl.run("-n", ns, "create", "configmap", "cm1", "--from-literal=a=b")
    kubectl.run("-n", ns, "create", "configmap", "cm2", "--from-literal=a=b")
    kubectl.run("-n", ns, "create", "role", "one", "--verb=get,list,watch", "--resource=configmaps", "--resource-name=cm1")
    kubectl.run("-n", ns, "create", "rolebinding", "one", "--role=one", f"--serviceaccount={ns}:bot")
    with client(secured, token_for(kubectl, ns)) as api:
        path = f"/api/v1/namespaces/{ns}/configmaps"
        listed = api.get(path, params={"fieldSelector": "metadata.name=cm1"})
        assert listed.status_code == 200 and [i["metadata"]["name"] for i in listed.json()["items"]] == ["cm1"]
        with api.stream("GET", path, params={"fieldSelector": "metadata.name==cm1", "watch": "1", "timeoutSeconds": "1"}) as watch:
            assert watch.status_code == 200
            assert b'"cm1"' in watch.read()
        assert api.get(path, params={"fieldSelector": "metadata.name=cm2"}).status_code == 403
        assert api.get(path, params={"fieldSelector": "metadata.name!=cm2"}).status_code == 403
        assert api.get(path).status_code == 403


def test_paths_the_api_cannot_parse_are_refused_not_waved_through(secured: Emulator, kubectl: Kubectl, ns: str) -> None:
    """An encoded slash in a namespace makes the path name nothing the API serves: RBAC must still decide
    (a review about system:masters answered to a service account with no rights would reveal the policy)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
        "spec": {"user": "x", "groups": ["system:masters"], "resourceAttributes": {"verb": "get", "resource": "secrets"}},
    }
    with client(secured, token_for(kubectl, ns)) as api:
        for path in (
            f"{AUTHORIZATION}/namespaces/{ns}%2Fx/localsubjectaccessreviews",
            f"/api/v1/namespaces/{ns}%2Fx/pods",
            f"/api/v1/namespaces/{ns}/pods/a%2Fb",
        ):
            answer = api.post(path, json=review) if "reviews" in path else api.get(path)
            assert answer.status_code == 403, (path, answer.status_code, answer.text)
