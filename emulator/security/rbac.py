"""RBAC (rbac.authorization.k8s.io/v1) as the API server decides it: does a user's Role and ClusterRole
bindings allow one request? Pure functions over the stored objects, plus the bootstrap policy.

The decision follows Kubernetes' RBAC authorizer (plugin/pkg/auth/authorizer/rbac):
- a request is described by `Attributes` (user, groups, verb, and either namespace/apiGroup/resource/
  subresource/name, or a non-resource path such as `/version`);
- the ClusterRoleBindings are visited first, then the RoleBindings of the request's namespace; a binding
  applies when one of its subjects is the user (`User`), one of the user's groups (`Group`) or the user as
  a service account (`ServiceAccount`, whose namespace defaults to the RoleBinding's);
- the first rule of a bound role that matches allows the request; nothing denies (RBAC only adds);
- members of `system:masters` are allowed everything whatever the bindings say (the API server's
  privileged group).

Rule matching: a verb, API group or resource `*` matches all; `*/scale` matches the `scale` subresource of
any resource; `pods/log` names a subresource; `resourceNames` limits a rule to those names (so never to
`create` or `list`, which name nothing); a non-resource URL ending in `*` matches every path it prefixes.

Aggregated ClusterRoles (`aggregationRule`) hold the union of the rules of the ClusterRoles their
selectors match; emulator/controllers/clusterroleaggregation.py writes that union into them, so the
authorizer reads their `rules` like any other role's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from emulator.labels import SelectorError, selector_from_label_selector
from emulator.security.tokens import SERVICE_ACCOUNT_PREFIX

ALL = "*"
PRIVILEGED_GROUP = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request asks to do (the API server's authorizer.Attributes)."""

    user: str
    groups: tuple[str, ...]
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """One PolicyRule, its lists as tuples."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, rule: Obj) -> Rule:
        def strings(key: str) -> tuple[str, ...]:
            value = rule.get(key) or ()
            return tuple(v for v in value if isinstance(v, str))

        return cls(strings("verbs"), strings("apiGroups"), strings("resources"), strings("resourceNames"), strings("nonResourceURLs"))

    def as_dict(self) -> Obj:
        out: Obj = {"verbs": list(self.verbs)}
        for key, value in (("apiGroups", self.api_groups), ("resources", self.resources),
                           ("resourceNames", self.resource_names), ("nonResourceURLs", self.non_resource_urls)):
            if value:
                out[key] = list(value)
        return out


# --- rules --------------------------------------------------------------------------------------------


def verb_matches(rule: Rule, verb: str) -> bool:
    return ALL in rule.verbs or verb in rule.verbs


def api_group_matches(rule: Rule, group: str) -> bool:
    return ALL in rule.api_groups or group in rule.api_groups


def resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    """`pods`, `pods/log` and `*/log` (any resource's `log`); `pods` alone does not reach `pods/log`."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for wanted in rule.resources:
        if wanted == ALL or wanted == combined:
            return True
        if subresource and wanted == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: Rule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def non_resource_url_matches(rule: Rule, path: str) -> bool:
    for url in rule.non_resource_urls:
        if url == ALL or url == path or (url.endswith(ALL) and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    if not verb_matches(rule, attrs.verb):
        return False
    if not attrs.resource_request:
        return non_resource_url_matches(rule, attrs.path)
    return (
        api_group_matches(rule, attrs.api_group)
        and resource_matches(rule, attrs.resource, attrs.subresource)
        and resource_name_matches(rule, attrs.name)
    )


def rules_of(role: Obj | None) -> list[Rule]:
    return [Rule.of(r) for r in (role or {}).get("rules") or () if isinstance(r, dict)]


# --- subjects -----------------------------------------------------------------------------------------


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def subject_matches(subject: Obj, user: str, groups: Sequence[str], binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return user == name
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user == service_account_username(namespace, name)
    return False


def applicable_subject(binding: Obj, user: str, groups: Sequence[str]) -> Obj | None:
    namespace = (binding.get("metadata") or {}).get("namespace") or ""
    for subject in binding.get("subjects") or ():
        if isinstance(subject, dict) and subject_matches(subject, user, groups, namespace):
            return subject
    return None


def describe_subject(subject: Obj, binding_namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


# --- the policy and the decision ----------------------------------------------------------------------


class Policy(Protocol):
    """Where roles and bindings are read from: the store (emulator/security/auth.py `StoredPolicy`) or a
    list (`ObjectsPolicy`)."""

    def cluster_role_bindings(self) -> Iterable[Obj]: ...

    def role_bindings(self, namespace: str) -> Iterable[Obj]: ...

    def cluster_role(self, name: str) -> Obj | None: ...

    def role(self, namespace: str, name: str) -> Obj | None: ...


@dataclass
class ObjectsPolicy:
    """A policy from objects in hand (tests, and the bootstrap policy itself)."""

    objects: list[Obj] = field(default_factory=list)

    def _of(self, kind: str, namespace: str | None = None) -> Iterator[Obj]:
        for obj in self.objects:
            meta = obj.get("metadata") or {}
            if obj.get("kind") == kind and (namespace is None or meta.get("namespace", "") == namespace):
                yield obj

    def cluster_role_bindings(self) -> Iterable[Obj]:
        return self._of("ClusterRoleBinding")

    def role_bindings(self, namespace: str) -> Iterable[Obj]:
        return self._of("RoleBinding", namespace)

    def cluster_role(self, name: str) -> Obj | None:
        return next((o for o in self._of("ClusterRole") if o["metadata"].get("name") == name), None)

    def role(self, namespace: str, name: str) -> Obj | None:
        return next((o for o in self._of("Role", namespace) if o["metadata"].get("name") == name), None)


@dataclass(frozen=True, slots=True)
class Grant:
    """Rules a binding gives the user, and how to say where they come from."""

    rules: list[Rule]
    source: str


def _bound_role(policy: Policy, binding: Obj, namespace: str) -> tuple[Obj | None, str]:
    ref = binding.get("roleRef") or {}
    kind, name = ref.get("kind"), ref.get("name") or ""
    if kind == "ClusterRole":
        return policy.cluster_role(name), f'clusterrole.rbac.authorization.k8s.io "{name}" not found'
    if kind == "Role" and namespace:
        return policy.role(namespace, name), f'role.rbac.authorization.k8s.io "{name}" not found'
    return None, f'unknown roleRef kind "{kind}"'


def grants(policy: Policy, user: str, groups: Sequence[str], namespace: str, errors: list[str]) -> Iterator[Grant]:
    """The rules bound to the user, ClusterRoleBindings first, then the namespace's RoleBindings
    (lazily: `authorize` stops at the first rule that allows). Missing roles are reported in `errors`."""
    scopes: list[tuple[str, Iterable[Obj]]] = [("ClusterRoleBinding", policy.cluster_role_bindings())]
    if namespace:
        scopes.append(("RoleBinding", policy.role_bindings(namespace)))
    for binding_kind, bindings in scopes:
        for binding in bindings:
            subject = applicable_subject(binding, user, groups)
            if subject is None:
                continue
            meta = binding.get("metadata") or {}
            binding_namespace = meta.get("namespace") or ""
            role, missing = _bound_role(policy, binding, binding_namespace)
            if role is None:
                errors.append(missing)
                continue
            ref = binding.get("roleRef") or {}
            name = meta.get("name", "")
            shown = f"{name}/{binding_namespace}" if binding_namespace else name
            source = (
                f'{binding_kind} "{shown}" of {ref.get("kind")} "{ref.get("name")}" '
                f"to {describe_subject(subject, binding_namespace)}"
            )
            yield Grant(rules_of(role), source)


def authorize(policy: Policy, attrs: Attributes) -> Decision:
    if PRIVILEGED_GROUP in attrs.groups:
        return Decision(True)
    errors: list[str] = []
    for grant in grants(policy, attrs.user, attrs.groups, attrs.namespace, errors):
        if any(rule_allows(rule, attrs) for rule in grant.rules):
            return Decision(True, f"RBAC: allowed by {grant.source}")
    return Decision(False, "", tuple(errors))


def rules_for(policy: Policy, user: str, groups: Sequence[str], namespace: str) -> tuple[list[Rule], list[str]]:
    """Every rule the user holds in `namespace` (SelfSubjectRulesReview), and what could not be read."""
    errors: list[str] = []
    rules = [rule for grant in grants(policy, user, groups, namespace, errors) for rule in grant.rules]
    return rules, errors


def forbidden_message(attrs: Attributes) -> str:
    """The API server's 403 wording, which kubectl prints as it is."""
    if not attrs.resource_request:
        return f'forbidden: User "{attrs.user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    what = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'{what} is forbidden: User "{attrs.user}" cannot {attrs.verb} resource "{resource}" '
        f'in API group "{attrs.api_group}" {where}'
    )


# --- aggregation --------------------------------------------------------------------------------------


def aggregated_rules(role: Obj, cluster_roles: Iterable[Obj]) -> list[Obj] | None:
    """The rules an aggregated ClusterRole should hold: the rules of every other ClusterRole one of its
    selectors matches, in name order, each rule once. None when `role` aggregates nothing."""
    rule = role.get("aggregationRule")
    if not isinstance(rule, dict):
        return None
    selectors = []
    for selector in rule.get("clusterRoleSelectors") or ():
        try:
            selectors.append(selector_from_label_selector(selector))
        except SelectorError:
            continue
    own = (role.get("metadata") or {}).get("name")
    out: list[Obj] = []
    for other in sorted(cluster_roles, key=lambda o: (o.get("metadata") or {}).get("name", "")):
        meta = other.get("metadata") or {}
        if meta.get("name") == own or not any(s.matches(meta.get("labels") or {}) for s in selectors):
            continue
        for r in other.get("rules") or ():
            if r not in out:
                out.append(r)
    return out


# --- escalation prevention ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requester:
    """Who is writing, for the RBAC kinds' escalation check (set by the API's auth middleware for the
    request it serves; unset for the admin and for the emulator's own writes)."""

    user: str
    groups: tuple[str, ...]
    policy: Policy


REQUESTER: ContextVar[Requester | None] = ContextVar("rbac_requester", default=None)


def _atoms(rule: Rule) -> Iterator[Attributes]:
    """A rule broken into single requests (one verb, group, resource and name, or one verb and URL)."""
    for verb in rule.verbs:
        for url in rule.non_resource_urls:
            yield Attributes("", (), verb, path=url, resource_request=False)
        for group in rule.api_groups:
            for resource in rule.resources:
                for name in rule.resource_names or ("",):
                    yield Attributes("", (), verb, api_group=group, resource=resource, name=name)


def _covers(owner: Rule, atom: Attributes) -> bool:
    if not verb_matches(owner, atom.verb):
        return False
    if not atom.resource_request:
        return non_resource_url_matches(owner, atom.path)
    resource, _, sub = atom.resource.partition("/")
    owned_resource = ALL in owner.resources or atom.resource in owner.resources or (
        bool(sub) and resource != ALL and f"{ALL}/{sub}" in owner.resources
    )
    owned_name = not owner.resource_names or (bool(atom.name) and atom.name in owner.resource_names)
    return api_group_matches(owner, atom.api_group) and owned_resource and owned_name


def uncovered(owner: Sequence[Rule], servant: Iterable[Rule]) -> list[Rule]:
    """The servant rules (as single requests) that no owner rule covers (validation.Covers)."""
    missing: list[Rule] = []
    for rule in servant:
        for atom in _atoms(rule):
            if not any(_covers(o, atom) for o in owner):
                if atom.resource_request:
                    missing.append(Rule((atom.verb,), (atom.api_group,), (atom.resource,), (atom.name,) if atom.name else ()))
                else:
                    missing.append(Rule((atom.verb,), non_resource_urls=(atom.path,)))
    return missing


def compact(rule: Rule) -> str:
    """A rule as the API server prints it in escalation errors."""
    fields = (
        ("APIGroups", rule.api_groups), ("Resources", rule.resources), ("ResourceNames", rule.resource_names),
        ("NonResourceURLs", rule.non_resource_urls), ("Verbs", rule.verbs),
    )
    return "{" + ", ".join(f"{name}:[{_quoted(value)}]" for name, value in fields if value) + "}"


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def escalation(requester: Requester, namespace: str, rules: Iterable[Rule]) -> str | None:
    """Why granting `rules` in `namespace` ("" = cluster-wide) would give more than the requester holds,
    or None when it would not (ConfirmNoEscalation)."""
    if PRIVILEGED_GROUP in requester.groups:
        return None
    held, _ = rules_for(requester.policy, requester.user, requester.groups, namespace)
    missing = uncovered(held, rules)
    if not missing:
        return None
    groups = " ".join(f'"{g}"' for g in requester.groups)
    listed = "\n".join(compact(r) for r in missing)
    return f'user "{requester.user}" (groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n{listed}'
