"""Container logs: the CRI format as containerd writes it, rotation as the kubelet's container log
manager does it, and reading back with kubectl logs' options (emulator/kubelet/logs.py)."""

from __future__ import annotations

import asyncio
import gzip
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api import podlogs
from api.app import create_app
from emulator.controllers import builtins
from emulator.kinds import NAMESPACES, PODS, SERVICE_ACCOUNTS
from emulator.kubelet.logs import (
    MAX_LINE,
    LogOptions,
    LogWriter,
    compression_settled,
    cri_timestamp,
    fixed_timestamp,
    last_output,
    log_path,
    parse_timestamp,
    read_all,
    read_log,
    rotated_files,
)
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

RECORD = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z) (stdout|stderr) ([FP]) (.*)$")


def records(path: Path) -> list[tuple[bytes, bytes, bytes]]:
    out = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        m = RECORD.match(line)
        assert m, line
        out.append((m.group(3), m.group(4), m.group(5)))
    return out


def read(path: Path, options: LogOptions = LogOptions(), is_running=lambda: False) -> bytes:
    async def collect() -> bytes:
        return b"".join([chunk async for chunk in read_log(path, options, is_running, poll=0.01)])

    return asyncio.run(collect())


def test_log_path_is_per_container_and_restart(tmp_path: Path) -> None:
    assert log_path(tmp_path, "web", 0) == tmp_path / "logs" / "web" / "0.log"
    assert log_path(tmp_path, "web", 3).name == "3.log"


def test_a_new_instance_keeps_the_previous_ones_log_only(tmp_path: Path) -> None:
    for n in range(4):
        w = LogWriter(log_path(tmp_path, "c", n), 100, 3)
        w.write("stdout", b"x" * 150 + b"\n")  # rotated once: the old instance's rotated file goes too
        w.close()
    compression_settled()
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "logs" / "c").iterdir()) == ["2", "2", "3", "3"]


def test_timestamps_are_go_rfc3339nano_and_read_back_fixed() -> None:
    ns = 1_764_694_542_123_456_000
    assert cri_timestamp(ns) == b"2025-12-02T16:55:42.123456Z"  # trailing zeros dropped, as Go
    assert cri_timestamp(ns - 123_456_000) == b"2025-12-02T16:55:42Z"
    assert fixed_timestamp(b"2025-12-02T16:55:42.123456Z") == b"2025-12-02T16:55:42.123456000Z"
    assert fixed_timestamp(b"2025-12-02T16:55:42Z") == b"2025-12-02T16:55:42.000000000Z"
    assert fixed_timestamp(b"2025-12-02T17:55:42.5+01:00") == b"2025-12-02T16:55:42.500000000Z"
    assert parse_timestamp(b"2025-12-02T16:55:42.123456789Z") == ns - 123_456_000 + 123_456_789


def test_lines_become_full_records_per_stream(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "0.log", 0, 5)
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"oops\n")
    w.write("stdout", b"o\nthree\n")
    w.write("stdout", b"no newline at the end")
    w.close()
    assert records(tmp_path / "0.log") == [
        (b"stdout", b"F", b"one"),
        (b"stderr", b"F", b"oops"),
        (b"stdout", b"F", b"two"),
        (b"stdout", b"F", b"three"),
        (b"stdout", b"F", b"no newline at the end"),  # the end of the stream ends the line
    ]
    assert read(tmp_path / "0.log") == b"one\noops\ntwo\nthree\nno newline at the end\n"


def test_long_lines_are_cut_into_partial_records_of_16_kib(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "0.log", 0, 5)
    long = bytes(range(97, 123)) * 2000  # 52,000 bytes
    w.write("stdout", long[:30000])  # an unfinished line: cut once the buffer is full
    w.write("stdout", long[30000:] + b"\nshort\n" + b"x" * MAX_LINE + b"\n")
    w.close()
    got = records(tmp_path / "0.log")
    assert [(s, t, len(c)) for s, t, c in got] == [
        (b"stdout", b"P", MAX_LINE), (b"stdout", b"P", MAX_LINE), (b"stdout", b"P", MAX_LINE),
        (b"stdout", b"F", 52000 - 3 * MAX_LINE), (b"stdout", b"F", 5), (b"stdout", b"F", MAX_LINE),
    ]
    assert read(tmp_path / "0.log") == long + b"\nshort\n" + b"x" * MAX_LINE + b"\n"


def test_rotation_keeps_max_files_and_compresses_all_but_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = LogWriter(path, 1000, 3)
    for i in range(100):
        w.write("stdout", b"line %03d %s\n" % (i, b"." * 80))
    w.close()
    compression_settled()
    rotated = rotated_files(path)
    assert len(rotated) == 2  # max_files counts the current file
    assert not rotated[-1].name.endswith(".gz") and rotated[0].name.endswith(".gz")
    assert re.fullmatch(r"0\.log\.\d{8}-\d{6}(\.\d+)?(\.gz)?", rotated[0].name)
    text = b"".join(read_all(p) for p in [*rotated, path])
    numbers = [int(line.split(b" ")[4]) for line in text.split(b"\n")[:-1]]
    assert numbers == list(range(numbers[0], 100))  # the newest lines, in order, none lost between files
    assert gzip.decompress(rotated[0].read_bytes()).startswith(b"20")
    # kubectl logs reads the current file, as the kubelet does
    assert read(path).split(b"\n")[-2].startswith(b"line 099")


def test_tail_since_timestamps_and_limit_bytes(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(
        b"2025-12-02T16:55:40.1Z stdout F one\n"
        b"2025-12-02T16:55:41Z stderr F two\n"
        b"2025-12-02T16:55:42.000000001Z stdout P thr\n"
        b"2025-12-02T16:55:42.5Z stdout F ee\n"
    )
    assert read(path) == b"one\ntwo\nthree\n"
    assert read(path, LogOptions(tail=2)) == b"three\n"  # records are counted, as the kubelet does
    assert read(path, LogOptions(tail=3)) == b"two\nthree\n"
    assert read(path, LogOptions(tail=0)) == b""
    assert read(path, LogOptions(tail=10)) == b"one\ntwo\nthree\n"
    since = parse_timestamp(b"2025-12-02T16:55:41Z")
    assert read(path, LogOptions(since_ns=since)) == b"two\nthree\n"
    assert read(path, LogOptions(timestamps=True, tail=3)) == (
        b"2025-12-02T16:55:41.000000000Z two\n"
        b"2025-12-02T16:55:42.000000001Z thr2025-12-02T16:55:42.500000000Z ee\n"
    )
    assert read(path, LogOptions(limit_bytes=6)) == b"one\ntw"
    assert read(tmp_path / "missing.log") == b""


def test_a_real_process_written_and_followed_across_rotation(tmp_path: Path) -> None:
    """A subprocess prints 3,000 lines; its pipe feeds the writer on the event loop (rotating every
    ~20 KB); a follower started before the first line sees every line once, in order, and ends with it."""
    path = tmp_path / "0.log"
    script = "import sys,time\nfor i in range(3000):\n    print(f'n={i}', flush=(i % 300 == 0))\n    (i % 300 == 0) and time.sleep(0.02)\nprint('bye', file=sys.stderr)"

    async def run() -> bytes:
        writer = LogWriter(path, 20_000, 50)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            while chunk := await stream.read(65536):
                writer.write(name, chunk)

        follower = asyncio.create_task(collect(read_log(path, LogOptions(follow=True), lambda: not writer.closed, poll=0.01)))
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"))
        await proc.wait()
        writer.close()
        return await asyncio.wait_for(follower, 10)

    async def collect(it: AsyncIterator[bytes]) -> bytes:
        return b"".join([c async for c in it])

    out = asyncio.run(run())
    assert out == b"".join(b"n=%d\n" % i for i in range(3000)) + b"bye\n"
    compression_settled()
    assert len(rotated_files(path)) >= 2


def test_follow_waits_for_the_file_and_ends_when_the_instance_does(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "c" / "0.log"
    running = [True]

    async def scenario() -> tuple[bytes, float]:
        chunks: list[bytes] = []

        async def follow() -> None:
            async for chunk in read_log(path, LogOptions(follow=True, timestamps=False), lambda: running[0], poll=0.01):
                chunks.append(chunk)

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.05)
        writer = LogWriter(path, 0, 2)
        writer.write("stdout", b"hello\n")
        await asyncio.sleep(0.05)
        seen = b"".join(chunks)
        writer.write("stdout", b"last\n")
        writer.close()
        running[0] = False
        started = time.monotonic()
        await asyncio.wait_for(task, 2)
        assert seen == b"hello\n"
        return b"".join(chunks), time.monotonic() - started

    out, took = asyncio.run(scenario())
    assert out == b"hello\nlast\n"
    assert took < 0.5


def test_writing_50k_lines_costs_little(tmp_path: Path) -> None:
    """50,000 lines in 64 KiB pipe-sized chunks: the writer's share of a second of event loop."""
    w = LogWriter(tmp_path / "0.log", 10 * 1024 * 1024, 5)
    payload = b"".join(b"2025-12-02 INFO request %06d served in 3ms\n" % i for i in range(50_000))
    chunks = [payload[i:i + 65536] for i in range(0, len(payload), 65536)]
    started = time.perf_counter()
    for chunk in chunks:
        w.write("stdout", chunk)
    took = time.perf_counter() - started
    w.close()
    compression_settled()
    assert took < 0.1, f"{took * 1000:.1f} ms for 50k lines"
    total = sum(len(read_all(p)) for p in [*rotated_files(tmp_path / "0.log"), tmp_path / "0.log"])
    assert total > len(payload)


@pytest.mark.parametrize("max_files", [1, 2])
def test_tiny_max_files(tmp_path: Path, max_files: int) -> None:
    path = tmp_path / "0.log"
    w = LogWriter(path, 100, max_files)
    for i in range(20):
        w.write("stdout", b"%d %s\n" % (i, b"z" * 60))
    w.close()
    compression_settled()
    assert len(rotated_files(path)) == max_files - 1


# -- the pods/log handler (api/podlogs.py) over files laid out as log_path says ------------------------


class FakeKubelet:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[tuple[str, str, str], int] = {}  # -> the running instance

    def pod_dir_for(self, uid: str) -> Path:
        return self.root / uid

    def restart_count(self, namespace: str, pod: str, container: str) -> int:
        return self.running.get((namespace, pod, container), 0)

    def running_pids(self) -> dict[tuple[str, str, str], int]:
        return {key: 1 for key in self.running}


def pod(name: str, *containers: str, statuses: list[dict[str, Any]] | None = None, init: tuple[str, ...] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": c, "image": "busybox"} for c in containers]},
    }
    if init:
        body["spec"]["initContainers"] = [{"name": c, "image": "busybox"} for c in init]
    if statuses is not None:
        body["status"] = {"phase": "Running", "containerStatuses": statuses}
    return body


def cstatus(name: str, state: dict[str, Any], last: dict[str, Any] | None = None, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "state": state, "lastState": last or {}, "restartCount": restarts, "ready": False, "image": "busybox", "imageID": ""}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Registry, FakeKubelet]]:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")))
    builtins.ensure_node(registry)  # the node pods are placed on
    registry.create(NAMESPACES, "", {"metadata": {"name": "ns"}})
    registry.create(SERVICE_ACCOUNTS, "ns", {"metadata": {"name": "default"}})
    kubelet = FakeKubelet(tmp_path)
    client = TestClient(TestServer(create_app(registry, routes=podlogs.routes(registry, lambda: kubelet))))
    await client.start_server()
    yield client, registry, kubelet
    await client.close()


def pod_dir(registry: Registry, kubelet: FakeKubelet, name: str) -> Path:
    return kubelet.pod_dir_for(registry.get(PODS, "ns", name)["metadata"]["uid"])


def write_log(registry: Registry, kubelet: FakeKubelet, pod_name: str, container: str, instance: int, *lines: bytes) -> Path:
    path = log_path(pod_dir(registry, kubelet, pod_name), container, instance)
    w = LogWriter(path, 0, 5)
    for line in lines:
        w.write("stdout", line + b"\n")
    w.close()
    return path


URL = "/api/v1/namespaces/ns/pods/{}/log"


async def test_the_api_servers_checks(api: tuple[TestClient, Registry, FakeKubelet]) -> None:
    client, registry, _ = api
    registry.create(PODS, "ns", pod("two", "a", "b", init=("setup",)))

    async def status(url: str) -> tuple[int, str]:
        response = await client.get(url)
        return response.status, (await response.json())["message"]

    assert await status(URL.format("two")) == (400, "a container name must be specified for pod two, choose one of: [setup a b]")
    assert await status(URL.format("two") + "?container=x") == (400, "container x is not valid for pod two")
    assert await status(URL.format("nope") + "?container=a") == (404, 'pods "nope" not found')
    assert await status(URL.format("two") + "?container=a&tailLines=-1") == (
        422, 'PodLogOptions "two" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0')
    assert (await status(URL.format("two") + "?container=a&sinceSeconds=0"))[0] == 422
    assert (await status(URL.format("two") + "?container=a&sinceSeconds=5&sinceTime=2025-01-01T00:00:00Z"))[0] == 422
    assert (await status(URL.format("two") + "?container=a&limitBytes=0"))[0] == 422
    # a record pod (Running at once, no files): no lines, as a kubelet for a container that wrote none
    response = await client.get(URL.format("two") + "?container=a&insecureSkipTLSVerifyBackend=true")
    assert (response.status, await response.read()) == (200, b"")
    assert await status(URL.format("two") + "?container=a&previous=true") == (
        400, 'previous terminated container "a" in pod "two" not found')


async def test_the_kubelets_answers_by_container_state(api: tuple[TestClient, Registry, FakeKubelet]) -> None:
    client, registry, kubelet = api
    terminated = {"terminated": {"exitCode": 1, "reason": "Error"}}
    registry.create(PODS, "ns", pod("p", "w", "crash", "done", statuses=[
        cstatus("w", {"waiting": {"reason": "ContainerCreating"}}),
        cstatus("crash", {"waiting": {"reason": "CrashLoopBackOff"}}, terminated, 1),
        cstatus("done", terminated, terminated, 1),
    ]))
    response = await client.get(URL.format("p") + "?container=w")
    assert (response.status, (await response.json())["message"]) == (400, 'container "w" in pod "p" is waiting to start: ContainerCreating')
    write_log(registry, kubelet, "p", "crash", 0, b"first life")
    write_log(registry, kubelet, "p", "crash", 1, b"second life")
    for query in ("", "&previous=true"):  # in a back-off both name the instance that crashed last
        response = await client.get(URL.format("p") + "?container=crash" + query)
        assert await response.read() == b"second life\n"
    write_log(registry, kubelet, "p", "done", 0, b"before")
    write_log(registry, kubelet, "p", "done", 1, b"after")
    assert await (await client.get(URL.format("p") + "?container=done")).read() == b"after\n"
    assert await (await client.get(URL.format("p") + "?container=done&previous=1")).read() == b"before\n"


async def test_options_and_follow_until_the_instance_ends(api: tuple[TestClient, Registry, FakeKubelet]) -> None:
    client, registry, kubelet = api
    registry.create(PODS, "ns", pod("web", "c", statuses=[cstatus("c", {"running": {}}, {"terminated": {"exitCode": 0}}, 1)]))
    write_log(registry, kubelet, "web", "c", 0, b"old")
    kubelet.running[("ns", "web", "c")] = 1
    path = log_path(pod_dir(registry, kubelet, "web"), "c", 1)
    writer = LogWriter(path, 0, 5)
    writer.write("stdout", b"".join(b"line %d\n" % i for i in range(10)))
    assert await (await client.get(URL.format("web") + "?tailLines=2")).read() == b"line 8\nline 9\n"
    assert await (await client.get(URL.format("web") + "?limitBytes=8")).read() == b"line 0\nl"
    assert await (await client.get(URL.format("web") + "?previous=true")).read() == b"old\n"
    stamped = (await (await client.get(URL.format("web") + "?timestamps=true&tailLines=1")).read()).decode()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line 9\n", stamped)
    assert await (await client.get(URL.format("web") + "?sinceSeconds=3600&tailLines=1")).read() == b"line 9\n"
    assert await (await client.get(URL.format("web") + "?sinceTime=2999-01-01T00:00:00Z")).read() == b""

    response = await client.get(URL.format("web") + "?follow=true&tailLines=1")
    assert await response.content.readline() == b"line 9\n"
    writer.write("stdout", b"live\n")
    assert await asyncio.wait_for(response.content.readline(), 2) == b"live\n"
    writer.close()
    del kubelet.running[("ns", "web", "c")]
    assert await asyncio.wait_for(response.content.read(), 2) == b""  # the stream ends with the instance


def test_the_fallback_termination_message_is_the_last_80_lines_and_2048_bytes_of_output(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "0.log", 0, 5)
    w.write("stdout", b"".join(b"line %d\n" % i for i in range(100)))
    w.write("stderr", b"panic: the end")  # no newline: a partial record, then the rest
    w.write("stderr", b" came\n")
    w.close()
    message = last_output(tmp_path / "0.log")
    assert message.startswith("line 21\n") and message.endswith("line 99\npanic: the end came\n")
    assert len(message.splitlines()) <= 80
    w = LogWriter(tmp_path / "1.log", 0, 5)
    w.write("stdout", b"x" * 5000 + b"\nlast\n")
    w.close()
    assert last_output(tmp_path / "1.log") == ("x" * 5000 + "\nlast\n")[-2048:]
    assert last_output(tmp_path / "missing.log") == ""
