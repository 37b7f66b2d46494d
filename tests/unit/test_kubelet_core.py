"""The kubelet's pure parts: what runs (images.py), back-off text, state files, status merging, the pod
strategy's kubelet-facing rules, and one container process spawned, adopted and killed for real."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from emulator.config import Config, check, parse_size
from emulator.kinds.node import NODE_NAME, NODES
from emulator.kinds.pod import PRINTER, RUNNABLE_CONDITION, PodStrategy
from emulator.kubelet import state
from emulator.kubelet.context import ContainerContext
from emulator.kubelet.execsession import ExecError, ExecSession, run_command
from emulator.kubelet.images import ImageMap, ImageMapError, container_shell, image_name, resolved_command, unrunnable
from emulator.kubelet.podworker import _duration, merge_status, references
from emulator.kubelet.process import (
    COMPANIONS_DIR,
    Companions,
    ContainerProcess,
    FileSink,
    ProcessRecord,
    alive,
    kill_companions,
    kill_record,
    set_companions,
    start_ticks,
)
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster
from emulator.security.auth import auth_required
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

# -- images -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("image", "name"), [
    ("nginx", "nginx"), ("nginx:1.27", "nginx"), ("docker.io/library/nginx:1.27", "nginx"),
    ("ghcr.io/acme/web@sha256:abc", "ghcr.io/acme/web"), ("localhost:5000/web:1", "localhost:5000/web"),
    ("acme/web:2", "acme/web"),
])
def test_image_names_drop_tag_digest_and_the_default_registry(image: str, name: str) -> None:
    assert image_name(image) == name


def test_the_image_map_matches_with_or_without_registry_and_tag() -> None:
    images = ImageMap.parse({"images": {
        "acme/web": {"command": ["python3", "-m", "web"], "workingDir": "/src", "env": {"DEBUG": 1}},
        "redis:7": {"command": "redis-server", "args": ["--port", 6380]},
    }})
    web = images.lookup("ghcr.io/acme/web:1.2")
    assert web is not None and web.command == ("python3", "-m", "web") and web.env == {"DEBUG": "1"}
    redis = images.lookup("docker.io/library/redis:latest")
    assert redis is not None and redis.command == ("redis-server",) and redis.args == ("--port", "6380")
    assert images.lookup("postgres") is None and images.lookup(None) is None


def test_a_relative_working_dir_is_relative_to_the_map_file(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    path = tmp_path / "maps" / "images.yaml"
    path.write_text("images:\n  a: {command: [x], workingDir: ..}\n  b: {command: [x], workingDir: /abs}\n  c: {command: [x]}\n")
    images = ImageMap.load(path)
    assert [(images.lookup(i) or pytest.fail(i)).working_dir for i in "abc"] == [str(tmp_path.resolve()), "/abs", None]


@pytest.mark.parametrize(("document", "says"), [
    ({"web": {}}, "expected a mapping `images:`"),
    ({"images": {"web": {"cmd": ["x"]}}}, "unknown field(s) cmd"),
    ({"images": {"web": {"workingDir": "/x"}}}, "give a command"),
    ({"images": {"web": {"command": {"a": 1}}}}, "expected a list of strings"),
])
def test_a_bad_image_map_says_what_to_write(document: Any, says: str) -> None:
    with pytest.raises(ImageMapError) as caught:
        ImageMap.parse(document, "map.yaml")
    assert says in str(caught.value)


def test_the_spec_overrides_the_image_map_as_it_overrides_an_entrypoint() -> None:
    images = ImageMap.parse({"images": {"web": {"command": ["serve"], "args": ["--port", "80"], "workingDir": "/w"}}})
    assert resolved_command({"image": "web"}, images)[:3] == (["serve"], ["--port", "80"], "/w")
    assert resolved_command({"image": "web", "args": ["--debug"]}, images)[:2] == (["serve"], ["--debug"])
    assert resolved_command({"image": "web", "command": ["other"]}, images)[:2] == (["other"], [])
    assert resolved_command({"image": "web", "workingDir": "/mine"}, images)[2] == "/mine"


def test_what_the_kubelet_does_not_run() -> None:
    images = ImageMap.parse({"images": {"mapped": {"command": ["x"]}}})

    def pod(**extra: Any) -> dict[str, Any]:
        return {"metadata": {"name": "p", **extra.pop("meta", {})}, "spec": {"containers": extra.pop("containers", [{"name": "c", "image": "mapped"}])}, **extra}

    assert unrunnable(pod(), images) is None
    assert unrunnable(pod(containers=[{"name": "c", "image": "x", "command": ["true"]}]), images) is None
    why = unrunnable(pod(containers=[{"name": "c", "image": "nginx"}]), images)
    assert why is not None and "c (image nginx)" in why and "--image-map" in why
    assert "emulator run" in (unrunnable(pod(meta={"annotations": {"emulator.local/command": "x"}}), images) or "")
    assert "podIP" in (unrunnable(pod(status={"podIP": "127.0.0.5"}), images) or "")


def test_args_alone_are_the_command_line_of_an_image_without_entrypoint() -> None:
    # `kubectl run t --image=busybox -- sh -c 'echo hi'` gives args and no command: busybox has no ENTRYPOINT,
    # so in a container runtime the args are the whole command line; here too
    images = ImageMap.parse({"images": {"mapped": {"command": ["serve"]}}})

    def pod(container: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", **container}]}}

    for image in ("busybox", "docker.io/library/busybox:1.36", "alpine:3.20", "python:3.12-slim", "ubuntu",
                  "registry.k8s.io/busybox:1.27.2", "k8s.gcr.io/busybox", "gcr.io/google-containers/busybox:latest"):
        assert unrunnable(pod({"image": image, "args": ["sh", "-c", "echo hi"]}), images) is None, image
        command, args, _, _ = resolved_command({"image": image, "args": ["sh", "-c", "echo hi"]}, images)
        assert [*command, *args] == ["sh", "-c", "echo hi"], image
    # an image whose entrypoint decides (node), or one not known, still needs a command or the image map
    for image in ("node:22", "ghcr.io/acme/busybox", "nginx", "registry.k8s.io/pause:3.10", "registry.k8s.io/nginx"):
        why = unrunnable(pod({"image": image, "args": ["server.js"]}), images)
        assert why is not None and "--image-map" in why, image
    assert unrunnable(pod({"image": "busybox"}), images) is not None  # no args: its CMD (a shell) is not run
    # ... unless it is interactive (kubectl run -it): then the image's CMD is, as a container runtime runs it
    for image, cmd in (("busybox:1.36", ["sh"]), ("ubuntu", ["/bin/bash"]), ("python:3.12", ["python3"])):
        assert unrunnable(pod({"image": image, "stdin": True}), images) is None, image
        assert resolved_command({"image": image, "stdin": True}, images)[:2] == (cmd, []), image
    assert unrunnable(pod({"image": "node", "stdin": True}), images) is not None  # its entrypoint decides
    assert resolved_command({"image": "mapped", "stdin": True}, images)[:2] == (["serve"], [])  # the map still wins
    assert resolved_command({"image": "mapped", "args": ["--x"]}, images)[:2] == (["serve"], ["--x"])  # the map still wins


def test_the_sh_of_busybox_and_alpine_runs_as_bash() -> None:
    # their sh is ash, which knows [[ ]] and echo -e as bash does (Debian's dash does not): the container's
    # command, its exec sessions, probes and hooks all go through ContainerContext.as_run
    images = ImageMap.parse({"images": {"busybox-mapped": {"command": ["serve"]}}})
    bash = shutil.which("bash")
    assert bash is not None
    for image in ("busybox", "registry.k8s.io/busybox:1.27.2", "alpine:3.20"):
        assert container_shell({"image": image}, images) == bash, image
    for image in ("ubuntu", "nginx", "busybox-mapped", "ghcr.io/acme/busybox"):
        assert container_shell({"image": image}, images) == "", image
    ctx = ContainerContext("ns", "p", "u", "c", "", {}, None, Path("/tmp"), (), bash)
    assert ctx.as_run(["sh", "-c", "[[ 1 ]]"]) == [bash, "-c", "[[ 1 ]]"]
    assert ctx.as_run(["/bin/sh", "-c", "x"]) == [bash, "-c", "x"]
    interactive = ctx.as_run(["sh"])  # reads no ~/.bashrc and writes no ~/.bash_history of yours
    assert interactive == [bash, "--norc", "--noprofile", "+o", "history"]
    home = Path(tempfile.mkdtemp())
    try:
        (home / ".bashrc").write_text("echo read-the-rc\n")
        done = subprocess.run(interactive + ["-i"], input="echo typed\nexit\n", capture_output=True, text=True,
                              env={"HOME": str(home), "PATH": os.environ["PATH"]}, timeout=10)
        assert "typed" in done.stdout and "read-the-rc" not in done.stdout, done
        assert not (home / ".bash_history").exists()
    finally:
        shutil.rmtree(home)
    assert ctx.as_run(["/usr/bin/env", "sh"]) == ["/usr/bin/env", "sh"]
    assert dataclasses.replace(ctx, shell="").as_run(["sh"]) == ["sh"]


# -- settings -----------------------------------------------------------------------------------------


def test_log_sizes_parse_as_the_kubelet_writes_them() -> None:
    assert (parse_size("10Mi"), parse_size("500Ki"), parse_size("2048")) == (10485760, 512000, 2048)
    assert parse_size("10MB") is None and parse_size("12") is None
    assert any("--container-log-max-size" in p for p in check(Config(container_log_max_size="lots")))
    assert Config(image_map="x.yaml").runs_pods and not Config().runs_pods


def test_the_kubelet_requires_tokens_on_loopback_unless_anonymous_is_allowed() -> None:
    assert not auth_required("127.0.0.1", False, False)
    assert auth_required("127.0.0.1", False, False, runs_pods=True)
    assert not auth_required("127.0.0.1", False, True, runs_pods=True)
    assert auth_required("0.0.0.0", False, False)


# -- the pod strategy with a kubelet --------------------------------------------------------------------


def strategy(kubelet: bool) -> PodStrategy:
    cluster = Cluster(Store(MemoryBackend()), AddressPlan("127.96.0.0/12", "127.244.0.0/16", "127.250.0.0/16", "30000-32767"))
    # the node the kubelet registers, Ready: pods are placed on it (emulator/scheduling.py)
    cluster.store.create(NODES.key, "", NODE_NAME, {"metadata": {"name": NODE_NAME}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    if kubelet:
        cluster.unrunnable = lambda pod: None if pod["spec"]["containers"][0].get("command") else "no command"
    return PodStrategy(cluster)


def new_pod(command: bool, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "x", **({"command": ["true"]} if command else {})}
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [container], **spec}}


def conditions(pod: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in pod["status"]["conditions"]}


def test_a_runnable_pod_is_born_pending_with_its_containers_being_created() -> None:
    pod = new_pod(True)
    strategy(True).prepare_create(pod)
    assert pod["status"]["phase"] == "Pending"
    assert conditions(pod) == {
        RUNNABLE_CONDITION: "True", "PodScheduled": "True", "PodReadyToStartContainers": "False",
        "Initialized": "False", "Ready": "False", "ContainersReady": "False",
    }
    assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}


def test_a_record_keeps_todays_status_and_says_why_it_does_not_run() -> None:
    pod = new_pod(False)
    strategy(True).prepare_create(pod)
    assert pod["status"]["phase"] == "Running" and conditions(pod)["Ready"] == "True"
    assert conditions(pod)[RUNNABLE_CONDITION] == "False"
    off = new_pod(True)
    strategy(False).prepare_create(off)
    assert RUNNABLE_CONDITION not in conditions(off) and off["status"]["phase"] == "Running"


def test_only_a_running_kubelet_pod_is_deleted_gracefully() -> None:
    on = strategy(True)
    pod = new_pod(True, terminationGracePeriodSeconds=7)
    on.prepare_create(pod)
    assert on.grace_period(pod, None) == 7
    assert on.grace_period(pod, 2) == 2
    assert on.grace_period(pod, 0) is None  # --grace-period=0 --force: at once
    assert on.grace_period({**pod, "status": {**pod["status"], "phase": "Succeeded"}}, None) is None
    record = new_pod(False)
    on.prepare_create(record)
    assert on.grace_period(record, None) is None


def test_kubectl_shows_init_container_progress() -> None:
    def cells(init_state: dict[str, Any], initialized: str = "False") -> list[Any]:
        pod = {
            "metadata": {"name": "p", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]},
            "status": {
                "phase": "Pending", "conditions": [{"type": "Initialized", "status": initialized}],
                "initContainerStatuses": [
                    {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "b", "state": init_state, "restartCount": 2},
                ],
                "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "PodInitializing"}}}],
            },
        }
        from datetime import UTC, datetime

        return PRINTER.cells(pod, datetime(2024, 1, 1, tzinfo=UTC))

    assert cells({"terminated": {"exitCode": 1, "reason": "Error"}})[2] == "Init:Error"
    assert cells({"waiting": {"reason": "CrashLoopBackOff"}})[2] == "Init:CrashLoopBackOff"
    assert cells({"running": {}})[2] == "Init:1/2"
    assert cells({"running": {}})[3] == "2"


# -- status, state, durations ---------------------------------------------------------------------------


def test_merging_status_keeps_what_the_kubelet_does_not_own() -> None:
    stored = {
        "podIP": "127.244.0.9", "startTime": "then",
        "conditions": [
            {"type": RUNNABLE_CONDITION, "status": "True", "lastTransitionTime": "t0"},
            {"type": "Ready", "status": "False", "lastTransitionTime": "t0", "reason": "ContainersNotReady"},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
        ],
    }
    ours = {"phase": "Running", "startTime": "now", "containerStatuses": [],
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}
    merged = merge_status(stored, ours, "t1")
    assert merged["podIP"] == "127.244.0.9" and merged["startTime"] == "then" and merged["phase"] == "Running"
    times = {c["type"]: c["lastTransitionTime"] for c in merged["conditions"]}
    assert times == {RUNNABLE_CONDITION: "t0", "Ready": "t1", "PodScheduled": "t0"}


def test_back_off_durations_read_as_go_writes_them() -> None:
    assert [_duration(s) for s in (0, 10, 20, 160, 300)] == ["0s", "10s", "20s", "2m40s", "5m0s"]


def test_state_round_trips(tmp_path: Path) -> None:
    record = state.PodRecord("ns", "p", "uid-1", {"c": state.ContainerRecord(2, ProcessRecord(10, 1.5, 21, 23), "t", {"exitCode": 1}, None)})
    state.save(tmp_path / "uid-1", record)
    assert state.load(tmp_path / "uid-1") == record
    assert state.recorded_pods(tmp_path) == {"uid-1": record}
    assert state.load(tmp_path / "missing") is None


# -- a real process -----------------------------------------------------------------------------------


def context(tmp_path: Path) -> ContainerContext:
    return ContainerContext("ns", "p", "uid", "c", "127.0.0.1", {"PATH": os.defpath + ":/usr/bin:/bin"}, str(tmp_path / "made"), tmp_path)


def test_a_container_process_logs_exits_and_is_adopted(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctx = context(tmp_path)
        done = ContainerProcess.spawn(ctx, ["sh", "-c", "pwd; echo oops >&2; exit 4"], FileSink(tmp_path / "0.log"))
        result = await done.wait()
        assert result.code == 4 and result.known
        assert (tmp_path / "made").is_dir()  # a missing workingDir is created, as the runtime does
        await asyncio.sleep(0.05)
        text = (tmp_path / "0.log").read_text()
        assert f"stdout F {tmp_path / 'made'}" in text and "stderr F oops" in text

        running = ContainerProcess.spawn(ctx, ["sh", "-c", "sleep 0.3; echo late; sleep 30"], FileSink(tmp_path / "1.log"))
        running.detach()  # the emulator "dies": nothing reads the pipes any more
        await asyncio.sleep(0.5)  # meanwhile the container writes: the pipe keeps it
        adopted = ContainerProcess.adopt(running.record, FileSink(tmp_path / "1b.log"))
        assert adopted is not None and alive(running.record)
        await asyncio.sleep(0.1)
        assert "stdout F late" in (tmp_path / "1b.log").read_text()  # read through /proc/<pid>/fd/<n>
        os.killpg(running.pid, signal.SIGTERM)
        result = await adopted.wait()
        assert not result.known and result.code == 137  # not our child: how it ended is unknown
        assert ContainerProcess.adopt(running.record, FileSink(tmp_path / "1c.log")) is None
        with contextlib.suppress(ChildProcessError):
            os.waitpid(running.pid, 0)

        stubborn = ContainerProcess.spawn(ctx, ["sh", "-c", "trap '' TERM; while true; do sleep 0.05; done"], FileSink(tmp_path / "2.log"))
        await asyncio.sleep(0.2)
        result = await stubborn.stop(0.3)
        assert (result.code, result.signal) == (137, 9)

    asyncio.run(scenario())


def test_a_command_that_cannot_start_raises(tmp_path: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(OSError):
            ContainerProcess.spawn(context(tmp_path), ["/nonexistent/program"], FileSink(tmp_path / "x.log"))

    asyncio.run(scenario())


# -- identity, groups and companions (the review's items 7-11) -----------------------------------------


def marked(mark: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if process.info["status"] != psutil.STATUS_ZOMBIE and any(mark in part for part in process.info["cmdline"] or ()):
                found.append(process)
    return found


def wait_until(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


@pytest.fixture
def mark() -> Iterator[str]:
    value = "kc" + uuid.uuid4().hex[:10]
    yield value
    for process in marked(value):
        with contextlib.suppress(psutil.Error):
            process.kill()


def test_identity_is_the_start_time_in_ticks_not_the_wall_clock(tmp_path: Path) -> None:
    async def scenario() -> None:
        running = ContainerProcess.spawn(context(tmp_path), ["sleep", "30"], FileSink(tmp_path / "0.log"))
        record = running.record
        assert record.start_ticks == start_ticks(running.pid) > 0 and record.stdout_inode and record.stderr_inode
        # a clock step moves psutil's create_time; the ticks since boot do not move
        assert alive(dataclasses.replace(record, create_time=record.create_time - 3600))
        assert not alive(dataclasses.replace(record, start_ticks=record.start_ticks + 1))  # exact: another process
        await running.stop(0)
        assert not alive(record)

    asyncio.run(scenario())


def test_adoption_fails_when_the_pipes_are_not_ours_and_the_old_group_is_killed(tmp_path: Path, mark: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not for the log\n")
    program = f"import os,time; os.closerange(3, 1024); fds=[os.open({str(secret)!r}, os.O_RDONLY) for _ in range(60)]; print('up', flush=True); time.sleep(60)"

    async def scenario() -> None:
        running = ContainerProcess.spawn(context(tmp_path), [sys.executable, "-c", program, mark], FileSink(tmp_path / "0.log"))
        await asyncio.sleep(0.5)
        running.detach()
        # fds 3.. now name a regular file under the numbers our pipes had: not reopened, not adopted
        assert ContainerProcess.adopt(running.record, FileSink(tmp_path / "1.log")) is None
        assert "not for the log" not in (tmp_path / "1.log").read_text()
        kill_record(running.record)
        assert wait_until(lambda: not marked(mark))
        with contextlib.suppress(ChildProcessError):
            os.waitpid(running.pid, 0)

    asyncio.run(scenario())


def test_what_a_container_leaves_in_its_group_dies_with_it(tmp_path: Path, mark: str) -> None:
    program = f"{sys.executable} -c 'import time; time.sleep(300)' {mark}"

    async def background() -> None:
        done = ContainerProcess.spawn(context(tmp_path), ["sh", "-c", f"{program} & sleep 0.3; exit 0"], FileSink(tmp_path / "1.log"))
        assert wait_until(lambda: len(marked(mark)) == 1, 3)
        result = await done.wait()
        assert result.code == 0
        assert wait_until(lambda: not marked(mark))

    asyncio.run(background())


def test_a_hook_or_probe_returns_when_its_command_exits_and_its_leftovers_end_with_the_container(tmp_path: Path, mark: str) -> None:
    program = f"{sys.executable} -c 'import time; time.sleep(300)' {mark}"

    async def scenario() -> None:
        ctx = context(tmp_path)
        companions = Companions(tmp_path, lambda _: None, lambda _: None)
        set_companions(ctx.uid, ctx.container, companions)
        try:
            began = time.monotonic()
            code, output = await run_command(ctx, ["sh", "-c", f"echo hi; {program} >/dev/null 2>&1 &"], 10)
            assert (code, output) == (0, b"hi\n") and time.monotonic() - began < 3  # no inherited copy of its pipe
            assert len(marked(mark)) == 1 and len(companions.groups) == 1
            assert list((tmp_path / "companions").iterdir())  # listed for a start after kill -9
            companions.kill_all()  # the container ended
            assert wait_until(lambda: not marked(mark))
            assert not companions.groups and not list((tmp_path / "companions").iterdir())
            with pytest.raises(ExecError, match="not running"):  # nothing new beside a container that ended
                await ExecSession.start(ctx, ["true"], stdin=False, tty=False)
        finally:
            set_companions(ctx.uid, ctx.container, None)

    asyncio.run(scenario())


def test_an_exec_session_is_killed_with_its_container_and_leaves_nothing(tmp_path: Path, mark: str) -> None:
    program = f"{sys.executable} -c 'import time; time.sleep(300)' {mark}"

    async def scenario() -> None:
        ctx = context(tmp_path)
        (tmp_path / "made").mkdir()
        companions = Companions(tmp_path, lambda _: None, lambda _: None)
        set_companions(ctx.uid, ctx.container, companions)
        try:
            # it backgrounds a job and exits: the session ends at once (item 11), the job with it (kill())
            session = await ExecSession.start(ctx, ["sh", "-c", f"{program} >/dev/null 2>&1 & echo started"], stdin=False, tty=False)
            assert await asyncio.wait_for(session.read_stdout(), 5) == b"started\n"
            assert await asyncio.wait_for(session.read_stdout(), 5) == b""
            assert await session.wait() == 0
            assert len(marked(mark)) == 1
            session.kill()
            session.close()
            assert wait_until(lambda: not marked(mark))
            # a running one dies with its container
            session = await ExecSession.start(ctx, ["sh", "-c", f"{program}"], stdin=True, tty=False)
            assert wait_until(lambda: len(marked(mark)) == 1)
            companions.kill_all()
            assert await asyncio.wait_for(session.wait(), 5) == 137
            session.close()
            assert wait_until(lambda: not marked(mark))
        finally:
            set_companions(ctx.uid, ctx.container, None)

    asyncio.run(scenario())


def test_a_previous_runs_companions_are_killed(tmp_path: Path, mark: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", mark], start_new_session=True)
    try:
        (tmp_path / COMPANIONS_DIR).mkdir()
        (tmp_path / COMPANIONS_DIR / f"{child.pid}-{start_ticks(child.pid)}").touch()
        (tmp_path / COMPANIONS_DIR / f"{os.getpid()}-1").touch()  # a number reused by another process: spared
        kill_companions(tmp_path)
        assert child.wait(5) == -signal.SIGKILL
        assert not list((tmp_path / COMPANIONS_DIR).iterdir())
    finally:
        child.kill()
        child.wait()


def test_a_pod_refreshes_only_on_the_config_maps_and_secrets_it_uses() -> None:
    spec = {
        "volumes": [{"name": "a", "configMap": {"name": "cm1"}}, {"name": "b", "secret": {"secretName": "s1"}},
                    {"name": "c", "projected": {"sources": [{"configMap": {"name": "cm2"}}, {"secret": {"name": "s2"}}, {"serviceAccountToken": {}}]}}],
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s3"}}]}],
        "containers": [{"name": "m", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm3", "key": "k"}}}],
                        "envFrom": [{"configMapRef": {"name": "cm4"}}]}],
    }
    assert references(spec) == {("configMap", "cm1"), ("configMap", "cm2"), ("configMap", "cm3"), ("configMap", "cm4"),
                                ("secret", "s1"), ("secret", "s2"), ("secret", "s3")}


async def test_stdin_writes_wait_on_the_loop_and_a_cancelled_one_leaves_no_descriptor() -> None:
    # a command that does not read its stdin: the write waits on the loop (no thread held), and cancelling
    # it closes only its own duplicate; the pipe's end stays usable and nothing leaks
    from emulator.kubelet.process import write_all

    read, write = os.pipe()
    os.set_blocking(write, False)
    open_before = len(os.listdir("/proc/self/fd"))
    try:
        task = asyncio.ensure_future(write_all(write, b"x" * (4 << 20)))  # more than any pipe holds
        await asyncio.sleep(0.2)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(os.listdir("/proc/self/fd")) == open_before
        os.set_blocking(read, False)
        while True:  # drain what it wrote, then the end still takes more
            try:
                os.read(read, 1 << 20)
            except BlockingIOError:
                break
        await write_all(write, b"after")
        assert os.read(read, 16) == b"after"
    finally:
        os.close(read)
        os.close(write)
