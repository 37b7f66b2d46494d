"""`emulator kubeconfig`: the context it builds, the merge that leaves other contexts alone, and kubectl using it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.security import kubeconfig
from tests.conftest import ROOT, Emulator, require_tool

SERVER = "http://127.0.0.1:18080"

USERS_CONFIG: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {"name": "prod", "cluster": {"server": "https://prod.example:6443", "certificate-authority-data": "Q0E="}}
    ],
    "users": [{"name": "prod-admin", "user": {"token": "secret"}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod-admin", "namespace": "shop"}}],
    "current-context": "prod",
    "preferences": {"colors": True},
}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", "kubeconfig", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
    )


def context(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c["context"] for c in config["contexts"] if c["name"] == name)


def cluster(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c["cluster"] for c in config["clusters"] if c["name"] == name)


# -- pure functions ----------------------------------------------------------------------------------


def test_kubeconfig_for_names_everything_emulator() -> None:
    config = kubeconfig.kubeconfig_for(SERVER)
    assert cluster(config, "emulator") == {"server": SERVER}
    assert context(config, "emulator") == {"cluster": "emulator", "user": "emulator", "namespace": "default"}
    assert config["users"] == [{"name": "emulator", "user": {}}]
    assert config["current-context"] == "emulator"
    assert yaml.safe_load(kubeconfig.render(config)) == config


def test_merge_keeps_the_users_contexts_and_current_context() -> None:
    merged = kubeconfig.merge(USERS_CONFIG, SERVER)
    assert merged["current-context"] == "prod"
    assert [c["name"] for c in merged["contexts"]] == ["prod", "emulator"]
    assert [c["name"] for c in merged["clusters"]] == ["prod", "emulator"]
    assert [u["name"] for u in merged["users"]] == ["prod-admin", "emulator"]
    assert context(merged, "prod") == USERS_CONFIG["contexts"][0]["context"]
    assert merged["users"][0] == USERS_CONFIG["users"][0] and merged["preferences"] == {"colors": True}
    assert USERS_CONFIG["current-context"] == "prod" and len(USERS_CONFIG["contexts"]) == 1  # input untouched


def test_merge_replaces_an_older_emulator_entry_in_place() -> None:
    first = kubeconfig.merge(USERS_CONFIG, SERVER)
    second = kubeconfig.merge(first, "http://127.0.0.1:9999", use=True, namespace="team-a")
    assert [c["name"] for c in second["clusters"]] == ["prod", "emulator"]
    assert cluster(second, "emulator") == {"server": "http://127.0.0.1:9999"}
    assert context(second, "emulator")["namespace"] == "team-a"
    assert second["current-context"] == "emulator"


def test_merge_into_nothing_does_not_pick_a_current_context_unless_asked() -> None:
    assert kubeconfig.merge(None, SERVER)["current-context"] == ""
    assert kubeconfig.merge({}, SERVER, use=True)["current-context"] == "emulator"


def test_default_path_follows_kubeconfig(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    second.write_text("")
    listed = os.pathsep.join([str(first), str(second)])
    assert kubeconfig.default_path({"KUBECONFIG": listed}) == second  # the first one that exists
    assert kubeconfig.default_path({"KUBECONFIG": str(first)}) == first
    assert kubeconfig.default_path({}) == Path(os.path.expanduser("~")) / ".kube" / "config"


def test_write_merges_atomically_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(USERS_CONFIG))
    kubeconfig.write(path, SERVER)
    written = yaml.safe_load(path.read_text())
    assert written == kubeconfig.merge(USERS_CONFIG, SERVER)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["config"]  # no temporary file left behind


def test_write_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles-kubeconfig"
    real.write_text(yaml.safe_dump(USERS_CONFIG))
    link = tmp_path / "config"
    link.symlink_to(real)
    kubeconfig.write(link, SERVER)
    assert link.is_symlink()
    assert "emulator" in [c["name"] for c in yaml.safe_load(real.read_text())["contexts"]]


def test_write_refuses_a_file_that_is_not_a_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("- just\n- a list\n")
    with pytest.raises(kubeconfig.KubeconfigError, match="not a kubeconfig"):
        kubeconfig.write(path, SERVER)
    path.write_text("clusters: [\n")
    with pytest.raises(kubeconfig.KubeconfigError, match="not valid YAML"):
        kubeconfig.write(path, SERVER)
    assert path.read_text() == "clusters: [\n"


# -- the command -------------------------------------------------------------------------------------


def test_cli_prints_a_standalone_kubeconfig() -> None:
    done = run_cli("--server", SERVER)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout) == kubeconfig.kubeconfig_for(SERVER)
    default = run_cli(env={"EMULATOR_API_PORT": "18181"})
    assert cluster(yaml.safe_load(default.stdout), "emulator") == {"server": "http://127.0.0.1:18181"}


def test_cli_write_honours_kubeconfig_and_use(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(USERS_CONFIG))
    done = run_cli("--server", SERVER, "--write", env={"KUBECONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    assert str(path) in done.stdout and "--context emulator" in done.stdout
    assert yaml.safe_load(path.read_text())["current-context"] == "prod"
    other = tmp_path / "other"
    done = run_cli("--server", SERVER, "--write", str(other), "--use")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(other.read_text())["current-context"] == "emulator"
    home = tmp_path / "home"
    done = run_cli("--server", SERVER, "--write", env={"HOME": str(home), "KUBECONFIG": ""})
    assert done.returncode == 0, done.stderr
    assert context(yaml.safe_load((home / ".kube" / "config").read_text()), "emulator")["cluster"] == "emulator"


def test_cli_write_reports_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("clusters: [\n")
    done = run_cli("--server", SERVER, "--write", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "not valid YAML" in done.stderr


def test_kubectl_uses_the_emulator_context(emulator: Emulator, tmp_path: Path) -> None:
    binary = require_tool("kubectl")
    path = tmp_path / "config"
    # the user's current context points at a cluster that does not answer: only --context reaches us
    path.write_text(
        yaml.safe_dump({**USERS_CONFIG, "clusters": [{"name": "prod", "cluster": {"server": "http://127.0.0.1:1"}}]})
    )
    done = run_cli("--server", emulator.api_url, "--write", str(path))
    assert done.returncode == 0, done.stderr
    argv = [binary, "--kubeconfig", str(path), "--cache-dir", str(tmp_path / "cache")]
    got = subprocess.run([*argv, "--context", "emulator", "get", "ns"], capture_output=True, text=True, timeout=30)
    assert got.returncode == 0, got.stderr
    rows = [line.split()[:2] for line in got.stdout.splitlines()]
    assert rows[0] == ["NAME", "STATUS"] and ["default", "Active"] in rows and ["kube-system", "Active"] in rows
    current = subprocess.run([*argv, "config", "current-context"], capture_output=True, text=True, timeout=30)
    assert current.stdout.strip() == "prod"

    # the official Python client reads the same file
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(path), context="emulator")
    names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert "default" in names
