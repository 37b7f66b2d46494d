"""The API's HTTPS certificate for authenticated mode: a self-signed RSA certificate made with the stdlib.

Why HTTPS at all: kubectl (client-go) sends the credentials of a kubeconfig only over TLS — against an
`http://` server it silently drops the token — and a bearer token sent in clear over a network is
anybody's. So when the API requires tokens it also speaks TLS, with a certificate created at first
start in the data directory (`api.crt`, `api.key`, mode 0600) and handed to clients as the
kubeconfig's `certificate-authority-data`.

Nothing outside the standard library is needed: an RSA-2048 key (Miller-Rabin primes), a DER-encoded
X.509 v3 certificate (RFC 5280) signed with sha256WithRSAEncryption (PKCS #1 v1.5), PEM files that
`ssl.SSLContext.load_cert_chain` reads. The certificate is its own trust anchor (CA:TRUE, keyCertSign)
and names every address clients use in its subjectAltName; it is made again when that list changes.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import secrets
import ssl
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from emulator.security.datadir import API_CERT_FILE, API_KEY_FILE, keep_private, write_private

SANS_MARK = "emulator-subject-alt-names: "  # a comment line above the PEM block (PEM allows text there)
VALIDITY_DAYS = 3650
PUBLIC_EXPONENT = 65537

# --- DER, just what a certificate needs ----------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def _int(n: int) -> bytes:
    raw = n.to_bytes(n.bit_length() // 8 + 1, "big")  # one spare byte keeps the sign bit clear
    while len(raw) > 1 and raw[0] == 0 and raw[1] < 0x80:
        raw = raw[1:]
    return _tlv(0x02, raw)


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([parts[0] * 40 + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _bits(data: bytes) -> bytes:
    return _tlv(0x03, b"\x00" + data)


def _octets(data: bytes) -> bytes:
    return _tlv(0x04, data)


def _time(moment: datetime) -> bytes:
    # RFC 5280: UTCTime through 2049, GeneralizedTime after.
    if moment.year < 2050:
        return _tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


NULL = b"\x05\x00"
RSA_ENCRYPTION = _seq(_oid("1.2.840.113549.1.1.1"), NULL)
SHA256_WITH_RSA = _seq(_oid("1.2.840.113549.1.1.11"), NULL)
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


# --- RSA -----------------------------------------------------------------------------------------------

_SMALL_PRIMES = [p for p in range(3, 2000, 2) if all(p % d for d in range(3, math.isqrt(p) + 1, 2))]


def _probably_prime(n: int, rounds: int = 40) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int) -> int:
    while True:
        # top two bits set: the product of two such primes has exactly 2*bits bits
        candidate = secrets.randbits(bits) | (0b11 << (bits - 2)) | 1
        if candidate % PUBLIC_EXPONENT != 1 and _probably_prime(candidate):
            return candidate


class RsaKey:
    def __init__(self, bits: int = 2048) -> None:
        while True:
            p, q = _prime(bits // 2), _prime(bits // 2)
            if p == q:
                continue
            phi = (p - 1) * (q - 1)
            if math.gcd(PUBLIC_EXPONENT, phi) == 1:
                break
        self.p, self.q, self.n, self.e = p, q, p * q, PUBLIC_EXPONENT
        self.d = pow(self.e, -1, phi)

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8

    def public_der(self) -> bytes:
        return _seq(_int(self.n), _int(self.e))

    def private_pem(self) -> str:
        p, q, d = self.p, self.q, self.d
        der = _seq(
            _int(0), _int(self.n), _int(self.e), _int(d), _int(p), _int(q),
            _int(d % (p - 1)), _int(d % (q - 1)), _int(pow(q, -1, p)),
        )
        return _pem("RSA PRIVATE KEY", der)

    def sign_sha256(self, message: bytes) -> bytes:
        """PKCS #1 v1.5 signature (RFC 8017 §8.2) over SHA-256."""
        digest_info = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        padded = b"\x00\x01" + b"\xff" * (self.size - len(digest_info) - 3) + b"\x00" + digest_info
        return pow(int.from_bytes(padded, "big"), self.d, self.n).to_bytes(self.size, "big")


def _pem(label: str, der: bytes) -> str:
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


# --- the certificate -----------------------------------------------------------------------------------


def _alt_names(names: Iterable[str]) -> bytes:
    entries = []
    for name in names:
        try:
            entries.append(_tlv(0x87, ipaddress.ip_address(name).packed))  # [7] iPAddress
        except ValueError:
            if name.isascii() and "_" not in name:  # a host name a certificate can carry
                entries.append(_tlv(0x82, name.encode("ascii")))  # [2] dNSName
    return _seq(*entries)


def _extension(oid: str, value: bytes, critical: bool = False) -> bytes:
    return _seq(_oid(oid), *([b"\x01\x01\xff"] if critical else []), _octets(value))


def self_signed_certificate(key: RsaKey, names: list[str], now: datetime | None = None) -> str:
    """PEM of a self-signed server certificate for `names` (IP addresses and DNS names)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    name = _seq(_tlv(0x31, _seq(_oid("2.5.4.3"), _tlv(0x0C, b"emulator"))))  # CN=emulator
    spki = _seq(RSA_ENCRYPTION, _bits(key.public_der()))
    key_id = hashlib.sha1(key.public_der()).digest()  # RFC 5280 §4.2.1.2 method (1)
    extensions = _seq(
        _extension("2.5.29.19", _seq(b"\x01\x01\xff"), critical=True),  # basicConstraints CA:TRUE
        # keyUsage: digitalSignature, keyEncipherment, keyCertSign (bits 0, 2, 5)
        _extension("2.5.29.15", _tlv(0x03, bytes([0x02, 0b10100100])), critical=True),
        _extension("2.5.29.37", _seq(_oid("1.3.6.1.5.5.7.3.1"))),  # extKeyUsage serverAuth
        _extension("2.5.29.14", _octets(key_id)),  # subjectKeyIdentifier
        _extension("2.5.29.35", _seq(_tlv(0x80, key_id))),  # authorityKeyIdentifier (itself)
        _extension("2.5.29.17", _alt_names(names)),  # subjectAltName
    )
    tbs = _seq(
        _tlv(0xA0, _int(2)),  # v3
        _int(secrets.randbits(126) | 1 << 125),
        SHA256_WITH_RSA,
        name,
        _seq(_time(now - timedelta(minutes=5)), _time(now + timedelta(days=VALIDITY_DAYS))),
        name,
        spki,
        _tlv(0xA3, extensions),
    )
    return _pem("CERTIFICATE", _seq(tbs, SHA256_WITH_RSA, _bits(key.sign_sha256(tbs))))


def server_names(api_host: str, extra: Iterable[str] = ()) -> list[str]:
    """What clients may call the API: loopback, the bind address, the in-cluster names, `extra`."""
    names = ["localhost", "127.0.0.1", "::1"]
    if api_host not in ("", "0.0.0.0", "::"):
        names.append(api_host.strip("[]"))
    names += list(extra)
    return list(dict.fromkeys(n for n in names if n))


def api_certificate(data_dir: Path, names: list[str]) -> tuple[Path, Path, str]:
    """(certificate path, key path, certificate PEM), made once and again when `names` change."""
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
    key = RsaKey()
    pem = self_signed_certificate(key, names)
    write_private(key_path, key.private_pem())
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
