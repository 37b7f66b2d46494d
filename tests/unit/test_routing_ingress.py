"""Ingresses compiled (emulator/routing/ingress.py), checked through request-time lookup (`find`): the
Kubernetes documentation's path examples, precedence across rules and Ingresses, wildcard hosts, the
default backend, class handling, TLS certificates from Secrets, the problems reported and the status."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.kinds.ingress import INGRESSES
from emulator.routing.ingress import compile_ingresses, serves
from emulator.routing.match import find
from emulator.routing.model import SHARED_HTTP, SHARED_HTTPS, Compiled, ObjectRef
from emulator.routing.sources import RoutingObjects, RoutingSettings
from emulator.security.tls import self_signed_certificate

SETTINGS = RoutingSettings()
DEFAULT_CLASS = {"metadata": {"name": "emulator", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                 "spec": {"controller": "emulator.local/ingress"}}


def backend(service: str, port: int | str = 80) -> dict[str, Any]:
    key = "number" if isinstance(port, int) else "name"
    return {"service": {"name": service, "port": {key: port}}}


def path(p: str | None, service: str, path_type: str = "Prefix") -> dict[str, Any]:
    out: dict[str, Any] = {"pathType": path_type, "backend": backend(service)}
    if p is not None:
        out["path"] = p
    return out


def ingress(name: str, rules: list[dict[str, Any]] | None = None, namespace: str = "default", created: str = "2026-01-01T00:00:00Z",
            cls: str | None = "emulator", default: dict[str, Any] | None = None, tls: list[dict[str, Any]] | None = None,
            annotations: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if cls is not None:
        spec["ingressClassName"] = cls
    if rules is not None:
        spec["rules"] = rules
    if default is not None:
        spec["defaultBackend"] = default
    if tls is not None:
        spec["tls"] = tls
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "creationTimestamp": created, "uid": f"uid-{name}"}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def service(name: str, namespace: str = "default", ports: tuple[tuple[str, int], ...] = (("http", 80),)) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "ClusterIP", "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}}


def objects(*ingresses: dict[str, Any], services: tuple[str, ...] = (), classes: tuple[dict[str, Any], ...] = (DEFAULT_CLASS,),
            secrets: tuple[dict[str, Any], ...] = ()) -> RoutingObjects:
    objs = RoutingObjects()
    for ing in ingresses:
        objs.ingresses[(ing["metadata"]["namespace"], ing["metadata"]["name"])] = ing
    for name in services:
        objs.services[("default", name)] = service(name)
    for cls in classes:
        objs.ingress_classes[("", cls["metadata"]["name"])] = cls
    for secret in secrets:
        objs.tls_secrets[(secret["metadata"]["namespace"], secret["metadata"]["name"])] = secret
    return objs


def route(compiled: Compiled, host: str, request_path: str, listener: tuple[int, str] = SHARED_HTTP) -> str | None:
    """The service a request reaches ("ingress ns/name" of the source when it is a default backend)."""
    routes = compiled.config.listeners.get(listener)
    if routes is None:
        return None
    hit = find(routes, host, request_path)
    if hit is None:
        return None
    action = hit[0].action
    assert len(action.backends) == 1
    return action.backends[0].service


# The "Examples" table of the Ingress concept page (kubernetes.io/docs/concepts/services-networking/ingress/):
# path type, rule paths, request path, whether it matches (None: "uses default backend")
@pytest.mark.parametrize(("path_type", "paths", "request_path", "expected"), [
    ("Prefix", ["/"], "/anything/at/all", "/"),
    ("Exact", ["/foo"], "/foo", "/foo"),
    ("Exact", ["/foo"], "/bar", None),
    ("Exact", ["/foo"], "/foo/", None),
    ("Exact", ["/foo/"], "/foo", None),
    ("Prefix", ["/foo"], "/foo", "/foo"),
    ("Prefix", ["/foo"], "/foo/", "/foo"),
    ("Prefix", ["/foo/"], "/foo", "/foo/"),
    ("Prefix", ["/foo/"], "/foo/", "/foo/"),
    ("Prefix", ["/aaa/bb"], "/aaa/bbb", None),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb", "/aaa/bbb"),
    ("Prefix", ["/aaa/bbb/"], "/aaa/bbb", "/aaa/bbb/"),  # ignores trailing slash
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/", "/aaa/bbb"),  # matches trailing slash
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/ccc", "/aaa/bbb"),  # matches subpath
    ("Prefix", ["/aaa/bbb"], "/aaa/bbbxyz", None),  # does not match string prefix
    ("Prefix", ["/", "/aaa"], "/aaa/ccc", "/aaa"),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], "/aaa/bbb", "/aaa/bbb"),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], "/ccc", "/"),
    ("Prefix", ["/aaa"], "/ccc", None),  # uses default backend
    ("Mixed", ["/foo"], "/foo", "exact"),  # /foo (Prefix) and /foo (Exact): prefers Exact
])
def test_the_documented_path_examples(path_type: str, paths: list[str], request_path: str, expected: str | None) -> None:
    names = {p: f"svc{i}" for i, p in enumerate(paths)}
    if path_type == "Mixed":
        items = [path("/foo", "prefix", "Prefix"), path("/foo", "exact", "Exact")]
        names = {"exact": "exact"}
    else:
        items = [path(p, names[p], path_type) for p in paths]
    ing = ingress("web", [{"http": {"paths": items}}], default=backend("fallback"))
    compiled = compile_ingresses(objects(ing, services=(*names.values(), "prefix", "fallback")), SETTINGS)
    reached = route(compiled, "any.host", request_path)
    assert reached == (names[expected] if expected is not None else "fallback")


def test_precedence_exact_then_longest_prefix_then_oldest_ingress() -> None:
    old = ingress("old", [{"host": "a.test", "http": {"paths": [path("/api", "old-api"), path("/", "old-root")]}}], created="2026-01-01T00:00:00Z")
    new = ingress("new", [{"host": "a.test", "http": {"paths": [
        path("/api", "new-api"), path("/api/v2", "new-v2"), path("/api/v1/health", "new-health", "Exact"), path("/", "new-root"),
    ]}}], created="2026-01-02T00:00:00Z")
    compiled = compile_ingresses(objects(new, old), SETTINGS)
    assert route(compiled, "a.test", "/api/x") == "old-api"
    assert route(compiled, "a.test", "/api/v2/x") == "new-v2"
    assert route(compiled, "a.test", "/api/v1/health") == "new-health"
    assert route(compiled, "a.test", "/other") == "old-root"
    # same timestamp: namespace, then name
    tie = ingress("aaa", [{"host": "a.test", "http": {"paths": [path("/api", "tie-api")]}}], created="2026-01-01T00:00:00Z")
    assert route(compile_ingresses(objects(new, old, tie), SETTINGS), "a.test", "/api/x") == "tie-api"


def test_hosts_exact_wildcard_and_none() -> None:
    ing = ingress("web", [
        {"host": "foo.bar.com", "http": {"paths": [path("/", "foo")]}},
        {"host": "*.bar.com", "http": {"paths": [path("/", "wild")]}},
        {"http": {"paths": [path("/", "nohost")]}},
    ])
    compiled = compile_ingresses(objects(ing), SETTINGS)
    assert route(compiled, "foo.bar.com", "/") == "foo"
    assert route(compiled, "FOO.bar.com:8081", "/") == "foo"
    assert route(compiled, "baz.bar.com", "/") == "wild"
    assert route(compiled, "x.baz.bar.com", "/") == "nohost"  # `*.` matches one label only
    assert route(compiled, "bar.com", "/") == "nohost"
    assert compiled.config.hostnames == frozenset({"foo.bar.com"})


def test_default_backend_serves_unmatched_paths_of_its_hosts_and_unknown_hosts() -> None:
    ing = ingress("web", [{"host": "a.test", "http": {"paths": [path("/app", "app", "Exact")]}}], default=backend("fallback"))
    other = ingress("other", [{"host": "b.test", "http": {"paths": [path("/b", "b")]}}], created="2026-01-02T00:00:00Z")
    compiled = compile_ingresses(objects(ing, other), SETTINGS)
    assert route(compiled, "a.test", "/app") == "app"
    assert route(compiled, "a.test", "/elsewhere") == "fallback"
    assert route(compiled, "unknown.test", "/") == "fallback"
    assert route(compiled, "b.test", "/x") is None  # another Ingress' host: its own rules only


def test_only_a_default_backend() -> None:
    compiled = compile_ingresses(objects(ingress("web", default=backend("fallback"))), SETTINGS)
    assert route(compiled, "whatever", "/x/y") == "fallback"


NOT_DEFAULT = {"metadata": {"name": "emulator"}, "spec": {"controller": "emulator.local/ingress"}}
OTHER_DEFAULT = {"metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                 "spec": {"controller": "k8s.io/ingress-nginx"}}
ALIAS = {"metadata": {"name": "mine"}, "spec": {"controller": "emulator.local/ingress"}}


@pytest.mark.parametrize(("ing", "classes", "served"), [
    (ingress("a", default=backend("s")), (DEFAULT_CLASS,), True),
    (ingress("a", default=backend("s"), cls="nginx"), (DEFAULT_CLASS, OTHER_DEFAULT), False),
    (ingress("a", default=backend("s"), cls=None), (DEFAULT_CLASS,), True),
    (ingress("a", default=backend("s"), cls=None), (NOT_DEFAULT,), False),
    (ingress("a", default=backend("s"), cls=None), (NOT_DEFAULT, OTHER_DEFAULT), False),
    (ingress("a", default=backend("s"), cls=None), (), False),
    (ingress("a", default=backend("s"), cls=None, annotations={"kubernetes.io/ingress.class": "emulator"}), (NOT_DEFAULT,), True),
    (ingress("a", default=backend("s"), cls=None, annotations={"kubernetes.io/ingress.class": "nginx"}), (DEFAULT_CLASS,), False),
    (ingress("a", default=backend("s"), cls="mine"), (NOT_DEFAULT, ALIAS), True),  # any class of our controller
    (ingress("a", default=backend("s"), cls="emulator"), (), True),  # our class by name, even deleted
])
def test_class_handling(ing: dict[str, Any], classes: tuple[dict[str, Any], ...], served: bool) -> None:
    objs = objects(ing, classes=classes, services=("s",))
    assert serves(ing, objs, SETTINGS) is served
    compiled = compile_ingresses(objs, SETTINGS)
    ref = ObjectRef(INGRESSES.key, "default", "a")
    assert (ref in compiled.statuses) is served
    assert (route(compiled, "x", "/") == "s") is served


def test_status_is_the_gateway_address() -> None:
    compiled = compile_ingresses(objects(ingress("a", default=backend("s")), services=("s",)), SETTINGS)
    assert compiled.statuses == {ObjectRef(INGRESSES.key, "default", "a"): {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}}
    named = RoutingSettings(gateway_host="gateway.local")
    compiled = compile_ingresses(objects(ingress("a", default=backend("s")), services=("s",)), named)
    assert compiled.statuses[ObjectRef(INGRESSES.key, "default", "a")] == {"loadBalancer": {"ingress": [{"hostname": "gateway.local"}]}}


def test_backends_by_port_number_and_name_and_their_problems() -> None:
    ing = ingress("a", [{"host": "a.test", "http": {"paths": [
        {"path": "/num", "pathType": "Prefix", "backend": backend("web", 80)},
        {"path": "/name", "pathType": "Prefix", "backend": backend("web", "http")},
        {"path": "/badnum", "pathType": "Prefix", "backend": backend("web", 8080)},
        {"path": "/badname", "pathType": "Prefix", "backend": backend("web", "grpc")},
        {"path": "/nosvc", "pathType": "Prefix", "backend": backend("missing", 80)},
        {"path": "/res", "pathType": "Prefix", "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}}},
    ]}}])
    compiled = compile_ingresses(objects(ing, services=("web",)), SETTINGS)
    listener = compiled.config.listeners[SHARED_HTTP]

    def action_of(p: str) -> Any:
        hit = find(listener, "a.test", p)
        assert hit is not None
        return hit[0].action

    num, name = action_of("/num").backends[0], action_of("/name").backends[0]
    assert (num.port, num.port_name, num.problem) == (80, None, None)
    assert (name.port, name.port_name, name.problem) == (None, "http", None)
    assert action_of("/badnum").backends[0].problem == 'service "default/web" has no port 8080'
    assert action_of("/badname").backends[0].problem == 'service "default/web" has no port named "grpc"'
    assert action_of("/nosvc").backends[0].problem == 'service "default/missing" not found'
    assert action_of("/res").backends == () and "not supported" in action_of("/res").problem
    assert action_of("/num").source == "ingress default/a"
    reasons = sorted((p.reason, p.message) for p in compiled.problems)
    assert [r for r, _ in reasons] == ["BackendNotFound"] * 3 + ["UnsupportedBackend"]
    assert all(p.ref == ObjectRef(INGRESSES.key, "default", "a") and p.type == "Warning" for p in compiled.problems)


def tls_secret(name: str, hosts: list[str], valid: bool = True) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, hosts).encode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if not valid:
        cert = b"not a certificate"
    return {"metadata": {"name": name, "namespace": "default"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key_pem).decode()}}


def test_tls_certificates_from_secrets() -> None:
    good = tls_secret("good", ["secure.test"])
    ing = ingress("a", [{"host": "secure.test", "http": {"paths": [path("/", "web")]}}], tls=[
        {"hosts": ["secure.test"], "secretName": "good"},
        {"hosts": ["missing.test"], "secretName": "missing"},
        {"hosts": ["bad.test"], "secretName": "bad"},
    ])
    compiled = compile_ingresses(objects(ing, services=("web",), secrets=(good, tls_secret("bad", ["bad.test"], valid=False))), SETTINGS)
    certs = compiled.config.listeners[SHARED_HTTPS].certificates
    assert [(c.namespace, c.secret, c.hostnames) for c in certs] == [("default", "good", ("secure.test",))]
    assert certs[0].cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert certs[0].key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert compiled.config.listeners[SHARED_HTTP].certificates == ()
    assert route(compiled, "secure.test", "/", SHARED_HTTPS) == "web"  # served on both listeners
    assert sorted(p.reason for p in compiled.problems) == ["InvalidSecret", "SecretNotFound"]


def test_nothing_served_nothing_compiled() -> None:
    compiled = compile_ingresses(objects(ingress("a", default=backend("s"), cls="nginx")), SETTINGS)
    assert compiled.config.listeners == {} and compiled.statuses == {} and compiled.problems == ()


def test_a_tls_item_without_hosts_is_for_the_ingress_own_hosts() -> None:
    secret = tls_secret("any", ["secure.test"])
    with_hosts = ingress("a", [{"host": "secure.test", "http": {"paths": [path("/", "web")]}},
                               {"http": {"paths": [path("/", "web")]}}], tls=[{"secretName": "any"}])
    only_default = ingress("b", namespace="default", default=backend("web"), tls=[{"secretName": "any"}], created="2026-01-02T00:00:00Z")
    compiled = compile_ingresses(objects(with_hosts, only_default, services=("web",), secrets=(secret,)), SETTINGS)
    certs = compiled.config.listeners[SHARED_HTTPS].certificates
    assert [(c.secret, c.hostnames) for c in certs] == [("any", ("secure.test",))]  # never the fallback for every name
