"""Every example under examples/ run the way its README says, and checked against what the README promises.

The commands are not copied here: each README's ```sh blocks are read, and their `kubectl apply -f FILE`
lines are applied through the API (POST of each document) and their `emulator run ...` lines started as
subprocesses with `--server` pointed at a fresh test emulator (and `python3` replaced by this Python).
So a README whose commands stop working fails this test. The checks then look at what the README's
"What you will see" section shows: DNS answers (dnspython against the emulator's DNS port), round-robin
over the pods, the sidecar serving what the puller fetched, the ambassador reaching the database, the
adapter's Prometheus format, NodePort and LoadBalancer addresses, ExternalName CNAMEs.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.query
import dns.rdatatype
import httpx
import pytest
import yaml

from tests.conftest import ROOT, Emulator, start_emulator

EXAMPLES = ROOT / "examples"
ALL = ["clusterip", "nodeport", "loadbalancer", "externalname", "sidecar", "ambassador", "adapter"]
PLURALS = {"Service": "services", "Pod": "pods", "NetworkPolicy": "networkpolicies", "Namespace": "namespaces"}

T = TypeVar("T")


# --- reading a README -------------------------------------------------------------------------------


@dataclass
class Steps:
    """What a README tells the reader to run, in order."""

    manifests: list[Path] = field(default_factory=list)
    runs: list[list[str]] = field(default_factory=list)  # argv after `emulator run`

    @property
    def pod_names(self) -> list[str]:
        return [argv[argv.index("--name") + 1] for argv in self.runs]


def readme_steps(example: str) -> Steps:
    text = (EXAMPLES / example / "README.md").read_text()
    steps = Steps()
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip().removesuffix("&").strip()
            if line.startswith("kubectl apply -f "):
                steps.manifests.append(ROOT / line.split()[-1])
            elif line.startswith("emulator run "):
                steps.runs.append(shlex.split(line)[2:])
    return steps


def test_every_example_is_indexed_and_tested() -> None:
    """A new example directory must come with a test here and a line in examples/README.md."""
    found = sorted(p.name for p in EXAMPLES.iterdir() if (p / "README.md").exists() and (p / "manifests.yaml").exists())
    assert found == sorted(ALL)
    index = (EXAMPLES / "README.md").read_text()
    for name in ALL:
        assert f"({name}/)" in index or f"({name}/README.md)" in index, f"examples/README.md does not link {name}"
        steps = readme_steps(name)
        assert steps.manifests and all(p.exists() for p in steps.manifests), name
        assert steps.runs, f"{name}: its README starts no `emulator run`"
        for argv in steps.runs:
            command = argv[argv.index("--") + 1 :]
            scripts = [ROOT / word for word in command if word.endswith(".py")]
            assert scripts and all(s.exists() for s in scripts), f"{name}: {command}"


# --- running one ------------------------------------------------------------------------------------


@dataclass
class RunningExample:
    emu: Emulator
    api: httpx.Client
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # API paths of what apply() created

    def apply(self, manifest: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
        for doc in yaml.safe_load_all(manifest.read_text()):
            if not doc:
                continue
            if edit:
                edit(doc)
            namespace = doc["metadata"].get("namespace", "default")
            plural = PLURALS[doc["kind"]]
            path = f"/api/v1/namespaces/{namespace}/{plural}"
            if doc["apiVersion"].startswith("networking.k8s.io/"):
                path = f"/apis/{doc['apiVersion']}/namespaces/{namespace}/{plural}"
            response = self.api.post(path, json=doc)
            assert response.status_code == 201, response.text
            self.applied.append(f"{path}/{doc['metadata']['name']}")

    def delete_applied(self) -> None:
        for path in reversed(self.applied):
            self.api.delete(path)

    def start(self, run_args: list[str]) -> None:
        split = run_args.index("--")
        command = run_args[split + 1 :]
        if command[0] in ("python3", "python"):
            command = [sys.executable, *command[1:]]
        emulator_run = [sys.executable, "-m", "emulator", "run", "--server", self.emu.api_url]
        argv = [*emulator_run, *run_args[:split], "--", *command]
        name = run_args[run_args.index("--name") + 1]
        out = (self.logs / f"{name}.log").open("wb")
        # Its own session, so that clean-up can reach the containers of examples/common/pod.py too.
        self.procs.append(
            subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def wait_ready(self, pods: list[str], timeout: float = 15) -> None:
        def ready() -> bool:
            for pod in pods:
                response = self.api.get(f"/api/v1/namespaces/default/pods/{pod}")
                if response.status_code != 200:
                    return False
                conditions = response.json().get("status", {}).get("conditions") or []
                if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    return False
            return True

        eventually(ready, timeout, lambda: f"pods {pods} not Ready:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')}" for log in sorted(self.logs.glob("*.log"))
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left of the session (a container that ignored SIGTERM) goes too.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()

    # -- looking at the result --------------------------------------------------------------------

    def service(self, name: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/namespaces/default/services/{name}")
        assert response.status_code == 200, response.text
        return response.json()

    def dns(self, name: str, rdtype: str = "A") -> list[tuple[str, str]]:
        """(type, value) of every answer record, in order."""
        query = dns.message.make_query(name, rdtype)
        reply = dns.query.udp(query, "127.0.0.1", port=self.emu.dns_port, timeout=3)
        return [(dns.rdatatype.to_text(rrset.rdtype), item.to_text()) for rrset in reply.answer for item in rrset]

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET on a new connection, retried while a listener is still being bound."""
        return eventually(lambda: _get(url, **kwargs), 10, lambda: f"GET {url} failed:\n{self.output()}")


def _get(url: str, **kwargs: Any) -> httpx.Response | None:
    try:
        response = httpx.get(url, timeout=3, **kwargs)
    except httpx.TransportError:
        return None
    return response if response.status_code < 500 else None


def eventually(check: Callable[[], T | None], timeout: float, why: Callable[[], str]) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(why())
        time.sleep(0.05)


@pytest.fixture(scope="module")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator for all examples, as a user would run them: their names do not clash."""
    emu = start_emulator(tmp_path_factory.mktemp("examples") / "data", *private_ranges())
    yield emu
    emu.stop()


@pytest.fixture
def run_example(shared_emulator: Emulator, tmp_path: Path) -> Iterator[Callable[..., RunningExample]]:
    """run_example(name, edit=None): the example applied and started as its README says; undone afterwards."""
    started: list[RunningExample] = []

    def run(name: str, edit: Callable[[dict[str, Any]], None] | None = None) -> RunningExample:
        logs = tmp_path / "logs"
        logs.mkdir()
        running = RunningExample(shared_emulator, shared_emulator.client(), logs)
        started.append(running)
        steps = readme_steps(name)
        for manifest in steps.manifests:
            running.apply(manifest, edit)
        for run_args in steps.runs:
            running.start(run_args)
        running.wait_ready(steps.pod_names)
        return running

    yield run
    for running in started:
        running.stop()
        running.delete_applied()
        running.api.close()


def private_ranges() -> list[str]:
    """Address ranges of their own for this emulator. Loopback is shared by every emulator on the machine:
    with the default ranges, another one running (a developer's `make run`, a parallel test) holds the same
    first cluster IP and port, and our requests would reach its pods."""
    second = random.sample(range(160, 240), 3)
    kinds = ("--service-cidr", "--pod-cidr", "--lb-cidr")
    return [word for flag, octet in zip(kinds, second, strict=True) for word in (flag, f"127.{octet}.0.0/16")]


def pod_ip(running: RunningExample, pod: str) -> str:
    return running.api.get(f"/api/v1/namespaces/default/pods/{pod}").json()["status"]["podIP"]


def replies(url: str, count: int, running: RunningExample, **kwargs: Any) -> list[str]:
    return [running.get(url, **kwargs).text.strip() for _ in range(count)]


# --- the examples -----------------------------------------------------------------------------------


def test_clusterip(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("clusterip")
    cluster_ip = ex.service("echo")["spec"]["clusterIP"]
    assert ex.dns("echo.default.svc.cluster.local") == [("A", cluster_ip)]
    assert ex.dns("echo") == [("A", cluster_ip)]  # the short form the README's curl uses
    pods = {pod_ip(ex, "echo-1"), pod_ip(ex, "echo-2")}
    assert {value for _, value in ex.dns("echo-headless.default.svc.cluster.local")} == pods
    # round-robin: four requests, each pod twice, alternating
    seen = [r.split()[2] for r in replies(f"http://{cluster_ip}:8080/", 4, ex)]
    assert sorted(seen) == ["echo-1", "echo-1", "echo-2", "echo-2"] and seen[0] != seen[1], seen
    seen = [r.split()[2] for r in replies(f"http://127.0.0.1:{ex.emu.gateway_port}/", 2, ex, headers={"Host": "echo"})]
    assert sorted(seen) == ["echo-1", "echo-2"]


def test_nodeport(run_example: Callable[..., RunningExample]) -> None:
    fixed = 30080
    with socket.socket() as probe:  # another program on 30080: let the emulator pick the node port instead
        try:
            probe.bind(("127.0.0.1", fixed))
            free = True
        except OSError:
            free = False

    def allocate_if_busy(doc: dict[str, Any]) -> None:
        if not free:
            for port in doc["spec"]["ports"]:
                port.pop("nodePort", None)

    ex = run_example("nodeport", allocate_if_busy)
    spec = ex.service("hello-nodeport")["spec"]
    node_port = spec["ports"][0]["nodePort"]
    assert spec["type"] == "NodePort" and (node_port == fixed or not free)
    assert ex.get(f"http://127.0.0.1:{node_port}/").text.startswith("hello from hello-nodeport-1 ")
    assert ex.get(f"http://{spec['clusterIP']}:8080/").text.startswith("hello from hello-nodeport-1 ")


def test_loadbalancer(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("loadbalancer")

    def with_ingress() -> dict[str, Any] | None:
        svc = ex.service("hello-lb")
        return svc if svc.get("status", {}).get("loadBalancer", {}).get("ingress") else None

    svc = eventually(with_ingress, 5, lambda: "hello-lb has no status.loadBalancer.ingress")
    lb_ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert ipaddress.ip_address(lb_ip) in ipaddress.ip_network(ex.emu.args[ex.emu.args.index("--lb-cidr") + 1])
    seen = [r.split()[2] for r in replies(f"http://{lb_ip}:8080/", 2, ex)]
    assert sorted(seen) == ["hello-lb-1", "hello-lb-2"]
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert ex.get(f"http://127.0.0.1:{node_port}/").text.startswith("hello from hello-lb-")


def test_externalname(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("externalname")
    cluster_ip = ex.service("catalog")["spec"]["clusterIP"]
    assert ex.dns("products.default.svc.cluster.local") == [
        ("CNAME", "catalog.default.svc.cluster.local."),
        ("A", cluster_ip),
    ]
    assert ex.dns("search.default.svc.cluster.local", "CNAME") == [("CNAME", "www.example.com.")]
    # the alias leads to the catalog pod
    assert ex.get(f"http://{cluster_ip}:8080/").text.startswith("hello from catalog-1 ")
    env = ex.api.get("/emulator/v1/namespaces/default/pods/catalog-1/env").json()["env"]
    assert "CATALOG_SERVICE_HOST" in env and not any(k.startswith(("PRODUCTS_", "SEARCH_")) for k in env)


def test_sidecar_serves_what_the_puller_fetched(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("sidecar")
    page = (EXAMPLES / "sidecar" / "content" / "index.html").read_text()
    assert ex.get(f"http://{ex.service('origin')['spec']['clusterIP']}:8080/index.html").text == page
    site = ex.service("site")["spec"]["clusterIP"]
    # 404 until the puller's first copy lands in the shared directory, then the origin's page
    eventually(
        lambda: (r := _get(f"http://{site}:8080/")) is not None and r.text == page,
        10,
        lambda: f"site never served the origin's page:\n{ex.output()}",
    )
    via_gateway = ex.get(f"http://127.0.0.1:{ex.emu.gateway_port}/", headers={"Host": "site"})
    assert via_gateway.text == page
    assert "puller: pulled index.html from http://" in ex.output()


def test_ambassador_reaches_the_database(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("ambassador")
    gateway = f"http://127.0.0.1:{ex.emu.gateway_port}/"
    assert [ex.get(gateway, headers={"Host": "shop"}).text for _ in range(2)] == ["visits: 1\n", "visits: 2\n"]
    shop = ex.service("shop")["spec"]["clusterIP"]
    assert ex.get(f"http://{shop}:8080/").text == "visits: 3\n"
    # the count lives in the database pod behind the `db` service, as the README's nc shows
    ((_, db_ip),) = ex.dns("db")
    with socket.create_connection((db_ip, 6379), timeout=3) as conn:
        conn.sendall(b"GET visits\n")
        assert conn.makefile("rb").readline() == b"$3\n"
    assert f"ambassador: {pod_ip(ex, 'shop-1')}:6379 -> db service {db_ip}:6379" in ex.output()


PROMETHEUS_LINE = re.compile(r'(# (HELP|TYPE) app_[a-z_]+ .+|app_[a-z_]+\{pod="orders-1"\} [0-9.]+)')


def test_adapter_normalises_metrics(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("adapter")
    ((_, orders),) = ex.dns("orders")
    assert ex.get(f"http://{orders}:8080/orders").json() == [{"id": 1, "item": "teapot"}]
    failed = httpx.get(f"http://{orders}:8080/fail", timeout=3)
    assert failed.status_code == 500
    assert httpx.get(f"http://{pod_ip(ex, 'orders-1')}:8000/stats").text.startswith("STATS requests=2 errors=1 ")
    metrics = ex.get(f"http://{orders}:9102/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = metrics.text.splitlines()
    assert lines and all(PROMETHEUS_LINE.fullmatch(line) for line in lines), lines
    assert 'app_requests_total{pod="orders-1"} 2' in lines
    assert 'app_errors_total{pod="orders-1"} 1' in lines
    assert "# TYPE app_uptime_seconds gauge" in lines
    gateway = ex.get(f"http://127.0.0.1:{ex.emu.gateway_port}/metrics", headers={"Host": "orders:9102"})
    assert 'app_requests_total{pod="orders-1"} 2' in gateway.text.splitlines()
