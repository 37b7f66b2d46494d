"""Volumes seen by real processes in the sandbox: a ConfigMap updated in place while a process reads it, an
emptyDir shared by two containers' processes, a read-only mount, a claim's directory that outlives its
pod — the processes running as `nobody` (CI runs as root; the sandbox must work without privilege).
Then the same end to end through `emulator serve --kubelet`: a two-container pod sharing an emptyDir,
a ConfigMap volume updated while the pod runs, and the cluster's names resolved from inside.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.controllers.namespaces import NamespaceController
from emulator.controllers.volumes import VolumeController
from emulator.kinds import CONFIG_MAPS, NAMESPACES, PERSISTENT_VOLUME_CLAIMS, PODS, SERVICE_ACCOUNTS
from emulator.kubelet import sandbox, termination
from emulator.kubelet.context import ContainerContext
from emulator.kubelet.volumes import Mount, Volumes
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store
from tests.conftest import Emulator, start_emulator

pytestmark = [
    pytest.mark.skipif(not sandbox.available(), reason="no unprivileged user namespaces here (the sandbox is off)"),
    pytest.mark.timeout(180),
]
NS = "shop"


def as_nobody(argv: list[str]) -> list[str]:
    if os.getuid() != 0:
        return argv
    user = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]


def give_to_nobody(path: Path) -> None:
    if os.getuid() == 0:
        user = pwd.getpwnam("nobody")
        for p in [path, *path.rglob("*")]:
            os.chown(p, user.pw_uid, user.pw_gid, follow_symlinks=False)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="emulator-volumes-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def registry() -> Registry:
    store = Store(MemoryBackend())
    reg = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    NamespaceController(reg).bootstrap("127.0.0.1", 6443)
    reg.create(NAMESPACES, "", {"metadata": {"name": NS}})
    reg.create(SERVICE_ACCOUNTS, NS, {"metadata": {"name": "default"}})
    return reg


def make_pod(reg: Registry, name: str, volumes: list[dict[str, Any]], containers: list[dict[str, Any]]) -> dict[str, Any]:
    return reg.create(PODS, NS, {"metadata": {"name": name}, "spec": {"containers": containers, "volumes": volumes}}).obj


class PodSandbox:
    """What the kubelet does for one pod, by hand: its volumes set up, its containers' argv prepared."""

    def __init__(self, reg: Registry, pod: dict[str, Any], pod_dir: Path) -> None:
        self.pod, self.pod_dir = pod, pod_dir
        self.volumes = Volumes(reg, pod, pod_dir, None)
        self.volumes.setup()

    def argv(self, container: str, script: str) -> tuple[list[str], dict[str, str]]:
        spec = next(c for c in self.pod["spec"]["containers"] if c["name"] == container)
        ctx = ContainerContext(
            NS, self.pod["metadata"]["name"], self.pod["metadata"]["uid"], container, "10.244.0.9",
            {"PATH": "/usr/bin:/bin"}, None, self.pod_dir, self.volumes.mounts_for(spec),
        )
        argv, env = sandbox.prepare(ctx, ["sh", "-c", script])
        give_to_nobody(self.pod_dir / sandbox.SANDBOX_DIR)  # the launcher makes its mount points there
        return as_nobody(argv), env

    def run(self, container: str, script: str) -> subprocess.CompletedProcess[str]:
        argv, env = self.argv(container, script)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


def test_an_empty_dir_is_shared_by_the_pods_containers(registry: Registry, shared_dir: Path) -> None:
    pod = make_pod(registry, "pair", [{"name": "shared", "emptyDir": {}}], [
        {"name": "writer", "image": "x", "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
        {"name": "reader", "image": "x", "volumeMounts": [{"name": "shared", "mountPath": "/var/data"}]},
    ])
    box = PodSandbox(registry, pod, shared_dir / "pod")
    wrote = box.run("writer", "echo hello from $(id -un) > /shared/msg")
    assert wrote.returncode == 0, wrote.stderr
    read = box.run("reader", "cat /var/data/msg; ls -ld /shared 2>&1 || true")
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    expected = "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    assert lines[0] == f"hello from {expected}"
    assert "No such file" in lines[1]  # the other container's mountPath is not in this one
    assert not Path("/shared").exists()  # made on a tmpfs of the sandbox, never on the host
    box.volumes.teardown()
    assert not (shared_dir / "pod" / "volumes").exists()


def test_the_termination_message_file_is_mounted_over_dev_and_a_mount_that_fails_is_left_out(shared_dir: Path) -> None:
    # what the kubelet mounts for a container's terminationMessagePath: /dev is covered, its devices bound back
    pod_dir = shared_dir / "pod"
    message = termination.path_of(pod_dir, "main")
    termination.fresh(message)
    give_to_nobody(pod_dir)
    kept = Mount(termination.VOLUME, message, "/dev/termination-log", optional=True)
    missing = Mount(termination.VOLUME, shared_dir / "not-there", "/dev/other-log", optional=True)
    ctx = ContainerContext(NS, "p", "u", "main", "10.244.0.9", {"PATH": "/usr/bin:/bin"}, None, pod_dir, (kept, missing))
    script = "echo done > /dev/termination-log; echo x > /dev/null; head -c 8 /dev/zero | wc -c; test -d /dev/pts && echo pts"
    argv, env = sandbox.prepare(ctx, ["sh", "-c", script])
    give_to_nobody(pod_dir / sandbox.SANDBOX_DIR)
    ran = subprocess.run(as_nobody(argv), env=env, capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr  # the mount that could not be made did not stop the container
    assert ran.stdout.split() == ["8", "pts"]
    assert termination.read(message) == "done\n"
    assert not Path("/dev/termination-log").exists()  # only inside the sandbox
    # a mount that is not optional, from a source that is not there: the container cannot start
    ctx = ContainerContext(NS, "p", "u", "main", "10.244.0.9", {"PATH": "/usr/bin:/bin"}, None, pod_dir,
                           (Mount("data", shared_dir / "not-there", "/dev/other-log"),))
    argv, env = sandbox.prepare(ctx, ["sh", "-c", "true"])
    give_to_nobody(pod_dir / sandbox.SANDBOX_DIR)
    failed = subprocess.run(as_nobody(argv), env=env, capture_output=True, text=True, timeout=30)
    assert failed.returncode == 127 and failed.stderr.startswith("emulator sandbox: "), failed.stderr


def test_a_config_map_volume_updated_in_place_is_seen_by_a_running_process(registry: Registry, shared_dir: Path) -> None:
    registry.create(CONFIG_MAPS, NS, {"metadata": {"name": "app"}, "data": {"mode": "v1"}})
    pod = make_pod(registry, "reader", [{"name": "config", "configMap": {"name": "app"}}], [
        {"name": "main", "image": "x", "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": True}]},
    ])
    box = PodSandbox(registry, pod, shared_dir / "pod")
    script = (
        "touch /etc/app/x 2>/dev/null && echo writable; cat /etc/app/mode; echo;"
        "for i in $(seq 150); do [ \"$(cat /etc/app/mode)\" = v2 ] && echo saw v2 && exit 0; sleep 0.1; done; exit 1"
    )
    argv, env = box.argv("main", script)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        cm = registry.get(CONFIG_MAPS, NS, "app")
        registry.update(CONFIG_MAPS, NS, "app", {**cm, "data": {"mode": "v2"}})
        box.volumes.refresh()  # what the kubelet does on the ConfigMap's event
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.split() == ["v1", "saw", "v2"]  # never writable: a read-only mount


@pytest.fixture
async def claims(registry: Registry, shared_dir: Path) -> AsyncIterator[Registry]:
    controller = VolumeController(registry, str(shared_dir / "data"))  # binds claims as events arrive
    registry.store.subscribe(controller.apply)
    controller.start()
    yield registry
    registry.store.unsubscribe(controller.apply)


async def test_a_claims_directory_outlives_its_pod(claims: Registry, shared_dir: Path) -> None:
    claims.create(PERSISTENT_VOLUME_CLAIMS, NS, {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    })
    for _ in range(100):
        claim = claims.store.get(PERSISTENT_VOLUME_CLAIMS.key, NS, "data")
        if claim is not None and (claim.get("status") or {}).get("phase") == "Bound":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the claim was never bound")
    give_to_nobody(shared_dir / "data")
    mounts = [{"name": "data", "mountPath": "/srv/data"}]
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    first = PodSandbox(claims, make_pod(claims, "first", volumes, [{"name": "c", "image": "x", "volumeMounts": mounts}]), shared_dir / "first")
    done = await asyncio.to_thread(first.run, "c", "echo kept > /srv/data/file")
    assert done.returncode == 0, done.stderr
    first.volumes.teardown()
    claims.delete(PODS, NS, "first")
    second = PodSandbox(claims, make_pod(claims, "second", volumes, [{"name": "c", "image": "x", "volumeMounts": mounts}]), shared_dir / "second")
    done = await asyncio.to_thread(second.run, "c", "cat /srv/data/file")
    assert done.stdout == "kept\n", done.stderr
    assert str(second.volumes.paths["data"]).startswith(str(shared_dir / "data" / "volumes"))


# -- end to end: emulator serve --kubelet --------------------------------------------------------------


@pytest.fixture(scope="module")
def kubelet_emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("kubelet-volumes-data"), "--kubelet", "--allow-anonymous")
    yield emulator
    emulator.stop(timeout=30)


@pytest.fixture
def kapi(kubelet_emu: Emulator) -> Iterator[httpx.Client]:
    with kubelet_emu.client() as client:
        yield client


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def logs(api: httpx.Client, ns: str, pod: str, container: str) -> str:
    response = api.get(f"/api/v1/namespaces/{ns}/pods/{pod}/log", params={"container": container})
    return response.text if response.status_code == 200 else ""


def test_end_to_end_a_pod_shares_an_empty_dir_follows_its_config_map_and_resolves_names(kapi: httpx.Client) -> None:
    ns = "volumes-e2e"
    assert kapi.post("/api/v1/namespaces", json={"metadata": {"name": ns}}).status_code == 201
    web = kapi.post(f"/api/v1/namespaces/{ns}/services", json={"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}).json()
    assert kapi.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "app"}, "data": {"mode": "v1"}}).status_code == 201
    writer = (
        "while true; do date +%s%N > /shared/now; sleep 0.1; done"
    )
    reader = (
        "getent ahostsv4 web | head -1; getent ahostsv4 web." + ns + ".svc.cluster.local | head -1; hostname;"
        "for i in $(seq 300); do [ -s /data/now ] && echo shared ok && break; sleep 0.1; done;"
        "cat /etc/app/mode; echo;"
        "for i in $(seq 300); do [ \"$(cat /etc/app/mode)\" = v2 ] && echo saw v2 && break; sleep 0.1; done;"
        "sleep 3600"
    )
    pod = {
        "metadata": {"name": "pair"},
        "spec": {
            "containers": [
                {"name": "writer", "image": "busybox", "command": ["sh", "-c", writer],
                 "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                {"name": "reader", "image": "busybox", "command": ["sh", "-c", reader],
                 "volumeMounts": [{"name": "shared", "mountPath": "/data"}, {"name": "config", "mountPath": "/etc/app"}]},
            ],
            "volumes": [{"name": "shared", "emptyDir": {}}, {"name": "config", "configMap": {"name": "app"}}],
            "terminationGracePeriodSeconds": 1,
        },
    }
    assert kapi.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    try:
        wait_for(lambda: "shared ok" in logs(kapi, ns, "pair", "reader"), what="the reader to see the writer's file")
        out = logs(kapi, ns, "pair", "reader")
        assert f"{web['spec']['clusterIP']}     STREAM web.{ns}.svc.cluster.local" in out, out
        assert "\npair\n" in out and "\nv1\n" in out
        cm = kapi.get(f"/api/v1/namespaces/{ns}/configmaps/app").json()
        assert kapi.put(f"/api/v1/namespaces/{ns}/configmaps/app", json={**cm, "data": {"mode": "v2"}}).status_code == 200
        wait_for(lambda: "saw v2" in logs(kapi, ns, "pair", "reader"), what="the ConfigMap's new value in the volume")
    finally:
        kapi.delete(f"/api/v1/namespaces/{ns}/pods/pair")
        wait_for(lambda: kapi.get(f"/api/v1/namespaces/{ns}/pods/pair").status_code == 404, what="the pod to go")
