"""The local kubelet end to end: a real `emulator serve --kubelet`, real kubectl, real processes.

Each test's containers carry a marker in their command line, so that the processes can be found (and
counted) with psutil. The emulator stops its containers when it stops; the test that kills it with -9
cleans up by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from emulator.security import kubeconfig
from tests.conftest import IN_CI, Emulator, free_port, require_tool, start_emulator
from tests.integration.kubectl_support import Kubectl, manifest

pytestmark = pytest.mark.timeout(180)

BACKOFF = "0.4"  # EMULATOR_KUBELET_BACKOFF_SECONDS: the CrashLoopBackOff base, shortened for tests
# EMULATOR_KUBELET_LISTENER_LOOKS: when containers' listeners are looked at (1, 5, 30 s): at 0.3, 1 and 3 s,
# the last late enough for a server whose Python starts slowly on a busy machine
LOOKS = "0.3,0.7,2"


def start_kubelet(data_dir: Path, *extra: str, in_memory: bool = True) -> Emulator:
    settings = {"EMULATOR_KUBELET_BACKOFF_SECONDS": BACKOFF, "EMULATOR_KUBELET_LISTENER_LOOKS": LOOKS}
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        return start_emulator(data_dir, "--kubelet", *extra, in_memory=in_memory)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_kubelet(tmp_path_factory.mktemp("kubelet-data"), "--allow-anonymous")
    yield emulator
    emulator.stop(timeout=30)


def kubectl_for(emu: Emulator, home: Path) -> Kubectl:
    config = home / "config"
    kubeconfig.write(config, emu.api_url, use=True)
    return Kubectl(require_tool("kubectl"), config, home / "cache")


@pytest.fixture(scope="module")
def kubectl(emu: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_for(emu, tmp_path_factory.mktemp("kubectl-home"))


def marker() -> str:
    return "kt" + uuid.uuid4().hex[:10]


def processes(mark: str) -> list[psutil.Process]:
    """The running processes whose command line carries `mark` (zombies excluded)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if process.info["status"] != psutil.STATUS_ZOMBIE and any(mark in part for part in process.info["cmdline"] or ()):
                found.append(process)
    return found


def steady_pids(mark: str) -> set[int]:
    """The pids of `processes(mark)` seen twice 0.2 s apart, without the shells' own forks (a fork before it
    execs a child carries the shell's command line, for an instant or, on a loaded machine, longer)."""
    def sample() -> set[int]:
        found = {p.pid: p for p in processes(mark)}
        forks = set()
        for pid, process in found.items():
            with contextlib.suppress(psutil.Error):
                if process.ppid() in found:
                    forks.add(pid)
        return set(found) - forks

    first = sample()
    time.sleep(0.2)
    return first & sample()


def wait_for(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def get_pod(api: httpx.Client, ns: str, name: str) -> dict[str, Any] | None:
    response = api.get(f"/api/v1/namespaces/{ns}/pods/{name}")
    return response.json() if response.status_code == 200 else None


def phase(api: httpx.Client, ns: str, name: str) -> str | None:
    pod = get_pod(api, ns, name)
    return None if pod is None else pod["status"].get("phase")


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers, **spec}}


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


def create(api: httpx.Client, ns: str, obj: dict[str, Any], plural: str = "pods", group: str = "api/v1") -> dict[str, Any]:
    response = api.post(f"/{group}/namespaces/{ns}/{plural}", json=obj)
    assert response.status_code == 201, response.text
    return response.json()


def container_status(p: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    statuses = p["status"].get("initContainerStatuses" if init else "containerStatuses") or []
    return next(s for s in statuses if s["name"] == name)


def events(api: httpx.Client, ns: str, name: str | None = None) -> list[dict[str, Any]]:
    """The namespace's events, or those of the object `name`."""
    items = api.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
    return [e for e in items if name is None or e["involvedObject"]["name"] == name]


@pytest.fixture
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with emu.client() as client:
        yield client


# -- the minimal path ---------------------------------------------------------------------------------


def test_a_pod_runs_to_success_with_its_environment(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    create(api, ns, pod("hello", [sh("main", f"echo $(GREETING) $POD_IP $POD_NAME > {out}; sleep 1", env=[
        {"name": "GREETING", "value": "hi"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ])], restartPolicy="Never"))
    born = get_pod(api, ns, "hello")
    assert born is not None
    wait_for(lambda: phase(api, ns, "hello") == "Running", what="Running")
    wait_for(lambda: phase(api, ns, "hello") == "Succeeded", what="Succeeded")
    done = get_pod(api, ns, "hello")
    assert done is not None
    assert out.read_text().split() == ["hi", done["status"]["podIP"], "hello"]
    terminated = container_status(done, "main")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    conditions = {c["type"]: c["status"] for c in done["status"]["conditions"]}
    assert conditions["Ready"] == "False" and conditions["PodScheduled"] == "True" and conditions["Initialized"] == "True"
    reasons = [e["reason"] for e in events(api, ns, "hello")]
    for reason in ("Scheduled", "Pulled", "Created", "Started"):
        assert reason in reasons


def test_a_pod_is_born_pending_then_running_and_ready(api: httpx.Client, ns: str) -> None:
    mark = marker()
    created = create(api, ns, pod("web", [sh("main", f"sleep 60; : {mark}")]))
    assert created["status"]["phase"] == "Pending"
    assert container_status(created, "main")["state"]["waiting"]["reason"] == "ContainerCreating"

    def ready() -> bool:
        p = get_pod(api, ns, "web")
        return p is not None and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])

    wait_for(ready, what="Ready")
    assert len(processes(mark)) == 1
    running = get_pod(api, ns, "web")
    assert running is not None and running["status"]["phase"] == "Running"
    assert "running" in container_status(running, "main")["state"]


def test_a_failing_pod_fails_with_its_exit_code(api: httpx.Client, ns: str) -> None:
    create(api, ns, pod("bad", [sh("main", "exit 3")], restartPolicy="Never"))
    wait_for(lambda: phase(api, ns, "bad") == "Failed", what="Failed")
    done = get_pod(api, ns, "bad")
    assert done is not None
    terminated = container_status(done, "main")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


def test_a_crashing_container_backs_off_and_counts_restarts(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    create(api, ns, pod("crash", [sh("main", "echo boom; exit 1")]))

    def looping() -> bool:
        p = get_pod(api, ns, "crash")
        if p is None:
            return False
        status = container_status(p, "main")
        return status["restartCount"] >= 2 and status["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"

    wait_for(looping, timeout=30, what="CrashLoopBackOff with restarts")
    p = get_pod(api, ns, "crash")
    assert p is not None and p["status"]["phase"] == "Running"
    last = container_status(p, "main")["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last["reason"] == "Error"
    reasons = [e["reason"] for e in events(api, ns, "crash")]
    assert "BackOff" in reasons and "AddressInUse" not in reasons  # only a failed listen is explained
    assert "CrashLoopBackOff" in kubectl.out("get", "pod", "crash", "-n", ns)


def test_fallback_to_logs_on_error_puts_the_last_output_in_the_termination_message(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    script = "echo starting; echo 'fatal: no database at db:5432' >&2; exit 3"
    create(api, ns, pod("says", [sh("main", script, terminationMessagePolicy="FallbackToLogsOnError")], restartPolicy="Never"))
    create(api, ns, pod("silent", [sh("main", script)], restartPolicy="Never"))  # the default policy, File: no message
    wait_for(lambda: phase(api, ns, "says") == "Failed" and phase(api, ns, "silent") == "Failed", what="both pods failed")
    says = get_pod(api, ns, "says")
    silent = get_pod(api, ns, "silent")
    assert says is not None and silent is not None
    terminated = container_status(says, "main")["state"]["terminated"]
    assert terminated["exitCode"] == 3  # (stdout and stderr are two pipes: their lines may come in either order)
    assert sorted(terminated["message"].splitlines()) == ["fatal: no database at db:5432", "starting"]
    assert "message" not in container_status(silent, "main")["state"]["terminated"]
    assert "fatal: no database at db:5432" in kubectl.out("describe", "pod", "says", "-n", ns)


def test_the_termination_message_file_becomes_the_terminated_message(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    # the Kubernetes docs' "Determine the Reason for Pod Failure" (restarted: the message is in lastState),
    # each instance appending to what must be a fresh file
    create(api, ns, pod("termination-demo", [sh("main", "echo Sleep expired >> /dev/termination-log; exit 1")], restartPolicy="OnFailure"))
    long = "".join(f"{n}\n" for n in range(3000))
    create(api, ns, pod("long", [sh("main", "seq 0 2999 > /dev/termination-log")], restartPolicy="Never"))
    create(api, ns, pod("own-path", [  # a path of its own, written through the mount's variable (also without the sandbox)
        sh("main", 'echo "told by $EMULATOR_MOUNT_VAR_RUN_APP_DONE" > "$EMULATOR_MOUNT_VAR_RUN_APP_DONE"; exit 2',
           terminationMessagePath="/var/run/app/done", terminationMessagePolicy="FallbackToLogsOnError"),
    ], restartPolicy="Never"))
    create(api, ns, pod("falls-back", [  # an empty file and a failure: the logs stand in
        sh("main", "echo from the logs; exit 4", terminationMessagePolicy="FallbackToLogsOnError"),
    ], restartPolicy="Never"))

    def second_instance_ended() -> dict[str, Any] | None:
        p = get_pod(api, ns, "termination-demo")
        status = container_status(p, "main") if p and p["status"].get("containerStatuses") else {}
        ended = (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated")
        return ended if status.get("restartCount") == 1 and ended and ended["containerID"].endswith("/1") else None

    ended = wait_for(second_instance_ended, what="the second instance ended")
    assert ended["message"] == "Sleep expired\n"  # not twice: each instance has a file of its own
    template = "{{range .status.containerStatuses}}{{.lastState.terminated.message}}{{end}}"
    wait_for(lambda: phase(api, ns, "long") == "Succeeded" and phase(api, ns, "own-path") == "Failed"
             and phase(api, ns, "falls-back") == "Failed", what="the other pods ended")
    assert container_status(get_pod(api, ns, "long") or {}, "main")["state"]["terminated"]["message"] == long[-4096:]
    own = container_status(get_pod(api, ns, "own-path") or {}, "main")["state"]["terminated"]
    assert own["exitCode"] == 2 and own["message"] == "told by /var/run/app/done\n"  # the file wins over the logs
    assert container_status(get_pod(api, ns, "falls-back") or {}, "main")["state"]["terminated"]["message"] == "from the logs\n"
    assert "Sleep expired" in kubectl.out("get", "pod", "termination-demo", "-n", ns, "-o", f"go-template={template}")


def test_on_failure_restarts_until_success(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    count = tmp_path / "count"
    script = f"echo x >> {count}; [ $(wc -l < {count}) -ge 3 ]"
    create(api, ns, pod("flaky", [sh("main", script)], restartPolicy="OnFailure"))
    wait_for(lambda: phase(api, ns, "flaky") == "Succeeded", timeout=30, what="Succeeded")
    done = get_pod(api, ns, "flaky")
    assert done is not None and container_status(done, "main")["restartCount"] == 2


# -- init containers and sidecars ---------------------------------------------------------------------


def test_init_containers_run_in_order_before_the_main_ones(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    log = tmp_path / "order"
    create(api, ns, pod("init", [sh("main", f"echo main >> {log}")], restartPolicy="Never", initContainers=[
        sh("first", f"sleep 0.3; echo first >> {log}"), sh("second", f"echo second >> {log}"),
    ]))
    wait_for(lambda: phase(api, ns, "init") == "Succeeded", what="Succeeded")
    assert log.read_text().split() == ["first", "second", "main"]
    done = get_pod(api, ns, "init")
    assert done is not None
    assert container_status(done, "first", init=True)["state"]["terminated"]["reason"] == "Completed"


def test_a_failed_init_container_fails_a_never_pod(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    create(api, ns, pod("initfail", [sh("main", "true")], restartPolicy="Never", initContainers=[sh("setup", "exit 2")]))
    wait_for(lambda: phase(api, ns, "initfail") == "Failed", what="Failed")
    assert "Init:Error" in kubectl.out("get", "pod", "initfail", "-n", ns)


def test_a_native_sidecar_starts_first_and_is_stopped_after_main(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    mark = marker()
    flag = tmp_path / "sidecar-up"
    # its startup probe holds the main container back until the sidecar has done its part
    startup = {"exec": {"command": ["test", "-e", str(flag)]}, "periodSeconds": 1}
    sidecar = sh("helper", f"sleep 0.3; touch {flag}; while true; do sleep 0.2; done # {mark}", restartPolicy="Always", startupProbe=startup)
    main = sh("main", f"test -e {flag} && sleep 1")
    create(api, ns, pod("sidecar", [main], restartPolicy="Never", initContainers=[sidecar]))
    wait_for(lambda: phase(api, ns, "sidecar") == "Succeeded", what="Succeeded")
    done = get_pod(api, ns, "sidecar")
    assert done is not None
    assert container_status(done, "main")["state"]["terminated"]["exitCode"] == 0
    wait_for(lambda: not processes(mark), what="the sidecar stopped")


# -- termination --------------------------------------------------------------------------------------


def test_delete_runs_prestop_then_sigterm_and_waits(api: httpx.Client, ns: str, kubectl: Kubectl, tmp_path: Path) -> None:
    mark = marker()
    trail = tmp_path / "trail"
    script = f"trap 'echo term >> {trail}; sleep 0.5; exit 0' TERM; while true; do sleep 0.1; done # {mark}"
    prestop = {"exec": {"command": ["sh", "-c", f"echo prestop >> {trail}"]}}
    create(api, ns, pod("graceful", [sh("main", script, lifecycle={"preStop": prestop})], terminationGracePeriodSeconds=10))
    wait_for(lambda: phase(api, ns, "graceful") == "Running" and processes(mark), what="running")
    began = time.monotonic()
    kubectl.run("delete", "pod", "graceful", "-n", ns, timeout=30)  # waits until the pod is gone
    assert time.monotonic() - began < 8
    assert get_pod(api, ns, "graceful") is None
    assert trail.read_text().split() == ["prestop", "term"]
    assert not processes(mark)
    assert "Killing" in [e["reason"] for e in events(api, ns, "graceful")]


def test_a_deleted_pod_shows_its_stopped_containers_before_it_goes(api: httpx.Client, ns: str) -> None:
    mark = marker()
    create(api, ns, pod("stopping", [sh("main", f"sleep 300; echo done # {mark}")], terminationGracePeriodSeconds=5))
    wait_for(lambda: phase(api, ns, "stopping") == "Running" and processes(mark), what="running")
    version = api.get(f"/api/v1/namespaces/{ns}/pods/stopping").json()["metadata"]["resourceVersion"]
    seen: list[tuple[str, dict[str, Any]]] = []
    params = {"watch": "1", "resourceVersion": version, "fieldSelector": "metadata.name=stopping", "timeoutSeconds": "30"}
    with api.stream("GET", f"/api/v1/namespaces/{ns}/pods", params=params, timeout=40) as watch:
        assert api.delete(f"/api/v1/namespaces/{ns}/pods/stopping").status_code == 200
        for line in watch.iter_lines():
            event = json.loads(line)
            seen.append((event["type"], event["object"]))
            if event["type"] == "DELETED":
                break
    assert seen[-1][0] == "DELETED"
    # as a node's kubelet writes it: the stopped container (terminated, not ready) before the pod goes
    last = seen[-2][1]
    assert seen[-2][0] == "MODIFIED" and last["metadata"].get("deletionTimestamp")
    (status,) = last["status"]["containerStatuses"]
    assert status["ready"] is False and "terminated" in status["state"], status
    assert {c["type"]: c["status"] for c in last["status"]["conditions"]}["Ready"] == "False"


def test_the_grace_period_ends_with_sigkill(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    mark = marker()
    create(api, ns, pod("stubborn", [sh("main", f"trap '' TERM; while true; do sleep 0.1; done # {mark}")], terminationGracePeriodSeconds=1))
    wait_for(lambda: processes(mark), what="running")
    began = time.monotonic()
    kubectl.run("delete", "pod", "stubborn", "-n", ns, timeout=30)
    assert 0.8 < time.monotonic() - began < 8
    assert not processes(mark)


def test_force_delete_kills_at_once(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    mark = marker()
    create(api, ns, pod("forced", [sh("main", f"trap '' TERM; while true; do sleep 0.1; done # {mark}")]))
    wait_for(lambda: processes(mark), what="running")
    kubectl.run("delete", "pod", "forced", "-n", ns, "--grace-period=0", "--force", timeout=30)
    assert get_pod(api, ns, "forced") is None
    wait_for(lambda: not processes(mark), timeout=5, what="killed")


# -- workloads ----------------------------------------------------------------------------------------


SERVER = "import http.server, os, socketserver; socketserver.TCPServer.allow_reuse_address = True; " \
         "h = type('H', (http.server.BaseHTTPRequestHandler,), {'do_GET': lambda s: (s.send_response(200), s.end_headers(), s.wfile.write(os.environ['POD_NAME'].encode())), 'log_message': lambda *a: None}); " \
         "http.server.HTTPServer((os.environ['POD_IP'], 8080), h).serve_forever()"


def test_a_deployment_runs_its_replicas_behind_a_service(api: httpx.Client, ns: str, kubectl: Kubectl, tmp_path: Path) -> None:
    mark = marker()
    text = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: example/web
        command: [{json.dumps(sys.executable)}, -c, {json.dumps(SERVER)}, {mark}]
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}  # Ready once it listens
        env:
        - name: POD_IP
          valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, text))
    kubectl.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=70)
    assert len(processes(mark)) == 3

    def addresses() -> list[str]:
        subsets = api.get(f"/api/v1/namespaces/{ns}/endpoints/web").json().get("subsets") or []
        return [a["ip"] for s in subsets for a in s.get("addresses") or []]

    ips = wait_for(lambda: len(addresses()) == 3 and addresses(), what="3 endpoints")
    names = {httpx.get(f"http://{ip}:8080/", timeout=5).text for ip in ips}
    assert len(names) == 3
    kubectl.run("delete", "deployment", "web", "-n", ns, timeout=60)
    wait_for(lambda: not processes(mark), timeout=40, what="the replicas stopped")


LISTEN_EVERYWHERE = "import socket, sys, time; s = socket.socket(); s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(); time.sleep(300)"


def address_in_use(api: httpx.Client, ns: str) -> list[dict[str, Any]]:
    return [e for e in events(api, ns) if e["reason"] == "AddressInUse"]


# A container that says EMULATOR_PODNET=off keeps this machine's addresses (docs/pods.md), as a program the
# podnet library cannot reach does (a statically linked one): what the kubelet says of those is tested here.
PODNET_OFF = {"name": "EMULATOR_PODNET", "value": "off"}


def test_replicas_on_one_port_of_every_address_are_told_which_pod_holds_it(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    # On a node each replica has a network of its own; here, without the podnet library, the first to
    # listen on 0.0.0.0:port holds it for every pod, and the kubelet says so when the next one exits on
    # "address already in use".
    port, mark = free_port(), marker()
    server = {"name": "server", "image": "example/server", "env": [PODNET_OFF],
              "command": [sys.executable, "-c", LISTEN_EVERYWHERE, str(port), mark]}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "everywhere"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "everywhere"}},
                 "template": {"metadata": {"labels": {"app": "everywhere"}}, "spec": {"containers": [server]}}},
    }
    create(api, ns, deployment, "deployments", "apis/apps/v1")
    event = wait_for(lambda: address_in_use(api, ns), timeout=30, what="an AddressInUse event")[0]
    pods = api.get(f"/api/v1/namespaces/{ns}/pods").json()["items"]
    holders = [p["metadata"]["name"] for p in pods if container_status(p, "server").get("restartCount") == 0
               and "running" in container_status(p, "server")["state"]]
    crashing = event["involvedObject"]["name"]
    assert event["type"] == "Warning" and event["source"]["component"] == "kubelet"
    assert crashing not in holders and len(holders) == 1, (crashing, holders)
    assert f"container server could not listen: 0.0.0.0:{port} is held by pod {ns}/{holders[0]}" in event["message"]
    assert "listen on the pod's own IP" in event["message"]
    described = kubectl.out("describe", "pod", crashing, "-n", ns)
    assert "AddressInUse" in described
    kubectl.run("delete", "deployment", "everywhere", "-n", ns, timeout=60)
    wait_for(lambda: not processes(mark), timeout=40, what="the replicas stopped")


def test_a_declared_port_held_by_a_process_that_is_no_pod_is_named(api: httpx.Client, ns: str) -> None:
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        server = {"name": "server", "image": "example/server", "command": [sys.executable, "-c", LISTEN_EVERYWHERE, str(port)],
                  "ports": [{"containerPort": port}], "env": [PODNET_OFF]}
        create(api, ns, pod("taken", [server]))
        event = wait_for(lambda: address_in_use(api, ns), timeout=30, what="an AddressInUse event")[0]
        assert event["involvedObject"]["name"] == "taken"
        assert f"0.0.0.0:{port} is held by process {os.getpid()}" in event["message"], event["message"]
        assert "not a pod" in event["message"]


LISTEN_ON_BOTH = (
    "import socket, sys, time\n"
    "wide, own = socket.socket(), socket.socket()\n"
    "wide.bind(('0.0.0.0', int(sys.argv[1]))); wide.listen()\n"
    "own.bind((sys.argv[2], int(sys.argv[3]))); own.listen()\n"
    "time.sleep(300)\n"
)


LISTEN_ON = "import socket, sys, time; s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); time.sleep(300)"


def test_a_container_listening_beyond_loopback_is_named_once_and_its_pod_ip_is_not(api: httpx.Client, ns: str) -> None:
    # Pods share this machine's network here: 0.0.0.0 is reachable from other machines, the pod IP is not.
    wide, own, mark = free_port(), free_port(), marker()
    pod_ip = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    server = {"name": "server", "image": "example/server", "env": [pod_ip, PODNET_OFF],
              "command": [sys.executable, "-c", LISTEN_ON_BOTH, str(wide), "$(POD_IP)", str(own), mark]}
    quiet = {"name": "quiet", "image": "example/server", "env": [pod_ip],  # its pod IP only: never named
             "command": [sys.executable, "-c", LISTEN_ON, "$(POD_IP)", str(free_port()), mark]}
    reached = free_port()  # 0.0.0.0 on a port declared with a hostPort: meant to be reached, never named
    published = {"name": "published", "image": "example/server", "ports": [{"containerPort": reached, "hostPort": reached}],
                 "command": [sys.executable, "-c", LISTEN_ON, "0.0.0.0", str(reached), mark]}
    create(api, ns, pod("exposed", [server, quiet, published]))

    def named() -> list[dict[str, Any]]:
        return [e for e in events(api, ns, "exposed") if e["reason"] == "ListeningBeyondLoopback"]

    event = wait_for(named, timeout=30, what="a ListeningBeyondLoopback event")[0]
    assert event["type"] == "Warning" and event["source"]["component"] == "kubelet"
    assert event["message"].startswith(f"container server listens on 0.0.0.0:{wide}: other machines on your network can reach it")
    assert "$(POD_IP)" in event["message"]  # (what it names is exactly 0.0.0.0:wide, not the pod-IP socket)
    ip = api.get(f"/api/v1/namespaces/{ns}/pods/exposed").json()["status"]["podIP"]
    with socket.create_connection((ip, own), timeout=5), socket.create_connection(("127.0.0.1", reached), timeout=5):
        pass  # every listener is up
    time.sleep(3.5)  # past the three looks (LOOKS): each address named once, the others never
    assert [e["count"] for e in named()] == [1], named()
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/exposed").status_code == 200
    wait_for(lambda: not processes(mark), timeout=40, what="the containers stopped")


def test_a_job_completes_by_exit_code(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [sh("main", "sleep 0.2; exit 0")]}}},
    }
    create(api, ns, job, "jobs", "apis/batch/v1")
    kubectl.run("wait", "--for=condition=complete", "job/once", "-n", ns, "--timeout=30s", timeout=40)


# -- what does not run --------------------------------------------------------------------------------


def test_kubectl_run_with_args_for_busybox_runs_them(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    # `kubectl run ... -- sh -c '...'` gives args and no command: busybox has no ENTRYPOINT, so they are the
    # command line (kubelet/images.py NO_ENTRYPOINT); -i attaches to it, --rm deletes the pod after
    done = kubectl.run("run", "once", "-n", ns, "--image=busybox", "--restart=Never", "-i", "--rm", "--",
                       "sh", "-c", "echo hello-from-$HOSTNAME", stdin="", timeout=60)
    assert "hello-from-once" in done.stdout, (done.stdout, done.stderr)
    wait_for(lambda: get_pod(api, ns, "once") is None, what="the pod deleted by --rm")


def test_kubectl_drain_deletes_the_pods_and_their_controllers_replace_them(tmp_path: Path) -> None:
    # drain deletes each pod with a protobuf DeleteOptions body (no pods/eviction here)
    emulator = start_kubelet(tmp_path / "data", "--allow-anonymous")
    try:
        kubectl = kubectl_for(emulator, tmp_path)
        kubectl.run("create", "deployment", "drained", "--image=busybox", "--replicas=2", "--", "sleep", "300")
        kubectl.run("rollout", "status", "deployment/drained", "--timeout=60s", timeout=70)
        before = set(kubectl.out("get", "pods", "-o", "name").split())
        done = kubectl.run("drain", "emulator", "--ignore-daemonsets", "--timeout=60s", timeout=70)
        assert "node/emulator drained" in done.stdout, done.stderr
        assert all(f"{name} deleted" in done.stdout for name in before), done.stdout
        assert "SchedulingDisabled" in kubectl.out("get", "node", "emulator")
        kubectl.run("uncordon", "emulator")
        after = wait_for(lambda: (names := set(kubectl.out("get", "pods", "-o", "name").split())) and len(names) == 2 and names, what="2 new pods")
        assert not after & before
    finally:
        emulator.stop(timeout=30)


def test_kubectl_debug_on_a_pod_the_kubelet_does_not_run_says_so(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    create(api, ns, pod("target", [{"name": "main", "image": "nginx"}]))  # no command known: a record
    kubectl.run("debug", "target", "-n", ns, "--image=busybox", "-c", "dbg", "--profile=general", "--", "true")
    [status] = get_pod(api, ns, "target")["status"]["ephemeralContainerStatuses"]
    assert status["name"] == "dbg" and "does not run this pod" in status["state"]["waiting"]["message"], status
    # a subresource that is not served is a 404 with empty details (kubectl reads them), not a missing pod
    response = api.patch(f"/api/v1/namespaces/{ns}/pods/target/nosuchthing", content=b"{}",
                         headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert response.status_code == 404 and response.json()["details"] == {}


def test_a_pod_without_command_stays_a_record_and_says_why(api: httpx.Client, ns: str) -> None:
    created = create(api, ns, pod("record", [{"name": "main", "image": "nginx"}]))
    assert created["status"]["phase"] == "Running"
    runnable = next(c for c in created["status"]["conditions"] if c["type"] == "emulator.local/Runnable")
    assert runnable["status"] == "False" and "--image-map" in runnable["message"]
    wait_for(lambda: "NotRunnable" in [e["reason"] for e in events(api, ns, "record")], what="the NotRunnable event")
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/record").status_code == 200
    assert get_pod(api, ns, "record") is None  # records go at once
    # one that waited for a node says it when it gets one (the decision is made then), once
    label = f"disk-{ns}"
    create(api, ns, pod("waits", [{"name": "main", "image": "nginx"}], nodeSelector={label: "ssd"}))
    assert phase(api, ns, "waits") == "Pending"
    merge = {"Content-Type": "application/merge-patch+json"}
    try:
        assert api.patch("/api/v1/nodes/emulator", content=json.dumps({"metadata": {"labels": {label: "ssd"}}}), headers=merge).status_code == 200
        wait_for(lambda: "NotRunnable" in [e["reason"] for e in events(api, ns, "waits")], what="the late NotRunnable event")
        assert api.patch(f"/api/v1/namespaces/{ns}/pods/waits", content=b'{"metadata":{"labels":{"again":"1"}}}', headers=merge).status_code == 200
        time.sleep(0.5)
        assert [e["count"] for e in events(api, ns, "waits") if e["reason"] == "NotRunnable"] == [1]
    finally:
        api.patch("/api/v1/nodes/emulator", content=json.dumps({"metadata": {"labels": {label: None}}}), headers=merge)


def test_the_image_map_runs_an_unchanged_manifest(tmp_path: Path) -> None:
    mark = marker()
    images = tmp_path / "images.yaml"
    images.write_text(f"images:\n  ghcr.io/acme/worker:\n    command: [sh, -c]\n    args: ['echo $(WHO) > {tmp_path}/out; sleep 30 # {mark}']\n    env: {{WHO: mapped}}\n")
    emu = start_kubelet(tmp_path / "data", "--image-map", str(images), "--allow-anonymous")
    try:
        with emu.client() as api:
            create(api, "default", pod("worker", [{"name": "w", "image": "ghcr.io/acme/worker:1.0"}]))
            wait_for(lambda: (tmp_path / "out").exists() and (tmp_path / "out").read_text().strip() == "mapped", what="the mapped command ran")
            assert len(processes(mark)) == 1
    finally:
        emu.stop(timeout=30)
    assert not processes(mark)


def test_the_kubelet_requires_tokens_unless_anonymous_is_allowed(tmp_path: Path) -> None:
    mark = marker()
    emu = start_kubelet(tmp_path / "data")
    try:
        assert emu.api_url.startswith("https://")
        with httpx.Client(base_url=emu.api_url, verify=False, timeout=10) as client:
            assert client.get("/api/v1/namespaces/default/pods").status_code == 401
        assert "loopback needs tokens too" in emu.faces["auth"]
        # the kubeconfig serve wrote lets its owner run pods
        subprocess.run([
            require_tool("kubectl"), "--kubeconfig", emu.faces["kubeconfig"], "run", "owned", "--image=x", "--restart=Never",
            "--command", "--", "sh", "-c", f"sleep 300; : {mark}",
        ], check=True, capture_output=True, timeout=30)
        wait_for(lambda: processes(mark), what="the owner's pod running")
    finally:
        emu.stop(timeout=30)
    assert not processes(mark)


# -- restarts of the emulator ---------------------------------------------------------------------------


def test_kill_9_then_restart_adopts_every_container(tmp_path: Path) -> None:
    mark = marker()
    data = tmp_path / "data"
    first = start_kubelet(data, "--allow-anonymous", in_memory=False)
    pids: set[int] = set()
    try:
        with first.client() as api:
            for i in range(20):
                create(api, "default", pod(f"p{i}", [sh("main", f"while true; do echo {i}; sleep 0.5; done # {mark}")]))
            # 20 containers, not 19 and a shell's fork: the last one may still be starting
            wait_for(lambda: len(steady_pids(mark)) == 20, timeout=30, what="20 processes")
            ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in api.get("/api/v1/namespaces/default/pods").json()["items"]}
        pids = steady_pids(mark)
        first.stop(signal.SIGKILL)
        time.sleep(1.5)
        assert steady_pids(mark) == pids  # the containers outlive the emulator

        second = start_kubelet(data, "--allow-anonymous", in_memory=False)
        try:
            with second.client() as api:
                def all_running() -> bool:
                    items = api.get("/api/v1/namespaces/default/pods").json()["items"]
                    return len(items) == 20 and all(p["status"].get("phase") == "Running" for p in items)

                wait_for(all_running, what="20 running pods")
                time.sleep(1.5)  # give a duplicate the time to appear
                assert steady_pids(mark) == pids  # adopted: not one started again
                items = api.get("/api/v1/namespaces/default/pods").json()["items"]
                assert {p["metadata"]["name"]: p["status"]["podIP"] for p in items} == ips
                assert all(container_status(p, "main")["restartCount"] == 0 for p in items)
                # the output written while no emulator ran, and after, reaches the log (the pipes were reopened)
                before = api.get("/api/v1/namespaces/default/pods/p3/log").text.count("3\n")
                wait_for(lambda: api.get("/api/v1/namespaces/default/pods/p3/log").text.count("3\n") >= before + 2, what="more log lines")
            if shutil.which("cc") or IN_CI:  # an adopted container's exec sessions get the pod's localhost too (podnet)
                said = kubectl_for(second, tmp_path).out("exec", "p3", "--", "sh", "-c", "echo $EMULATOR_POD_IP")
                assert said.strip() == ips["p3"]
        finally:
            second.stop(timeout=30)
        wait_for(lambda: not processes(mark), timeout=15, what="every container stopped with the emulator")
    finally:
        for process in processes(mark):
            with contextlib.suppress(psutil.Error):
                os.killpg(process.pid, signal.SIGKILL)


def test_a_clean_stop_stops_the_containers_and_the_next_start_runs_them_again(tmp_path: Path) -> None:
    mark = marker()
    data = tmp_path / "data"
    first = start_kubelet(data, "--allow-anonymous", in_memory=False)
    try:
        with first.client() as api:
            create(api, "default", pod("keep", [sh("main", f"sleep 300; : {mark}")]))
            wait_for(lambda: len(processes(mark)) == 1, what="running")
    finally:
        first.stop(timeout=30)
    assert not processes(mark)
    second = start_kubelet(data, "--allow-anonymous", in_memory=False)
    try:
        with second.client() as api:
            wait_for(lambda: len(processes(mark)) == 1, what="running again")

            def restarted() -> bool:
                p = get_pod(api, "default", "keep")
                return p is not None and container_status(p, "main")["restartCount"] == 1 and p["status"]["phase"] == "Running"

            wait_for(restarted, what="restartCount 1")
    finally:
        second.stop(timeout=30)
    assert not processes(mark)


def test_deleting_a_namespace_stops_its_pods(api: httpx.Client, kubectl: Kubectl) -> None:
    mark = marker()
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": "doomed"}}).status_code == 201
    for i in range(3):
        create(api, "doomed", pod(f"p{i}", [sh("main", f"sleep 300; : {mark}")]))
    wait_for(lambda: len(processes(mark)) == 3, what="3 running")
    kubectl.run("delete", "namespace", "doomed", "--timeout=60s", timeout=70)
    assert not processes(mark)


def test_a_failing_init_container_backs_off(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    create(api, ns, pod("initloop", [sh("main", "true")], initContainers=[sh("setup", "exit 1")]))

    def backing_off() -> bool:
        p = get_pod(api, ns, "initloop")
        return p is not None and container_status(p, "setup", init=True)["restartCount"] >= 2 \
            and "Init:CrashLoopBackOff" in kubectl.out("get", "pod", "initloop", "-n", ns)

    wait_for(backing_off, timeout=30, what="Init:CrashLoopBackOff")
    assert phase(api, ns, "initloop") == "Pending"


def test_a_sidecar_that_exits_is_restarted(api: httpx.Client, ns: str) -> None:
    mark = marker()
    sidecar = sh("helper", "sleep 0.3; exit 0", restartPolicy="Always")
    create(api, ns, pod("residecar", [sh("main", f"sleep 300; : {mark}")], initContainers=[sidecar]))

    def restarted() -> bool:
        p = get_pod(api, ns, "residecar")
        return p is not None and container_status(p, "helper", init=True)["restartCount"] >= 2
    wait_for(restarted, timeout=30, what="the sidecar restarted")
    assert phase(api, ns, "residecar") == "Running" and len(processes(mark)) == 1


def test_post_start_and_pre_stop_hooks(api: httpx.Client, ns: str, kubectl: Kubectl, tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    lifecycle = {
        "postStart": {"exec": {"command": ["sh", "-c", f"echo poststart >> {trail}"]}},
        "preStop": {"sleep": {"seconds": 1}},
    }
    create(api, ns, pod("hooks", [sh("main", "sleep 300", lifecycle=lifecycle)], terminationGracePeriodSeconds=5))
    wait_for(lambda: trail.exists() and trail.read_text().strip() == "poststart", what="postStart ran")
    began = time.monotonic()
    kubectl.run("delete", "pod", "hooks", "-n", ns, timeout=30)
    assert 0.9 < time.monotonic() - began < 5  # the preStop sleep, then SIGTERM ends `sleep` at once


def test_a_failed_post_start_hook_kills_the_container(api: httpx.Client, ns: str) -> None:
    lifecycle = {"postStart": {"exec": {"command": ["sh", "-c", "exit 7"]}}}
    create(api, ns, pod("badhook", [sh("main", "sleep 300", lifecycle=lifecycle)]))
    wait_for(lambda: "FailedPostStartHook" in [e["reason"] for e in events(api, ns, "badhook")], what="FailedPostStartHook")

    def restarted() -> bool:
        p = get_pod(api, ns, "badhook")
        return p is not None and container_status(p, "main")["restartCount"] >= 1
    wait_for(restarted, timeout=20, what="a restart")


def test_in_memory_containers_die_with_the_emulator(tmp_path: Path) -> None:
    mark = marker()
    emu = start_kubelet(tmp_path / "data", "--allow-anonymous")
    try:
        with emu.client() as api:
            # a grandchild (not the container's own process) carries the marker too
            script = f"{sys.executable} -c 'import time; time.sleep(300)' {mark} & wait # {mark}"
            create(api, "default", pod("gone", [sh("main", script)]))
            wait_for(lambda: len(processes(mark)) == 2, what="running")
        emu.stop(signal.SIGKILL)  # nothing could adopt them: they must not outlive it
        wait_for(lambda: not processes(mark), timeout=5, what="the container gone with the emulator")
    finally:
        emu.stop()
        for process in processes(mark):
            with contextlib.suppress(psutil.Error):
                os.killpg(process.pid, signal.SIGKILL)


def test_a_missing_config_map_holds_the_container_until_it_exists(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    out = tmp_path / "mode"
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]
    create(api, ns, pod("held", [sh("main", f"echo $MODE > {out}; sleep 300", env=env)]))

    def waiting() -> bool:
        p = get_pod(api, ns, "held")
        return p is not None and container_status(p, "main")["state"].get("waiting", {}).get("reason") == "CreateContainerConfigError"

    wait_for(waiting, what="CreateContainerConfigError")
    assert phase(api, ns, "held") == "Pending" and not out.exists()
    assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "settings"}, "data": {"mode": "fast"}}).status_code == 201
    wait_for(lambda: out.exists() and out.read_text().strip() == "fast", what="the container started with the value")
    wait_for(lambda: phase(api, ns, "held") == "Running", what="Running")


def test_a_missing_config_map_volume_holds_the_pod_in_container_creating(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    # the docs' pod-configmap-volume applied before its ConfigMap: ContainerCreating (no init containers
    # here, so not PodInitializing) and the kubelet's FailedMount words, once
    volume = {"name": "config-volume", "configMap": {"name": "special-config"}}
    mounts = [{"name": "config-volume", "mountPath": "/etc/config"}]
    create(api, ns, pod("mounting", [sh("main", "ls /etc/config; sleep 300", volumeMounts=mounts)], volumes=[volume]))

    def waiting() -> str | None:
        p = get_pod(api, ns, "mounting")
        statuses = (p or {}).get("status", {}).get("containerStatuses") or []
        return statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None

    failed = wait_for(lambda: [e for e in events(api, ns, "mounting") if e["reason"] == "FailedMount"], what="FailedMount")
    assert failed[0]["message"] == 'MountVolume.SetUp failed for volume "config-volume" : configmap "special-config" not found'
    assert waiting() == "ContainerCreating"
    assert "ContainerCreating" in kubectl.out("get", "pod", "mounting", "-n", ns)
    assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "special-config"}, "data": {"k": "v"}}).status_code == 201
    wait_for(lambda: phase(api, ns, "mounting") == "Running", what="Running")


def test_a_command_that_cannot_start_is_a_start_error_and_backs_off(api: httpx.Client, ns: str) -> None:
    create(api, ns, pod("nosuch", [{"name": "main", "image": "x", "command": ["/no/such/program"]}]))

    def failing() -> bool:
        p = get_pod(api, ns, "nosuch")
        if p is None:
            return False
        status = container_status(p, "main")
        return status["restartCount"] >= 2 and status["lastState"].get("terminated", {}).get("reason") == "StartError"

    wait_for(failing, timeout=30, what="StartError restarts")
    assert "Failed" in [e["reason"] for e in events(api, ns, "nosuch")]


def test_a_second_delete_with_a_shorter_grace_kills_sooner(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    mark = marker()
    create(api, ns, pod("slow", [sh("main", f"trap '' TERM; while true; do sleep 0.1; done # {mark}")], terminationGracePeriodSeconds=60))
    wait_for(lambda: processes(mark), what="running")
    kubectl.run("delete", "pod", "slow", "-n", ns, "--wait=false")
    began = time.monotonic()
    kubectl.run("delete", "pod", "slow", "-n", ns, "--grace-period=1", timeout=30)
    assert time.monotonic() - began < 10
    assert not processes(mark)


def test_a_finalizer_holds_a_terminated_pod_and_its_removal_waits_for_the_grace(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    """As the API server: removing the last finalizer of a pod still terminating does not cut its grace short,
    and a pod whose containers stopped stays (grace 0) until its last finalizer goes."""
    mark = marker()
    armed = tmp_path / "held"
    body = pod("held", [sh("main", f"trap 'sleep 1; exit 0' TERM; touch {armed}; while true; do sleep 0.1; done # {mark}")], terminationGracePeriodSeconds=10)
    body["metadata"]["finalizers"] = ["example.com/hold"]
    create(api, ns, body)
    wait_for(lambda: phase(api, ns, "held") == "Running" and armed.exists(), what="running, its trap set")
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/held").status_code == 200
    # the containers stop (SIGTERM, a second's trap); the pod stays, held by its finalizer, grace now 0
    wait_for(lambda: not processes(mark), timeout=15, what="stopped")
    held = wait_for(lambda: (p := get_pod(api, ns, "held")) and p["metadata"].get("deletionGracePeriodSeconds") == 0 and p, what="grace 0")
    assert held["metadata"]["finalizers"] == ["example.com/hold"]
    patch = [{"op": "remove", "path": "/metadata/finalizers"}]
    answer = api.patch(f"/api/v1/namespaces/{ns}/pods/held", content=json.dumps(patch), headers={"Content-Type": "application/json-patch+json"})
    assert answer.status_code == 200, answer.text
    assert get_pod(api, ns, "held") is None

    # removing the finalizer while the containers are still being stopped leaves the pod to the kubelet
    mark = marker()
    armed = tmp_path / "stopping"
    body = pod("stopping", [sh("main", f"trap 'sleep 2; exit 0' TERM; touch {armed}; while true; do sleep 0.1; done # {mark}")], terminationGracePeriodSeconds=10)
    body["metadata"]["finalizers"] = ["example.com/hold"]
    create(api, ns, body)
    wait_for(lambda: phase(api, ns, "stopping") == "Running" and armed.exists(), what="running, its trap set")
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/stopping").status_code == 200
    answer = api.patch(f"/api/v1/namespaces/{ns}/pods/stopping", content=json.dumps(patch), headers={"Content-Type": "application/json-patch+json"})
    assert answer.status_code == 200, answer.text
    still = get_pod(api, ns, "stopping")
    assert still is not None and still["metadata"]["deletionGracePeriodSeconds"] == 10  # the kubelet is stopping it
    wait_for(lambda: get_pod(api, ns, "stopping") is None and not processes(mark), timeout=15, what="gone once stopped")


# -- the review's items: what outlives what, adoption identity, readiness gates, image changes -------------

SLEEPER = f"{sys.executable} -c 'import time; time.sleep(300)'"


def kill_marked(mark: str) -> None:
    for process in processes(mark):
        with contextlib.suppress(psutil.Error, OSError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            process.kill()


def test_what_a_container_backgrounds_ends_with_it(api: httpx.Client, ns: str) -> None:
    mark = marker()
    try:
        create(api, ns, pod("bg", [sh("main", f"{SLEEPER} {mark} & sleep 0.5; exit 0")], restartPolicy="Never"))
        wait_for(lambda: phase(api, ns, "bg") == "Succeeded", what="Succeeded")
        wait_for(lambda: not processes(mark), timeout=5, what="the background process gone with its container")
    finally:
        kill_marked(mark)


def test_readiness_gates_hold_ready_until_their_conditions_hold(api: httpx.Client, ns: str) -> None:
    create(api, ns, pod("gated", [sh("main", "sleep 300")], readinessGates=[{"conditionType": "example.com/lb"}]))

    def ready() -> dict[str, Any]:
        p = get_pod(api, ns, "gated") or {}
        return {c["type"]: c for c in (p.get("status") or {}).get("conditions") or []}

    wait_for(lambda: ready().get("ContainersReady", {}).get("status") == "True", what="ContainersReady")
    time.sleep(0.3)
    held = ready()["Ready"]
    assert (held["status"], held["reason"]) == ("False", "ReadinessGatesNotReady")
    assert held["message"] == 'corresponding condition of pod readiness gate "example.com/lb" does not exist.'
    patch = {"status": {"conditions": [{"type": "example.com/lb", "status": "True"}]}}
    response = api.patch(f"/api/v1/namespaces/{ns}/pods/gated/status", json=patch, headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert response.status_code == 200, response.text
    wait_for(lambda: ready()["Ready"]["status"] == "True", what="Ready once the gate holds")


def test_an_image_change_restarts_the_container(api: httpx.Client, ns: str) -> None:
    mark = marker()
    try:
        main = {"name": "main", "image": "busybox", "command": [sys.executable, "-c", "import time; time.sleep(300)", mark]}
        create(api, ns, pod("img", [main], restartPolicy="Never"))
        wait_for(lambda: len(processes(mark)) == 1, what="running")
        first = processes(mark)[0].pid
        patch = {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}
        response = api.patch(f"/api/v1/namespaces/{ns}/pods/img", json=patch, headers={"Content-Type": "application/strategic-merge-patch+json"})
        assert response.status_code == 200, response.text

        def restarted() -> bool:
            p = get_pod(api, ns, "img")
            status = container_status(p, "main") if p else {}
            return status.get("restartCount") == 1 and "running" in status.get("state", {}) and status.get("image") == "busybox:1.37"

        wait_for(restarted, what="restarted with the new image")
        assert [p.pid for p in processes(mark)] != [first] and len(processes(mark)) == 1
        assert "definition changed, will be restarted" in " ".join(e["message"] for e in events(api, ns, "img"))
    finally:
        kill_marked(mark)


def test_a_failed_adoption_kills_the_old_copy_and_a_start_without_the_kubelet_stops_what_ran(tmp_path: Path) -> None:
    mark = marker()
    data = tmp_path / "data"
    secret = tmp_path / "secret"
    secret.write_text("not for the log\n")
    # closes the read ends of its pipes the kubelet gave it and opens a file under the same numbers
    program = f"import os,time; os.closerange(3, 1024); fds=[os.open({str(secret)!r}, os.O_RDONLY) for _ in range(60)]; print('up', flush=True); time.sleep(300)"
    try:
        first = start_kubelet(data, "--allow-anonymous", in_memory=False)
        with first.client() as api:
            create(api, "default", pod("reuse", [{"name": "main", "image": "x", "command": [sys.executable, "-c", program, mark]}]))
            create(api, "default", pod("plain", [sh("main", f"{SLEEPER} {mark}-plain & wait # {mark}")]))
            wait_for(lambda: len(processes(mark)) == 3, what="running")
            time.sleep(0.5)
        old = {p.pid for p in processes(mark)}
        first.stop(signal.SIGKILL)

        second = start_kubelet(data, "--allow-anonymous", in_memory=False)
        try:
            with second.client() as api:
                def replaced() -> bool:
                    p = get_pod(api, "default", "reuse")
                    return p is not None and container_status(p, "main").get("restartCount") == 1 and "running" in container_status(p, "main")["state"]

                wait_for(replaced, what="the container that could not be adopted started again")
                time.sleep(1)
                now = processes(mark)
                reuse = [p for p in now if program in " ".join(p.cmdline())]
                assert len(reuse) == 1 and reuse[0].pid not in old  # the old copy was killed, never two
                assert len(now) == 3 and {p.pid for p in now if p not in reuse} <= old  # the other adopted
                assert "not for the log" not in api.get("/api/v1/namespaces/default/pods/reuse/log").text
        finally:
            second.stop(signal.SIGKILL)

        third = start_emulator(data, "--allow-anonymous", in_memory=False)  # the kubelet off
        try:
            wait_for(lambda: not processes(mark), timeout=10, what="what the killed run left, stopped")
            with third.client() as api:
                p = get_pod(api, "default", "plain")
                assert p is not None
                ready = next(c for c in p["status"]["conditions"] if c["type"] == "Ready")
                assert (ready["status"], ready["reason"]) == ("False", "KubeletOff")
                terminated = container_status(p, "main")["state"]["terminated"]
                assert terminated["reason"] == "ContainerStatusUnknown" and "without --kubelet" in terminated["message"]
        finally:
            third.stop(timeout=30)
    finally:
        kill_marked(mark)


def test_exec_sessions_end_with_their_pod_and_never_hang_on_a_background_job(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    mark = marker()
    try:
        create(api, ns, pod("ex", [sh("main", "sleep 300")], terminationGracePeriodSeconds=1))
        wait_for(lambda: phase(api, ns, "ex") == "Running", what="Running")
        began = time.monotonic()
        done = subprocess.run(kubectl.argv("exec", "ex", "-n", ns, "--", "sh", "-c", f"{SLEEPER} {mark} >/dev/null 2>&1 &"),
                              capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        assert done.returncode == 0 and time.monotonic() - began < 5  # it does not wait for the background job
        wait_for(lambda: not processes(mark), timeout=5, what="what the session left, gone with it")
        running = subprocess.Popen(kubectl.argv("exec", "ex", "-n", ns, "--", "sh", "-c", f"{SLEEPER} {mark}"),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: processes(mark), what="the exec running")
            api.delete(f"/api/v1/namespaces/{ns}/pods/ex")
            wait_for(lambda: not processes(mark), timeout=10, what="the exec gone with its pod")
            running.wait(timeout=10)
        finally:
            running.kill()
            running.wait()
    finally:
        kill_marked(mark)


def test_in_memory_exec_sessions_die_with_the_emulator(tmp_path: Path) -> None:
    mark = marker()
    emu = start_kubelet(tmp_path / "data", "--allow-anonymous")
    running: subprocess.Popen[bytes] | None = None
    try:
        with emu.client() as api:
            create(api, "default", pod("host", [sh("main", "sleep 300")]))
            wait_for(lambda: phase(api, "default", "host") == "Running", what="Running")
        kubectl = kubectl_for(emu, tmp_path)
        running = subprocess.Popen(kubectl.argv("exec", "host", "--", "sh", "-c", f"{SLEEPER} {mark}"),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: processes(mark), what="the exec running")
        emu.stop(signal.SIGKILL)  # the reaper knows exec sessions too
        wait_for(lambda: not processes(mark), timeout=5, what="the exec gone with the emulator")
    finally:
        emu.stop()
        if running is not None:
            running.kill()
            running.wait()
        kill_marked(mark)


def test_removing_a_pod_with_many_files_keeps_the_api_answering(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    files = 80000  # removing them takes ~0.5 s: on the event loop, /healthz would wait that long
    script = f"import os; [open(os.path.join('/data', str(i)), 'w').close() for i in range({files})]; open('/data/done', 'w').close(); import time; time.sleep(300)"
    spec = {"name": "main", "image": "x", "command": [sys.executable, "-c", script], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    created = create(api, ns, pod("many", [spec], volumes=[{"name": "data", "emptyDir": {}}], terminationGracePeriodSeconds=0))
    pods_dir = next((d for d in Path(tempfile.gettempdir()).glob("emulator-pods-*") if (d / created["metadata"]["uid"]).is_dir()), None)
    assert pods_dir is not None
    wait_for(lambda: list((pods_dir / created["metadata"]["uid"]).rglob("done")), timeout=60, what="the files written")
    api.delete(f"/api/v1/namespaces/{ns}/pods/many")
    worst = 0.0
    deadline = time.monotonic() + 10
    while get_pod(api, ns, "many") is not None or (pods_dir / created["metadata"]["uid"]).exists():
        began = time.monotonic()
        assert api.get("/healthz").status_code == 200
        worst = max(worst, time.monotonic() - began)
        assert time.monotonic() < deadline, "the pod's directory was not removed"
        time.sleep(0.005)
    assert worst < 0.25, f"/healthz took {worst:.3f}s while the pod's {files} files were removed"
