"""The API's HTTPS certificate: what it carries, a real handshake with it, when it is reused or made again."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emulator.security import tls

EXTRA = ["kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.96.0.1", "fd00::1", "bad_name"]


@pytest.fixture
def names() -> list[str]:
    return tls.server_names("0.0.0.0", EXTRA)


def _load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(tls.certificate_pem(pem).encode())


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- the certificate ---------------------------------------------------------------------------------


def test_the_certificate_carries_every_name_is_valid_now_and_matches_its_key(tmp_path: Path, names: list[str]) -> None:
    cert_path, key_path, pem = tls.api_certificate(tmp_path, names)
    assert cert_path.read_text() == pem and pem.startswith(tls.SANS_MARK)
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())  # the comment line is allowed
    assert certificate == _load(pem)

    alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == [
        "localhost", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"
    ]  # "bad_name" is no host name a certificate can carry
    assert alt.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.96.0.1", "fd00::1")
    ]

    now = datetime.now(UTC)
    assert certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
    assert (certificate.not_valid_after_utc - now).days >= tls.VALIDITY_DAYS - 1

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert _public(key.public_key()) == _public(certificate.public_key())


def test_the_certificate_is_its_own_ca_and_a_server_certificate(tmp_path: Path, names: list[str]) -> None:
    certificate = _load(tls.api_certificate(tmp_path, names)[2])
    assert certificate.subject == certificate.issuer
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "emulator"
    certificate.verify_directly_issued_by(certificate)  # self-signed, and the signature holds

    extensions = certificate.extensions
    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_cert_sign
    assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    key_id = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == key_id


def test_a_certificate_for_no_usable_name_has_no_empty_subject_alt_name(tmp_path: Path) -> None:
    certificate = _load(tls.api_certificate(tmp_path, ["bad_name"])[2])
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_server_names() -> None:
    assert tls.server_names("0.0.0.0") == ["localhost", "127.0.0.1", "::1"]
    assert tls.server_names("::") == ["localhost", "127.0.0.1", "::1"]
    assert tls.server_names("[fd00::5]", ["", "node", "localhost"]) == ["localhost", "127.0.0.1", "::1", "fd00::5", "node"]


# --- a real handshake ----------------------------------------------------------------------------------


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str, server_hostname: str) -> bytes:
    """One TLS connection over loopback: the client sends a line, the server echoes it back."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    failures: list[BaseException] = []
    with socket.create_server((host, 0), family=family) as listener:
        listener.settimeout(10)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(tls_conn.recv(100))
            except (OSError, ssl.SSLError) as error:
                failures.append(error)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname()[:2], timeout=10) as raw:
                with client.wrap_socket(raw, server_hostname=server_hostname) as conn:
                    assert conn.version() in ("TLSv1.2", "TLSv1.3")
                    conn.sendall(b"ping\n")
                    return conn.recv(100)
        finally:
            thread.join(10)


def _client(pem: str) -> ssl.SSLContext:
    client = ssl.create_default_context(cadata=tls.certificate_pem(pem))
    client.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default: RFC 5280 rules for CA certificates
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    return client


@pytest.mark.parametrize("server_hostname", ["127.0.0.1", "localhost", "kubernetes.default.svc"])
def test_a_client_that_trusts_the_certificate_completes_a_handshake(
    tmp_path: Path, names: list[str], server_hostname: str
) -> None:
    cert_path, key_path, pem = tls.api_certificate(tmp_path, names)
    server = tls.server_context(cert_path, key_path)
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    assert _handshake(server, _client(pem), "127.0.0.1", server_hostname) == b"ping\n"


def test_a_handshake_over_ipv6_loopback(tmp_path: Path, names: list[str]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    cert_path, key_path, pem = tls.api_certificate(tmp_path, names)
    assert _handshake(tls.server_context(cert_path, key_path), _client(pem), "::1", "::1") == b"ping\n"


def test_a_client_refuses_a_name_the_certificate_does_not_carry(tmp_path: Path, names: list[str]) -> None:
    cert_path, key_path, pem = tls.api_certificate(tmp_path, names)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(tls.server_context(cert_path, key_path), _client(pem), "127.0.0.1", "elsewhere.example")


def test_a_client_refuses_another_emulators_certificate(tmp_path: Path, names: list[str]) -> None:
    cert_path, key_path, _ = tls.api_certificate(tmp_path / "one", names)
    other = tls.api_certificate(tmp_path / "two", names)[2]
    with pytest.raises(ssl.SSLCertVerificationError, match="self.signed|unable to get"):
        _handshake(tls.server_context(cert_path, key_path), _client(other), "127.0.0.1", "127.0.0.1")


# --- reused or made again ----------------------------------------------------------------------------


def test_files_are_written_owner_only(tmp_path: Path, names: list[str]) -> None:
    cert_path, key_path, _ = tls.api_certificate(tmp_path / "data", names)
    assert cert_path.parent == key_path.parent == tmp_path / "data"
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700  # made for them: the owner's only
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["api.crt", "api.key"]  # no temporary left


def test_the_same_names_reuse_the_files(tmp_path: Path, names: list[str]) -> None:
    cert_path, key_path, pem = tls.api_certificate(tmp_path, names)
    key = key_path.read_text()
    assert tls.api_certificate(tmp_path, list(names)) == (cert_path, key_path, pem)
    assert key_path.read_text() == key and cert_path.read_text() == pem


def test_other_names_make_a_new_certificate_and_key(tmp_path: Path, names: list[str]) -> None:
    cert_path, key_path, pem = tls.api_certificate(tmp_path, names)
    key = key_path.read_text()
    _, _, new = tls.api_certificate(tmp_path, [*names, "10.0.0.1"])
    assert new != pem and cert_path.read_text() == new and key_path.read_text() != key
    alt = _load(new).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.0.0.1") in alt.get_values_for_type(x509.IPAddress)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600 and stat.S_IMODE(cert_path.stat().st_mode) == 0o600
    tls.server_context(cert_path, key_path)  # the new pair belongs together


@pytest.mark.parametrize("damage", ["key missing", "certificate empty", "certificate missing"])
def test_a_missing_or_empty_file_makes_both_again(tmp_path: Path, names: list[str], damage: str) -> None:
    cert_path, key_path, pem = tls.api_certificate(tmp_path, names)
    if damage == "key missing":
        key_path.unlink()
    elif damage == "certificate empty":
        cert_path.write_text("")
    else:
        cert_path.unlink()
    _, _, new = tls.api_certificate(tmp_path, names)
    assert new != pem and new.startswith(tls.SANS_MARK + ",".join(names) + "\n")
    tls.server_context(cert_path, key_path)


def test_reused_files_that_others_may_read_are_tightened(
    tmp_path: Path, names: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    cert_path, key_path, pem = tls.api_certificate(tmp_path, names)
    key_path.chmod(0o644)
    cert_path.chmod(0o604)
    with caplog.at_level("WARNING", logger="emulator.security"):
        assert tls.api_certificate(tmp_path, names)[2] == pem
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600 and stat.S_IMODE(cert_path.stat().st_mode) == 0o600
    assert f"{key_path} was readable by others (mode 644): changed to 0600" in caplog.text
    assert f"{cert_path} was readable by others (mode 604): changed to 0600" in caplog.text
