"""The API's HTTPS certificate for authenticated mode: a self-signed certificate made with `cryptography`.

Why HTTPS at all: kubectl (client-go) sends the credentials of a kubeconfig only over TLS — against an
`http://` server it silently drops the token — and a bearer token sent in clear over a network is
anybody's. So when the API requires tokens it also speaks TLS, with a certificate created at first
start in the data directory (`api.crt`, `api.key`, mode 0600) and handed to clients as the
kubeconfig's `certificate-authority-data`.

The certificate is its own trust anchor (CA:TRUE, keyCertSign) as well as the server's certificate
(serverAuth), and names every address clients use in its subjectAltName; it is made again when that
list changes.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from emulator.security.datadir import API_CERT_FILE, API_KEY_FILE, keep_private, write_private

if TYPE_CHECKING:  # cryptography loads in ~60 ms: only when a certificate is made, not at every start
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

# How the API answers a plain-HTTP request on its HTTPS port (api/connections.py), and how `emulator run`
# and `env` recognise that answer to say it in their own flags (emulator/cli)
SPEAKS_HTTPS = "speaks HTTPS (it requires tokens)"
SANS_MARK = "emulator-subject-alt-names: "  # a comment line above the PEM block (PEM allows text there)
VALIDITY_DAYS = 3650


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    # ECDSA on P-256 rather than RSA-2048: it is made in a millisecond instead of tens to hundreds of them
    # (first start, and every test that needs a certificate), it is as strong as RSA-3072, its handshakes
    # are smaller and cheaper, and every client that matters verifies it: Go's crypto/x509 and crypto/tls
    # (kubectl, client-go), OpenSSL (Python's ssl, curl) and the JDK.
    return ec.generate_private_key(ec.SECP256R1())


def _alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if name.isascii() and "_" not in name:  # a host name a certificate can carry
                entries.append(x509.DNSName(name))
    return entries


def self_signed_certificate(
    key: ec.EllipticCurvePrivateKey, names: list[str], now: datetime | None = None
) -> str:
    """PEM of a self-signed server certificate for `names` (IP addresses and DNS names), signed by `key`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = (now or datetime.now(UTC)).replace(microsecond=0)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulator")])
    key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=VALIDITY_DAYS))
        # Its own CA: the kubeconfig's certificate-authority-data is this very certificate.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,  # the TLS handshake (ECDSA signs; there is no key encipherment)
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,  # it signs itself, as a CA
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(key_id, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id), critical=False)
    )
    alt_names = _alt_names(names)
    if alt_names:  # an empty subjectAltName is malformed (RFC 5280 §4.2.1.6)
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def server_names(api_host: str, extra: Iterable[str] = ()) -> list[str]:
    """What clients may call the API: loopback, the bind address, the in-cluster names, `extra`."""
    names = ["localhost", "127.0.0.1", "::1"]
    if api_host not in ("", "0.0.0.0", "::"):
        names.append(api_host.strip("[]"))
    names += list(extra)
    return list(dict.fromkeys(n for n in names if n))


def api_certificate(data_dir: Path, names: list[str]) -> tuple[Path, Path, str]:
    """(certificate path, key path, certificate PEM), made once and again when `names` change."""
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = data_dir / API_CERT_FILE, data_dir / API_KEY_FILE
    wanted = SANS_MARK + ",".join(names)
    try:
        text = cert_path.read_text()
        if text.splitlines()[0] == wanted and key_path.exists():
            # Reused as they are, so held to the rule for new ones: the key is the server's identity.
            keep_private(key_path)
            keep_private(cert_path)
            return cert_path, key_path, text
    except (FileNotFoundError, IndexError):
        pass
    key = _new_key()
    pem = self_signed_certificate(key, names)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    write_private(key_path, key_pem)
    write_private(cert_path, f"{wanted}\n{pem}")
    return cert_path, key_path, f"{wanted}\n{pem}"


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


def certificate_pem(text: str) -> str:
    """The PEM block alone (without the comment line), for a kubeconfig's certificate-authority-data."""
    return text[text.index("-----BEGIN") :]
