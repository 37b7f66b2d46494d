"""The gateway's HTTPS port: certificates from `kubernetes.io/tls` Secrets chosen by SNI (exact, wildcard,
the self-signed default for names no Secret covers), a Secret that changes, X-Forwarded-Proto https, and
HTTP/2 handed over on ALPN h2 (TLS) and on the h2c preface (plain HTTP)."""

from __future__ import annotations

import base64
import functools
import json
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import Emulator, require_tool
from tests.integration.gateway_support import (
    Backend,
    apply,
    eventually,
    gateway_emulator,
    https_port,
    running_backends,
    service_yaml,
    wait_routed,
)
from tests.integration.kubectl_support import Kubectl

Start = Callable[[str], Backend]


@pytest.fixture
def backends() -> Iterator[Start]:
    yield from running_backends()


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = gateway_emulator(tmp_path_factory.mktemp("gateway-tls"))
    yield emulator
    emulator.stop()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Ca:
    """A test certificate authority that issues server certificates."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(_name("test ca")).issuer_name(_name("test ca"))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, *names: str) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


def tls_secret(name: str, ns: str, cert: bytes, key: bytes) -> str:
    return f"""
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: {{name: {name}, namespace: {ns}}}
data:
  tls.crt: {base64.b64encode(cert).decode()}
  tls.key: {base64.b64encode(key).decode()}
"""


def served_certificate(port: int, server_name: str | None) -> bytes:
    """The DER certificate the HTTPS port presents for an SNI name (None: no SNI)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def curl_json(*args: str) -> dict[str, object]:
    done = subprocess.run([require_tool("curl"), "-sS", *args], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    seen: dict[str, object] = json.loads(done.stdout)
    return seen


def test_certificates_by_sni(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start, tmp_path: Path) -> None:
    port = https_port(emu)
    ca = Ca()
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    secure, wild = f"secure-{ns}.example", f"wild-{ns}.example"
    secure_cert, secure_key = ca.issue(secure)
    wild_cert, wild_key = ca.issue(f"*.{wild}")
    apply(kubectl, service_yaml("web", ns, backends("web")))
    apply(kubectl, tls_secret("secure-tls", ns, secure_cert, secure_key) + "---" + tls_secret("wild-tls", ns, wild_cert, wild_key))
    apply(kubectl, f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: tls, namespace: {ns}}}
spec:
  tls:
  - {{hosts: [{secure}], secretName: secure-tls}}
  - {{hosts: ["*.{wild}"], secretName: wild-tls}}
  rules:
  - host: {secure}
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}
  - host: "*.{wild}"
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}
""")
    wait_routed(emu, secure, "/")
    eventually(lambda: served_certificate(port, secure) == der(secure_cert))
    assert served_certificate(port, f"a.{wild}") == der(wild_cert)
    default = served_certificate(port, f"nobody-{ns}.example")
    assert default not in (der(secure_cert), der(wild_cert))
    assert served_certificate(port, None) == default  # a client without SNI gets the default too
    assert x509.load_der_x509_certificate(default).subject.rfc4514_string() == "CN=emulator"
    # a real client that verifies the chain and the name
    seen = curl_json("--resolve", f"{secure}:{port}:127.0.0.1", "--cacert", str(tmp_path / "ca.pem"), f"https://{secure}:{port}/x")
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert seen["backend"] == "web" and seen["path"] == "/x" and headers["x-forwarded-proto"] == "https"
    seen = curl_json("--resolve", f"b.{wild}:{port}:127.0.0.1", "--cacert", str(tmp_path / "ca.pem"), f"https://b.{wild}:{port}/")
    assert seen["backend"] == "web"
    # a new certificate in the Secret is served from then on
    renewed_cert, renewed_key = ca.issue(secure)
    apply(kubectl, tls_secret("secure-tls", ns, renewed_cert, renewed_key))
    eventually(lambda: served_certificate(port, secure) == der(renewed_cert))


def test_service_names_over_https_with_the_default_certificate(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    apply(kubectl, service_yaml("web", ns, backends("web")))
    wait_routed(emu, f"web.{ns}")
    port = https_port(emu)
    seen = curl_json("-k", f"https://127.0.0.1:{port}/hello", "-H", f"Host: web.{ns}")
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert seen["backend"] == "web" and headers["x-forwarded-proto"] == "https"


def test_http2_is_handed_over(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    curl = require_tool("curl")
    apply(kubectl, service_yaml("web", ns, backends("web")))
    wait_routed(emu, f"web.{ns}")
    for args in (
        ["-k", "--http2", f"https://127.0.0.1:{https_port(emu)}/h2"],  # ALPN h2
        ["--http2-prior-knowledge", f"http://127.0.0.1:{emu.gateway_port}/h2c"],  # the h2c preface
    ):
        done = subprocess.run(
            [curl, "-sS", "-H", f"Host: web.{ns}", "-w", "\n%{http_version}", *args], capture_output=True, text=True, timeout=10
        )
        assert done.returncode == 0, done.stderr
        body, _, version = done.stdout.rpartition("\n")
        assert version == "2", (args, done.stdout)
        assert json.loads(body)["backend"] == "web"


def test_gateway_https_listeners(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start, tmp_path: Path) -> None:
    """HTTPS listeners of a Gateway: on 443 (served on the gateway's HTTPS port) and on a port of its own,
    each with the certificate its certificateRefs name, chosen by SNI."""
    from tests.conftest import free_port

    ca = Ca()
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    shared, own = f"gw-{ns}.example", f"own-{ns}.example"
    shared_cert, shared_key = ca.issue(shared)
    own_cert, own_key = ca.issue(own)
    port = free_port()
    apply(kubectl, service_yaml("web", ns, backends("web")))
    apply(kubectl, tls_secret("shared-tls", ns, shared_cert, shared_key) + "---" + tls_secret("own-tls", ns, own_cert, own_key))
    apply(kubectl, f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: emulator}}
spec: {{controllerName: emulator.local/gateway}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: secure, namespace: {ns}}}
spec:
  gatewayClassName: emulator
  listeners:
  - {{name: shared, port: 443, protocol: HTTPS, hostname: {shared}, tls: {{certificateRefs: [{{name: shared-tls}}]}}}}
  - {{name: own, port: {port}, protocol: HTTPS, hostname: {own}, tls: {{certificateRefs: [{{name: own-tls}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: {ns}}}
spec:
  parentRefs: [{{name: secure}}]
  rules: [{{backendRefs: [{{name: web, port: 80}}]}}]
""")
    cacert = str(tmp_path / "ca.pem")
    for host, at, cert in ((shared, https_port(emu), shared_cert), (own, port, own_cert)):
        expected = der(cert)
        eventually(functools.partial(lambda h, p, e: served_certificate(p, h) == e, host, at, expected))
        seen = curl_json("--resolve", f"{host}:{at}:127.0.0.1", "--cacert", cacert, f"https://{host}:{at}/secure")
        headers = seen["headers"]
        assert isinstance(headers, dict)
        assert seen["backend"] == "web" and headers["x-forwarded-proto"] == "https" and seen["path"] == "/secure"
