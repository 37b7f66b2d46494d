"""`emulator run` and `emulator env`: a local process as a pod, and a pod's environment, over the HTTP API.

`run` plays the kubelet for one process:

1. create a pod (labels, container ports, Running but not Ready) and take the pod IP it is given
   (the node's address with `--host-network`);
2. read the pod's environment from the emulator (`/emulator/v1/.../pods/NAME/env`: service
   variables, the container's own env) and add POD_NAME, POD_NAMESPACE and POD_IP;
3. expand `$(VAR)` in CMD and its arguments from those variables, as the kubelet expands a
   container's command and args; start CMD with them in a process group of its own (the container),
   and probe its TCP ports on the pod IP: Ready once all accept a connection, not Ready again after
   a few failed probes, as a readiness probe does;
4. forward SIGINT/SIGTERM/SIGHUP to CMD; stop CMD (SIGTERM) when the pod is deleted through the API;
   after SIGINT or SIGTERM, CMD has the pod's terminationGracePeriodSeconds (`--grace-period`) to
   exit before its process group is killed (SIGKILL), as the kubelet does;
5. when CMD exits, kill what it left in its process group, delete the pod and exit with CMD's status
   (128+N when a signal N ended it).

CMD does not outlive `run`, even when `run` is killed with SIGKILL: on Linux the kernel kills CMD
(PR_SET_PDEATHSIG), and everywhere a small guardian process kills CMD's process group once `run` is
gone without having cleaned up (see `Guardian`).

On Linux, where unprivileged user namespaces work, CMD runs in the kubelet's sandbox
(emulator/kubelet/sandbox.py): a private /etc/hosts with the cluster's names (served at
`/emulator/v1/.../pods/NAME/hosts`, re-read every few seconds) and a resolv.conf with the pod's search
path, so `getaddrinfo("web")` finds the service `web`.

Only the HTTP API is used, so this works against any emulator the user can reach (`--server`), an
authenticated one included (https and a bearer token: emulator/targets.py says where they come from).
The engine's code is not imported (only the sandbox's launcher and file rendering): nothing here depends on api/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from emulator.cli import target as targets
from emulator.cli.apiclient import Api, ApiError, Unreachable
from emulator.cli.target import DEFAULT_SERVER, ApiTarget
from emulator.envvars import expand
from emulator.kubelet import sandbox
from emulator.kubelet.context import ContainerContext
from emulator.kubelet.hosts import HOSTNAME_FILE, HOSTS_FILE, RESOLV_CONF_FILE, render_resolv_conf, write_in_place

ANNOTATION_COMMAND = "emulator.local/command"
ANNOTATION_PID = "emulator.local/host-pid"
IMAGE = "emulator.local/process"  # a pod needs an image; this one says "a process on the host"
# The pod's service-account token and namespace, in files laid out like a container's
# /var/run/secrets/kubernetes.io/serviceaccount (which a host process cannot be given), found through:
SERVICEACCOUNT_DIR_ENV = "EMULATOR_SERVICEACCOUNT_DIR"
SERVICEACCOUNT_TOKEN_ENV = "EMULATOR_SERVICEACCOUNT_TOKEN_FILE"
TOKEN_SECONDS = 7 * 24 * 3600  # bound to the pod, so it dies with it anyway; nothing here refreshes it
DEFAULT_GRACE_PERIOD = 30  # seconds, a pod's default terminationGracePeriodSeconds
# The signals that ask CMD to stop: after one of them, CMD is killed once the grace period is over.
# (SIGHUP is passed on too, but a process may take it as "reload" and carry on.)
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

# Readiness probing, after Kubernetes' probe defaults but quicker to notice the first success,
# so that a service starts sending traffic as soon as the process listens.
FIRST_PROBE_INTERVAL = 0.1
PROBE_PERIOD = 2.0
PROBE_TIMEOUT = 1.0
FAILURE_THRESHOLD = 3
NAMES_REFRESH = 2.0  # seconds between re-reads of the pod's hosts file (new services, new endpoints)

_PORT = re.compile(r"(?:(?P<name>[a-z0-9-]+)=)?(?P<port>\d+)(?:/(?P<protocol>tcp|udp|sctp))?", re.IGNORECASE)
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def log(message: str) -> None:
    print(f"emulator run: {message}", file=sys.stderr, flush=True)


# --- the pod ---------------------------------------------------------------------------------------


def parse_port(text: str) -> dict[str, Any]:
    """`8080`, `http=8080`, `dns=53/udp` → a containerPort entry."""
    match = _PORT.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f'invalid port "{text}": use PORT, NAME=PORT or NAME=PORT/udp, e.g. http=8080')
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f'invalid port "{text}": must be between 1 and 65535')
    entry: dict[str, Any] = {"containerPort": port, "protocol": (match["protocol"] or "TCP").upper()}
    if match["name"]:
        entry["name"] = match["name"].lower()
    return entry


def parse_grace_period(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise argparse.ArgumentTypeError(f'invalid grace period "{text}": use a whole number of seconds, e.g. 30')
    return seconds


def parse_env(text: str) -> dict[str, Any]:
    """`--env NAME=VALUE` → an env entry (`$(VAR)` in VALUE is expanded by the emulator, as by the kubelet)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f'invalid variable "{text}": use NAME=VALUE, e.g. MODE=debug')
    return {"name": name, "value": value}


_SOURCE_REFS = {"configmap": ("configMapRef", "configMapKeyRef"), "secret": ("secretRef", "secretKeyRef")}


def parse_env_from(text: str) -> dict[str, Any]:
    """`--env-from configmap/NAME` or `secret/NAME` (kubectl set env --from) → an envFrom entry."""
    kind, _, name = text.partition("/")
    if kind.lower() not in _SOURCE_REFS or not name or "/" in name:
        raise argparse.ArgumentTypeError(f'invalid source "{text}": use configmap/NAME or secret/NAME')
    return {_SOURCE_REFS[kind.lower()][0]: {"name": name}}


def parse_env_ref(text: str) -> dict[str, Any]:
    """`--env-ref NAME=configmap/CM/KEY` or `NAME=secret/S/KEY` → an env entry with a key reference."""
    name, _, ref = text.partition("=")
    parts = ref.split("/")
    if not name or len(parts) != 3 or parts[0].lower() not in _SOURCE_REFS or not all(parts[1:]):
        raise argparse.ArgumentTypeError(f'invalid reference "{text}": use NAME=configmap/CM/KEY or NAME=secret/SECRET/KEY')
    return {"name": name, "valueFrom": {_SOURCE_REFS[parts[0].lower()][1]: {"name": parts[1], "key": parts[2]}}}


def parse_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'invalid label "{text}": use KEY=VALUE, e.g. app=web')
    return key, value


def container_name(pod_name: str) -> str:
    # Pod names may hold dots, container names may not (they are DNS labels).
    return pod_name if _DNS_LABEL.fullmatch(pod_name) else "main"


def pod_manifest(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    ports: list[dict[str, Any]],
    command: list[str],
    host_network: bool,
    grace_period: int = DEFAULT_GRACE_PERIOD,
    env: list[dict[str, Any]] | None = None,
    env_from: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The pod `run` registers: Running but not Ready until its ports answer. `env` and `env_from` are
    the container's own entries (--env, --env-ref, --env-from), resolved by the emulator as the kubelet would."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    container: dict[str, Any] = {
        "name": container_name(name),
        "image": IMAGE,
        "command": command,
        # What `run` sets, written the way a manifest would ask for it (the downward API), so
        # `emulator env` and `kubectl get pod -o yaml` show the same environment the process gets.
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            *(env or []),
        ],
    }
    if env_from:
        container["envFrom"] = env_from
    if ports:
        container["ports"] = ports
    spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": grace_period,
        # this machine's process, running already: bound to the node as a static pod is, never left to the
        # scheduler (a cordoned node would keep it without an address)
        "nodeName": "emulator",
    }
    if host_network:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {ANNOTATION_COMMAND: shlex.join(command), ANNOTATION_PID: str(os.getpid())},
        },
        "spec": spec,
        "status": {"phase": "Running", "conditions": readiness_conditions(False, now)},
    }


# --- the process group ------------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# The guardian: reads a process group id from stdin, then waits for the end of stdin. It ends when `run`
# has exited or died (its end of the pipe closes with it); unless `run` wrote "done" before (it cleaned
# up itself), the group is killed. It ignores the signals a terminal or a supervisor sends to a job, so
# that only SIGKILL can take it away before `run`.
GUARDIAN = r"""
import os, signal
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP):
    signal.signal(s, signal.SIG_IGN)
said = b""
while chunk := os.read(0, 512):
    said += chunk
words = said.split()
if words and words[-1] != b"done":
    try:
        os.killpg(int(words[0]), signal.SIGKILL)
    except (OSError, ValueError):
        pass
"""


def die_with_this_process() -> Callable[[], None] | None:
    """On Linux, a function for CMD to run between fork and exec (`preexec_fn`) that has the kernel
    send it SIGKILL when `run` dies, whatever kills `run`; None elsewhere.

    The kernel sends it when the *thread* that forked CMD ends, so CMD must be forked from the thread
    that lives as long as `run`: the event loop's, the main thread (`asyncio.run`).
    Processes CMD starts do not inherit it: the guardian is there for them."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent, sigkill = os.getpid(), int(signal.SIGKILL)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        # Only a death still to come is reported: if `run` is already gone, CMD was adopted; go too.
        if os.getppid() != parent:
            os.kill(os.getpid(), sigkill)

    return preexec


class Guardian:
    """A small process of its own (its own session too, so terminal signals miss it) that kills CMD's
    process group when `run` dies without cleaning up, SIGKILL included: it waits for the end of a pipe
    only `run` holds, which the kernel closes when `run` ends, however it ends. This covers what CMD
    started as well (PR_SET_PDEATHSIG is not inherited), on every platform, as long as those processes
    stay in CMD's process group."""

    def __init__(self, proc: subprocess.Popen[bytes], pipe: int) -> None:
        self.proc = proc
        self.pipe: int | None = pipe

    @classmethod
    def start(cls, what: str) -> Guardian | None:
        """Started before CMD, so that it is already there when CMD starts processes of its own."""
        if not sys.executable:
            return None
        read_end, write_end = os.pipe()  # not inherited by CMD: os.pipe() file descriptors are close-on-exec
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", GUARDIAN, what],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(write_end)
            log(f"warning: no guardian for CMD's processes ({exc}): they may outlive a killed `emulator run`")
            return None
        finally:
            os.close(read_end)
        return cls(proc, write_end)

    def guard(self, pgid: int) -> None:
        self._say(f"{pgid}\n")

    def release(self) -> None:
        """`run` has cleaned up itself: the guardian leaves without killing anything."""
        self._say("done\n")
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _say(self, text: str) -> None:
        if self.pipe is not None:
            with contextlib.suppress(OSError):  # a guardian killed by someone else
                os.write(self.pipe, text.encode())


def readiness_conditions(ready: bool, stamp: str) -> list[dict[str, str]]:
    value = "True" if ready else "False"
    return [{"type": t, "status": value, "lastTransitionTime": stamp} for t in ("Ready", "ContainersReady")]


def exit_status(returncode: int) -> int:
    """A shell's convention: a process ended by signal N exits 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def address_is_local(ip: str) -> bool:
    """Whether this machine can bind `ip` (every 127/8 address on Linux; only 127.0.0.1 on macOS)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError as exc:
            return exc.errno != errno.EADDRNOTAVAIL
    return True


async def port_open(ip: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), PROBE_TIMEOUT)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


# --- run -------------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    name: str
    namespace: str
    labels: dict[str, str]
    ports: list[dict[str, Any]]
    command: list[str]
    host_network: bool = False
    grace_period: int = DEFAULT_GRACE_PERIOD
    target: ApiTarget = field(default_factory=lambda: ApiTarget(DEFAULT_SERVER))
    env: list[dict[str, Any]] = field(default_factory=list)  # --env and --env-ref entries, in order
    env_from: list[dict[str, Any]] = field(default_factory=list)  # --env-from entries


@dataclass
class LocalPod:
    """One `emulator run`: the pod in the API and the process behind it."""

    options: RunOptions
    api: Api
    uid: str = ""
    ip: str = ""
    child: asyncio.subprocess.Process | None = None  # CMD, leader of a process group of its own
    guardian: Guardian | None = None
    stopped_by: int = 0  # the first signal `run` received
    deleted: asyncio.Event = field(default_factory=asyncio.Event)  # the watch saw the pod go
    api_failing: bool = False  # report a failing status patch once, not on every probe
    secrets_dir: str = ""  # the service-account files, removed when the pod goes
    kill_timer: asyncio.TimerHandle | None = None  # SIGKILL once the grace period after a stop is over
    names_dir: str = ""  # the sandbox's hosts file, resolv.conf and launch spec, removed when the pod goes
    names_task: asyncio.Task[None] | None = None  # keeps the hosts file current

    @property
    def ref(self) -> str:
        return f"{self.options.namespace}/{self.options.name}"

    async def run(self) -> int:
        opts = self.options
        created = await self.api.call(
            "POST",
            Api.pod_path(opts.namespace),
            pod_manifest(
                opts.name, opts.namespace, opts.labels, opts.ports, opts.command, opts.host_network, opts.grace_period,
                opts.env, opts.env_from,
            ),
        )
        self.uid = created["metadata"].get("uid", "")
        self.ip = (created.get("status") or {}).get("podIP", "")
        rv = created["metadata"].get("resourceVersion", "")
        log(f"pod {self.ref} registered with IP {self.ip}")
        tasks: tuple[asyncio.Task[None], asyncio.Task[None]] | None = None
        try:
            if self.ip and not address_is_local(self.ip):
                log(
                    f"warning: {self.ip} is not an address of this machine, so CMD cannot listen on it (macOS?): use --host-network"
                )
            env, pod_env = await self.environment()
            # As the kubelet does for a container's command and args: `$(VAR)` from the pod's variables
            # (not from the shell's: `$VAR` is the shell's business), `$$` for `$`, unknown ones kept.
            command = [expand(word, pod_env) for word in opts.command]
            if self.stopped_by:  # Ctrl-C (or a TERM) before CMD was started
                return 128 + self.stopped_by
            command, env = await self.sandboxed(command, env)
            self.guardian = Guardian.start(f"emulator run guardian of pod {self.ref}")
            try:
                # A process group of its own: what CMD starts can be found and stopped with it, and a
                # terminal's signals reach CMD through `run` (on_signal), never twice.
                self.child = await asyncio.create_subprocess_exec(
                    *command, env=env, process_group=0, preexec_fn=die_with_this_process()
                )
            except OSError as exc:
                log(f"cannot start {command[0]!r}: {exc.strerror or exc}")
                return 127 if isinstance(exc, FileNotFoundError) else 126
            if self.guardian is not None:
                self.guardian.guard(self.child.pid)
            if self.stopped_by:
                # The signal came while CMD was being started, when there was no child to pass it to.
                self.stop_child(None, self.stopped_by)
            tasks = (asyncio.create_task(self.probe_readiness()), asyncio.create_task(self.watch_deletion(rv)))
            if self.names_dir:
                self.names_task = asyncio.create_task(self.refresh_names())
            returncode = await self.child.wait()
            log(f"{opts.command[0]} exited with status {exit_status(returncode)}")
            return exit_status(returncode)
        finally:
            if self.kill_timer is not None:
                self.kill_timer.cancel()
            await self.end_process_group()
            probe, watch = tasks or (None, None)
            await _cancel(probe)
            if await self.deregister() and watch is not None:
                # Let the watch read its DELETED event before closing it, so that the server does not
                # write to a connection we have already closed.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.deleted.wait(), 1.0)
            await _cancel(watch)
            if self.secrets_dir:
                shutil.rmtree(self.secrets_dir, ignore_errors=True)
            await _cancel(self.names_task)
            if self.names_dir:
                shutil.rmtree(self.names_dir, ignore_errors=True)

    async def end_process_group(self) -> None:
        """CMD has exited (or `run` is leaving on an error): what is left in its process group is
        killed, as a container's processes go with its main process; then the guardian may go."""
        if self.child is not None:
            if self.signal_group(signal.SIGKILL) and self.child.returncode is not None:
                log(f"killed what {self.options.command[0]} left running in its process group (SIGKILL)")
            if self.child.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.child.wait(), 5.0)
        if self.guardian is not None:
            self.guardian.release()
            self.guardian = None

    async def environment(self) -> tuple[dict[str, str], dict[str, str]]:
        """CMD's environment (yours, with the pod's variables over it), and the pod's variables alone."""
        opts = self.options
        doc = await self.api.call("GET", Api.env_path(opts.namespace, opts.name, container_name(opts.name), "json"))
        pod_env: dict[str, str] = dict(doc.get("env") or {})
        pod_env.update({"POD_NAME": opts.name, "POD_NAMESPACE": opts.namespace, "POD_IP": self.ip})
        pod_env.update(await self.service_account_files())
        # The pod's variables win over the shell's: a stale KUBERNETES_SERVICE_HOST must not leak in.
        return {**os.environ, **pod_env}, pod_env

    async def service_account_files(self) -> dict[str, str]:
        """A token for the pod's service account (`default`: the manifest names none), bound to the pod,
        in `<dir>/token` next to `<dir>/namespace` (and `<dir>/ca.crt` when the API is HTTPS with its own
        CA); the variables that point at them."""
        opts = self.options
        ref = {"kind": "Pod", "apiVersion": "v1", "name": opts.name, "uid": self.uid}
        try:
            issued = await self.api.call(
                "POST", f"/api/v1/namespaces/{quote(opts.namespace)}/serviceaccounts/default/token",
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                 "spec": {"expirationSeconds": TOKEN_SECONDS, "boundObjectRef": ref}},
            )
        except ApiError as exc:  # an emulator without tokens: the process runs without one
            log(f"warning: no service account token for pod {self.ref}: {exc}")
            return {}
        self.secrets_dir = tempfile.mkdtemp(prefix="emulator-serviceaccount-")
        files = [("token", issued["status"]["token"]), ("namespace", opts.namespace)]
        if self.api.target.ca_pem:  # as in a cluster: what an in-pod client trusts to reach the API
            files.append(("ca.crt", self.api.target.ca_pem))
        for name, text in files:
            fd = os.open(os.path.join(self.secrets_dir, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(text)
        return {SERVICEACCOUNT_DIR_ENV: self.secrets_dir, SERVICEACCOUNT_TOKEN_ENV: os.path.join(self.secrets_dir, "token")}

    async def sandboxed(self, command: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """Where the kubelet's sandbox works (Linux with user namespaces, emulator/kubelet/sandbox.py), CMD
        runs in it: the cluster's names resolve through the pod's own /etc/hosts and resolv.conf (fetched
        from the emulator and kept current by `refresh_names`). Elsewhere CMD runs as is."""
        if not sandbox.available():
            return command, env
        try:
            names = await self.fetch_names()
        except (ApiError, Unreachable) as exc:  # an older emulator: CMD runs, without the cluster's names
            log(f"warning: the cluster's names will not resolve in CMD: {exc}")
            return command, env
        self.names_dir = tempfile.mkdtemp(prefix="emulator-run-")
        directory = Path(self.names_dir)
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
        write_in_place(directory / HOSTS_FILE, names["hosts"])
        write_in_place(directory / HOSTNAME_FILE, str(names.get("hostname") or self.options.name) + "\n")
        write_in_place(directory / RESOLV_CONF_FILE, render_resolv_conf(self.options.namespace, str(names["zone"]), host_resolv))
        ctx = ContainerContext(
            self.options.namespace, self.options.name, self.uid, container_name(self.options.name), self.ip,
            env, None, directory,
        )
        return sandbox.prepare(ctx, command)

    async def fetch_names(self) -> dict[str, Any]:
        opts = self.options
        path = f"/emulator/v1/namespaces/{quote(opts.namespace)}/pods/{quote(opts.name)}/hosts?format=json"
        names: dict[str, Any] = await self.api.call("GET", path)
        return names

    async def refresh_names(self) -> None:
        """Rewrite the hosts file (in place: the sandbox's bind mount holds its inode) as services change."""
        while True:
            await asyncio.sleep(NAMES_REFRESH)
            try:
                names = await self.fetch_names()
            except (ApiError, Unreachable):
                continue  # the emulator restarting, or the pod going: the next turn (or the end) decides
            with contextlib.suppress(OSError):
                write_in_place(Path(self.names_dir) / HOSTS_FILE, names["hosts"])

    async def deregister(self) -> bool:
        """Delete the pod; True when this call deleted it."""
        try:
            # The uid precondition keeps us from deleting a pod someone re-created under the same name.
            await self.api.call(
                "DELETE",
                Api.pod_path(self.options.namespace, self.options.name),
                {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
            log(f"pod {self.ref} deleted")
            return True
        except ApiError as exc:
            if exc.code not in (404, 409):  # already gone, or someone else's pod by now
                log(f"could not delete pod {self.ref}: {exc}")
        except Unreachable as exc:
            log(f"could not delete pod {self.ref}: {exc}")
        return False

    # -- readiness ---------------------------------------------------------------------------------

    async def probe_readiness(self) -> None:
        # UDP and SCTP ports cannot be probed by connecting; like a pod without a probe, they count as ready.
        tcp = [p["containerPort"] for p in self.options.ports if p.get("protocol", "TCP") == "TCP"]
        ready, failures, first = False, 0, True
        while True:
            results = await asyncio.gather(*(port_open(self.ip, port) for port in tcp))
            if all(results):
                failures = 0
                if not ready:
                    ready = await self.set_ready(True)
                    if ready and first:
                        log(
                            f"pod {self.ref} is Ready"
                            + (f" (port {', '.join(map(str, tcp))} accepts connections)" if tcp else "")
                        )
                        first = False
            elif ready:
                failures += 1
                if failures >= FAILURE_THRESHOLD:
                    log(
                        f"pod {self.ref} is not Ready: port(s) {', '.join(str(p) for p, ok in zip(tcp, results, strict=True) if not ok)} refuse connections"
                    )
                    ready = not await self.set_ready(False)
                    failures = 0
            await asyncio.sleep(FIRST_PROBE_INTERVAL if first else PROBE_PERIOD)

    async def set_ready(self, ready: bool) -> bool:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"status": {"conditions": readiness_conditions(ready, stamp)}}
        try:
            await self.api.call(
                "PATCH",
                Api.pod_path(self.options.namespace, self.options.name) + "/status",
                patch,
                content_type="application/strategic-merge-patch+json",
            )
        except (ApiError, Unreachable) as exc:
            if not self.api_failing:
                log(f"could not mark pod {self.ref} {'Ready' if ready else 'not Ready'}: {exc}")
            self.api_failing = True
            return False
        self.api_failing = False
        return True

    # -- deletion through the API ------------------------------------------------------------------

    async def watch_deletion(self, rv: str) -> None:
        """`kubectl delete pod NAME` stops the process, as the kubelet would: SIGTERM, then SIGKILL when
        it still runs after the pod's terminationGracePeriodSeconds."""
        opts = self.options
        path = Api.pod_path(opts.namespace) + f"?watch=true&fieldSelector={quote('metadata.name=' + opts.name)}"
        while True:
            try:
                async with self.api.session.get(
                    self.api.server + path + f"&resourceVersion={rv}",
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                ) as response:
                    async for line in _lines(response.content):
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                        if event.get("type") == "DELETED" and (obj.get("metadata") or {}).get("uid") == self.uid:
                            self.deleted.set()
                            grace = _grace_period(obj, self.options.grace_period)
                            self.stop_child("pod deleted through the API", signal.SIGTERM, grace)
                            return
                        if event.get("type") == "ERROR":  # e.g. 410 Gone: start again from now
                            rv = ""
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            await asyncio.sleep(1.0)

    # -- signals -----------------------------------------------------------------------------------

    def on_signal(self, signum: int) -> None:
        self.stopped_by = self.stopped_by or signum
        if self.child is None or self.child.returncode is not None:
            return
        if signum == signal.SIGINT and _terminal_sent_it_to_us():
            # Ctrl-C in a terminal reaches the foreground process group: ours, not CMD's, which has a
            # group of its own. Pass it on to all of CMD's group, as the terminal would have, once.
            self.signal_group(signum)
            self.kill_after(self.options.grace_period)
            return
        self.stop_child(None, signum)

    def on_suspend(self) -> None:
        """Ctrl-Z (SIGTSTP) stops CMD's process group with `run`; `fg` or `bg` (SIGCONT) resumes both."""
        running = self.child is not None and self.child.returncode is None
        if running:
            self.signal_group(signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGSTOP)  # returns once we are continued
        if running:
            self.signal_group(signal.SIGCONT)

    def signal_group(self, signum: int) -> bool:
        """Send `signum` to CMD's process group (whose id is CMD's pid); False when the group is gone."""
        if self.child is None:
            return False
        try:
            os.killpg(self.child.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop_child(self, why: str | None, signum: int, grace_period: int | None = None) -> None:
        """Send `signum` to CMD; a stop signal gives it `grace_period` (default: --grace-period) seconds
        to exit before it is killed."""
        if self.child is None or self.child.returncode is not None:
            return
        if why:
            log(f"{why}: stopping {self.options.command[0]} ({signal.Signals(signum).name})")
        with contextlib.suppress(ProcessLookupError):
            self.child.send_signal(signum)
        if signum in STOP_SIGNALS:
            self.kill_after(self.options.grace_period if grace_period is None else grace_period)

    def kill_after(self, seconds: int) -> None:
        # The first stop starts the clock; later signals do not extend it.
        if self.kill_timer is None:
            self.kill_timer = asyncio.get_running_loop().call_later(seconds, self.kill_child, seconds)

    def kill_child(self, seconds: int) -> None:
        if self.child is None or self.child.returncode is not None:
            return
        log(f"{self.options.command[0]} still runs {seconds}s after it was asked to stop: killing it (SIGKILL)")
        self.signal_group(signal.SIGKILL)  # CMD and its process group: the container's processes


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The non-empty lines of a watch stream, however long. A watch event carries a whole object, and
    aiohttp's own line reader gives up on lines longer than its buffer (a pod with big annotations)."""
    parts: list[bytes] = []  # the line read so far
    async for chunk in stream.iter_any():
        *ended, rest = chunk.split(b"\n")
        for piece in ended:
            line = b"".join(parts) + piece
            parts.clear()
            if line.strip():
                yield line
        if rest:
            parts.append(rest)
    # A line cut short by the end of the stream is not a whole event: the caller watches again from
    # the last resourceVersion it saw.


def _grace_period(pod: Mapping[str, Any], default: int) -> int:
    """The pod's terminationGracePeriodSeconds, as the kubelet honours it."""
    seconds = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return seconds if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0 else default


def _terminal_sent_it_to_us() -> bool:
    """Whether we are the foreground job of a terminal (then a SIGINT most likely came from Ctrl-C)."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            if stream is not None and stream.isatty():
                return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, ValueError):
            continue
    return False


async def run(options: RunOptions) -> int:
    api = Api(options.target)
    pod = LocalPod(options, api)
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTSTP)
    for signum in handled[:-1]:
        loop.add_signal_handler(signum, pod.on_signal, signum)
    loop.add_signal_handler(signal.SIGTSTP, pod.on_suspend)
    try:
        return await pod.run()
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        hint = ""
        if exc.reason == "AlreadyExists":
            hint = f" (another `emulator run`?): choose another --name, or `kubectl delete pod {options.name} -n {options.namespace}`"
        elif exc.reason == "NotFound" and "namespace" in str(exc):
            hint = f": create it first with `kubectl create namespace {options.namespace}`"
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 1
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await api.close()


# --- env -------------------------------------------------------------------------------------------


async def print_env(target: ApiTarget | str, namespace: str, pod: str, container: str | None, fmt: str) -> int:
    api = Api(target)
    try:
        body = await api.call("GET", Api.env_path(namespace, pod, container, fmt))
    except (Unreachable, ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await api.close()
    sys.stdout.write(json.dumps(body, indent=2) + "\n" if isinstance(body, dict) else body)
    return 0


# --- command line ----------------------------------------------------------------------------------

def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the pod's name")
    parser.add_argument("-n", "--namespace", default="default", help="the pod's namespace [default: default]")
    parser.add_argument(
        "-l",
        "--label",
        dest="labels",
        action="append",
        type=parse_label,
        default=[],
        metavar="KEY=VALUE",
        help="a pod label (repeatable), e.g. app=web",
    )
    parser.add_argument(
        "-p",
        "--port",
        dest="ports",
        action="append",
        type=parse_port,
        default=[],
        metavar="[NAME=]PORT[/udp]",
        help="a container port CMD listens on (repeatable); the pod is Ready once all TCP ports accept connections",
    )
    parser.add_argument(
        "--host-network", action="store_true", help="use the node's address (127.0.0.1) instead of a pod IP of its own"
    )
    parser.add_argument(
        "--grace-period",
        type=parse_grace_period,
        default=DEFAULT_GRACE_PERIOD,
        metavar="SECONDS",
        help="the pod's terminationGracePeriodSeconds: how long CMD may take to exit after SIGTERM/SIGINT "
        f"before it is killed (SIGKILL) [default: {DEFAULT_GRACE_PERIOD}]",
    )
    parser.add_argument(
        "-e", "--env", dest="env", action="append", type=parse_env, default=[], metavar="NAME=VALUE",
        help="a variable of the container (repeatable)",
    )
    parser.add_argument(
        "--env-ref", dest="env", action="append", type=parse_env_ref, metavar="NAME=configmap/CM/KEY",
        help="a variable from a key of a ConfigMap or Secret (secret/NAME/KEY) of the namespace (repeatable); "
        "a missing one stops CMD from starting, as the kubelet's CreateContainerConfigError",
    )
    parser.add_argument(
        "--env-from", dest="env_from", action="append", type=parse_env_from, default=[], metavar="configmap/NAME",
        help="every key of a ConfigMap or Secret (secret/NAME) as a variable (repeatable)",
    )
    targets.add_arguments(parser)
    parser.add_argument(
        "cmd",
        nargs="*",
        metavar="CMD",
        help="the process to run and its arguments, after --; $(VAR) in them is expanded from the pod's variables, "
        "as the kubelet does",
    )


def add_env_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pod", help="the pod's name")
    parser.add_argument("-n", "--namespace", default="default", help="the pod's namespace [default: default]")
    parser.add_argument("-c", "--container", help="the container [default: the pod's default container]")
    parser.add_argument(
        "-o",
        "--format",
        default="dotenv",
        choices=("dotenv", "shell", "json"),
        help="NAME=value lines, `export` lines for eval, or JSON [default: dotenv]",
    )
    targets.add_arguments(parser)


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error(
            "no command to run: put it after --, e.g. emulator run --name web --port 8080 -- python -m http.server 8080"
        )
    target = _target(args)
    if target is None:
        return 1
    options = RunOptions(
        name=args.name,
        namespace=args.namespace,
        labels=dict(args.labels),
        ports=args.ports,
        command=command,
        host_network=args.host_network,
        grace_period=args.grace_period,
        target=target,
        env=args.env,
        env_from=args.env_from,
    )
    return asyncio.run(run(options))


def env_command(args: argparse.Namespace) -> int:
    target = _target(args)
    if target is None:
        return 1
    return asyncio.run(print_env(target, args.namespace, args.pod, args.container, args.format))


def _target(args: argparse.Namespace) -> ApiTarget | None:
    """The API to talk to, or None after saying why the flags/files cannot be used."""
    try:
        return targets.from_args(args)
    except targets.TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
