"""`emulator run` with the real server and real processes: it registers a pod, injects the variables,
marks the pod Ready once the process listens, and deregisters when the process exits or on Ctrl-C.

The process under test is a small Python HTTP server (`python -c CHILD`) that writes its environment to
a file first, so the test sees exactly what `run` gave it.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import ROOT, Emulator, free_port

# argv: OUT PORT DELAY EXIT_CODE. Writes {"pid", "env"} to OUT; with PORT 0 exits with EXIT_CODE at once,
# else listens on $POD_IP:PORT after DELAY seconds and answers "hello from $POD_NAME".
CHILD = r"""
import http.server, json, os, sys, time
out, port, delay, code = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
with open(out + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "env": dict(os.environ)}, f)
os.replace(out + ".tmp", out)
if not port:
    sys.exit(code)
time.sleep(delay)

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {os.environ['POD_NAME']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer((os.environ["POD_IP"], port), Hello).serve_forever()
"""


# Same argv and report as CHILD, but ignores SIGTERM and SIGINT (before reporting) and never exits.
STUBBORN_CHILD = r"""
import json, os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
out = sys.argv[1]
with open(out + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "env": dict(os.environ)}, f)
os.replace(out + ".tmp", out)
while True:
    time.sleep(60)
"""

# `emulator run` (argv after the script) with a SIGTERM that arrives while CMD is being started: after
# the process exists, before `run` has it in hand.
SIGNAL_WHILE_STARTING = r"""
import asyncio, os, signal, sys
from emulator.cli.main import main

real_spawn = asyncio.create_subprocess_exec

async def spawn_then_signal(*args, **kwargs):
    process = await real_spawn(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.2)  # the loop runs run's signal handler now
    return process

asyncio.create_subprocess_exec = spawn_then_signal
raise SystemExit(main(sys.argv[1:]))
"""


# argv: OUT N. Starts N grandchildren that sleep, writes {"pid", "children"} to OUT, then sleeps too
# (or exits at once when a third argument says so, leaving its grandchildren running).
TREE = r"""
import json, os, subprocess, sys, time
out, n = sys.argv[1], int(sys.argv[2])
kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"]).pid for _ in range(n)]
with open(out + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "children": kids}, f)
os.replace(out + ".tmp", out)
if len(sys.argv) < 4:
    time.sleep(3600)
"""


@dataclass
class Run:
    """One `emulator run` subprocess and what its child reported."""

    proc: subprocess.Popen[str]
    report: Path
    log: Path

    def child(self, timeout: float = 15) -> dict[str, Any]:
        wait_for(self.report.exists, timeout, f"the child never wrote {self.report}:\n{self.output()}")
        return json.loads(self.report.read_text())

    def wait(self, timeout: float = 15) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"emulator run did not exit:\n{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def wait_for(check: Callable[[], Any], timeout: float = 10, message: str = "condition not met") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(message)


@pytest.fixture
def start_run(emulator: Emulator, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start(
        *run_args: str,
        port: int = 0,
        delay: float = 0.0,
        exit_code: int = 0,
        server: str | None = None,
        child: str = CHILD,
        emulator_cli: tuple[str, ...] = ("-m", "emulator"),
        command: list[str] | None = None,
    ) -> Run:
        """`command` (with `{report}` standing for the report's path) replaces `python -c CHILD ...`."""
        n = len(runs)
        report, log = tmp_path / f"child-{n}.json", tmp_path / f"run-{n}.log"
        args = [sys.executable, *emulator_cli, "run", "--server", server or emulator.api_url, *run_args]
        if command is not None:
            args += ["--", *(word.replace("{report}", str(report)) for word in command)]
        else:
            args += ["--", sys.executable, "-c", child, str(report), str(port), str(delay), str(exit_code)]
        with log.open("w") as out:
            # no terminal anywhere, as under a supervisor: `run` forwards every SIGINT itself
            proc = subprocess.Popen(
                args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        runs.append(Run(proc, report, log))
        return runs[-1]

    yield start
    for run in runs:
        if run.proc.poll() is None:
            left = descendants(run.proc.pid)
            run.proc.kill()  # as a supervisor or the OOM killer would: `run` cannot clean up
            run.proc.wait()
            assert_gone(left, f"`emulator run` was killed, its processes live on:\n{run.output()}")


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def running(process: psutil.Process) -> bool:
    try:
        return process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def pid_running(pid: int) -> bool:
    try:
        return running(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def assert_gone(processes: list[psutil.Process], message: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while any(running(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [f"{p.pid}: {' '.join(p.cmdline())[:120]}" for p in processes if running(p)]
    assert not alive, message + "\nstill running:\n" + "\n".join(alive)


def get_pod(api: httpx.Client, name: str, namespace: str = "default") -> dict[str, Any] | None:
    response = api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
    return response.json() if response.status_code == 200 else None


def ready(pod: dict[str, Any] | None) -> str | None:
    if pod is None:
        return None
    return next((c["status"] for c in pod["status"].get("conditions", []) if c["type"] == "Ready"), None)


def endpoint_groups(api: httpx.Client, service: str) -> dict[str, list[str]]:
    subsets = api.get(f"/api/v1/namespaces/default/endpoints/{service}").json().get("subsets") or []
    return {group: [a["ip"] for s in subsets for a in s.get(group, [])] for group in ("addresses", "notReadyAddresses")}


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0) until reaped; it no longer runs either
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def test_run_registers_injects_serves_and_deregisters_on_sigint(
    api: httpx.Client, start_run: Callable[..., Run]
) -> None:
    api.post(
        "/api/v1/namespaces/default/services",
        json={
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
        },
    ).raise_for_status()
    web_ip = api.get("/api/v1/namespaces/default/services/web").json()["spec"]["clusterIP"]
    k8s_ip = api.get("/api/v1/namespaces/default/services/kubernetes").json()["spec"]["clusterIP"]
    port = free_port()
    run = start_run(
        "--name", "web-1", "--label", "app=web", "--label", "tier=front", "--port", f"http={port}", port=port, delay=1.0
    )

    # registered at once, Running but not Ready: the process does not listen yet
    pod = wait_for(lambda: get_pod(api, "web-1"), message=f"the pod was never created:\n{run.output()}")
    assert ready(pod) == "False" and pod["status"]["phase"] == "Running"
    assert pod["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert pod["spec"]["containers"][0]["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    pod_ip = pod["status"]["podIP"]
    assert pod_ip.startswith("127.244."), "a pod IP of its own, from the pod range"

    # the child got the service variables and its identity
    env = run.child()["env"]
    assert (env["POD_NAME"], env["POD_NAMESPACE"], env["POD_IP"]) == ("web-1", "default", pod_ip)
    assert env["WEB_SERVICE_HOST"] == web_ip and env["WEB_SERVICE_PORT_HTTP"] == "8080"
    assert env["WEB_PORT_8080_TCP"] == f"tcp://{web_ip}:8080"
    assert env["KUBERNETES_SERVICE_HOST"] == k8s_ip and env["KUBERNETES_PORT_443_TCP_PORT"] == "443"
    assert endpoint_groups(api, "web") == {"addresses": [], "notReadyAddresses": [pod_ip]}

    # Ready once the port accepts connections; then the service has it as a ready endpoint
    wait_for(lambda: ready(get_pod(api, "web-1")) == "True", message=f"the pod never became Ready:\n{run.output()}")
    wait_for(
        lambda: endpoint_groups(api, "web")["addresses"] == [pod_ip], message="the pod never became a ready endpoint"
    )
    assert httpx.get(f"http://{pod_ip}:{port}/", timeout=5).text == "hello from web-1"

    # Ctrl-C: the child is stopped, the pod deleted, and `run` exits as the child did (SIGINT → 130)
    child_pid = run.child()["pid"]
    run.proc.send_signal(signal.SIGINT)
    assert run.wait() == 130, run.output()
    assert get_pod(api, "web-1") is None
    wait_for(lambda: process_gone(child_pid), 5, "the child still runs after Ctrl-C")
    assert endpoint_groups(api, "web") == {"addresses": [], "notReadyAddresses": []}
    assert "pod default/web-1 deleted" in run.output()


def test_run_is_reachable_through_its_service(api: httpx.Client, start_run: Callable[..., Run]) -> None:
    api.post(
        "/api/v1/namespaces/default/services",
        json={
            "metadata": {"name": "hello"},
            "spec": {"selector": {"app": "hello"}, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
        },
    ).raise_for_status()
    cluster_ip = api.get("/api/v1/namespaces/default/services/hello").json()["spec"]["clusterIP"]
    port = free_port()
    run = start_run("--name", "hello", "--label", "app=hello", "--port", f"http={port}", port=port)
    wait_for(lambda: ready(get_pod(api, "hello")) == "True", message=f"the pod never became Ready:\n{run.output()}")
    pod_ip = run.child()["env"]["POD_IP"]
    wait_for(
        lambda: endpoint_groups(api, "hello")["addresses"] == [pod_ip], message="the pod never became a ready endpoint"
    )

    def through_service() -> httpx.Response | None:
        try:
            answer = httpx.get(f"http://{cluster_ip}:8080/", timeout=5)
        except httpx.ConnectError as exc:
            pytest.skip(
                f"nothing listens on the cluster IP {cluster_ip}:8080 ({exc}): the service proxy is not wired into `serve` yet"
            )
        # the proxy follows Endpoints events: until it has seen this one, it answers 503
        return answer if answer.status_code != 503 else None

    answer = wait_for(through_service, 5, "the proxy kept answering 503 for a ready endpoint")
    assert answer.status_code == 200 and answer.text == "hello from hello"
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM


def test_the_childs_exit_status_is_propagated_and_the_pod_deleted(
    api: httpx.Client, start_run: Callable[..., Run]
) -> None:
    run = start_run("--name", "job", "--namespace", "default", exit_code=3)
    assert run.wait() == 3, run.output()
    assert run.child()["env"]["POD_NAME"] == "job"
    assert get_pod(api, "job") is None
    assert "exited with status 3" in run.output()


def test_host_network_uses_the_nodes_address(api: httpx.Client, start_run: Callable[..., Run]) -> None:
    port = free_port()
    run = start_run("--name", "hostnet", "--host-network", "--port", str(port), port=port)
    env = run.child()["env"]
    assert env["POD_IP"] == "127.0.0.1"
    pod = wait_for(
        lambda: get_pod(api, "hostnet") if ready(get_pod(api, "hostnet")) == "True" else None, message=run.output()
    )
    assert pod["spec"]["hostNetwork"] is True and pod["status"]["podIP"] == "127.0.0.1"
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "hello from hostnet"
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM
    assert get_pod(api, "hostnet") is None


def test_deleting_the_pod_through_the_api_stops_the_process(api: httpx.Client, start_run: Callable[..., Run]) -> None:
    port = free_port()
    run = start_run("--name", "doomed", "--port", str(port), port=port)
    wait_for(lambda: ready(get_pod(api, "doomed")) == "True", message=run.output())
    api.delete("/api/v1/namespaces/default/pods/doomed").raise_for_status()
    # the kubelet's way: SIGTERM to the process
    assert run.wait() == 128 + signal.SIGTERM, run.output()
    assert "pod deleted through the API" in run.output()


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period_of_its_deleted_pod(
    api: httpx.Client, start_run: Callable[..., Run]
) -> None:
    run = start_run("--name", "stubborn", "--grace-period", "1", child=STUBBORN_CHILD)
    child_pid = run.child()["pid"]
    pod = get_pod(api, "stubborn")
    assert pod is not None and pod["spec"]["terminationGracePeriodSeconds"] == 1
    deleted_at = time.monotonic()
    api.delete("/api/v1/namespaces/default/pods/stubborn").raise_for_status()
    assert run.wait() == 128 + signal.SIGKILL, run.output()
    assert time.monotonic() - deleted_at >= 1.0, "killed before its grace period was over"
    assert process_gone(child_pid)
    assert "pod deleted through the API: stopping" in run.output()
    assert "still runs 1s after it was asked to stop: killing it (SIGKILL)" in run.output()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_process_that_ignores_the_forwarded_signal_is_killed_after_the_grace_period(
    api: httpx.Client, start_run: Callable[..., Run], signum: int
) -> None:
    run = start_run("--name", "stubborn", "--grace-period", "1", child=STUBBORN_CHILD)
    child_pid = run.child()["pid"]
    signalled_at = time.monotonic()
    run.proc.send_signal(signum)
    assert run.wait() == 128 + signal.SIGKILL, run.output()
    assert time.monotonic() - signalled_at >= 1.0, "killed before its grace period was over"
    assert process_gone(child_pid)
    assert get_pod(api, "stubborn") is None


def test_the_grace_period_defaults_to_30_seconds(api: httpx.Client, start_run: Callable[..., Run]) -> None:
    run = start_run("--name", "patient", port=free_port(), delay=30)
    pod = wait_for(lambda: get_pod(api, "patient"), message=run.output())
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM


def test_a_signal_while_the_process_is_being_started_reaches_it(
    api: httpx.Client, start_run: Callable[..., Run]
) -> None:
    run = start_run("--name", "early", port=free_port(), delay=30, emulator_cli=("-c", SIGNAL_WHILE_STARTING))
    child_pid = run.child()["pid"]
    assert run.wait() == 128 + signal.SIGTERM, run.output()
    assert process_gone(child_pid)
    assert get_pod(api, "early") is None


def test_deletion_is_seen_after_an_event_longer_than_a_read_buffer(
    api: httpx.Client, start_run: Callable[..., Run]
) -> None:
    """A watch event is one line holding the whole pod. aiohttp's line reader refuses lines over its
    buffer limit (128 KiB before aiohttp 3.14, 512 KiB since): a 200 KB annotation and a 700 KB status
    message make the pod's MODIFIED events longer than either."""
    run = start_run("--name", "annotated", port=free_port(), delay=30)
    run.child()
    pod = "/api/v1/namespaces/default/pods/annotated"
    merge = {"Content-Type": "application/merge-patch+json"}
    api.patch(pod, json={"metadata": {"annotations": {"example.com/big": "x" * 200_000}}}, headers=merge).raise_for_status()
    condition = {"type": "example.com/Big", "status": "True", "message": "y" * 700_000}
    api.patch(pod + "/status", json={"status": {"conditions": [condition]}}, headers=merge).raise_for_status()
    api.delete(pod).raise_for_status()
    assert run.wait() == 128 + signal.SIGTERM, run.output()
    assert "pod deleted through the API" in run.output()


def test_a_taken_name_is_refused_and_the_process_not_started(api: httpx.Client, start_run: Callable[..., Run]) -> None:
    first = start_run("--name", "twin", "--port", "9", port=free_port(), delay=30)
    uid = wait_for(lambda: get_pod(api, "twin"), message=first.output())["metadata"]["uid"]
    second = start_run("--name", "twin")
    assert second.wait() == 1
    assert 'error: pods "twin" already exists (another `emulator run`?)' in second.output()
    assert not second.report.exists()
    # the refused run must not delete the pod of the one that owns the name
    assert get_pod(api, "twin")["metadata"]["uid"] == uid and first.proc.poll() is None


def test_run_says_what_to_do_when_the_emulator_is_not_running(start_run: Callable[..., Run]) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    run = start_run("--name", "web", server=server)
    assert run.wait() == 1
    assert (
        run.output()
        == f"error: cannot reach the emulator API at {server}: is `make run` running? Set --server or EMULATOR_SERVER\n"
    )
    assert not run.report.exists(), "the process must not start without its pod"


def test_bad_arguments_are_reported_before_anything_happens(emulator: Emulator) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "emulator", "run", "--server", emulator.api_url, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    no_command = run("--name", "web")
    assert no_command.returncode == 2 and "no command to run: put it after --" in no_command.stderr
    bad_port = run("--name", "web", "--port", "http:8080", "--", "true")
    assert (
        bad_port.returncode == 2 and 'invalid port "http:8080": use PORT, NAME=PORT or NAME=PORT/udp' in bad_port.stderr
    )
    missing = run("--name", "web", "--", "/no/such/program")
    assert missing.returncode == 127 and "cannot start '/no/such/program'" in missing.stderr
    assert httpx.get(f"{emulator.api_url}/api/v1/namespaces/default/pods/web").status_code == 404


# Counts the SIGINTs it gets during half a second after the first, writes the count and exits 0.
CTRL_C_CHILD = r"""
import os, signal, sys, time
seen = []
signal.signal(signal.SIGINT, lambda *_: seen.append(1))
open(sys.argv[1] + ".started", "w").close()
while not seen:
    time.sleep(0.01)
time.sleep(0.5)
with open(sys.argv[1], "w") as f:
    f.write(str(len(seen)))
"""


def test_ctrl_c_in_a_terminal_reaches_the_process_once(emulator: Emulator, api: httpx.Client, tmp_path: Path) -> None:
    """In a terminal, Ctrl-C signals the whole foreground group (`run` and CMD): `run` must not send a
    second SIGINT that would interrupt CMD's own clean-up."""
    import fcntl
    import pty
    import termios

    count = tmp_path / "sigints"
    master, slave = pty.openpty()

    def own_terminal() -> None:  # a new session whose controlling terminal is the pty, as in a shell
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    args = [sys.executable, "-m", "emulator", "run", "--server", emulator.api_url, "--name", "term"]
    args += ["--", sys.executable, "-c", CTRL_C_CHILD, str(count)]
    proc = subprocess.Popen(args, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, preexec_fn=own_terminal)
    os.close(slave)
    try:
        wait_for(lambda: Path(str(count) + ".started").exists(), 15, "the child never started")
        assert get_pod(api, "term") is not None
        os.write(master, b"\x03")  # what the terminal does on Ctrl-C
        assert proc.wait(15) == 0
        assert count.read_text() == "1"
        assert get_pod(api, "term") is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_port_and_server_arguments() -> None:
    """The pure parts of the command line: port forms and where the API is looked for."""
    from emulator.cli.apiclient import server_url
    from emulator.cli.run import parse_port

    assert parse_port("8080") == {"containerPort": 8080, "protocol": "TCP"}
    assert parse_port("http=8080") == {"containerPort": 8080, "protocol": "TCP", "name": "http"}
    assert parse_port("dns=53/udp") == {"containerPort": 53, "protocol": "UDP", "name": "dns"}
    assert server_url("127.0.0.1:9000", {}) == "http://127.0.0.1:9000"
    assert server_url(None, {"EMULATOR_SERVER": "http://10.0.0.5:8080/"}) == "http://10.0.0.5:8080"
    assert server_url(None, {"EMULATOR_API_PORT": "9123"}) == "http://127.0.0.1:9123"
    assert server_url(None, {"EMULATOR_API_HOST": "0.0.0.0"}) == "http://127.0.0.1:8080"
    assert server_url(None, {}) == "http://127.0.0.1:8080"


# --- no process outlives `run` ---------------------------------------------------------------------


@pytest.mark.parametrize("grandchildren", [0, 2], ids=["sleeper", "with-grandchildren"])
def test_killing_run_with_sigkill_leaves_no_process_behind(
    api: httpx.Client, start_run: Callable[..., Run], grandchildren: int
) -> None:
    run = start_run("--name", "orphan", command=[sys.executable, "-c", TREE, "{report}", str(grandchildren)])
    report = run.child()
    tree = descendants(run.proc.pid)
    assert {report["pid"], *report["children"]} <= {p.pid for p in tree}, run.output()
    # CMD and what it started share a process group of their own (the container), not `run`'s
    cmd = psutil.Process(report["pid"])
    assert os.getpgid(cmd.pid) == cmd.pid != os.getpgid(run.proc.pid)
    assert all(os.getpgid(pid) == cmd.pid for pid in report["children"])
    run.proc.kill()
    run.proc.wait()
    assert_gone(tree, f"`emulator run` was killed (SIGKILL), its processes live on:\n{run.output()}")
    # `run` could not delete its pod: that is left to `kubectl delete pod`, as with a dead node
    assert get_pod(api, "orphan") is not None


def test_what_the_process_leaves_in_its_group_goes_when_it_exits(
    api: httpx.Client, start_run: Callable[..., Run]
) -> None:
    """As a container's processes go when its main process exits."""
    run = start_run("--name", "parent", command=[sys.executable, "-c", TREE, "{report}", "2", "exit"])
    assert run.wait() == 0, run.output()
    left = [psutil.Process(pid) for pid in run.child()["children"] if psutil.pid_exists(pid)]
    assert_gone(left, f"the grandchildren outlived CMD:\n{run.output()}", timeout=1)
    assert "left running in its process group (SIGKILL)" in run.output()
    assert get_pod(api, "parent") is None


def test_ctrl_z_stops_the_process_with_run_and_fg_resumes_it(start_run: Callable[..., Run]) -> None:
    run = start_run("--name", "pausable", command=[sys.executable, "-c", TREE, "{report}", "1"])
    report = run.child()
    tree = [psutil.Process(pid) for pid in (run.proc.pid, report["pid"], *report["children"])]

    def status_is(*wanted: str) -> bool:
        return all(p.status() in wanted for p in tree)

    run.proc.send_signal(signal.SIGTSTP)
    wait_for(lambda: status_is(psutil.STATUS_STOPPED), 5, f"not all stopped: {[p.status() for p in tree]}")
    run.proc.send_signal(signal.SIGCONT)  # what `fg` and `bg` send to the job, i.e. to `run`
    wait_for(lambda: status_is(psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING), 5, "not all resumed")
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM, run.output()


# --- $(VAR) in CMD and ARGS ------------------------------------------------------------------------


def test_var_references_in_the_command_are_expanded_like_the_kubelet_does(
    api: httpx.Client, start_run: Callable[..., Run]
) -> None:
    k8s_ip = api.get("/api/v1/namespaces/default/services/kubernetes").json()["spec"]["clusterIP"]
    args = ["$(POD_IP)", "$$(POD_IP)", "$(NOPE)", "$(POD_NAME).$(POD_NAMESPACE)@$(KUBERNETES_SERVICE_HOST)"]
    args += ["$(HOME)"]  # the shell's variables are the shell's to expand ($HOME), not the pod's
    run = start_run("--name", "args", command=[sys.executable, "-c", "import sys; print(sys.argv)", *args])
    assert run.wait() == 0, run.output()
    pod_ip = next(line for line in run.output().splitlines() if "registered with IP" in line).rsplit(" ", 1)[1]
    printed = next(line for line in run.output().splitlines() if line.startswith("["))
    assert ast.literal_eval(printed) == ["-c", pod_ip, "$(POD_IP)", "$(NOPE)", f"args.default@{k8s_ip}", "$(HOME)"]


def test_the_readme_example_serves_on_the_pod_ip(api: httpx.Client, start_run: Callable[..., Run]) -> None:
    port = free_port()
    run = start_run(
        "--name", "api", "--port", f"http={port}",
        command=[sys.executable, "-m", "http.server", str(port), "--bind", "$(POD_IP)"],
    )
    pod = wait_for(
        lambda: get_pod(api, "api") if ready(get_pod(api, "api")) == "True" else None, 15, run.output()
    )
    assert httpx.get(f"http://{pod['status']['podIP']}:{port}/", timeout=5).status_code == 200
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM, run.output()


# --- the suite's own check: no process left behind -------------------------------------------------


def test_the_session_fails_and_names_the_processes_a_test_left_behind(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    (tmp_path / "test_leaky.py").write_text(
        textwrap.dedent(
            f"""
            import subprocess, sys, time

            def test_leaks():
                sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", "leaky-sleeper"])
                # an orphan: its shell exits at once, so its parent is no longer the session's
                subprocess.run(["sh", "-c", "sleep 3601 & echo $! > {pids}.orphan"], check=True)
                open({str(pids)!r}, "w").write(str(sleeper.pid))
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", "test_leaky.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TESTS_LEFTOVER_GRACE_SECONDS": "0.5"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, out
    assert "1 passed" in out and "still ran at the end of the session (now killed)" in out, out
    sleeper, orphan = int(pids.read_text()), int(Path(f"{pids}.orphan").read_text())
    assert f"pid {sleeper} " in out and "leaky-sleeper" in out, out
    assert f"pid {orphan} " in out and "sleep 3601" in out, out
    assert not pid_running(sleeper) and not pid_running(orphan)
