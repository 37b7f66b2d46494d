"""A pod's own every-address and localhost (emulator/kubelet/podnet.py) through a real `emulator serve
--kubelet`: replicas of a server that listens on 0.0.0.0 or [::] each hold their own pod IP, `localhost`
in a pod (127.0.0.1, ::1, the name) reaches its own servers over TCP and UDP, and this machine's own
127.0.0.1 when the pod has nothing on that port; a hostPort port keeps every address."""

from __future__ import annotations

import os
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import Emulator, free_port, require_tool
from tests.integration.kubectl_support import Kubectl
from tests.integration.test_kubelet import create, kubectl_for, marker, processes, start_kubelet, wait_for

pytestmark = pytest.mark.timeout(180)

# TCP and UDP on one port of the address given ("" = every address of the family), each answering the
# pod's name; the family from the address (":" in it: IPv6, dual-stack).
SERVE = """
import os, socket, sys, threading
host, port, name = sys.argv[1], int(sys.argv[2]), os.environ["POD_NAME"].encode()
family = socket.AF_INET6 if ":" in host else socket.AF_INET
udp = socket.socket(family, socket.SOCK_DGRAM)
udp.bind((host, port))
def answer():
    while True:
        _, sender = udp.recvfrom(100)
        udp.sendto(name, sender)
threading.Thread(target=answer, daemon=True).start()
tcp = socket.socket(family)
tcp.bind((host, port))
tcp.listen()
while True:
    conn, _ = tcp.accept()
    conn.sendall(name)
    conn.close()
"""

# What `localhost` answers inside a pod: TCP to each of its forms, then UDP to 127.0.0.1.
ASK = """
import socket, sys
port = int(sys.argv[1])
for host in ("127.0.0.1", "::1", "localhost"):
    with socket.create_connection((host, port), timeout=5) as s:
        print(host, s.recv(100).decode())
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(5)
udp.sendto(b"?", ("127.0.0.1", port))
answer, source = udp.recvfrom(100)
print("udp", answer.decode(), "from", source[0])  # (where it was sent: a DNS client checks)
"""


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    require_tool("cc")  # the library is built with the machine's C compiler
    emulator = start_kubelet(tmp_path_factory.mktemp("podnet-data"), "--allow-anonymous")
    yield emulator
    emulator.stop(timeout=30)


@pytest.fixture(scope="module")
def kubectl(emu: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_for(emu, tmp_path_factory.mktemp("kubectl-home"))


@pytest.fixture
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with emu.client() as client:
        yield client


POD_NAME = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def server(host: str, port: int, mark: str, **extra: Any) -> dict[str, Any]:
    return {"name": "server", "image": "example/server", "env": [POD_NAME],
            "command": [sys.executable, "-c", SERVE, host, str(port), mark], **extra}


def running_pods(api: httpx.Client, ns: str, count: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        pods = api.get(f"/api/v1/namespaces/{ns}/pods").json()["items"]
        up = [p for p in pods if any(c.get("ready") for c in p.get("status", {}).get("containerStatuses") or [])]
        return up if len(up) == count else None

    return wait_for(ready, timeout=60, what=f"{count} ready pods")  # type: ignore[no-any-return]


def ask(ip: str, port: int) -> str:
    with socket.create_connection((ip, port), timeout=5) as s:
        return s.recv(100).decode()


def listeners(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN}


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_on_every_address_each_replica_holds_its_pod_ip(api: httpx.Client, ns: str, host: str) -> None:
    port, mark = free_port(), marker()
    probe = {"tcpSocket": {"port": port}, "periodSeconds": 1}
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [server(host, port, mark, readinessProbe=probe)]}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template}}
    create(api, ns, deployment, "deployments", "apis/apps/v1")
    pods = running_pods(api, ns, 3)
    answers = {p["status"]["podIP"]: ask(p["status"]["podIP"], port) for p in pods}
    assert answers == {p["status"]["podIP"]: p["metadata"]["name"] for p in pods}  # each its own, none crashed
    assert all(c["restartCount"] == 0 for p in pods for c in p["status"]["containerStatuses"])
    # every listener on the port is a pod's IP (an IPv6 socket's as ::ffff:IP): none on every address
    assert {ip.removeprefix("::ffff:") for ip in listeners(port)} == set(answers)
    assert not [e for e in api.get(f"/api/v1/namespaces/{ns}/events").json()["items"] if e["reason"] == "AddressInUse"]
    assert api.delete(f"/apis/apps/v1/namespaces/{ns}/deployments/web").status_code == 200
    wait_for(lambda: not processes(mark), timeout=40, what="the replicas stopped")


def test_localhost_in_a_pod_is_its_own_and_else_this_machines(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    port, mark = free_port(), marker()
    for name in ("a", "b"):  # two pods with a server on one port of every address, both on localhost
        create(api, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                         "spec": {"containers": [server("0.0.0.0", port, mark)]}})
    running_pods(api, ns, 2)
    wait_for(lambda: ask(api.get(f"/api/v1/namespaces/{ns}/pods/b").json()["status"]["podIP"], port) == "b", what="b listening")
    wait_for(lambda: ask(api.get(f"/api/v1/namespaces/{ns}/pods/a").json()["status"]["podIP"], port) == "a", what="a listening")
    said = kubectl.out("exec", "a", "-n", ns, "--", sys.executable, "-c", ASK, str(port))
    assert said.splitlines() == ["127.0.0.1 a", "::1 a", "localhost a", "udp a from 127.0.0.1"]
    said = kubectl.out("exec", "b", "-n", ns, "--", sys.executable, "-c", ASK, str(port))
    assert said.splitlines() == ["127.0.0.1 b", "::1 b", "localhost b", "udp b from 127.0.0.1"]

    # a port the pod has nothing on: this machine's 127.0.0.1 answers, as before
    class Hello(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(b"the host")

    with socketserver.TCPServer(("127.0.0.1", 0), Hello) as host_server:
        threading.Thread(target=host_server.serve_forever, daemon=True).start()
        try:
            host_port = host_server.server_address[1]
            said = kubectl.out("exec", "a", "-n", ns, "--", sys.executable, "-c",
                               f"import socket; print(socket.create_connection(('127.0.0.1', {host_port})).recv(100).decode())")
            assert said.strip() == "the host"
        finally:
            host_server.shutdown()
    for name in ("a", "b"):
        api.delete(f"/api/v1/namespaces/{ns}/pods/{name}", params={"gracePeriodSeconds": "0"})
    wait_for(lambda: not processes(mark), timeout=40, what="the pods stopped")


def test_a_host_port_keeps_every_address_and_a_container_can_opt_out(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    published, own, mark = free_port(), free_port(), marker()
    containers = [
        server("0.0.0.0", published, mark, ports=[{"containerPort": published, "hostPort": published}]),
        {**server("0.0.0.0", own, mark), "name": "off", "env": [POD_NAME, {"name": "EMULATOR_PODNET", "value": "off"}]},
    ]
    create(api, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
    wait_for(lambda: listeners(published) and listeners(own), timeout=30, what="both listening")
    assert listeners(published) == {"0.0.0.0"} and listeners(own) == {"0.0.0.0"}
    env = api.get(f"/api/v1/namespaces/{ns}/pods/p").json()["status"]["podIP"]
    assert ask("127.0.0.1", published) == "p" and ask(env, own) == "p"
    api.delete(f"/api/v1/namespaces/{ns}/pods/p", params={"gracePeriodSeconds": "0"})
    wait_for(lambda: not processes(mark), timeout=40, what="the pod stopped")


def test_two_containers_of_a_pod_on_one_port_are_told_they_share_it(api: httpx.Client, ns: str) -> None:
    # as on a node: one pod, one network; the second container's listen fails, and the event says why
    port, mark = free_port(), marker()
    containers = [{**server("0.0.0.0", port, mark), "name": "first"}, {**server("0.0.0.0", port, mark), "name": "second"}]
    create(api, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "twins"}, "spec": {"containers": containers}})

    def told() -> list[dict[str, Any]]:
        return [e for e in api.get(f"/api/v1/namespaces/{ns}/events").json()["items"] if e["reason"] == "AddressInUse"]

    event = wait_for(told, timeout=30, what="an AddressInUse event")[0]
    assert "is held by another container of this pod" in event["message"], event["message"]
    assert "two of them cannot listen on one port" in event["message"]
    api.delete(f"/api/v1/namespaces/{ns}/pods/twins", params={"gracePeriodSeconds": "0"})
    wait_for(lambda: not processes(mark), timeout=40, what="the pod stopped")


def test_a_container_that_drops_to_another_user_keeps_it(api: httpx.Client, ns: str, kubectl: Kubectl) -> None:
    # gosu, su-exec and setpriv in an image's entrypoint: the library must be loadable by every user
    if os.geteuid() != 0:
        pytest.skip("only root can start a process as another user")
    port, mark = free_port(), marker()
    drop = [require_tool("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"]
    for name in ("x", "y"):  # two pods on one port of every address, as nobody
        container = server("0.0.0.0", port, mark)
        container["command"] = [*drop, *container["command"]]
        create(api, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container]}})
    pods = running_pods(api, ns, 2)
    def answering() -> bool:
        try:
            return all(ask(p["status"]["podIP"], port) == p["metadata"]["name"] for p in pods)
        except OSError:
            return False

    wait_for(answering, what="both answering")
    assert "cannot be preloaded" not in kubectl.out("logs", "x", "-n", ns)
    for name in ("x", "y"):
        api.delete(f"/api/v1/namespaces/{ns}/pods/{name}", params={"gracePeriodSeconds": "0"})
    wait_for(lambda: not processes(mark), timeout=40, what="the pods stopped")


ASYNCIO_SERVER = """
import asyncio, os, sys
async def main():
    async def answer(reader, writer):
        writer.write(os.environ["POD_NAME"].encode())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(answer, None, int(sys.argv[1]))  # every address: 0.0.0.0 and an IPv6-only [::]
    await server.serve_forever()
asyncio.run(main())
"""


def test_replicas_of_an_asyncio_server_all_listen(api: httpx.Client, ns: str) -> None:
    # asyncio (and aiohttp, dnsmasq, nginx's `listen [::]`) opens an IPv6-only socket beside its IPv4 one
    port, mark = free_port(), marker()
    container = {"name": "server", "image": "example/asyncio", "env": [POD_NAME],
                 "command": [sys.executable, "-c", ASYNCIO_SERVER, str(port), mark],
                 "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "aio"},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "aio"}},
                           "template": {"metadata": {"labels": {"app": "aio"}}, "spec": {"containers": [container]}}}}
    create(api, ns, deployment, "deployments", "apis/apps/v1")
    pods = running_pods(api, ns, 3)
    assert {p["metadata"]["name"]: ask(p["status"]["podIP"], port) for p in pods} == {p["metadata"]["name"]: p["metadata"]["name"] for p in pods}
    assert all(c["restartCount"] == 0 for p in pods for c in p["status"]["containerStatuses"])
    assert "::" not in listeners(port)  # nothing of theirs on every IPv6 address
    assert api.delete(f"/apis/apps/v1/namespaces/{ns}/deployments/aio").status_code == 200
    wait_for(lambda: not processes(mark), timeout=40, what="the replicas stopped")
