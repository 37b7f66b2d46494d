"""Ingress (networking.k8s.io/v1) compiled to routes: what the emulator serves as the Ingress controller
of its class (pure: stored objects in, `Compiled` out).

- Which Ingresses: `spec.ingressClassName` naming our class (or a class whose controller is ours), the
  legacy annotation `kubernetes.io/ingress.class` naming it, or no class at all while ours is the
  default class. Others are left alone: no route, no status, no events.
- Hosts: exact, or `*.` wildcards matching exactly one label; rules without a host go to `any_host`.
- Paths: Exact, Prefix (element-wise) and ImplementationSpecific (as Prefix). Within a host: Exact paths
  first, then longer prefixes first; across Ingresses the same path goes to the oldest Ingress
  (creationTimestamp, then namespace/name).
- defaultBackend: after every rule of the hosts of its Ingress (as ingress-nginx serves it), and for
  requests matching no host at all (`any_host`, last).
- TLS: `kubernetes.io/tls` Secrets of the Ingress' namespace, for the hosts listed (every host
  when none is: the HTTPS listener's default certificate). Every Ingress route is served on both the
  HTTP and the HTTPS listener.
- Problems (Warning Events on the Ingress): a Service or port that does not exist, a missing or
  invalid TLS Secret, a resource backend. A backend with a problem is routed (the gateway answers 500
  saying why) so that a fix takes effect without anything else changing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from emulator import validation
from emulator.kinds.ingress import CLASS_ANNOTATION, INGRESSES
from emulator.kinds.ingressclass import EMULATOR_CONTROLLER, is_default_class
from emulator.routing.model import (
    SHARED_HTTP,
    SHARED_HTTPS,
    Action,
    Certificate,
    Compiled,
    Entry,
    HostRoutes,
    ListenerKey,
    ListenerRoutes,
    Match,
    ObjectRef,
    Problem,
    RoutingConfig,
    ServiceBackend,
)
from emulator.routing.sources import RoutingObjects, RoutingSettings

log = logging.getLogger(__name__)

BACKEND_NOT_FOUND = "BackendNotFound"
SECRET_NOT_FOUND = "SecretNotFound"
INVALID_SECRET = "InvalidSecret"
UNSUPPORTED_BACKEND = "UnsupportedBackend"
TLS_CACHE = 256  # TLS Secrets whose parsed content is kept


# -- which Ingresses are ours ------------------------------------------------------------------------


def _ours(class_name: str, objs: RoutingObjects, s: RoutingSettings) -> bool:
    if class_name == s.ingress_class:
        return True
    cls = objs.ingress_classes.get(("", class_name))
    return cls is not None and (cls.get("spec") or {}).get("controller") == EMULATOR_CONTROLLER


def serves(ing: dict[str, Any], objs: RoutingObjects, s: RoutingSettings) -> bool:
    """Whether this implementation is the Ingress' controller."""
    class_name = (ing.get("spec") or {}).get("ingressClassName")
    if class_name:
        return _ours(class_name, objs, s)
    legacy = ((ing.get("metadata") or {}).get("annotations") or {}).get(CLASS_ANNOTATION)
    if legacy:
        return _ours(legacy, objs, s)
    defaults = [c for c in objs.ingress_classes.values() if is_default_class(c)]
    if not defaults:
        return False
    newest = max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"]))
    return _ours(newest["metadata"]["name"], objs, s)


def load_balancer_status(s: RoutingSettings) -> dict[str, Any]:
    """The status of an Ingress this implementation serves: the gateway's address (none while the
    gateway is off: `--gateway-port -1` and `--gateway-https-port -1`)."""
    if s.http_port < 0 and s.https_port is None:
        return {"loadBalancer": {}}
    key = "ip" if validation.parse_ip(s.gateway_host) is not None else "hostname"
    return {"loadBalancer": {"ingress": [{key: s.gateway_host}]}}


# -- compiling ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Rule:
    order: tuple[Any, ...]  # sort key within a host
    entry: Entry


@dataclass(slots=True)
class _Build:
    objs: RoutingObjects
    hosts: dict[str, list[_Rule]] = field(default_factory=dict)  # "" = no host
    defaults: list[Entry] = field(default_factory=list)  # defaultBackends, oldest Ingress first
    certificates: list[Certificate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, ref: ObjectRef, reason: str, message: str) -> None:
        found = Problem(ref, reason, message)
        if found not in self.problems:
            self.problems.append(found)


def _age_key(ing: dict[str, Any]) -> tuple[str, str, str]:
    meta = ing["metadata"]
    return (meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta["name"])


def _backend(build: _Build, ref: ObjectRef, backend: dict[str, Any]) -> tuple[tuple[ServiceBackend, ...], str | None]:
    """The Service backend an IngressBackend names (with a `problem` when unusable)."""
    namespace = ref.namespace
    service = backend.get("service")
    if service is None:
        resource = backend.get("resource") or {}
        message = f'resource backend {resource.get("kind") or ""} "{resource.get("name") or ""}" is not supported: use a service backend'
        build.problem(ref, UNSUPPORTED_BACKEND, message)
        return (), message
    name = service.get("name") or ""
    port = service.get("port") or {}
    number, port_name = port.get("number"), port.get("name")
    problem: str | None = None
    svc = build.objs.services.get((namespace, name))
    if svc is None:
        problem = f'service "{namespace}/{name}" not found'
    elif (svc.get("spec") or {}).get("type") != "ExternalName":
        ports = (svc.get("spec") or {}).get("ports") or []
        if port_name and not any(p.get("name") == port_name for p in ports):
            problem = f'service "{namespace}/{name}" has no port named "{port_name}"'
        elif number and not any(p.get("port") == number for p in ports):
            problem = f'service "{namespace}/{name}" has no port {number}'
    if problem is not None:
        build.problem(ref, BACKEND_NOT_FOUND, problem)
    return (ServiceBackend(namespace, name, port=number or None, port_name=port_name or None, problem=problem),), None


def _action(build: _Build, ref: ObjectRef, backend: dict[str, Any], source: str, prefix: str | None) -> Action:
    backends, problem = _backend(build, ref, backend)
    return Action(backends=backends, source=source, problem=problem, matched_prefix=prefix)


def _decoded(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def tls_pair(secret: dict[str, Any]) -> tuple[bytes, bytes] | str:
    """(certificate PEM, key PEM) of a kubernetes.io/tls Secret, or why it cannot be used."""
    data = secret.get("data") or {}
    crt, key = data.get("tls.crt"), data.get("tls.key")
    return _checked_pair(crt if isinstance(crt, str) else "", key if isinstance(key, str) else "")


@functools.lru_cache(maxsize=TLS_CACHE)
def _checked_pair(crt_b64: str, key_b64: str) -> tuple[bytes, bytes] | str:
    """Decoded and parsed once per content: every compilation passes the same Secrets."""
    cert, key = _decoded(crt_b64), _decoded(key_b64)
    if not cert or not key:
        return "it has no tls.crt or no tls.key"
    from cryptography import x509  # (loaded with the first TLS Secret: ~15 ms of every start otherwise)
    from cryptography.hazmat.primitives import serialization

    try:
        x509.load_pem_x509_certificate(cert)
        serialization.load_pem_private_key(key, password=None)
    except Exception as exc:  # ValueError, TypeError, UnsupportedAlgorithm...: whatever the Secret holds
        return f"it holds no PEM certificate and private key ({exc})"
    return cert, key


def _tls(build: _Build, ref: ObjectRef, items: Iterable[dict[str, Any]], own_hosts: Iterable[str] = ()) -> None:
    """The Ingress' certificates. A `tls` item without `hosts` is for the Ingress' own rule hosts (not
    every name the gateway serves: an Ingress in one namespace cannot take over the others' names)."""
    for item in items:
        secret_name = item.get("secretName") or ""
        if not secret_name:
            continue  # SNI passthrough in some controllers; nothing to serve here
        secret = build.objs.tls_secrets.get((ref.namespace, secret_name))
        if secret is None:
            build.problem(ref, SECRET_NOT_FOUND, f'secret "{ref.namespace}/{secret_name}" of type kubernetes.io/tls not found')
            continue
        pair = tls_pair(secret)
        if isinstance(pair, str):
            build.problem(ref, INVALID_SECRET, f'secret "{ref.namespace}/{secret_name}" cannot be used: {pair}')
            continue
        hosts = tuple(h.lower() for h in item.get("hosts") or []) or tuple(h for h in own_hosts if h)
        if not hosts:
            continue  # no host of its own (a defaultBackend only): the gateway's own certificate serves it
        build.certificates.append(Certificate(ref.namespace, secret_name, pair[0], pair[1], hosts))


def _add_ingress(build: _Build, ing: dict[str, Any], age: int) -> None:
    meta, spec = ing["metadata"], ing.get("spec") or {}
    ref = ObjectRef(INGRESSES.key, meta.get("namespace") or "", meta["name"])
    source = f"ingress {ref.namespace}/{ref.name}"
    own_hosts: list[str] = []
    for r, rule in enumerate(spec.get("rules") or []):
        host = (rule.get("host") or "").lower()
        if host not in own_hosts:
            own_hosts.append(host)
        rules = build.hosts.setdefault(host, [])
        for p, item in enumerate((rule.get("http") or {}).get("paths") or []):
            path_type = item.get("pathType") or "ImplementationSpecific"
            path = item.get("path") or "/"
            if path_type == "Exact":
                match, order = Match("Exact", path), (0, 0, path, age, r, p)
                prefix = None
            else:  # Prefix, and ImplementationSpecific the same way
                match, order = Match("PathPrefix", path), (1, -len(path.rstrip("/")), "", age, r, p)
                prefix = path
            action = _action(build, ref, item.get("backend") or {}, source, prefix)
            rules.append(_Rule(order, Entry(match, action)))
    default = spec.get("defaultBackend")
    if default is not None:
        entry = Entry(Match("PathPrefix", "/"), _action(build, ref, default, f"{source} (defaultBackend)", "/"))
        build.defaults.append(entry)
        for host in own_hosts:
            if host:  # a rule's host: its unmatched paths too; "" gets it through `defaults`
                build.hosts[host].append(_Rule((2, 0, "", age, 0, 0), entry))
    _tls(build, ref, spec.get("tls") or [], own_hosts)


def _routes(rules: list[_Rule], tail: Iterable[Entry] = ()) -> HostRoutes:
    ordered = [r.entry for r in sorted(rules, key=lambda r: r.order)]
    return HostRoutes(entries=(*ordered, *tail))


def compile_ingresses(objs: RoutingObjects, s: RoutingSettings) -> Compiled:
    """The routes, statuses and problems of the Ingresses this implementation serves."""
    served = sorted((ing for ing in objs.ingresses.values() if serves(ing, objs, s)), key=_age_key)
    build = _Build(objs)
    statuses: dict[ObjectRef, dict[str, Any]] = {}
    for age, ing in enumerate(served):
        meta = ing["metadata"]
        try:
            _add_ingress(build, ing, age)
        except Exception as exc:  # a bug on one Ingress must not take every other one's routes and status
            log.exception("could not compile ingress %s/%s", meta.get("namespace"), meta.get("name"))
            build.problem(ObjectRef(INGRESSES.key, meta.get("namespace") or "", meta["name"]), "CompileFailed",
                          f"the emulator could not compile this Ingress: {exc}")
        statuses[ObjectRef(INGRESSES.key, meta.get("namespace") or "", meta["name"])] = load_balancer_status(s)
    exact: dict[str, HostRoutes] = {}
    wildcards: list[tuple[str, bool, HostRoutes]] = []
    any_host: HostRoutes | None = None
    for host, rules in build.hosts.items():
        if not host:
            continue
        if host.startswith("*."):
            wildcards.append((host[1:], True, _routes(rules)))
        else:
            exact[host] = _routes(rules)
    if build.hosts.get("") or build.defaults:
        any_host = _routes(build.hosts.get("", []), build.defaults)
    wildcards.sort(key=lambda w: -len(w[0]))
    listeners: dict[ListenerKey, ListenerRoutes] = {}
    if served:
        listeners[SHARED_HTTP] = ListenerRoutes(exact, tuple(wildcards), any_host)
        listeners[SHARED_HTTPS] = ListenerRoutes(exact, tuple(wildcards), any_host, tuple(build.certificates))
    config = RoutingConfig(listeners=listeners, hostnames=frozenset(exact))
    return Compiled(config=config, statuses=statuses, problems=tuple(build.problems))
