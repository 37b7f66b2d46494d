"""pods/portforward with real kubectl 1.32 and the Python client: SPDY tunneled in a WebSocket (kubectl's
default), the plain SPDY upgrade (its fallback) and the Python client's WebSocket channels; to a pod, a
Deployment and a Service; a refused port reported as the kubelet reports it.

The pods here bring their own address (status.podIP in the pod range, never run by the kubelet) and the test
serves HTTP on it from a thread; one pod runs under the kubelet to show the same works for a process it
started. Addresses that are no pod's (loopback outside the pod range, link-local, ...) are refused."""

from __future__ import annotations

import http.server
import ipaddress
import os
import random
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.stream import portforward

from api.portforward import undialable
from tests.conftest import Emulator
from tests.integration.kubectl_support import Kubectl, manifest
from tests.integration.test_kubelet import kubectl_for, start_kubelet, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_kubelet(tmp_path_factory.mktemp("pf-data"), "--allow-anonymous")
    yield emulator
    emulator.stop(timeout=30)


@pytest.fixture(scope="module")
def kubectl(emu: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_for(emu, tmp_path_factory.mktemp("kubectl-home"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = (f"hello from {self.server.server_address[0]!s}{self.path}\n").encode()  # type: ignore[index]
        if self.path == "/big":
            body = b"x" * 1_000_000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def served_ip() -> Iterator[tuple[str, int]]:
    """An HTTP server on a fresh address of the pod range (the address a pod record will claim): the lower
    half of 127.244.0.0/16, which the emulator leaves to requested addresses."""
    ip = str(ipaddress.ip_address("127.244.1.0") + random.randrange(1, 32000))
    server = http.server.ThreadingHTTPServer((ip, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ip, server.server_address[1]
    server.shutdown()
    server.server_close()


def pod_with_ip(ns: str, name: str, ip: str, port: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": name}},
        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": port}]}]},
        "status": {"podIP": ip},
    }


def create(emu: Emulator, path: str, obj: dict[str, Any]) -> None:
    with emu.client() as api:
        response = api.post(path, json=obj)
    assert response.status_code == 201, response.text


class PortForward:
    """`kubectl port-forward TARGET :PORT...` in the background; the local ports it chose."""

    def __init__(self, kubectl: Kubectl, ns: str, target: str, *ports: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            kubectl.argv("-n", ns, "port-forward", target, *ports), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, **(env or {})},
        )
        self.local: list[int] = []
        assert self.proc.stdout is not None
        while len(self.local) < len(ports):
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("port-forward ended: " + (self.proc.stderr.read() if self.proc.stderr else ""))
            if match := re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line):
                self.local.append(int(match.group(1)))

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        return err


def test_kubectl_port_forward_to_a_pod_a_deployment_and_a_service(emu: Emulator, kubectl: Kubectl, ns: str, served_ip: tuple[str, int]) -> None:
    ip, port = served_ip
    create(emu, f"/api/v1/namespaces/{ns}/pods", pod_with_ip(ns, "web", ip, port))
    kubectl.run("-n", ns, "create", "service", "clusterip", "web", f"--tcp=80:{port}")
    for target, remote in (("pod/web", port), ("service/web", 80)):
        forward = PortForward(kubectl, ns, target, f":{remote}")
        try:
            for _ in range(3):  # one connection after another over the same session
                answer = httpx.get(f"http://127.0.0.1:{forward.local[0]}/x", timeout=10)
                assert answer.text == f"hello from {ip}/x\n"
            big = httpx.get(f"http://127.0.0.1:{forward.local[0]}/big", timeout=10)
            assert len(big.content) == 1_000_000
        finally:
            forward.stop()


def test_kubectl_port_forward_to_a_deployment_run_by_the_kubelet(emu: Emulator, kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    port = random.randrange(20000, 40000)
    path = manifest(tmp_path, f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app}}
spec:
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      containers:
      - name: app
        image: python
        command: [python3, -m, http.server, "{port}", --bind, $(POD_IP)]
        env: [{{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}]
        ports: [{{containerPort: {port}}}]
        readinessProbe: {{tcpSocket: {{port: {port}}}, periodSeconds: 1}}
""")
    kubectl.run("-n", ns, "apply", "-f", path)
    kubectl.run("-n", ns, "rollout", "status", "deployment/app", "--timeout=60s", timeout=70)
    forward = PortForward(kubectl, ns, "deployment/app", f":{port}")
    try:
        answer = wait_for(lambda: _get(f"http://127.0.0.1:{forward.local[0]}/"), 20, "the forwarded server")
        assert "Directory listing" in answer
    finally:
        forward.stop()
    kubectl.run("-n", ns, "delete", "deployment", "app", "--wait=false")


def _get(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return None


def test_the_spdy_fallback_and_a_refused_port(emu: Emulator, kubectl: Kubectl, ns: str, served_ip: tuple[str, int]) -> None:
    ip, port = served_ip
    create(emu, f"/api/v1/namespaces/{ns}/pods", pod_with_ip(ns, "web", ip, port))
    closed = _closed_port(ip)
    # the plain `Upgrade: SPDY/3.1` kubectl falls back to when a WebSocket is refused
    forward = PortForward(kubectl, ns, "pod/web", f":{port}", f":{closed}", env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"})
    try:
        assert httpx.get(f"http://127.0.0.1:{forward.local[0]}/spdy", timeout=10).text == f"hello from {ip}/spdy\n"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{forward.local[1]}/", timeout=10)
        deadline = time.monotonic() + 10
        while forward.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # kubectl 1.32 gives up on an error from the pod ("lost connection to pod")
    finally:
        err = forward.stop()
    assert f"an error occurred forwarding {forward.local[1]} -> {closed}: error forwarding port {closed} to pod web" in err
    assert "connect: connection refused" in err


def _closed_port(ip: str) -> int:
    with socket.socket() as probe:
        probe.bind((ip, 0))
        return int(probe.getsockname()[1])  # bound, never listened: refused


def test_the_python_clients_port_forward(emu: Emulator, ns: str, served_ip: tuple[str, int]) -> None:
    ip, port = served_ip
    create(emu, f"/api/v1/namespaces/{ns}/pods", pod_with_ip(ns, "web", ip, port))
    configuration = k8s.Configuration()
    configuration.host = emu.api_url
    api = k8s.CoreV1Api(k8s.ApiClient(configuration))
    closed = _closed_port(ip)
    forward = portforward(api.connect_get_namespaced_pod_portforward, "web", ns, ports=f"{port},{closed}")
    sock = forward.socket(port)
    sock.setblocking(True)
    sock.sendall(b"GET /py HTTP/1.0\r\n\r\n")
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    assert received.endswith(f"hello from {ip}/py\n".encode())
    refused = forward.socket(closed)
    refused.setblocking(True)
    assert refused.recv(1024) == b""
    assert "connection refused" in (forward.error(closed) or "")
    sock.close()
    refused.close()


def test_a_pod_without_an_address_and_a_plain_request_are_refused(emu: Emulator, ns: str) -> None:
    with emu.client() as api:
        missing = api.get(f"/api/v1/namespaces/{ns}/pods/nope/portforward?ports=80")
        assert missing.status_code == 404
        create(emu, f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"},
            "spec": {"containers": [{"name": "c", "image": "unmapped-image"}], "nodeName": "elsewhere"},
        })
        plain = api.post(f"/api/v1/namespaces/{ns}/pods/pending/portforward?ports=80")
        assert plain.status_code == 400


def test_only_pod_addresses_are_dialled() -> None:
    pods = ipaddress.IPv4Network("127.244.0.0/16")
    for fine in ("127.244.3.4", "172.18.0.2", "10.1.2.3", "192.168.5.6", "8.8.8.8", "fd00::5"):
        assert undialable(fine, pods) is None, fine
    for refused, why in (
        ("127.0.0.1", "not a pod address (outside --pod-cidr 127.244.0.0/16)"),
        ("127.96.0.10", "outside --pod-cidr"), ("::1", "outside --pod-cidr"), ("::ffff:127.0.0.1", "outside --pod-cidr"),
        ("169.254.169.254", "is link-local"), ("fe80::1", "is link-local"), ("0.0.0.0", "is unspecified"), ("::", "is unspecified"),
        ("224.0.0.1", "is multicast"), ("255.255.255.255", "is reserved"), ("0.1.2.3", "in 0.0.0.0/8"),
        ("localhost", "not an IP address"), ("::7ff4:1", "is reserved"),
    ):
        assert why in (undialable(refused, pods) or ""), refused
    assert undialable("::ffff:127.244.0.9", pods) is None


def test_a_loopback_address_outside_the_pod_range_is_refused(emu: Emulator, kubectl: Kubectl, ns: str) -> None:
    """A pod claiming 127.0.0.1 (the node address, as a hostNetwork pod has) would reach the host's own
    loopback services: kubectl says why it cannot forward, and so does the API."""
    create(emu, f"/api/v1/namespaces/{ns}/pods", pod_with_ip(ns, "host", "127.0.0.1", 22))
    wanted = 'port-forward to pod "host" refused: its address 127.0.0.1 is not a pod address (outside --pod-cidr 127.244.0.0/16)'
    for env in ({}, {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}):
        done = subprocess.run(
            kubectl.argv("-n", ns, "port-forward", "pod/host", ":22"), capture_output=True, text=True, timeout=30,
            env={**os.environ, **env},
        )
        assert done.returncode != 0 and wanted in done.stderr, done.stderr
    with emu.client() as api:
        answer = api.get(f"/api/v1/namespaces/{ns}/pods/host/portforward?ports=22")
    assert answer.status_code == 403 and wanted in answer.json()["message"]
