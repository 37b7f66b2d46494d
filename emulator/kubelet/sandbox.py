"""A container's sandbox: where it finds its volumes and how it resolves the cluster's names.

`prepare(ctx, argv)` returns the argv to spawn and its environment:

- **Linux, when unprivileged user namespaces work** (`available()`): argv runs behind
  emulator/kubelet/launch.py, which enters a user + mount + UTS namespace of its own (no privilege: the
  caller's uid and gid map to themselves), bind-mounts the pod's hosts file over /etc/hosts and its
  resolv.conf over /etc/resolv.conf, and each volume at its mountPath, then execs the command.
- **Elsewhere** (macOS, Windows, user namespaces disabled, or `EMULATOR_SANDBOX=off`): argv runs as is,
  on the host's file system and resolver.

Either way every mount is also named by a variable, `EMULATOR_MOUNT_<MOUNTPATH>` (the mountPath in upper
case, each run of other characters than letters and digits as `_`: `/etc/config` →
`EMULATOR_MOUNT_ETC_CONFIG`): its mountPath inside the sandbox, the volume's host directory outside it.
`$(EMULATOR_MOUNT_ETC_CONFIG)/app.yaml` in a command works on every platform.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator import envvars
from emulator.kubelet import launch
from emulator.kubelet.context import ContainerContext
from emulator.kubelet.hosts import (
    HOSTNAME_FILE,
    HOSTS_FILE,
    RESOLV_CONF_FILE,
    PodIdentity,
    render_hosts,
    render_resolv_conf,
)

if TYPE_CHECKING:  # `emulator run` uses the sandbox too, and imports no engine code
    from emulator.kubelet.volumes import Mount

LAUNCHER = str(Path(launch.__file__).resolve())
SANDBOX_DIR = "sandbox"  # in the pod directory: the launch specs and the launcher's scratch mount points
MOUNT_VARIABLE_PREFIX = "EMULATOR_MOUNT_"
SWITCH = "EMULATOR_SANDBOX"  # "off": never sandbox (the fallback, on purpose)
PROBE_TIMEOUT = 10.0
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def mount_variable(mount_path: str) -> str:
    """`/etc/config` → `EMULATOR_MOUNT_ETC_CONFIG`."""
    return MOUNT_VARIABLE_PREFIX + _NOT_ALNUM.sub("_", mount_path.strip("/")).strip("_").upper()


@functools.cache
def available() -> bool:
    """Whether containers get the sandbox here: Linux with unprivileged user namespaces that allow mounts.
    Probed once, by running the launcher itself around a Python that does nothing."""
    if os.environ.get(SWITCH, "").lower() in ("off", "0", "false", "no") or not sys.platform.startswith("linux"):
        return False
    with tempfile.TemporaryDirectory(prefix="emulator-sandbox-probe-") as scratch:
        spec = Path(scratch) / "spec.json"
        spec.write_text(json.dumps({
            "version": launch.SPEC_VERSION, launch.KEY_HOSTNAME: "probe", launch.KEY_SCRATCH: scratch,
            launch.KEY_FILES: [], launch.KEY_MOUNTS: [[scratch, scratch, True]],
        }))
        try:
            done = subprocess.run(
                [*launcher_command(str(spec)), sys.executable, "-S", "-I", "-c", ""],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=PROBE_TIMEOUT, check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode == 0


def launcher_command(spec_path: str) -> list[str]:
    # By path, with -S -I: no site packages, no emulator package __init__; the launcher starts in ~15 ms.
    return [sys.executable, "-S", "-I", LAUNCHER, spec_path, "--"]


def prepare(ctx: ContainerContext, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv wrapped to run inside the pod's sandbox, and the environment to spawn it with (ctx.env plus
    one variable per mount). `$(EMULATOR_MOUNT_...)` references left in argv are expanded here."""
    env = dict(ctx.env)
    mounts: Sequence[Mount] = ctx.mounts
    sandboxed = available()
    variables = {mount_variable(m.mount_path): m.mount_path if sandboxed else str(m.source(env)) for m in mounts}
    env.update(variables)
    argv = [envvars.expand(arg, variables) if MOUNT_VARIABLE_PREFIX in arg else arg for arg in argv]
    if not sandboxed or not argv:
        return argv, env
    if not _findable(argv[0], env, mounts, ctx.working_dir):
        # Not there, not even in a volume: spawned as is, so that the spawner sees exec's own error.
        return argv, env
    spec_path = write_spec(ctx, env)
    return [*launcher_command(str(spec_path)), *argv], env


def write_spec(ctx: ContainerContext, env: Mapping[str, str]) -> Path:
    """The launcher's instructions for this container, in the pod's sandbox directory."""
    directory = ctx.pod_dir / SANDBOX_DIR
    directory.mkdir(parents=True, exist_ok=True)
    hosts, resolv = ensure_name_files(ctx)
    hostname = ctx.pod_dir / HOSTNAME_FILE
    files = [[str(hosts), "/etc/hosts"], [str(resolv), "/etc/resolv.conf"]]
    if hostname.exists():
        files.append([str(hostname), "/etc/hostname"])
    mounts = sorted(ctx.mounts, key=lambda m: len(Path(m.mount_path).parts))  # parents before children
    spec: dict[str, Any] = {
        "version": launch.SPEC_VERSION,
        launch.KEY_HOSTNAME: hostname.read_text().strip() if hostname.exists() else PodIdentity.of({"metadata": {"name": ctx.pod}}).hostname,
        launch.KEY_SCRATCH: str(directory),
        launch.KEY_FILES: files,
        launch.KEY_MOUNTS: [[str(m.source(env)), _normal(m.mount_path), m.read_only] for m in mounts if not m.optional],
        launch.KEY_OPTIONAL: [[str(m.source(env)), _normal(m.mount_path)] for m in mounts if m.optional],
        launch.KEY_WORKDIR: ctx.working_dir or "",
        launch.KEY_LC_CTYPE: env.get("LC_CTYPE"),
    }
    path = directory / f"{ctx.container}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec))
    os.replace(tmp, path)
    return path


def ensure_name_files(ctx: ContainerContext, zone: str = "cluster.local") -> tuple[Path, Path]:
    """The pod's hosts file and resolv.conf (written by Volumes.setup through ClusterHosts); a minimal
    pair when the kubelet did not write them (no cluster names then, only the pod's own)."""
    hosts, resolv = ctx.pod_dir / HOSTS_FILE, ctx.pod_dir / RESOLV_CONF_FILE
    pod = {"metadata": {"name": ctx.pod, "namespace": ctx.namespace}, "status": {"podIP": ctx.pod_ip}}
    if not hosts.exists():
        hosts.write_text(render_hosts(PodIdentity.of(pod), (), zone))
    if not resolv.exists():
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
        resolv.write_text(render_resolv_conf(ctx.namespace, zone, host_resolv))
    return hosts, resolv


def _normal(path: str) -> str:
    return os.path.normpath("/" + path.lstrip("/"))


def _findable(command: str, env: Mapping[str, str], mounts: Sequence[Mount], working_dir: str | None) -> bool:
    """Whether `command` can be found as exec would, counting files that only volumes provide."""
    if "/" in command:
        absolute = _normal(os.path.join(working_dir or "/", command))
        if os.path.exists(absolute):
            return True
        return any(absolute == _normal(m.mount_path) or absolute.startswith(_normal(m.mount_path) + "/") for m in mounts)
    return shutil.which(command, path=env.get("PATH", os.defpath)) is not None
