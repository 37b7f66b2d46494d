"""TokenRequest and TokenReview, as registry operations: issuing service-account tokens and checking them.

    POST /api/v1/namespaces/{namespace}/serviceaccounts/{name}/token     (kubectl create token NAME)
    POST /apis/authentication.k8s.io/v1/tokenreviews

TokenRequest (authentication.k8s.io/v1): `spec.audiences` (default: the API's audience, the issuer
URL), `spec.expirationSeconds` (default 3600, at least 600, at most 2^32; longer than the server's
maximum, --max-token-seconds, is cut to it, as --service-account-max-token-expiration does in the API
server, and the answer's spec and expirationTimestamp show the cut value), `spec.boundObjectRef` (optional, a Pod of
this service account: the token dies with the pod). Answered with 201 and `status.token` +
`status.expirationTimestamp`. Nothing is stored: a token is valid for as long as its signature, expiry,
account (same uid) and bound pod say so.

TokenReview: `spec.token` and optional `spec.audiences`; answered with 201 and `status.authenticated`,
`status.user` (username, uid, groups, extra), `status.audiences` — or `status.error` saying why not.
"""

from __future__ import annotations

from typing import Any

from emulator import errors
from emulator.errors import FieldError, invalid, not_supported, required
from emulator.kinds import NODES, PODS, SERVICE_ACCOUNTS
from emulator.kinds.serviceaccount import AUTHENTICATION_V1 as AUTHENTICATION
from emulator.registry.registry import Registry
from emulator.security.auth import Authenticator
from emulator.security.tokens import DEFAULT_EXPIRATION, MAX_EXPIRATION, MIN_EXPIRATION, BoundNode, BoundPod
from emulator.timestamps import rfc3339


def _check_kind(body: dict[str, Any], kind: str) -> None:
    if body.get("kind") not in (None, kind) or body.get("apiVersion") not in (None, AUTHENTICATION):
        raise errors.bad_request(
            f'expected kind {kind} in apiVersion {AUTHENTICATION}, got kind "{body.get("kind")}" in "{body.get("apiVersion")}"'
        )


def _audiences(spec: dict[str, Any], path: str, problems: list[FieldError]) -> list[str]:
    audiences = spec.get("audiences")
    if audiences is None:
        return []
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        problems.append(invalid(path, audiences, "must be a list of non-empty strings"))
        return []
    return audiences


class TokenOperations:
    """TokenRequest and TokenReview, validated and answered as the API server does (nothing is stored)."""

    def __init__(self, registry: Registry, authenticator: Authenticator, *, max_expiration: int) -> None:
        self.store = registry.store
        self.authenticator = authenticator
        self.max_expiration = max_expiration  # longest lifetime issued, seconds (longer requests are cut)

    def token_request(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """The TokenRequest answer (with `status.token`) for service account `namespace/name`."""
        _check_kind(body, "TokenRequest")
        account = self.store.get(SERVICE_ACCOUNTS.key, namespace, name)
        if account is None:
            raise errors.not_found(SERVICE_ACCOUNTS.key, name)
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise errors.bad_request("spec must be an object")
        problems: list[FieldError] = []
        audiences = _audiences(spec, "spec.audiences", problems) or list(self.authenticator.api_audiences)
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            seconds = DEFAULT_EXPIRATION
        elif not isinstance(seconds, int) or isinstance(seconds, bool):
            problems.append(invalid("spec.expirationSeconds", seconds, "must be an integer"))
        elif seconds < MIN_EXPIRATION:
            problems.append(invalid("spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"))
        elif seconds > MAX_EXPIRATION:
            problems.append(invalid("spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds"))
        ref = spec.get("boundObjectRef")
        bound = self._bound_pod(namespace, name, ref, problems) if ref is not None else None
        if problems:
            raise errors.invalid_object("TokenRequest", "authentication.k8s.io", name, problems)
        # After validation, as the API server does: a valid request for longer is shortened, not refused.
        seconds = min(seconds, self.max_expiration)
        issued = self.authenticator.tokens.issue(
            namespace, name, account["metadata"].get("uid", ""), audiences, seconds, bound
        )
        out_spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": seconds}
        if ref is not None:
            out_spec["boundObjectRef"] = {**ref, "uid": bound.uid} if bound else ref
        return {
            "kind": "TokenRequest",
            "apiVersion": AUTHENTICATION,
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": rfc3339(issued.claims["iat"])},
            "spec": out_spec,
            "status": {"token": issued.token, "expirationTimestamp": rfc3339(issued.expires)},
        }

    def _bound_pod(self, namespace: str, account: str, ref: Any, problems: list[FieldError]) -> BoundPod | None:
        path = "spec.boundObjectRef"
        if not isinstance(ref, dict):
            problems.append(invalid(path, ref, "must be an object"))
            return None
        # Secrets and Nodes, the API server's other choices, do not exist in the emulator.
        if ref.get("kind") != "Pod":
            problems.append(not_supported(f"{path}.kind", ref.get("kind"), ["Pod"]))
            return None
        if ref.get("apiVersion") not in (None, "", "v1"):
            problems.append(not_supported(f"{path}.apiVersion", ref.get("apiVersion"), ["v1"]))
            return None
        pod_name = ref.get("name")
        if not pod_name or not isinstance(pod_name, str):
            problems.append(required(f"{path}.name"))
            return None
        pod = self.store.get(PODS.key, namespace, pod_name)
        if pod is None:
            raise errors.not_found(PODS.key, pod_name)
        uid = pod["metadata"].get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(
                PODS.key, pod_name, f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
            )
        if (pod.get("spec") or {}).get("serviceAccountName", "default") != account:
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{account}" to pod running with different serviceaccount name.'
            )
        return BoundPod(pod_name, uid, self._node_of(pod))

    def _node_of(self, pod: dict[str, Any]) -> BoundNode | None:
        """The node a pod is placed on, named in its tokens' `kubernetes.io.node` claim as the API server does."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return None
        node = self.store.get(NODES.key, "", node_name)
        return BoundNode(node_name, node["metadata"].get("uid", "")) if node is not None else None

    def token_review(self, body: dict[str, Any]) -> dict[str, Any]:
        """The TokenReview answer: whether `spec.token` is valid (for `spec.audiences`), and whose it is."""
        _check_kind(body, "TokenReview")
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise errors.bad_request("spec must be an object")
        token = spec.get("token")
        if not token or not isinstance(token, str):
            raise errors.bad_request("token is required for TokenReview in authentication")
        problems: list[FieldError] = []
        audiences = _audiences(spec, "spec.audiences", problems)
        if problems:
            raise errors.invalid_object("TokenReview", "authentication.k8s.io", "", problems)
        review = self.authenticator.review(token, audiences)
        status: dict[str, Any] = {"authenticated": review.authenticated, "user": {}}
        if review.authenticated and review.user is not None:
            status["user"] = review.user.user_info()
            status["audiences"] = list(review.audiences)
        else:
            status["error"] = review.error
        return {
            "kind": "TokenReview",
            "apiVersion": AUTHENTICATION,
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
