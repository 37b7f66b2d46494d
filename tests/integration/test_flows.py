"""Flows through the real emulator: a DNS query, a TCP connection, a UDP flow, an HTTP request and a denied
connection each show up in `GET /emulator/v1/flows` and in `emulator flows -o json` within a second, with
the pods and services named; the filters, the `?watch=1` stream and the DNS and proxy metrics.

One emulator for the module, with its own address ranges. Clients bind the client pod's IP before they
connect, so the proxy and DNS see them as that pod; small backends listen on the backend pods' IPs.
"""

from __future__ import annotations

import json
import random
import select
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.query
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, Emulator, start_emulator

NS = "flows"
FLOWS = "/emulator/v1/flows"


class _Tcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Udp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True


class _Greeter(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"hello\n")
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _Http(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = self.request.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


def _serve(server: socketserver.BaseServer) -> socketserver.BaseServer:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@dataclass
class Cluster:
    emu: Emulator
    api: httpx.Client
    pod_ips: dict[str, str] = field(default_factory=dict)
    cluster_ips: dict[str, str] = field(default_factory=dict)
    servers: list[socketserver.BaseServer] = field(default_factory=list)

    @property
    def client_ip(self) -> str:
        return self.pod_ips["client"]

    def last_id(self) -> int:
        return int(self.api.get(FLOWS, params={"limit": "1"}).json()["lastId"])

    def flows(self, **params: str) -> list[dict[str, Any]]:
        response = self.api.get(FLOWS, params=params)
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def wait_for(self, match: Callable[[dict[str, Any]], bool], since: int, within: float = 1.0, **params: str) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            found = [f for f in self.flows(since=str(since), **params) if match(f)]
            if found:
                return found[-1]
            assert time.monotonic() < deadline, f"no such flow within {within}s: {self.flows(since=str(since))}"
            time.sleep(0.05)


def _ranges() -> list[str]:
    a, b = random.randint(160, 199), random.randint(0, 255)
    return ["--service-cidr", f"127.{a}.{b}.0/24", "--pod-cidr", f"127.{a + 40}.{b}.0/24"]


def _pod(api: httpx.Client, name: str, labels: dict[str, str]) -> str:
    body = {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [{"name": "c"}]}}
    created = api.post(f"/api/v1/namespaces/{NS}/pods", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["status"]["podIP"])


def _service(api: httpx.Client, name: str, selector: dict[str, str], ports: list[dict[str, Any]]) -> str:
    created = api.post(f"/api/v1/namespaces/{NS}/services", json={"metadata": {"name": name}, "spec": {"selector": selector, "ports": ports}})
    assert created.status_code == 201, created.text
    return str(created.json()["spec"]["clusterIP"])


def tcp_exchange(source: str, ip: str, port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection((ip, port), timeout=3, source_address=(source, 0)) as sock:
        got = sock.recv(100)
        if got:
            sock.sendall(payload)
            got += sock.recv(100)
        return got


def udp_exchange(source: str, ip: str, port: int, wait: float = 2.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.bind((source, 0))
        sock.sendto(b"hi", (ip, port))
        try:
            return sock.recvfrom(100)[0]
        except TimeoutError:
            return b""


def http_get(source: str, ip: str, port: int, path: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=3) as client:
        return client.get(f"http://{ip}:{port}{path}")


def _until(check: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    emu = start_emulator(tmp_path_factory.mktemp("flows") / "data", *_ranges(), "--gateway-https-port", "-1")
    api = emu.client()
    c = Cluster(emu, api)
    try:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).status_code == 201
        c.pod_ips["client"] = _pod(api, "client", {"app": "client"})
        c.pod_ips["api"] = ip = _pod(api, "api", {"app": "api"})
        c.pod_ips["locked"] = locked = _pod(api, "locked", {"app": "locked"})
        c.servers += [
            _serve(_Tcp((ip, 9000), _Greeter)), _serve(_Tcp((ip, 8080), _Http)), _serve(_Udp((ip, 5353), _Echo)),
            _serve(_Tcp((locked, 9000), _Greeter)),
        ]
        c.cluster_ips["api"] = _service(api, "api", {"app": "api"}, [
            {"name": "raw", "port": 9000}, {"name": "http", "port": 8080},
            {"name": "echo", "port": 5353, "protocol": "UDP"},
        ])
        c.cluster_ips["locked"] = _service(api, "locked", {"app": "locked"}, [{"name": "raw", "port": 9000}])
        policy = {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-locked", "namespace": NS},
            "spec": {"podSelector": {"matchLabels": {"app": "locked"}}, "policyTypes": ["Ingress"]},
        }
        created = api.post(f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies", json=policy)
        assert created.status_code == 201, created.text
        _until(lambda: tcp_exchange("127.0.0.1", c.cluster_ips["api"], 9000).startswith(b"hello"), "the proxy never served api:9000")
        _until(lambda: http_get("127.0.0.1", c.cluster_ips["api"], 8080, "/").status_code == 200, "the proxy never served api:8080")
        yield c
    finally:
        api.close()
        emu.stop()
        for server in c.servers:
            server.shutdown()
            server.server_close()


# --- each kind ----------------------------------------------------------------------------------------


def test_dns_query_is_a_flow_with_its_answer(cluster: Cluster) -> None:
    since = cluster.last_id()
    name = f"api.{NS}.svc.cluster.local."
    for _ in range(2):  # the second is answered from the cache (the hot path): recorded as well
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=cluster.emu.dns_port, timeout=3, source=cluster.client_ip)
        assert reply.answer
    flows = [f for f in cluster.flows(since=str(since), kind="dns") if f["dns"]["name"] == name.rstrip(".")]
    deadline = time.monotonic() + 1
    while len(flows) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        flows = [f for f in cluster.flows(since=str(since), kind="dns") if f["dns"]["name"] == name.rstrip(".")]
    assert len(flows) == 2
    flow = flows[-1]
    assert flow["kind"] == "dns" and flow["verdict"] == "allowed"
    assert flow["source"] == {"ip": cluster.client_ip, "pod": f"{NS}/client", "namespace": NS}
    assert flow["dns"]["type"] == "A" and flow["dns"]["rcode"] == "NOERROR"
    assert flow["dns"]["answers"] == [cluster.cluster_ips["api"]]
    assert flow["destination"]["port"] == cluster.emu.dns_port
    assert "dns A" in flow["summary"]


def test_nxdomain_is_allowed_with_its_rcode(cluster: Cluster) -> None:
    since = cluster.last_id()
    dns.query.tcp(dns.message.make_query(f"missing.{NS}.svc.cluster.local", "A"), "127.0.0.1", port=cluster.emu.dns_port, timeout=3)
    flow = cluster.wait_for(lambda f: f["dns"]["name"].startswith("missing."), since, kind="dns")
    assert flow["verdict"] == "allowed" and flow["dns"]["rcode"] == "NXDOMAIN" and flow["dns"]["proto"] == "tcp"


def test_tcp_connection_is_a_flow_with_endpoint_and_bytes(cluster: Cluster) -> None:
    since = cluster.last_id()
    assert tcp_exchange(cluster.client_ip, cluster.cluster_ips["api"], 9000) == b"hello\nping"
    flow = cluster.wait_for(lambda f: f["kind"] == "tcp" and f["source"]["pod"] == f"{NS}/client", since)
    assert flow["verdict"] == "allowed"
    destination = flow["destination"]
    assert destination["service"] == f"{NS}/api" and destination["ip"] == cluster.cluster_ips["api"]
    assert destination["port"] == 9000
    assert destination["endpoint"] == f"{cluster.pod_ips['api']}:9000" and destination["pod"] == f"{NS}/api"
    assert flow["bytes"] == {"sent": 4, "received": 10}
    assert flow["durationMs"] is not None and flow["durationMs"] >= 0
    assert flow["summary"].startswith(f"{NS}/client -> {NS}/api:9000 ({NS}/api ")


def test_udp_flow(cluster: Cluster) -> None:
    since = cluster.last_id()
    assert udp_exchange(cluster.client_ip, cluster.cluster_ips["api"], 5353) == b"hi"
    flow = cluster.wait_for(lambda f: f["kind"] == "udp", since)
    assert flow["verdict"] == "allowed" and flow["source"]["pod"] == f"{NS}/client"
    assert flow["destination"]["service"] == f"{NS}/api" and flow["destination"]["pod"] == f"{NS}/api"


def test_http_request_is_a_flow_with_method_path_and_status(cluster: Cluster) -> None:
    since = cluster.last_id()
    assert http_get(cluster.client_ip, cluster.cluster_ips["api"], 8080, "/x?q=1").status_code == 200
    flow = cluster.wait_for(lambda f: f["kind"] == "http", since)
    assert flow["verdict"] == "allowed"
    assert flow["http"]["method"] == "GET" and flow["http"]["path"] == "/x?q=1" and flow["http"]["status"] == 200
    assert flow["http"]["host"] == f"{cluster.cluster_ips['api']}:8080"
    assert flow["destination"]["service"] == f"{NS}/api" and flow["destination"]["pod"] == f"{NS}/api"
    assert flow["durationMs"] is not None
    assert "GET" in flow["summary"] and "200" in flow["summary"]


def test_gateway_request_is_a_flow_with_its_path(cluster: Cluster) -> None:
    since = cluster.last_id()
    url = f"http://127.0.0.1:{cluster.emu.gateway_port}/through/gateway?x=1"
    assert httpx.get(url, headers={"Host": f"api.{NS}:8080"}, timeout=3).status_code == 200
    flow = cluster.wait_for(lambda f: f["kind"] == "http" and f["http"]["path"].startswith("/through/"), since)
    assert flow["http"]["path"] == "/through/gateway?x=1" and flow["http"]["status"] == 200
    assert flow["destination"]["service"] == f"{NS}/api"


def test_denied_connection_names_the_policy(cluster: Cluster) -> None:
    since = cluster.last_id()
    assert tcp_exchange(cluster.client_ip, cluster.cluster_ips["locked"], 9000) == b""
    flow = cluster.wait_for(lambda f: f["verdict"] == "denied", since)
    assert flow["kind"] == "tcp" and flow["source"]["pod"] == f"{NS}/client"
    assert flow["destination"]["service"] == f"{NS}/locked" and flow["destination"]["pod"] == f"{NS}/locked"
    assert flow["policy"]["verdict"] == "denied" and f"{NS}/deny-locked" in flow["policy"]["policies"]
    assert "DENIED" in flow["summary"]


def test_cli_shows_flows_as_json(cluster: Cluster) -> None:
    since = cluster.last_id()
    http_get(cluster.client_ip, cluster.cluster_ips["api"], 8080, "/cli")
    cluster.wait_for(lambda f: f["kind"] == "http", since)
    out = subprocess.run(
        [sys.executable, "-m", "emulator", "flows", "--server", cluster.emu.api_url, "-o", "json",
         "--pod", f"{NS}/client", "--kind", "http", "--last", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    flows = [json.loads(line) for line in out.splitlines()]
    assert flows and flows[-1]["http"]["path"] == "/cli"
    assert all(f["kind"] == "http" for f in flows)
    compact = subprocess.run(
        [sys.executable, "-m", "emulator", "flows", "--server", cluster.emu.api_url, "--verdict", "denied", "--last", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    assert "DENIED" in compact and "\033[" not in compact  # no colours when not on a terminal


# --- filters, watch, metrics ---------------------------------------------------------------------------


def test_filters(cluster: Cluster) -> None:
    tcp_exchange(cluster.client_ip, cluster.cluster_ips["api"], 9000)
    tcp_exchange(cluster.client_ip, cluster.cluster_ips["locked"], 9000)
    time.sleep(0.3)
    everything = cluster.flows()
    assert {f["kind"] for f in everything} >= {"dns", "tcp", "http"}
    assert all(f["verdict"] == "denied" for f in cluster.flows(verdict="denied"))
    assert cluster.flows(verdict="denied")
    assert {f["kind"] for f in cluster.flows(kind="tcp,udp")} <= {"tcp", "udp"}
    services = cluster.flows(service=f"{NS}/locked")
    assert services and all(f["destination"]["service"] == f"{NS}/locked" for f in services)
    assert cluster.flows(service="locked") == services
    by_pod = cluster.flows(pod=f"{NS}/api")
    assert by_pod and all(f"{NS}/api" in (f["source"]["pod"], f["destination"]["pod"]) for f in by_pod)
    assert cluster.flows(pod="api") == by_pod
    assert cluster.flows(namespace=NS) and not cluster.flows(namespace="nowhere")
    last = cluster.flows(limit="2")
    assert [f["id"] for f in last] == [f["id"] for f in everything[-2:]]
    newest = everything[-1]["id"]
    assert cluster.flows(since=str(newest)) == []
    assert cluster.flows(sinceTime="2999-01-01T00:00:00Z") == []
    assert len(cluster.flows(sinceTime="2000-01-01T00:00:00Z")) == len(everything)
    bad = cluster.api.get(FLOWS, params={"kind": "smtp"})
    assert bad.status_code == 400 and bad.json()["kind"] == "Status" and "smtp" in bad.json()["message"]


def test_watch_streams_new_flows(cluster: Cluster) -> None:
    since = cluster.last_id()
    lines: list[dict[str, Any]] = []

    def read() -> None:
        with httpx.Client(base_url=cluster.emu.api_url, timeout=httpx.Timeout(5, read=5)) as client:
            with client.stream("GET", FLOWS, params={"watch": "1", "since": str(since), "kind": "dns"}) as response:
                assert response.headers["content-type"].startswith("application/json")
                for line in response.iter_lines():
                    if line.strip():
                        lines.append(json.loads(line))
                        return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)  # the stream is open, with no backlog
    started = time.monotonic()
    dns.query.udp(dns.message.make_query(f"watch.{NS}.svc.cluster.local", "A"), "127.0.0.1", port=cluster.emu.dns_port, timeout=3)
    reader.join(3)
    assert lines, "the watch sent nothing"
    assert time.monotonic() - started < 1.0
    assert lines[0]["type"] == "FLOW" and lines[0]["flow"]["dns"]["name"] == f"watch.{NS}.svc.cluster.local"


def test_metrics_count_dns_and_proxy(cluster: Cluster) -> None:
    def samples() -> dict[str, float]:
        text = cluster.api.get("/metrics").text
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0) + sample.value
        return totals

    before = samples()
    dns.query.udp(dns.message.make_query(f"api.{NS}.svc.cluster.local", "A"), "127.0.0.1", port=cluster.emu.dns_port, timeout=3)
    http_get(cluster.client_ip, cluster.cluster_ips["api"], 8080, "/m")
    tcp_exchange(cluster.client_ip, cluster.cluster_ips["api"], 9000)
    time.sleep(0.4)  # counted from the flow records, in batches
    after = samples()
    assert after["coredns_dns_requests_total"] > before.get("coredns_dns_requests_total", 0)
    assert after["coredns_dns_responses_total"] > before.get("coredns_dns_responses_total", 0)
    assert after["emulator_proxy_http_requests_total"] > before.get("emulator_proxy_http_requests_total", 0)
    assert after["emulator_proxy_connections_total"] > before.get("emulator_proxy_connections_total", 0)
    assert after["emulator_proxy_bytes_total"] > before.get("emulator_proxy_bytes_total", 0)


def test_no_flows_switch(tmp_path_factory: pytest.TempPathFactory) -> None:
    emu = start_emulator(tmp_path_factory.mktemp("noflows") / "data", "--no-flows", "--no-proxy", "--gateway-https-port", "-1")
    try:
        with emu.client() as api:
            assert api.get(FLOWS).status_code == 404
    finally:
        emu.stop()


def test_cli_follows_new_flows(cluster: Cluster) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "emulator", "flows", "--server", cluster.emu.api_url, "-f", "--dns", "-o", "json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.0)  # started, and following (no backlog with -f alone)
        dns.query.udp(dns.message.make_query(f"follow.{NS}.svc.cluster.local", "A"), "127.0.0.1", port=cluster.emu.dns_port, timeout=3)
        assert follower.stdout is not None
        ready, _, _ = select.select([follower.stdout], [], [], 5)
        assert ready, "emulator flows -f printed nothing"
        line = follower.stdout.readline()
        assert json.loads(line)["dns"]["name"] == f"follow.{NS}.svc.cluster.local"
    finally:
        follower.kill()
        follower.communicate(timeout=10)
