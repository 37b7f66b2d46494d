"""The client commands against an API that requires tokens: `emulator env`, `emulator run` and
`emulator kubeconfig` with the real server (--require-auth, HTTPS, self-signed CA) and real processes.

Every command runs with a scrubbed environment (no $KUBECONFIG, no EMULATOR_*, an empty data dir) so
that nothing on the test machine lends it credentials; each test adds back only what it is about.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulator.cli import target as targets
from tests.conftest import ROOT, Emulator, require_tool, start_emulator

HINT = "pass --kubeconfig <data-dir>/kubeconfig (written by `emulator serve`) or --token"

# argv: OUT EXIT. Writes its environment to OUT, then exits with EXIT (or, with EXIT "wait", sleeps).
CHILD = r"""
import json, os, sys, time
env = dict(os.environ)
folder = env.get("EMULATOR_SERVICEACCOUNT_DIR")
env["_FILES"] = ",".join(sorted(os.listdir(folder))) if folder else ""
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(env, f)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
if sys.argv[2] == "wait":
    time.sleep(60)
sys.exit(int(sys.argv[2]))
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = start_emulator(tmp_path_factory.mktemp("client-auth") / "data", "--require-auth", in_memory=False)
    with admin(emu) as api:
        pod = {"metadata": {"name": "front"}, "spec": {"containers": [{"name": "app", "image": "x"}]}}
        assert api.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
    yield emu
    emu.stop()


def own_kubeconfig(emu: Emulator) -> Path:
    path = Path(emu.faces["kubeconfig"])
    assert path == emu.data_dir / "kubeconfig"
    return path


def admin_token(emu: Emulator) -> str:
    return (emu.data_dir / "admin-token").read_text().strip()


def admin(emu: Emulator) -> httpx.Client:
    ca = yaml.safe_load(own_kubeconfig(emu).read_text())["clusters"][0]["cluster"]["certificate-authority-data"]
    tls = ssl.create_default_context(cadata=base64.b64decode(ca).decode())
    return httpx.Client(
        base_url=emu.api_url, verify=tls, headers={"Authorization": f"Bearer {admin_token(emu)}"}, timeout=10
    )


def scrubbed(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without anything that says where an API is or how to get in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_") and k != "KUBECONFIG"}
    env["EMULATOR_DATA_DIR"] = str(tmp_path / "no-data-dir")
    return {**env, **extra}


def emulator_cli(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=timeout
    )


def assert_env_output(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert "KUBERNETES_SERVICE_HOST=" in done.stdout and "KUBERNETES_SERVICE_PORT=443" in done.stdout


# -- emulator env -------------------------------------------------------------------------------------


def test_env_with_the_servers_kubeconfig(secured: Emulator, tmp_path: Path) -> None:
    assert_env_output(emulator_cli("env", "front", "--kubeconfig", str(own_kubeconfig(secured)), env=scrubbed(tmp_path)))
    # the same file through $KUBECONFIG: its context is named `emulator`
    assert_env_output(emulator_cli("env", "front", env=scrubbed(tmp_path, KUBECONFIG=str(own_kubeconfig(secured)))))


def test_env_with_a_token_and_the_ca(secured: Emulator, tmp_path: Path) -> None:
    ca = str(secured.data_dir / "api.crt")
    base = ["env", "front", "--server", secured.api_url, "--certificate-authority", ca]
    assert_env_output(emulator_cli(*base, "--token", admin_token(secured), env=scrubbed(tmp_path)))
    assert_env_output(emulator_cli(*base, env=scrubbed(tmp_path, EMULATOR_TOKEN=admin_token(secured))))
    insecure = ["env", "front", "--server", secured.api_url, "--insecure-skip-tls-verify", "--token", admin_token(secured)]
    assert_env_output(emulator_cli(*insecure, env=scrubbed(tmp_path)))


@pytest.mark.parametrize(("setting", "verifies"), [("true", False), ('"false"', True), ('"true"', True), ("1", True)])
def test_only_a_yaml_true_skips_tls_verification(secured: Emulator, tmp_path: Path, setting: str, verifies: bool) -> None:
    """kubectl reads insecure-skip-tls-verify as a boolean: the string "false" must not turn checks off."""
    config = tmp_path / "config"
    config.write_text(f"""apiVersion: v1
kind: Config
current-context: c
clusters:
- name: c
  cluster:
    server: {secured.api_url}
    insecure-skip-tls-verify: {setting}
users:
- name: u
  user:
    token: {admin_token(secured)}
contexts:
- name: c
  context: {{cluster: c, user: u}}
""")
    done = emulator_cli("env", "front", "--kubeconfig", str(config), env=scrubbed(tmp_path))
    if verifies:
        assert done.returncode == 1, done.stdout
        assert done.stderr.startswith(f"error: cannot verify the TLS certificate of {secured.api_url}")
    else:
        assert_env_output(done)


def test_env_finds_the_data_dirs_kubeconfig_for_the_address_serve_uses(secured: Emulator, tmp_path: Path) -> None:
    own = scrubbed(tmp_path, EMULATOR_DATA_DIR=str(secured.data_dir))
    # nothing given: the data dir's kubeconfig names the port `serve` would use
    assert_env_output(emulator_cli("env", "front", env={**own, "EMULATOR_API_PORT": str(secured.api_port)}))
    # --server given: the data dir's kubeconfig lends its CA and token to the server it names
    assert_env_output(emulator_cli("env", "front", "--server", secured.api_url, env=own))
    # ... and to no other: another port gets nothing (and nothing answers there)
    other = emulator_cli("env", "front", "--server", "https://127.0.0.1:1", env=own)
    assert other.returncode == 1 and "cannot reach the emulator API at https://127.0.0.1:1" in other.stderr


def test_without_credentials_env_says_what_to_do(secured: Emulator, tmp_path: Path) -> None:
    env = scrubbed(tmp_path)
    ca = str(secured.data_dir / "api.crt")
    no_token = emulator_cli("env", "front", "--server", secured.api_url, "--certificate-authority", ca, env=env)
    assert no_token.returncode == 1 and no_token.stdout == ""
    assert no_token.stderr == f"error: the API at {secured.api_url} requires a token: {HINT}\n"

    bad_token = emulator_cli("env", "front", "--server", secured.api_url, "--certificate-authority", ca, "--token", "nope", env=env)
    assert bad_token.returncode == 1
    assert "does not accept the token from --token" in bad_token.stderr

    untrusted = emulator_cli("env", "front", "--server", secured.api_url, "--token", admin_token(secured), env=env)
    assert untrusted.returncode == 1
    assert untrusted.stderr.startswith(f"error: cannot verify the TLS certificate of {secured.api_url}: pass --kubeconfig")
    assert "--insecure-skip-tls-verify" in untrusted.stderr

    plain = secured.api_url.replace("https://", "http://")
    cleartext = emulator_cli("env", "front", "--server", plain, env=env)
    assert cleartext.returncode == 1 and f"--server {secured.api_url}" in cleartext.stderr and HINT in cleartext.stderr


def test_a_service_account_token_is_told_it_may_not(secured: Emulator, tmp_path: Path) -> None:
    with admin(secured) as api:
        response = api.post(
            "/api/v1/namespaces/default/serviceaccounts/default/token",
            json={"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {}},
        )
        assert response.status_code == 201, response.text
        token = response.json()["status"]["token"]
        # RBAC grants nothing by default: a Role that reads pods and their environment, bound to the account
        rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
        role = {"metadata": {"name": "env-reader"}, "rules": [{"apiGroups": [""], "resources": ["pods", "pods/env"], "verbs": ["get"]}]}
        assert api.post(f"{rbac}/roles", json=role).status_code == 201
        binding = {
            "metadata": {"name": "env-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "env-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
        }
        assert api.post(f"{rbac}/rolebindings", json=binding).status_code == 201
    args = ["--kubeconfig", str(own_kubeconfig(secured)), "--token", token]
    assert_env_output(emulator_cli("env", "front", *args, env=scrubbed(tmp_path)))  # reads its own namespace
    done = emulator_cli("run", "--name", "sneaky", *args, "--", "true", env=scrubbed(tmp_path))
    assert done.returncode == 1
    assert 'cannot create resource "pods"' in done.stderr and "the token from --token may not do this" in done.stderr


# -- emulator run -------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kubeconfig", "token"])
def test_run_registers_the_pod_and_cleans_up(secured: Emulator, tmp_path: Path, how: str) -> None:
    name = f"local-{how}"
    if how == "kubeconfig":
        access = ["--kubeconfig", str(own_kubeconfig(secured))]
    else:
        access = ["--server", secured.api_url, "--token", admin_token(secured)]
        access += ["--certificate-authority", str(secured.data_dir / "api.crt")]
    report = tmp_path / "env.json"
    done = emulator_cli(
        "run", "--name", name, *access, "--", sys.executable, "-c", CHILD, str(report), "3", env=scrubbed(tmp_path)
    )
    assert done.returncode == 3, done.stderr  # the child ran and its status came back
    assert f"pod default/{name} registered" in done.stderr and f"pod default/{name} deleted" in done.stderr
    child = json.loads(report.read_text())
    assert child["POD_NAME"] == name and child["POD_IP"] and child["KUBERNETES_SERVICE_PORT"] == "443"
    assert child["EMULATOR_SERVICEACCOUNT_TOKEN_FILE"]  # the admin may request the pod's token
    assert child["_FILES"] == "ca.crt,namespace,token"  # the in-cluster layout, CA included
    with admin(secured) as api:
        assert api.get(f"/api/v1/namespaces/default/pods/{name}").status_code == 404


def test_run_is_stopped_by_deleting_its_pod(secured: Emulator, tmp_path: Path) -> None:
    """The watch that notices the deletion goes through the same credentials."""
    report = tmp_path / "env.json"
    args = [sys.executable, "-m", "emulator", "run", "--name", "watched", "--kubeconfig", str(own_kubeconfig(secured))]
    proc = subprocess.Popen(
        [*args, "--", sys.executable, "-c", CHILD, str(report), "wait"],
        cwd=ROOT, env=scrubbed(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert report.exists(), "the child never started"
        time.sleep(0.3)  # let the watch connect
        with admin(secured) as api:
            assert api.delete("/api/v1/namespaces/default/pods/watched").status_code == 200
        assert proc.wait(15) == 128 + signal.SIGTERM
        assert "pod deleted through the API: stopping" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_without_credentials_fails_before_starting_the_process(secured: Emulator, tmp_path: Path) -> None:
    report = tmp_path / "env.json"
    done = emulator_cli(
        "run", "--name", "nocreds", "--server", secured.api_url, "--certificate-authority",
        str(secured.data_dir / "api.crt"), "--", sys.executable, "-c", CHILD, str(report), "0",
        env=scrubbed(tmp_path),
    )
    assert done.returncode == 1
    assert done.stderr == f"error: the API at {secured.api_url} requires a token: {HINT}\n"
    assert not report.exists()


# -- emulator kubeconfig ------------------------------------------------------------------------------


def kubectl_get_ns(kubectl: str, config: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl, "--kubeconfig", str(config), "--cache-dir", str(cache), *extra, "get", "ns", "-o", "name"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )


def test_kubeconfig_from_data_dir_works_with_kubectl(secured: Emulator, tmp_path: Path) -> None:
    kubectl = require_tool("kubectl")
    printed = emulator_cli("kubeconfig", "--from-data-dir", str(secured.data_dir), env=scrubbed(tmp_path))
    assert printed.returncode == 0, printed.stderr
    config = yaml.safe_load(printed.stdout)
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == secured.api_url and cluster["certificate-authority-data"]
    assert config["users"][0]["user"] == {"token": admin_token(secured)}
    standalone = tmp_path / "standalone"
    standalone.write_text(printed.stdout)
    listed = kubectl_get_ns(kubectl, standalone, tmp_path / "c1")
    assert listed.returncode == 0, listed.stderr
    assert "namespace/kube-system" in listed.stdout

    # merged into a user's kubeconfig next to another current context, which stays current
    users = tmp_path / "config"
    users.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod",
        "clusters": [{"name": "prod", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "prod", "user": {"token": "prod-secret"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}],
    }))
    env = scrubbed(tmp_path, EMULATOR_DATA_DIR=str(secured.data_dir))  # --from-data-dir without DIR
    written = emulator_cli("kubeconfig", "--from-data-dir", "--write", str(users), env=env)
    assert written.returncode == 0, written.stderr
    merged = kubectl_get_ns(kubectl, users, tmp_path / "c2", "--context", "emulator")
    assert merged.returncode == 0, merged.stderr
    assert yaml.safe_load(users.read_text())["current-context"] == "prod"
    # and `emulator env` finds that `emulator` context in $KUBECONFIG, not the current `prod` one
    assert_env_output(emulator_cli("env", "front", env=scrubbed(tmp_path, KUBECONFIG=str(users))))


def test_kubeconfig_with_a_token_works_with_kubectl(secured: Emulator, tmp_path: Path) -> None:
    kubectl = require_tool("kubectl")
    ca = str(secured.data_dir / "api.crt")
    printed = emulator_cli(
        "kubeconfig", "--server", secured.api_url, "--token", admin_token(secured), "--certificate-authority", ca,
        env=scrubbed(tmp_path),
    )
    assert printed.returncode == 0, printed.stderr
    path = tmp_path / "config"
    path.write_text(printed.stdout)
    listed = kubectl_get_ns(kubectl, path, tmp_path / "cache")
    assert listed.returncode == 0, listed.stderr


def test_kubeconfig_from_a_data_dir_without_one_says_why(tmp_path: Path) -> None:
    done = emulator_cli("kubeconfig", "--from-data-dir", str(tmp_path), env=scrubbed(tmp_path))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {tmp_path / 'kubeconfig'} does not exist: `emulator serve` writes it")


def test_kubeconfig_default_is_unchanged(tmp_path: Path) -> None:
    done = emulator_cli("kubeconfig", env=scrubbed(tmp_path))
    assert done.returncode == 0 and done.stderr == ""
    config = yaml.safe_load(done.stdout)
    assert config["clusters"][0]["cluster"] == {"server": "http://127.0.0.1:8080"}
    assert config["users"][0]["user"] == {}


# -- a data-dir kubeconfig left behind by an earlier authenticated run -----------------------------------


def test_a_stale_data_dir_kubeconfig_falls_back_to_plain_http(emulator: Emulator, tmp_path: Path) -> None:
    """`serve --require-auth` once, then `serve` without: the kubeconfig still names https on that port."""
    stale = tmp_path / "old-data"
    stale.mkdir()
    (stale / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": f"https://127.0.0.1:{emulator.api_port}"}}],
        "users": [{"name": "emulator", "user": {"token": "old-admin-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
    }))
    with emulator.client() as api:
        pod = {"metadata": {"name": "front"}, "spec": {"containers": [{"name": "app", "image": "x"}]}}
        assert api.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
    env = scrubbed(tmp_path, EMULATOR_DATA_DIR=str(stale), EMULATOR_API_PORT=str(emulator.api_port))
    assert_env_output(emulator_cli("env", "front", env=env))


# -- where the target comes from (no server needed) -----------------------------------------------------


def write_kubeconfig(path: Path, contexts: dict[str, tuple[str, str | None]], current: str) -> Path:
    """A kubeconfig with one cluster+user per context: name -> (server, token)."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": n, "cluster": {"server": s}} for n, (s, _) in contexts.items()],
        "users": [{"name": n, "user": {"token": t} if t else {}} for n, (_, t) in contexts.items()],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in contexts],
    }))
    return path


def test_resolution_precedence(tmp_path: Path) -> None:
    empty: dict[str, Any] = {"EMULATOR_DATA_DIR": str(tmp_path / "none")}
    users = write_kubeconfig(
        tmp_path / "users",
        {"prod": ("https://prod.example:6443", "prod-token"), "emulator": ("https://127.0.0.1:9443", "emu-token")},
        current="prod",
    )
    # defaults: plain http where `serve` listens
    assert targets.resolve(environ=empty) == targets.ApiTarget("http://127.0.0.1:8080", source=targets.resolve(environ=empty).source)
    assert targets.resolve(environ={**empty, "EMULATOR_API_PORT": "9000"}).server == "http://127.0.0.1:9000"
    # $KUBECONFIG: the `emulator` context, never the current (prod) one
    target = targets.resolve(environ={**empty, "KUBECONFIG": str(users)})
    assert (target.server, target.token) == ("https://127.0.0.1:9443", "emu-token")
    # --kubeconfig: its current context, or --context
    assert targets.resolve(kubeconfig_path=str(users), environ=empty).token == "prod-token"
    assert targets.resolve(kubeconfig_path=str(users), context="emulator", environ=empty).token == "emu-token"
    # --server beats $EMULATOR_SERVER beats the kubeconfig; --token beats $EMULATOR_TOKEN beats the kubeconfig
    env = {**empty, "KUBECONFIG": str(users), "EMULATOR_SERVER": "https://127.0.0.1:9443", "EMULATOR_TOKEN": "env-token"}
    assert targets.resolve(environ=env).token == "env-token"
    assert targets.resolve(token="flag-token", environ=env).token == "flag-token"
    assert targets.resolve(server="127.0.0.1:7000", environ=env).server == "http://127.0.0.1:7000"
    # credentials from $KUBECONFIG go only to the server they name
    assert targets.resolve(server="https://127.0.0.1:9443", environ={**empty, "KUBECONFIG": str(users)}).token == "emu-token"
    assert targets.resolve(server="https://127.0.0.1:9999", environ={**empty, "KUBECONFIG": str(users)}).token is None
    # a token never goes over plain http off this machine
    with pytest.raises(targets.TargetError, match="over plain http"):
        targets.resolve(server="http://10.1.2.3:8080", token="t", environ=empty)
    with pytest.raises(targets.TargetError, match="no context 'nope'"):
        targets.resolve(kubeconfig_path=str(users), context="nope", environ=empty)
    with pytest.raises(targets.TargetError, match="no such file"):
        targets.resolve(kubeconfig_path=str(tmp_path / "missing"), environ=empty)


def test_bad_kubeconfig_flags_are_reported(tmp_path: Path) -> None:
    done = emulator_cli("env", "front", "--kubeconfig", str(tmp_path / "missing"), env=scrubbed(tmp_path))
    assert done.returncode == 1 and done.stderr == f"error: --kubeconfig {tmp_path / 'missing'}: no such file\n"
