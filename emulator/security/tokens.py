"""Service-account tokens: JWTs as the Kubernetes API server issues them, and the key behind them.

A token is a compact JWS (RFC 7515) signed with RSASSA-PKCS1-v1_5 and SHA-256 (`RS256`) under a 2048-bit
RSA key, like the API server's `--service-account-signing-key-file`, so that software outside the emulator
can verify it with the public key alone: the emulator publishes it as a JSON Web Key Set
(`GET /openid/v1/jwks`, with `GET /.well-known/openid-configuration` pointing there; see api/oidc.py).
The header's `kid` is the key id kube-apiserver computes (`keyIDFromPublicKey`): the unpadded base64url
SHA-256 of the public key's DER (SubjectPublicKeyInfo). Its claims are those of a bound token:

    {"iss": "https://kubernetes.default.svc.cluster.local", "sub": "system:serviceaccount:NS:NAME",
     "aud": [...], "iat": T, "nbf": T, "exp": T + seconds, "jti": "...",
     "kubernetes.io": {"namespace": NS, "serviceaccount": {"name": NAME, "uid": UID},
                       "pod": {"name": POD, "uid": POD_UID},            # only when bound to a pod
                       "node": {"name": NODE, "uid": NODE_UID}}}         # only when that pod has a node

`ServiceAccountTokens.verify` accepts RS256 under this key only (no `none`, no HS256 keyed with the public
key, no other `kid`), and checks issuer and validity window; whether the account (and the bound pod) still
exist, and the audiences, are checked by emulator/security/auth.py, which reads the store. Tokens of
earlier versions of the emulator (HS256) are refused with an error that says so.

`cryptography` takes tens of milliseconds to import, so the key is parsed (or, in memory, made) only
when a token is first issued or verified or the key set is first served, never at start-up.

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
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from emulator.security.datadir import SIGNING_KEY_FILE, SIGNING_MODE_FILE, keep_private, private_file, write_private

if TYPE_CHECKING:  # cryptography loads in tens of ms: only when a key is first used, not at every start
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

log = logging.getLogger("emulator.tokens")

ALGORITHM = "RS256"
LEGACY_ALGORITHM = "HS256"  # what the emulator signed with before it published its key
KEY_BITS = 2048
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
DEFAULT_EXPIRATION = 3600  # TokenRequest's default, seconds
MIN_EXPIRATION = 600  # the API server refuses shorter tokens
MAX_EXPIRATION = 1 << 32
VERIFIED_CACHE = 4096  # tokens whose signature was checked, kept so a client's next request skips RSA


def default_issuer(cluster_domain: str = "cluster.local") -> str:
    """The issuer (and default API audience) kubeadm clusters use."""
    return f"https://kubernetes.default.svc.{cluster_domain.strip('.')}"


class TokenError(Exception):
    """A token that is not valid; the message says why (it goes into TokenReview's `status.error`)."""


@dataclass(frozen=True, slots=True)
class BoundNode:
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class BoundPod:
    name: str
    uid: str
    node: BoundNode | None = None  # the node the pod runs on, when it has one


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


def _b64_uint(value: int) -> str:
    """An unsigned big-endian integer as a JWK writes it (RFC 7518 §6.3.1: no leading zero bytes)."""
    return _b64(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


# --- the key -------------------------------------------------------------------------------------------


def new_key() -> str:
    """A new RSA private key (2048 bits, e = 65537) in PEM (PKCS#8)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def is_pem(text: str) -> bool:
    return text.lstrip().startswith("-----BEGIN ")


def key_id(public_key: RSAPublicKey) -> str:
    """kube-apiserver's key id: unpadded base64url of the SHA-256 of the public key's DER (PKIX)."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


class SigningKey:
    """The RSA key tokens are signed with, held as PEM and parsed on first use (or made then, in memory)."""

    def __init__(self, pem: str | None = None, source: str = "") -> None:
        self._pem = pem
        self._source = source  # where the PEM came from, for the error if it is not a key

    @property
    def pem(self) -> str:
        if self._pem is None:
            self._pem = new_key()
        return self._pem

    @cached_property
    def private_key(self) -> RSAPrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        where = f" in {self._source}" if self._source else ""
        try:
            # Our own key, 0600 in our own directory: OpenSSL's full consistency check (~30 ms) buys nothing.
            key = serialization.load_pem_private_key(self.pem.encode(), None, unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the service-account signing key{where} is not a PEM private key ({exc}): delete it and restart") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < KEY_BITS:
            raise ValueError(f"the service-account signing key{where} must be an RSA key of at least {KEY_BITS} bits")
        return key

    @cached_property
    def public_key(self) -> RSAPublicKey:
        return self.private_key.public_key()

    @cached_property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def verifies(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            self.public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    @cached_property
    def jwk(self) -> dict[str, str]:
        """The public key as the API server's JWKS lists it (the member order is kube-apiserver's)."""
        numbers = self.public_key.public_numbers()
        return {"use": "sig", "kty": "RSA", "kid": self.key_id, "alg": ALGORITHM, "n": _b64_uint(numbers.n), "e": _b64_uint(numbers.e)}


# --- tokens --------------------------------------------------------------------------------------------


class ServiceAccountTokens:
    """Issues and verifies service-account tokens under one key, and publishes that key."""

    def __init__(self, key: SigningKey, issuer: str) -> None:
        self.key = key
        self.issuer = issuer
        self._verified: dict[str, dict[str, Any]] = {}  # token -> claims, signature already checked
        self._legacy_logged = False

    @property
    def key_id(self) -> str:
        return self.key.key_id

    @cached_property
    def _header(self) -> str:
        return _b64(orjson.dumps({"alg": ALGORITHM, "kid": self.key.key_id}))

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
        identity: dict[str, Any] = {"namespace": namespace}
        if pod is not None:
            if pod.node is not None:
                identity["node"] = {"name": pod.node.name, "uid": pod.node.uid}
            identity["pod"] = {"name": pod.name, "uid": pod.uid}
        identity["serviceaccount"] = {"name": name, "uid": uid}
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
        signature = _b64(self.key.sign(signing_input.encode("ascii")))
        return IssuedToken(f"{signing_input}.{signature}", expires, claims)

    def verify(self, token: str, now: float | None = None) -> ServiceAccountClaims:
        """The claims of a token this issuer signed and that is valid now; raises TokenError otherwise."""
        at = time.time() if now is None else now
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check_signature(token)
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = claims
        return self._check_claims(claims, at)

    def _check_signature(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a service account token (a JWT has three dot-separated parts)")
        if not token.isascii():
            raise TokenError("not a service account token (a JWT is base64url text, ASCII only)")
        try:
            header = orjson.loads(_unb64(parts[0]))
        except (ValueError, binascii.Error):
            raise TokenError("not a service account token (its header is not base64url JSON)") from None
        if not isinstance(header, dict):
            raise TokenError("not a service account token (its header is not a JSON object)")
        algorithm = header.get("alg")
        if algorithm == LEGACY_ALGORITHM:
            if not self._legacy_logged:
                self._legacy_logged = True
                log.warning(
                    "refused a service-account token signed with HS256, as earlier versions of the emulator signed "
                    "them: tokens are RS256 now; whoever holds it must request a new one (kubectl create token)"
                )
            raise TokenError("token is signed with HS256 by an earlier version of the emulator: request a new token")
        # Only our own algorithm under our own key: never "none", never HS256 keyed with the public key.
        if algorithm != ALGORITHM:
            raise TokenError(f"token is not signed with {ALGORITHM}")
        if "kid" in header and header["kid"] != self.key.key_id:
            raise TokenError(
                "token was signed with another key (another emulator's, or one this emulator no longer uses: "
                "its data directory was reset, or the API began to require tokens)"
            )
        try:
            signature = _unb64(parts[2])
        except (ValueError, binascii.Error):
            raise TokenError("token signature is not base64url") from None
        if not self.key.verifies(signature, f"{parts[0]}.{parts[1]}".encode("ascii")):
            raise TokenError("token signature is invalid")
        try:
            claims = orjson.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            raise TokenError("token claims are not base64url JSON") from None
        if not isinstance(claims, dict):
            raise TokenError("token claims are not a JSON object")
        return claims

    def _check_claims(self, claims: dict[str, Any], now: float) -> ServiceAccountClaims:
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
        pod, node = identity.get("pod"), identity.get("node")
        bound_node = BoundNode(str(node.get("name")), str(node.get("uid") or "")) if isinstance(node, dict) else None
        return ServiceAccountClaims(
            namespace=str(namespace),
            name=str(name),
            uid=str(account.get("uid") or ""),
            audiences=tuple(audiences),
            pod=BoundPod(str(pod.get("name")), str(pod.get("uid") or ""), bound_node) if isinstance(pod, dict) else None,
            token_id=str(claims.get("jti") or ""),
            expires=exp,
        )

    # --- service account issuer discovery (served by api/oidc.py) --------------------------------------

    def jwks(self) -> dict[str, Any]:
        """`GET /openid/v1/jwks`: the key set a verifier checks tokens with."""
        return {"keys": [self.key.jwk]}

    def openid_configuration(self, jwks_uri: str) -> dict[str, Any]:
        """`GET /.well-known/openid-configuration`, as kube-apiserver answers it."""
        return {
            "issuer": self.issuer,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
        }


# --- secrets in the data directory -------------------------------------------------------------------


def new_admin_token() -> str:
    # A recognisable prefix: secret scanners and people can tell what leaked.
    return "emulator-admin-" + secrets.token_urlsafe(32)


OPEN_MODE = "open"  # the API took requests without a token
REQUIRE_AUTH_MODE = "require-auth"


def signing_key(data_dir: Path | None, *, auth_required: bool) -> SigningKey:
    """The key tokens are signed with: kept in `data_dir` (made at its first start), or made on first use
    and kept in memory when None.

    At the first start that requires tokens after one that did not, the key is made new, so that the
    tokens anyone could mint while the API was open (for kube-system's accounts too) stop working.
    Whether the last start required tokens is kept beside the key (`SIGNING_MODE_FILE`); a key without
    that record was made by a start that did not record it, and counts as made while open. The record
    is written after the new key is on disk: a crash in between only turns the key over once more.
    A key file of an earlier version (an HS256 secret, not a PEM) is replaced the same way.
    """
    if data_dir is None:
        return SigningKey()
    key_path, record = data_dir / SIGNING_KEY_FILE, data_dir / SIGNING_MODE_FILE
    mode = REQUIRE_AUTH_MODE if auth_required else OPEN_MODE
    last = _read(record)
    current = _read(key_path)
    if current and not is_pem(current):
        write_private(key_path, new_key() + "\n")
        log.warning(
            "%s held an HS256 secret of an earlier emulator version: made an RS256 key; service-account tokens "
            "minted before are no longer valid", key_path,
        )
    elif auth_required and last != REQUIRE_AUTH_MODE and current:
        write_private(key_path, new_key() + "\n")
        log.warning(
            "the API requires tokens now and did not at the last start: made a new service-account signing key "
            "(%s); tokens minted before are no longer valid", key_path,
        )
    pem = private_file(key_path, new_key)
    if last != mode:
        write_private(record, mode + "\n")
    else:
        keep_private(record)
    return SigningKey(pem + "\n", str(key_path))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
