"""Who is calling the API and what they may do: bearer tokens, TokenReview answers, the access rule.

Two kinds of bearer token are accepted:
- the admin token (`<data-dir>/admin-token`, created at first start, written into `<data-dir>/kubeconfig`):
  user `emulator:admin` in group `system:masters`, allowed everything;
- service-account tokens (emulator/tokens.py) issued for the API audience, while their service account
  (same uid) and, for a bound token, their pod still exist: allowed what RBAC grants them
  (emulator/security/rbac.py: their RoleBindings and ClusterRoleBindings), nothing by default.

When authentication is needed at all is `auth_required`: when the API listens on an address other than
loopback (unless the user opts out with --allow-anonymous), or when asked for with --require-auth.
The HTTP side (the middleware turning this into 401/403 Status answers) is api/auth.py.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.addresses import is_loopback
from emulator.kinds import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, PODS, ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS
from emulator.security import kubeconfig, rbac
from emulator.security.datadir import ADMIN_TOKEN_FILE, KUBECONFIG_FILE, private_file, write_private
from emulator.security.tokens import ServiceAccountTokens, TokenError, new_admin_token
from emulator.store.store import Store

ADMIN_USER = "emulator:admin"


@dataclass(frozen=True, slots=True)
class User:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    namespace: str | None = None  # a service account's namespace
    admin: bool = False

    def user_info(self) -> dict[str, object]:
        """TokenReview's `status.user` (authentication.k8s.io/v1 UserInfo)."""
        info: dict[str, object] = {"username": self.username}
        if self.uid:
            info["uid"] = self.uid
        info["groups"] = list(self.groups)
        if self.extra:
            info["extra"] = {k: list(v) for k, v in self.extra.items()}
        return info


ADMIN = User(ADMIN_USER, groups=(rbac.PRIVILEGED_GROUP, rbac.AUTHENTICATED), admin=True)


@dataclass(frozen=True, slots=True)
class Review:
    """A token's verdict, as TokenReview's status reports it."""

    authenticated: bool
    user: User | None = None
    audiences: tuple[str, ...] = ()
    error: str = ""


def auth_required(api_host: str, require_auth: bool, allow_anonymous: bool, runs_pods: bool = False) -> bool:
    """Tokens are needed off loopback unless explicitly waived, and wherever asked for. With the kubelet on
    (`runs_pods`) a pod is a command run as the owner, and loopback is shared by every local user: tokens
    are needed there too, unless explicitly waived (docs/security.md)."""
    return require_auth or ((runs_pods or not is_loopback(api_host)) and not allow_anonymous)


class Authenticator:
    def __init__(self, store: Store, tokens: ServiceAccountTokens, admin_token: str | None = None) -> None:
        self.store = store
        self.tokens = tokens
        self.policy = StoredPolicy(store)  # the roles and bindings RBAC decides from
        self._admin_token = admin_token
        # What a token must be meant for to be used against the API (TokenRequest's default audience).
        self.api_audiences: tuple[str, ...] = (tokens.issuer,)

    def review(self, token: str, audiences: Sequence[str] = (), now: float | None = None) -> Review:
        """Authenticate `token` for `audiences` (default: the API's), like a TokenReview."""
        wanted = tuple(audiences) or self.api_audiences
        if not token.isascii():  # tokens are ASCII; a header that is not (even undecodable bytes) is no token
            return Review(False, error="invalid bearer token: tokens are ASCII")
        if self._admin_token is not None and hmac.compare_digest(token.encode(), self._admin_token.encode()):
            matched = tuple(a for a in wanted if a in self.api_audiences)
            if not matched:
                return Review(False, error=_audience_error(self.api_audiences, wanted))
            return Review(True, ADMIN, matched)
        try:
            claims = self.tokens.verify(token, time.time() if now is None else now)
        except TokenError as exc:
            return Review(False, error=str(exc))
        matched = tuple(a for a in wanted if a in claims.audiences)
        if not matched:
            return Review(False, error=_audience_error(claims.audiences, wanted))
        account = self.store.get(SERVICE_ACCOUNTS.key, claims.namespace, claims.name)
        if account is None:
            return Review(False, error=f'service account {claims.namespace}/{claims.name} has been deleted')
        if claims.uid and account["metadata"].get("uid") != claims.uid:
            return Review(
                False, error=f"service account {claims.namespace}/{claims.name} was deleted and re-created (uid differs)"
            )
        extra: dict[str, tuple[str, ...]] = {"authentication.kubernetes.io/credential-id": (f"JTI={claims.token_id}",)}
        if claims.pod is not None:
            pod = self.store.get(PODS.key, claims.namespace, claims.pod.name)
            if pod is None or (claims.pod.uid and pod["metadata"].get("uid") != claims.pod.uid):
                return Review(False, error=f"pod {claims.namespace}/{claims.pod.name} the token is bound to no longer exists")
            extra["authentication.kubernetes.io/pod-name"] = (claims.pod.name,)
            extra["authentication.kubernetes.io/pod-uid"] = (claims.pod.uid,)
        user = User(
            claims.username,
            uid=claims.uid,
            groups=("system:serviceaccounts", f"system:serviceaccounts:{claims.namespace}", "system:authenticated"),
            extra=extra,
            namespace=claims.namespace,
        )
        return Review(True, user, matched)


def _audience_error(has: Sequence[str], wanted: Sequence[str]) -> str:
    return f"token audiences {list(has)} is invalid for the target audiences {list(wanted)}"


class StoredPolicy:
    """The RBAC policy as stored right now: a new binding counts from the next request on."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def cluster_role_bindings(self) -> Iterable[dict[str, Any]]:
        return self.store.objects(CLUSTER_ROLE_BINDINGS.key)

    def role_bindings(self, namespace: str) -> Iterable[dict[str, Any]]:
        return self.store.objects(ROLE_BINDINGS.key, namespace)

    def cluster_role(self, name: str) -> dict[str, Any] | None:
        return self.store.get(CLUSTER_ROLES.key, "", name)

    def role(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get(ROLES.key, namespace, name)


def attributes(
    user: User, verb: str, *, namespace: str = "", api_group: str = "", resource: str = "", subresource: str = "",
    name: str = "", path: str = "",
) -> rbac.Attributes:
    """What `user` asks to do, as RBAC reads it: a resource, or a non-resource `path` (`/version`)."""
    return rbac.Attributes(
        user.username, user.groups, verb, namespace, api_group, resource, subresource, name, path, resource_request=not path,
    )


def may(user: User, attrs: rbac.Attributes, policy: rbac.Policy) -> rbac.Decision:
    """The access rule: the admin does anything; everyone else what RBAC grants (emulator/security/rbac.py)."""
    if user.admin:
        return rbac.Decision(True, "the emulator's admin token")
    return rbac.authorize(policy, attrs)


def forbidden_message(attrs: rbac.Attributes) -> str:
    """The API server's wording, which kubectl prints as is."""
    return rbac.forbidden_message(attrs)


# --- the admin credential on disk --------------------------------------------------------------------


def admin_token(data_dir: Path) -> str:
    """The admin bearer token, created at first start (0600)."""
    return private_file(data_dir / ADMIN_TOKEN_FILE, new_admin_token)


def write_admin_kubeconfig(data_dir: Path, server: str, token: str, ca_pem: str | None = None) -> Path:
    """`<data-dir>/kubeconfig`: context `emulator` (current) with the server URL, the admin token and the
    certificate to trust for it."""
    config = kubeconfig.kubeconfig_for(server)
    config["users"][0]["user"] = {"token": token}
    if ca_pem:
        config["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    path = data_dir / KUBECONFIG_FILE
    write_private(path, kubeconfig.render(config))
    return path
