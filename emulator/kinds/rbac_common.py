"""What the four RBAC kinds (rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding,
ClusterRoleBinding) share: the rule, subject and roleRef models, the API server's validation of them
(pkg/apis/rbac/validation), the binding defaults, the `kubectl get` columns and the protobuf layouts
(k8s.io/api rbac/v1 generated.proto). Each kind's own module gathers these into its `Kind`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError, invalid, invalid_strings, not_supported
from emulator.kinds.printing import NAME, Column, Printer, meta_of, name_age
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.values import LABEL_SELECTOR, path_segment_errors
from emulator.labels import validate_label_selector
from emulator.models.meta import ApiModel, LabelSelector
from emulator.security import rbac

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC_GROUP}/v1"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


class PolicyRule(ApiModel):
    verbs: list[str] | None = None
    api_groups: list[str] | None = None
    resources: list[str] | None = None
    resource_names: list[str] | None = None
    non_resource_urls: list[str] | None = Field(default=None, alias="nonResourceURLs")


class Subject(ApiModel):
    kind: str | None = None
    api_group: str | None = None
    name: str | None = None
    namespace: str | None = None


class RoleRef(ApiModel):
    api_group: str | None = None
    kind: str | None = None
    name: str | None = None


class AggregationRule(ApiModel):
    cluster_role_selectors: list[LabelSelector] | None = None


# --- validation -----------------------------------------------------------------------------------


def name_errors(name: str) -> list[str]:
    """ValidateRBACName: role and binding names are path segments (`system:basic-user` is one)."""
    return path_segment_errors(name)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "FieldValueRequired", f"Required value: {detail}" if detail else "Required value")


def validate_rule(rule: dict[str, Any], namespaced: bool, path: str) -> list[FieldError]:
    """ValidatePolicyRule."""
    problems: list[FieldError] = []
    if not rule.get("verbs"):
        problems.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            problems.append(invalid_strings(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            problems.append(invalid_strings(f"{path}.nonResourceURLs", urls, "rules cannot apply to both regular resources and non-resource URLs"))
        return problems
    if not rule.get("apiGroups"):
        problems.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        problems.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return problems


def validate_rules(obj: dict[str, Any], namespaced: bool) -> list[FieldError]:
    return [p for i, rule in enumerate(obj.get("rules") or []) for p in validate_rule(rule, namespaced, f"rules[{i}]")]


def validate_aggregation(obj: dict[str, Any]) -> list[FieldError]:
    rule = obj.get("aggregationRule")
    if rule is None:
        return []
    selectors = rule.get("clusterRoleSelectors") or []
    if not selectors:
        return [required("aggregationRule.clusterRoleSelectors", "at least one clusterRoleSelector required if aggregationRule is non-nil")]
    return [p for i, s in enumerate(selectors) for p in validate_label_selector(s, f"aggregationRule.clusterRoleSelectors[{i}]")]


def default_binding(obj: dict[str, Any]) -> None:
    """SetDefaults_RoleBinding and SetDefaults_Subject: the rbac group where it is the only one possible."""
    ref = obj.setdefault("roleRef", {})
    if not ref.get("apiGroup"):
        ref["apiGroup"] = RBAC_GROUP
    for subject in obj.get("subjects") or []:
        if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = RBAC_GROUP


def validate_subject(subject: dict[str, Any], namespaced: bool, path: str) -> list[FieldError]:
    """ValidateRoleBindingSubject."""
    problems: list[FieldError] = []
    name, kind, group = subject.get("name") or "", subject.get("kind") or "", subject.get("apiGroup") or ""
    if not name:
        problems.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            problems += [invalid(f"{path}.name", name, m) for m in validation.dns1123_subdomain_errors(name)]
        if group:
            problems.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            problems.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            problems.append(not_supported(f"{path}.apiGroup", group, [RBAC_GROUP]))
    else:
        problems.append(not_supported(f"{path}.kind", kind, list(SUBJECT_KINDS)))
    return problems


def validate_binding(obj: dict[str, Any], role_kinds: tuple[str, ...], namespaced: bool) -> list[FieldError]:
    """ValidateRoleBinding / ValidateClusterRoleBinding: `role_kinds` are the roleRef kinds allowed."""
    problems: list[FieldError] = []
    ref = obj.get("roleRef") or {}
    group = ref.get("apiGroup") or ""
    if group != RBAC_GROUP:
        problems.append(not_supported("roleRef.apiGroup", group, [RBAC_GROUP]))
    if ref.get("kind") not in role_kinds:
        problems.append(not_supported("roleRef.kind", ref.get("kind") or "", list(role_kinds)))
    name = ref.get("name") or ""
    if not name:
        problems.append(required("roleRef.name"))
    else:
        problems += [invalid("roleRef.name", name, m) for m in name_errors(name)]
    for i, subject in enumerate(obj.get("subjects") or []):
        problems += validate_subject(subject, namespaced, f"subjects[{i}]")
    return problems


def validate_role_ref_unchanged(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """A binding's roleRef never changes: delete and re-create it to bind another role."""
    ref = new.get("roleRef") or {}
    if ref != (old.get("roleRef") or {}):
        shown = f'{{APIGroup:{ref.get("apiGroup", "")} Kind:{ref.get("kind", "")} Name:{ref.get("name", "")}}}'
        return [FieldError("roleRef", "FieldValueInvalid", f"Invalid value: {shown}: cannot change roleRef")]
    return []


# --- escalation prevention (the API server's policy-based storage of the RBAC kinds) ----------------


def _may(requester: rbac.Requester, verb: str, namespace: str, resource: str, name: str) -> bool:
    attrs = rbac.Attributes(requester.user, requester.groups, verb, namespace, RBAC_GROUP, resource, "", name)
    return rbac.authorize(requester.policy, attrs).allowed


def check_role_escalation(resource: str, obj: dict[str, Any]) -> None:
    """403 unless the writer holds every rule the Role/ClusterRole grants, or may `escalate` it. Only
    requests by users other than the admin are checked (emulator/security/rbac.py `REQUESTER`)."""
    requester = rbac.REQUESTER.get()
    if requester is None:
        return
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    if _may(requester, "escalate", namespace, resource, name):
        return
    why = rbac.escalation(requester, namespace, rbac.rules_of(obj))
    if obj.get("aggregationRule") is not None and rbac.escalation(requester, "", [rbac.Rule(("*",), ("*",), ("*",)), rbac.Rule(("*",), non_resource_urls=("*",))]):
        why = "must have cluster-admin privileges to use the aggregationRule"
    if why:
        raise errors.forbidden_request(f'{resource}.{RBAC_GROUP} "{name}" is forbidden: {why}')


def check_binding_escalation(resource: str, obj: dict[str, Any]) -> None:
    """403 unless the writer holds every rule of the bound role (where the binding grants it), or may
    `bind` that role."""
    requester = rbac.REQUESTER.get()
    if requester is None:
        return
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    ref = obj.get("roleRef") or {}
    kind, role_name = ref.get("kind"), ref.get("name") or ""
    role_resource = "roles" if kind == "Role" else "clusterroles"
    if _may(requester, "bind", namespace, role_resource, role_name):
        return
    role = requester.policy.role(namespace, role_name) if kind == "Role" else requester.policy.cluster_role(role_name)
    if role is None:
        why: str | None = f'{role_resource}.{RBAC_GROUP} "{role_name}" not found'
    else:
        why = rbac.escalation(requester, namespace, rbac.rules_of(role))
    if why:
        raise errors.forbidden_request(f'{resource}.{RBAC_GROUP} "{name}" is forbidden: {why}')


# --- kubectl get ----------------------------------------------------------------------------------


CREATED_AT = Column(
    "Created At",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
    type="date",
)


def _role_cells(role: dict[str, Any], now: datetime) -> list[Any]:
    meta = meta_of(role)
    return [meta.get("name", ""), meta.get("creationTimestamp") or ""]


ROLE_PRINTER = Printer((NAME, CREATED_AT), _role_cells)


def subjects_strings(subjects: list[dict[str, Any]] | None) -> tuple[list[str], list[str], list[str]]:
    """rbac.SubjectsStrings: users, groups and service accounts (`namespace/name`) of a binding."""
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    for subject in subjects or []:
        kind, name = subject.get("kind"), subject.get("name") or ""
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            namespace = subject.get("namespace") or ""
            accounts.append(f"{namespace}/{name}" if namespace else name)
    return users, groups, accounts


def _binding_cells(binding: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(binding, now)
    ref = binding.get("roleRef") or {}
    users, groups, accounts = subjects_strings(binding.get("subjects"))
    return [name, f'{ref.get("kind", "")}/{ref.get("name", "")}', created, ", ".join(users), ", ".join(groups), ", ".join(accounts)]


BINDING_PRINTER = Printer(
    (
        NAME,
        Column("Role", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. "
               "If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
        Column("Age", "CreationTimestamp is a timestamp representing the server time when this object was created."),
        Column("Users", "Users in the roleBinding", priority=1),
        Column("Groups", "Groups in the roleBinding", priority=1),
        Column("ServiceAccounts", "ServiceAccounts in the roleBinding", priority=1),
    ),
    _binding_cells,
)


# --- protobuf (what kubectl create role/rolebinding/... send) --------------------------------------


POLICY_RULE: Message = {
    1: ProtoField("verbs", "string", repeated=True),
    2: ProtoField("apiGroups", "string", repeated=True),
    3: ProtoField("resources", "string", repeated=True),
    4: ProtoField("resourceNames", "string", repeated=True),
    5: ProtoField("nonResourceURLs", "string", repeated=True),
}
SUBJECT: Message = {
    1: ProtoField("kind", "string"),
    2: ProtoField("apiGroup", "string"),
    3: ProtoField("name", "string"),
    4: ProtoField("namespace", "string"),
}
ROLE_REF: Message = {1: ProtoField("apiGroup", "string"), 2: ProtoField("kind", "string"), 3: ProtoField("name", "string")}

ROLE_PROTOBUF: Message = {1: ProtoField("metadata", "message", OBJECT_META), 2: ProtoField("rules", "message", POLICY_RULE, repeated=True)}
CLUSTER_ROLE_PROTOBUF: Message = {
    **ROLE_PROTOBUF,
    3: ProtoField("aggregationRule", "message", {1: ProtoField("clusterRoleSelectors", "message", LABEL_SELECTOR, repeated=True)}),
}
BINDING_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("subjects", "message", SUBJECT, repeated=True),
    3: ProtoField("roleRef", "message", ROLE_REF),
}
