"""The gateway's HTTPS: one `ssl.SSLContext` per certificate, chosen per connection by the SNI name.

A TLS listener of the gateway serves the certificates its `ListenerRoutes.certificates` name (Secrets of
type kubernetes.io/tls, from Ingress `spec.tls` and Gateway listeners' `certificateRefs`). The server
socket has one front context whose `sni_callback` swaps in the context of the certificate for the name
the client asked for: an exact host first, then a `*.` wildcard (one label, as TLS wildcards are), then a
certificate given for no host in particular, then the gateway's own self-signed certificate (made with
`cryptography` for the gateway host, `localhost` and `*.localhost` on the first handshake that needs it,
not at start: its key and signature are ~20 ms of an empty start). The front context itself holds no
certificate: OpenSSL calls the SNI callback for every ClientHello, with no name too, and it always
swaps in one.

Contexts are cached by (namespace, secret, digest of the PEM): a routing change that leaves the
certificates alone rebuilds nothing, and a Secret that changes gets a new context. PEM is loaded from
memory (an anonymous `memfd` file; a private temporary file deleted at once where memfd is missing):
`ssl` loads certificate chains from paths only, and keys must never sit on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterable
from typing import Any

from emulator.routing.model import Certificate

log = logging.getLogger("emulator.proxy")

CertKey = tuple[str, str, str]  # (namespace, secret, sha256 of cert+key PEM)
ALPN_H2 = ("h2", "http/1.1")
ALPN_H1 = ("http/1.1",)


def _new_context(alpn: tuple[str, ...]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(list(alpn))
    return context


def _load_pem(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """`load_cert_chain` from bytes in memory."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create("gateway-cert", os.MFD_CLOEXEC), os.memfd_create("gateway-key", os.MFD_CLOEXEC)]
        try:
            for fd, data in zip(fds, (cert_pem, key_pem), strict=True):
                os.write(fd, data)
            context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
        return
    paths: list[str] = []
    try:
        for data in (cert_pem, key_pem):
            fd, path = tempfile.mkstemp(prefix="gateway-tls-")  # mode 0600
            paths.append(path)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        context.load_cert_chain(paths[0], paths[1])
    finally:
        for path in paths:
            with contextlib.suppress(OSError):
                os.unlink(path)


def certificate_context(cert_pem: bytes, key_pem: bytes, alpn: tuple[str, ...] = ALPN_H1) -> ssl.SSLContext:
    """A server context for one certificate (raises ssl.SSLError on a bad certificate or key)."""
    context = _new_context(alpn)
    _load_pem(context, cert_pem, key_pem)
    return context


def self_signed(names: list[str]) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a self-signed certificate for `names`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from emulator.security.tls import self_signed_certificate

    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, names).encode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert, key_pem


def _own_name(name: str) -> bool:
    """`localhost` and `*.localhost` (service names at the gateway): its self-signed certificate's names."""
    name = name.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def choose(name: str | None, exact: dict[str, Any], wildcards: dict[str, Any], fallback: Any) -> Any:
    """What serves the SNI `name`: `exact[name]`, else `wildcards[".parent.domain"]` (a wildcard covers
    one label), else `fallback` (no SNI, as from a client that connects by IP address, also gets it)."""
    if not name:
        return fallback
    host = name.lower().rstrip(".")
    found = exact.get(host)
    if found is not None:
        return found
    dot = host.find(".")
    if dot > 0:
        found = wildcards.get(host[dot:])
        if found is not None:
            return found
    return fallback


class CertificateSet:
    """The certificates of one TLS listener, as SSL contexts, and the front context that picks them."""

    def __init__(self, default_names: list[str], alpn: tuple[str, ...] = ALPN_H1) -> None:
        self.alpn = alpn
        self._default_names = default_names
        self._default: tuple[ssl.SSLContext, bytes] | None = None  # made on first use
        # the socket's context: no certificate of its own, the SNI callback picks one for every handshake
        self.front = _new_context(alpn)
        self.front.sni_callback = self._on_sni
        self._contexts: dict[CertKey, ssl.SSLContext] = {}
        self._failed: dict[CertKey, str] = {}
        self._certs: tuple[Certificate, ...] = ()
        self._exact: dict[str, ssl.SSLContext] = {}
        self._wildcards: dict[str, ssl.SSLContext] = {}
        self._fallback: ssl.SSLContext | None = None  # None: the default

    def _made_default(self) -> tuple[ssl.SSLContext, bytes]:
        made = self._default
        if made is None:
            cert, key = self_signed(self._default_names)
            made = self._default = (certificate_context(cert, key, self.alpn), cert)
        return made

    @property
    def default(self) -> ssl.SSLContext:
        """The context of the gateway's own self-signed certificate."""
        return self._made_default()[0]

    @property
    def default_pem(self) -> bytes:
        return self._made_default()[1]

    def update(self, certificates: Iterable[Certificate]) -> None:
        """Serve these certificates from now on (connections already set up keep theirs)."""
        certs = tuple(certificates)
        if certs == self._certs:
            return
        self._certs = certs
        contexts: dict[CertKey, ssl.SSLContext] = {}
        exact: dict[str, ssl.SSLContext] = {}
        wildcards: dict[str, ssl.SSLContext] = {}
        fallback: ssl.SSLContext | None = None
        for cert in certs:
            key = (cert.namespace, cert.secret, hashlib.sha256(cert.cert_pem + b"\0" + cert.key_pem).hexdigest())
            context = contexts.get(key) or self._contexts.get(key)
            if context is None:
                if key in self._failed:
                    continue
                try:
                    context = certificate_context(cert.cert_pem, cert.key_pem, self.alpn)
                except (ssl.SSLError, OSError, ValueError) as exc:
                    self._failed[key] = str(exc)
                    log.warning(
                        "gateway: cannot use the certificate of secret %s/%s (%s); fix: put a PEM certificate and its key in tls.crt and tls.key",
                        cert.namespace, cert.secret, exc,
                    )
                    continue
            contexts[key] = context
            if not cert.hostnames:
                fallback = fallback or context
            for host in cert.hostnames:
                host = host.lower()
                if host.startswith("*."):
                    wildcards.setdefault(host[1:], context)
                else:
                    exact.setdefault(host, context)
        self._contexts = contexts
        self._failed = {k: v for k, v in self._failed.items() if any(k[:2] == (c.namespace, c.secret) for c in certs)}
        # one assignment each: a handshake in progress sees either the old or the new choice
        self._exact, self._wildcards, self._fallback = exact, wildcards, fallback

    def context_for(self, name: str | None) -> ssl.SSLContext:
        found = choose(name, self._exact, self._wildcards, None)
        if found is not None:
            return found
        fallback = self._fallback
        if fallback is None or (name and _own_name(name)):
            return self.default  # `*.localhost` names no certificate claims keep the gateway's own
        return fallback

    def _on_sni(self, sslobj: ssl.SSLObject, name: str | None, _front: ssl.SSLContext) -> None:
        sslobj.context = self.context_for(name)
