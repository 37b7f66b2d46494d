"""No web page and no network client may use the emulator's API: Host, Origin and media-type checks, the
gateway that never leads to the API, and addresses beyond loopback only when the user says so."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import Emulator, start_emulator

PODS = "/api/v1/namespaces/default/pods"
REVISIONS = "/apis/apps/v1/namespaces/default/controllerrevisions"
POD: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_emulator(
        tmp_path_factory.mktemp("hardening"), "--accept-hosts", "my.dev.box", "--allow-origins", "http://localhost:3000"
    )
    yield emulator
    emulator.stop()


def pod_names(emu: Emulator) -> list[str]:
    with emu.client() as api:
        return [p["metadata"]["name"] for p in api.get(PODS).json()["items"]]


def status(response: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body: dict[str, Any] = response.json()
    assert body["kind"] == "Status" and body["reason"] == reason
    return body


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "image/png"],
)
def test_bodies_the_api_server_does_not_decode_are_415_and_change_nothing(emu: Emulator, content_type: str) -> None:
    with emu.client() as api:
        body = status(api.post(PODS, content=b'{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}',
                               headers={"Content-Type": content_type}), 415, "UnsupportedMediaType")
    assert content_type.split(";")[0] in body["message"]
    assert pod_names(emu) == []


@pytest.mark.parametrize("host", ["rebind.evil.example", "rebind.evil.example:80", "localhost.evil.example"])
def test_a_host_the_api_is_not_known_by_is_refused(emu: Emulator, host: str) -> None:
    with emu.client() as api:
        body = status(api.post(PODS, json=POD, headers={"Host": host}), 403, "Forbidden")
        assert "--accept-hosts" in body["message"]
        status(api.get(PODS, headers={"Host": host}), 403, "Forbidden")
        status(api.post("/api/v1/namespaces/kube-system/serviceaccounts/default/token", json={}, headers={"Host": host}), 403, "Forbidden")
    assert pod_names(emu) == []


@pytest.mark.parametrize(
    "host", ["localhost", "app.localhost", "127.0.0.1", "[::1]", "kubernetes", "kubernetes.default.svc.cluster.local", "my.dev.box"]
)
def test_the_names_the_api_is_known_by_are_answered(emu: Emulator, host: str) -> None:
    with emu.client() as api:
        assert api.get(PODS, headers={"Host": f"{host}:{emu.api_port}"}).status_code == 200


def test_requests_from_other_origins_are_refused(emu: Emulator) -> None:
    evil = {"Origin": "http://evil.example"}
    with emu.client() as api:
        status(api.post(PODS, json=POD, headers=evil), 403, "Forbidden")
        status(api.post(PODS, content=b"{}", headers={**evil, "Content-Type": "text/plain"}), 403, "Forbidden")
        status(api.get(PODS, headers=evil), 403, "Forbidden")
        status(api.get(PODS, headers={"Origin": "null"}), 403, "Forbidden")  # sandboxed frames, file:// pages
        # a page on another port of this machine is another origin too
        status(api.post(PODS, json=POD, headers={"Origin": "http://127.0.0.1:3001"}), 403, "Forbidden")
        # a simple GET from a page carries no Origin, but Sec-Fetch-Site says where it comes from
        status(api.get(PODS, headers={"Sec-Fetch-Site": "cross-site"}), 403, "Forbidden")
        status(api.get(PODS, headers={"Sec-Fetch-Site": "same-site"}), 403, "Forbidden")
        assert api.get(PODS, headers={"Sec-Fetch-Site": "none"}).status_code == 200  # the user typed the URL
        # CORS preflights are not granted
        preflight = api.request("OPTIONS", PODS, headers={**evil, "Access-Control-Request-Method": "POST"})
        status(preflight, 403, "Forbidden")
        assert "access-control-allow-origin" not in preflight.headers
    assert pod_names(emu) == []


def test_same_origin_and_allowed_origins_pass(emu: Emulator) -> None:
    own = emu.api_url
    allowed = "http://localhost:3000"
    with emu.client() as api:
        created = api.post(PODS, json={**POD, "metadata": {"name": "same-origin"}}, headers={"Origin": own})
        assert created.status_code == 201, created.text
        preflight = api.request("OPTIONS", PODS, headers={"Origin": allowed, "Access-Control-Request-Method": "POST",
                                                          "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == allowed
        listed = api.get(PODS, headers={"Origin": allowed})
        assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == allowed
        assert api.delete(f"{PODS}/same-origin").status_code == 200


def test_the_gateway_never_leads_to_the_api(emu: Emulator) -> None:
    gateway = f"http://127.0.0.1:{emu.gateway_port}"
    with httpx.Client(base_url=gateway, timeout=10) as client:
        for host in ("kubernetes", "kubernetes.default", f"kubernetes.default.svc.cluster.local:{443}"):
            response = client.get("/api/v1/pods", headers={"Host": host})
            assert response.status_code == 403, response.text
            assert "own API" in response.text
        assert client.post(PODS, json=POD, headers={"Host": "kubernetes"}).status_code == 403
    # nor does a service a user points at the API by hand
    with emu.client() as api:
        api.post("/api/v1/namespaces/default/services", json={
            "metadata": {"name": "sneaky"}, "spec": {"ports": [{"name": "http", "port": 80}]},
        }).raise_for_status()
        api.post("/api/v1/namespaces/default/endpoints", json={
            "metadata": {"name": "sneaky"},
            "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": emu.api_port}]}],
        }).raise_for_status()
        try:
            with httpx.Client(base_url=gateway, timeout=10) as client:
                response = client.get("/api/v1/pods", headers={"Host": "sneaky.default"})
            assert response.status_code == 403, response.text
        finally:
            api.delete("/api/v1/namespaces/default/services/sneaky")
    assert pod_names(emu) == []


def proxy_problem(api: httpx.Client, address: str) -> dict[str, Any]:
    """The proxy's reported problem for `address`, once it has one (it reconciles after the write)."""
    found: list[dict[str, Any]] = []

    def reported() -> bool:
        problems = api.get("/emulator/v1/proxy").json().get("problems") or []
        found[:] = [p for p in problems if p.get("address") == address]
        return bool(found)

    assert wait_for(reported, 5), api.get("/emulator/v1/proxy").json()
    return found[0]


def test_external_ips_beyond_loopback_are_not_listened_on_unless_asked(emu: Emulator, tmp_path: Path) -> None:
    service = {"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 8080}], "externalIPs": ["10.255.255.1"]}}
    with emu.client() as api:
        api.post("/api/v1/namespaces/default/services", json=service).raise_for_status()
        try:
            problem = proxy_problem(api, "10.255.255.1")
            assert problem["reason"] == "BeyondLoopback" and "--listen-beyond-loopback" in problem["fix"]
        finally:
            api.delete("/api/v1/namespaces/default/services/ext")
    # with the user's word the proxy tries (and here fails: the address is not this machine's)
    other = start_emulator(tmp_path / "data", "--listen-beyond-loopback")
    try:
        with other.client() as api:
            api.post("/api/v1/namespaces/default/services", json=service).raise_for_status()
            assert proxy_problem(api, "10.255.255.1")["reason"] == "AddressNotAvailable"
    finally:
        other.stop()


# -- bounded work per request ------------------------------------------------------------------------


def make_pod(api: httpx.Client, name: str) -> None:
    api.post(PODS, json={**POD, "metadata": {"name": name}}).raise_for_status()


def test_a_json_patch_that_doubles_itself_stops_at_the_object_limit(emu: Emulator) -> None:
    with emu.client() as api:
        make_pod(api, "doubling")
        before = api.get(f"{PODS}/doubling").json()
        ops: list[dict[str, Any]] = [{"op": "add", "path": "/spec/volumes", "value": [{"name": "v", "emptyDir": {"x": "y" * 64}}]}]
        ops += [{"op": "copy", "from": "/spec/volumes", "path": "/spec/volumes/-"}] * 30
        started = time.monotonic()
        response = api.patch(f"{PODS}/doubling", content=httpx.Request("PATCH", "/", json=ops).content,
                             headers={"Content-Type": "application/json-patch+json"})
        assert time.monotonic() - started < 2
        status(response, 413, "RequestEntityTooLarge")
        assert api.get(f"{PODS}/doubling").json() == before
        api.delete(f"{PODS}/doubling")


def test_yaml_alias_expansion_is_refused(emu: Emulator) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    body = "\n".join([
        "apiVersion: v1", "kind: Pod", "metadata: {name: bomb}",
        "spec:", "  containers: [{name: c, image: x}]", "  volumes:", "  - name: v", "    laughs:",
        *("      " + line for line in levels),
    ])
    assert len(body) < 1000
    with emu.client() as api:
        started = time.monotonic()
        body_status = status(api.post(PODS, content=body, headers={"Content-Type": "application/yaml"}), 400, "BadRequest")
        assert time.monotonic() - started < 2
        assert "expands" in body_status["message"]
    assert "bomb" not in pod_names(emu)


def test_deep_nesting_is_400_not_500(emu: Emulator) -> None:
    deep_yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: deep}\nspec: {containers: [{name: c}], volumes: " + "[" * 1500 + "]" * 1500 + "}\n"
    nested: Any = "leaf"
    for _ in range(300):
        nested = {"n": nested}
    # free-form JSON that is stored as it comes: a ControllerRevision's data (a RawExtension)
    deep_json = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "deep"}, "revision": 1, "data": nested}
    with emu.client() as api:
        status(api.post(PODS, content=deep_yaml, headers={"Content-Type": "application/yaml"}), 400, "BadRequest")
        status(api.post(REVISIONS, json=deep_json), 400, "BadRequest")
        assert api.get(f"{REVISIONS}/deep").status_code == 404
    assert "deep" not in pod_names(emu)


def test_an_object_larger_than_a_cluster_stores_is_413(emu: Emulator) -> None:
    big = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "big"}, "revision": 1, "data": {"blob": "x" * (1600 * 1024)}}
    with emu.client() as api:
        status(api.post(REVISIONS, json=big), 413, "RequestEntityTooLarge")
        assert api.get(f"{REVISIONS}/big").status_code == 404


def test_content_encodings(emu: Emulator) -> None:
    import gzip

    body = httpx.Request("POST", "/", json={**POD, "metadata": {"name": "zipped"}}).content
    with emu.client() as api:
        status(api.post(PODS, content=b"not gzip at all", headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}),
               400, "BadRequest")
        status(api.post(PODS, content=body, headers={"Content-Type": "application/json", "Content-Encoding": "zstd"}),
               415, "UnsupportedMediaType")
        created = api.post(PODS, content=gzip.compress(body), headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert created.status_code == 201, created.text
        api.delete(f"{PODS}/zipped")


def test_a_non_ascii_bearer_token_is_401(tmp_path: Path) -> None:
    secured = start_emulator(tmp_path / "data", "--require-auth")
    try:
        with httpx.Client(base_url=secured.api_url, verify=False, timeout=10) as api:
            for token in ("ünïcode", "\udcff"):
                raw = token.encode("utf-8", "surrogateescape")
                response = api.get(PODS, headers=[(b"Authorization", b"Bearer " + raw)])
                status(response, 401, "Unauthorized")
    finally:
        secured.stop()


def test_a_gzip_bomb_inflates_no_further_than_the_body_limit(emu: Emulator) -> None:
    import gzip

    bomb = gzip.compress(b'{"metadata":{"name":"b"},"x":"' + b"0" * (64 * 1024 * 1024))
    assert len(bomb) < 200 * 1024
    with emu.client() as api:
        started = time.monotonic()
        status(api.post(PODS, content=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}),
               413, "RequestEntityTooLarge")
        assert time.monotonic() - started < 2


# -- watches -----------------------------------------------------------------------------------------


def open_watch(emu: Emulator, path: str, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", emu.api_port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


def connections_from(emu: Emulator, socks: list[socket.socket]) -> int:
    """The server's open connections to these client sockets."""
    ports = {sock.getsockname()[1] for sock in socks}
    return sum(1 for c in psutil.Process(emu.proc.pid).net_connections(kind="tcp") if c.raddr and c.raddr.port in ports)


def test_watches_whose_clients_left_are_released_though_no_event_comes(emu: Emulator) -> None:
    with emu.client() as api:
        api.post("/api/v1/namespaces", json={"metadata": {"name": "quiet"}}).raise_for_status()
    watches = [open_watch(emu, "/api/v1/namespaces/quiet/pods?watch=1") for _ in range(100)]
    assert wait_for(lambda: connections_from(emu, watches) == 100, 10)
    ports = [sock.getsockname() for sock in watches]
    for sock in watches:
        sock.close()
    # nothing happens in the namespace: the server must notice the closes by itself
    gone = lambda: not any(c.raddr and (c.raddr.ip, c.raddr.port) in ports for c in psutil.Process(emu.proc.pid).net_connections(kind="tcp"))  # noqa: E731
    assert wait_for(gone, 10)


def test_a_watcher_that_does_not_read_is_cut_off(emu: Emulator) -> None:
    namespace = "heavy"
    with emu.client() as api:
        api.post("/api/v1/namespaces", json={"metadata": {"name": namespace}}).raise_for_status()
        for i in range(200):
            api.post(f"/api/v1/namespaces/{namespace}/pods", json={
                **POD, "metadata": {"name": f"p{i}", "annotations": {"blob": "x" * 40_000}},
            }).raise_for_status()
    backlog = 200 * 40_000
    sock = open_watch(emu, f"/api/v1/namespaces/{namespace}/pods?watch=1", rcvbuf=4096)
    try:
        time.sleep(api_write_timeout() + 3)  # it does not read meanwhile
        received = 0
        sock.settimeout(5)
        try:
            while chunk := sock.recv(1 << 16):
                received += len(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        assert received < backlog, "the server kept the whole backlog for a client that did not read"
        # and the server is fine meanwhile
        with emu.client() as api:
            assert api.get("/healthz").status_code == 200
    finally:
        sock.close()
        with emu.client() as api:
            api.delete(f"/api/v1/namespaces/{namespace}")


def api_write_timeout() -> float:
    from api.watch import WRITE_TIMEOUT

    return WRITE_TIMEOUT


# -- slow clients ------------------------------------------------------------------------------------


def test_trickling_request_heads_are_dropped_and_others_are_served_meanwhile(emu: Emulator) -> None:
    from api.connections import HEADER_TIMEOUT
    from api.http import BODY_TIMEOUT

    assert BODY_TIMEOUT <= HEADER_TIMEOUT <= 10
    # meanwhile, a body that never comes whole: answered 408 once BODY_TIMEOUT passed (same wait, one test)
    body = socket.create_connection(("127.0.0.1", emu.api_port))
    body.sendall(b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    slow = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", emu.api_port))
        sock.sendall(b"GET /api/v1/pods HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.append(sock)
    started = time.monotonic()
    try:
        # one more byte every second: each arrival used to re-arm aiohttp's wait for the rest of the head
        while time.monotonic() - started < HEADER_TIMEOUT + 3:
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(b"a")
            with emu.client() as api:
                assert api.get("/healthz").status_code == 200  # others are served meanwhile
            time.sleep(1)
        assert wait_for(lambda: connections_from(emu, slow) == 0, 5), connections_from(emu, slow)
        for sock in slow:
            sock.settimeout(2)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""  # closed by the server, nothing answered
        body.settimeout(5)
        answer = body.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]  # the trickled body timed out
    finally:
        body.close()
        for sock in slow:
            sock.close()


@pytest.mark.parametrize(
    "raw",
    [b"GARBAGE\r\n\r\n", b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n"],
    ids=["bad request line", "header over 8 KiB"],
)
def test_requests_that_are_not_http_get_a_status_too(emu: Emulator, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", emu.api_port)) as sock:
        sock.sendall(raw)
        sock.settimeout(5)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400"
    assert b"application/json" in head
    assert json.loads(body)["kind"] == "Status"


def test_a_new_connection_is_answered_while_many_big_watches_start(emu: Emulator) -> None:
    """The event loop accepts one connection per turn: behind 200 watches of a big namespace, each sending
    megabytes first, a `kubectl get` connecting at that moment used to wait for all of them (~0.5 s at 200 x
    5,000 pods, ~0.1 s here). Watch requests now step aside while many watches are sending their first events."""
    namespace = "crowd"
    with emu.client() as api:
        api.post("/api/v1/namespaces", json={"metadata": {"name": namespace}}).raise_for_status()
        for i in range(400):
            api.post(f"/api/v1/namespaces/{namespace}/pods", json={
                **POD, "metadata": {"name": f"p{i}", "annotations": {"blob": "x" * 10_000}},
            }).raise_for_status()
    watches: list[socket.socket] = []
    try:
        for _ in range(200):
            watches.append(open_watch(emu, f"/api/v1/namespaces/{namespace}/pods?watch=1", rcvbuf=4096))
        began = time.perf_counter()
        with socket.create_connection(("127.0.0.1", emu.api_port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        took = time.perf_counter() - began
        assert took < 0.05, f"a new connection waited {took * 1000:.0f} ms behind the watches"
    finally:
        for sock in watches:
            sock.close()
        with emu.client() as api:
            api.delete(f"/api/v1/namespaces/{namespace}")


async def test_watches_that_start_at_one_version_share_one_snapshot() -> None:
    """200 watches starting together on a 5,000-pod namespace hold one copy of its entries, not 200."""
    from emulator.kinds import PODS as PODS_RT
    from emulator.registry.watch import Watch, snapshot
    from emulator.store.backend import MemoryBackend
    from emulator.store.store import Store

    store = Store(MemoryBackend())
    for i in range(3):
        store.create(PODS_RT.key, "ns", f"p{i}", {"metadata": {"name": f"p{i}", "namespace": "ns"}})
    await store.settled(store.rv)
    first, second = Watch(store, PODS_RT, "ns", None), Watch(store, PODS_RT, "ns", None)
    sent = [list(await watch.open("")) for watch in (first, second)]
    assert [e.name for e in sent[0]] == ["p0", "p1", "p2"]
    assert all(a.raw is b.raw for a, b in zip(sent[0], sent[1], strict=True))  # the stored bytes, not copies
    held = snapshot(store, PODS_RT.key, "ns")
    assert snapshot(store, PODS_RT.key, "ns") is held  # nothing changed: the same copy
    store.create(PODS_RT.key, "ns", "p3", {"metadata": {"name": "p3", "namespace": "ns"}})
    assert [row[1] for row in snapshot(store, PODS_RT.key, "ns").rows] == ["p0", "p1", "p2", "p3"]
    for watch in (first, second):
        watch.close()
    await store.drain()


async def test_the_census_of_watches_keeps_the_peak_between_two_looks() -> None:
    """emulator/runtime.py gives memory back after many watches went away: a burst that came and went
    between two of its looks (every 5 s) must still show."""
    from emulator.kinds import PODS as PODS_RT
    from emulator.registry.watch import Census, Watch
    from emulator.store.backend import MemoryBackend
    from emulator.store.store import Store

    store = Store(MemoryBackend())
    Census.take_peak()
    before = Census.open
    watches = [Watch(store, PODS_RT, "ns", None) for _ in range(30)]
    for watch in watches:
        await watch.open("")
    assert Census.open == before + 30
    for watch in watches:
        watch.close()
        watch.close()  # twice: counted once
    assert Census.open == before
    assert Census.take_peak() == before + 30
    assert Census.take_peak() == before  # counting starts again from now
    await store.drain()


def test_the_collector_is_paused_while_large_bodies_are_parsed() -> None:
    """A thread parsing a 3 MB YAML map would hold the GIL for 100-200 ms at a time while the collector
    walks the parse's million objects; paused, the event loop is never stopped that long (bench/hardening)."""
    import asyncio
    import gc
    import threading

    from api.http import collector_paused, decode, off_loop

    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def parse() -> None:
        with collector_paused():
            inside.set()
            leave.wait(5)

    worker = threading.Thread(target=parse)
    worker.start()
    try:
        assert inside.wait(5)
        with collector_paused():  # two at once: the first to finish does not resume it for the other
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        leave.set()
        worker.join(5)
    assert gc.isenabled()
    big = ("a: 1\n" + "".join(f"k{i}: v\n" for i in range(20_000))).encode()
    seen: list[bool] = []

    def parse_big() -> object:
        seen.append(gc.isenabled())
        return decode(big, "application/yaml")

    assert len(asyncio.run(off_loop(parse_big))) == 20_001 and seen == [False] and gc.isenabled()  # type: ignore[arg-type]
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # paused by someone else before: left so
    finally:
        gc.enable()


def test_large_bodies_are_decoded_off_the_loop_with_the_same_answers(emu: Emulator) -> None:
    """A create or update over 64 KiB is parsed and validated on a worker thread (api/rest.py `_object`):
    the answers are those of the inline path, and a manifest of thousands of unknown fields gets the API
    server's few kilobytes of warnings (its recorder's 4 Ki limit), not one header for each."""
    pods = "/api/v1/namespaces/large-bodies/pods"
    attributes = {f"k{i:06d}": "v" for i in range(10_000)}  # ~150 KB of a free-form map: kept as it is
    unknown = {f"u{i:06d}": "v" for i in range(10_000)}  # as many fields no volume source has
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
            "spec": {"containers": [{"name": "c", "image": "x"}],
                     "volumes": [{"name": "v", "csi": {"driver": "d", "volumeAttributes": attributes, **unknown}}]}}
    with emu.client() as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "large-bodies"}}).status_code == 201
        message = status(api.post(pods, params={"fieldValidation": "Strict"}, json=body), 400, "BadRequest")["message"]
        assert 'strict decoding error: unknown field "spec.volumes[0].csi.u000000"' in message
        created = api.post(pods, json=body)
        assert created.status_code == 201, created.text
        assert created.json()["spec"]["volumes"][0]["csi"]["volumeAttributes"] == attributes
        warnings = created.headers.get_list("Warning")
        assert warnings[0] == '299 - "unknown field \\"spec.volumes[0].csi.u000000\\""'
        assert 60 <= len(warnings) <= 120 and sum(map(len, warnings)) < 8192  # 4 Ki of text, quoted: not 10,000 headers
        invalid = {**body, "metadata": {"name": "Not_A_Name"}}
        assert "metadata.name" in status(api.post(pods, json=invalid), 422, "Invalid")["message"]
        current = api.get(f"{pods}/big").json()
        current["metadata"]["labels"] = {"updated": "yes"}
        current["spec"]["volumes"][0]["csi"]["volumeAttributes"]["k000000"] = "changed"  # volumes cannot change
        assert "spec" in status(api.put(f"{pods}/big", json=current), 422, "Invalid")["message"]
        current["spec"]["volumes"][0]["csi"]["volumeAttributes"]["k000000"] = "v"
        replaced = api.put(f"{pods}/big", json=current)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["metadata"]["labels"] == {"updated": "yes"}
        assert [p["metadata"]["name"] for p in api.get(pods).json()["items"]] == ["big"]
        # small patches of this large object take the same path (Registry.patch_offloaded): status, dry run
        merge = {"Content-Type": "application/merge-patch+json"}
        condition = {"type": "Example", "status": "True"}
        status_patch = api.patch(f"{pods}/big/status", json={"status": {"conditions": [condition]}}, headers=merge)
        assert status_patch.status_code == 200, status_patch.text
        assert condition.items() <= status_patch.json()["status"]["conditions"][0].items()
        dry = api.patch(f"{pods}/big", params={"dryRun": "All"}, json={"metadata": {"labels": {"dry": "run"}}}, headers=merge)
        assert dry.status_code == 200 and dry.json()["metadata"]["labels"] == {"updated": "yes", "dry": "run"}
        assert api.get(f"{pods}/big").json()["metadata"]["labels"] == {"updated": "yes"}


def test_large_patches_are_applied_off_the_loop_with_the_same_answers(emu: Emulator) -> None:
    """A JSON, merge or strategic merge patch over 64 KiB is parsed, applied and its result validated on
    the worker thread (Registry.patch_offloaded): the answers are those of a small patch."""
    maps = "/api/v1/namespaces/large-patches/configmaps"
    data = {f"k{i:06d}": "v" * 8 for i in range(8_000)}  # ~170 KB of patch
    with emu.client() as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "large-patches"}}).status_code == 201
        assert api.post(maps, json={"metadata": {"name": "settings"}, "data": {"kept": "yes"}}).status_code == 201
        merged = api.patch(f"{maps}/settings", json={"data": data}, headers={"Content-Type": "application/merge-patch+json"})
        assert merged.status_code == 200, merged.text
        assert merged.json()["data"] == {"kept": "yes", **data}
        strategic = api.patch(f"{maps}/settings", json={"data": {key: None for key in data}},
                              headers={"Content-Type": "application/strategic-merge-patch+json"})
        assert strategic.status_code == 200 and strategic.json()["data"] == {"kept": "yes"}
        operations = [{"op": "add", "path": f"/data/{key}", "value": value} for key, value in data.items()]
        patched = api.patch(f"{maps}/settings", json=operations, headers={"Content-Type": "application/json-patch+json"})
        assert patched.status_code == 200 and len(patched.json()["data"]) == 8_001
        unknown = {"data": data, **{f"u{i:05d}": 1 for i in range(5_000)}}  # top-level fields a ConfigMap has not
        refused = api.patch(f"{maps}/settings", params={"fieldValidation": "Strict"}, json=unknown,
                            headers={"Content-Type": "application/merge-patch+json"})
        assert 'unknown field "u00000"' in status(refused, 400, "BadRequest")["message"]
        warned = api.patch(f"{maps}/settings", json=unknown, headers={"Content-Type": "application/merge-patch+json"})
        assert warned.status_code == 200 and 10 <= len(warned.headers.get_list("Warning")) <= 200
        stale = {"metadata": {"resourceVersion": "1"}, "data": data}
        status(api.patch(f"{maps}/settings", json=stale, headers={"Content-Type": "application/merge-patch+json"}), 409, "Conflict")
        status(api.patch(f"{maps}/missing", json={"data": data}, headers={"Content-Type": "application/merge-patch+json"}), 404, "NotFound")


def test_large_server_side_applies_are_merged_off_the_loop_with_the_same_answers(emu: Emulator) -> None:
    """`kubectl apply --server-side` of a large object (CRDs are applied so, being too large for the
    last-applied annotation) is merged and validated on the worker thread: created (201), merged (200),
    a field another manager owns a 409 unless forced."""
    maps = "/api/v1/namespaces/large-applies/configmaps"
    apply = {"Content-Type": "application/apply-patch+yaml"}
    data = {f"k{i:06d}": "v" * 8 for i in range(8_000)}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": data}
    with emu.client() as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "large-applies"}}).status_code == 201
        created = api.patch(f"{maps}/applied", params={"fieldManager": "kubectl"}, json=config, headers=apply)
        assert created.status_code == 201, created.text
        assert created.json()["data"] == data and created.json()["metadata"]["managedFields"][0]["manager"] == "kubectl"
        config["data"] = {**data, "k000000": "changed", "added": "yes"}
        merged = api.patch(f"{maps}/applied", params={"fieldManager": "kubectl"}, json=config, headers=apply)
        assert merged.status_code == 200 and merged.json()["data"]["k000000"] == "changed" and merged.json()["data"]["added"] == "yes"
        other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k000001": "mine"}}
        conflict = api.patch(f"{maps}/applied", params={"fieldManager": "helm"}, json=other, headers=apply)
        assert "conflict" in status(conflict, 409, "Conflict")["message"].lower()
        forced = api.patch(f"{maps}/applied", params={"fieldManager": "helm", "force": "true"}, json=other, headers=apply)
        assert forced.status_code == 200 and forced.json()["data"]["k000001"] == "mine"
        assert {m["manager"] for m in forced.json()["metadata"]["managedFields"]} == {"kubectl", "helm"}
        status(api.patch(f"{maps}/applied", json=other, headers=apply), 400, "BadRequest")  # no fieldManager


def test_lists_that_decode_many_objects_and_large_deletecollections_answer_as_before(emu: Emulator) -> None:
    """A list that must decode over 1,000 objects (a selector, or a Table for kubectl) does so on the
    worker thread, and a deletecollection deletes 200 per turn of the loop: same answers as small ones."""
    maps = "/api/v1/namespaces/many/configmaps"
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    with emu.client() as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "many"}}).status_code == 201
        for i in range(1_100):
            body = {"metadata": {"name": f"cm-{i:04d}", "labels": {"parity": "even" if i % 2 == 0 else "odd"}}}
            assert api.post(maps, json=body).status_code == 201
        rows = api.get(maps, params={"labelSelector": "parity=odd"}, headers=table).json()
        assert rows["kind"] == "Table" and len(rows["rows"]) == 550
        assert rows["rows"][0]["cells"][0] == "cm-0001" and rows["metadata"]["resourceVersion"]
        assert len(api.get(maps, headers=table).json()["rows"]) == 1_100
        items = api.get(maps, params={"labelSelector": "parity=even"}).json()["items"]
        assert len(items) == 550 and all(item["metadata"]["labels"]["parity"] == "even" for item in items)
        status(api.get(maps, params={"labelSelector": "parity in (even"}), 400, "BadRequest")
        deleted = api.delete(maps, params={"labelSelector": "parity=even"})
        assert deleted.status_code == 200 and len(deleted.json()["items"]) == 550
        left = api.get(maps).json()["items"]
        assert len(left) == 550 and {item["metadata"]["labels"]["parity"] for item in left} == {"odd"}
