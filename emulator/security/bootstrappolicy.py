"""The roles and bindings a new cluster has (the API server's bootstrap policy,
plugin/pkg/auth/authorizer/rbac/bootstrappolicy), and how a start reconciles the stored ones with them.

Every default object carries the label `kubernetes.io/bootstrapping: rbac-defaults` and the annotation
`rbac.authorization.kubernetes.io/autoupdate: "true"`. At every start, as the API server does:
- a missing object is created;
- an object whose autoupdate annotation is not "false" gets back what it lacks (rules, subjects, labels,
  annotations; the aggregation rule of an aggregated role) and keeps what a user added;
- an object annotated autoupdate "false" is left exactly as it is.
`admin`, `edit` and `view` are aggregated: their rules come from the `system:aggregate-to-*` roles (and
from any ClusterRole labelled `rbac.authorization.k8s.io/aggregate-to-<role>: "true"`), which
emulator/controllers/clusterroleaggregation.py gathers into them.
"""

from __future__ import annotations

import copy
from typing import Any

from emulator.kinds.rbac_common import RBAC_GROUP
from emulator.security.rbac import AUTHENTICATED, PRIVILEGED_GROUP, UNAUTHENTICATED

Obj = dict[str, Any]

BOOTSTRAPPING_LABEL = "kubernetes.io/bootstrapping"
BOOTSTRAPPING_VALUE = "rbac-defaults"
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def rule(verbs: tuple[str, ...], groups: tuple[str, ...], *resources: str) -> Obj:
    return {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}


def urls(verbs: tuple[str, ...], *paths: str) -> Obj:
    return {"verbs": list(verbs), "nonResourceURLs": list(paths)}


CORE, APPS, BATCH, AUTOSCALING, POLICY = ("",), ("apps",), ("batch",), ("autoscaling",), ("policy",)
NETWORKING, EXTENSIONS, DISCOVERY = ("networking.k8s.io",), ("extensions",), ("discovery.k8s.io",)

VIEW_RULES = [
    rule(READ, CORE, "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
         "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"),
    rule(READ, CORE, "limitranges", "resourcequotas", "bindings", "events", "pods/status", "resourcequotas/status",
         "namespaces/status", "replicationcontrollers/status", "pods/log"),
    rule(READ, CORE, "namespaces"),
    rule(READ, DISCOVERY, "endpointslices"),
    rule(READ, APPS, "controllerrevisions", "statefulsets", "statefulsets/scale", "statefulsets/status", "daemonsets",
         "daemonsets/status", "deployments", "deployments/scale", "deployments/status", "replicasets",
         "replicasets/scale", "replicasets/status"),
    rule(READ, AUTOSCALING, "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
    rule(READ, BATCH, "jobs", "cronjobs", "cronjobs/status", "jobs/status"),
    rule(READ, EXTENSIONS, "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
         "ingresses", "ingresses/status", "replicasets", "replicasets/scale", "replicasets/status",
         "replicationcontrollers/scale", "networkpolicies"),
    rule(READ, POLICY, "poddisruptionbudgets", "poddisruptionbudgets/status"),
    rule(READ, NETWORKING, "networkpolicies", "ingresses", "ingresses/status"),
]
EDIT_RULES = [
    rule(READ, CORE, "pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"),
    rule(("impersonate",), CORE, "serviceaccounts"),
    rule(WRITE, CORE, "pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"),
    rule(("create",), CORE, "pods/eviction"),
    rule(WRITE, CORE, "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
         "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"),
    rule(("create",), CORE, "serviceaccounts/token"),
    rule(WRITE, APPS, "statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
         "deployments/rollback", "replicasets", "replicasets/scale"),
    rule(WRITE, AUTOSCALING, "horizontalpodautoscalers"),
    rule(WRITE, BATCH, "jobs", "cronjobs"),
    rule(WRITE, EXTENSIONS, "daemonsets", "deployments", "deployments/scale", "deployments/rollback", "ingresses",
         "replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies"),
    rule(WRITE, POLICY, "poddisruptionbudgets"),
    rule(WRITE, NETWORKING, "networkpolicies", "ingresses"),
    rule(READ_WRITE, ("coordination.k8s.io",), "leases"),
]
ADMIN_RULES = [
    rule(("create",), ("authorization.k8s.io",), "localsubjectaccessreviews"),
    rule(READ_WRITE, (RBAC_GROUP,), "roles", "rolebindings"),
]
HEALTH_URLS = ("/livez", "/readyz", "/healthz", "/version", "/version/")


def _meta(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "name": name,
        "labels": {**(labels or {}), BOOTSTRAPPING_LABEL: BOOTSTRAPPING_VALUE},
        "annotations": {AUTOUPDATE_ANNOTATION: "true"},
    }


def _role(name: str, rules: list[Obj], labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole", "metadata": _meta(name, labels), "rules": rules}


def _aggregated(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole", "metadata": _meta(name, labels),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {f"{AGGREGATE_TO}{name}": "true"}}]},
    }


def _binding(name: str, role: str, *groups: str) -> Obj:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
    }


CLUSTER_ROLES: tuple[Obj, ...] = (
    _role("cluster-admin", [rule(("*",), ("*",), "*"), urls(("*",), "*")]),
    _aggregated("admin"),
    _aggregated("edit", {f"{AGGREGATE_TO}admin": "true"}),
    _aggregated("view", {f"{AGGREGATE_TO}edit": "true"}),
    _role("system:aggregate-to-admin", ADMIN_RULES, {f"{AGGREGATE_TO}admin": "true"}),
    _role("system:aggregate-to-edit", EDIT_RULES, {f"{AGGREGATE_TO}edit": "true"}),
    _role("system:aggregate-to-view", VIEW_RULES, {f"{AGGREGATE_TO}view": "true"}),
    _role("system:basic-user", [
        rule(("create",), ("authorization.k8s.io",), "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
        rule(("create",), ("authentication.k8s.io",), "selfsubjectreviews"),
    ]),
    _role("system:discovery", [urls(("get",), *HEALTH_URLS, "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*")]),
    _role("system:public-info-viewer", [urls(("get",), *HEALTH_URLS)]),
    # metrics-server's role: `kubectl top` for whoever may view (aggregated into view, edit and admin)
    _role("system:aggregated-metrics-reader", [rule(("get", "list", "watch"), ("metrics.k8s.io",), "pods", "nodes")], {
        f"{AGGREGATE_TO}view": "true", f"{AGGREGATE_TO}edit": "true", f"{AGGREGATE_TO}admin": "true",
    }),
    # what delegated authentication/authorization (metrics-server, aggregated API servers) and monitoring bind to
    _role("system:auth-delegator", [
        rule(("create",), ("authentication.k8s.io",), "tokenreviews"),
        rule(("create",), ("authorization.k8s.io",), "subjectaccessreviews"),
    ]),
    _role("system:monitoring", [urls(
        ("get",), "/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*",
    )]),
    _role("system:service-account-issuer-discovery", [urls(
        ("get",), "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks", "/openid/v1/jwks/",
    )]),
)
CLUSTER_ROLE_BINDINGS: tuple[Obj, ...] = (
    _binding("cluster-admin", "cluster-admin", PRIVILEGED_GROUP),
    _binding("system:basic-user", "system:basic-user", AUTHENTICATED),
    _binding("system:discovery", "system:discovery", AUTHENTICATED),
    _binding("system:public-info-viewer", "system:public-info-viewer", AUTHENTICATED, UNAUTHENTICATED),
    _binding("system:monitoring", "system:monitoring", "system:monitoring"),
    _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery", "system:serviceaccounts"),
)


def autoupdates(obj: Obj) -> bool:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE_ANNOTATION) != "false"


def _merge_meta(current: Obj, wanted: Obj) -> bool:
    meta, changed = current.setdefault("metadata", {}), False
    for key in ("labels", "annotations"):
        have = meta.get(key) or {}
        missing = {k: v for k, v in wanted["metadata"][key].items() if k not in have}
        if missing:
            meta[key] = {**have, **missing}
            changed = True
    return changed


def reconcile_role(current: Obj | None, wanted: Obj) -> Obj | None:
    """What to write for a default ClusterRole: `wanted` when missing, the stored role with what it lacks
    when autoupdate allows, None when nothing is to be written."""
    if current is None:
        return copy.deepcopy(wanted)
    if not autoupdates(current):
        return None
    out = copy.deepcopy(current)
    changed = _merge_meta(out, wanted)
    if "aggregationRule" in wanted:
        # the aggregation controller owns the rules; only the selectors are the bootstrap policy's
        if out.get("aggregationRule") != wanted["aggregationRule"]:
            out["aggregationRule"] = copy.deepcopy(wanted["aggregationRule"])
            changed = True
    else:
        rules = out.setdefault("rules", [])
        for r in wanted["rules"]:
            if r not in rules:
                rules.append(copy.deepcopy(r))
                changed = True
    return out if changed else None


def reconcile_binding(current: Obj | None, wanted: Obj) -> tuple[Obj | None, bool]:
    """What to write for a default ClusterRoleBinding, and whether the stored one must go first (its
    roleRef, which never changes, is not the default's)."""
    if current is None:
        return copy.deepcopy(wanted), False
    if not autoupdates(current):
        return None, False
    if current.get("roleRef") != wanted["roleRef"]:
        replacement = copy.deepcopy(wanted)
        replacement["subjects"] = _union(current.get("subjects") or [], wanted["subjects"])
        return replacement, True
    out = copy.deepcopy(current)
    changed = _merge_meta(out, wanted)
    subjects = _union(out.get("subjects") or [], wanted["subjects"])
    if subjects != (out.get("subjects") or []):
        out["subjects"] = subjects
        changed = True
    return (out if changed else None), False


def _union(have: list[Obj], wanted: list[Obj]) -> list[Obj]:
    return [*have, *(copy.deepcopy(s) for s in wanted if s not in have)]
