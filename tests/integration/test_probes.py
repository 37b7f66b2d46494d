"""Probes of pods that run (`emulator serve --kubelet`): readiness decides Ready and the Service's
endpoints, liveness failures restart the container, a startup probe holds readiness back, and the
tcpSocket, exec and gRPC handlers against real servers run as the pods' containers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import Emulator, start_emulator

T = TypeVar("T")

PYTHON = sys.executable
GRPC_SERVER = str(Path(__file__).with_name("probe_grpc_server.py"))
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("probes-data"), "--kubelet", "--allow-anonymous")
    yield emulator
    emulator.stop()


@pytest.fixture
def api(emu: Emulator, request: pytest.FixtureRequest) -> Iterator[Client]:
    name = request.node.name.lower().removeprefix("test_").replace("_", "-")[:50].strip("-")
    with emu.client() as http:
        response = http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
        assert response.status_code == 201, response.text
        yield Client(http, name)
        http.delete(f"/api/v1/namespaces/{name}")


class Client:
    def __init__(self, http: httpx.Client, ns: str) -> None:
        self.http, self.ns = http, ns

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(f"/api/v1/namespaces/{self.ns}/{plural}", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get(self, plural: str, name: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/namespaces/{self.ns}/{plural}/{name}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def pod(self, name: str) -> dict[str, Any]:
        return self.get("pods", name)

    def events(self, pod: str) -> list[tuple[str, str]]:
        response = self.http.get(
            f"/api/v1/namespaces/{self.ns}/events", params={"fieldSelector": f"involvedObject.name={pod}"}
        )
        assert response.status_code == 200, response.text
        return [(e["reason"], e["message"]) for e in response.json()["items"]]


def wait_for(what: Callable[[], T], timeout: float = 30.0, message: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting: {message}"
        time.sleep(0.2)


def condition(pod: dict[str, Any], kind: str) -> str | None:
    for c in pod.get("status", {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return None


def container_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def pod(name: str, container: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [{"name": "app", "image": "local", **container}]},
    }


def http_server(delay: float = 0) -> dict[str, Any]:
    """A container serving HTTP on its pod's IP, port 8080 (named `http`), after `delay` seconds."""
    script = f"sleep {delay}; exec {PYTHON} -m http.server 8080 --bind $POD_IP"
    return {
        "command": ["sh", "-c", script],
        "env": [POD_IP_ENV],
        "ports": [{"name": "http", "containerPort": 8080}],
    }


def test_http_readiness_decides_ready_and_the_endpoints(api: Client) -> None:
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    api.create("pods", pod("web", {**http_server(delay=4), "readinessProbe": probe}, {"app": "web"}))
    api.create(
        "services",
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )
    running = wait_for(
        lambda: (p := api.pod("web")).get("status", {}).get("phase") == "Running" and p, message="running"
    )
    ip = running["status"]["podIP"]
    assert condition(running, "Ready") == "False"
    assert container_status(running)["ready"] is False

    def addresses(field: str) -> list[str]:
        subsets = api.get("endpoints", "web").get("subsets") or []
        return [a["ip"] for s in subsets for a in s.get(field) or []]

    wait_for(lambda: addresses("notReadyAddresses") == [ip], message="not ready in the endpoints")
    refused = wait_for(lambda: [m for r, m in api.events("web") if r == "Unhealthy"], message="Unhealthy")
    assert refused[0].startswith(
        f'Readiness probe failed: Get "http://{ip}:8080/": dial tcp {ip}:8080: connect: connection refused'
    )

    ready = wait_for(lambda: condition(p := api.pod("web"), "Ready") == "True" and p, message="ready")
    assert container_status(ready)["ready"] is True and condition(ready, "ContainersReady") == "True"
    wait_for(lambda: addresses("addresses") == [ip], message="ready in the endpoints")


def test_liveness_failure_restarts_the_container(api: Client) -> None:
    probe = {"httpGet": {"path": "/missing", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    api.create("pods", pod("crashy", {**http_server(), "livenessProbe": probe}))
    restarted = wait_for(lambda: container_status(p := api.pod("crashy")).get("restartCount", 0) >= 1 and p, timeout=40)
    assert restarted["status"]["phase"] == "Running"
    events = api.events("crashy")
    assert ("Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 404") in events
    assert ("Killing", "Container app failed liveness probe, will be restarted") in events
    last = container_status(restarted).get("lastState", {}).get("terminated")
    assert last is not None


def test_startup_probe_holds_readiness_back(api: Client, tmp_path: Path) -> None:
    mark = tmp_path / "started"
    container = {
        "command": ["sh", "-c", f"sleep 3; touch {mark}; exec sleep 3600"],
        "startupProbe": {"exec": {"command": ["test", "-e", str(mark)]}, "periodSeconds": 1, "failureThreshold": 30},
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
    }
    api.create("pods", pod("slow", container))
    running = wait_for(lambda: (p := api.pod("slow")).get("status", {}).get("phase") == "Running" and p)
    status = container_status(running)
    assert status.get("started") is False and status["ready"] is False
    assert not mark.exists()
    ready = wait_for(lambda: condition(p := api.pod("slow"), "Ready") == "True" and p, message="ready")
    assert mark.exists()
    assert container_status(ready)["started"] is True


def test_tcp_readiness_and_exec_liveness(api: Client) -> None:
    container = {
        **http_server(delay=2),
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
        "livenessProbe": {"exec": {"command": ["sh", "-c", "exit 0"]}, "periodSeconds": 1},
    }
    api.create("pods", pod("tcp", container))
    wait_for(lambda: condition(api.pod("tcp"), "Ready") == "True", message="ready")
    time.sleep(2)
    assert container_status(api.pod("tcp"))["restartCount"] == 0
    unhealthy = [m for r, m in api.events("tcp") if r == "Unhealthy"]
    assert all(m.startswith("Readiness probe failed: dial tcp ") for m in unhealthy), unhealthy


def test_exec_liveness_failure_restarts(api: Client) -> None:
    container = {
        "command": ["sleep", "3600"],
        "livenessProbe": {
            "exec": {"command": ["sh", "-c", "echo sick; exit 1"]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }
    api.create("pods", pod("sick", container))
    wait_for(lambda: container_status(api.pod("sick")).get("restartCount", 0) >= 1, timeout=40, message="restart")
    assert ("Unhealthy", "Liveness probe failed: sick\n") in api.events("sick")


def test_grpc_readiness(api: Client) -> None:
    pytest.importorskip("grpc_health")
    container = {
        "command": [PYTHON, GRPC_SERVER],
        "env": [POD_IP_ENV, {"name": "PORT", "value": "9000"}, {"name": "WARMUP", "value": "3"}],
        "ports": [{"name": "grpc", "containerPort": 9000}],
        "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 1},
    }
    api.create("pods", pod("grpc", container))
    wait_for(lambda: api.pod("grpc").get("status", {}).get("phase") == "Running", message="running")
    unhealthy = wait_for(lambda: [m for r, m in api.events("grpc") if r == "Unhealthy"], message="Unhealthy")
    assert any('responded with "NOT_SERVING"' in m or "failed to connect" in m for m in unhealthy), unhealthy
    wait_for(lambda: condition(api.pod("grpc"), "Ready") == "True", message="ready")


def test_liveness_and_readiness_wait_for_the_startup_probe(api: Client, tmp_path: Path) -> None:
    # The server starts at ~3 s; "started" is said once it accepts connections (however slowly Python
    # starts on a busy machine). Were liveness probed before the startup probe passed, its failureThreshold
    # of 1 would restart the container at once.
    mark = tmp_path / "started"
    accepts = f"{PYTHON} -c \"import os, socket; socket.create_connection((os.environ['POD_IP'], 8080), 1)\""
    script = f"sleep 3; {PYTHON} -m http.server 8080 --bind $POD_IP & until {accepts} 2>/dev/null; do sleep 0.2; done; touch {mark}; wait"
    container = {
        "command": ["sh", "-c", script],
        "env": [POD_IP_ENV],
        "ports": [{"name": "http", "containerPort": 8080}],
        "startupProbe": {"exec": {"command": ["test", "-e", str(mark)]}, "periodSeconds": 1, "failureThreshold": 30},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
        "readinessProbe": {"httpGet": {"port": "http"}, "periodSeconds": 1},
    }
    api.create("pods", pod("gated", container))
    wait_for(lambda: condition(api.pod("gated"), "Ready") == "True", message="ready")
    time.sleep(1.5)
    assert container_status(api.pod("gated"))["restartCount"] == 0
    unhealthy = [m for r, m in api.events("gated") if r == "Unhealthy"]
    assert unhealthy and all(m.startswith("Startup probe failed: ") for m in unhealthy), unhealthy


def test_a_probes_own_grace_period_bounds_the_kill(api: Client) -> None:
    # The container ignores SIGTERM; the pod allows 60 s, the liveness probe 1 s: it is killed within it.
    container = {
        "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"],
        "livenessProbe": {
            "exec": {"command": ["false"]},
            "periodSeconds": 1,
            "failureThreshold": 1,
            "terminationGracePeriodSeconds": 1,
        },
    }
    body = pod("stubborn", container)
    body["spec"]["terminationGracePeriodSeconds"] = 60
    api.create("pods", body)
    try:
        wait_for(lambda: any(r == "Killing" for r, _ in api.events("stubborn")), message="Killing")
        started = time.monotonic()
        wait_for(
            lambda: container_status(api.pod("stubborn")).get("restartCount", 0) >= 1, timeout=15, message="restart"
        )
        assert time.monotonic() - started < 10
    finally:
        api.http.delete(f"/api/v1/namespaces/{api.ns}/pods/stubborn", params={"gracePeriodSeconds": "0"})
