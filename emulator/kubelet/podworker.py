"""One pod's lifecycle, as the kubelet's pod worker and kuberuntime_manager's `computePodActions` run it:
compare what the spec wants with what runs, act, report.

- init containers one after the other; a failed one is restarted (with back-off) unless the pod's
  restartPolicy is Never, which fails the pod (`Init:Error`, `Init:CrashLoopBackOff` in kubectl);
- native sidecars (init containers with `restartPolicy: Always`) start in their place in that order,
  must be started (startup probe) before the next init container, keep running, and are restarted
  whenever they exit; they are stopped after the main containers;
- main containers start together once the pod is initialized and are restarted per restartPolicy
  (Always; OnFailure: a non-zero exit; Never) after the CrashLoopBackOff back-off: the first restart at
  once, then base (10 s), doubling to 300 s, reset once a container ran 10 minutes;
- phase Pending → Running → Succeeded/Failed; conditions PodReadyToStartContainers, Initialized,
  ContainersReady, Ready (from readiness probes when emulator/kubelet/probes.py is there, else "started");
- postStart and preStop hooks (exec, httpGet, sleep); deletion: preStop, SIGTERM to each container's
  group, terminationGracePeriodSeconds (the deletion's grace), SIGKILL, then the pod is removed.

Everything happens in one asyncio task per pod; processes, probes and store events only wake it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator import envvars, podenv
from emulator.kubelet import podnet, ports, state, termination, volumes
from emulator.kubelet.context import ContainerContext
from emulator.kubelet.images import NO_COMMAND, REGISTERED_BY_RUN, RUNNABLE_CONDITION, container_shell, resolved_command
from emulator.kubelet.logs import last_output, log_path
from emulator.kubelet.process import (
    Companions,
    ContainerProcess,
    Exit,
    Launched,
    LogSink,
    abandon,
    kill_companions,
    kill_record,
    launch,
    log_sink,
    set_companions,
)
from emulator.timestamps import now_rfc3339

if TYPE_CHECKING:
    from emulator.kubelet.kubelet import Kubelet

log = logging.getLogger(__name__)

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled")
CONFIG_RETRY = 10.0  # seconds between attempts to configure a container whose ConfigMap/Secret is missing
HOOK_TIMEOUT = 30.0


@dataclass
class Backoff:
    """CrashLoopBackOff timings (the kubelet's: 10 s doubling to 5 min, forgotten after 10 min running)."""

    base: float = 10.0
    limit: float = 300.0
    reset_after: float = 600.0


@dataclass
class Container:
    spec: dict[str, Any]
    kind: str  # "init" | "sidecar" | "main"
    restart_count: int = 0
    process: ContainerProcess | None = None
    ctx: ContainerContext | None = None
    started_at: str | None = None
    started_mono: float = 0.0
    terminated: dict[str, Any] | None = None  # the current instance's end (None: running or never ran)
    last_terminated: dict[str, Any] | None = None
    waiting: tuple[str, str] = ("ContainerCreating", "")
    ever_started: bool = False
    delay: float = 0.0  # the next back-off
    delay_shown: str = "0s"  # the current back-off, as the waiting message says it
    retry_at: float = 0.0  # monotonic time before which it is not restarted
    hook_done: bool = True
    stopping: bool = False  # the kubelet stops it (liveness, termination): its exit is not a crash
    stopping_restart: bool = False  # killed by a failed probe: restarted per restartPolicy
    probes: Any = None  # probes.py ContainerProbes, None without probes
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    companions: Companions | None = None  # exec sessions, exec hooks and probes of the running instance
    changed: bool = False  # its spec changed (image): restarted whatever the restartPolicy
    attached: int = -1  # the last instance (restart count) an attach was served for
    looking: asyncio.Task[None] | None = None  # the looks at what the running instance listens on (ports.py)
    told: set[Any] = field(default_factory=set)  # what it was said to listen on beyond loopback, over its restarts

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.exit is None

    @property
    def completed(self) -> bool:
        return self.terminated is not None and self.terminated.get("exitCode") == 0

    @property
    def started(self) -> bool:
        """Running, and its startup probe (if any) passed."""
        return self.running and (self.probes is None or bool(self.probes.started))

    @property
    def ready(self) -> bool:
        """Started, its postStart hook done, and its readiness probe (if any) passing."""
        return self.started and self.hook_done and (self.probes is None or bool(self.probes.ready))


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.pod_dir: Path = kubelet.pod_dir_for(self.uid)
        self.podnet: Path | None = None  # the podnet library its containers load (Kubelet.podnet_library), once known
        spec = pod.get("spec") or {}
        self.containers: dict[str, Container] = {}
        for c in spec.get("initContainers") or []:
            self.containers[c["name"]] = Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
        for c in spec.get("containers") or []:
            self.containers[c["name"]] = Container(c, "main")
        self._add_ephemeral(spec)
        self.restart_policy = spec.get("restartPolicy") or "Always"
        self.references = references(spec)
        self.phase = "Pending"
        self.initialized = False
        self.init_failed = False
        self.ready_to_start = False
        self.terminal = False
        self.volumes: Any = None
        self._mount_error = ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._published: dict[str, Any] | None = None
        self._start_time = now_rfc3339()
        self._background: set[asyncio.Task[Any]] = set()

    # -- driving -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    def update(self, pod: dict[str, Any]) -> None:
        old, self.pod = self.pod["metadata"], pod
        self._wake.set()
        asyncio.get_running_loop().call_soon(self._spec_changed)  # after the delivery: it records an event
        shorter = pod["metadata"].get("deletionGracePeriodSeconds")
        if old.get("deletionTimestamp") and shorter is not None and shorter < (old.get("deletionGracePeriodSeconds") or 0):
            # deleted again with a shorter grace while terminating: the kill comes sooner
            asyncio.get_running_loop().call_later(float(shorter), self._kill_all)
        meta = pod["metadata"]
        if self.volumes is not None and (meta.get("labels"), meta.get("annotations")) != (old.get("labels"), old.get("annotations")):
            try:  # downwardAPI files follow the pod's labels and annotations
                update = getattr(self.volumes, "update_pod", None)
                if update is not None:
                    update(pod)
                self.volumes.refresh()
            except Exception:  # never raised into the store's event delivery
                log.exception("volumes of pod %s/%s not refreshed", self.namespace, self.name)

    def wake(self) -> None:
        self._wake.set()

    def _spec_changed(self) -> None:
        """A container whose image changed is restarted, whatever the restartPolicy (as the kubelet does
        when a container's spec hash changes); one that is not running starts with the new image."""
        spec = self.pod.get("spec") or {}
        self._add_ephemeral(spec)  # kubectl debug added one: it starts (once)
        for new in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            c = self.containers.get(new.get("name"))
            if c is None or new.get("image") == c.spec.get("image"):
                continue
            c.spec = new
            if c.kind == "init" or self.deleting or self.terminal:
                continue  # an init container that ran does not run again
            if c.running and c.process is not None:
                self.kubelet.record(self.pod, "Normal", "Killing", f"Container {c.name} definition changed, will be restarted")
                c.changed = c.stopping_restart = True
                self._spawn_task(c, c.process.stop(self._grace()))
            elif c.terminated is not None:
                c.changed = True
                c.retry_at = 0.0
        self._wake.set()

    def _add_ephemeral(self, spec: dict[str, Any]) -> None:
        for new in spec.get("ephemeralContainers") or []:
            if new.get("name") not in self.containers:
                self.containers[new["name"]] = Container(new, "ephemeral")

    @property
    def deleting(self) -> bool:
        return bool(self.pod["metadata"].get("deletionTimestamp"))

    async def _run(self) -> None:
        self.podnet = await self.kubelet.podnet_library()  # (built at the kubelet's start) before any container is made
        async with self.kubelet.start_slots:  # many pods at once: a few at a time, the loop answers meanwhile
            try:
                self._setup()
            except Exception:
                log.exception("the worker of pod %s/%s could not set the pod up", self.namespace, self.name)
        while not self.deleting:
            self._wake.clear()
            try:
                delay = await self._sync()
                self._publish()
            except Exception:  # a bug must not leave the pod unattended (or undeletable): retry soon
                log.exception("the worker of pod %s/%s failed; retrying", self.namespace, self.name)
                delay = CONFIG_RETRY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        try:
            await self._stop_all(self._grace(), reason="the pod is deleted")
        except Exception:
            log.exception("the containers of pod %s/%s were not all stopped", self.namespace, self.name)
            await self._stop_all(0.0, reason="the pod is deleted")
        try:  # the stopped containers' last status, before the pod goes (a watch sees 0/1, as on a node)
            self._publish()
        except Exception:
            log.exception("the last status of pod %s/%s was not written", self.namespace, self.name)
        await self._cleanup()
        self.kubelet.finalize(self)

    async def shutdown(self, grace: float, keep_running: bool = False) -> None:
        """The emulator stops: stop the containers (a node shutting down), or leave them for the next
        run to adopt (`keep_running`)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if keep_running:
            for c in self.containers.values():
                self._stop_probes(c)
                self._stop_looking(c)
                if c.companions is not None:  # their clients are gone with the emulator
                    c.companions.kill_all()
                if c.process is not None:
                    c.process.detach()
            return
        await self._stop_all(grace, reason="the emulator is stopping")
        self._save()

    async def kill_now(self) -> None:
        """The pod is gone (a forced deletion): SIGKILL everything, clean up."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stop_all(0.0, reason="the pod was deleted")
        await self._cleanup()

    def _kill_all(self) -> None:
        for c in self.containers.values():
            if c.process is not None:
                c.process.signal_group(signal.SIGKILL)
            if c.companions is not None:
                c.companions.kill_all()

    # -- setup and adoption --------------------------------------------------------------------------

    def _setup(self) -> None:
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        kill_companions(self.pod_dir)  # what a previous run exec'd: its clients are gone
        record = state.load(self.pod_dir)
        if record is None:
            self.kubelet.record(self.pod, "Normal", "Scheduled", f"Successfully assigned {self.namespace}/{self.name} to {self.kubelet.node_name}", component="default-scheduler")
        else:
            self._adopt(record)
        self._setup_volumes()

    def _setup_volumes(self) -> bool:
        """Make the pod's volumes; False (a FailedMount event, retried) while one cannot be made."""
        if self.ready_to_start:
            return True
        try:
            self.volumes = self.kubelet.volumes_for(self.pod, self.pod_dir)
        except volumes.VolumeError as exc:
            if self._mount_error != str(exc):
                self._mount_error = str(exc)
                self.kubelet.record(self.pod, "Warning", "FailedMount", str(exc))  # (worded as the kubelet's)
            return False
        self.ready_to_start = True
        return True

    def _adopt(self, record: state.PodRecord) -> None:
        for name, saved in record.containers.items():
            c = self.containers.get(name)
            if c is None:
                continue
            c.restart_count, c.started_at = saved.restart_count, saved.started_at
            c.last_terminated, c.terminated = saved.last_terminated, saved.terminated
            c.ever_started = saved.started_at is not None
            if saved.process is None or saved.terminated is not None:
                continue
            _, sink = log_sink(self.pod_dir, name, c.restart_count, self.kubelet.log_max_bytes, self.kubelet.log_max_files)
            process = ContainerProcess.adopt(saved.process, sink)
            if process is None:  # it ended while no emulator watched (how, nobody knows), or is not ours any more
                kill_record(saved.process)  # never two copies: what is left of it goes before it runs again
                sink.close()
                c.terminated = self._terminated(c, Exit(137, known=False))
                c.waiting = ("", "")
                self._plan_restart(c)
                continue
            c.process, c.started_mono = process, time.monotonic()
            c.ctx = self._context(c, self._environment(c) or {})
            self._companions(c)
            self.kubelet.track(process)
            self._watch(c, process)
            self._start_probes(c)
            log.info("adopted container %s of pod %s/%s (pid %d)", name, self.namespace, self.name, process.pid)

    # -- computePodActions ---------------------------------------------------------------------------

    async def _sync(self) -> float | None:
        if self.terminal:
            return None
        if not self._setup_volumes():
            return CONFIG_RETRY
        now = time.monotonic()
        waits: list[float] = []
        initialized = True
        for c in list(self.containers.values()):  # (an ephemeral container may be added while this awaits)
            if c.kind in ("main", "ephemeral"):
                continue
            if c.kind == "sidecar":
                if not c.running:
                    waits.append(await self._maybe_start(c, now))
                if not (c.running and c.started) and not self.initialized:
                    initialized = False  # the next init container waits for this sidecar to have started
                    break
                continue
            if c.completed:
                continue
            initialized = False
            if c.running:
                break
            if c.terminated is not None and self.restart_policy == "Never":
                self.init_failed = True
                break
            waits.append(await self._maybe_start(c, now))
            break
        self.initialized = initialized or (self.initialized and all(c.completed for c in self._inits()))
        if self.initialized and not self.init_failed:
            for c in self._mains():
                if c.running or (c.terminated is not None and not self._restarts(c)):
                    continue
                waits.append(await self._maybe_start(c, now))
        for c in self._ephemeral():  # started once, never again; also while init containers run (kubectl debug)
            if not c.ever_started and not self.deleting:
                waits.append(await self._maybe_start(c, now))
        self.phase = self._phase()
        if self.phase in ("Succeeded", "Failed"):
            self.terminal = True  # what still runs (sidecars) stops
            task = asyncio.get_running_loop().create_task(self._stop_all(self._grace(), reason="the pod has completed"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return None
        pending = [w for w in waits if w > 0]
        return min(pending) if pending else None

    def _inits(self) -> list[Container]:
        return [c for c in self.containers.values() if c.kind == "init"]

    def _mains(self) -> list[Container]:
        return [c for c in self.containers.values() if c.kind == "main"]

    def _ephemeral(self) -> list[Container]:
        return [c for c in self.containers.values() if c.kind == "ephemeral"]

    def _restarts(self, c: Container) -> bool:
        """Whether an exited container is started again."""
        if c.kind == "ephemeral":
            return False
        if c.kind == "sidecar" or c.changed:
            return True
        exit_code = (c.terminated or {}).get("exitCode", 0)
        if c.kind == "init":
            return exit_code != 0 and self.restart_policy != "Never"
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and exit_code != 0)

    def _phase(self) -> str:
        if self.init_failed:
            return "Failed"
        if not self.initialized:
            return "Pending"
        running = waiting = succeeded = failed = 0
        for c in self._mains():
            if c.running:
                running += 1
            elif c.terminated is None:
                waiting += 1
            elif self._restarts(c):
                running += 1  # between two runs (back-off): still running, as the kubelet counts it
            elif c.terminated.get("exitCode") == 0:
                succeeded += 1
            else:
                failed += 1
        if waiting and not running:
            return "Pending"
        if running or waiting:
            return "Running"
        return "Failed" if failed else "Succeeded"

    async def _maybe_start(self, c: Container, now: float) -> float:
        """Start `c` unless it is in back-off; the seconds until it may start (0: started or failed)."""
        if c.retry_at > now:
            if c.waiting[0] != "CrashLoopBackOff" and c.ever_started:
                c.waiting = ("CrashLoopBackOff", f"back-off {c.delay_shown} restarting failed container={c.name} pod={self.name}_{self.namespace}({self.uid})")
                self.kubelet.record(self.pod, "Warning", "BackOff", f"Back-off restarting failed container {c.name} in pod {self.name}_{self.namespace}({self.uid})")
            return c.retry_at - now
        async with self.kubelet.start_slots:
            return await self._start(c)

    # -- starting ------------------------------------------------------------------------------------

    def _environment(self, c: Container) -> dict[str, str] | None:
        try:
            env = self.kubelet.container_environment(self.pod, c.name)
        except podenv.ConfigError as exc:
            if c.waiting != (podenv.CONFIG_ERROR, exc.message):
                self.kubelet.record(self.pod, "Warning", podenv.FAILED_EVENT, f"Error: {exc.message}")
            c.waiting = (podenv.CONFIG_ERROR, exc.message)
            return None
        _, _, _, image_env = resolved_command(c.spec, self.kubelet.images)
        base = {"PATH": os.environ.get("PATH", os.defpath), "HOSTNAME": self.pod.get("spec", {}).get("hostname") or self.name}
        if "HOME" in os.environ:
            base["HOME"] = os.environ["HOME"]
        return {**base, **image_env, **env}

    def _context(self, c: Container, env: dict[str, str]) -> ContainerContext:
        _, _, working_dir, _ = resolved_command(c.spec, self.kubelet.images)
        spec = self.pod.get("spec") or {}
        if self.podnet is not None and self.pod_ip and not spec.get("hostNetwork") and podnet.wanted(env):
            pod_host_ports = set().union(*(ports.host_ports(other.spec) for other in self.containers.values()))
            env = {**env, **podnet.environment(self.podnet, self.pod_ip, pod_host_ports, env)}
        mounts: tuple[Any, ...] = ()
        if self.volumes is not None:
            with contextlib.suppress(Exception):
                mounts = tuple(self.volumes.mounts_for(c.spec))
        message_path = c.spec.get("terminationMessagePath")
        if message_path:  # last: a file mounted over what a volume may hold there, as the runtime does
            mounts += (volumes.Mount(
                termination.VOLUME, termination.path_of(self.pod_dir, c.name), str(message_path), optional=True,
            ),)
        return ContainerContext(
            self.namespace, self.name, self.uid, c.name, self.pod_ip, env, working_dir, self.pod_dir, mounts,
            container_shell(c.spec, self.kubelet.images),
        )

    @property
    def pod_ip(self) -> str:
        return str((self.pod.get("status") or {}).get("podIP") or "")

    async def _start(self, c: Container) -> float:
        env = self._environment(c)
        if env is None:
            return CONFIG_RETRY
        command, args, _, _ = resolved_command(c.spec, self.kubelet.images)
        argv = [envvars.expand(part, env) for part in [*command, *args]]
        if not argv:  # an ephemeral container (kubectl debug) without a command (pods without one are not run)
            message = (f"{NO_COMMAND} for container {c.name} (image {c.spec.get('image') or 'none'}): give it a command "
                       "(kubectl debug ... -- CMD), make it interactive (-it), or map the image (--image-map, docs/pods.md)")
            self.kubelet.record(self.pod, "Warning", "Failed", f"Error: {message}")
            c.ever_started = True
            c.terminated = {**self._terminated(c, Exit(128)), "reason": "StartError", "message": message}
            self._save()
            return 0.0
        if c.ever_started:
            c.restart_count += 1
            c.last_terminated = c.terminated
        c.terminated = None
        c.changed = False
        c.ctx = self._context(c, env)
        image = c.spec.get("image") or ""
        self.kubelet.record(self.pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
        self.kubelet.record(self.pod, "Normal", "Created", f"Created container {c.name}")
        c.ever_started = True
        c.started_at = now_rfc3339()
        c.started_mono = time.monotonic()
        sink, launched = await self._launch(c.ctx, argv, c.restart_count, bool(c.spec.get("stdin")), bool(c.spec.get("tty")))
        if isinstance(launched, OSError):
            exc = launched
            sink.write("stderr", f"failed to start: {exc}\n".encode())
            sink.close()
            message = f'failed to start container "{c.name}": exec: "{argv[0] if argv else ""}": {exc.strerror or exc}'
            self.kubelet.record(self.pod, "Warning", "Failed", f"Error: {message}")
            c.terminated = {**self._terminated(c, Exit(128)), "reason": "StartError", "message": message}
            self._plan_restart(c)
            self._save()
            self._wake.set()  # as after any exit: the next sync decides about a restart
            return 0.0
        process = ContainerProcess.started(launched, sink)
        c.process = process
        c.waiting = ("", "")
        self._companions(c)
        self.kubelet.track(process)
        self.kubelet.record(self.pod, "Normal", "Started", f"Started container {c.name}")
        self._watch(c, process)
        self._stop_looking(c)
        if not (self.pod.get("spec") or {}).get("hostNetwork"):  # (on the host's network by its own choice)
            c.looking = asyncio.get_running_loop().create_task(self._look_at_listeners(c, process))
        self._save()
        post_start = (c.spec.get("lifecycle") or {}).get("postStart")
        if post_start:
            c.hook_done = False
            self._spawn_task(c, self._post_start(c, post_start))
        self._start_probes(c)
        return 0.0

    async def _launch(
        self, ctx: ContainerContext, argv: list[str], restart_count: int, stdin: bool = False, tty: bool = False,
    ) -> tuple[LogSink, Launched | OSError]:
        """The log sink and the started process (or why it could not start), made in a thread: the
        sandbox's files, the log's directory and the child's exec take milliseconds each. `stdin`, `tty`:
        the container's, for `kubectl attach -i` / `-t` (process.py)."""
        name, pod_dir, max_bytes, max_files = ctx.container, self.pod_dir, self.kubelet.log_max_bytes, self.kubelet.log_max_files

        def blocking() -> tuple[LogSink, Launched | OSError]:
            _, sink = log_sink(pod_dir, name, restart_count, max_bytes, max_files)
            try:
                for mount in ctx.mounts:
                    if mount.optional and mount.volume == termination.VOLUME:  # (the one _context added)
                        termination.fresh(mount.host_path)
                return sink, launch(ctx, argv, stdin=stdin, tty=tty)
            except OSError as exc:
                return sink, exc

        future = asyncio.get_running_loop().run_in_executor(self.kubelet.executor, blocking)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:  # the worker is cancelled (forced deletion, the emulator stops)
            future.add_done_callback(_abandon)
            raise

    def _companions(self, c: Container) -> None:
        c.companions = Companions(self.pod_dir, self.kubelet.track_group, self.kubelet.untrack_group)
        set_companions(self.uid, c.name, c.companions)

    def _watch(self, c: Container, process: ContainerProcess) -> None:
        async def watch() -> None:
            result = await process.wait()
            self._on_exit(c, process, result)

        self._spawn_task(c, watch())

    def _spawn_task(self, c: Container, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        c.tasks.add(task)
        task.add_done_callback(c.tasks.discard)

    def _terminated(self, c: Container, result: Exit) -> dict[str, Any]:
        if not result.known:
            reason = "ContainerStatusUnknown"
        else:
            reason = "Completed" if result.code == 0 else "Error"
        out: dict[str, Any] = {
            "exitCode": result.code, "reason": reason, "startedAt": c.started_at or now_rfc3339(), "finishedAt": now_rfc3339(),
            "containerID": self.container_id(c),
        }
        # its terminationMessagePath file (also of an instance the emulator lost while it was stopped),
        # else perhaps its last output (termination.py)
        message = termination.read(termination.path_of(self.pod_dir, c.name)) if c.spec.get("terminationMessagePath") else None
        if not result.known:
            message = message or "The container could not be located when the emulator restarted"
        elif not message and result.code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = last_output(log_path(self.pod_dir, c.name, c.restart_count))
        if message:
            out["message"] = termination.cut(message, termination.per_container_limit(self.pod.get("spec") or {}))
        if result.signal:
            out["signal"] = result.signal
        return out

    def container_id(self, c: Container) -> str:
        return f"emulator://{self.uid}/{c.name}/{c.restart_count}"

    def _on_exit(self, c: Container, process: ContainerProcess, result: Exit) -> None:
        self.kubelet.untrack(process)
        if c.process is not process:
            return
        c.process = None
        self._stop_looking(c)
        if c.companions is not None:  # its exec sessions, hooks and probes end with it
            c.companions.kill_all()
            set_companions(self.uid, c.name, None)
            c.companions = None
        self._stop_probes(c)
        c.terminated = self._terminated(c, result)
        if result.known and result.code != 0 and not c.stopping:
            self._spawn_task(c, self._why_exited(c, c.restart_count))
        if (not c.stopping or c.stopping_restart) and not self.deleting and not self.terminal:
            self._plan_restart(c)
        c.stopping = c.stopping_restart = False
        self._save()
        self._wake.set()

    async def _why_exited(self, c: Container, restart_count: int) -> None:
        """A container that failed to listen because its port is held on every address: say by whom (ports.py)."""
        log_file = log_path(self.pod_dir, c.name, restart_count)
        declared = ports.declared_ports(c.spec)
        groups = self.kubelet.container_groups()  # taken here, on the loop: the workers change meanwhile

        pod_ip, own_pod = self.pod_ip, f"{self.namespace}/{self.name}"
        asked = [*(c.spec.get("command") or []), *(c.spec.get("args") or []),
                 *(str(e.get("value") or "") for e in c.spec.get("env") or [] if isinstance(e, dict))]

        def look() -> str | None:
            output = last_output(log_file)
            if not ports.said_in_use(output):
                return None
            holders = ports.every_address_listeners(declared, pod_ip) if declared else []
            if not holders:  # a port it does not declare: a pod's listener on a port it names (not the machine's own servers)
                named = ports.mentioned_ports(output, *map(str, asked))
                holders = [h for h in ports.every_address_listeners(named, pod_ip) if named and ports.pod_of(h.pid, groups) is not None]
            return ports.message(c.name, holders, lambda pid: ports.pod_of(pid, groups), own_pod)

        text = await asyncio.get_running_loop().run_in_executor(self.kubelet.executor, look)
        if text is not None:
            self.kubelet.record(self.pod, "Warning", ports.REASON, text)

    async def _look_at_listeners(self, c: Container, process: ContainerProcess) -> None:
        """Name what the container listens on beyond loopback, once per address over its restarts (ports.py):
        other machines can reach it. Ports it declares with a `hostPort` are meant to be reached."""
        udp_ports = ports.declared_ports(c.spec, "UDP")
        host_ports = ports.host_ports(c.spec)
        loop = asyncio.get_running_loop()
        for wait in self.kubelet.listener_looks:
            await asyncio.sleep(wait)
            if c.process is not process:
                return
            try:
                found = await loop.run_in_executor(self.kubelet.look_executor, ports.exposed_listeners, process.pid, udp_ports)
            except RuntimeError:  # the kubelet stopped meanwhile (its executor is shut down)
                return
            except Exception:  # a look that fails says so, and leaves the container alone
                log.exception("could not look at what container %s of pod %s/%s listens on", c.name, self.namespace, self.name)
                return
            new = {f for f in found if f.port not in host_ports} - c.told
            if new and c.process is process:
                c.told |= new
                text = ports.exposed_message(c.name, new)
                self.kubelet.record(self.pod, "Warning", ports.EXPOSED_REASON, text)
                log.warning("pod %s/%s: %s", self.namespace, self.name, text)

    @staticmethod
    def _stop_looking(c: Container) -> None:
        if c.looking is not None:
            c.looking.cancel()
            c.looking = None

    def _plan_restart(self, c: Container) -> None:
        """The back-off before `c` starts again (only used when it does restart)."""
        backoff = self.kubelet.backoff
        if time.monotonic() - c.started_mono >= backoff.reset_after:
            c.delay = 0.0
        c.retry_at = time.monotonic() + c.delay
        c.delay_shown = _duration(c.delay)
        c.delay = backoff.base if c.delay == 0 else min(c.delay * 2, backoff.limit)

    # -- hooks ---------------------------------------------------------------------------------------

    async def _post_start(self, c: Container, hook: dict[str, Any]) -> None:
        error = await self._hook(c, hook, HOOK_TIMEOUT)
        c.hook_done = True
        if error is not None and c.running:
            self.kubelet.record(self.pod, "Warning", "FailedPostStartHook", error)
            self.kubelet.record(self.pod, "Normal", "Killing", f"FailedPostStartHook: stopping container {c.name}")
            assert c.process is not None
            await c.process.stop(self._grace())
        self._wake.set()

    async def _hook(self, c: Container, hook: dict[str, Any], timeout: float) -> str | None:
        """Run a lifecycle handler; None when it succeeded, else why not (the kubelet's message)."""
        try:
            if "exec" in hook:
                argv = [str(a) for a in (hook["exec"] or {}).get("command") or []]
                code, output = await self.exec(c, argv, timeout)
                if code != 0:
                    return f"Exec lifecycle hook ({argv}) for Container \"{c.name}\" in Pod \"{self.name}_{self.namespace}({self.uid})\" failed - error: command '{' '.join(argv)}' exited with {code}: {output.decode(errors='replace')[-500:]}"
            elif "httpGet" in hook:
                return await self._http_hook(c, hook["httpGet"] or {}, timeout)
            elif "sleep" in hook:
                await asyncio.sleep(float((hook["sleep"] or {}).get("seconds") or 0))
        except TimeoutError:
            return f"hook of container {c.name} did not finish in {timeout:.0f}s"
        except OSError as exc:
            return f"hook of container {c.name} failed: {exc}"
        return None

    async def _http_hook(self, c: Container, get: dict[str, Any], timeout: float) -> str | None:
        import aiohttp

        port = get.get("port")
        if isinstance(port, str) and not port.isdigit():
            port = next((p.get("containerPort") for p in c.spec.get("ports") or [] if p.get("name") == port), None)
            if port is None:
                return f"httpGet hook of container {c.name}: no port named {get.get('port')!r}"
        host = get.get("host") or self.pod_ip or "127.0.0.1"
        url = f"{(get.get('scheme') or 'HTTP').lower()}://{host}:{port}{get.get('path') or '/'}"
        headers = {h.get("name", ""): h.get("value", "") for h in get.get("httpHeaders") or []}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            try:
                async with session.get(url, headers=headers, ssl=False) as response:
                    if not 200 <= response.status < 400:
                        return f"HTTP lifecycle hook ({get.get('path') or '/'}) for Container \"{c.name}\" in Pod \"{self.name}_{self.namespace}({self.uid})\" failed - error: HTTP {response.status}"
            except aiohttp.ClientError as exc:
                return f"HTTP lifecycle hook ({url}) for Container \"{c.name}\" failed - error: {exc}"
        return None

    async def exec(self, c: Container, argv: list[str], timeout: float) -> tuple[int, bytes]:
        """Run `argv` beside container `c` (its environment, sandbox and directory): (exit code, output).
        Its group is one of the container's companions (killed with it). Raises TimeoutError."""
        if c.ctx is None or not argv or c.companions is None:
            return 126, b"container not started"
        from emulator.kubelet.execsession import ExecError, run_command

        try:
            return await run_command(c.ctx, argv, timeout)
        except ExecError as exc:
            return 126, str(exc).encode()

    # -- probes --------------------------------------------------------------------------------------

    def _start_probes(self, c: Container) -> None:
        c.probes = self.kubelet.container_probes(self, c)
        if c.probes is not None:
            c.probes.start()

    def _stop_probes(self, c: Container) -> None:
        probes, c.probes = c.probes, None
        if probes is not None:
            task = asyncio.get_running_loop().create_task(probes.stop())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def probe_result(self, c: Container, kind: str, success: bool, message: str) -> None:
        """A probe's result changed (its thresholds passed; probes.py records Unhealthy itself)."""
        if not c.running:
            return
        if kind in ("liveness", "startup") and not success and c.process is not None:
            self.kubelet.record(self.pod, "Normal", "Killing", f"Container {c.name} failed {kind} probe, will be restarted")
            c.stopping_restart = True
            worker = c.probes.worker(kind) if c.probes is not None else None
            own = worker.termination_grace_period_seconds if worker is not None else None
            self._spawn_task(c, c.process.stop(float(own) if own is not None else self._grace()))
        self._wake.set()

    # -- stopping ------------------------------------------------------------------------------------

    def _grace(self) -> float:
        meta = self.pod["metadata"]
        if meta.get("deletionGracePeriodSeconds") is not None and self.deleting:
            return float(meta["deletionGracePeriodSeconds"])
        value = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return float(30 if value is None else value)

    async def _stop_container(self, c: Container, deadline: float, reason: str) -> None:
        process = c.process
        if process is None or process.exit is not None:
            return
        c.stopping = True
        self._stop_probes(c)
        self.kubelet.record(self.pod, "Normal", "Killing", f"Stopping container {c.name}")
        pre_stop = (c.spec.get("lifecycle") or {}).get("preStop")
        if pre_stop and deadline - time.monotonic() > 0:
            error = await self._hook(c, pre_stop, max(deadline - time.monotonic(), 0.1))
            if error is not None:
                self.kubelet.record(self.pod, "Warning", "FailedPreStopHook", error)
        await process.stop(max(deadline - time.monotonic(), 0.0))
        log.debug("stopped container %s of pod %s/%s: %s", c.name, self.namespace, self.name, reason)

    async def _stop_all(self, grace: float, reason: str) -> None:
        """Main containers together, then sidecars in reverse order, within `grace` seconds overall."""
        deadline = time.monotonic() + grace
        mains = [c for c in self.containers.values() if c.kind in ("main", "init", "ephemeral")]
        await asyncio.gather(*(self._stop_container(c, deadline, reason) for c in mains))
        for c in reversed([c for c in self.containers.values() if c.kind == "sidecar"]):
            await self._stop_container(c, max(deadline, time.monotonic() + 2), reason)
        for c in self.containers.values():
            if c.process is not None and c.process.exit is not None:
                self._on_exit(c, c.process, c.process.exit)

    async def _cleanup(self) -> None:
        # the volumes' files (an emptyDir may hold many) are removed in a thread, with the pod's directory
        aside = await asyncio.to_thread(_set_aside, self.pod_dir / volumes.POD_VOLUMES_DIR)
        if self.volumes is not None:
            try:
                self.volumes.teardown()
            except Exception:
                log.exception("volumes of pod %s/%s not torn down", self.namespace, self.name)
        if aside is not None:
            await asyncio.to_thread(shutil.rmtree, aside, True)
        await self.kubelet.forget(self)

    # -- state and status ----------------------------------------------------------------------------

    def _save(self) -> None:
        record = state.PodRecord(self.namespace, self.name, self.uid)
        for c in self.containers.values():
            record.containers[c.name] = state.ContainerRecord(
                c.restart_count, c.process.record if c.running and c.process is not None else None,
                c.started_at, c.last_terminated, c.terminated,
            )
        try:
            state.save(self.pod_dir, record)
        except OSError as exc:
            log.warning("cannot record the state of pod %s/%s: %s", self.namespace, self.name, exc)

    def _container_status(self, c: Container) -> dict[str, Any]:
        if c.running:
            current: dict[str, Any] = {"running": {"startedAt": c.started_at}}
        elif c.terminated is not None and not (self._restarts(c) and not self.terminal and not self.deleting):
            current = {"terminated": c.terminated}
        elif c.terminated is not None:
            reason, message = c.waiting if c.waiting[0] else ("CrashLoopBackOff", "")
            current = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        else:
            reason, message = c.waiting
            if not self.initialized and c.kind == "main" and any(o.kind in ("init", "sidecar") for o in self.containers.values()):
                reason, message = "PodInitializing", ""  # (without init containers: ContainerCreating)
            current = {"waiting": {"reason": reason or "ContainerCreating", **({"message": message} if message else {})}}
        last = c.terminated if ("waiting" in current and c.terminated is not None) else c.last_terminated
        image = c.spec.get("image") or ""
        out: dict[str, Any] = {
            "name": c.name, "image": image, "imageID": f"emulator.local/{image}" if image else "",
            "ready": c.ready and not self.terminal and c.kind != "ephemeral", "restartCount": c.restart_count,
            "started": c.started, "state": current, "lastState": {"terminated": last} if last else {},
        }
        if c.ever_started:
            out["containerID"] = self.container_id(c)
        return out

    def status(self) -> dict[str, Any]:
        """The part of the pod's status the kubelet owns."""
        before_mains = [c for c in self.containers.values() if c.kind in ("init", "sidecar")]
        inits = [self._container_status(c) for c in before_mains]
        mains = [self._container_status(c) for c in self._mains()]
        sidecars = [s for s, c in zip(inits, before_mains, strict=True) if c.kind == "sidecar"]
        unready = [s["name"] for s in [*sidecars, *mains] if not s["ready"]]
        incomplete = [c.name for c in before_mains if not (c.completed or (c.kind == "sidecar" and c.running and c.started))]
        gates = self._unready_gates()
        conditions: list[tuple[str, bool, str, str]] = [
            ("PodReadyToStartContainers", self.ready_to_start and not self.terminal, "", ""),
            ("Initialized", self.initialized or (self.terminal and not self.init_failed),
             "ContainersNotInitialized", f"containers with incomplete status: [{' '.join(incomplete)}]"),
            ("ContainersReady", not unready and not self.terminal,
             "PodCompleted" if self.terminal else "ContainersNotReady", "" if self.terminal else f"containers with unready status: [{' '.join(unready)}]"),
            ("Ready", not unready and not self.terminal and not gates,
             "PodCompleted" if self.terminal else "ContainersNotReady" if unready else "ReadinessGatesNotReady",
             "" if self.terminal else f"containers with unready status: [{' '.join(unready)}]" if unready else ", ".join(gates)),
            ("PodScheduled", True, "", ""),
        ]
        out: dict[str, Any] = {
            "phase": self.phase,
            "conditions": [
                {"type": kind, "status": "True" if value else "False", **({} if value or not reason else {"reason": reason}),
                 **({} if value or not message else {"message": message})}
                for kind, value, reason, message in conditions
            ],
            "containerStatuses": mains,
            "startTime": self._start_time,
        }
        if inits:
            out["initContainerStatuses"] = inits
        ephemeral = [self._container_status(c) for c in self._ephemeral()]
        if ephemeral:
            out["ephemeralContainerStatuses"] = ephemeral
        return out

    def _unready_gates(self) -> list[str]:
        """Why the pod's readiness gates keep it unready (their conditions are set by others, through
        pods/status), in the kubelet's words; [] when they all hold."""
        held = {c.get("type"): c.get("status") for c in (self.pod.get("status") or {}).get("conditions") or []}
        out = []
        for gate in (self.pod.get("spec") or {}).get("readinessGates") or []:
            kind = gate.get("conditionType")
            if kind not in held:
                out.append(f"corresponding condition of pod readiness gate {json.dumps(kind)} does not exist.")
            elif held[kind] != "True":
                out.append(f'the status of pod readiness gate {json.dumps(kind)} is not "True", but {held[kind]}')
        return out

    def _publish(self) -> None:
        status = self.status()
        if status == self._published:
            return
        if self.kubelet.write_status(self, status):
            self._published = status


def merge_status(stored: dict[str, Any], ours: dict[str, Any], now: str) -> dict[str, Any]:
    """The stored status with the kubelet's part replaced: conditions the kubelet does not own (the
    Runnable marker, readiness gates) kept, a condition's lastTransitionTime kept while its status holds."""
    merged = {**stored, **{k: v for k, v in ours.items() if k != "conditions"}}
    merged["startTime"] = stored.get("startTime") or ours.get("startTime")
    old = {c.get("type"): c for c in stored.get("conditions") or []}
    conditions = [c for c in stored.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
    for condition in ours["conditions"]:
        before = old.get(condition["type"])
        since = before.get("lastTransitionTime") if before and before.get("status") == condition["status"] else now
        conditions.append({**condition, "lastProbeTime": None, "lastTransitionTime": since})
    merged["conditions"] = [{k: v for k, v in c.items() if v is not None} for c in conditions]
    if "initContainerStatuses" not in ours:
        merged.pop("initContainerStatuses", None)
    return merged


def references(spec: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """The ConfigMaps and Secrets a pod spec uses, in volumes and environment: ("configMap"|"secret", name)."""
    found: set[tuple[str, str]] = set()
    for volume in spec.get("volumes") or []:
        sources = [volume, *[s for s in ((volume.get("projected") or {}).get("sources") or [])]]
        for source in sources:
            if source.get("configMap"):
                found.add(("configMap", str(source["configMap"].get("name") or "")))
            if source.get("secret"):
                found.add(("secret", str(source["secret"].get("secretName") or source["secret"].get("name") or "")))
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for var in c.get("env") or []:
            ref = var.get("valueFrom") or {}
            if ref.get("configMapKeyRef"):
                found.add(("configMap", str(ref["configMapKeyRef"].get("name") or "")))
            if ref.get("secretKeyRef"):
                found.add(("secret", str(ref["secretKeyRef"].get("name") or "")))
        for source in c.get("envFrom") or []:
            if source.get("configMapRef"):
                found.add(("configMap", str(source["configMapRef"].get("name") or "")))
            if source.get("secretRef"):
                found.add(("secret", str(source["secretRef"].get("name") or "")))
    return frozenset(found)


def runnable_marker(pod: dict[str, Any]) -> bool:
    """Whether the pod carries the condition that says the kubelet runs it (set by the pod strategy at
    creation, never by a client), and is none of the pods that never run whatever a stored condition says
    (registered by `emulator run`, host network): a defence in depth for stores written by older versions."""
    if REGISTERED_BY_RUN in (pod["metadata"].get("annotations") or {}) or (pod.get("spec") or {}).get("hostNetwork"):
        return False
    return any(
        c.get("type") == RUNNABLE_CONDITION and c.get("status") == "True" and c.get("reason") == "CommandKnown"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _abandon(future: asyncio.Future[tuple[LogSink, Launched | OSError]]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    sink, launched = future.result()
    if not isinstance(launched, OSError):
        abandon(launched)
    sink.close()


def _set_aside(path: Path) -> Path | None:
    """`path` renamed next to itself (to be removed later), None when there is none."""
    aside = path.with_name(f".removing-{path.name}")
    try:
        os.replace(path, aside)
    except OSError:
        return None
    return aside


def _duration(seconds: float) -> str:
    """Go's time.Duration text for whole seconds or minutes (`10s`, `2m40s`, `5m0s`)."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s" if whole == seconds else f"{seconds:g}s"
    return f"{whole // 60}m{whole % 60}s"
