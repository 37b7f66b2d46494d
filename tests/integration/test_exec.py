"""pods/exec with real kubectl 1.32 and the Python client, against pods the kubelet runs: stdout, stderr,
stdin and exit codes over WebSocket v5 (kubectl's default) and SPDY (its fallback), a terminal (-t), -c,
`kubectl cp` both ways, the Python client's `stream()` (v5 and v4), who may exec (create on pods/exec, also
for a WebSocket's GET), and web pages refused at the door."""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websocket
import yaml
from kubernetes import client as k8s
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from tests.conftest import Emulator, require_tool
from tests.integration.kubectl_support import Kubectl
from tests.integration.test_kubelet import create, kubectl_for, phase, pod, sh, start_kubelet, wait_for

pytestmark = pytest.mark.timeout(120)

SPDY = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_kubelet(tmp_path_factory.mktemp("exec-data"), "--allow-anonymous")
    yield emulator
    emulator.stop(timeout=30)


@pytest.fixture(scope="module")
def kubectl(emu: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_for(emu, tmp_path_factory.mktemp("kubectl-home"))


@pytest.fixture
def shell(emu: Emulator, ns: str) -> str:
    """A running two-container pod; its first container is kubectl's default."""
    with emu.client() as api:
        create(api, ns, pod("shell", [sh("main", "sleep 3600"), sh("side", "sleep 3600", env=[{"name": "WHO", "value": "side"}, {"name": "LC_CTYPE", "value": "C"}])]))
        wait_for(lambda: phase(api, ns, "shell") == "Running", 20, "the pod to run")
    return "shell"


def run(kubectl: Kubectl, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kubectl.argv(*args), input=stdin, capture_output=True, text=True, timeout=30,
        stdin=None if stdin is not None else subprocess.DEVNULL, env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("protocol", ["websocket", "spdy"])
def test_exec_output_stdin_and_exit_codes(kubectl: Kubectl, ns: str, shell: str, protocol: str) -> None:
    env = SPDY if protocol == "spdy" else None
    done = run(kubectl, "-n", ns, "exec", shell, "--", "sh", "-c", "echo out; echo err >&2; exit 3", env=env)
    assert (done.returncode, done.stdout) == (3, "out\n")
    assert "err\n" in done.stderr and "command terminated with exit code 3" in done.stderr
    done = run(kubectl, "-n", ns, "exec", "-i", shell, "--", "sh", "-c", "tr a-z A-Z; echo $HOSTNAME", stdin="hello\n" * 20000, env=env)
    assert (done.returncode, done.stdout) == (0, "HELLO\n" * 20000 + "shell\n"), done.stderr
    done = run(kubectl, "-n", ns, "exec", shell, "-c", "side", "--", "sh", "-c", "echo $WHO", env=env)
    assert (done.returncode, done.stdout) == (0, "side\n")
    # in the container's working directory: without workingDir, the image's default, /
    assert run(kubectl, "-n", ns, "exec", shell, "--", "pwd", env=env).stdout == "/\n"
    # with the container's environment as given (the sandbox's Python start sets LC_CTYPE under the C locale)
    names = {line.split("=", 1)[0] for line in run(kubectl, "-n", ns, "exec", shell, "--", "env", env=env).stdout.splitlines()}
    assert "PATH" in names and "LC_CTYPE" not in names, names
    assert "LC_CTYPE=C\n" in run(kubectl, "-n", ns, "exec", shell, "-c", "side", "--", "env", env=env).stdout
    # a busybox container's sh is like its ash, which knows [[ ]]
    assert run(kubectl, "-n", ns, "exec", shell, "--", "sh", "-c", "[[ -d / ]] && echo ash-like", env=env).stdout == "ash-like\n"


def test_exec_errors_are_worded_as_the_api_server_words_them(kubectl: Kubectl, emu: Emulator, ns: str, shell: str) -> None:
    done = run(kubectl, "-n", ns, "exec", shell, "-c", "nope", "--", "true")
    assert done.returncode == 1 and "container nope is not valid for pod shell" in done.stderr
    done = run(kubectl, "-n", ns, "exec", shell, "--", "no-such-command-here")
    assert done.returncode == 1
    assert 'exec: "no-such-command-here": executable file not found in $PATH' in done.stderr
    with emu.client() as api:
        create(api, ns, pod("done", [sh("c", "exit 0")], restartPolicy="Never"))
        wait_for(lambda: phase(api, ns, "done") == "Succeeded", 20, "the pod to finish")
        refused = api.post(f"/api/v1/namespaces/{ns}/pods/done/exec?command=true&stdout=true")
    assert refused.status_code == 400 and "is not running" in refused.json()["message"]


def on_terminal(argv: list[str], protocol: str, answers: list[tuple[bytes, bytes]], timeout: float = 20) -> tuple[str, int | None]:
    """`argv` (kubectl) run on a real terminal of 100x30; each (seen, typed) answer types `typed` once
    `seen` is in the output, in order. The output and the exit code (None: killed at the timeout)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on the terminal
        import fcntl
        import struct
        import termios

        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.environ.update(SPDY if protocol == "spdy" else {})
        os.execv(argv[0], argv)
    output = b""
    deadline = time.monotonic() + timeout
    pending = list(answers)
    status = None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            output += chunk
        if pending and pending[0][0] in output:
            os.write(fd, pending.pop(0)[1])
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            break
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        status = None
    os.close(fd)
    return output.decode(errors="replace"), os.waitstatus_to_exitcode(status) if status is not None else None


@pytest.mark.parametrize("protocol", ["websocket", "spdy"])
def test_exec_with_a_terminal(kubectl: Kubectl, ns: str, shell: str, protocol: str) -> None:
    """kubectl -it under a real terminal of 100x30: the command sees a tty of that size."""
    script = "tty; stty size; echo ctype:${LC_CTYPE:-none}; read x; echo got:$x; exit 4"
    argv = kubectl.argv("-n", ns, "exec", "-it", shell, "--", "sh", "-c", script)
    text, code = on_terminal(argv, protocol, [(b"30 100", b"typed\r")])
    assert "/dev/pts/" in text and "30 100" in text and "got:typed" in text, text
    assert "ctype:none" in text, text  # the terminal's Python step adds nothing to the environment
    assert code == 4, text


def test_kubectl_cp_both_ways(kubectl: Kubectl, ns: str, shell: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / "a.txt").write_text("alpha\n")
    (local / "sub" / "blob.bin").write_bytes(os.urandom(500_000))
    inside = tmp_path / "inside"  # the container shares this machine's files (no sandbox mounts here)
    kubectl.run("-n", ns, "cp", str(local), f"{shell}:{inside}")
    assert (inside / "sub" / "blob.bin").read_bytes() == (local / "sub" / "blob.bin").read_bytes()
    back = tmp_path / "back"
    kubectl.run("-n", ns, "cp", f"{shell}:{inside}", str(back))
    assert (back / "a.txt").read_text() == "alpha\n"
    assert (back / "sub" / "blob.bin").read_bytes() == (local / "sub" / "blob.bin").read_bytes()


def core_api(emu: Emulator) -> k8s.CoreV1Api:
    configuration = k8s.Configuration()
    configuration.host = emu.api_url
    return k8s.CoreV1Api(k8s.ApiClient(configuration))


def test_the_python_clients_stream(emu: Emulator, ns: str, shell: str) -> None:
    api = core_api(emu)
    out = stream(api.connect_get_namespaced_pod_exec, shell, ns, command=["sh", "-c", "echo hi; echo err >&2"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "hi\nerr\n"
    session = stream(api.connect_post_namespaced_pod_exec, shell, ns, command=["sh", "-c", "cat; exit 7"],
                     stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    assert session.subprotocol == "v5.channel.k8s.io"
    session.write_stdin("line one\n")
    assert session.readline_stdout(timeout=5) == "line one"
    session.close_channel(0)  # v5: stdin closed, cat ends
    session.run_forever(timeout=10)
    status = json.loads(session.read_channel(ERROR_CHANNEL))
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


def test_the_older_protocols(emu: Emulator, ns: str, shell: str) -> None:
    """v4: the error channel's Status carries the exit code; v2: only a failure's message."""
    url = emu.api_url.replace("http", "ws", 1) + f"/api/v1/namespaces/{ns}/pods/{shell}/exec?command=/bin/sh&stdin=true&stdout=true&stderr=true"
    for protocol, error in (("v4.channel.k8s.io", {"metadata": {}, "status": "Success"}), ("v2.channel.k8s.io", None)):
        ws = websocket.create_connection(url, subprotocols=[protocol], timeout=10)
        assert ws.getsubprotocol() == protocol
        ws.send_binary(b"\x00echo to-out; echo to-err >&2; exit\n")
        received: dict[int, bytes] = {}
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            received[data[0]] = received.get(data[0], b"") + data[1:]
        ws.close()
        assert (received[1], received[2]) == (b"to-out\n", b"to-err\n")
        assert (json.loads(received[3]) if error else received.get(3, b"")) == (error or b"")


def test_web_pages_may_not_exec(emu: Emulator, ns: str, shell: str) -> None:
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Protocol": "v5.channel.k8s.io"}
    url = f"/api/v1/namespaces/{ns}/pods/{shell}/exec?command=true&stdout=true"
    with emu.client() as api:
        refused = api.get(url, headers={**upgrade, "Origin": "http://evil.example"})
        assert refused.status_code == 403 and "requests from web pages are refused" in refused.json()["message"]
        accepted = api.get(url, headers=upgrade)
        assert accepted.status_code == 101


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_kubelet(tmp_path_factory.mktemp("exec-secured"))
    yield emulator
    emulator.stop(timeout=30)


def test_exec_needs_create_on_pods_exec(secured: Emulator, tmp_path: Path) -> None:
    admin = Kubectl(require_tool("kubectl"), Path(secured.faces["kubeconfig"]), tmp_path / "cache")
    admin.run("create", "namespace", "rbac")
    admin.run("-n", "rbac", "create", "serviceaccount", "bot")
    manifest: dict[str, Any] = pod("shell", [sh("main", "sleep 3600")])
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(manifest))
    admin.run("-n", "rbac", "apply", "-f", str(tmp_path / "pod.yaml"))
    admin.run("-n", "rbac", "wait", "--for=condition=Ready", "pod/shell", "--timeout=30s", timeout=40)
    token = admin.out("-n", "rbac", "create", "token", "bot").strip()
    admin.run("-n", "rbac", "create", "role", "peek", "--verb=get", "--resource=pods,pods/exec")
    admin.run("-n", "rbac", "create", "rolebinding", "peek", "--role=peek", "--serviceaccount=rbac:bot")
    denied = admin.run("--token", token, "-n", "rbac", "exec", "shell", "--", "echo", "hi", ok=False)
    assert denied.returncode != 0
    assert 'cannot create resource "pods/exec" in API group "" in the namespace "rbac"' in denied.stderr
    admin.run("-n", "rbac", "create", "role", "run", "--verb=create", "--resource=pods/exec")
    admin.run("-n", "rbac", "create", "rolebinding", "run", "--role=run", "--serviceaccount=rbac:bot")
    allowed = wait_for(lambda: admin.run("--token", token, "-n", "rbac", "exec", "shell", "--", "echo", "hi", ok=False).stdout, 10, "exec")
    assert allowed == "hi\n"
    with httpx.Client(base_url=secured.api_url, verify=False, timeout=10) as api:
        assert api.get("/api/v1/namespaces/rbac/pods/shell/exec?command=true&stdout=true").status_code == 401


@pytest.mark.parametrize("protocol", ["websocket", "spdy"])
def test_attach_follows_output_to_the_end(emu: Emulator, kubectl: Kubectl, ns: str, protocol: str) -> None:
    script = "sleep 1; i=0; while [ $i -lt 10 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done"
    with emu.client() as api:
        create(api, ns, pod("ticker", [sh("main", script)], restartPolicy="Never"))
        wait_for(lambda: phase(api, ns, "ticker") == "Running", 20, "the pod to run")
    done = run(kubectl, "-n", ns, "attach", "ticker", env=SPDY if protocol == "spdy" else None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("tick 9\n")


def test_the_first_attach_to_a_stdin_once_container_sees_its_output_from_the_start(emu: Emulator, kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    # `kubectl run -i` makes such a container and attaches once it runs: what it printed before that is kept
    # for the first attach (CI lost `kubectl run -i --rm -- sh -c 'echo ...'`'s output to this race); a
    # later attach sees the output from then on, as attach does
    stop = tmp_path / "stop"
    script = f"echo early; while [ ! -e {stop} ]; do echo tick; sleep 0.1; done; echo late"
    with emu.client() as api:
        create(api, ns, pod("once", [{**sh("main", script), "stdin": True, "stdinOnce": True}], restartPolicy="Never"))
        wait_for(lambda: "tick" in api.get(f"/api/v1/namespaces/{ns}/pods/once/log").text, 20, "the loop to run")
    attaches = []
    try:
        for _ in range(2):
            attach = subprocess.Popen(kubectl.argv("-n", ns, "attach", "once"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            attaches.append(attach)
            assert attach.stdout is not None
            attaches.append(attach.stdout.readline())  # it is connected once a line came
        run(kubectl, "-n", ns, "exec", "once", "--", "touch", str(stop))
        first, first_line, second, second_line = attaches
        outputs = [first_line + first.communicate(timeout=30)[0], second_line + second.communicate(timeout=30)[0]]
    finally:
        for attach in attaches:
            if isinstance(attach, subprocess.Popen) and attach.poll() is None:
                attach.kill()
                attach.wait()
    assert outputs[0].startswith("early\ntick\n") and outputs[0].endswith("tick\nlate\n"), outputs[0]
    assert outputs[1].startswith("tick\n") and outputs[1].endswith("tick\nlate\n"), outputs[1]


@pytest.mark.parametrize("protocol", ["websocket", "spdy"])
def test_kubectl_run_it_gives_an_interactive_shell(kubectl: Kubectl, ns: str, protocol: str) -> None:
    # kubectl run -it: a container with stdin, stdinOnce and tty, attached on a terminal of the client's size;
    # without a command it runs its image's CMD, busybox's sh (kubelet/images.py IMAGE_CMD)
    argv = kubectl.argv("-n", ns, "run", "-it", "--rm", "shell", "--image=busybox", "--restart=Never")
    text, code = on_terminal(argv, protocol, [(b"try pressing enter", b"tty; stty size; echo at-$HOSTNAME\r"),
                                              (b"at-shell", b"exit 3\r")], timeout=40)
    assert "/dev/pts/" in text and "30 100" in text and "at-shell" in text, text
    assert code == 3 and 'pod "shell" deleted' in text, text


@pytest.mark.parametrize("protocol", ["websocket", "spdy"])
def test_kubectl_run_i_feeds_stdin_to_its_end(kubectl: Kubectl, ns: str, protocol: str) -> None:
    script = "while read line; do echo got-$line; done; echo end-of-input"
    done = run(kubectl, "-n", ns, "run", "-i", "--rm", "reader", "--image=busybox", "--restart=Never", "--", "sh", "-c", script,
               stdin="one\ntwo\n", env=SPDY if protocol == "spdy" else None)
    assert done.returncode == 0 and done.stdout.startswith("got-one\ngot-two\nend-of-input\n"), (done.stdout, done.stderr)


def test_attach_i_writes_to_a_stdin_that_stays_open_without_stdin_once(emu: Emulator, kubectl: Kubectl, ns: str) -> None:
    with emu.client() as api:
        create(api, ns, pod("cat", [{**sh("main", "while read line; do echo got-$line; done"), "stdin": True}]))
        wait_for(lambda: phase(api, ns, "cat") == "Running", 20, "the pod to run")
        for word in ("first", "second"):  # a detached client does not close the container's stdin
            attach = subprocess.Popen(kubectl.argv("-n", ns, "attach", "-i", "cat"), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                assert attach.stdin is not None and attach.stdout is not None
                attach.stdin.write(f"{word}\n")
                attach.stdin.flush()
                assert attach.stdout.readline() == f"got-{word}\n"
            finally:
                attach.kill()
                attach.wait()
        assert phase(api, ns, "cat") == "Running"
        assert api.get(f"/api/v1/namespaces/{ns}/pods/cat/log").text == "got-first\ngot-second\n"


def test_kubectl_debug_runs_ephemeral_containers_beside_the_pod(emu: Emulator, kubectl: Kubectl, ns: str) -> None:
    with emu.client() as api:
        create(api, ns, pod("app", [sh("main", "sleep 3600")], restartPolicy="Never"))
        wait_for(lambda: phase(api, ns, "app") == "Running", 20, "the pod to run")
        # a command (echo), one that fails (the pod goes on running), one of an image without a known command
        kubectl.run("-n", ns, "debug", "app", "--image=busybox", "-c", "look", "--target=main", "--profile=general", "--",
                    "sh", "-c", "echo looking-from-$HOSTNAME")
        kubectl.run("-n", ns, "debug", "app", "--image=busybox", "-c", "fail", "--profile=general", "--", "sh", "-c", "exit 3")
        kubectl.run("-n", ns, "debug", "app", "--image=nginx", "-c", "nothing", "--profile=general")

        def ended() -> dict[str, Any] | None:
            statuses = api.get(f"/api/v1/namespaces/{ns}/pods/app").json()["status"].get("ephemeralContainerStatuses") or []
            states = {s["name"]: s["state"] for s in statuses}
            return states if len(states) == 3 and all("terminated" in s for s in states.values()) else None

        states = wait_for(ended, 20, "the three to end")
        assert (states["look"]["terminated"]["exitCode"], states["fail"]["terminated"]["exitCode"]) == (0, 3)
        assert states["nothing"]["terminated"]["reason"] == "StartError" and "no command known" in states["nothing"]["terminated"]["message"]
        assert kubectl.out("-n", ns, "logs", "app", "-c", "look") == "looking-from-app\n"
        assert phase(api, ns, "app") == "Running"  # ephemeral containers never decide the pod's phase
        got = api.get(f"/api/v1/namespaces/{ns}/pods/app/ephemeralcontainers").json()
        assert [c["name"] for c in got["spec"]["ephemeralContainers"]] == ["look", "fail", "nothing"]


def test_kubectl_debug_it_opens_a_shell_in_the_pod(kubectl: Kubectl, emu: Emulator, ns: str) -> None:
    with emu.client() as api:
        create(api, ns, pod("target", [sh("main", "sleep 3600")]))
        wait_for(lambda: phase(api, ns, "target") == "Running", 20, "the pod to run")
    argv = kubectl.argv("-n", ns, "debug", "-it", "target", "--image=busybox", "-c", "dbg", "--profile=general")
    text, code = on_terminal(argv, "websocket", [(b"try pressing enter", b"stty size; echo in-$HOSTNAME\r"), (b"in-target", b"exit\r")],
                             timeout=40)
    assert "30 100" in text and "in-target" in text and code == 0, text
