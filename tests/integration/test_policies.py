"""NetworkPolicies enforced by the real proxy: every rule form, both directions, real connections.

One emulator for the module, with its own service and pod ranges so that parallel runs never share an
address. Pods get their IPs from the emulator; small backends (TCP greeting + echo, HTTP, UDP) listen on
those IPs, and clients bind their own pod IP before connecting to a service's cluster IP, so the proxy
sees them as that pod. Each table row applies some policies, checks a list of connections (allowed →
the backend answers; denied TCP → closed at once; denied HTTP → 403 naming the policy; denied UDP →
no answer), then deletes the policies.
"""

from __future__ import annotations

import http.client
import http.server
import random
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Emulator, start_emulator

NETPOL = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
CHECK = "/emulator/v1/networkpolicy/check"
HOST = "host"  # a client on 127.0.0.1: no pod


# --- backends ------------------------------------------------------------------------------------------


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(f"{self.server.name}\n".encode())  # type: ignore[attr-defined]
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _UdpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        _, sock = self.request
        sock.sendto(self.server.name.encode(), self.client_address)  # type: ignore[attr-defined]


class _Tcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Http(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Udp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True


def serve(kind: str, name: str, ip: str, port: int) -> socketserver.BaseServer:
    server_class: Any = {"tcp": _Tcp, "http": _Http, "udp": _Udp}[kind]
    handler: Any = {"tcp": _TcpHandler, "http": _HttpHandler, "udp": _UdpHandler}[kind]
    server = server_class((ip, port), handler)
    server.name = name
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


# --- clients -------------------------------------------------------------------------------------------


@dataclass
class Result:
    allowed: bool
    answer: str  # the backend's name when allowed; the 403 body or "closed"/"no answer" when denied


def connect_tcp(source: str, ip: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(3)
    sock.bind((source, 0))
    sock.connect((ip, port))
    return sock


def tcp(source: str, ip: str, port: int) -> Result:
    with connect_tcp(source, ip, port) as sock:
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
    return Result(bool(data), data.decode().strip() or "closed")


def http_get(source: str, ip: str, port: int) -> Result:
    conn = http.client.HTTPConnection(ip, port, timeout=3, source_address=(source, 0))
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode()
    finally:
        conn.close()
    if response.status == 403:
        return Result(False, body)
    assert response.status == 200, (response.status, body)
    return Result(True, body)


def udp(source: str, ip: str, port: int, wait: float = 0.4) -> Result:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.bind((source, 0))
        sock.sendto(b"hi", (ip, port))
        try:
            data, _ = sock.recvfrom(100)
        except TimeoutError:
            return Result(False, "no answer")
    return Result(True, data.decode())


# --- the cluster ---------------------------------------------------------------------------------------

# pod -> (namespace, labels, container ports, backends to run as (kind, port))
PODS: dict[str, tuple[str, dict[str, str], list[dict[str, Any]], list[tuple[str, int]]]] = {
    "prod/web": ("prod", {"app": "web"}, [
        {"name": "http", "containerPort": 8080}, {"name": "raw", "containerPort": 9000},
        {"name": "raw5", "containerPort": 9005}, {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
    ], [("http", 8080), ("tcp", 9000), ("tcp", 9005), ("udp", 5353)]),
    "prod/db": ("prod", {"app": "db"}, [{"name": "pg", "containerPort": 5432}], [("tcp", 5432)]),
    "prod/client": ("prod", {"app": "client"}, [], []),
    "prod/other": ("prod", {"app": "other"}, [], []),
    "dev/client": ("dev", {"app": "client"}, [], []),
    "dev/tool": ("dev", {"app": "tool"}, [{"name": "tool", "containerPort": 7000}], [("tcp", 7000)]),
}

# target -> (service namespace/name, service port, how to talk to it); backends are the pods above
TARGETS: dict[str, tuple[str, int, str]] = {
    "web:http": ("prod/web", 8080, "http"),  # port named http: the proxy's HTTP mode
    "web:raw": ("prod/web", 9000, "tcp"),
    "web:raw5": ("prod/web", 9005, "tcp"),
    "web:dns": ("prod/web", 5353, "udp"),
    "db:pg": ("prod/db", 5432, "tcp"),  # targetPort "pg": a named port
    "tool": ("dev/tool", 7000, "tcp"),
}

SERVICES: dict[str, list[dict[str, Any]]] = {
    "prod/web": [
        {"name": "http", "port": 8080, "targetPort": "http"},
        {"name": "raw", "port": 9000, "targetPort": 9000},
        {"name": "raw5", "port": 9005, "targetPort": 9005},
        {"name": "dns", "port": 5353, "targetPort": "dns", "protocol": "UDP"},
    ],
    "prod/db": [{"name": "pg", "port": 5432, "targetPort": "pg"}],
    "dev/tool": [{"name": "tool", "port": 7000, "targetPort": 7000}],
}


@dataclass
class Cluster:
    emulator: Emulator
    api: httpx.Client
    pod_ips: dict[str, str] = field(default_factory=dict)
    cluster_ips: dict[str, str] = field(default_factory=dict)
    servers: list[socketserver.BaseServer] = field(default_factory=list)

    def source_ip(self, source: str) -> str:
        return "127.0.0.1" if source == HOST else self.pod_ips[source]

    def reach(self, source: str, target: str) -> Result:
        service, port, how = TARGETS[target]
        client = {"http": http_get, "tcp": tcp, "udp": udp}[how]
        return client(self.source_ip(source), self.cluster_ips[service], port)

    def apply(self, policies: list[dict[str, Any]]) -> None:
        for p in policies:
            response = self.api.post(NETPOL.format(ns=p["metadata"]["namespace"]), json=p)
            assert response.status_code == 201, response.text

    def remove(self, policies: list[dict[str, Any]]) -> None:
        for p in policies:
            meta = p["metadata"]
            assert self.api.delete(f"{NETPOL.format(ns=meta['namespace'])}/{meta['name']}").status_code == 200


def _ranges() -> list[str]:
    # A /24 each, picked at random inside 127/8, away from the defaults other emulators use.
    a, b = random.randint(160, 199), random.randint(0, 255)
    return ["--service-cidr", f"127.{a}.{b}.0/24", "--pod-cidr", f"127.{a + 40}.{b}.0/24"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    emu = start_emulator(tmp_path_factory.mktemp("policies") / "data", *_ranges())
    api = emu.client()
    c = Cluster(emu, api)
    try:
        for ns, labels in (("prod", {"env": "prod"}), ("dev", {"env": "dev"})):
            assert api.post("/api/v1/namespaces", json={"metadata": {"name": ns, "labels": labels}}).status_code == 201
        for key, (ns, labels, ports, backends) in PODS.items():
            name = key.split("/")[1]
            body = {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [{"name": "c", "ports": ports}]}}
            created = api.post(f"/api/v1/namespaces/{ns}/pods", json=body)
            assert created.status_code == 201, created.text
            c.pod_ips[key] = ip = created.json()["status"]["podIP"]
            c.servers += [serve(kind, key, ip, port) for kind, port in backends]
        for key, ports in SERVICES.items():
            ns, name = key.split("/")
            body = {"metadata": {"name": name}, "spec": {"selector": PODS[key][1], "ports": ports}}
            created = api.post(f"/api/v1/namespaces/{ns}/services", json=body)
            assert created.status_code == 201, created.text
            c.cluster_ips[key] = created.json()["spec"]["clusterIP"]
        _wait_until_served(c)
        yield c
    finally:
        api.close()
        emu.stop()
        for server in c.servers:
            server.shutdown()
            server.server_close()


def _wait_until_served(c: Cluster) -> None:
    """The proxy binds service addresses asynchronously: wait until every target answers."""
    deadline = time.monotonic() + 10
    for target in TARGETS:
        while True:
            try:
                if c.reach(HOST, target).allowed:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{target} never answered through the proxy"
            time.sleep(0.05)


# --- the table -----------------------------------------------------------------------------------------


def netpol(name: str, pods: dict[str, str] | None = None, ns: str = "prod", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": {"matchLabels": pods} if pods else {}, **spec},
    }


def app(name: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {"app": name}}}


def env(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"env": name}}}


Checks = list[tuple[str, str, bool]]  # (source, target, allowed?)
Policies = list[dict[str, Any]] | Callable[[Cluster], list[dict[str, Any]]]  # callables need pod IPs


def _ingress_ip_block(c: Cluster) -> list[dict[str, Any]]:
    block = {"cidr": "127.0.0.0/8", "except": [f"{c.pod_ips['prod/client']}/32"]}
    return [netpol("web-from-addresses", {"app": "web"}, ingress=[{"from": [{"ipBlock": block}]}])]


def _egress_ip_block(c: Cluster) -> list[dict[str, Any]]:
    block = {"cidr": c.pod_ips["prod/db"].rsplit(".", 1)[0] + ".0/24", "except": [f"{c.pod_ips['prod/web']}/32"]}
    return [netpol("client-to-pods-but-web", {"app": "client"}, egress=[{"to": [{"ipBlock": block}]}])]


ROWS: list[tuple[str, Policies, Checks]] = [
    ("no policies: everything is allowed", [], [
        ("prod/client", "web:http", True), ("dev/client", "db:pg", True), (HOST, "web:raw", True),
        ("prod/client", "web:dns", True),
    ]),
    ("default-deny ingress (empty podSelector)", [netpol("deny-all", policyTypes=["Ingress"])], [
        ("prod/client", "web:http", False), ("prod/client", "web:raw", False), (HOST, "db:pg", False),
        ("dev/client", "web:dns", False), ("prod/web", "web:raw", True),  # a pod may always reach itself
        ("prod/client", "tool", True),  # dev is not isolated
    ]),
    ("allow-all ingress", [netpol("allow-all", ingress=[{}])], [
        ("prod/client", "web:raw", True), ("dev/client", "db:pg", True), (HOST, "web:http", True),
    ]),
    ("ingress: podSelector peer = same namespace only", [netpol("web-from-client", {"app": "web"}, ingress=[{"from": [app("client")]}])], [
        ("prod/client", "web:raw", True), ("prod/other", "web:raw", False), ("dev/client", "web:raw", False),
        (HOST, "web:raw", False), ("prod/other", "db:pg", True),  # db is not selected
    ]),
    ("ingress: namespaceSelector alone = every pod there", [netpol("web-from-dev", {"app": "web"}, ingress=[{"from": [env("dev")]}])], [
        ("dev/client", "web:raw", True), ("dev/tool", "web:http", True), ("prod/client", "web:raw", False),
    ]),
    ("ingress: namespaceSelector AND podSelector in one peer", [netpol("web-from-dev-clients", {"app": "web"}, ingress=[{"from": [{**env("dev"), **app("client")}]}])], [
        ("dev/client", "web:raw", True), ("dev/tool", "web:raw", False), ("prod/client", "web:raw", False),
    ]),
    ("ingress: two peers are OR", [netpol("web-from-dev-or-clients", {"app": "web"}, ingress=[{"from": [env("dev"), app("client")]}])], [
        ("dev/tool", "web:raw", True), ("prod/client", "web:raw", True), ("prod/other", "web:raw", False),
    ]),
    ("ingress: ipBlock with except, the host allowed", _ingress_ip_block, [
        (HOST, "web:raw", True),  # 127.0.0.1 is no pod: only ipBlocks can match it
        ("prod/other", "web:http", True),  # a pod matches ipBlocks that contain its IP
        ("prod/client", "web:raw", False),  # in the except
    ]),
    ("ingress: ipBlock with except, the host excepted", [netpol("web-from-pods", {"app": "web"}, ingress=[{"from": [{"ipBlock": {"cidr": "127.0.0.0/8", "except": ["127.0.0.0/16"]}}]}])], [
        (HOST, "web:raw", False), ("prod/client", "web:raw", True),
    ]),
    ("ingress: numeric port", [netpol("web-9000", {"app": "web"}, ingress=[{"ports": [{"port": 9000}]}])], [
        ("prod/client", "web:raw", True), ("prod/client", "web:http", False), ("prod/client", "web:raw5", False),
    ]),
    ("ingress: named port", [netpol("web-http-by-name", {"app": "web"}, ingress=[{"ports": [{"port": "http"}]}])], [
        ("prod/client", "web:http", True), ("dev/client", "web:http", True), ("prod/client", "web:raw", False),
    ]),
    ("ingress: endPort range", [netpol("web-9000-9003", {"app": "web"}, ingress=[{"ports": [{"port": 9000, "endPort": 9003}]}])], [
        ("prod/client", "web:raw", True), ("prod/client", "web:raw5", False), ("prod/client", "web:http", False),
    ]),
    ("ingress: UDP port", [netpol("web-udp", {"app": "web"}, ingress=[{"ports": [{"port": 5353, "protocol": "UDP"}]}])], [
        ("prod/client", "web:dns", True), ("prod/client", "web:raw", False),
    ]),
    ("ingress: protocol defaults to TCP", [netpol("web-5353-tcp", {"app": "web"}, ingress=[{"ports": [{"port": 5353}]}])], [
        ("prod/client", "web:dns", False),
    ]),
    ("default-deny egress", [netpol("deny-egress", policyTypes=["Egress"])], [
        ("prod/client", "web:raw", False), ("prod/client", "tool", False), ("prod/client", "web:http", False),
        ("dev/client", "web:raw", True), (HOST, "web:raw", True),  # sources that are not isolated
        ("prod/web", "web:raw", True),  # itself
    ]),
    ("allow-all egress", [netpol("deny-egress", policyTypes=["Egress"]), netpol("allow-egress", egress=[{}], policyTypes=["Egress"])], [
        ("prod/client", "tool", True), ("prod/client", "web:http", True),
    ]),
    ("egress: to one app", [netpol("client-to-db", {"app": "client"}, egress=[{"to": [app("db")]}])], [
        ("prod/client", "db:pg", True), ("prod/client", "web:raw", False), ("prod/other", "web:raw", True),
    ]),
    ("egress: namespaceSelector", [netpol("client-to-dev", {"app": "client"}, egress=[{"to": [env("dev")]}])], [
        ("prod/client", "tool", True), ("prod/client", "db:pg", False),
    ]),
    ("egress: namespaceSelector AND podSelector", [netpol("client-to-dev-tool", {"app": "client"}, egress=[{"to": [{**env("dev"), **app("tool")}]}])], [
        ("prod/client", "tool", True), ("prod/client", "web:raw", False),
    ]),
    ("egress: ipBlock with except", _egress_ip_block, [
        ("prod/client", "db:pg", True), ("prod/client", "web:raw", False), ("prod/client", "web:http", False),
    ]),
    ("egress: only UDP to one port (the DNS recipe's shape)", [netpol("client-udp-only", {"app": "client"}, egress=[{"ports": [{"port": 5353, "protocol": "UDP"}]}])], [
        ("prod/client", "web:dns", True), ("prod/client", "web:raw", False), ("prod/client", "web:http", False),
    ]),
    ("egress: named and ranged ports", [netpol("client-ports", {"app": "client"}, egress=[{"ports": [{"port": "pg"}, {"port": 9004, "endPort": 9010}]}])], [
        ("prod/client", "db:pg", True), ("prod/client", "web:raw5", True), ("prod/client", "web:raw", False),
    ]),
    ("both sides must allow", [
        netpol("web-from-client", {"app": "web"}, ingress=[{"from": [app("client")]}]),
        netpol("client-to-db", {"app": "client"}, egress=[{"to": [app("db")]}]),
    ], [
        ("prod/client", "web:raw", False),  # ingress allows, egress does not
        ("prod/other", "web:raw", False),  # egress free, ingress does not allow
        ("prod/client", "db:pg", True),
    ]),
]


@pytest.mark.parametrize(("name", "policies", "checks"), ROWS, ids=[r[0] for r in ROWS])
def test_rule_forms_through_the_proxy(cluster: Cluster, name: str, policies: Policies, checks: Checks) -> None:
    policies = policies(cluster) if callable(policies) else policies
    cluster.apply(policies)
    try:
        for source, target, expected in checks:
            result = cluster.reach(source, target)
            assert result.allowed is expected, f"{source} -> {target}: {result.answer}"
            if result.allowed:
                assert result.answer == TARGETS[target][0]  # the backend pod answered
            # the check endpoint agrees with the proxy
            service, _, how = TARGETS[target]
            port = {"web:http": "http", "web:dns": "dns"}.get(target, str(TARGETS[target][1]))
            query = {"from": source if source != HOST else "127.0.0.1", "to": service, "port": port,
                     "protocol": "UDP" if how == "udp" else "TCP"}
            assert cluster.api.get(CHECK, params=query).json()["allowed"] is expected, query
    finally:
        cluster.remove(policies)


# --- denials, as the client sees them ------------------------------------------------------------------


def test_denied_http_is_403_naming_the_policy_and_denied_tcp_is_closed(cluster: Cluster) -> None:
    policies = [netpol("only-clients", {"app": "web"}, ingress=[{"from": [app("client")]}])]
    cluster.apply(policies)
    try:
        denied = cluster.reach("prod/other", "web:http")
        assert not denied.allowed
        assert denied.answer.startswith("denied by network policy: ingress: prod/web")
        assert "prod/only-clients" in denied.answer
        started = time.monotonic()
        assert cluster.reach("prod/other", "web:raw").answer == "closed"
        assert time.monotonic() - started < 1  # at once, not after a timeout
    finally:
        cluster.remove(policies)


def test_policy_changes_apply_to_new_connections_only(cluster: Cluster) -> None:
    web_ip, port = cluster.cluster_ips["prod/web"], 9000
    source = cluster.pod_ips["prod/client"]
    established = connect_tcp(source, web_ip, port)
    keepalive = http.client.HTTPConnection(web_ip, 8080, timeout=3, source_address=(source, 0))
    try:
        assert established.recv(100) == b"prod/web\n"
        keepalive.request("GET", "/")
        assert keepalive.getresponse().read() == b"prod/web"
        deny = [netpol("deny-all", policyTypes=["Ingress"])]
        cluster.apply(deny)
        assert cluster.reach("prod/client", "web:raw").answer == "closed"  # a new connection is cut
        established.sendall(b"still here\n")
        assert established.recv(100) == b"still here\n"  # the established one is left alone
        keepalive.request("GET", "/")  # HTTP mode checks every request, even on an open connection
        refused = keepalive.getresponse()
        assert refused.status == 403 and b"default-deny" not in refused.read()
        cluster.remove(deny)
        assert cluster.reach("prod/client", "web:raw").allowed  # and new connections work again
        keepalive.request("GET", "/")
        assert keepalive.getresponse().read() == b"prod/web"
    finally:
        established.close()
        keepalive.close()


def test_policies_added_and_removed_while_traffic_flows(cluster: Cluster) -> None:
    """A client loop connecting over and over sees the policy take effect and go away."""
    seen: list[bool] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            seen.append(cluster.reach("prod/client", "web:raw").allowed)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        time.sleep(0.2)
        policies = [netpol("deny-all", policyTypes=["Ingress"])]
        applying = len(seen)
        cluster.apply(policies)
        applied_at = len(seen)
        time.sleep(0.2)
        removing = len(seen)
        cluster.remove(policies)
        removed_at = len(seen)
        time.sleep(0.2)
    finally:
        stop.set()
        worker.join()
    # While a change is being written it may take effect before its answer comes back: the connections
    # made meanwhile (and one in flight on either side) may go either way; the others follow the policy.
    assert all(seen[: applying - 1]) and applying > 1
    assert not any(seen[applied_at + 1 : removing - 1]) and removing - applied_at > 3
    assert all(seen[removed_at + 1 :]) and len(seen) - removed_at > 3


# --- the check endpoint --------------------------------------------------------------------------------


def test_check_endpoint_explains_and_rejects_bad_questions(cluster: Cluster) -> None:
    policies = [netpol("web-from-client", {"app": "web"}, ingress=[{"from": [app("client")], "ports": [{"port": "http"}]}])]
    cluster.apply(policies)
    try:
        api = cluster.api
        ok = api.get(CHECK, params={"from": "prod/client", "to": "prod/web", "port": "http"}).json()
        assert ok["kind"] == "NetworkPolicyCheck" and ok["allowed"] and ok["port"] == 8080
        assert ok["policies"] == ["prod/web-from-client"] and ok["enforced"] is True
        assert ok["source"]["pod"] == "prod/client" and ok["destination"]["ip"] == cluster.pod_ips["prod/web"]
        by_ip = api.get(CHECK, params={"from": cluster.pod_ips["prod/other"], "to": cluster.pod_ips["prod/web"], "port": 8080}).json()
        assert not by_ip["allowed"] and by_ip["source"]["pod"] == "prod/other" and by_ip["deniedBy"] == ["ingress"]
        assert any("prod/web-from-client" in r for r in by_ip["reasons"])
        bare = api.get(CHECK, params={"from": "client", "to": "web", "namespace": "prod", "port": "8080"}).json()
        assert bare["allowed"]
        for params, code in (
            ({"from": "prod/nope", "to": "prod/web", "port": "80"}, 404),
            ({"from": "prod/client", "to": "prod/web", "port": "grpc"}, 400),
            ({"from": "prod/client", "to": "prod/web"}, 400),
            ({"to": "prod/web", "port": "80"}, 400),
            ({"from": "prod/client", "to": "prod/web", "port": "80", "protocol": "ICMP"}, 400),
            ({"from": "a/b/c", "to": "prod/web", "port": "80"}, 400),
        ):
            response = api.get(CHECK, params=params)
            assert response.status_code == code, (params, response.text)
            assert response.json()["kind"] == "Status"
    finally:
        cluster.remove(policies)


def test_invalid_policies_are_422_with_causes(cluster: Cluster) -> None:
    bad = netpol("bad", ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}], "ports": [{"port": "http", "endPort": 90}]}])
    response = cluster.api.post(NETPOL.format(ns="prod"), json=bad)
    assert response.status_code == 422, response.text
    fields = {c["field"] for c in response.json()["details"]["causes"]}
    assert {"spec.ingress[0].from[0].ipBlock.cidr", "spec.ingress[0].ports[0].endPort"} <= fields


def test_no_network_policy_flag_turns_enforcement_off(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "data", "--no-network-policy", *_ranges())
    try:
        with emu.client() as api:
            doc = api.get(CHECK, params={"from": "127.0.0.1", "to": "127.0.0.2", "port": "80"}).json()
            assert doc["enforced"] is False and doc["allowed"]
    finally:
        emu.stop()
