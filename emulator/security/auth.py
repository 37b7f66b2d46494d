"""Who is calling the API and what they may do: bearer tokens, TokenReview answers, the access rule.

Two kinds of bearer token are accepted:
- the admin token (`<data-dir>/admin-token`, created at first start, written into `<data-dir>/kubeconfig`):
  user `emulator:admin` in group `system:masters`, allowed everything;
- service-account tokens (emulator/tokens.py) issued for the API audience, while their service account
  (same uid) and, for a bound token, their pod still exist: allowed to read (get, list, watch) their own
  namespace and nothing else — the smallest useful grant, since the emulator has no RBAC.

When authentication is needed at all is `auth_required`: when the API listens on an address other than
loopback (unless the user opts out with --allow-anonymous), or when asked for with --require-auth.
The HTTP side (the middleware turning this into 401/403 Status answers) is api/auth.py.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emulator.addresses import is_loopback
from emulator.kinds import PODS, SERVICE_ACCOUNTS
from emulator.security import kubeconfig
from emulator.security.datadir import ADMIN_TOKEN_FILE, KUBECONFIG_FILE, private_file, write_private
from emulator.security.tokens import ServiceAccountTokens, TokenError, new_admin_token
from emulator.store.store import Store

ADMIN_USER = "emulator:admin"
READ_VERBS = frozenset({"get", "list", "watch"})


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


ADMIN = User(ADMIN_USER, groups=("system:masters", "system:authenticated"), admin=True)


@dataclass(frozen=True, slots=True)
class Review:
    """A token's verdict, as TokenReview's status reports it."""

    authenticated: bool
    user: User | None = None
    audiences: tuple[str, ...] = ()
    error: str = ""


def auth_required(api_host: str, require_auth: bool, allow_anonymous: bool) -> bool:
    """Tokens are needed off loopback unless explicitly waived, and wherever asked for."""
    return require_auth or (not is_loopback(api_host) and not allow_anonymous)


class Authenticator:
    def __init__(self, store: Store, tokens: ServiceAccountTokens, admin_token: str | None = None) -> None:
        self.store = store
        self.tokens = tokens
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


def may(user: User, verb: str, namespace: str | None) -> bool:
    """The access rule: admins do anything; a service account reads its own namespace only."""
    if user.admin:
        return True
    return user.namespace is not None and namespace == user.namespace and verb in READ_VERBS


def forbidden_message(user: User, verb: str, resource: str, group: str, namespace: str | None) -> str:
    """The API server's wording, which kubectl prints as is."""
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return f'{resource} is forbidden: User "{user.username}" cannot {verb} resource "{resource}" in API group "{group}" {where}'


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
