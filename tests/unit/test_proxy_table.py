"""The routing index: which addresses to listen on, which mode, which endpoints, which gateway Host."""

from __future__ import annotations

import errno

import pytest

from emulator.kinds.service import ServiceView
from emulator.proxy.l7 import local_response
from emulator.proxy.listeners import bind_problem
from emulator.proxy.table import ProxyTable, port_mode
from tests.integration.test_proxy_support import added, deleted, endpoints, modified, service


@pytest.mark.parametrize(
    ("port", "mode"),
    [
        ({"port": 80, "name": "http"}, "http"),
        ({"port": 80, "name": "http-metrics"}, "http"),
        ({"port": 80, "name": "web", "appProtocol": "http"}, "http"),
        ({"port": 80, "name": "https"}, "tcp"),
        ({"port": 80, "name": "grpc", "appProtocol": "kubernetes.io/h2c"}, "tcp"),
        ({"port": 80}, "tcp"),
        ({"port": 53, "name": "dns", "protocol": "UDP"}, "udp"),
    ],
)
def test_port_mode(port: dict, mode: str) -> None:
    view = ServiceView.of({"metadata": {"name": "s"}, "spec": {"ports": [port]}})
    assert port_mode(view.ports[0]) == mode


def test_listen_addresses_for_each_service_type() -> None:
    t = ProxyTable(node_address="127.0.0.1")
    t.apply(
        added(
            "services",
            service("a", "127.96.0.1", [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
        )
    )
    lb = service(
        "b",
        "127.96.0.2",
        [{"port": 443, "nodePort": 30443}],
        type="LoadBalancer",
        status={"loadBalancer": {"ingress": [{"ip": "127.99.0.1"}]}},
    )
    t.apply(added("services", lb))
    t.apply(added("services", service("h", "None", [{"port": 80}])))  # headless: nothing to proxy
    t.apply(added("services", service("x", "", [], type="ExternalName", externalName="example.com")))
    assert set(t.listeners) == {
        ("127.96.0.1", 80, "TCP"),
        ("127.96.0.1", 53, "UDP"),
        ("127.96.0.2", 443, "TCP"),
        ("127.0.0.1", 30443, "TCP"),
        ("127.99.0.1", 443, "TCP"),
    }
    assert t.listeners[("127.0.0.1", 30443, "TCP")] is t.listeners[("127.96.0.2", 443, "TCP")]
    t.apply(deleted("services", lb))
    assert set(t.listeners) == {("127.96.0.1", 80, "TCP"), ("127.96.0.1", 53, "UDP")}


def test_backends_are_ready_addresses_of_the_port_with_the_same_name() -> None:
    t = ProxyTable()
    t.apply(
        added(
            "services",
            service(
                "a", "127.96.0.1", [{"name": "http", "port": 80, "targetPort": "web"}, {"name": "admin", "port": 9000}]
            ),
        )
    )
    eps = endpoints(
        "a",
        ["10.0.0.1", "10.0.0.2"],
        [{"name": "http", "port": 8080}, {"name": "admin", "port": 9001}],
        not_ready=["10.0.0.3"],
    )
    t.apply(added("endpoints", eps))
    http, admin = t.routes_of("default", "a")
    assert http.balancer.backends == [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
    assert admin.balancer.backends == [("10.0.0.1", 9001), ("10.0.0.2", 9001)]
    t.apply(deleted("endpoints", eps))
    assert http.balancer.backends == []


def test_routes_are_updated_in_place() -> None:
    t = ProxyTable()
    t.apply(added("services", service("a", "127.96.0.1", [{"port": 80}])))
    route = t.listeners[("127.96.0.1", 80, "TCP")]
    t.apply(added("endpoints", endpoints("a", ["10.0.0.1"], [{"port": 8080}])))
    t.apply(
        modified(
            "services", service("a", "127.96.0.1", [{"port": 80, "appProtocol": "http"}], sessionAffinity="ClientIP")
        )
    )
    assert t.listeners[("127.96.0.1", 80, "TCP")] is route
    assert route.mode == "http" and route.balancer.affinity_timeout == 10800
    assert route.balancer.backends == [("10.0.0.1", 8080)]


def test_gateway_host_names() -> None:
    t = ProxyTable(zone="cluster.local")
    t.apply(added("services", service("web", "127.96.0.1", [{"port": 80}])))
    t.apply(
        added(
            "services",
            service(
                "api", "127.96.0.2", [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}], namespace="shop"
            ),
        )
    )
    web = t.routes_of("default", "web")[0]
    api, admin = t.routes_of("shop", "api")
    assert t.gateway_route(b"web") is web
    assert t.gateway_route(b"web.default:8081") is web
    assert t.gateway_route(b"api.shop") is api
    assert t.gateway_route(b"API.Shop.svc") is api
    assert t.gateway_route(b"api.shop.svc.cluster.local.") is api
    assert t.gateway_route(b"api.shop.svc.cluster.local:9090") is admin
    for unknown in (b"api", b"api.other", b"a.b.c.d.e", b"api.shop.svc.other.zone", b""):
        assert t.gateway_route(unknown) is None
    t.apply(deleted("services", service("web", "127.96.0.1", [])))
    assert t.gateway_route(b"web") is None  # the cache follows changes


def test_bind_problems_say_what_to_do() -> None:
    p = bind_problem(
        "127.96.0.1",
        80,
        "TCP",
        "service default/web:80",
        PermissionError(errno.EACCES, "Permission denied"),
        "127.0.0.1:8081",
    )
    assert p["reason"] == "PermissionDenied"
    assert (
        "ip_unprivileged_port_start" in p["fix"] and "cap_net_bind_service" in p["fix"] and "127.0.0.1:8081" in p["fix"]
    )
    p = bind_problem(
        "10.96.0.1",
        80,
        "TCP",
        "service default/web:80",
        OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
        None,
    )
    assert p["reason"] == "AddressNotAvailable" and "ip addr add 10.96.0.1/32 dev lo" in p["fix"]


def test_local_response_is_valid_http() -> None:
    raw = local_response(503, 'no endpoints available for service "shop/web" (port 80)', keep_alive=False)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Connection: close" in head and f"Content-Length: {len(body)}".encode() in head


def test_apply_says_whether_the_listen_addresses_changed() -> None:
    t = ProxyTable()
    assert t.apply(added("services", service("a", "127.96.0.1", [{"port": 80}]))) is True
    # labels, appProtocol, affinity: routes change in place, no socket to bind or unbind
    svc = service("a", "127.96.0.1", [{"port": 80, "appProtocol": "http"}], sessionAffinity="ClientIP")
    svc["metadata"]["labels"] = {"team": "x"}
    assert t.apply(modified("services", svc)) is False
    assert t.apply(added("endpoints", endpoints("a", ["10.0.0.1"], [{"port": 8080}]))) is False
    assert t.apply(modified("services", service("a", "127.96.0.1", [{"port": 81}]))) is True
    assert t.apply(modified("services", service("a", "127.96.0.1", [{"port": 81}], type="NodePort"))) is False
    nodeport = service("a", "127.96.0.1", [{"port": 81, "nodePort": 30081}], type="NodePort")
    assert t.apply(modified("services", nodeport)) is True
    assert t.apply(deleted("services", nodeport)) is True
    assert t.apply(deleted("services", nodeport)) is False  # already gone


def test_a_dropped_route_is_emptied() -> None:
    t = ProxyTable()
    t.apply(added("services", service("a", "127.96.0.1", [{"port": 80}, {"name": "b", "port": 81}])))
    t.apply(added("endpoints", endpoints("a", ["10.0.0.1"], [{"port": 8080}])))
    first = t.listeners[("127.96.0.1", 80, "TCP")]
    t.apply(added("endpoints", endpoints("a", ["10.0.0.1"], [{"name": "", "port": 8080}, {"name": "b", "port": 8081}])))
    assert first.balancer.backends == [("10.0.0.1", 8080)]
    t.apply(deleted("services", service("a", "127.96.0.1", [])))
    assert first.balancer.backends == []  # whoever still holds it (a keep-alive client) gets 503


def test_an_address_two_services_claim() -> None:
    t = ProxyTable()
    lk = ("127.99.0.1", 80, "TCP")
    a = service("a", "127.96.0.1", [{"port": 80}], externalIPs=["127.99.0.1"])
    b = service("b", "127.96.0.2", [{"port": 80}], externalIPs=["127.99.0.1"])
    t.apply(added("services", a))
    t.apply(added("services", b))
    route_a, route_b = t.routes_of("default", "a")[0], t.routes_of("default", "b")[0]
    assert t.listeners[lk] is route_a
    (conflict,) = t.conflicts()
    assert conflict["reason"] == "AddressConflict" and conflict["for"] == "service default/b:80"
    a["metadata"]["labels"] = {"changed": "yes"}
    t.apply(modified("services", a))  # a change to the owner does not hand the address over
    assert t.listeners[lk] is route_a
    assert t.apply(deleted("services", a)) is True
    assert t.listeners[lk] is route_b and t.conflicts() == []
    t.apply(deleted("services", b))
    assert lk not in t.listeners


def test_local_response_to_head_has_no_body() -> None:
    raw = local_response(503, "no endpoints", keep_alive=True, head_only=True)
    assert raw.endswith(b"\r\n\r\n") and b"Content-Length: 13" in raw
