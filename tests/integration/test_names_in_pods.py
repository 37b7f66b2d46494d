"""Names resolve inside the processes the sandbox starts, through the system resolver (`getaddrinfo`), the
process running as an unprivileged user (`nobody`: CI runs as root, and the sandbox must work without it).

A service of the pod's namespace by its short name, `name.ns` and the full name; another namespace's
service; a headless service (each ready endpoint); a StatefulSet pod's own name; the pod's hostname. The
hosts file comes from the emulator (`/emulator/v1/.../pods/NAME/hosts`, what `emulator run` uses), and
`emulator run` itself is shown to pick up a service created while its process runs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.kubelet import sandbox
from emulator.kubelet.context import ContainerContext
from emulator.kubelet.hosts import HOSTS_FILE
from tests.conftest import Emulator

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sandbox.available(), reason="no unprivileged user namespaces here (the sandbox is off)")

# getent's ahostsv4 asks getaddrinfo, as any program's resolver does; one line per name: "NAME IP..."
RESOLVE = """
for name in "$@"; do
    printf '%s' "$name"
    getent ahostsv4 "$name" | awk '{print " " $1}' | sort -u | tr -d '\\n'
    echo
done
echo "<hostname> $(hostname)"
"""


def resolved(output: str) -> dict[str, list[str]]:
    found = {}
    for line in output.splitlines():
        name, *ips = line.split()
        found[name] = sorted(ips)
    return found


def as_nobody(argv: list[str]) -> list[str]:
    """argv run as `nobody` when we are root (CI); as is otherwise (already unprivileged)."""
    if os.getuid() != 0:
        return argv
    user = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory `nobody` can use (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="emulator-sandbox-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def give_to_nobody(path: Path) -> None:
    if os.getuid() == 0:
        user = pwd.getpwnam("nobody")
        for p in [path, *path.rglob("*")]:
            os.chown(p, user.pw_uid, user.pw_gid, follow_symlinks=False)


def create(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture
def cluster(emu: Emulator, ns: str) -> Iterator[dict[str, Any]]:
    """A ClusterIP service `web`, a service `db` in another namespace, and the StatefulSet tutorial's
    headless `nginx` with pods web-0 and web-1; a pod `client` whose names we ask for."""
    other = f"{ns}-other"[:60]
    with emu.client() as api:
        create(api, "/api/v1/namespaces", {"metadata": {"name": other}})
        web = create(api, f"/api/v1/namespaces/{ns}/services", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}})
        db = create(api, f"/api/v1/namespaces/{other}/services", {"metadata": {"name": "db"}, "spec": {"ports": [{"port": 5432}]}})
        create(api, f"/api/v1/namespaces/{ns}/services", {"metadata": {"name": "nginx"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}], "selector": {"app": "nginx"}}})
        create(api, f"/apis/apps/v1/namespaces/{ns}/statefulsets", {
            "metadata": {"name": "web"},
            "spec": {"serviceName": "nginx", "replicas": 2, "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": {"app": "nginx"}},
                     "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
        })
        client = create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "client"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})

        def ready_pods() -> dict[str, str] | None:
            items = api.get(f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": "app=nginx"}).json()["items"]
            ips = {p["metadata"]["name"]: str((p.get("status") or {}).get("podIP") or "") for p in items}
            return ips if len(ips) == 2 and all(ips.values()) else None

        pods = wait_for(ready_pods)
        assert pods, "the StatefulSet's pods did not come"

        def listed() -> bool:
            return all(f"{name}.nginx" in api.get(f"/emulator/v1/namespaces/{ns}/pods/client/hosts").text for name in pods)

        assert wait_for(listed), "the StatefulSet's pods never reached the hosts file"
        yield {"ns": ns, "other": other, "web": web["spec"]["clusterIP"], "db": db["spec"]["clusterIP"], "pods": pods,
               "client": client}


def test_names_resolve_through_getaddrinfo_as_an_unprivileged_user(emu: Emulator, cluster: dict[str, Any], shared_dir: Path) -> None:
    ns, other = cluster["ns"], cluster["other"]
    with emu.client() as api:
        hosts = api.get(f"/emulator/v1/namespaces/{ns}/pods/client/hosts")
        names = api.get(f"/emulator/v1/namespaces/{ns}/pods/client/hosts", params={"format": "json"}).json()
    assert hosts.headers["content-type"].startswith("text/plain")
    assert names["search"] == [f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    pod_dir = shared_dir / "client"
    pod_dir.mkdir()
    (pod_dir / HOSTS_FILE).write_text(hosts.text)
    client_ip = cluster["client"]["status"]["podIP"]
    ctx = ContainerContext(ns, "client", "uid", "c", client_ip, {"PATH": os.environ["PATH"]}, None, pod_dir)
    asked = [
        "web", f"web.{ns}", f"web.{ns}.svc", f"web.{ns}.svc.cluster.local",
        f"db.{other}", f"db.{other}.svc.cluster.local", "db",
        "nginx", "web-0.nginx", f"web-1.nginx.{ns}.svc.cluster.local",
        "client", "localhost",
    ]
    # (a system program: on CI the virtualenv's Python lives in root's home, which nobody may not enter)
    argv, env = sandbox.prepare(ctx, ["sh", "-c", RESOLVE, "resolve", *asked])
    give_to_nobody(shared_dir)
    done = subprocess.run(as_nobody(argv), env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    found = resolved(done.stdout)
    pods = cluster["pods"]
    assert found["web"] == found[f"web.{ns}"] == found[f"web.{ns}.svc"] == found[f"web.{ns}.svc.cluster.local"] == [cluster["web"]]
    assert found[f"db.{other}"] == found[f"db.{other}.svc.cluster.local"] == [cluster["db"]]
    assert found["db"] == []  # another namespace's service has no short name here
    assert found["nginx"] == sorted(pods.values())
    assert found["web-0.nginx"] == [pods["web-0"]]
    assert found[f"web-1.nginx.{ns}.svc.cluster.local"] == [pods["web-1"]]
    assert found["client"] == [client_ip] and found["<hostname>"] == ["client"]
    assert found["localhost"] == ["127.0.0.1"]


def test_emulator_run_resolves_a_service_created_while_it_runs(emu: Emulator, ns: str) -> None:
    # `emulator run` as the test's user (root on CI: the sandbox maps it to itself, and nobody could not
    # start the virtualenv's Python there); the hosts file is re-read while CMD runs
    script = "for i in $(seq 100); do getent ahostsv4 late && exit 0; sleep 0.2; done; echo late never resolved"
    argv = [sys.executable, "-m", "emulator", "run", "--server", emu.api_url, "-n", ns, "--name", "poller", "--", "sh", "-c", script]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with emu.client() as api:
            assert wait_for(lambda: api.get(f"/api/v1/namespaces/{ns}/pods/poller").status_code == 200)
            time.sleep(0.5)  # the process is polling by now
            late = create(api, f"/api/v1/namespaces/{ns}/services", {"metadata": {"name": "late"}, "spec": {"ports": [{"port": 80}]}})
        out, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert f"{late['spec']['clusterIP']}     STREAM late.{ns}.svc.cluster.local" in out, out
