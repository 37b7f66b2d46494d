"""The AddressInUse warning's pure parts (emulator/kubelet/ports.py): the log check, the ports a container
declares, the holders' lookup on this machine's real sockets, and the text."""

from __future__ import annotations

import os
import socket
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


def test_declared_ports_are_the_tcp_container_ports() -> None:
    container = {"ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}, {"containerPort": 8443, "protocol": "TCP"}]}
    assert ports.declared_ports(container) == {80, 8443}
    assert ports.declared_ports({"name": "c"}) == set()


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
