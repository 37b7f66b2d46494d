"""Service-account tokens (issue, verify, reject), the access rule, private key files and the API certificate."""

from __future__ import annotations

import base64
import json
import sqlite3
import ssl
import stat
import subprocess
import sys
from pathlib import Path

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
    BoundPod,
    ServiceAccountTokens,
    TokenError,
    default_issuer,
    signing_key,
)
from emulator.store.backend import MemoryBackend, SqliteBackend
from emulator.store.store import Store
from emulator.timestamps import rfc3339

KEY = b"k" * 32
ISSUER = default_issuer("cluster.local")
NOW = 1_800_000_000


def tokens(key: bytes = KEY) -> ServiceAccountTokens:
    return ServiceAccountTokens(key, ISSUER)


def claims_of(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_issued_token_carries_the_kubernetes_claims() -> None:
    issued = tokens().issue("shop", "web", "uid-1", ["api", "vault"], 3600, BoundPod("web-0", "pod-uid"), now=NOW)
    claims = claims_of(issued.token)
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == "system:serviceaccount:shop:web"
    assert claims["aud"] == ["api", "vault"]
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW, NOW, NOW + 3600)
    assert claims["kubernetes.io"] == {
        "namespace": "shop", "serviceaccount": {"name": "web", "uid": "uid-1"}, "pod": {"name": "web-0", "uid": "pod-uid"}
    }
    header = json.loads(base64.urlsafe_b64decode(issued.token.split(".")[0] + "=="))
    assert header["alg"] == "HS256" and header["typ"] == "JWT"
    verified = tokens().verify(issued.token, now=NOW + 10)
    assert verified.username == "system:serviceaccount:shop:web"
    assert verified.pod == BoundPod("web-0", "pod-uid") and verified.audiences == ("api", "vault")


def test_expired_and_not_yet_valid_tokens_are_rejected() -> None:
    token = tokens().issue("shop", "web", "u", ["api"], 600, now=NOW).token
    tokens().verify(token, now=NOW + 599)
    with pytest.raises(TokenError, match="expired"):
        tokens().verify(token, now=NOW + 600)
    with pytest.raises(TokenError, match="not valid yet"):
        tokens().verify(token, now=NOW - 1)


def _swap_claims(token: str, **changes: object) -> str:
    header, _, signature = token.split(".")
    claims = {**claims_of(token), **changes}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


def test_tampered_tokens_are_rejected() -> None:
    token = tokens().issue("shop", "web", "u", ["api"], 3600, now=NOW).token
    with pytest.raises(TokenError, match="signature is invalid"):
        tokens().verify(_swap_claims(token, sub="system:serviceaccount:kube-system:admin"), now=NOW)
    with pytest.raises(TokenError, match="signature is invalid"):
        tokens().verify(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), now=NOW)
    with pytest.raises(TokenError, match="another key"):
        tokens(b"x" * 32).verify(token, now=NOW)
    none_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(TokenError, match="HS256"):
        tokens().verify(f"{none_header}.{token.split('.')[1]}.", now=NOW)
    for junk in ("", "abc", "a.b", "a.b.c", "!!.??.##", token[:-3] + "é"):
        with pytest.raises(TokenError):
            tokens().verify(junk, now=NOW)


def test_a_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError):
        ServiceAccountTokens(b"short", ISSUER)


# --- key files ---------------------------------------------------------------------------------------


def test_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = signing_key(tmp_path / "data", auth_required=False)
    path = tmp_path / "data" / "serviceaccount-signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing_key(tmp_path / "data", auth_required=False) == first and len(first) == 32
    assert signing_key(None, auth_required=True) != signing_key(None, auth_required=True)  # in memory: fresh each time


def test_key_turns_over_at_the_first_start_that_requires_tokens(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Tokens anyone could mint while the API was open must not let anyone in once it requires tokens."""
    data = tmp_path / "data"
    record = data / "serviceaccount-signing.mode"
    with caplog.at_level("WARNING", logger="emulator.tokens"):
        opened = signing_key(data, auth_required=False)
        assert record.read_text() == "open\n" and stat.S_IMODE(record.stat().st_mode) == 0o600
        assert not caplog.text
        secured = signing_key(data, auth_required=True)  # open -> requires tokens: a new key
        assert secured != opened and record.read_text() == "require-auth\n"
        assert caplog.text.count("tokens minted before are no longer valid") == 1
        assert signing_key(data, auth_required=True) == secured  # requires tokens again: kept
        assert signing_key(data, auth_required=False) == secured  # opening up revokes nothing
        assert record.read_text() == "open\n"
        again = signing_key(data, auth_required=True)
        assert again not in (opened, secured)
        assert caplog.text.count("tokens minted before are no longer valid") == 2
    t = tokens(secured)
    token = t.issue("kube-system", "default", "u", [ISSUER], 3600, now=NOW).token
    with pytest.raises(TokenError, match="another key"):
        tokens(again).verify(token, now=NOW)


def test_a_key_without_a_record_counts_as_made_while_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    old = signing_key(data, auth_required=False)
    (data / "serviceaccount-signing.mode").unlink()  # a data dir from before the record existed
    with caplog.at_level("WARNING", logger="emulator.tokens"):
        assert signing_key(data, auth_required=True) != old
    assert "tokens minted before are no longer valid" in caplog.text


def test_a_first_start_that_requires_tokens_makes_one_key_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    with caplog.at_level("WARNING", logger="emulator.tokens"):
        key = signing_key(data, auth_required=True)
        assert signing_key(data, auth_required=True) == key
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


# --- reviews and the access rule ---------------------------------------------------------------------


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
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["web-0"]

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


def test_access_rule() -> None:
    sa = auth.User("system:serviceaccount:shop:web", namespace="shop")
    assert auth.may(auth.ADMIN, "delete", None)
    assert all(auth.may(sa, verb, "shop") for verb in ("get", "list", "watch"))
    assert not auth.may(sa, "create", "shop") and not auth.may(sa, "list", "prod") and not auth.may(sa, "list", None)
    assert auth.forbidden_message(sa, "list", "pods", "", "prod") == (
        'pods is forbidden: User "system:serviceaccount:shop:web" cannot list resource "pods" in API group "" '
        'in the namespace "prod"'
    )


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
    assert auth.is_loopback is target.is_loopback
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
