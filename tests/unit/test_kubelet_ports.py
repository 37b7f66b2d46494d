"""The AddressInUse and ListeningBeyondLoopback warnings' parts (emulator/kubelet/ports.py): the log check,
the ports a container declares, the lookups on this machine's real sockets and processes, and the texts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.kubelet import ports
from emulator.kubelet.logs import FALLBACK_BYTES, LogWriter, last_output

RUNTIMES = [
    "OSError: [Errno 98] Address already in use",  # Python
    "listen tcp 0.0.0.0:8080: bind: address already in use",  # Go
    "Error: listen EADDRINUSE: address already in use :::3000",  # Node
    "java.net.BindException: Address already in use",  # Java
]


def container_log(path: Path, *chunks: bytes) -> Path:
    writer = LogWriter(path, 0, 5)
    for chunk in chunks:
        writer.write("stderr", chunk)
    writer.close()
    return path


@pytest.mark.parametrize("line", RUNTIMES)
def test_every_runtimes_wording_is_recognised_at_the_end_of_the_log(tmp_path: Path, line: str) -> None:
    log = container_log(tmp_path / "0.log", b"starting\n", line.encode() + b"\n")
    assert ports.said_in_use(last_output(log))


def test_only_the_logs_last_output_counts_and_a_missing_log_is_no(tmp_path: Path) -> None:
    log = container_log(tmp_path / "0.log", b"address already in use\n" + b"x" * (FALLBACK_BYTES + 10) + b"\nexit 1\n")
    assert not ports.said_in_use(last_output(log))
    assert not ports.said_in_use(last_output(container_log(tmp_path / "1.log", b"panic: something else\n")))
    assert not ports.said_in_use(last_output(tmp_path / "missing.log"))


def test_declared_ports_are_the_container_ports_of_a_protocol_tcp_by_default() -> None:
    container = {"ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}, {"containerPort": 8443, "protocol": "TCP"}]}
    assert ports.declared_ports(container) == {80, 8443}
    assert ports.declared_ports(container, "UDP") == {53}
    assert ports.declared_ports({"name": "c"}) == set()


def test_host_ports_are_the_container_ports_published_on_the_host() -> None:
    container = {"ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9090}, {"containerPort": 53, "hostPort": 53, "protocol": "UDP"}]}
    assert ports.host_ports(container) == {80, 53}
    assert ports.host_ports({"name": "c"}) == set()


def test_a_socket_on_every_address_is_found_with_its_process_and_one_on_loopback_is_not() -> None:
    with socket.socket() as everywhere, socket.socket() as loopback:
        everywhere.bind(("0.0.0.0", 0))
        everywhere.listen()
        loopback.bind(("127.0.0.1", 0))
        loopback.listen()
        port, local = everywhere.getsockname()[1], loopback.getsockname()[1]
        assert ports.every_address_listeners({port}) == [ports.Holder(port, "0.0.0.0", os.getpid())]
        assert ports.every_address_listeners({local}) == []
        assert ports.Holder(port, "0.0.0.0", os.getpid()) in ports.every_address_listeners(set())


def test_a_socket_on_the_pods_ip_is_found_too() -> None:
    # a container of the same pod, or one the podnet library moved from 0.0.0.0 to the pod's IP
    with socket.socket() as own, socket.socket(socket.AF_INET6) as mapped:
        own.bind(("127.0.0.1", 0))
        own.listen()
        mapped.bind(("::ffff:127.0.0.1", 0))
        mapped.listen()
        port, other = own.getsockname()[1], mapped.getsockname()[1]
        assert ports.every_address_listeners({port}) == []
        assert ports.every_address_listeners({port, other}, "127.0.0.1") == [
            ports.Holder(min(port, other), "127.0.0.1", os.getpid()), ports.Holder(max(port, other), "127.0.0.1", os.getpid())]


def test_the_ports_a_container_names_are_whole_numbers_of_a_port_s_range() -> None:
    said = "OSError: [Errno 98] error while attempting to bind on address ('::', 8080, 0, 0): address already in use"
    assert ports.mentioned_ports(said, "python3", "-m", "http.server", "9090", "v1.2.3", "70000", "10.0.0.1") == {98, 8080, 9090}


def test_the_holder_is_found_by_the_process_group_of_its_container() -> None:
    groups = {os.getpgid(os.getpid()): "shop/web-1"}
    assert ports.pod_of(os.getpid(), groups) == "shop/web-1"
    assert ports.pod_of(None, groups) is None
    assert ports.pod_of(os.getpid(), {}) is None


def test_the_message_names_pods_processes_and_says_what_to_do() -> None:
    pods = {10: "shop/web-1"}
    holders = [ports.Holder(8080, "0.0.0.0", 10), ports.Holder(8080, "::", os.getpid()), ports.Holder(9090, "0.0.0.0", None)]
    text = ports.message("web", holders, pods.get)
    assert text.startswith("container web could not listen: 0.0.0.0:8080 is held by pod shop/web-1; ")
    assert f"[::]:8080 is held by process {os.getpid()} (" in text and "), not a pod; " in text
    assert "0.0.0.0:9090 is held by a process of another user. Pods share this machine's network" in text
    assert "listen on the pod's own IP instead (status.podIP" in text
    nobody = ports.message("web", [], pods.get)
    assert nobody.startswith('container web exited after "address already in use": pods share this machine')
    sibling = ports.message("a", [ports.Holder(7070, "127.244.0.5", 10)], pods.get, own_pod="shop/web-1")
    assert sibling == ("container a could not listen: 127.244.0.5:7070 is held by another container of this pod. "
                       "The containers of a pod share its network, as on a node: two of them cannot listen on one port")


@pytest.mark.parametrize(
    ("address", "beyond"),
    [("0.0.0.0", True), ("::", True), ("192.168.1.20", True), ("fe80::1%eth0", True), ("2001:db8::1", True),
     ("127.0.0.1", False), ("127.244.3.9", False), ("::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", True)],
)
def test_what_is_beyond_loopback(address: str, beyond: bool) -> None:
    assert ports.beyond_loopback(address) is beyond


def test_a_process_trees_listeners_beyond_loopback_are_found_and_its_loopback_ones_and_clients_are_not() -> None:
    # A child of this process listens on every address and on loopback, and holds an unconnected UDP socket
    # on every address: the lookup walks the tree, and names UDP only on a declared UDP port.
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        everywhere, local, udp = (int(p) for p in child.stdout.readline().split())
        found = ports.exposed_listeners(os.getpid(), set())
        assert ports.Listener(everywhere, "0.0.0.0", "TCP") in found
        assert not [f for f in found if f.port in (local, udp)], found
        assert ports.Listener(udp, "0.0.0.0", "UDP") in ports.exposed_listeners(os.getpid(), {udp})
        assert ports.exposed_listeners(child.pid, set()) == {ports.Listener(everywhere, "0.0.0.0", "TCP")}
    finally:
        child.kill()
        child.wait()
    assert ports.exposed_listeners(child.pid, set()) == set()  # gone: nothing, no error


CHILD = """
import socket, time
everywhere, local, udp = socket.socket(), socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
everywhere.bind(("0.0.0.0", 0)); everywhere.listen()
local.bind(("127.0.0.1", 0)); local.listen()
udp.bind(("0.0.0.0", 0))
print(everywhere.getsockname()[1], local.getsockname()[1], udp.getsockname()[1], flush=True)
time.sleep(60)
"""


def test_the_exposed_message_names_each_address_once_in_order_and_says_what_to_do() -> None:
    listeners = [ports.Listener(8080, "0.0.0.0", "TCP"), ports.Listener(53, "::", "UDP"), ports.Listener(9000, "192.168.1.20", "TCP")]
    text = ports.exposed_message("web", listeners)
    assert text.startswith("container web listens on [::]:53/UDP, 0.0.0.0:8080, 192.168.1.20:9000: other machines")
    assert "$(POD_IP)" in text and "docs/security.md" in text
    many = [ports.Listener(p, "0.0.0.0", "TCP") for p in range(8000, 8008)]
    assert "0.0.0.0:8004 and 3 more:" in ports.exposed_message("web", many)
