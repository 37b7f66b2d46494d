"""The kubelet of the emulator's one node: store events → one worker per pod it runs (podworker.py);
status and Events written through the registry, never the store. Also what the API layer asks of the
node (logs, exec, port-forward, stats): a container's context, its pod directory, its pids.

Which pods run is decided once, when a pod is created (the pod strategy asks `unrunnable` through the
`Cluster` and marks the pod with the condition `emulator.local/Runnable`); the kubelet runs the pods
bound to its node that carry `Runnable=True`.

Stopping the emulator stops the containers, as a node that shuts down (SIGTERM, a short grace,
SIGKILL); the next start runs them again per restartPolicy. After `kill -9` of the emulator they keep
running and the next start adopts them (state.py, process.py). With `--in-memory` containers die with
the emulator, `kill -9` included (nothing could adopt them): a tiny reaper process (process.py) kills
their groups when the emulator's end of its pipe closes. A start without the kubelet after `kill -9`
kills what the previous run left and says so in the pods' status (`stop_leftovers`).

Many pods at once (a Deployment of 100): a few start at a time (STARTS_AT_ONCE), their processes spawned
in threads, so that no turn of the event loop is long and the API and DNS keep answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator import envvars, errors, podenv
from emulator.controllers.events import EventRecorder
from emulator.kinds import CONFIG_MAPS, NODES, PODS, SECRETS, SERVICES
from emulator.kinds.node import NODE_NAME
from emulator.kinds.pod import not_run_because
from emulator.kinds.service import ServiceView
from emulator.kubelet import podnet, ports, state, volumes
from emulator.kubelet.context import ContainerContext
from emulator.kubelet.images import NO_COMMAND, RUNNABLE_CONDITION, ImageMap, unrunnable
from emulator.kubelet.podworker import Backoff, Container, PodWorker, merge_status, runnable_marker
from emulator.kubelet.process import ContainerProcess, GroupReaper, kill_companions, kill_record
from emulator.kubelet.process import alive as process_alive
from emulator.registry.registry import Registry
from emulator.store.events import DELETED, Event
from emulator.timestamps import now_rfc3339

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0  # seconds containers get when the emulator stops
STARTS_AT_ONCE = 8  # pods set up / containers started at the same time (the rest wait their turn)
NOT_RUNNABLE_EVENT = "NotRunnable"
_RUNNABLE_MARK = b'"type":"' + RUNNABLE_CONDITION.encode() + b'","status":"True"'


@dataclass
class KubeletSettings:
    data_dir: Path | None  # None: --in-memory (pod directories in a temporary directory)
    images: ImageMap = field(default_factory=ImageMap)
    log_max_bytes: int = 10 * 1024 * 1024
    log_max_files: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    listener_looks: tuple[float, ...] = ports.EXPOSED_LOOKS  # when a container's listeners are looked at (ports.py)
    node_name: str = NODE_NAME
    tokens: Any = None  # registry/tokens.py TokenOperations: projected service-account tokens
    hosts: Any = None  # kubelet/hosts.py ClusterHosts: each pod's /etc/hosts, kept current


class Kubelet:
    def __init__(self, registry: Registry, settings: KubeletSettings) -> None:
        self.registry = registry
        self.store = registry.store
        self.settings = settings
        self.images = settings.images
        self.backoff = settings.backoff
        self.listener_looks = settings.listener_looks
        self.node_name = settings.node_name
        self.log_max_bytes, self.log_max_files = settings.log_max_bytes, settings.log_max_files
        self.in_memory = settings.data_dir is None
        self._temporary: str | None = None
        self._reaper: GroupReaper | None = None
        if settings.data_dir is None:
            self._temporary = tempfile.mkdtemp(prefix="emulator-pods-")
            self.pods_dir = Path(self._temporary)
        else:
            self.pods_dir = Path(settings.data_dir) / "pods"
        self.events = EventRecorder(registry, "kubelet")
        self.scheduler_events = EventRecorder(registry, "default-scheduler")
        self.workers: dict[tuple[str, str], PodWorker] = {}
        self.restarts_forgotten = 0  # restarts of the containers of workers gone (emulator_container_restarts_total)
        self._since = registry.store.rv  # events up to here are the stored state, replayed
        self._started = False
        self._stopping = False
        self.start_slots = asyncio.Semaphore(STARTS_AT_ONCE)
        self.executor = ThreadPoolExecutor(max_workers=STARTS_AT_ONCE, thread_name_prefix="kubelet-start")
        # the looks at what containers listen on (ports.py): one at a time, never in the way of starts
        self.look_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubelet-look")
        self._refreshing: set[tuple[str, str]] = set()  # workers whose volumes refresh at the next turn
        self._told_unrunnable: set[str] = set()  # uids of the pods whose NotRunnable event was recorded
        self._podnet: asyncio.Future[tuple[Path | None, str]] | None = None  # podnet.py's library, being built

    # -- what runs -----------------------------------------------------------------------------------

    def unrunnable(self, pod: dict[str, Any]) -> str | None:
        """For the pod strategy (through `Cluster.unrunnable`): why a new pod would not run, or None."""
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node != self.node_name:
            return f"bound to node {node!r}: this emulator's kubelet runs the pods of node {self.node_name!r}"
        return unrunnable(pod, self.images)

    def runs(self, pod: dict[str, Any]) -> bool:
        return runnable_marker(pod) and (pod.get("spec") or {}).get("nodeName") == self.node_name

    # -- store events --------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        try:
            self._apply(event)
        except Exception:  # a bug here must not break the store's delivery to everyone else
            log.exception("the kubelet failed on %s %s/%s", event.type, event.namespace, event.name)

    def _apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            self._on_pod(event)
        elif event.resource in (CONFIG_MAPS.key, SECRETS.key):
            # only the pods that use it (volumes, env), refreshed after the delivery (coalesced per pod)
            kind = "configMap" if event.resource == CONFIG_MAPS.key else "secret"
            for key, worker in self.workers.items():
                if key[0] == event.namespace and (kind, event.name) in worker.references and key not in self._refreshing:
                    self._refreshing.add(key)
                    asyncio.get_running_loop().call_soon(self._refresh, key)

    def _refresh(self, key: tuple[str, str]) -> None:
        self._refreshing.discard(key)
        worker = self.workers.get(key)
        if worker is None:
            return
        if worker.volumes is not None:
            try:
                worker.volumes.refresh()
            except Exception:
                log.exception("volumes of pod %s/%s not refreshed", worker.namespace, worker.name)
        worker.wake()

    def _on_pod(self, event: Event) -> None:
        key = (event.namespace, event.name)
        worker = self.workers.get(key)
        if event.type == DELETED:
            if worker is not None and worker.uid == event.obj["metadata"].get("uid"):
                self.workers.pop(key, None)
                self._count_restarts(worker)
                asyncio.get_running_loop().create_task(worker.kill_now())
            self.events.forget(event.obj["metadata"].get("uid", ""))
            self._told_unrunnable.discard(event.obj["metadata"].get("uid", ""))
            return
        if _RUNNABLE_MARK not in event.raw:
            # said once per pod: when it is created, or bound later (it waited for a node: the decision is
            # made then) by a MODIFIED event
            if event.rv > self._since and RUNNABLE_CONDITION.encode() in event.raw:
                self._report_unrunnable(event.obj)
            return
        pod = event.obj
        if worker is not None and worker.uid != pod["metadata"].get("uid"):
            return  # the old pod of that name is still being terminated; the new one waits for it
        if worker is not None:
            worker.update(pod)
            return
        if not self.runs(pod):
            return
        if not self._started:
            return  # start() runs what is stored then
        self._start_worker(pod)

    def _start_worker(self, pod: dict[str, Any]) -> None:
        if self._stopping:
            return  # the emulator stops: nothing new starts (the next run starts it)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return  # finished: nothing runs (a restart does not run it again)
        worker = PodWorker(self, pod)
        self.workers[(worker.namespace, worker.name)] = worker
        worker.start()

    def _report_unrunnable(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"].get("uid", "")
        why = None if uid in self._told_unrunnable else not_run_because(pod)
        if why is None:
            return
        self._told_unrunnable.add(uid)
        message = why or "the kubelet does not run this pod"
        kind = "Warning" if message.startswith(NO_COMMAND) else "Normal"  # the others are meant so
        # recorded from the event loop, after the delivery of this event (writes in delivery are deferred)
        asyncio.get_running_loop().call_soon(self.record, pod, kind, NOT_RUNNABLE_EVENT, f"Not run: {message}")

    # -- start and stop ------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the pods the store holds (adopting what a previous run left running); kill what a previous
        run started for pods that are gone."""
        self._started = True
        self._podnet = asyncio.get_running_loop().run_in_executor(self.executor, podnet.build)
        self._podnet.add_done_callback(self._said_podnet)
        if self.in_memory:
            self._reaper = GroupReaper()
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        pods = {pod["metadata"].get("uid"): pod for pod in self.store.objects(PODS.key)}
        # (told by an earlier run, when they were created or bound)
        self._told_unrunnable.update(uid for uid, pod in pods.items() if not_run_because(pod) is not None)
        for uid, record in state.recorded_pods(self.pods_dir).items():
            pod = pods.get(uid)
            finished = pod is not None and (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if pod is not None and self.runs(pod) and not finished:
                continue  # its worker adopts what runs
            for container in record.containers.values():  # a pod gone (or finished) meanwhile: nothing of it runs
                if container.process is not None:
                    kill_record(container.process)
            kill_companions(self.pods_dir / uid)
            if pod is None:
                shutil.rmtree(self.pods_dir / uid, ignore_errors=True)
        for pod in self.store.objects(PODS.key):
            if self.runs(pod) and (pod["metadata"]["namespace"], pod["metadata"]["name"]) not in self.workers:
                self._start_worker(pod)

    async def stop(self) -> None:
        self._stopping = True
        workers, self.workers = list(self.workers.values()), {}
        results = await asyncio.gather(*(w.shutdown(SHUTDOWN_GRACE) for w in workers), return_exceptions=True)
        for worker, result in zip(workers, results, strict=True):
            if isinstance(result, BaseException):
                log.error("pod %s/%s did not stop cleanly: %r", worker.namespace, worker.name, result)
            for c in worker.containers.values():  # whatever happened: nothing it ran outlives the emulator
                if c.process is not None:
                    c.process.signal_group(signal.SIGKILL)
                if c.companions is not None:
                    c.companions.kill_all()
        if self._reaper is not None:
            self._reaper.close()
        self.executor.shutdown(wait=True)
        self.look_executor.shutdown(wait=True, cancel_futures=True)
        if self._temporary is not None:
            await asyncio.to_thread(shutil.rmtree, self._temporary, True)

    # -- what workers use ------------------------------------------------------------------------------

    def track(self, process: ContainerProcess) -> None:
        """A container started: with --in-memory the reaper kills its group if the emulator dies."""
        self.track_group(process.pid)

    def untrack(self, process: ContainerProcess) -> None:
        self.untrack_group(process.pid)

    def track_group(self, pgid: int) -> None:
        """A process group of a container's or of a companion's (exec, hook, probe): see `track`."""
        if self._reaper is not None:
            self._reaper.add(pgid)

    def untrack_group(self, pgid: int) -> None:
        if self._reaper is not None:
            self._reaper.remove(pgid)

    def container_groups(self) -> dict[int, str]:
        """The process group of every running container -> its pod, "namespace/name"."""
        return {
            c.process.pid: f"{namespace}/{name}"
            for (namespace, name), worker in self.workers.items()
            for c in worker.containers.values()
            if c.process is not None
        }

    def pod_dir_for(self, uid: str) -> Path:
        return self.pods_dir / uid

    def record(self, pod: dict[str, Any], kind: str, reason: str, message: str, component: str = "kubelet") -> None:
        recorder = self.scheduler_events if component == "default-scheduler" else self.events
        try:
            recorder.record(PODS, pod, kind, reason, message)
        except Exception as exc:  # an event is never worth a failed pod action
            log.debug("could not record %s for pod %s: %s", reason, pod["metadata"].get("name"), exc)

    def container_environment(self, pod: dict[str, Any], container: str) -> dict[str, str]:
        """The container's variables as the kubelet gives them (emulator/podenv.py). Raises ConfigError."""
        namespace = pod["metadata"]["namespace"]
        services = sorted((ServiceView.of(s) for s in self.store.objects(SERVICES.key, namespace)), key=lambda s: s.name)
        kubernetes = self.store.get(SERVICES.key, "default", "kubernetes")
        node = self.store.get(NODES.key, "", (pod.get("spec") or {}).get("nodeName") or "") or {}
        env, _ = podenv.container_environment(
            pod, container, services, ServiceView.of(kubernetes) if kubernetes else None,
            lambda resource, ref: self.store.get(resource, namespace, ref),
            (node.get("status") or {}).get("allocatable") or {},
        )
        return env

    def volumes_for(self, pod: dict[str, Any], pod_dir: Path) -> Any:
        """The pod's volumes (emulator/kubelet/volumes.py), set up. Raises VolumeError."""
        made = volumes.Volumes(self.registry, pod, pod_dir, self.settings.tokens, self.settings.hosts)
        made.setup()
        return made

    def container_probes(self, worker: PodWorker, c: Container) -> Any:
        """The container's probes (emulator/kubelet/probes.py's ContainerProbes), None without any."""
        if not any(c.spec.get(f"{kind}Probe") for kind in ("startup", "readiness", "liveness")):
            return None
        from emulator.kubelet import probes

        def on_result(kind: str, success: bool, message: str) -> None:
            worker.probe_result(c, kind, success, message)

        def on_event(reason: str, message: str) -> None:
            self.record(worker.pod, "Warning", reason, f"{message}")

        return probes.ContainerProbes(c.spec, _ProbeTarget(worker.pod_ip, worker, c), on_result, on_event=on_event)

    def write_status(self, worker: PodWorker, status: dict[str, Any]) -> bool:
        pod = self.store.get(PODS.key, worker.namespace, worker.name)
        if pod is None or pod["metadata"].get("uid") != worker.uid:
            return False
        merged = merge_status(pod.get("status") or {}, status, now_rfc3339())
        if merged == pod.get("status"):
            return True
        try:
            self.registry.replace_object(PODS, pod, {**pod, "status": merged}, subresource="status")
        except errors.StatusError as exc:
            log.debug("status of pod %s/%s not written: %s", worker.namespace, worker.name, exc)
            return False
        return True

    def finalize(self, worker: PodWorker) -> None:
        """The pod's containers are stopped: its deletion completes."""
        pod = self.store.get(PODS.key, worker.namespace, worker.name)
        if pod is not None and pod["metadata"].get("uid") == worker.uid:
            try:
                self.registry.terminated(PODS, worker.namespace, worker.name)
            except errors.StatusError as exc:
                log.warning("could not remove pod %s/%s: %s", worker.namespace, worker.name, exc)

    def _count_restarts(self, worker: PodWorker) -> None:
        """A worker leaves `workers` (where the metrics count its restarts): its restarts stay counted, from
        that moment, not from when its pod's directory is gone (a scrape in between saw them drop)."""
        self.restarts_forgotten += sum(c.restart_count for c in worker.containers.values())

    async def forget(self, worker: PodWorker) -> None:
        key = (worker.namespace, worker.name)
        if self.workers.get(key) is worker:
            del self.workers[key]
            self._count_restarts(worker)
        await asyncio.to_thread(shutil.rmtree, worker.pod_dir, True)
        # a pod of the same name created meanwhile waited for this one
        pod = self.store.get(PODS.key, *key)
        if pod is not None and pod["metadata"].get("uid") != worker.uid and self.runs(pod) and key not in self.workers:
            self._start_worker(pod)

    # -- for the API layer -------------------------------------------------------------------------------

    def _worker(self, namespace: str, pod: str) -> PodWorker:
        worker = self.workers.get((namespace, pod))
        if worker is None:
            if self.store.get(PODS.key, namespace, pod) is None:
                raise errors.not_found(PODS.key, pod)
            raise errors.bad_request(f'pod "{pod}" is not run by the emulator\'s kubelet (see its condition {RUNNABLE_CONDITION})')
        return worker

    async def podnet_library(self) -> Path | None:
        """The library that gives pods their own `0.0.0.0` and `localhost` (podnet.py), once built; None
        when there is none."""
        if self._podnet is None:
            return None
        try:
            library, _ = await asyncio.shield(self._podnet)
        except Exception:  # a bug there must not keep containers from starting (said by _said_podnet)
            return None
        return library

    @staticmethod
    def _said_podnet(future: asyncio.Future[tuple[Path | None, str]]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("the podnet library was not built", exc_info=future.exception())
            return
        library, why = future.result()
        if library is not None:
            log.info("containers listen on their pod's IP when they ask for every address or localhost (%s)", library)
        else:
            log.warning("containers share this machine's 0.0.0.0 and localhost (%s): a second replica of a server "
                        "on 0.0.0.0:PORT fails with 'address already in use' (docs/pods.md)", why)

    def container_context(self, namespace: str, pod: str, container: str | None) -> ContainerContext:
        """The context of a running container (by default the one kubectl picks). 404 for an unknown pod
        or container, 400 when it does not run."""
        worker = self._worker(namespace, pod)
        name = container or envvars.default_container(worker.pod)
        found = worker.containers.get(name or "")
        if found is None:
            raise errors.bad_request(f"container {name} is not valid for pod {pod}")
        if not found.running or found.ctx is None:
            raise errors.bad_request(f'container "{found.name}" in pod "{pod}" is not running')
        return found.ctx

    def attach_target(self, namespace: str, pod: str, container: str) -> tuple[ContainerProcess | None, dict[str, Any], bool]:
        """What `kubectl attach` connects to: the running instance's ContainerProcess (its stdin and
        terminal, process.py), the container's spec, and whether this is the first attach to this instance
        of a container with `stdin` and `stdinOnce` (what `kubectl run -i` creates): that one is given the
        instance's output from its start, so what the command printed before kubectl attached is not lost
        (a runtime would hold it in the stream's buffer until then)."""
        found = self._worker(namespace, pod).containers.get(container)
        if found is None:
            raise errors.bad_request(f"container {container} is not valid for pod {pod}")
        first = False
        if found.spec.get("stdin") and found.spec.get("stdinOnce"):
            first, found.attached = found.attached != found.restart_count, found.restart_count
        return (found.process if found.running else None), found.spec, first

    def pod_dir(self, namespace: str, pod: str) -> Path:
        return self._worker(namespace, pod).pod_dir

    def restart_count(self, namespace: str, pod: str, container: str) -> int:
        found = self._worker(namespace, pod).containers.get(container)
        if found is None:
            raise errors.bad_request(f"container {container} is not valid for pod {pod}")
        return found.restart_count

    def running_pids(self) -> dict[tuple[str, str, str], int]:
        return {
            (w.namespace, w.name, c.name): c.process.pid
            for w in self.workers.values() for c in w.containers.values()
            if c.running and c.process is not None
        }


KUBELET_OFF_MESSAGE = "the emulator was started without --kubelet: this container was stopped (start it with --kubelet to run the pod again)"


def stop_leftovers(registry: Registry, pods_dir: Path) -> int:
    """A start without the kubelet over a data directory whose previous run (killed with -9) left
    containers running: kill them (and their exec sessions), record them as ended, and say so in their
    pods' status (Ready False, the containers terminated). The number of processes killed."""
    killed = 0
    now = now_rfc3339()
    for uid, record in state.recorded_pods(pods_dir).items():
        kill_companions(pods_dir / uid)
        ended: dict[str, dict[str, Any]] = {}
        for name, container in record.containers.items():
            if container.process is None or container.terminated is not None:
                continue
            if process_alive(container.process):
                killed += 1
            kill_record(container.process)
            container.terminated = {
                "exitCode": 137, "reason": "ContainerStatusUnknown", "message": KUBELET_OFF_MESSAGE,
                "startedAt": container.started_at or now, "finishedAt": now,
                "containerID": f"emulator://{uid}/{name}/{container.restart_count}",
            }
            container.process = None
            ended[name] = container.terminated
        if not ended:
            continue
        with contextlib.suppress(OSError):
            state.save(pods_dir / uid, record)
        pod = registry.store.get(PODS.key, record.namespace, record.name)
        if pod is None or pod["metadata"].get("uid") != uid:
            continue
        status = dict(pod.get("status") or {})
        for key in ("containerStatuses", "initContainerStatuses"):
            if status.get(key):
                status[key] = [
                    {**s, "ready": False, "started": False, "state": {"terminated": ended[s.get("name")]}} if s.get("name") in ended else s
                    for s in status[key]
                ]
        status["conditions"] = [
            {**c, "status": "False", "reason": "KubeletOff", "message": KUBELET_OFF_MESSAGE, "lastTransitionTime": now}
            if c.get("type") in ("Ready", "ContainersReady") else c
            for c in status.get("conditions") or []
        ]
        try:
            registry.replace_object(PODS, pod, {**pod, "status": status}, subresource="status")
        except errors.StatusError as exc:
            log.warning("could not mark pod %s/%s: %s", record.namespace, record.name, exc)
    if killed:
        log.warning("killed %d container process(es) a previous run left (the kubelet is off now)", killed)
    return killed


@dataclass
class _ProbeTarget:
    """What a probe worker probes: the pod's address, and commands run beside the container."""

    pod_ip: str
    worker: PodWorker
    container: Container

    async def exec(self, argv: list[str], timeout: float) -> tuple[int, bytes]:
        return await self.worker.exec(self.container, argv, timeout)
