"""Service-account tokens (issue, verify, reject, publish the key), the access rule, private key files and the API certificate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from emulator import errors
from emulator.cli import target
from emulator.controllers.namespaces import NamespaceController
from emulator.kinds import PODS, SERVICE_ACCOUNTS
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.registry.tokens import TokenOperations
from emulator.security import auth
from emulator.security import tls as auth_tls
from emulator.security.datadir import private_db_file, private_dir, private_file, write_private
from emulator.security.tokens import (
    BoundNode,
    BoundPod,
    ServiceAccountTokens,
    SigningKey,
    TokenError,
    default_issuer,
    key_id,
    signing_key,
)
from emulator.store.backend import MemoryBackend, SqliteBackend
from emulator.store.store import Store
from emulator.timestamps import rfc3339

KEY = SigningKey()  # made on first use, then shared by the tests (an RSA key takes tens of ms to make)
OTHER_KEY = SigningKey()
ISSUER = default_issuer("cluster.local")
NOW = 1_800_000_000

# A known vector, derived outside the emulator with the OpenSSL command line:
#   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out k.pem
#   openssl rsa -in k.pem -noout -modulus
#   openssl pkey -in k.pem -pubout -outform DER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '='
VECTOR_MODULUS = int(
    "B7665F9D577BC1545CBFB78610FB65DF0482190B91E1359BD86E777510D883013C47077A5F2EFC42B9574630BA0154D1"
    "D2D559ED3C3BFFDCA03C69CC85E614EC91702B582FBF84B7870DF3EFA6063ADB36A1E0A17AE44A63765BF4ECEAB7A478"
    "F6487175C43F90960F4B5D4E24ADF6ACDCE532D921150AC43854FA0B8DB230F6719FFC5F2291E22F94DB888BB954505D"
    "3DA0CB66D6DA7B1F18989B90EE683419B90F7074AA6F93E98E72C84B1F1D7DC3A1C6FFC86F89F9A8B2926F94EF1685A8"
    "63E71140F60C743ED6242CA5269E601A5304F57F1202D5D135DAE17E2B6C6FE0007FFA6FA584FCBD3BB7BA8E0EC046C8"
    "4D97DFA24A64D8EBB11685B69BD07611",
    16,
)
VECTOR_KID = "6sNi32HuhyGrR_e7SQ0JXM-URmetrrG7PMmXbHmrvmE"


def tokens(key: SigningKey = KEY, issuer: str = ISSUER) -> ServiceAccountTokens:
    return ServiceAccountTokens(key, issuer)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part_of(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def claims_of(token: str) -> dict:
    return part_of(token, 1)


def test_issued_token_carries_the_kubernetes_claims() -> None:
    bound = BoundPod("web-0", "pod-uid", BoundNode("emulator", "node-uid"))
    issued = tokens().issue("shop", "web", "uid-1", ["api", "vault"], 3600, bound, now=NOW)
    claims = claims_of(issued.token)
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == "system:serviceaccount:shop:web"
    assert claims["aud"] == ["api", "vault"]
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW, NOW, NOW + 3600)
    assert len(claims["jti"]) == 36
    assert claims["kubernetes.io"] == {
        "namespace": "shop", "node": {"name": "emulator", "uid": "node-uid"},
        "pod": {"name": "web-0", "uid": "pod-uid"}, "serviceaccount": {"name": "web", "uid": "uid-1"},
    }
    assert part_of(issued.token, 0) == {"alg": "RS256", "kid": KEY.key_id}  # kube-apiserver's header, no typ
    verified = tokens().verify(issued.token, now=NOW + 10)
    assert verified.username == "system:serviceaccount:shop:web"
    assert verified.pod == bound and verified.audiences == ("api", "vault")
    unbound = claims_of(tokens().issue("shop", "web", "uid-1", ["api"], now=NOW).token)["kubernetes.io"]
    assert unbound == {"namespace": "shop", "serviceaccount": {"name": "web", "uid": "uid-1"}}


def test_the_key_id_is_the_one_kube_apiserver_computes() -> None:
    """base64url(SHA-256(DER SubjectPublicKeyInfo)), checked against a vector made with OpenSSL."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    assert key_id(rsa.RSAPublicNumbers(65537, VECTOR_MODULUS).public_key()) == VECTOR_KID
    assert KEY.key_id != OTHER_KEY.key_id and len(KEY.key_id) == 43


def test_the_key_set_publishes_the_public_key() -> None:
    (jwk,) = tokens().jwks()["keys"]
    assert list(jwk) == ["use", "kty", "kid", "alg", "n", "e"]
    assert (jwk["use"], jwk["kty"], jwk["kid"], jwk["alg"], jwk["e"]) == ("sig", "RSA", KEY.key_id, "RS256", "AQAB")
    numbers = KEY.public_key.public_numbers()
    assert int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big") == numbers.n
    assert len(base64.urlsafe_b64decode(jwk["n"] + "==")) == 256  # 2048 bits, no leading zero byte
    assert "d" not in jwk and "p" not in jwk  # nothing private
    assert tokens().openid_configuration("https://127.0.0.1:6443/openid/v1/jwks") == {
        "issuer": ISSUER,
        "jwks_uri": "https://127.0.0.1:6443/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def test_an_outside_verifier_accepts_the_token_with_the_key_set_alone() -> None:
    """PyJWT, given only the published JWK, verifies what the emulator signs, and the other way round."""
    issued = tokens().issue("shop", "web", "uid-1", ["vault"], 3600)
    key = jwt.PyJWKSet.from_dict(tokens().jwks())[jwt.get_unverified_header(issued.token)["kid"]]
    claims = jwt.decode(issued.token, key, algorithms=["RS256"], audience="vault", issuer=ISSUER)
    assert claims["sub"] == "system:serviceaccount:shop:web"
    foreign = jwt.encode(issued.claims, KEY.private_key, algorithm="RS256", headers={"kid": KEY.key_id})
    assert tokens().verify(foreign).name == "web"


def test_expired_and_not_yet_valid_tokens_are_rejected() -> None:
    token = tokens().issue("shop", "web", "u", ["api"], 600, now=NOW).token
    tokens().verify(token, now=NOW + 599)
    with pytest.raises(TokenError, match="expired"):
        tokens().verify(token, now=NOW + 600)
    with pytest.raises(TokenError, match="not valid yet"):
        tokens().verify(token, now=NOW - 1)
    t = tokens()
    t.verify(token, now=NOW)  # a token whose signature was checked once is remembered: the times are not
    with pytest.raises(TokenError, match="expired"):
        t.verify(token, now=NOW + 600)


def _swap_claims(token: str, **changes: object) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps({**claims_of(token), **changes}).encode())}.{signature}"


def _forge(header: dict, claims: dict, sign: object = None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if callable(sign) else b""
    return f"{signing_input}.{b64(signature)}"


def test_tampered_and_foreign_tokens_are_rejected() -> None:
    issued = tokens().issue("shop", "web", "u", ["api"], 3600, now=NOW)
    token = issued.token
    with pytest.raises(TokenError, match="signature is invalid"):
        tokens().verify(_swap_claims(token, sub="system:serviceaccount:kube-system:admin"), now=NOW)
    with pytest.raises(TokenError, match="signature is invalid"):
        tokens().verify(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), now=NOW)
    with pytest.raises(TokenError, match="another key"):
        tokens(OTHER_KEY).verify(token, now=NOW)
    # without a kid, the signature still decides
    no_kid = _forge({"alg": "RS256"}, issued.claims, OTHER_KEY.sign)
    with pytest.raises(TokenError, match="signature is invalid"):
        tokens().verify(no_kid, now=NOW)
    assert tokens(OTHER_KEY).verify(no_kid, now=NOW).name == "web"
    # another issuer under the same key
    with pytest.raises(TokenError, match="issuer"):
        tokens(issuer=ISSUER).verify(tokens(issuer="https://elsewhere").issue("shop", "web", "u", ["api"], now=NOW).token, now=NOW)
    for junk in ("", "abc", "a.b", "a.b.c", "!!.??.##", token[:-3] + "é"):
        with pytest.raises(TokenError):
            tokens().verify(junk, now=NOW)


@pytest.mark.parametrize("algorithm", ["none", "None", "HS256", "HS512", "RS512", "PS256", "ES256", None])
def test_only_rs256_is_accepted(algorithm: str | None) -> None:
    """`alg: none`, and HMAC keyed with the public key (which anyone can fetch from the JWKS), never pass."""
    claims = tokens().issue("kube-system", "admin", "u", [ISSUER], 3600, now=NOW).claims
    header = {"alg": algorithm, "kid": KEY.key_id}
    from cryptography.hazmat.primitives import serialization

    public_pem = KEY.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (public_pem, public_pem.strip(), b""):
        forged = _forge(header, claims, lambda data, s=secret: hmac.new(s, data, hashlib.sha256).digest())
        with pytest.raises(TokenError):
            tokens().verify(forged, now=NOW)
    with pytest.raises(TokenError):
        tokens().verify(_forge(header, claims), now=NOW)  # no signature at all


def test_tokens_of_an_earlier_version_are_refused_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    claims = tokens().issue("shop", "web", "u", [ISSUER], 3600, now=NOW).claims
    old = _forge({"alg": "HS256", "kid": "0123456789abcdef", "typ": "JWT"}, claims, lambda d: hmac.new(b"k" * 32, d, hashlib.sha256).digest())
    t = tokens()
    with caplog.at_level("WARNING", logger="emulator.tokens"):
        for _ in range(2):
            with pytest.raises(TokenError, match="HS256 by an earlier version of the emulator: request a new token"):
                t.verify(old, now=NOW)
    assert caplog.text.count("tokens are RS256 now") == 1  # said once, not per request


def test_the_signing_key_is_not_made_or_parsed_until_needed(tmp_path: Path) -> None:
    """Start-up does not pay for `cryptography` (import) or an RSA key (generation, parsing)."""
    signing_key(tmp_path / "data", auth_required=False)  # the key file exists (made by an earlier start)
    code = (
        "import sys, pathlib; from emulator.security import tokens as t; "
        f"k = t.signing_key(pathlib.Path({str(tmp_path / 'data')!r}), auth_required=False); "
        "m = t.signing_key(None, auth_required=False); s = t.ServiceAccountTokens(m, t.default_issuer()); "
        "print('cryptography' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout == "False\n"


def test_a_key_must_be_a_large_enough_rsa_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def pem(key: object) -> str:
        return key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    with pytest.raises(ValueError, match="at least 2048 bits"):
        SigningKey(pem(rsa.generate_private_key(65537, 1024))).sign(b"x")
    with pytest.raises(ValueError, match="must be an RSA key"):
        SigningKey(pem(ec.generate_private_key(ec.SECP256R1()))).sign(b"x")
    with pytest.raises(ValueError, match="in /data/key is not a PEM private key.*delete it and restart"):
        SigningKey("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "/data/key").sign(b"x")


# --- key files ---------------------------------------------------------------------------------------


def test_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = signing_key(tmp_path / "data", auth_required=False)
    path = tmp_path / "data" / "serviceaccount-signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
    again = signing_key(tmp_path / "data", auth_required=False)
    assert again.pem == first.pem and again.key_id == first.key_id
    assert first.private_key.key_size == 2048 and first.public_key.public_numbers().e == 65537
    in_memory = signing_key(None, auth_required=True)
    assert in_memory.pem != signing_key(None, auth_required=True).pem  # in memory: fresh each time
    assert in_memory.pem == in_memory.pem  # ... and made once


def test_key_turns_over_at_the_first_start_that_requires_tokens(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Tokens anyone could mint while the API was open must not let anyone in once it requires tokens."""
    data = tmp_path / "data"
    record = data / "serviceaccount-signing.mode"
    with caplog.at_level("WARNING", logger="emulator.tokens"):
        opened = signing_key(data, auth_required=False).pem
        assert record.read_text() == "open\n" and stat.S_IMODE(record.stat().st_mode) == 0o600
        assert not caplog.text
        secured_key = signing_key(data, auth_required=True)  # open -> requires tokens: a new key
        secured = secured_key.pem
        assert secured != opened and record.read_text() == "require-auth\n"
        assert caplog.text.count("tokens minted before are no longer valid") == 1
        assert signing_key(data, auth_required=True).pem == secured  # requires tokens again: kept
        assert signing_key(data, auth_required=False).pem == secured  # opening up revokes nothing
        assert record.read_text() == "open\n"
        again = signing_key(data, auth_required=True)
        assert again.pem not in (opened, secured)
        assert caplog.text.count("tokens minted before are no longer valid") == 2
    token = tokens(secured_key).issue("kube-system", "default", "u", [ISSUER], 3600, now=NOW).token
    with pytest.raises(TokenError, match="another key"):
        tokens(again).verify(token, now=NOW)


def test_a_key_without_a_record_counts_as_made_while_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    old = signing_key(data, auth_required=False).pem
    (data / "serviceaccount-signing.mode").unlink()  # a data dir from before the record existed
    with caplog.at_level("WARNING", logger="emulator.tokens"):
        assert signing_key(data, auth_required=True).pem != old
    assert "tokens minted before are no longer valid" in caplog.text


def test_an_hs256_secret_of_an_earlier_version_is_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    write_private(data / "serviceaccount-signing.key", b64(b"k" * 32) + "\n")
    write_private(data / "serviceaccount-signing.mode", "open\n")
    with caplog.at_level("WARNING", logger="emulator.tokens"):
        key = signing_key(data, auth_required=False)
        assert signing_key(data, auth_required=False).pem == key.pem  # replaced once, then kept
    assert key.pem.startswith("-----BEGIN PRIVATE KEY-----") and key.private_key.key_size == 2048
    assert caplog.text.count("held an HS256 secret of an earlier emulator version: made an RS256 key") == 1


def test_a_first_start_that_requires_tokens_makes_one_key_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    with caplog.at_level("WARNING", logger="emulator.tokens"):
        key = signing_key(data, auth_required=True).pem
        assert signing_key(data, auth_required=True).pem == key
    assert (data / "serviceaccount-signing.mode").read_text() == "require-auth\n"
    assert not caplog.text  # nothing was minted before: nothing to revoke


def test_a_record_that_others_may_read_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    signing_key(data, auth_required=False)
    record = data / "serviceaccount-signing.mode"
    record.chmod(0o644)
    signing_key(data, auth_required=False)
    assert stat.S_IMODE(record.stat().st_mode) == 0o600


def test_a_readable_secret_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("value\n")
    path.chmod(0o644)
    assert private_file(path, lambda: "other") == "value"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_data_directory_is_made_and_kept_owner_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fresh = tmp_path / "parent" / "data"
    write_private(fresh / "secret", "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "parent").stat().st_mode) != 0o700  # parents are not ours to close
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    with caplog.at_level("WARNING", logger="emulator.security"):
        private_dir(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    assert f"{loose} was readable by others (mode 755): changed to 0700" in caplog.text
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: closing it would lock everybody else out
    private_dir(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_the_store_file_is_owner_only_before_sqlite_opens_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "data" / "store.db"
    backend = SqliteBackend(path)
    backend.commit(1, [], [])
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["store.db", "store.db-shm", "store.db-wal"]  # WAL mode, open
    assert {n: stat.S_IMODE((path.parent / n).stat().st_mode) for n in names} == dict.fromkeys(names, 0o600)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    backend.close()
    # left by an older version (0644) or a crash (-wal, -shm): tightened, with a warning
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("INSERT INTO meta VALUES ('x', 1)")
    for name in ("store.db", "store.db-wal", "store.db-shm"):
        (path.parent / name).chmod(0o644)
    path.parent.chmod(0o755)
    with caplog.at_level("WARNING", logger="emulator.security"):
        private_db_file(path)
    db.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"{path} was readable by others (mode 644): changed to 0600" in caplog.text
    assert f"{path}-wal was readable by others (mode 644): changed to 0600" in caplog.text


def test_a_reused_api_key_or_certificate_that_others_may_read_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = auth_tls.server_names("127.0.0.1")
    cert, key, pem = auth_tls.api_certificate(tmp_path, names)
    key.chmod(0o644)
    cert.chmod(0o640)
    with caplog.at_level("WARNING", logger="emulator.tokens"):
        assert auth_tls.api_certificate(tmp_path, names)[2] == pem  # reused, not made again
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(cert.stat().st_mode) == 0o600
    assert f"{key} was readable by others (mode 644): changed to 0600" in caplog.text


# --- TokenRequest: the longest lifetime -------------------------------------------------------------


def _token_operations(max_expiration: int) -> TokenOperations:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    NamespaceController(registry).bootstrap("127.0.0.1", 6443)  # the default service accounts
    return TokenOperations(registry, auth.Authenticator(store, tokens()), max_expiration=max_expiration)


@pytest.mark.parametrize(
    ("asked", "issued"),
    [(None, 1200), (600, 600), (1200, 1200), (1201, 1200), (2**32, 1200)],
)
def test_a_token_request_longer_than_the_maximum_is_cut_to_it(asked: int | None, issued: int) -> None:
    """As the API server with --service-account-max-token-expiration: shortened, not refused, and the
    answer says so (the default of 3600 too, when the maximum is shorter)."""
    spec = {} if asked is None else {"expirationSeconds": asked}
    answer = _token_operations(1200).token_request("default", "default", {"spec": spec})
    assert answer["spec"]["expirationSeconds"] == issued
    claims = claims_of(answer["status"]["token"])
    assert claims["exp"] - claims["iat"] == issued
    assert answer["status"]["expirationTimestamp"] == rfc3339(claims["exp"])


def test_the_token_lifetime_is_still_validated_before_it_is_cut() -> None:
    operations = _token_operations(1200)
    for seconds in (599, 2**32 + 1):
        with pytest.raises(errors.StatusError) as raised:
            operations.token_request("default", "default", {"spec": {"expirationSeconds": seconds}})
        assert raised.value.code == 422


# --- reviews ---------------------------------------------------------------------------------------------------


@pytest.fixture
def store() -> Store:
    s = Store()
    s.create(SERVICE_ACCOUNTS.key, "shop", "web", {"metadata": {"name": "web", "namespace": "shop", "uid": "sa-1"}})
    s.create(PODS.key, "shop", "web-0", {"metadata": {"name": "web-0", "namespace": "shop", "uid": "pod-1"}})
    return s


def test_review_checks_audience_account_and_bound_pod(store: Store) -> None:
    t = tokens()
    authenticator = auth.Authenticator(store, t, admin_token="admin-secret")
    api_token = t.issue("shop", "web", "sa-1", [ISSUER], 3600, BoundPod("web-0", "pod-1")).token
    review = authenticator.review(api_token)
    assert review.authenticated and review.audiences == (ISSUER,)
    assert review.user is not None and review.user.namespace == "shop"
    info = review.user.user_info()
    assert info["username"] == "system:serviceaccount:shop:web" and info["uid"] == "sa-1"
    assert info["groups"] == ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"]
    extra = info["extra"]
    assert isinstance(extra, dict) and extra["authentication.kubernetes.io/pod-name"] == ["web-0"]

    vault_token = t.issue("shop", "web", "sa-1", ["vault"], 3600).token
    wrong = authenticator.review(vault_token)
    assert not wrong.authenticated and "audiences" in wrong.error
    assert authenticator.review(vault_token, ["vault", "other"]).audiences == ("vault",)

    store.delete(PODS.key, "shop", "web-0")
    assert "no longer exists" in authenticator.review(api_token).error
    store.delete(SERVICE_ACCOUNTS.key, "shop", "web")
    assert "deleted" in authenticator.review(vault_token, ["vault"]).error
    store.create(SERVICE_ACCOUNTS.key, "shop", "web", {"metadata": {"name": "web", "namespace": "shop", "uid": "sa-2"}})
    assert "re-created" in authenticator.review(vault_token, ["vault"]).error

    admin = authenticator.review("admin-secret")
    assert admin.authenticated and admin.user is auth.ADMIN
    assert not authenticator.review("admin-secreT").authenticated


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True), (" LocalHost\n", True), ("127.0.0.1", True), (" 127.0.0.1 ", True), ("127.9.8.7", True),
        ("::1", True), ("[::1]", True), (" [::1] ", True),
        ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.com", False), ("", False),
    ],
)
def test_one_loopback_rule_for_the_server_and_the_client(host: str, loopback: bool) -> None:
    """`serve` (does the API need tokens?) and the client commands (may a token go over plain http?)
    judge an address by the same rule."""
    assert auth.is_loopback is target.is_loopback  # type: ignore[attr-defined]
    assert target.is_loopback(host) is loopback


def test_the_client_commands_do_not_load_the_store() -> None:
    """`emulator run`/`env` start quickly: the loopback rule does not pull in the server's modules."""
    code = "import sys, emulator.cli.target; print(any(m.startswith(('emulator.store', 'emulator.security.auth')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


@pytest.mark.parametrize(
    ("host", "require", "anonymous", "needed"),
    [
        ("127.0.0.1", False, False, False),
        ("localhost", False, False, False),
        ("::1", False, False, False),
        ("127.0.0.1", True, False, True),
        ("0.0.0.0", False, False, True),
        ("192.168.1.5", False, False, True),
        ("0.0.0.0", False, True, False),
        ("my-laptop.local", False, False, True),
        ("0.0.0.0", True, True, True),
    ],
)
def test_when_auth_is_required(host: str, require: bool, anonymous: bool, needed: bool) -> None:
    assert auth.auth_required(host, require, anonymous) is needed


# --- the API certificate -----------------------------------------------------------------------------


def test_api_certificate_is_valid_reused_and_remade_for_new_names(tmp_path: Path) -> None:
    names = auth_tls.server_names("0.0.0.0", ["kubernetes.default.svc", "127.96.0.1", "bad_name"])
    assert names[:3] == ["localhost", "127.0.0.1", "::1"] and "0.0.0.0" not in names
    cert, key, pem = auth_tls.api_certificate(tmp_path, names)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    context = auth_tls.server_context(cert, key)  # OpenSSL accepts the pair
    assert isinstance(context, ssl.SSLContext)
    client = ssl.create_default_context(cadata=auth_tls.certificate_pem(pem))
    assert client.get_ca_certs()[0]["subjectAltName"][:3] == (
        ("DNS", "localhost"), ("IP Address", "127.0.0.1"), ("IP Address", "0:0:0:0:0:0:0:1")
    )
    assert auth_tls.api_certificate(tmp_path, names)[2] == pem
    assert auth_tls.api_certificate(tmp_path, [*names, "10.0.0.1"])[2] != pem
