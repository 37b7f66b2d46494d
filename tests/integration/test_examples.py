"""Every example under examples/ run the way its README says, and checked against what the README promises.

The commands are not copied here: each README's ```sh blocks are read. Their `make run ARGS="..."` (or
`emulator serve ...`) line gives the flags of the test emulator the example runs on (one per distinct
set of flags, shared by the examples that agree: the service examples on a plain one, the kubelet
examples on one with `--image-map examples/images.yaml`); their `kubectl apply -f FILE` lines are run
with real kubectl; their `emulator run ...` lines are started as subprocesses with `--server` pointed
at that emulator (and `python3` replaced by this Python). So a README whose commands stop working fails
this test. The checks then look at what the README's "What you will see" section shows: DNS answers
(dnspython against the emulator's DNS port), round-robin over the pods, the sidecar serving what the
puller fetched, the ambassador reaching the database, the adapter's Prometheus format, `kubectl get pods`
showing 2/2 Ready, `kubectl logs -c` of each container, NodePort and LoadBalancer addresses,
ExternalName CNAMEs. Every process the kubelet started stops with its emulator (SIGTERM).
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

from emulator.kubelet.images import ImageMap
from emulator.security import kubeconfig
from tests.conftest import ROOT, Emulator, require_tool, start_emulator
from tests.integration.kubectl_support import Kubectl

EXAMPLES = ROOT / "examples"
ALL = ["clusterip", "nodeport", "loadbalancer", "externalname", "ingress", "canary", "sidecar", "ambassador", "adapter"]
KUBELET_EXAMPLES = ["sidecar", "ambassador", "adapter"]  # pods with commands, run by the emulator's kubelet

pytestmark = pytest.mark.timeout(180)

T = TypeVar("T")


# --- reading a README -------------------------------------------------------------------------------


@dataclass
class Steps:
    """What a README tells the reader to run, in order."""

    serve: list[str] = field(default_factory=list)  # the flags of `make run ARGS=...` / `emulator serve`
    manifests: list[Path] = field(default_factory=list)
    runs: list[list[str]] = field(default_factory=list)  # argv after `emulator run`

    @property
    def pod_names(self) -> list[str]:
        return [argv[argv.index("--name") + 1] for argv in self.runs]

    def documents(self) -> list[dict[str, Any]]:
        return [doc for path in self.manifests for doc in yaml.safe_load_all(path.read_text()) if doc]

    def workloads(self) -> list[dict[str, Any]]:
        """The Deployments (and bare Pods) of the manifests: what the kubelet is to run."""
        return [doc for doc in self.documents() if doc["kind"] in ("Deployment", "Pod")]

    def image_map(self) -> ImageMap:
        flag = "--image-map"
        return ImageMap.load(ROOT / self.serve[self.serve.index(flag) + 1]) if flag in self.serve else ImageMap()


def readme_steps(example: str) -> Steps:
    text = (EXAMPLES / example / "README.md").read_text()
    steps = Steps()
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip().removesuffix("&").strip()
            if line.startswith("make run "):
                words = shlex.split(line)
                steps.serve = [flag for w in words[2:] if w.startswith("ARGS=") for flag in shlex.split(w[5:])]
            elif line.startswith("emulator serve"):
                steps.serve = shlex.split(line)[2:]
            elif line.startswith("kubectl apply -f "):
                steps.manifests.append(ROOT / line.split()[-1])
            elif line.startswith("emulator run "):
                steps.runs.append(shlex.split(line)[2:])
    return steps


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]
    return spec["template"]["spec"] if workload["kind"] == "Deployment" else spec


def test_every_example_is_indexed_and_tested() -> None:
    """A new example directory must come with a test here and a line in examples/README.md; what each README
    starts must exist: the scripts of its `emulator run` lines, or for the kubelet examples containers whose
    commands name existing scripts and whose image the README's image map maps (so they run)."""
    found = sorted(p.name for p in EXAMPLES.iterdir() if (p / "README.md").exists() and (p / "manifests.yaml").exists())
    assert found == sorted(ALL)
    index = (EXAMPLES / "README.md").read_text()
    for name in ALL:
        assert f"({name}/)" in index or f"({name}/README.md)" in index, f"examples/README.md does not link {name}"
        steps = readme_steps(name)
        assert steps.manifests and all(p.exists() for p in steps.manifests), name
        commands = [argv[argv.index("--") + 1 :] for argv in steps.runs]
        if name in KUBELET_EXAMPLES:
            assert not steps.runs, f"{name}: the kubelet runs its containers; its README starts no `emulator run`"
            images = steps.image_map()
            containers = [c for w in steps.workloads() for c in pod_spec(w)["containers"]]
            assert any(len(pod_spec(w)["containers"]) >= 2 for w in steps.workloads()), f"{name}: no multi-container pod"
            for container in containers:
                assert container.get("command"), f"{name}: container {container['name']} has no command"
                assert images.lookup(container["image"]), f"{name}: the README's image map does not map {container['image']}"
            commands = [c["command"] for c in containers]
        else:
            assert steps.runs, f"{name}: its README starts no `emulator run` (and its manifests run nothing)"
        for command in commands:
            scripts = [ROOT / word for word in command if word.endswith(".py")]
            assert scripts and all(s.exists() for s in scripts), f"{name}: {command}"
    every_text = "\n".join(p.read_text() for p in EXAMPLES.rglob("*") if p.suffix in (".md", ".py", ".yaml"))
    assert "common/pod.py" not in every_text  # the kubelet runs multi-container pods now


# --- running one ------------------------------------------------------------------------------------


@dataclass
class RunningExample:
    emu: Emulator
    api: httpx.Client
    kubectl: Kubectl
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # the YAML of what apply() applied, to delete it again

    def apply(self, manifest: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
        """`kubectl apply -f manifest`, as the README says (the documents edited first when `edit` is given)."""
        docs = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
        if edit:
            for doc in docs:
                edit(doc)
        text = yaml.safe_dump_all(docs) if edit else manifest.read_text()
        self.kubectl.run("apply", "-f", "-", stdin=text)
        self.applied.append(text)

    def delete_applied(self) -> None:
        for text in reversed(self.applied):
            self.kubectl.run("delete", "-f", "-", "--ignore-not-found", "--wait=true", stdin=text, ok=False, timeout=60)

    def start(self, run_args: list[str]) -> None:
        split = run_args.index("--")
        command = run_args[split + 1 :]
        if command[0] in ("python3", "python"):
            command = [sys.executable, *command[1:]]
        emulator_run = [sys.executable, "-m", "emulator", "run", "--server", self.emu.api_url]
        argv = [*emulator_run, *run_args[:split], "--", *command]
        name = run_args[run_args.index("--name") + 1]
        out = (self.logs / f"{name}.log").open("wb")
        # Its own session, so that clean-up reaches whatever the command started too.
        self.procs.append(
            subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def wait_ready(self, pods: list[str], timeout: float = 15) -> None:
        def ready() -> bool:
            for pod in pods:
                response = self.api.get(f"/api/v1/namespaces/default/pods/{pod}")
                if response.status_code != 200 or not is_ready(response.json()):
                    return False
            return True

        eventually(ready, timeout, lambda: f"pods {pods} not Ready:\n{self.output()}")

    def wait_workloads(self, workloads: list[dict[str, Any]], timeout: float = 60) -> None:
        """Every Deployment's replicas (every bare Pod) running and Ready, all its containers ready."""

        def ready() -> bool:
            for workload in workloads:
                if workload["kind"] == "Pod":
                    found = [self.pod(workload["metadata"]["name"])]
                else:
                    found = self.pods(workload["spec"]["selector"]["matchLabels"])
                    if len(found) != workload["spec"].get("replicas", 1):
                        return False
                if not all(is_ready(pod) for pod in found):
                    return False
            return True

        eventually(ready, timeout, lambda: f"{[w['metadata']['name'] for w in workloads]} not Ready:\n{self.output()}")

    def pods(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        response = self.api.get("/api/v1/namespaces/default/pods", params={"labelSelector": selector})
        return [p for p in response.json()["items"] if not p["metadata"].get("deletionTimestamp")]

    def pod(self, name: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/namespaces/default/pods/{name}")
        assert response.status_code == 200, response.text
        return response.json()

    def only_pod(self, app: str) -> dict[str, Any]:
        (pod,) = self.pods({"app": app})
        return pod

    def output(self) -> str:
        """What went on, for a failure's message: the `emulator run` processes' output, the pods, their logs."""
        runs = [f"--- {log.name}\n{log.read_text(errors='replace')}" for log in sorted(self.logs.glob("*.log"))]
        pods = self.kubectl.run("get", "pods", "-o", "wide", ok=False, timeout=10)
        events = self.kubectl.run("get", "events", ok=False, timeout=10)
        logs = self.kubectl.run("logs", "-l", "app", "--all-containers", "--prefix", "--tail=20", ok=False, timeout=10)
        return "\n".join([*runs, pods.stdout + pods.stderr, events.stdout, logs.stdout + logs.stderr])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left of the session (a process that ignored SIGTERM) goes too.
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


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


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


@dataclass
class Started:
    emu: Emulator
    kubectl: Kubectl


@pytest.fixture(scope="module")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[list[str]], Started]]:
    """emulators(flags): an emulator started with the README's flags (and a kubectl for it), one per distinct
    set of flags, shared by the examples that agree, as a user would run them: their names do not clash."""
    binary = require_tool("kubectl")
    started: dict[tuple[str, ...], Started] = {}

    def get(flags: list[str]) -> Started:
        key = tuple(flags)
        if key not in started:
            home = tmp_path_factory.mktemp("examples")
            emu = start_emulator(home / "data", *private_ranges(), *flags)
            assert "auth" not in emu.faces, f"{flags}: the examples' READMEs run the API open on loopback"
            kubeconfig.write(home / "config", emu.api_url, use=True)
            started[key] = Started(emu, Kubectl(binary, home / "config", home / "cache"))
        return started[key]

    yield get
    for each in started.values():
        each.emu.stop(timeout=30)  # the kubelet stops its containers (SIGTERM, grace, SIGKILL) before it exits


@pytest.fixture
def run_example(
    emulators: Callable[[list[str]], Started], tmp_path: Path
) -> Iterator[Callable[..., RunningExample]]:
    """run_example(name, edit=None): the example applied and started as its README says; undone afterwards."""
    started: list[RunningExample] = []

    def run(name: str, edit: Callable[[dict[str, Any]], None] | None = None) -> RunningExample:
        logs = tmp_path / "logs"
        logs.mkdir()
        steps = readme_steps(name)
        emulator = emulators(steps.serve)
        running = RunningExample(emulator.emu, emulator.emu.client(), emulator.kubectl, logs)
        started.append(running)
        for manifest in steps.manifests:
            running.apply(manifest, edit)
        for run_args in steps.runs:
            running.start(run_args)
        running.wait_ready(steps.pod_names)
        running.wait_workloads(steps.workloads())
        return running

    yield run
    for running in started:
        running.stop()
        running.delete_applied()
        running.api.close()


def private_ranges() -> list[str]:
    """Address ranges of their own for this emulator. Loopback is shared by every emulator on the machine:
    with the default ranges, another one running (a developer's `make run`, a parallel test) holds the same
    first cluster IP and port, and our requests would reach its pods. The node's address (NodePorts) is
    one of its own for the same reason: a NodePort service of `make run` holds 127.0.0.1:30000."""
    second = random.sample(range(160, 240), 4)
    kinds = ("--service-cidr", "--pod-cidr", "--lb-cidr")
    ranges = [word for flag, octet in zip(kinds, second[:3], strict=True) for word in (flag, f"127.{octet}.0.0/16")]
    return [*ranges, "--node-address", f"127.{second[3]}.0.1"]


def node_address(running: RunningExample) -> str:
    return running.emu.args[running.emu.args.index("--node-address") + 1]


def pod_ip(running: RunningExample, pod: str) -> str:
    return running.api.get(f"/api/v1/namespaces/default/pods/{pod}").json()["status"]["podIP"]


def replies(url: str, count: int, running: RunningExample, **kwargs: Any) -> list[str]:
    """`count` answers over one keep-alive client (the proxy balances each request); the first retried while a
    listener is still being bound."""
    first = running.get(url, **kwargs).text.strip()
    with httpx.Client(timeout=3) as client:  # one SSL context
        rest = [client.get(url, **kwargs) for _ in range(count - 1)]
    assert all(r.status_code < 500 for r in rest), [r.status_code for r in rest]
    return [first, *(r.text.strip() for r in rest)]


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


def test_ingress(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("ingress")
    gateway = f"http://127.0.0.1:{ex.emu.gateway_port}"

    def addressed() -> bool:
        status = ex.api.get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/shop").json().get("status") or {}
        return status.get("loadBalancer", {}).get("ingress") == [{"ip": "127.0.0.1"}]

    eventually(addressed, 5, lambda: "the Ingress has no address")
    host = {"Host": f"shop.localhost:{ex.emu.gateway_port}"}
    assert ex.get(f"{gateway}/", headers=host).text.startswith("hello from storefront-1 ")
    assert ex.get(f"{gateway}/api/orders", headers=host).text.startswith("hello from api-1 ")
    assert ex.get(f"{gateway}/apis", headers=host).text.startswith("hello from storefront-1 ")  # element-wise prefix
    assert ex.dns("shop.localhost") == [("A", "127.0.0.1")]
    assert ex.get(f"{gateway}/", headers={"Host": "nobody.localhost"}).status_code == 404


def test_canary(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("canary")
    gateway = f"http://127.0.0.1:{ex.emu.gateway_port}"

    def programmed() -> bool:
        status = ex.api.get("/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/web").json().get("status") or {}
        return any(c["type"] == "Programmed" and c["status"] == "True" for c in status.get("conditions", []))

    eventually(programmed, 5, lambda: "the Gateway is not Programmed")
    host = {"Host": "canary.localhost"}
    seen = [r.split()[2] for r in replies(f"{gateway}/", 400, ex, headers=host)]
    canary = seen.count("web-v2-1")
    assert set(seen) == {"web-v1-1", "web-v2-1"}
    assert 40 - 4 * 6 <= canary <= 40 + 4 * 6, canary  # 10 % of 400 within 4 sigma (sigma = 6)
    assert ex.get(f"{gateway}/", headers={**host, "X-Canary": "always"}).text.startswith("hello from web-v2-1 ")
    route = ex.api.get("/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/web").json()
    conditions = {c["type"]: c["status"] for c in route["status"]["parents"][0]["conditions"]}
    assert conditions["Accepted"] == conditions["ResolvedRefs"] == "True"


def test_nodeport(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("nodeport")  # the node's address is the emulator's own: the README's 30080 is free
    spec = ex.service("hello-nodeport")["spec"]
    node_port = spec["ports"][0]["nodePort"]
    assert spec["type"] == "NodePort" and node_port == 30080
    assert ex.get(f"http://{node_address(ex)}:{node_port}/").text.startswith("hello from hello-nodeport-1 ")
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
    assert ex.get(f"http://{node_address(ex)}:{node_port}/").text.startswith("hello from hello-lb-")


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


def kubelet_pod(ex: RunningExample, app: str, containers: int) -> dict[str, Any]:
    """The one pod of Deployment `app`, as `kubectl get pods` shows it: `containers`/`containers` Ready, Running."""
    pod = ex.only_pod(app)
    name = pod["metadata"]["name"]
    assert name.startswith(f"{app}-")
    assert len(pod["spec"]["containers"]) == containers
    table = ex.kubectl.out("get", "pods", name, "--no-headers").split()
    assert table[:3] == [name, f"{containers}/{containers}", "Running"], table
    return pod


def test_sidecar_serves_what_the_puller_fetched(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("sidecar")
    site = kubelet_pod(ex, "site", 2)
    kubelet_pod(ex, "origin", 1)
    page = (EXAMPLES / "sidecar" / "content" / "index.html").read_text()
    assert ex.get(f"http://{ex.service('origin')['spec']['clusterIP']}:8080/index.html").text == page
    # Ready only once the puller's first copy landed in the shared volume (the web container's probe): so
    # the page is there at once, through the service and through the gateway
    assert ex.get(f"http://{ex.service('site')['spec']['clusterIP']}:8080/").text == page
    via_gateway = ex.get(f"http://127.0.0.1:{ex.emu.gateway_port}/", headers={"Host": "site"})
    assert via_gateway.text == page
    origin_ip = ex.service("origin")["spec"]["clusterIP"]
    puller = ex.kubectl.out("logs", "deployment/site", "-c", "puller")
    assert f"puller: pulled index.html from http://{origin_ip}:8080" in puller
    web = ex.kubectl.out("logs", "deployment/site", "-c", "web")
    assert f"on http://{site['status']['podIP']}:8000/" in web  # both containers on the pod's IP


def test_ambassador_reaches_the_database(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("ambassador")
    shop = kubelet_pod(ex, "shop", 2)
    kubelet_pod(ex, "db", 1)
    gateway = f"http://127.0.0.1:{ex.emu.gateway_port}/"
    assert [ex.get(gateway, headers={"Host": "shop"}).text for _ in range(2)] == ["visits: 1\n", "visits: 2\n"]
    shop_ip = ex.service("shop")["spec"]["clusterIP"]
    assert ex.get(f"http://{shop_ip}:8080/").text == "visits: 3\n"
    # the count lives in the database pod behind the `db` service, as the README's nc shows
    ((_, db_ip),) = ex.dns("db")
    with socket.create_connection((db_ip, 6379), timeout=3) as conn:
        conn.sendall(b"GET visits\n")
        assert conn.makefile("rb").readline() == b"$3\n"
    ambassador = ex.kubectl.out("logs", "deployment/shop", "-c", "ambassador")
    assert f"ambassador: {shop['status']['podIP']}:6379 -> db service {db_ip}:6379" in ambassador


PROMETHEUS_LINE = re.compile(r'(# (HELP|TYPE) app_[a-z_]+ .+|app_[a-z_]+\{pod="orders-[a-z0-9-]+"\} [0-9.]+)')


def test_adapter_normalises_metrics(run_example: Callable[..., RunningExample]) -> None:
    ex = run_example("adapter")
    pod = kubelet_pod(ex, "orders", 2)
    name = pod["metadata"]["name"]
    ((_, orders),) = ex.dns("orders")
    assert ex.get(f"http://{orders}:8080/orders").json() == [{"id": 1, "item": "teapot"}]
    failed = httpx.get(f"http://{orders}:8080/fail", timeout=3)
    assert failed.status_code == 500
    assert httpx.get(f"http://{pod['status']['podIP']}:8000/stats").text.startswith("STATS requests=2 errors=1 ")
    metrics = ex.get(f"http://{orders}:9102/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = metrics.text.splitlines()
    assert lines and all(PROMETHEUS_LINE.fullmatch(line) for line in lines), lines
    assert f'app_requests_total{{pod="{name}"}} 2' in lines
    assert f'app_errors_total{{pod="{name}"}} 1' in lines
    assert "# TYPE app_uptime_seconds gauge" in lines
    gateway = ex.get(f"http://127.0.0.1:{ex.emu.gateway_port}/metrics", headers={"Host": "orders:9102"})
    assert f'app_requests_total{{pod="{name}"}} 2' in gateway.text.splitlines()
