"""emulator/kubelet/podnet.py and its library (podnet.c), built with this machine's compiler and loaded
into real Python processes: what each socket call becomes, and how the library is built and found."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from emulator.kubelet import podnet
from tests.conftest import free_port, require_tool


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("cc")
    built, why = podnet.build(tmp_path_factory.mktemp("podnet"))
    assert built is not None, why
    return built


def pod_ip() -> str:
    return f"127.{random.randint(200, 239)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def run(library: Path, ip: str, code: str, keep: str = "") -> list[object]:
    """What `code` prints (JSON lines), run in a Python with the library and a pod IP."""
    env = {**os.environ, **podnet.environment(library, ip, [int(p) for p in keep.split(",") if p], {})}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


BIND = """
import json, socket, sys
def bound(family, host, port, v6only=None):
    s = socket.socket(family)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((host, port))
    print(json.dumps(s.getsockname()[:2]))
    s.close()
"""


def test_listening_on_every_address_or_localhost_becomes_the_pod_ip(library: Path) -> None:
    ip, port = pod_ip(), free_port()
    code = BIND + f"""
bound(socket.AF_INET, "0.0.0.0", {port})
bound(socket.AF_INET, "127.0.0.1", {port})
bound(socket.AF_INET6, "::", {port})
bound(socket.AF_INET6, "::1", {port})
bound(socket.AF_INET6, "::ffff:0.0.0.0", {port})
"""
    assert run(library, ip, code) == [[ip, port], [ip, port], [f"::ffff:{ip}", port], [f"::ffff:{ip}", port], [f"::ffff:{ip}", port]]


def test_what_is_left_as_asked(library: Path) -> None:
    ip, port, kept = pod_ip(), free_port(), free_port()
    code = BIND + f"""
bound(socket.AF_INET, "0.0.0.0", 0)                   # a client's ephemeral port: may talk to the world
bound(socket.AF_INET, "0.0.0.0", {kept})              # a hostPort
bound(socket.AF_INET, "127.1.2.3", {port})            # another loopback address
"""
    said = run(library, ip, code, keep=str(kept))
    assert said[0][0] == "0.0.0.0" and said[0][1] != 0
    assert said[1:] == [["0.0.0.0", kept], ["127.1.2.3", port]]
    assert run(library, "", BIND + f'bound(socket.AF_INET, "0.0.0.0", {port})') == [["0.0.0.0", port]]  # no pod IP: nothing


CALL = """
import json, socket, sys
port = int(sys.argv[1])
server = socket.socket()
server.bind(("0.0.0.0", port))   # the pod's IP, through the library
server.listen()
for host in ("127.0.0.1", "::1"):
    c = socket.create_connection((host, port), timeout=5)
    print(json.dumps(c.getpeername()[0]))
    c.close()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", port))
udp.setblocking(False)
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sender.sendto(b"x", ("127.0.0.1", port))
import select; select.select([udp], [], [], 5)
print(json.dumps(udp.recvfrom(10)[0].decode()))
"""


def test_a_call_to_localhost_reaches_the_pods_own_server(library: Path) -> None:
    ip, port = pod_ip(), free_port()
    done = subprocess.run([sys.executable, "-c", CALL, str(port)], env={**os.environ, **podnet.environment(library, ip, [], {})},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [ip, f"::ffff:{ip}", "x"]


UDP_REPLIES = """
import json, socket, sys
port = int(sys.argv[1])
server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
server.bind(("::", port))   # the pod's IP (dual-stack), through the library
server.settimeout(5)
def exchange(client, to, with_msg=False):
    client.settimeout(5)
    if with_msg:
        client.sendmsg([b"q"], [], 0, to)
    else:
        client.sendto(b"q", to)
    _, sender = server.recvfrom(10)
    server.sendto(b"a", sender)
    source = client.recvmsg(10)[3] if with_msg else client.recvfrom(10)[1]
    print(json.dumps(list(source[:2])))
exchange(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), ("127.0.0.1", port))
exchange(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM), ("::1", port))
exchange(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM), ("::ffff:127.0.0.1", port))
exchange(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), ("127.0.0.1", port), with_msg=True)
"""


def test_a_udp_reply_comes_from_the_local_address_it_was_sent_to(library: Path) -> None:
    # as in a pod: a client that checks where its answer came from (a DNS client does) accepts it
    port = free_port(kind=socket.SOCK_DGRAM)
    said = run(library, pod_ip(), UDP_REPLIES.replace("int(sys.argv[1])", str(port)))
    assert said == [["127.0.0.1", port], ["::1", port], ["::ffff:127.0.0.1", port], ["127.0.0.1", port]]


SERVER_OF_TWO_SOCKETS = """
import json, socket, sys, time
port = int(sys.argv[1])
v4 = socket.socket()
v4.bind(("0.0.0.0", port))
v6 = socket.socket(socket.AF_INET6)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)   # as asyncio, dnsmasq and nginx's `listen [::]` do
v6.bind(("::", port))
v4.listen()
v6.listen()
print(json.dumps([v4.getsockname()[:2], v6.getsockname()[:2]]), flush=True)
time.sleep(30)
"""


def test_replicas_with_an_ipv6_only_socket_beside_their_ipv4_one_all_listen(library: Path) -> None:
    # the IPv6-only socket cannot hold the pod's IPv4 address: it goes to [::1] on a port of its own, where
    # it takes the port from no other replica and listens on no network
    port, replicas = free_port(), []
    try:
        for _ in range(2):
            ip = pod_ip()
            env = {**os.environ, **podnet.environment(library, ip, [], {})}
            replica = subprocess.Popen([sys.executable, "-c", SERVER_OF_TWO_SOCKETS, str(port)], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            replicas.append(replica)
            assert replica.stdout is not None
            line = replica.stdout.readline()
            assert line, replica.stderr.read() if replica.stderr else ""
            (v4_host, v4_port), (v6_host, v6_port) = json.loads(line)
            assert (v4_host, v4_port) == (ip, port) and v6_host == "::1" and v6_port != port
            # from the pod, [::1]:port reaches its IPv4 listener (the IPv6-only one is elsewhere)
            said = run(library, ip, f"import json, socket; c = socket.create_connection(('::1', {port}), timeout=5); print(json.dumps(c.getpeername()[0]))")
            assert said == [f"::ffff:{ip}"]
    finally:
        for replica in replicas:
            replica.kill()
            replica.wait()


def test_a_server_on_both_loopbacks_binds_both(library: Path) -> None:
    # 127.0.0.1:P goes to the pod's IP; a dual-stack [::1]:P would be the same address: it keeps its own
    ip, port = pod_ip(), free_port()
    code = BIND.replace("    s.close()\n", "    return s\n") + f"""
a = bound(socket.AF_INET, "127.0.0.1", {port})
b = bound(socket.AF_INET6, "::1", {port})
"""
    assert run(library, ip, code) == [[ip, port], ["::1", port]]


CONNECTED_UDP = """
import json, socket, sys
port = int(sys.argv[1])
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("0.0.0.0", port))   # the pod's IP
server.settimeout(5)
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.settimeout(5)
client.connect(("127.0.0.1", port))   # as a resolver does (c-ares), then checks where answers come from
client.send(b"q")
_, sender = server.recvfrom(10)
server.sendto(b"a", sender)
print(json.dumps(list(client.recvfrom(10)[1])))
"""


def test_a_connected_udp_socket_hears_from_where_it_connected(library: Path) -> None:
    port = free_port(kind=socket.SOCK_DGRAM)
    assert run(library, pod_ip(), CONNECTED_UDP.replace("int(sys.argv[1])", str(port))) == [["127.0.0.1", port]]


def test_a_port_another_process_of_the_pod_holds_is_taken(library: Path) -> None:
    # one process listens on every address (the pod's IP); another asks for 127.0.0.1 on that port:
    # taken, as in a pod (a port finder must not be told it is free)
    ip, port = pod_ip(), free_port()
    env = {**os.environ, **podnet.environment(library, ip, [], {})}
    holder = subprocess.Popen([sys.executable, "-c", f"import socket, time; s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(); print('up', flush=True); time.sleep(30)"],
                              env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        code = f"import socket\ntry:\n    socket.socket().bind(('127.0.0.1', {port})); print('\"bound\"')\nexcept OSError as e:\n    print(e.errno)"
        assert run(library, ip, code) == [98]  # EADDRINUSE
    finally:
        holder.kill()
        holder.wait()


EDGES_C = r"""
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static int port;
static void *small(void *unused) {  /* a thread with the smallest stack there is calls localhost */
    (void)unused;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    connect(s, (struct sockaddr *)&to, sizeof(to));
    close(s);
    return NULL;
}
int main(int argc, char **argv) {
    port = atoi(argv[1]);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN);
    pthread_t t;
    if (pthread_create(&t, &attr, small, NULL) != 0 || pthread_join(t, NULL) != 0) return 2;
    /* a connected UDP socket: sendmsg with a name of length 0 (never read), recvfrom without an address */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(u, (struct sockaddr *)&to, sizeof(to)) != 0) return 3;
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = (void *)16;
    msg.msg_namelen = 0;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sendmsg(u, &msg, 0) != 1) return 4;
    char buf[4];
    recvfrom(u, buf, sizeof(buf), MSG_DONTWAIT, NULL, (socklen_t *)16);
    puts("ok");
    return 0;
}
"""


def test_no_crash_where_the_kernel_would_not_fail(library: Path, tmp_path: Path) -> None:
    source = tmp_path / "edges.c"
    source.write_text(EDGES_C.replace("#include <stdio.h>", "#include <stdio.h>\n#include <stdlib.h>"))
    program = tmp_path / "edges"
    subprocess.run([require_tool("cc"), "-O1", "-o", str(program), str(source), "-lpthread"], check=True, capture_output=True)
    env = {**os.environ, **podnet.environment(library, pod_ip(), [], {})}
    done = subprocess.run([str(program), str(free_port())], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done


def test_a_call_to_localhost_where_the_pod_has_nothing_reaches_this_machine(library: Path) -> None:
    with socket.socket() as host_server:
        host_server.bind(("127.0.0.1", 0))
        host_server.listen()
        port = host_server.getsockname()[1]
        code = f"import json, socket; c = socket.create_connection(('127.0.0.1', {port}), timeout=5); print(json.dumps(c.getpeername()[0]))"
        assert run(library, pod_ip(), code) == ["127.0.0.1"]


def test_the_library_is_built_once_and_reused(tmp_path: Path) -> None:
    require_tool("cc")
    first, why = podnet.build(tmp_path)
    assert first is not None, why
    (cached,) = tmp_path.glob("podnet-*.so")
    made = cached.stat().st_mtime_ns
    again, _ = podnet.build(tmp_path)
    assert again == first and cached.stat().st_mtime_ns == made
    assert oct(cached.stat().st_mode & 0o777) == "0o755" and oct(tmp_path.stat().st_mode & 0o022) == "0o0"


def test_a_temporary_directory_mounted_noexec_leaves_the_private_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the copy every user can load goes to the temporary directory; where that one cannot hold a library
    # (mounted noexec), the private one is used: containers that stay this user keep it
    require_tool("cc")
    noexec = tmp_path / "noexec"
    noexec.mkdir()
    if os.getuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=4m", "tmpfs", str(noexec)],
                                          capture_output=True, check=False).returncode != 0:
        pytest.skip("mounting a noexec tmpfs needs root (and the right to mount)")
    try:
        monkeypatch.setenv("TMPDIR", str(noexec))
        monkeypatch.setattr(tempfile, "tempdir", None)  # (tempfile caches the directory it found)
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        library, why = podnet.build(private)
        assert library is not None and library.parent == private, why
    finally:
        subprocess.run(["umount", str(noexec)], check=False)


def test_a_cached_library_that_does_not_load_is_built_again(tmp_path: Path) -> None:
    require_tool("cc")
    library, why = podnet.build(tmp_path)
    assert library is not None, why
    (cached,) = tmp_path.glob("podnet-*.so")
    cached.write_bytes(b"not a shared object")  # (say, built on a machine of another libc)
    again, why = podnet.build(tmp_path)
    assert again == library and cached.read_bytes().startswith(b"\x7fELF"), why


def test_a_library_every_user_can_load(tmp_path: Path) -> None:
    # a container that drops to another user (gosu, setpriv) keeps the library: built in a directory only
    # we may enter (root's cache, under /root), it is used from a copy every user can read
    require_tool("cc")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    library, why = podnet.build(private)
    assert library is not None and private not in library.parents, why
    assert library.stat().st_mode & 0o005 == 0o005 and all(p.stat().st_mode & 0o001 for p in library.parents)
    assert library.parent.stat().st_uid == os.getuid() and not library.parent.stat().st_mode & 0o022
    assert podnet.build(private)[0] == library  # the same copy, found again
    if os.getuid() == 0:  # (as root, CI): a process of user nobody loads it
        env = {**os.environ, "LD_PRELOAD": str(library)}
        done = subprocess.run([require_tool("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-S", "-c", ""],
                              env=env, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0 and "cannot be preloaded" not in done.stderr, done.stderr


def test_a_directory_others_may_write_is_not_used(tmp_path: Path) -> None:
    require_tool("cc")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    library, why = podnet.build(shared)
    assert library is not None, why
    assert library.parent != shared and not list(shared.iterdir())  # built in a directory of its own
    library.unlink()
    library.parent.rmdir()


def test_a_cache_that_cannot_be_made_is_not_needed(tmp_path: Path) -> None:
    require_tool("cc")
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the cache directory's parent should be
    library, why = podnet.build(blocked / "k8s-emulator")
    assert library is not None and library.is_file() and blocked not in library.parents, why
    library.unlink()
    library.parent.rmdir()


def test_none_when_switched_off_or_without_a_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(podnet.SWITCH, "off")
    assert podnet.build(tmp_path) == (None, "EMULATOR_PODNET=off")
    monkeypatch.delenv(podnet.SWITCH)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang to be found
    monkeypatch.delenv("CC", raising=False)
    assert podnet.build(tmp_path) == (None, "no C compiler (cc) to build it: install one (Debian, Ubuntu: apt install gcc libc6-dev) or name it in $CC")


def test_environment_keeps_a_preload_of_the_containers_own() -> None:
    library = Path("/cache/podnet-x.so")
    assert podnet.environment(library, "127.244.0.5", [], {}) == {"LD_PRELOAD": str(library), "EMULATOR_POD_IP": "127.244.0.5"}
    added = podnet.environment(library, "127.244.0.5", [9090, 80, 80], {"LD_PRELOAD": "/opt/jemalloc.so"})
    assert added == {"LD_PRELOAD": f"{library} /opt/jemalloc.so", "EMULATOR_POD_IP": "127.244.0.5", "EMULATOR_KEEP_PORTS": "80,9090"}
    assert podnet.wanted({}) and podnet.wanted({"EMULATOR_PODNET": "on"}) and not podnet.wanted({"EMULATOR_PODNET": "Off"})
