"""The pure parts of the gateway's data path: response head rewriting, redirect answers, the port of a Host
header, raw-host lookups, `.localhost` service names, and certificates chosen by SNI."""

from __future__ import annotations

import ssl

import pytest

from emulator.proxy.gateway import (
    GatewayPort,
    _port_of,
    _request_change,
    redirect_response,
    rewrite_response_head,
    wire_safe,
)
from emulator.proxy.gatewaytls import CertificateSet, choose, self_signed
from emulator.proxy.table import ProxyTable
from emulator.routing.model import (
    SHARED_HTTP,
    Action,
    Certificate,
    Entry,
    HeaderChanges,
    HostRoutes,
    ListenerRoutes,
    Match,
)
from tests.integration.test_proxy_support import added, service

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: web\r\nX-Remove-Me: yes\r\n"
    b"Content-Length: 5\r\nSet-Cookie: a=1\r\n\r\n"
)


def fields(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode().split("\r\n")
    assert lines[-2:] == ["", ""]
    return [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:-2])]


def test_response_head_rewrite_sets_adds_and_removes() -> None:
    changes = HeaderChanges(set=(("x-backend", "hidden"),), add=(("set-cookie", "b=2"), ("x-new", "1")), remove=("x-remove-me",))
    out = rewrite_response_head(HEAD, [changes])
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    got = fields(out)
    assert ("x-backend", "hidden") in got and ("x-new", "1") in got and ("set-cookie", "a=1,b=2") in got
    assert all(name != "x-remove-me" for name, _ in got)
    assert ("content-length", "5") in got and ("content-type", "text/plain") in got


def test_response_head_rewrite_keeps_the_framing_headers() -> None:
    changes = HeaderChanges(set=(("content-length", "99"),), remove=("content-length", "transfer-encoding"))
    got = fields(rewrite_response_head(HEAD, [changes]))
    assert ("content-length", "5") in got and [n for n, _ in got].count("content-length") == 1


def test_response_head_rewrite_applies_rule_then_backend_changes() -> None:
    first = HeaderChanges(set=(("x-a", "rule"),))
    second = HeaderChanges(set=(("x-a", "backend"),))
    assert ("x-a", "backend") in fields(rewrite_response_head(b"HTTP/1.1 204 No Content\r\n\r\n", [first, second]))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_response(status: int) -> None:
    out = redirect_response(status, "https://new.example/x?q=1", keep_alive=True)
    assert out.startswith(b"HTTP/1.1 %d " % status)
    assert b"\r\nLocation: https://new.example/x?q=1\r\n" in out and b"Content-Length: 0\r\n" in out
    assert b"Connection: close" not in out
    assert b"Connection: close\r\n" in redirect_response(status, "/", keep_alive=False)


@pytest.mark.parametrize(
    ("host", "port"),
    [("example.com", None), ("example.com:8081", 8081), ("[::1]:443", 443), ("[::1]", None), ("a:b", None), ("::1", None)],
)
def test_port_of_a_host_header(host: str, port: int | None) -> None:
    assert _port_of(host) == port


def test_exact_host_lookup_is_by_normalized_host_and_follows_swaps() -> None:
    routes = HostRoutes(entries=(Entry(Match(), Action()),))
    port = GatewayPort(SHARED_HTTP, tls=False, service_names=True)
    port.set_routes(ListenerRoutes(exact={"app.example": routes}))
    assert port.exact_host(b"App.Example:8081") and port.exact_host(b"app.example.")
    assert not port.exact_host(b"web.default")
    port.set_routes(ListenerRoutes())
    assert not port.exact_host(b"App.Example:8081")


def test_service_names_with_localhost() -> None:
    table = ProxyTable()
    table.apply(added("services", service("web", "127.96.0.10", [{"port": 80}], namespace="shop")))
    table.apply(added("services", service("home", "127.96.0.11", [{"port": 80}])))
    web = table.routes_of("shop", "web")[0]
    assert table.gateway_route(b"web.shop.localhost") is web
    assert table.gateway_route(b"web.shop.localhost:8081") is web
    assert table.gateway_route(b"web.shop.svc.cluster.local.localhost") is web
    assert table.gateway_route(b"home.localhost") is table.routes_of("default", "home")[0]
    assert table.gateway_route(b"localhost") is None


def test_choose_by_sni() -> None:
    exact, wildcards = {"a.example": "A"}, {".wild.example": "W"}
    assert choose("a.example", exact, wildcards, "D") == "A"
    assert choose("A.Example.", exact, wildcards, "D") == "A"
    assert choose("x.wild.example", exact, wildcards, "D") == "W"
    assert choose("x.y.wild.example", exact, wildcards, "D") == "D"  # a wildcard covers one label
    assert choose("wild.example", exact, wildcards, "D") == "D"
    assert choose(None, exact, wildcards, "D") == "D"


def _cert(namespace: str, secret: str, hosts: tuple[str, ...], names: list[str]) -> Certificate:
    cert, key = self_signed(names)
    return Certificate(namespace, secret, cert, key, hosts)


def test_certificate_set_contexts_are_cached_and_bad_ones_skipped() -> None:
    certs = CertificateSet(["127.0.0.1", "localhost", "*.localhost"])
    a = _cert("ns", "a", ("a.example",), ["a.example"])
    w = _cert("ns", "w", ("*.w.example",), ["*.w.example"])
    bad = Certificate("ns", "bad", b"not a certificate", b"nor a key", ("bad.example",))
    certs.update([a, w, bad])
    ctx_a = certs.context_for("a.example")
    assert isinstance(ctx_a, ssl.SSLContext) and ctx_a is not certs.default
    assert certs.context_for("x.w.example") not in (ctx_a, certs.default)
    assert certs.context_for("bad.example") is certs.default  # a broken Secret falls back to the default
    assert certs.context_for("other.example") is certs.default
    certs.update([a, w, bad, _cert("ns", "any", (), ["any"])])
    assert certs.context_for("a.example") is ctx_a  # unchanged certificates keep their context
    assert certs.context_for("other.example") is not certs.default  # a certificate for no host in particular
    certs.update([])
    assert certs.context_for("a.example") is certs.default


def test_response_head_says_close_when_the_client_asked_for_it() -> None:
    head = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n"
    got = fields(rewrite_response_head(head, [], close=True))
    assert [v for n, v in got if n == "connection"] == ["close"] and ("content-length", "2") in got


def test_say_close_is_rewrite_response_head_with_close() -> None:
    from emulator.proxy.gateway import say_close

    for head in (HEAD, b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"):
        assert sorted(fields(say_close(head))) == sorted(fields(rewrite_response_head(head, (), close=True)))


def test_filters_cannot_touch_the_headers_the_gateway_writes() -> None:
    change = HeaderChanges(
        set=(("content-length", "0"), ("x-forwarded-for", "6.6.6.6"), ("x-a", "1")),
        add=(("transfer-encoding", "chunked"), ("x-b", "2")),
        remove=("content-length", "Transfer-Encoding", "host", "connection", "x-forwarded-proto", "x-c"),
    )
    kept = _request_change(change)
    assert kept == HeaderChanges(set=(("x-a", "1"),), add=(("x-b", "2"),), remove=("x-c",))
    assert _request_change(HeaderChanges(set=(("x-a", "1"),))) == HeaderChanges(set=(("x-a", "1"),))


def test_values_with_cr_lf_or_nul_never_reach_a_head() -> None:
    assert wire_safe(b"a\tb", b"/x") and not wire_safe(b"ok", b"a\r\nb") and not wire_safe(b"\0")
    changes = HeaderChanges(set=(("x-a", "v\r\nSet-Cookie: evil=1"),), add=(("x-b", "fine"),))
    got = fields(rewrite_response_head(HEAD, [changes]))
    assert ("x-b", "fine") in got and all("evil" not in v and n != "x-a" for n, v in got)


def test_hostless_certificates_do_not_take_the_gateways_own_names() -> None:
    certs = CertificateSet(["127.0.0.1", "localhost", "*.localhost"])
    certs.update([_cert("ns", "any", (), ["any"])])
    assert certs.context_for("other.example") is not certs.default
    assert certs.context_for("web.default.localhost") is certs.default
    assert certs.context_for("localhost") is certs.default
