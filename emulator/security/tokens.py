"""Service-account tokens: signed JWTs shaped like the ones Kubernetes issues, and the secrets behind them.

A token is a compact JWS (RFC 7515) signed with HMAC-SHA256 (`HS256`) under a key the emulator keeps in
its data directory — the standard library has HMAC, and only the emulator itself ever has to verify its
tokens (through the API or a TokenReview), so an asymmetric key would buy nothing here. Its claims are
those of a Kubernetes bound service-account token:

    {"iss": "https://kubernetes.default.svc.cluster.local", "sub": "system:serviceaccount:NS:NAME",
     "aud": [...], "iat": T, "nbf": T, "exp": T + seconds, "jti": "...",
     "kubernetes.io": {"namespace": NS, "serviceaccount": {"name": NAME, "uid": UID},
                       "pod": {"name": POD, "uid": POD_UID}}}            # "pod" only when bound to one

`ServiceAccountTokens.verify` checks the signature, issuer and validity window; whether the account (and
the bound pod) still exist, and the audiences, are checked by emulator/auth.py, which reads the store.

Secrets on disk (`private_file`): created on first start, readable by the owner only (0600), replaced
atomically so that a crash or two starting processes never leave a half-written key.

The signing key turns over when the API begins to require tokens (`signing_key`): while the API was
open anyone could ask for a token of any account, kube-system's included, and such a token must not
let its holder in once tokens are what keeps people out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from emulator.security.datadir import SIGNING_KEY_FILE, SIGNING_MODE_FILE, keep_private, private_file, write_private

log = logging.getLogger("emulator.tokens")

ALGORITHM = "HS256"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
DEFAULT_EXPIRATION = 3600  # TokenRequest's default, seconds
MIN_EXPIRATION = 600  # the API server refuses shorter tokens
MAX_EXPIRATION = 1 << 32


def default_issuer(cluster_domain: str = "cluster.local") -> str:
    """The issuer (and default API audience) kubeadm clusters use."""
    return f"https://kubernetes.default.svc.{cluster_domain.strip('.')}"


class TokenError(Exception):
    """A token that is not valid; the message says why (it goes into TokenReview's `status.error`)."""


@dataclass(frozen=True, slots=True)
class BoundPod:
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires: int  # Unix seconds
    claims: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServiceAccountClaims:
    """What a verified token says about who holds it."""

    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    pod: BoundPod | None
    token_id: str
    expires: int

    @property
    def username(self) -> str:
        return f"{SERVICE_ACCOUNT_PREFIX}{self.namespace}:{self.name}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ServiceAccountTokens:
    """Issues and verifies service-account tokens under one key."""

    def __init__(self, key: bytes, issuer: str) -> None:
        if len(key) < 32:
            raise ValueError("the signing key must be at least 32 bytes")
        self._key = key
        self.issuer = issuer
        # the key id lets a verifier tell "signed by another emulator" from "tampered with"
        self.key_id = hashlib.sha256(b"emulator-kid:" + key).hexdigest()[:16]
        self._header = _b64(orjson.dumps({"alg": ALGORITHM, "kid": self.key_id, "typ": "JWT"}))

    def _sign(self, signing_input: bytes) -> str:
        return _b64(hmac.new(self._key, signing_input, hashlib.sha256).digest())

    def issue(
        self,
        namespace: str,
        name: str,
        uid: str,
        audiences: Sequence[str],
        expiration_seconds: int = DEFAULT_EXPIRATION,
        pod: BoundPod | None = None,
        now: float | None = None,
    ) -> IssuedToken:
        issued_at = int(time.time() if now is None else now)
        expires = issued_at + expiration_seconds
        identity: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
        if pod is not None:
            identity["pod"] = {"name": pod.name, "uid": pod.uid}
        claims: dict[str, Any] = {
            "aud": list(audiences),
            "exp": expires,
            "iat": issued_at,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": identity,
            "nbf": issued_at,
            "sub": f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
        }
        signing_input = f"{self._header}.{_b64(orjson.dumps(claims))}"
        return IssuedToken(f"{signing_input}.{self._sign(signing_input.encode('ascii'))}", expires, claims)

    def verify(self, token: str, now: float | None = None) -> ServiceAccountClaims:
        """The claims of a token this issuer signed and that is valid now; raises TokenError otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a service account token (a JWT has three dot-separated parts)")
        if not token.isascii():
            raise TokenError("not a service account token (a JWT is base64url text, ASCII only)")
        try:
            header = orjson.loads(_unb64(parts[0]))
        except (ValueError, binascii.Error):
            raise TokenError("not a service account token (its header is not base64url JSON)") from None
        # Only our own algorithm: never "none", never a key confusion between algorithms.
        if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
            raise TokenError(f"token is not signed with {ALGORITHM}")
        expected = self._sign(f"{parts[0]}.{parts[1]}".encode("ascii"))
        if not hmac.compare_digest(expected, parts[2]):
            if header.get("kid") not in (None, self.key_id):
                raise TokenError(
                    "token was signed with another key (another emulator's, or one this emulator no longer uses: "
                    "its data directory was reset, or the API began to require tokens)"
                )
            raise TokenError("token signature is invalid")
        try:
            claims = orjson.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            raise TokenError("token claims are not base64url JSON") from None
        return self._check_claims(claims, time.time() if now is None else now)

    def _check_claims(self, claims: Any, now: float) -> ServiceAccountClaims:
        if not isinstance(claims, dict):
            raise TokenError("token claims are not a JSON object")
        if claims.get("iss") != self.issuer:
            raise TokenError(f"token issuer {claims.get('iss')!r} is not {self.issuer!r}")
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(exp, int) or not isinstance(nbf, int):
            raise TokenError("token has no valid exp/nbf claims")
        if now >= exp:
            raise TokenError("token has expired")
        if now < nbf:
            raise TokenError("token is not valid yet")
        identity = claims.get("kubernetes.io")
        sub = claims.get("sub")
        if not isinstance(identity, dict) or not isinstance(sub, str) or not sub.startswith(SERVICE_ACCOUNT_PREFIX):
            raise TokenError("token is not a service account token")
        account = identity.get("serviceaccount") or {}
        namespace, name = identity.get("namespace"), account.get("name")
        if sub != f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}":
            raise TokenError("token subject does not match its service account")
        audiences = claims.get("aud")
        if isinstance(audiences, str):
            audiences = [audiences]
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise TokenError("token has no valid aud claim")
        pod = identity.get("pod")
        return ServiceAccountClaims(
            namespace=str(namespace),
            name=str(name),
            uid=str(account.get("uid") or ""),
            audiences=tuple(audiences),
            pod=BoundPod(str(pod.get("name")), str(pod.get("uid") or "")) if isinstance(pod, dict) else None,
            token_id=str(claims.get("jti") or ""),
            expires=exp,
        )


# --- secrets in the data directory -------------------------------------------------------------------


def new_key() -> str:
    return _b64(secrets.token_bytes(32))


def new_admin_token() -> str:
    # A recognisable prefix: secret scanners and people can tell what leaked.
    return "emulator-admin-" + secrets.token_urlsafe(32)


def decode_key(text: str) -> bytes:
    return _unb64(text.strip())


OPEN_MODE = "open"  # the API took requests without a token
REQUIRE_AUTH_MODE = "require-auth"


def signing_key(data_dir: Path | None, *, auth_required: bool) -> bytes:
    """The key tokens are signed with: kept in `data_dir`, or a fresh one per process when None.

    At the first start that requires tokens after one that did not, the key is made new, so that the
    tokens anyone could mint while the API was open (for kube-system's accounts too) stop working.
    Whether the last start required tokens is kept beside the key (`SIGNING_MODE_FILE`); a key without
    that record was made by a start that did not record it, and counts as made while open. The record
    is written after the new key is on disk: a crash in between only turns the key over once more.
    """
    if data_dir is None:
        return decode_key(new_key())
    key_path, record = data_dir / SIGNING_KEY_FILE, data_dir / SIGNING_MODE_FILE
    mode = REQUIRE_AUTH_MODE if auth_required else OPEN_MODE
    last = _read(record)
    if auth_required and last != REQUIRE_AUTH_MODE and _read(key_path):
        write_private(key_path, new_key() + "\n")
        log.warning(
            "the API requires tokens now and did not at the last start: made a new service-account signing key "
            "(%s); tokens minted before are no longer valid", key_path,
        )
    key = decode_key(private_file(key_path, new_key))
    if last != mode:
        write_private(record, mode + "\n")
    else:
        keep_private(record)
    return key


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
