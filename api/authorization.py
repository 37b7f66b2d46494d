"""The access reviews: "may I?", "what may I?", "may they?" and "who am I?", answered at once from RBAC
(emulator/security/rbac.py) and never stored, as the API server does:

    POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews                    kubectl auth can-i VERB RESOURCE
    POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews                     kubectl auth can-i --list
    POST /apis/authorization.k8s.io/v1/subjectaccessreviews                        (webhooks, proxies)
    POST /apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews
    POST /apis/authentication.k8s.io/v1/selfsubjectreviews                         kubectl auth whoami

"Self" is the caller after impersonation (kubectl --as): the user api/auth.py put on the request. When
the API is open (no --require-auth, on loopback) there is no token to say who calls: the caller is
`system:anonymous` in group `system:unauthenticated` (or whom its Impersonate-* headers name), and every
review answers allowed, since the open API lets everyone do everything. Bodies are JSON, YAML or
protobuf (kubectl sends protobuf); the answers are the request with its `status`, with 201.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import USER, impersonated
from api.http import decode, json_response, media_type, read_body
from emulator import errors
from emulator.errors import FieldError, invalid
from emulator.kinds.selfsubjectaccessreview import AUTHORIZATION_GROUP, AUTHORIZATION_V1
from emulator.kinds.serviceaccount import AUTHENTICATION_V1
from emulator.security import rbac
from emulator.security.auth import Authenticator, User, may

PREFIX = f"/apis/{AUTHORIZATION_V1}"
SELF_ACCESS_PATH = f"{PREFIX}/selfsubjectaccessreviews"
SELF_RULES_PATH = f"{PREFIX}/selfsubjectrulesreviews"
ACCESS_PATH = f"{PREFIX}/subjectaccessreviews"
LOCAL_ACCESS_PATH = f"{PREFIX}/namespaces/{{namespace}}/localsubjectaccessreviews"
WHOAMI_PATH = f"/apis/{AUTHENTICATION_V1}/selfsubjectreviews"
OPEN_USER = User(rbac.ANONYMOUS, groups=(rbac.UNAUTHENTICATED,), admin=True)
OPEN_REASON = "the API is open: authentication and authorization are off (serve without --require-auth)"
EVERYTHING = rbac.Rule(verbs=("*",), api_groups=("*",), resources=("*",))
EVERY_PATH = rbac.Rule(verbs=("*",), non_resource_urls=("*",))
EXACTLY_ONE = "exactly one of nonResourceAttributes or resourceAttributes must be specified"


def routes(authenticator: Authenticator, auth_required: bool) -> list[web.RouteDef]:
    """The routes to hand to `create_app(registry, routes=...)`; other methods on these paths fall through
    to the generic handler, which answers 405 (the reviews are create-only)."""
    reviews = AccessReviews(authenticator.policy, auth_required)
    return [
        web.post(SELF_ACCESS_PATH, reviews.self_access),
        web.post(SELF_RULES_PATH, reviews.self_rules),
        web.post(ACCESS_PATH, reviews.access),
        web.post(LOCAL_ACCESS_PATH, reviews.local_access),
        web.post(WHOAMI_PATH, reviews.whoami),
    ]


class AccessReviews:
    def __init__(self, policy: rbac.Policy, auth_required: bool) -> None:
        self.policy = policy
        self.auth_required = auth_required

    def caller(self, request: web.Request) -> User:
        if USER in request:
            return request[USER]
        return impersonated(request, OPEN_USER, self.policy)  # the open API: nobody said who they are

    def decide(self, user: User, attrs: rbac.Attributes) -> rbac.Decision:
        if not self.auth_required:
            return rbac.Decision(True, OPEN_REASON)
        return may(user, attrs, self.policy)

    async def self_access(self, request: web.Request) -> web.Response:
        body = await _review_body(request, "SelfSubjectAccessReview", AUTHORIZATION_V1)
        user = self.caller(request)
        attrs = _attributes(body, "SelfSubjectAccessReview", user.username, user.groups)
        return _answer(body, _status(self.decide(user, attrs)))

    async def access(self, request: web.Request) -> web.Response:
        body = await _review_body(request, "SubjectAccessReview", AUTHORIZATION_V1)
        user = _subject(body, "SubjectAccessReview")
        attrs = _attributes(body, "SubjectAccessReview", user.username, user.groups)
        return _answer(body, _status(self.decide(user, attrs)))

    async def local_access(self, request: web.Request) -> web.Response:
        kind = "LocalSubjectAccessReview"
        body = await _review_body(request, kind, AUTHORIZATION_V1)
        namespace = request.match_info["namespace"]
        spec = body.get("spec") or {}
        if spec.get("nonResourceAttributes") is not None:
            raise _invalid(kind, [invalid("spec.nonResourceAttributes", "", "disallowed on this kind of request")])
        resource = spec.get("resourceAttributes") or {}
        if (resource.get("namespace") or "") != namespace:
            raise errors.bad_request(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
        user = _subject(body, kind)
        attrs = _attributes(body, kind, user.username, user.groups)
        return _answer(body, _status(self.decide(user, attrs)))

    async def self_rules(self, request: web.Request) -> web.Response:
        body = await _review_body(request, "SelfSubjectRulesReview", AUTHORIZATION_V1)
        user = self.caller(request)
        namespace = (body.get("spec") or {}).get("namespace") or ""
        rules: list[rbac.Rule] = [EVERYTHING, EVERY_PATH]
        problems: list[str] = []
        if self.auth_required:
            rules, problems = rbac.rules_for(self.policy, user.username, user.groups, namespace)
            if (user.admin or rbac.PRIVILEGED_GROUP in user.groups) and EVERYTHING not in rules:
                rules = [EVERYTHING, EVERY_PATH, *rules]  # allowed everything whatever the bindings say
        status: dict[str, Any] = {
            "resourceRules": [_resource_rule(r) for r in rules if r.resources],
            "nonResourceRules": [{"verbs": list(r.verbs), "nonResourceURLs": list(r.non_resource_urls)} for r in rules if r.non_resource_urls],
            "incomplete": bool(problems),
        }
        if problems:
            status["evaluationError"] = ", ".join(problems)
        return _answer(body, status)

    async def whoami(self, request: web.Request) -> web.Response:
        body = await _review_body(request, "SelfSubjectReview", AUTHENTICATION_V1)
        info = self.caller(request).user_info()
        return json_response({
            "kind": "SelfSubjectReview", "apiVersion": AUTHENTICATION_V1,
            "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None}, "status": {"userInfo": info},
        }, status=201)


async def _review_body(request: web.Request, kind: str, api_version: str) -> dict[str, Any]:
    raw = await read_body(request)
    body = decode(raw, media_type(request)) if raw.strip() else {}
    if not isinstance(body, dict):
        raise errors.bad_request("the body must be a JSON or YAML object")
    if body.get("kind") not in (None, "", kind) or body.get("apiVersion") not in (None, "", api_version):
        raise errors.bad_request(f'expected kind {kind} in apiVersion {api_version}, got kind "{body.get("kind")}" in "{body.get("apiVersion")}"')
    body["kind"], body["apiVersion"] = kind, api_version
    if not isinstance(body.get("spec") or {}, dict):
        raise errors.bad_request("spec must be an object")
    return body


def _invalid(kind: str, problems: list[FieldError]) -> errors.StatusError:
    group = AUTHORIZATION_GROUP if kind != "SelfSubjectReview" else "authentication.k8s.io"
    return errors.invalid_object(kind, group, "", problems)


def _subject(body: dict[str, Any], kind: str) -> User:
    """The user a (Local)SubjectAccessReview asks about."""
    spec = body.get("spec") or {}
    name, groups = spec.get("user") or "", spec.get("groups") or []
    if not name and not groups:
        raise _invalid(kind, [invalid("spec.user", name, "at least one of user or group must be specified")])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise _invalid(kind, [invalid("spec.groups", groups, "must be a list of strings")])
    return User(name, uid=spec.get("uid") or "", groups=tuple(groups))


def _attributes(body: dict[str, Any], kind: str, user: str, groups: tuple[str, ...]) -> rbac.Attributes:
    spec = body.get("spec") or {}
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is None and non_resource is None:
        raise _invalid(kind, [invalid("spec.resourceAttributes", "null", EXACTLY_ONE)])
    if resource is not None and non_resource is not None:
        raise _invalid(kind, [invalid("spec.nonResourceAttributes", "", EXACTLY_ONE)])
    asked = resource if resource is not None else non_resource
    if not isinstance(asked, dict):
        raise errors.bad_request("spec.resourceAttributes and spec.nonResourceAttributes must be objects")
    if resource is None:
        return rbac.Attributes(user, groups, str(asked.get("verb") or ""), path=str(asked.get("path") or ""), resource_request=False)
    return rbac.Attributes(
        user, groups, str(asked.get("verb") or ""), str(asked.get("namespace") or ""), str(asked.get("group") or ""),
        str(asked.get("resource") or ""), str(asked.get("subresource") or ""), str(asked.get("name") or ""),
    )


def _status(decision: rbac.Decision) -> dict[str, Any]:
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    if decision.errors:
        status["evaluationError"] = ", ".join(decision.errors)
    return status


def _resource_rule(rule: rbac.Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": list(rule.verbs)}
    if rule.api_groups:
        out["apiGroups"] = list(rule.api_groups)
    out["resources"] = list(rule.resources)
    if rule.resource_names:
        out["resourceNames"] = list(rule.resource_names)
    return out


def _answer(body: dict[str, Any], status: dict[str, Any]) -> web.Response:
    meta = {**(body.get("metadata") or {}), "creationTimestamp": None}
    return json_response({**body, "metadata": meta, "status": status}, status=201)
